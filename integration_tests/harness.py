"""Run the connector the way Airbyte does (its console script as a process, messages on stdin)
against the bundled Klaviyo emulator, also run as a process. Shared by the tests and the demo."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import requests

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR = Path(sys.executable).parent / "destination-klaviyo"
EMULATOR_KEY = "pk_emulator_demo_key"


class EmulatorProcess:
    """`python -m integration_tests.klaviyo_emulator` on a free loopback port."""

    def __init__(self, api_keys: Iterable[str] = (EMULATOR_KEY,), extra_args: Iterable[str] = ()) -> None:
        args = [sys.executable, "-m", "integration_tests.klaviyo_emulator", "--host", "127.0.0.1", "--port", "0"]
        for key in api_keys:
            args += ["--api-key", key]
        self.args = args + list(extra_args)
        self.process: Optional[subprocess.Popen[str]] = None
        self.url = ""

    def __enter__(self) -> "EmulatorProcess":
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("KLAVIYO_EMULATOR_LISTENING "):
            self.process.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def state(self, include_bodies: bool = False) -> dict[str, Any]:
        params = {"include_bodies": "1"} if include_bodies else {}
        return requests.get(f"{self.url}/__emulator__/state", params=params, timeout=60).json()

    def reset(self) -> None:
        requests.post(f"{self.url}/__emulator__/reset", timeout=30).raise_for_status()

    def api(self, method: str, path: str, body: Optional[dict[str, Any]] = None, **params: Any) -> Any:
        """Call the emulated Klaviyo API itself, e.g. to seed lists and members before a sync."""
        headers = {
            "Authorization": f"Klaviyo-API-Key {EMULATOR_KEY}",
            "revision": "2026-04-15",
            "Content-Type": "application/vnd.api+json",
        }
        response = requests.request(method, f"{self.url}{path}", json=body, params=params, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_list(self, name: str) -> str:
        return self.api("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": name}}})["data"]["id"]

    def add_members(self, list_id: str, profile_ids: Iterable[str]) -> None:
        ids = list(profile_ids)
        for start in range(0, len(ids), 1000):
            data = [{"type": "profile", "id": p} for p in ids[start : start + 1000]]
            self.api("POST", f"/api/lists/{list_id}/relationships/profiles", {"data": data})

    def requests_since(self, count: int) -> list[dict[str, Any]]:
        """The API requests logged after the first `count` (those made before a connector run)."""
        return self.state()["requests"][count:]

    def fault(self, **spec: Any) -> None:
        requests.post(f"{self.url}/__emulator__/faults", json=spec, timeout=30).raise_for_status()


SECRET_MASK = "**********"


def contains_null(value: Any) -> bool:
    """Whether a JSON value holds a null at any depth (the connector must never send one)."""
    if value is None:
        return True
    if isinstance(value, dict):
        return any(contains_null(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_null(v) for v in value)
    return False


def leaked(secret: str, *texts: str) -> bool:
    """Whether a secret appears in any output (the canary check every connector run goes through)."""
    return bool(secret) and secret != SECRET_MASK and any(secret in text for text in texts)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        out = []
        # Lines end at "\n" only, as the platform reads them: str.splitlines() would also cut at
        # U+0085, U+2028 and other characters JSON carries unescaped (a column named "\x85" did).
        for line in self.stdout.split("\n"):
            line = line.strip(" \t\r")
            if line:
                out.append(json.loads(line))  # every stdout line must be an Airbyte message
        return out

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of_type("STATE")]

    @property
    def logs(self) -> list[str]:
        return [m["log"]["message"] for m in self.of_type("LOG")]

    @property
    def traces(self) -> list[dict[str, Any]]:
        return [m["trace"] for m in self.of_type("TRACE")]


def run_connector(
    command: str,
    *,
    config: Optional[dict[str, Any]] = None,
    catalog: Optional[dict[str, Any]] = None,
    stdin: str = "",
    origin: Optional[str] = None,
    timeout: float = 600,
    via_pipes: bool = False,
) -> Run:
    """Run the console script. With `via_pipes`, `--config` and `--catalog` are pipes made by bash's
    process substitution (`--config <(printf ...)`), which can be read only once, as in the README."""
    env = {k: v for k, v in os.environ.items() if k != "KLAVIYO_API_ORIGIN"}
    if origin is not None:
        env["KLAVIYO_API_ORIGIN"] = origin
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(CONNECTOR), command]
        if via_pipes:
            script = '"$CONNECTOR" "$COMMAND"'
            env.update(CONNECTOR=str(CONNECTOR), COMMAND=command)
            for flag, value in (("config", config), ("catalog", catalog)):
                if value is not None:
                    env[f"{flag.upper()}_JSON"] = json.dumps(value)
                    script += f' --{flag} <(printf %s "${flag.upper()}_JSON")'
            args = ["bash", "-c", script]
        else:
            for flag, value in (("config", config), ("catalog", catalog)):
                if value is not None:
                    (Path(tmp) / f"{flag}.json").write_text(json.dumps(value))
                    args += [f"--{flag}", str(Path(tmp) / f"{flag}.json")]
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
    # Canary: every scenario of the suite checks that the key it configured never comes back out.
    key = str((config or {}).get("private_api_key") or "")
    if leaked(key, done.stdout, done.stderr):
        raise AssertionError(f"the connector printed the configured API key (command {command})")
    return Run(done.returncode, done.stdout, done.stderr)


class LiveConnector:
    """`destination-klaviyo write` as a running process: feed stdin piece by piece, watch stdout as
    it comes, signal it. For scenarios that act in the middle of a sync (a SIGTERM, a quiet source).
    Every stdout line is kept; the canary check runs on exit."""

    def __init__(self, config: dict[str, Any], catalog: dict[str, Any], origin: str) -> None:
        self.config = config
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        (tmp / "config.json").write_text(json.dumps(config))
        (tmp / "catalog.json").write_text(json.dumps(catalog))
        env = {k: v for k, v in os.environ.items() if k != "KLAVIYO_API_ORIGIN"}
        env["KLAVIYO_API_ORIGIN"] = origin
        self.process = subprocess.Popen(
            [str(CONNECTOR), "write", "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )
        self.lines: list[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def read_until(self, wanted: Any, timeout: float = 120) -> dict[str, Any]:
        """Read stdout until a message for which `wanted(message)` is true; fail after `timeout`
        seconds without one (a guard against a hang, not a measurement)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such message within {timeout} s; stdout so far: {self.lines[-20:]}") from None
            if line is None:
                raise AssertionError(f"the connector exited first; stdout: {self.lines[-20:]}")
            self.lines.append(line)
            message = json.loads(line)
            if wanted(message):
                return message

    def wait(self, timeout: float = 120) -> int:
        """Wait for the exit (failing after `timeout`), collect the rest of stdout, run the canary."""
        code = self.process.wait(timeout=timeout)
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        key = str(self.config.get("private_api_key") or "")
        if leaked(key, "".join(self.lines), "".join(self._stderr)):
            raise AssertionError("the connector printed the configured API key")
        return code

    @property
    def run(self) -> Run:
        return Run(self.process.returncode, "".join(self.lines), "".join(self._stderr))

    def __enter__(self) -> "LiveConnector":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._tmp.cleanup()


def configured_stream(
    name: str,
    mode: str = "append",
    *,
    object_name: Optional[str] = None,
    namespace: Optional[str] = None,
    generation_id: Optional[int] = None,
    minimum_generation_id: Optional[int] = None,
    sync_id: Optional[int] = None,
    primary_key: Optional[list[list[str]]] = None,
) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "name": name,
        "json_schema": {"type": "object"},
        "supported_sync_modes": ["full_refresh", "incremental"],
    }
    if namespace:
        stream["namespace"] = namespace
    configured: dict[str, Any] = {"stream": stream, "sync_mode": "incremental", "destination_sync_mode": mode}
    if object_name:
        configured["destination_object_name"] = object_name
    for field, value in (
        ("generation_id", generation_id),
        ("minimum_generation_id", minimum_generation_id),
        ("sync_id", sync_id),
        ("primary_key", primary_key),
    ):
        if value is not None:
            configured[field] = value
    return configured


def platform_stream(
    name: str, mode: str = "append", *, replace: bool = False, generation: int = 3, **kw: Any
) -> dict[str, Any]:
    """A configured stream as Airbyte builds it for a destination with `supportsRefreshes`.

    The platform turns `overwrite` into `append` and marks a replace (full refresh overwrite, Refresh
    with removal, Clear) with minimum_generation_id == generation_id > 0; otherwise the minimum is 0
    (airbyte-platform CatalogGenerationSetter, DefaultProtocolSerializer).
    """
    return configured_stream(
        name, mode, generation_id=generation, minimum_generation_id=generation if replace else 0, sync_id=777, **kw
    )


def platform_state(
    stream: str, cursor: Any, state_id: int, source_count: int, namespace: Optional[str] = None
) -> dict[str, Any]:
    """A STREAM state as the platform hands it to a destination: with its `id` and the source's count."""
    descriptor: dict[str, Any] = {"name": stream}
    if namespace:
        descriptor["namespace"] = namespace
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": descriptor, "stream_state": {"cursor": cursor}},
            "sourceStats": {"recordCount": float(source_count)},
            "id": state_id,
        },
    }


def catalog(*streams: dict[str, Any]) -> dict[str, Any]:
    return {"streams": list(streams)}


def record(stream: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1_700_000_000_000}}


def stream_state(stream: str, cursor: Any) -> dict[str, Any]:
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"cursor": cursor}},
            "sourceStats": {"recordCount": 0.0},
        },
    }


def stream_status(stream: str, status: str = "COMPLETE") -> dict[str, Any]:
    """What the platform sends a destination once a stream's source side is done."""
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": 1_700_000_000_000,
            "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
        },
    }


def lines(messages: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)
