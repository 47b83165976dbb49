"""The Dockerfile's install, run without Docker (no engine here).

Builds the wheel from exactly the files the Dockerfile's builder stage copies, creates a fresh virtual
environment, installs requirements.lock and then the wheel with --no-deps (the image's two pip
commands, which unit_tests/test_packaging.py pins), and runs `spec`, `check` and a small `write`
through entrypoint.sh, the image's entry point, against the emulator. The only differences from the
image, both for speed: pip may use its download cache (the image passes --no-cache-dir), and skips
compiling bytecode (--no-compile; Python compiles on first import instead).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration_tests.harness import EMULATOR_KEY, Run, catalog, configured_stream, lines, record, stream_state

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]

pytestmark = pytest.mark.slow


@dataclass
class Image:
    """The pieces of the emulated image: its wheel, its environment and its entry point."""

    wheel: Path
    venv: Path
    workdir: Path
    entrypoint: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, origin: str | None = None) -> dict[str, str]:
        """A clean environment: the image's PATH, nothing from the dev venv or the work tree."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "KLAVIYO_API_ORIGIN"}
        }
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
        if origin:
            env["KLAVIYO_API_ORIGIN"] = origin
        return env

    def run(
        self,
        *args: str,
        config: dict | None = None,
        catalog: dict | None = None,
        stdin: str = "",
        origin: str | None = None,
    ) -> Run:
        argv = [str(self.entrypoint), *args]
        if config is not None:
            (self.workdir / "config.json").write_text(json.dumps(config))
            argv += ["--config", str(self.workdir / "config.json")]
        if catalog is not None:
            (self.workdir / "catalog.json").write_text(json.dumps(catalog))
            argv += ["--catalog", str(self.workdir / "catalog.json")]
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env(origin), cwd=self.workdir, timeout=300
        )
        return Run(done.returncode, done.stdout, done.stderr)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    tmp = tmp_path_factory.mktemp("image")

    # Builder stage: COPY pyproject.toml README.md ./ ; COPY destination_klaviyo ./destination_klaviyo ;
    # pip wheel --no-deps --wheel-dir dist . (a copy, so no stale build/ of the work tree can leak in).
    build = tmp / "build"
    build.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, build / name)
    shutil.copytree(
        ROOT / "destination_klaviyo", build / "destination_klaviyo", ignore=shutil.ignore_patterns("__pycache__")
    )
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "dist"), "."], cwd=build
    )
    (wheel,) = (tmp / "dist").glob("*.whl")

    # Final stage: a fresh environment; COPY requirements.lock ./ ; pip install -r requirements.lock ;
    # pip install --no-deps <wheel> ; COPY --chmod=755 entrypoint.sh /entrypoint.sh.
    venv, workdir = tmp / "venv", tmp / "integration_code"
    workdir.mkdir()
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    shutil.copy2(ROOT / "requirements.lock", workdir / "requirements.lock")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--quiet", "--no-compile", "-r", "requirements.lock"], cwd=workdir)
    _run([*pip, "install", "--quiet", "--no-compile", "--no-deps", str(wheel)], cwd=workdir)
    entrypoint = tmp / "entrypoint.sh"
    shutil.copy2(ROOT / "entrypoint.sh", entrypoint)
    entrypoint.chmod(0o755)
    return Image(wheel=wheel, venv=venv, workdir=workdir, entrypoint=entrypoint)


# -- the wheel -----------------------------------------------------------------------------------


def test_the_wheel_is_the_file_the_dockerfile_installs(image):
    assert image.wheel.name == f"destination_klaviyo-{VERSION}-py3-none-any.whl"
    assert f"/tmp/dist/{image.wheel.name}" in (ROOT / "Dockerfile").read_text()


def test_the_wheel_holds_every_module_the_spec_and_the_console_script(image):
    with zipfile.ZipFile(image.wheel) as whl:
        names = set(whl.namelist())
        dist_info = f"destination_klaviyo-{VERSION}.dist-info"
        entry_points = whl.read(f"{dist_info}/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(whl.read(f"{dist_info}/METADATA").decode())
    sources = {f"destination_klaviyo/{p.name}" for p in (ROOT / "destination_klaviyo").glob("*.py")}
    assert sources <= names
    assert "destination_klaviyo/spec.json" in names
    assert not [n for n in names if n.startswith(("unit_tests/", "integration_tests/", "secrets/"))]
    assert re.search(r"^destination-klaviyo = destination_klaviyo\.run:run$", entry_points, re.M)
    runtime = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(runtime) == sorted(PYPROJECT["project"]["dependencies"])


def test_the_lock_satisfies_the_wheel(image):
    """requirements.lock (installed first) holds every dependency the wheel declares, at a matching version."""
    out = _run([str(image.python), "-m", "pip", "--disable-pip-version-check", "check"], cwd=image.workdir)
    assert "No broken requirements found" in out


def test_the_console_script_runs_the_installed_wheel_not_the_work_tree(image):
    assert shutil.which("destination-klaviyo", path=image.env()["PATH"]) == str(
        image.venv / "bin" / "destination-klaviyo"
    )
    out = _run(
        [str(image.python), "-c", "import destination_klaviyo; print(destination_klaviyo.__file__)"],
        cwd=image.workdir,
        env=image.env(),
    )
    installed = Path(out.strip())
    assert installed.is_relative_to(image.venv) and "site-packages" in installed.parts


# -- the entry point -----------------------------------------------------------------------------


def test_spec_through_the_entrypoint(image):
    run = image.run("spec")
    assert run.returncode == 0, run.stderr
    (message,) = run.of_type("SPEC")
    assert "private_api_key" in message["spec"]["connectionSpecification"]["properties"]


def test_check_through_the_entrypoint(image, emulator):
    run = image.run("check", config={"private_api_key": EMULATOR_KEY}, origin=emulator.url)
    assert run.returncode == 0, run.stderr
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}


def test_write_through_the_entrypoint(image, emulator):
    messages = [
        record("customers", {"email": "ada@example.com", "first_name": "Ada", "plan": "pro"}),
        record("customers", {"email": "grace@example.com", "first_name": "Grace"}),
        stream_state("customers", 2),
    ]
    run = image.run(
        "write",
        config={"private_api_key": EMULATOR_KEY, "streams": [{"stream": "customers", "surface": "profiles"}]},
        catalog=catalog(configured_stream("customers", "append_dedup")),
        stdin=lines(messages),
        origin=emulator.url,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.states) == 1, run.stdout[-4000:]
    (state,) = run.states
    assert state["stream"]["stream_state"] == {"cursor": 2}
    assert state["destinationStats"]["recordCount"] == 2
    profiles = {p["attributes"]["email"]: p["attributes"] for p in emulator.state()["profiles"]}
    assert set(profiles) == {"ada@example.com", "grace@example.com"}
    assert profiles["ada@example.com"]["first_name"] == "Ada"
    assert profiles["ada@example.com"]["properties"] == {"plan": "pro"}
