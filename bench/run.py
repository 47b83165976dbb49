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
    simulated time). Runs per surface: profiles (bulk import jobs; ceiling 150 jobs/min x 10,000 =
    25,000 profiles/s), memberships (list_memberships_by_profile_id, POST list relationships;
    ceiling 150 calls/min x 1,000 = 2,500 ids/s), events (an orders stream to the events surface,
    Bulk Create Events; ceiling 150 requests/min x 1,000 = 2,500 events/s) and, when asked for,
    subscriptions (bulk subscribe; ceiling 750 calls/min x 1,000 = 12,500 profiles/s). Reports
    sustained items/s as % of the ceiling and the 429s the emulator sent.

Nothing is asserted: it prints numbers (and writes them as JSON with --json). Input files are
generated once per (kind, rows) into $BENCH_DATA_DIR (default: <tmp>/destination-klaviyo-bench).
`--ref REV` benchmarks the connector source of a git revision instead of the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
PROFILE_CEILING = 150 / 60 * 10_000  # bulk import jobs: 150/min steady x 10,000 profiles per job
MEMBERSHIP_CEILING = 150 / 60 * 1_000  # list relationship calls: 150/min steady x 1,000 ids per call
EVENT_CEILING = 150 / 60 * 1_000  # Bulk Create Events: 150/min steady x 1,000 events per request
SUBSCRIBE_CEILING = 750 / 60 * 1_000  # bulk subscribe calls: 750/min steady x 1,000 profiles per call
SUBSCRIBE_PATH = "/api/profile-subscription-bulk-create-jobs"
STEADY_WINDOW = 60.0
BULK_PATH = "/api/profile-bulk-import-jobs"
EVENTS_PATH = "/api/event-bulk-create-jobs"


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


def run_measured(args: list[str], stdin: Path, stdout: Path, stderr: Path, env: dict[str, str], cwd: Path) -> Measured:
    with stdin.open("rb") as source, stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(args, stdin=source, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting
    return Measured(process.returncode, wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)


class Emulator:
    """The emulator as its own process (so its CPU never counts as the connector's), on a free port."""

    def __init__(self, extra_args: list[str], log: Path) -> None:
        self.args = [
            sys.executable, "-m", "integration_tests.klaviyo_emulator",
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


def write_setup(tmp: Path, kind: str, list_id: Optional[str] = None) -> Setup:
    config: dict[str, Any] = {"private_api_key": API_KEY}
    stream = datagen.STREAMS[kind]
    if kind == "profiles":
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
    else:
        config["default_surface"] = "list_memberships_by_profile_id"
        if list_id:
            config["list_mappings"] = [{"target": datagen.BENCH_LIST, "list_id": list_id}]
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
    setup: Setup, data: Path, origin: str, source_dir: Optional[Path], tmp: Path, label: str
) -> tuple[Measured, Output]:
    args = [str(CONNECTOR), "write", "--config", str(setup.config), "--catalog", str(setup.catalog)]
    stdout, stderr = tmp / f"{label}.stdout", tmp / f"{label}.stderr"
    measured = run_measured(args, data, stdout, stderr, connector_env(origin, source_dir), tmp)
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


def throttled(kind: str, rows: int, args: argparse.Namespace, tmp: Path, source_dir: Optional[Path]) -> dict:
    data = datagen.ensure_file(kind, rows)
    states = datagen.count_states(data)
    scale = args.time_scale
    extra = ["--rate-limits", "klaviyo", "--latency-ms", str(args.latency_ms), "--time-scale", str(scale)]
    label = f"throttled-{kind}-{rows}"
    with Emulator(extra, tmp / f"{label}.emulator.log") as emulator:
        list_id = emulator.create_list(datagen.BENCH_LIST) if kind in ("memberships", "subscriptions") else None
        setup = write_setup(tmp, kind, list_id)
        measured, output = run_connector(setup, data, emulator.url, source_dir, tmp, label)
        stats = emulator.stats(timeline=True)
    problems = check_run(label, measured, output, rows, states)
    limits = stats["rate_limits"]
    epoch = limits["epoch_unix"]
    if kind == "profiles":
        ceiling = PROFILE_CEILING
        wanted = lambda method, path: method == "POST" and path == BULK_PATH  # noqa: E731
    elif kind == "events":
        ceiling = EVENT_CEILING
        wanted = lambda method, path: method == "POST" and path == EVENTS_PATH  # noqa: E731
        if stats["events"] != rows:
            problems.append(f"{label}: emulator holds {stats['events']} events, expected {rows}")
    elif kind == "subscriptions":
        ceiling = SUBSCRIBE_CEILING
        wanted = lambda method, path: method == "POST" and path == SUBSCRIBE_PATH  # noqa: E731
    else:
        ceiling = MEMBERSHIP_CEILING
        wanted = lambda method, path: method == "POST" and path.endswith("/relationships/profiles")  # noqa: E731
    points = [
        ((ts - epoch) * scale, items or 0)
        for ts, method, path, status, items in stats["timeline"]
        if wanted(method, path) and status < 400
    ]
    throttled_for_op = sum(
        1 for _, method, path, status, _ in stats["timeline"] if wanted(method, path) and status == 429
    )
    accepted_items = sum(n for _, n in points)
    if accepted_items != rows:
        problems.append(f"{label}: emulator accepted {accepted_items} items, expected {rows}")
    rate, how, sustained = sustained_rate(points)
    simulated_wall = measured.wall * scale
    return {
        "kind": kind,
        "rows": rows,
        "time_scale": scale,
        "latency_ms": args.latency_ms,
        "wall_s": measured.wall,
        "simulated_s": simulated_wall,
        "requests_accepted": len(points),
        "items_per_request": accepted_items / len(points) if points else None,
        "throttled_429": stats["throttled"],
        "throttled_429_by_window": limits.get("throttled_by_window"),
        "throttled_429_this_endpoint": throttled_for_op,
        "status_counts": stats["status_counts"],
        "max_in_flight": stats.get("max_in_flight"),
        "average_per_s": rows / simulated_wall,
        "sustained_per_s": rate,
        "sustained_how": how,
        "is_sustained": sustained,
        "ceiling_per_s": ceiling,
        "sustained_pct": (rate / ceiling * 100) if rate else None,
        "average_pct": rows / simulated_wall / ceiling * 100,
        "connector_cpu_s": measured.cpu,
        "connector_cpu_share": measured.cpu / measured.wall,
        "connector_peak_rss_mb": measured.rss_mb,
        "emulator_cpu_s": emulator.usage.cpu if emulator.usage else None,
        "problems": problems,
    }


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
        "| surface | rows | time scale | latency ms | wall s (real) | sustained /s (simulated) | ceiling /s "
        "| % of ceiling | average % | 429s | requests | items/request | max in flight | connector CPU share "
        "| peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['kind']} | {fmt(r['rows'])} | {fmt(r['time_scale'], 0)} | {fmt(r['latency_ms'], 0)} "
            f"| {fmt(r['wall_s'], 1)} | {fmt(r['sustained_per_s'], 0)} | {fmt(r['ceiling_per_s'], 0)} "
            f"| {fmt(r['sustained_pct'], 1)}%{'' if r['is_sustained'] else ' (not sustained)'} "
            f"| {fmt(r['average_pct'], 1)}% | {fmt(r['throttled_429'])} "
            f"| {fmt(r['requests_accepted'])} | {fmt(r['items_per_request'], 0)} "
            f"| {fmt(r['max_in_flight'])} | {fmt(r['connector_cpu_share'] * 100, 0)}% "
            f"| {fmt(r['connector_peak_rss_mb'], 0)} |"
        )
    for r in results:
        windows = r.get("throttled_429_by_window") or {}
        detail = ", ".join(f"{n} {w}" for w, n in windows.items() if n)
        print(
            f"- {r['kind']}: sustained rate measured over {r['sustained_how']}"
            + (f"; 429s by window: {detail}" if detail else "")
            + "."
        )
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
    parser.add_argument(
        "--profile-rows",
        type=int,
        default=4_000_000,
        help="throttled profiles run size (default 4,000,000: 160 s at the ceiling)",
    )
    parser.add_argument(
        "--membership-rows",
        type=int,
        default=400_000,
        help="throttled memberships run size (default 400,000: 160 s at the ceiling)",
    )
    parser.add_argument(
        "--event-rows",
        type=int,
        default=400_000,
        help="throttled events run size (default 400,000: 160 s at the ceiling)",
    )
    parser.add_argument(
        "--subscription-rows",
        type=int,
        default=1_600_000,
        help="throttled subscriptions run size (default 1,600,000: 128 s at the ceiling)",
    )
    parser.add_argument(
        "--surfaces",
        default="profiles,memberships,events",
        help="throttled: comma-separated profiles,memberships,events,subscriptions",
    )
    parser.add_argument("--ref", help="benchmark destination_klaviyo/ as of this git revision (default: working tree)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (connector stdout/stderr)")
    args = parser.parse_args()
    sizes = args.rows or [100_000]

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
            for kind in [s.strip() for s in args.surfaces.split(",") if s.strip()]:
                sizes_by_kind = {
                    "profiles": args.profile_rows,
                    "memberships": args.membership_rows,
                    "subscriptions": args.subscription_rows,
                }
                rows = sizes_by_kind.get(kind, args.event_rows)
                results["throttled"].append(throttled(kind, rows, args, tmp, source_dir))
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


def _progress(result: dict) -> None:
    sys.stderr.write(f"done: {json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, default=str)}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
