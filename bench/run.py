"""Benchmark destination-klaviyo's `write` against the bundled Klaviyo emulator; prints tables.

One command (from the repository root, with the dev venv):

    .venv/bin/python bench/run.py --rows 100000 [--rows 1000000 ...] [--mode unthrottled|throttled|both]

unthrottled (per --rows size): the emulator answers at once and never throttles. Measures the
    connector process (`destination-klaviyo write`, the real console script, messages on stdin from
    a file) with os.wait4: wall time, rows/s, CPU seconds (user+sys) and CPU s per 1M rows, peak RSS.
    The same input file is then read by bench/baseline_loop.py (the bare CDK reading loop) in its
    own process; the table gives connector CPU / baseline CPU for the whole process, and per row
    (each side's start-up CPU, measured on an empty input, subtracted).
throttled: the emulator enforces Klaviyo's per-endpoint limits (`--rate-limits klaviyo`) with
    `--latency-ms` (default 250) per request, optionally time-scaled (`--time-scale X`: simulated
    time runs X times faster; limits and latency scale with it, and rates are converted back to
    simulated time). One run per case (`--surfaces`), each against a fresh emulator; each case's
    ceiling comes from the spec's steady rate (x-klaviyo-ratelimit) of the operation it measures
    and that operation's per-request limit:
      profiles       bulk import jobs, 150/min x 10,000 profiles = 25,000 profiles/s
      memberships    list_memberships_by_profile_id, POST list relationships, 150/min x 1,000 = 2,500 ids/s
      events         an orders stream, Bulk Create Events, 150/min x 1,000 = 2,500 events/s
      subscriptions  bulk subscribe into one list, 750/min x 1,000 = 12,500 profiles/s
      bigprofiles    ~1 KB profiles: 150 jobs/min x the profiles that fit in 5,000,000 bytes (the
                     rows rendered by the connector's render_profile, bench/packing.py): ~12,000/s
      manylists      list_memberships into 500 pre-existing lists (Zipf-skewed, 200,000 rows): 150
                     jobs/min, and the fewest jobs = sum over lists of the jobs each list needs
      unsubscribes   CDC deletions on subscriptions: unsubscribe from 50 lists, 100 per request,
                     each after one member lookup of 100 emails (both 750/min) = 1,250 people/s
      suppressions   bulk suppress, 750/min x 100 emails = 1,250 emails/s
      deletions      profile_deletions, one profile per request, 60/min = 1 deletion/s
    Reports sustained items/s as % of the ceiling, the 429s the emulator sent, requests x items,
    how full the requests were (packing), and peak RSS.

Nothing is asserted: it prints numbers (and writes them as JSON with --json). Input files are
generated once per (kind, rows) into $BENCH_DATA_DIR (default: <tmp>/destination-klaviyo-bench).
`--ref REV` benchmarks the connector source of a git revision instead of the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402

CONNECTOR = Path(sys.executable).parent / "destination-klaviyo"
API_KEY = "pk_emulator_bench_key"
STEADY_WINDOW = 60.0
BULK_PATH = "/api/profile-bulk-import-jobs"
EVENTS_PATH = "/api/event-bulk-create-jobs"
SUBSCRIBE_PATH = "/api/profile-subscription-bulk-create-jobs"
UNSUBSCRIBE_PATH = "/api/profile-subscription-bulk-delete-jobs"
SUPPRESS_PATH = "/api/profile-suppression-bulk-create-jobs"
DELETION_PATH = "/api/data-privacy-deletion-jobs"
MAX_JOB_BODY_BYTES = 5_000_000  # bulk import: "The maximum allowed payload size is 5MB", read strictly


@dataclass(frozen=True)
class Case:
    """One throttled run: its input, the Klaviyo operation it measures, and that operation's limits
    (spec: `x-klaviyo-ratelimit` steady rate, and the per-request limit of its description)."""

    name: str
    surface: str  # the connector surface the rows go to
    default_rows: int
    method: str
    path: str  # the measured operation's path; `path_suffix`: any path ending so
    operation: str  # Klaviyo's operationId, for the table
    unit: str  # what one item is
    per_request: int  # items one request may carry
    steady_per_minute: int
    path_suffix: bool = False
    seeded: bool = False  # the emulator starts with data (bench/seeded_emulator.py)
    also: str = ""  # other operations every request needs, when their limits could bind too

    def measures(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        return path.endswith(self.path) if self.path_suffix else path == self.path

    @property
    def ceiling(self) -> float:
        """Items per second at the steady rate with full requests."""
        return self.steady_per_minute / 60 * self.per_request

    @property
    def derivation(self) -> str:
        return f"{self.operation} {self.steady_per_minute}/min x {self.per_request:,} {self.unit} / 60 s" + (
            f" ({self.also})" if self.also else ""
        )


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("profiles", "profiles", 4_000_000, "POST", BULK_PATH, "bulk_import_profiles", "profiles", 10_000, 150),
        Case(
            "memberships", "list_memberships_by_profile_id", 400_000, "POST", "/relationships/profiles",
            "add_profiles_to_list", "ids", 1_000, 150, path_suffix=True,
        ),
        Case("events", "events", 400_000, "POST", EVENTS_PATH, "bulk_create_events", "events", 1_000, 150),
        Case(
            "subscriptions", "subscriptions", 1_600_000, "POST", SUBSCRIBE_PATH, "bulk_subscribe_profiles",
            "profiles", 1_000, 750,
        ),
        Case(
            "bigprofiles", "profiles", 2_500_000, "POST", BULK_PATH, "bulk_import_profiles", "profiles", 10_000, 150
        ),
        Case(
            "manylists", "list_memberships", 200_000, "POST", BULK_PATH, "bulk_import_profiles", "profiles",
            10_000, 150, seeded=True,
        ),
        Case(
            "unsubscribes", "subscriptions (deletion rows)", 250_000, "POST", UNSUBSCRIBE_PATH,
            "bulk_unsubscribe_profiles", "people", 100, 750, seeded=True,
            also="each request's 100 emails are first looked up among the list's members, one "
            "get_profiles_for_list request of 100 values, also 750/min: the same 1,250/s",
        ),
        Case(
            "suppressions", "suppressions", 250_000, "POST", SUPPRESS_PATH, "bulk_suppress_profiles", "emails", 100,
            750,
        ),
        Case(
            "deletions", "profile_deletions", 200, "POST", DELETION_PATH, "request_profile_deletion", "profile", 1,
            60, seeded=True,
        ),
    )
}  # fmt: skip
DEFAULT_CASES = "profiles,memberships,events"


# ------------------------------------------------------------------------------------- processes
@dataclass
class Measured:
    """One finished child process, from os.wait4 (that child only)."""

    exit_code: int
    wall: float
    user: float
    sys: float
    max_rss_kib: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def rss_mb(self) -> float:
        return self.max_rss_kib * 1024 / 1e6


def run_measured(
    args: list[str],
    stdin: Path,
    stdout: Path,
    stderr: Path,
    env: dict[str, str],
    cwd: Path,
    timed: Optional[list[tuple[float, bytes]]] = None,
) -> Measured:
    """Run and measure one child. With `timed`, its stdout goes through a pipe read by a thread of
    this process, which appends `(time.time(), line)` for every line as it arrives (the connector
    prints states and logs only, a few thousand lines a run) and writes it to `stdout` too."""
    with stdin.open("rb") as source, stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.monotonic()
        pipe = subprocess.PIPE if timed is not None else out
        process = subprocess.Popen(args, stdin=source, stdout=pipe, stderr=err, env=env, cwd=cwd)
        reader = None
        if timed is not None:
            reader = threading.Thread(target=_pump, args=(process.stdout, out, timed), daemon=True)
            reader.start()
        peak = _PeakRss(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        peak.stop()
        if reader is not None:
            reader.join()
            assert process.stdout is not None
            process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting
    return Measured(process.returncode, wall, usage.ru_utime, usage.ru_stime, peak.kib or usage.ru_maxrss)


class _PeakRss:
    """The child's own peak RSS, from /proc/<pid>/status VmHWM, read every 0.2 s until it exits.

    Not `ru_maxrss`: Linux carries the forking process's RSS across `exec` into the child's
    ru_maxrss (`signal->maxrss` takes the old mm's high-water mark), so once this bench process
    itself held a few hundred MB (seeding a case's data), every later child reported at least that.
    VmHWM belongs to the child's own address space. Growth in the last 0.2 s can be missed."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.kib = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.is_set():
            try:
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.kib = max(self.kib, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            self.done.wait(0.2)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _pump(pipe: Any, out: Any, timed: list[tuple[float, bytes]]) -> None:
    for line in iter(pipe.readline, b""):
        timed.append((time.time(), line))
        out.write(line)


class Emulator:
    """The emulator as its own process (so its CPU never counts as the connector's), on a free port.
    With `seed` (kind, rows, random seed), bench/seeded_emulator.py starts it with that input's data already in
    (lists, profiles, list members) and writes the lists' ids to `lists_out`."""

    def __init__(
        self,
        extra_args: list[str],
        log: Path,
        seed: Optional[tuple[str, int, int]] = None,
        lists_out: Optional[Path] = None,
    ) -> None:
        launcher = ["-m", "integration_tests.klaviyo_emulator"]
        if seed is not None:
            assert lists_out is not None
            kind, rows, value = seed
            launcher = [str(BENCH / "seeded_emulator.py"), "--seed-kind", kind, "--seed-rows", str(rows)]
            launcher += ["--seed-value", str(value), "--lists-out", str(lists_out)]
        self.args = [
            sys.executable, *launcher,
            "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY, "--lean", *extra_args,
        ]  # fmt: skip
        self.log = log
        self.url = ""
        self.usage: Optional[Measured] = None

    def __enter__(self) -> "Emulator":
        self._err = self.log.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("KLAVIYO_EMULATOR_LISTENING "):
            self.process.kill()
            raise RuntimeError(f"emulator did not start: {line!r} (see {self.log})")
        self.url = line.split(" ", 1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.usage = Measured(
            self.process.returncode, time.monotonic() - self.started, usage.ru_utime, usage.ru_stime, usage.ru_maxrss
        )
        self._err.close()

    def stats(self, timeline: bool = False) -> dict[str, Any]:
        params = {"timeline": "1"} if timeline else {}
        return requests.get(f"{self.url}/__emulator__/stats", params=params, timeout=120).json()

    def state(self) -> dict[str, Any]:
        """The whole store (every profile too: for runs of a few hundred thousand rows only)."""
        return requests.get(f"{self.url}/__emulator__/state", timeout=600).json()

    def create_list(self, name: str) -> str:
        headers = {
            "Authorization": f"Klaviyo-API-Key {API_KEY}",
            "revision": "2026-04-15",
            "Content-Type": "application/vnd.api+json",
        }
        body = {"data": {"type": "list", "attributes": {"name": name}}}
        response = requests.post(f"{self.url}/api/lists", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return str(response.json()["data"]["id"])


# ------------------------------------------------------------------------------------ connector
@dataclass
class Setup:
    """Config and catalog files for one surface."""

    config: Path
    catalog: Path


def write_setup(
    tmp: Path, kind: str, list_id: Optional[str] = None, max_in_flight: Optional[int] = None
) -> Setup:
    """Config and catalog for one case (`kind`: a datagen kind; every row of `manylists` and
    `unsubscribes` names its list, which the connector finds by name: the lists exist already)."""
    config: dict[str, Any] = {"private_api_key": API_KEY}
    stream = datagen.STREAMS[kind]
    if kind in ("profiles", "bigprofiles"):
        config["default_surface"] = "profiles"
    elif kind == "events":
        config["streams"] = [
            {
                "stream": stream,
                "surface": "events",
                "metric": datagen.BENCH_METRIC,
                "time_field": "ordered_at",
                "value_field": "total",
                "value_currency": "USD",
            }
        ]
    elif kind == "subscriptions":
        config["streams"] = [
            {"stream": stream, "surface": "subscriptions", "target": datagen.BENCH_LIST, "channels": ["email_marketing"]}
        ]
        if list_id:
            config["list_mappings"] = [{"target": datagen.BENCH_LIST, "list_id": list_id}]
    elif kind == "manylists":
        config["default_surface"] = "list_memberships"
    elif kind == "unsubscribes":
        config["streams"] = [{"stream": stream, "surface": "subscriptions", "channels": ["email_marketing"]}]
    elif kind == "suppressions":
        config["streams"] = [{"stream": stream, "surface": "suppressions"}]
    elif kind == "deletions":
        config["streams"] = [{"stream": stream, "surface": "profile_deletions"}]
    else:
        config["default_surface"] = "list_memberships_by_profile_id"
        if list_id:
            config["list_mappings"] = [{"target": datagen.BENCH_LIST, "list_id": list_id}]
    if max_in_flight is not None:
        config["max_requests_in_flight"] = max_in_flight
    catalog = {
        "streams": [
            {
                "stream": {
                    "name": stream,
                    "json_schema": {"type": "object"},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "incremental",
                "destination_sync_mode": "append",
                # events: the default unique_id comes from the primary key (and cursor, in append mode)
                **({"primary_key": [["order_id"]], "cursor_field": ["updated_at"]} if kind == "events" else {}),
            }
        ]
    }
    (tmp / f"config-{kind}.json").write_text(json.dumps(config))
    (tmp / f"catalog-{kind}.json").write_text(json.dumps(catalog))
    return Setup(tmp / f"config-{kind}.json", tmp / f"catalog-{kind}.json")


def connector_env(origin: str, source_dir: Optional[Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KLAVIYO_API_ORIGIN"}
    env["KLAVIYO_API_ORIGIN"] = origin
    if source_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@dataclass
class Output:
    """What the connector printed: echoed states, the last cursor, failures."""

    states: int = 0
    last_cursor: Any = None
    errors: list[str] = field(default_factory=list)


def read_output(path: Path) -> Output:
    out = Output()
    with path.open("rb") as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                out.errors.append(f"not JSON: {line[:200]!r}")
                continue
            if message.get("type") == "STATE":
                out.states += 1
                out.last_cursor = message["state"].get("stream", {}).get("stream_state", {}).get("cursor")
            elif message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                out.errors.append(message["trace"]["error"].get("message", "error"))
    return out


def run_connector(
    setup: Setup,
    data: Path,
    origin: str,
    source_dir: Optional[Path],
    tmp: Path,
    label: str,
    timed: Optional[list[tuple[float, bytes]]] = None,
) -> tuple[Measured, Output]:
    args = [str(CONNECTOR), "write", "--config", str(setup.config), "--catalog", str(setup.catalog)]
    stdout, stderr = tmp / f"{label}.stdout", tmp / f"{label}.stderr"
    measured = run_measured(args, data, stdout, stderr, connector_env(origin, source_dir), tmp, timed)
    return measured, read_output(stdout)


def check_run(label: str, measured: Measured, output: Output, rows: int, states: int) -> list[str]:
    problems = []
    if measured.exit_code != 0:
        problems.append(f"{label}: connector exited {measured.exit_code}")
    problems += [f"{label}: {e}" for e in output.errors]
    if output.states != states:
        problems.append(f"{label}: echoed {output.states} of {states} states")
    if rows and output.last_cursor != rows:
        problems.append(f"{label}: last echoed cursor {output.last_cursor}, expected {rows}")
    return problems


def run_baseline(data: Path, tmp: Path, label: str) -> Measured:
    args = [sys.executable, str(BENCH / "baseline_loop.py")]
    env = dict(os.environ)
    return run_measured(args, data, tmp / f"{label}.stdout", tmp / f"{label}.stderr", env, tmp)


# ------------------------------------------------------------------------------------- unthrottled
def startup_cpu(tmp: Path, source_dir: Optional[Path], runs: int = 3) -> tuple[float, float]:
    """Start-up CPU (min of `runs`) of the connector and of the baseline, on an input with no row."""
    empty = tmp / "empty.jsonl"
    closing = next(m for m in datagen.messages("profiles", 0) if m["type"] == "TRACE")
    empty.write_text(json.dumps(closing) + "\n")
    setup = write_setup(tmp, "profiles")
    connector, baseline = [], []
    with Emulator([], tmp / "emulator-startup.log") as emulator:
        for i in range(runs):
            measured, _ = run_connector(setup, empty, emulator.url, source_dir, tmp, f"startup-{i}")
            connector.append(measured.cpu)
            baseline.append(run_baseline(empty, tmp, f"startup-baseline-{i}").cpu)
    return min(connector), min(baseline)


def unthrottled(rows: int, repeat: int, tmp: Path, source_dir: Optional[Path], startup: tuple[float, float]) -> dict:
    data = datagen.ensure_file("profiles", rows)
    states = datagen.count_states(data)
    setup = write_setup(tmp, "profiles")
    runs, baselines, problems, emulators, jobs = [], [], [], [], []
    for i in range(repeat):
        label = f"unthrottled-{rows}-{i}"
        with Emulator([], tmp / f"{label}.emulator.log") as emulator:
            measured, output = run_connector(setup, data, emulator.url, source_dir, tmp, label)
            stats = emulator.stats()
        assert emulator.usage is not None
        emulators.append(emulator.usage)
        problems += check_run(label, measured, output, rows, states)
        jobs.append(stats["request_counts"].get(f"POST {BULK_PATH}", 0))
        if stats["profiles"] != rows:
            problems.append(f"{label}: emulator holds {stats['profiles']} profiles, expected {rows}")
        runs.append(measured)
        baselines.append(run_baseline(data, tmp, f"baseline-{rows}-{i}"))
    run = _median_by(runs, lambda m: m.cpu)
    baseline = _median_by(baselines, lambda m: m.cpu)
    connector_startup, baseline_startup = startup
    baseline_rows_cpu = baseline.cpu - baseline_startup
    # Too small an input leaves nothing but start-up noise to divide by.
    per_row = (run.cpu - connector_startup) / baseline_rows_cpu if baseline_rows_cpu >= 0.1 else None
    return {
        "rows": rows,
        "states": states,
        "input_bytes": data.stat().st_size,
        "runs": len(runs),
        "wall_s": run.wall,
        "rows_per_s": rows / run.wall,
        "cpu_s": run.cpu,
        "cpu_user_s": run.user,
        "cpu_sys_s": run.sys,
        "cpu_s_per_1m_rows": run.cpu / rows * 1e6,
        "peak_rss_mb": max(m.rss_mb for m in runs),
        "baseline_cpu_s": baseline.cpu,
        "baseline_peak_rss_mb": baseline.rss_mb,
        "cpu_ratio": run.cpu / baseline.cpu,
        "cpu_ratio_per_row": per_row,
        "emulator_cpu_s": statistics.median(m.cpu for m in emulators),
        "bulk_jobs": statistics.median(jobs),
        "all_runs_cpu_s": [m.cpu for m in runs],
        "all_baselines_cpu_s": [m.cpu for m in baselines],
        "problems": problems,
    }


def _median_by(items: list[Measured], key: Any) -> Measured:
    return sorted(items, key=key)[(len(items) - 1) // 2]


# --------------------------------------------------------------------------------------- throttled
def sustained_rate(points: list[tuple[float, int]]) -> tuple[Optional[float], str, bool]:
    """Items per simulated second from accepted requests `(simulated time, items)`; and how, and
    whether that is a sustained figure at all.

    The first steady (60 s) window holds start-up and Klaviyo's fresh allowance, so it never counts.
    Preferred: the complete windows strictly between the first and the last request's windows.
    Else: from the start of the second window to the last request. Else (the run fit in one window,
    which says nothing about the steady limit): first to last request, flagged as not sustained.
    """
    if len(points) < 2:
        return None, "too few requests", False
    first_window = int(points[0][0] // STEADY_WINDOW)
    last_window = int(points[-1][0] // STEADY_WINDOW)
    complete = range(first_window + 1, last_window)
    if len(complete) >= 1:
        items = sum(n for t, n in points if first_window < int(t // STEADY_WINDOW) < last_window)
        return items / (len(complete) * STEADY_WINDOW), f"{len(complete)} complete 60-s window(s)", True
    later = [(t, n) for t, n in points if int(t // STEADY_WINDOW) > first_window]
    if len(later) >= 2:
        start = (first_window + 1) * STEADY_WINDOW
        return sum(n for _, n in later) / (later[-1][0] - start), "second window to last request", True
    span = points[-1][0] - points[0][0]
    if span <= 0:
        return None, "no time span", False
    how = "first to last request: the run fit in one 60-s window, NOT a sustained rate (use more rows)"
    return sum(n for _, n in points[:-1]) / span, how, False


ACCEPTED = re.compile(r"Klaviyo accepted (.+?) \((\d+) rows, (\d+) bytes\)")
PROGRESS = re.compile(r"Progress: read ([\d,]+) rows?\b")


@dataclass
class Logged:
    """What the connector printed, with the time each line arrived (time.time())."""

    accepted: list[tuple[float, str, int, int]] = field(default_factory=list)  # time, receipt, rows, bytes
    read_below: Optional[float] = None  # last progress line before every row was read
    read_all: Optional[float] = None  # first progress line with every row read
    states: list[float] = field(default_factory=list)
    progress: list[tuple[float, int]] = field(default_factory=list)  # (time, rows read), every 5 s
    config_updates: int = 0  # CONNECTOR_CONFIG control messages (target registry updates)
    config_update_bytes: int = 0


def read_timed(timed: list[tuple[float, bytes]], rows: int) -> Logged:
    logged = Logged()
    for at, line in timed:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        kind = message.get("type")
        if kind == "STATE":
            logged.states.append(at)
        elif kind == "CONTROL":
            logged.config_updates += 1
            logged.config_update_bytes += len(line)
        elif kind == "LOG":
            text = (message.get("log") or {}).get("message") or ""
            found = ACCEPTED.match(text)
            if found:
                logged.accepted.append((at, found.group(1), int(found.group(2)), int(found.group(3))))
                continue
            progress = PROGRESS.match(text)
            if progress:
                read = int(progress.group(1).replace(",", ""))
                logged.progress.append((at, read))
                if read < rows:
                    logged.read_below = at
                elif logged.read_all is None:
                    logged.read_all = at
    return logged


def fewest_jobs(data: Path, source_dir: Optional[Path], group_column: Optional[str] = None) -> dict[str, Any]:
    """bench/packing.py on the input, in its own process, with the benchmarked connector's rendering."""
    args = [sys.executable, str(BENCH / "packing.py"), "--data", str(data)]
    if group_column:
        args += ["--group-column", group_column]
    env = connector_env("http://127.0.0.1:9", source_dir)
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench/packing.py failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def throttled(case: Case, rows: int, args: argparse.Namespace, tmp: Path, source_dir: Optional[Path]) -> dict:
    data = datagen.ensure_file(case.name, rows, seed=args.seed)
    states = datagen.count_states(data)
    packing = None
    if case.name in ("bigprofiles", "manylists"):  # before the emulator starts: nothing else runs
        packing = fewest_jobs(data, source_dir, "list" if case.name == "manylists" else None)
    scale = args.time_scale
    extra = ["--rate-limits", "klaviyo", "--latency-ms", str(args.latency_ms), "--time-scale", str(scale)]
    label = f"throttled-{case.name}-{rows}"
    lists_out = tmp / f"{label}.lists.json"
    seed = (case.name, rows, args.seed) if case.seeded else None
    timed: list[tuple[float, bytes]] = []
    with Emulator(extra, tmp / f"{label}.emulator.log", seed, lists_out) as emulator:
        list_ids: dict[str, str] = json.loads(lists_out.read_text()) if seed else {}
        list_id = emulator.create_list(datagen.BENCH_LIST) if case.name in ("memberships", "subscriptions") else None
        setup = write_setup(tmp, case.name, list_id, args.max_in_flight)
        started = time.time()
        measured, output = run_connector(setup, data, emulator.url, source_dir, tmp, label, timed)
        stats = emulator.stats(timeline=True)
        store = emulator.state() if case.name == "manylists" else None
    problems = check_run(label, measured, output, rows, states)
    limits = stats["rate_limits"]
    epoch = limits["epoch_unix"]
    timeline = stats["timeline"]
    points = [
        ((ts - epoch) * scale, items or 0)
        for ts, method, path, status, items in timeline
        if case.measures(method, path) and status < 400
    ]
    throttled_for_op = sum(
        1 for _, method, path, status, _ in timeline if case.measures(method, path) and status == 429
    )
    accepted_items = sum(n for _, n in points)
    if accepted_items != rows:
        problems.append(f"{label}: emulator accepted {accepted_items} {case.unit}, expected {rows}")
    rate, how, sustained = sustained_rate(points)
    request_rate, _, _ = sustained_rate([(t, 1) for t, _ in points])
    logged = read_timed(timed, rows)
    simulated_wall = measured.wall * scale
    result: dict[str, Any] = {
        "kind": case.name,
        "surface": case.surface,
        "rows": rows,
        "seed": args.seed,
        "first_state_at_row": _first_state(data),
        "time_scale": scale,
        "latency_ms": args.latency_ms,
        "max_requests_in_flight": args.max_in_flight,
        "wall_s": measured.wall,
        "simulated_s": simulated_wall,
        "unit": case.unit,
        "requests_accepted": len(points),
        "items_per_request": accepted_items / len(points) if points else None,
        "per_request_limit": case.per_request,
        "throttled_429": stats["throttled"],
        "throttled_429_by_window": limits.get("throttled_by_window"),
        "throttled_429_this_endpoint": throttled_for_op,
        "throttled_by_operation": {op: n for op, n in (limits.get("throttled") or {}).items() if n},
        "request_counts": stats["request_counts"],
        "status_counts": stats["status_counts"],
        "max_in_flight": stats.get("max_in_flight"),
        "average_per_s": rows / simulated_wall,
        "sustained_per_s": rate,
        "sustained_requests_per_min": request_rate * 60 if request_rate else None,
        "sustained_how": how,
        "is_sustained": sustained,
        "ceiling_per_s": case.ceiling,
        "ceiling_how": case.derivation,
        "ceiling_short": f"{case.steady_per_minute}/min x {case.per_request:,}",
        "packing": f"{accepted_items / len(points):,.0f} of {case.per_request:,}" if points else "n/a",
        "connector_cpu_s": measured.cpu,
        "connector_cpu_share": measured.cpu / measured.wall,
        "connector_peak_rss_mb": measured.rss_mb,
        "emulator_cpu_s": emulator.usage.cpu if emulator.usage else None,
        "stdout_lines": len(timed),
        "config_updates": logged.config_updates,
        "config_update_bytes": logged.config_update_bytes,
        "input_read_s": _between(logged, started),
        "notes": [],
        "problems": problems,
    }
    others = _other_requests(case, stats["request_counts"])
    if others:
        listed = ", ".join(f"{n:,} {what}" for what, n in others.items())
        result["notes"].append(f"Other requests (the bench's own set-up included): {listed}.")
    if case.name == "bigprofiles":
        _bigprofiles(result, packing, logged)
    elif case.name == "manylists":
        _manylists(result, packing, logged, store, list_ids, timeline, started, scale)
    sustained_per_s = result["sustained_per_s"]
    result["sustained_pct"] = sustained_per_s / result["ceiling_per_s"] * 100 if sustained_per_s else None
    result["average_pct"] = result["average_per_s"] / result["ceiling_per_s"] * 100
    _verify(case, result, stats, list_ids)
    return result


_ID_SEGMENT = re.compile(r"^(/api/(?:lists|profile-bulk-import-jobs|profile-suppression-bulk-create-jobs))/[^/]+")


def _other_requests(case: Case, counts: dict[str, int]) -> dict[str, int]:
    """Requests of other operations than the measured one (lookups, checks), ids collapsed."""
    others: dict[str, int] = {}
    for key, n in counts.items():
        method, path = key.split(" ", 1)
        if case.measures(method, path):
            continue
        what = f"{method} {_ID_SEGMENT.sub(lambda m: m.group(1) + '/{id}', path)}"
        others[what] = others.get(what, 0) + n
    return others


def _first_state(data: Path) -> Optional[int]:
    """The row the input's first STATE follows (its cursor)."""
    with data.open("rb") as lines:
        for line in lines:
            if line.startswith(b'{"type":"STATE"'):
                return json.loads(line)["state"]["stream"]["stream_state"]["cursor"]
    return None


def _between(logged: Logged, started: float) -> Optional[list[float]]:
    """When every row had been read, after the connector started: between these two seconds (the
    progress line comes every 5 s)."""
    if logged.read_all is None:
        return None
    return [(logged.read_below or started) - started, logged.read_all - started]


def _bigprofiles(result: dict, packing: Optional[dict], logged: Logged) -> None:
    """Ceiling = 150 jobs/min x the profiles that fit in one job (the rendered sizes, packed in row
    order: bench/packing.py); the jobs actually sent, from the connector's own log lines."""
    assert packing is not None
    rows, jobs, item_bytes, closed = packing["groups"]["None"]
    fit = closed / (jobs - 1) if jobs > 1 else rows
    result["fit_per_job"] = fit
    result["fewest_jobs"] = jobs
    result["rendered_bytes"] = packing["item_bytes"]
    result["ceiling_per_s"] = 150 / 60 * fit
    result["ceiling_short"] = f"150/min x {fit:,.0f} (5 MB fit)"
    sizes = packing["item_bytes"]
    result["ceiling_how"] = (
        f"bulk_import_profiles 150/min x {fit:,.0f} profiles (fit in 5,000,000 bytes: rendered profiles of "
        f"{sizes['min']:,}-{sizes['max']:,} bytes, mean {sizes['mean']:,.0f}) / 60 s"
    )
    sent = [(n, size) for _, receipt, n, size in logged.accepted if receipt.startswith("bulk import job")]
    if len(sent) >= 2:
        # Leave out the smallest job: the one that took what was left at the end of input (answers
        # come back out of order, so it is not necessarily the last one logged).
        body = sorted(sent)[1:]
        largest = packing["item_bytes"]["max"]
        partial = [b for n, b in body if n < 10_000 and b + 1 + largest <= MAX_JOB_BODY_BYTES]
        result["partial_jobs"] = len(partial)
        result["job_profiles_mean"] = statistics.mean(n for n, _ in body)
        result["job_bytes_mean"] = statistics.mean(b for _, b in body)
        result["job_bytes_min"] = min(b for _, b in body)
        result["job_bytes_max"] = max(b for _, b in body)
        result["jobs_logged"] = len(sent)
        result["logged_item_bytes"] = sum(b - packing["envelope_bytes"] - (n - 1) for n, b in sent)
        result["packing"] = (
            f"{result['job_profiles_mean']:,.0f} of {fit:,.0f} profiles, {result['job_bytes_mean'] / 1e6:.3f} MB "
            f"of 5.000 ({result['job_bytes_mean'] / MAX_JOB_BODY_BYTES:.2%})"
        )
        result["notes"].append(
            f"{len(sent)} jobs sent ({jobs} at the fewest); all but the smallest (the end-of-input remainder): "
            f"{result['job_profiles_mean']:,.1f} profiles and {result['job_bytes_mean']:,.0f} bytes on average "
            f"({result['job_bytes_min']:,}-{result['job_bytes_max']:,}), {len(partial)} of them with room for "
            f"another profile; sustained {result['sustained_requests_per_min'] or 0:,.1f} jobs/min. "
            f"Item bytes in the logged jobs: {result['logged_item_bytes']:,} (render_profile over the input: "
            f"{item_bytes:,})."
        )


def _manylists(
    result: dict,
    packing: Optional[dict],
    logged: Logged,
    store: Optional[dict],
    list_ids: dict[str, str],
    timeline: list,
    started: float,
    scale: float,
) -> None:
    """Jobs sent vs the fewest possible per list, the partial jobs sent before the end of input
    (not a list's last job), the list lookups, and the share of 150 jobs/min spent usefully."""
    assert packing is not None and store is not None
    names = {list_id: name for name, list_id in list_ids.items()}
    per_list: dict[str, list[tuple[float, int]]] = {}
    for job in store["jobs"]:
        created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()
        per_list.setdefault(names.get(job["list_id"], job["list_id"]), []).append((created, job["profile_count"]))
    fewest = packing["fewest_jobs"]
    sent = sum(len(jobs) for jobs in per_list.values())
    early: list[float] = []  # partial jobs that were not their list's last
    full = 0
    for jobs in per_list.values():
        jobs.sort()
        full += sum(1 for _, n in jobs if n >= 10_000)
        early += [t for t, n in jobs[:-1] if n < 10_000]
    early.sort()
    bursts: list[list[float]] = []  # [start, end, count], seconds after the connector started
    for t in early:
        if bursts and t - started - bursts[-1][1] <= 10:
            bursts[-1][1] = t - started
            bursts[-1][2] += 1
        else:
            bursts.append([t - started, t - started, 1])
    lookups = [ts for ts, method, path, status, _ in timeline if method == "GET" and path == "/api/lists"]
    sizes = sorted((g[0] for g in packing["groups"].values()), reverse=True)
    job_rate = (result["sustained_requests_per_min"] or 0) / 60
    result.update(
        {
            "lists": len(packing["groups"]),
            "list_rows": {"max": sizes[0], "median": sizes[len(sizes) // 2], "min": sizes[-1], "top5": sizes[:5]},
            "fewest_jobs": fewest,
            "jobs_sent": sent,
            "full_jobs": full,
            "early_partial_jobs": len(early),
            "early_partial_bursts": bursts,
            "list_lookups": len(lookups),
            "list_lookups_s": [lookups[0] - started, lookups[-1] - started] if lookups else None,
            "sustained_jobs_per_s": job_rate,
            # The unit here is jobs: 150/min is the budget, and the fewest jobs are what it must carry.
            "sustained_per_s": job_rate * fewest / sent if sent else None,
            "ceiling_per_s": 150 / 60,
            "ceiling_short": f"150 jobs/min; {fewest} needed",
            "average_per_s": fewest / result["simulated_s"],
            "ceiling_how": (
                f"bulk_import_profiles 150/min = 2.5 jobs/s, of which {fewest} needed (sum over lists of the "
                "fewest jobs)"
            ),
            "packing": f"{sent:,} jobs sent, {fewest:,} at the fewest ({fewest / sent:.1%})" if sent else "n/a",
        }
    )
    first = min((t for t in (ts for ts, m, p, st, _ in timeline if m == "POST" and p == BULK_PATH)), default=None)
    last = max((t for t in (ts for ts, m, p, st, _ in timeline if m == "POST" and p == BULK_PATH)), default=None)
    # The least time Klaviyo's limits allow for the fewest jobs from the first one: 150 in the first
    # minute (10 a second), then 150 a minute.
    least = fewest / 10 if fewest <= 150 else 60 * ((fewest - 1) // 150) + ((fewest - 1) % 150 + 1) / 10
    result["least_s"] = least
    if first is not None and last is not None:
        result["jobs_span_s"] = (last - first) * scale
    done = result["input_read_s"]
    if done and first is not None:
        reading = [
            (ts, n or 0)
            for ts, m, p, st, n in timeline
            if m == "POST" and p == BULK_PATH and st < 400 and ts - started <= done[0]
        ]
        result["while_reading"] = {
            "first_job_s": first - started,
            "jobs": len(reading),
            "profiles": sum(n for _, n in reading),
            "profiles_per_s": sum(n for _, n in reading) / done[0],
        }
    first_state = result["first_state_at_row"]
    read_by = next((at - started for at, read in logged.progress if first_state and read >= first_state), None)
    result["first_state_read_by_s"] = read_by
    result["progress"] = [[round(at - started, 1), read] for at, read in logged.progress]
    stall = _longest_stall(logged.progress, result["rows"])
    if stall is not None:
        a, b, read = stall
        result["read_stall"] = {"from_s": a - started, "to_s": b - started, "rows_read": read}
        lookups_before = sum(1 for ts in lookups if ts <= a)
        result["notes"].append(
            f"Reading stood still at {read:,} rows from {a - started:,.0f} to {b - started:,.0f} s (progress lines), "
            f"with {lookups_before} of the list lookups done."
        )
    result["notes"].append(
        f"{result['lists']} lists of {sizes[-1]:,}-{sizes[0]:,} rows (median {result['list_rows']['median']:,}; the "
        f"biggest {', '.join(f'{n:,}' for n in sizes[:5])}): {sent:,} jobs sent ({full} full) for {fewest:,} at "
        f"the fewest; {len(early)} partial jobs went out before their list's last job, sent: "
        + ("; ".join(f"{n} at {a:,.0f}-{b:,.0f} s" for a, b, n in bursts) or "none")
        + f". {len(lookups)} list lookups (GET /api/lists) "
        + (f"from {lookups[0] - started:,.1f} to {lookups[-1] - started:,.1f} s" if lookups else "")
        + f"; every row read at {_span(done)} s; jobs from first to last: {result.get('jobs_span_s', 0):,.0f} s (the "
        f"fewest jobs need at least {least:,.0f} s); sustained {job_rate:.2f} jobs/s."
    )
    if "while_reading" in result:
        w = result["while_reading"]
        result["notes"].append(
            f"Until every row was read: {w['jobs']} jobs (the first at {w['first_job_s']:,.0f} s), "
            f"{w['profiles']:,} profiles, {w['profiles_per_s']:,.0f} profiles/s from the start "
            f"({w['profiles_per_s'] / 25_000:.1%} of 25,000/s)."
        )
    if first_state:
        result["notes"].append(
            f"The input's first state follows row {first_state:,}, read by "
            f"{'n/a' if read_by is None else f'{read_by:,.0f}'} s "
            "(the first progress line past it); a state forces a flush of every open batch once it has waited 60 s "
            "with no request in flight (writer._flush_for_waiting_states)."
        )
    result["notes"].append(
        f"{result['config_updates']} CONNECTOR_CONFIG messages (target registry), "
        f"{result['config_update_bytes'] / 1e6:,.1f} MB of stdout."
    )


def _longest_stall(progress: list[tuple[float, int]], rows: int) -> Optional[tuple[float, float, int]]:
    """The longest stretch of progress lines with no new row read before the input ended (at least
    15 s), as (first time, last time, rows read)."""
    best: Optional[tuple[float, float, int]] = None
    start = 0
    for i in range(1, len(progress) + 1):
        if i == len(progress) or progress[i][1] != progress[start][1]:
            first, last, read = progress[start][0], progress[i - 1][0], progress[start][1]
            if read < rows and last - first >= 15 and (best is None or last - first > best[1] - best[0]):
                best = (first, last, read)
            start = i
    return best


def _span(between: Optional[list[float]]) -> str:
    return "n/a" if between is None else f"{between[0]:,.0f}-{between[1]:,.0f}"


def _verify(case: Case, result: dict, stats: dict, list_ids: dict[str, str]) -> None:
    """Did Klaviyo (the emulator) end up holding what the rows asked for?"""
    problems, rows, label = result["problems"], result["rows"], f"throttled-{case.name}"
    if case.name in ("profiles", "bigprofiles", "manylists") and stats["profiles"] != rows:
        problems.append(f"{label}: emulator holds {stats['profiles']} profiles, expected {rows}")
    if case.name == "events" and stats["events"] != rows:
        problems.append(f"{label}: emulator holds {stats['events']} events, expected {rows}")
    if case.name == "manylists":
        held = sum(stats["memberships"].get(list_id, 0) for list_id in list_ids.values())
        if held != rows:
            problems.append(f"{label}: the lists hold {held} members, expected {rows}")
    if case.name == "unsubscribes":
        left = sum(stats["memberships"].get(list_id, 0) for list_id in list_ids.values())
        if left or stats["global_unsubscribes"]:
            problems.append(f"{label}: {left} still on the lists, {stats['global_unsubscribes']} unsubscribed globally")
    if case.name == "deletions" and (stats["deletions"] != rows or stats["profiles"]):
        problems.append(
            f"{label}: {stats['deletions']} deletions, {stats['profiles']} profiles left, expected {rows} and 0"
        )


# ---------------------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "airbyte_cdk": _version("airbyte-cdk"),
        "orjson": _version("orjson"),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def source_description(ref: Optional[str]) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    if ref:
        return f"git {ref} = {git('rev-parse', '--short', ref)}"
    dirty = git("status", "--porcelain", "--", "destination_klaviyo")
    return f"working tree at {git('rev-parse', '--short', 'HEAD')}" + (
        " (destination_klaviyo/ modified)" if dirty else ""
    )


def export_ref(ref: str, tmp: Path) -> Path:
    target = tmp / "source"
    target.mkdir()
    archive = subprocess.run(["git", "archive", ref, "destination_klaviyo"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def verify_source(source_dir: Optional[Path]) -> str:
    env = connector_env("http://127.0.0.1:9", source_dir)
    code = "import destination_klaviyo, os; print(os.path.dirname(destination_klaviyo.__file__))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/").stdout.strip()


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:,.2f}x"


def print_unthrottled(results: list[dict]) -> None:
    print("\n## Unthrottled (no rate limit, no latency)\n")
    print(
        "| rows | wall s | rows/s | connector CPU s | CPU s per 1M rows | peak RSS MB | baseline CPU s "
        "| CPU ratio (process) | CPU ratio (per row) | emulator CPU s | bulk jobs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {fmt(r['rows'])} | {fmt(r['wall_s'])} | {fmt(r['rows_per_s'], 0)} | {fmt(r['cpu_s'])} "
            f"| {fmt(r['cpu_s_per_1m_rows'], 1)} | {fmt(r['peak_rss_mb'], 1)} | {fmt(r['baseline_cpu_s'])} "
            f"| {fmt(r['cpu_ratio'])}x | {_ratio(r['cpu_ratio_per_row'])} | {fmt(r['emulator_cpu_s'])} "
            f"| {fmt(r['bulk_jobs'], 0)} |"
        )
    if results:
        rss = [r["peak_rss_mb"] for r in results]
        worst_ratio = max(r["cpu_ratio"] for r in results)
        print(
            f"\nTargets: CPU ratio <= 1.5x (worst here {worst_ratio:.2f}x: "
            f"{'met' if worst_ratio <= 1.5 else 'NOT met'}); peak RSS < 250 MB "
            f"(max {max(rss):.0f} MB: {'met' if max(rss) < 250 else 'NOT met'}), flat across sizes "
            f"({min(rss):.0f}-{max(rss):.0f} MB)."
        )


def print_throttled(results: list[dict]) -> None:
    print("\n## Throttled (Klaviyo rate limits + latency)\n")
    print(
        "| case | surface | rows | wall s | sustained /s | ceiling /s | ceiling from | % of ceiling | average % | 429s "
        "| requests x items | packing | max in flight | connector CPU share | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        jobs = r["kind"] == "manylists"  # that case counts jobs, not items
        digits = 2 if jobs or (r["ceiling_per_s"] or 0) < 10 else 0
        unit = " jobs" if jobs else ""
        print(
            f"| {r['kind']} | {r['surface']} | {fmt(r['rows'])} | {fmt(r['wall_s'], 1)} "
            f"| {fmt(r['sustained_per_s'], digits)}{unit} | {fmt(r['ceiling_per_s'], digits)}{unit} "
            f"| {r['ceiling_short']} "
            f"| {fmt(r['sustained_pct'], 1)}%{'' if r['is_sustained'] else ' (not sustained)'} "
            f"| {fmt(r['average_pct'], 1)}% | {fmt(r['throttled_429'])} "
            f"| {fmt(r['requests_accepted'])} x {fmt(r['items_per_request'], 0)} | {r['packing']} "
            f"| {fmt(r['max_in_flight'])} | {fmt(r['connector_cpu_share'] * 100, 0)}% "
            f"| {fmt(r['connector_peak_rss_mb'], 0)} |"
        )
    print()
    for r in results:
        windows = r.get("throttled_429_by_window") or {}
        detail = ", ".join(f"{n} {w}" for w, n in windows.items() if n)
        by_op = ", ".join(f"{n} {op}" for op, n in (r.get("throttled_by_operation") or {}).items())
        print(
            f"- {r['kind']}: ceiling = {r['ceiling_how']}; sustained over {r['sustained_how']}"
            + (f"; 429s by window: {detail} ({by_op})" if detail else "")
            + "."
        )
        for note in r.get("notes", []):
            print(f"  {note}")
        if r["connector_cpu_share"] > 0.7:
            print(
                f"  WARNING: the connector used {r['connector_cpu_share']:.0%} of a core; at time scale "
                f"{r['time_scale']:g} its CPU, not the rate limit, may be what bounds this run."
            )
    if results:
        print("\nTargets: >= 95% of each ceiling, zero 429s, peak RSS < 250 MB.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="unthrottled size; repeatable (default 100000)")
    parser.add_argument("--mode", choices=("unthrottled", "throttled", "both"), default="unthrottled")
    parser.add_argument("--repeat", type=int, default=1, help="unthrottled runs per size; the median is reported")
    parser.add_argument("--time-scale", type=float, default=1.0, help="throttled: simulated s per real s (default 1)")
    parser.add_argument("--latency-ms", type=float, default=250.0, help="throttled: simulated latency (default 250)")
    for name, (dest, help_text) in ROWS_OPTIONS.items():
        default = CASES[name].default_rows
        parser.add_argument(
            f"--{dest.replace('_', '-')}",
            type=int,
            default=default,
            help=f"throttled {name} run size (default {default:,}: {help_text})",
        )
    parser.add_argument(
        "--surfaces",
        default=DEFAULT_CASES,
        help=f"throttled: comma-separated cases, of {','.join(CASES)} (default {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=datagen.SEED,
        help=f"throttled: the inputs' random seed (default {datagen.SEED}; it also places the states)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        help="throttled: the connector's max_requests_in_flight (default: the connector's default, 4)",
    )
    parser.add_argument("--ref", help="benchmark destination_klaviyo/ as of this git revision (default: working tree)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (connector stdout/stderr)")
    args = parser.parse_args()
    sizes = args.rows or [100_000]
    names = [name.strip() for name in args.surfaces.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"--surfaces: unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    cases = [CASES[name] for name in names]

    tmp = Path(tempfile.mkdtemp(prefix="klaviyo-bench-"))
    try:
        source_dir = export_ref(args.ref, tmp) if args.ref else None
        info = {
            "machine": machine(),
            "connector": source_description(args.ref),
            "connector_module": verify_source(source_dir),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        m = info["machine"]
        print(f"# destination-klaviyo benchmark ({info['started']})\n")
        print(
            f"Machine: nproc {m['nproc']}, {m['cpu_model']}, {m['memory']} RAM; Python {m['python']}; "
            f"airbyte-cdk {m['airbyte_cdk']}; {m['platform']}"
        )
        print(f"Connector: {info['connector']} (imported from {info['connector_module']})")
        results: dict[str, Any] = {"info": info, "unthrottled": [], "throttled": []}
        if args.mode in ("unthrottled", "both"):
            startup = startup_cpu(tmp, source_dir)
            results["startup_cpu_s"] = {"connector": startup[0], "baseline": startup[1]}
            print(f"Start-up CPU (no rows): connector {startup[0]:.2f} s, baseline {startup[1]:.2f} s")
            for rows in sizes:
                results["unthrottled"].append(unthrottled(rows, args.repeat, tmp, source_dir, startup))
                _progress(results["unthrottled"][-1])
            print_unthrottled(results["unthrottled"])
        if args.mode in ("throttled", "both"):
            for case in cases:
                rows = getattr(args, ROWS_OPTIONS[case.name][0])
                load_before = _load()
                results["throttled"].append(throttled(case, rows, args, tmp, source_dir))
                results["throttled"][-1]["load_average"] = [load_before, _load()]
                _progress(results["throttled"][-1])
            print_throttled(results["throttled"])
        problems = [p for group in ("unthrottled", "throttled") for r in results[group] for p in r["problems"]]
        if problems:
            print("\nProblems (figures above may not mean what they say):")
            for problem in problems:
                print(f"- {problem}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        if args.keep:
            print(f"\nRun directory kept: {tmp}")
        return 1 if problems else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


# Each case's run-size option (argparse dest) and what its default amounts to.
ROWS_OPTIONS = {
    "profiles": ("profile_rows", "160 s at the ceiling"),
    "memberships": ("membership_rows", "160 s at the ceiling"),
    "events": ("event_rows", "160 s at the ceiling"),
    "subscriptions": ("subscription_rows", "128 s at the ceiling"),
    "bigprofiles": ("bigprofile_rows", "about 520 jobs of 5 MB: three and a half 60-s windows"),
    "manylists": ("manylist_rows", "over 500 lists, 507 jobs at the fewest"),
    "unsubscribes": ("unsubscribe_rows", "200 s at the ceiling"),
    "suppressions": ("suppression_rows", "200 s at the ceiling"),
    "deletions": ("deletion_rows", "about 200 s at one a second"),
}


def _load() -> Optional[list[float]]:
    """The 1-, 5- and 15-minute load averages (other engineers' work shares these cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _progress(result: dict) -> None:
    sys.stderr.write(f"done: {json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, default=str)}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
