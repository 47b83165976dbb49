"""Kept for old instructions: the benchmark is now bench/run.py (see bench/README.md).
`scripts/bench_write.py --rows N` runs `bench/run.py --rows N` (unthrottled) with the same arguments."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    run = Path(__file__).resolve().parent.parent / "bench" / "run.py"
    os.execv(sys.executable, [sys.executable, str(run), *sys.argv[1:]])
