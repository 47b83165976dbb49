"""Would rendering on a second process pay? Render an input file's profile rows two ways and compare.

Issue 15: "If the main thread is still the bottleneck after [render plans], measure rendering on a
second process (whole batches handed over) and keep it only if it wins in CPU and wall time."

- `main`: as the connector does, on one thread: parse each line, render each record.
- `second`: the main thread only cuts the input into batches of raw lines (no parsing) and hands
  whole batches to one worker process, which parses and renders them and hands back the
  comma-joined profiles (what a bulk job body holds). The main thread's share of the work is what
  would be left for routing, states and HTTP.

Reported per way: wall seconds, CPU seconds of the whole process tree (parent + worker), and the
main thread's own CPU. Not part of the test suite. Usage:

    .venv/bin/python bench/second_process.py [--rows 300000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402

from destination_klaviyo.surfaces.profiles import render_profile  # noqa: E402


def render_lines(chunk: bytes) -> tuple[int, bytes]:
    """Parse and render every RECORD line of `chunk`; the profiles, comma-joined, and their count."""
    rendered = []
    for line in chunk.split(b"\n"):
        if not line:
            continue
        message = orjson.loads(line)
        if message.get("type") == "RECORD":
            body = render_profile(message["record"]["data"])
            if body.__class__ is bytes:
                rendered.append(body)
    return len(rendered), b",".join(rendered)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def on_main(lines: list[bytes]) -> tuple[int, float, float]:
    """Line by line, as the connector's main thread does."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    total = 0
    for line in lines:
        message = orjson.loads(line)
        if message.get("type") == "RECORD" and render_profile(message["record"]["data"]).__class__ is bytes:
            total += 1
    return total, time.perf_counter() - start_wall, time.process_time() - start_cpu


def on_second_process(lines: list[bytes], batch: int) -> tuple[int, float, float, float]:
    start_wall, start_self, start_children = (
        time.perf_counter(),
        cpu(resource.RUSAGE_SELF),
        cpu(resource.RUSAGE_CHILDREN),
    )
    total = 0
    with multiprocessing.get_context("fork").Pool(1) as pool:
        chunks = (b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch))
        for count, _ in pool.imap(render_lines, chunks):
            total += count
        pool.close()
        pool.join()
    wall = time.perf_counter() - start_wall
    main_cpu = cpu(resource.RUSAGE_SELF) - start_self
    return total, wall, main_cpu, main_cpu + cpu(resource.RUSAGE_CHILDREN) - start_children


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000, help="lines handed over at a time")
    args = parser.parse_args()
    path = datagen.ensure_file("profiles", args.rows)
    lines = path.read_bytes().splitlines()
    render_lines(b"\n".join(lines[:2_000]))  # warm caches (column plans) outside the timing
    rendered, wall, main_cpu = on_main(lines)
    print(f"one thread:        {rendered:,} profiles, wall {wall:.2f} s, CPU {main_cpu:.2f} s (all on the main thread)")
    rendered, wall, main_cpu, tree_cpu = on_second_process(lines, args.batch)
    print(
        f"second process:    {rendered:,} profiles, wall {wall:.2f} s, CPU {tree_cpu:.2f} s in all, "
        f"{main_cpu:.2f} s of it on the main thread"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
