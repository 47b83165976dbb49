"""`./scripts/demo` prints what the README says it prints, in that order."""

import subprocess
import sys

from integration_tests.harness import ROOT


def test_the_demo_prints_what_the_readme_says():
    done = subprocess.run(
        [sys.executable, "scripts/demo_sync.py", "--rows", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout.splitlines()
    readme = (ROOT / "README.md").read_text()
    assert "It prints, in this order: the result of `check`" in " ".join(readme.split())
    # The README's list, in its order: each is the first line of the output that shows it.
    shown = [
        "check: SUCCEEDED",
        "write: 2000 customer rows (+ audience, order and newsletter rows) in ",
        "  connector: Created Klaviyo list 'VIP customers'",
        "  connector: Klaviyo accepted ",
        "  connector: Sync summary: ",
        "  connector: config update for Airbyte to store (key masked): target_registry=",
        "Klaviyo emulator now holds ",
        "Klaviyo list ",
        "  metric ",
        "An event as Klaviyo stored it:",
        "A profile as Klaviyo stored it:",
    ]
    positions = [next(i for i, line in enumerate(out) if line.startswith(start)) for start in shown]
    assert positions == sorted(positions), list(zip(shown, positions))
    assert any("state messages echoed, last cursor of customers 2000" in line for line in out)
    assert any(line.startswith("  job ") and "profiles" in line for line in out)
    # The generated rows without an identifier show up as rejected rows in the summary.
    assert any("Sync summary: Stream 'customers': 3 rows rejected (missing_identifier: 3)" in line for line in out), out
