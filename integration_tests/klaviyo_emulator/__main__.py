"""CLI: ``python -m integration_tests.klaviyo_emulator [--host H] [--port P] [--api-key K ...]``.

Prints exactly one line, ``KLAVIYO_EMULATOR_LISTENING http://HOST:PORT``, to
stdout once the socket is bound (so a parent process can use ``--port 0``
and read the real port), then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from types import FrameType
from typing import Optional, Sequence

from .server import DEFAULT_API_KEY, EmulatorServer
from .store import DEFAULT_LIST_CREATE_DAILY_LIMIT

LISTENING_PREFIX = "KLAVIYO_EMULATOR_LISTENING"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m integration_tests.klaviyo_emulator",
        description="Local Klaviyo API emulator for integration tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="bind port; 0 picks a free port (default 0)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted private API key; repeatable (default: {DEFAULT_API_KEY})",
    )
    parser.add_argument(
        "--list-create-daily-limit",
        type=int,
        default=DEFAULT_LIST_CREATE_DAILY_LIMIT,
        help=f"Create List calls allowed per UTC day before 429 (default {DEFAULT_LIST_CREATE_DAILY_LIMIT})",
    )
    parser.add_argument("--log-requests", action="store_true", help="log one line per request to stderr")
    parser.add_argument(
        "--job-processing-seconds",
        type=float,
        default=0.0,
        metavar="X",
        help="profile bulk import jobs stay 'queued' for X/2 s, 'processing' until X s, and only then "
        "apply their profiles and list memberships ('complete'); default 0 = applied before the 202",
    )
    throttling = parser.add_argument_group(
        "throttled mode (opt-in; without these flags the emulator answers at once and never rate-limits)"
    )
    throttling.add_argument(
        "--rate-limits",
        choices=("off", "klaviyo"),
        default="off",
        help="'klaviyo': enforce each endpoint's burst (1 s) and steady (1 min) fixed windows from "
        "Klaviyo's OpenAPI spec, answering 429 + Retry-After past them (default off)",
    )
    throttling.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="every /api answer leaves no earlier than this many (simulated) ms after its request "
        "arrived; only that request's thread waits (default 0)",
    )
    throttling.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second for --rate-limits and --latency-ms: windows last 1/X "
        "and 60/X real seconds and latency is divided by X, so real-time ceilings are X times "
        "Klaviyo's (default 1 = real time)",
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="for long benchmark runs: request bodies are not kept (request log, job records), a "
        "stored profile keeps only its identifiers, and the garbage collector runs rarely; everything "
        "is still validated, matched and counted",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    if args.job_processing_seconds < 0:
        parser.error("--job-processing-seconds must not be negative")
    return serve_until_stopped(server_from_args(args))


def server_from_args(args: argparse.Namespace) -> EmulatorServer:
    """The server `build_parser`'s options describe (bench/seeded_emulator.py seeds one first)."""
    if args.lean:
        # Millions of stored objects make CPython's default collector (a young collection every 700
        # allocations, full ones as the heap grows) cost about as much as the requests themselves.
        # The store holds no reference cycles, so collect rarely. Process-wide, hence CLI-only.
        gc.set_threshold(100_000, 50, 1_000)
    return EmulatorServer(
        api_keys=args.api_keys or [DEFAULT_API_KEY],
        host=args.host,
        port=args.port,
        list_create_daily_limit=args.list_create_daily_limit,
        log_stream=sys.stderr if args.log_requests else None,
        rate_limits=args.rate_limits,
        latency_ms=args.latency_ms,
        time_scale=args.time_scale,
        lean=args.lean,
        job_processing_seconds=args.job_processing_seconds,
    )


def serve_until_stopped(emu: EmulatorServer) -> int:
    """Print the listening line, serve until SIGTERM or SIGINT, and close."""

    def _stop(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.stdout.write(f"{LISTENING_PREFIX} {emu.url}\n")
    sys.stdout.flush()
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
