"""CLI: ``python -m integration_tests.klaviyo_emulator [--host H] [--port P] [--api-key K ...]``.

Prints exactly one line, ``KLAVIYO_EMULATOR_LISTENING http://HOST:PORT``, to
stdout once the socket is bound (so a parent process can use ``--port 0``
and read the real port), then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    emu = EmulatorServer(
        api_keys=args.api_keys or [DEFAULT_API_KEY],
        host=args.host,
        port=args.port,
        list_create_daily_limit=args.list_create_daily_limit,
        log_stream=sys.stderr if args.log_requests else None,
    )

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
