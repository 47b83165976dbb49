"""Airbyte's standard connector tests (airbyte-cdk 7.39.1), driven by acceptance-test-config.yml and
metadata.yaml, against the bundled Klaviyo emulator.

Two ways in, as Airbyte offers them:

- `TestDestinationKlaviyoStandardSuite` subclasses `DestinationTestSuiteBase`: `spec`/`check` run in
  process for every config of acceptance-test-config.yml (good: `check` succeeds against the emulator;
  bad: it reports FAILED), plus the spec checks and secret-leak checks the suite adds. Its image tests
  (build the image, run it) need a Docker engine and are skipped without one.
- `test_airbyte_cdk_connector_test_cli` runs `airbyte-cdk connector test` itself, the command Airbyte's
  CI runs, on a copy of the connector's test inputs in a folder named `destination-klaviyo` (the CLI
  derives the connector's name, and so its test class, from the folder's name; a clone can be called
  anything). Its image tests are deselected: that copy holds no sources to build an image from.

The good config's key is the emulator's; KLAVIYO_API_ORIGIN points the connector at the emulator.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from airbyte_cdk.models.connector_metadata import MetadataFile
from airbyte_cdk.test.standard_tests import DestinationTestSuiteBase
from airbyte_cdk.utils.docker import build_connector_image

from destination_klaviyo.destination import DestinationKlaviyo
from integration_tests.harness import ROOT

# The suite's fixtures (connector image overrides, ...) and its scenario parametrization.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

GOOD_SCENARIO = "emulator_config"


@functools.cache
def docker_engine_available() -> bool:
    """A docker CLI is not enough (the CDK's own skip only looks for the CLI): the engine must answer."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class TestDestinationKlaviyoStandardSuite(DestinationTestSuiteBase):
    connector = DestinationKlaviyo
    connector_name = "destination-klaviyo"  # not the clone's folder name

    @pytest.fixture(autouse=True)
    def _against_the_emulator(self, request, emulator, monkeypatch):
        if request.node.get_closest_marker("image_tests"):
            if not docker_engine_available():
                pytest.skip("image test: no Docker engine here (`docker info` fails)")
            scenario = request.node.callspec.params.get("scenario") if hasattr(request.node, "callspec") else None
            if scenario is not None and scenario.id == GOOD_SCENARIO:
                pytest.skip("the container can reach neither the loopback emulator nor KLAVIYO_API_ORIGIN")
        monkeypatch.setenv("KLAVIYO_API_ORIGIN", emulator.url)

    @classmethod
    def _connector_image(cls, connector_image_override: str | None, connector_base_image_override: str | None) -> str:
        """Build from this repository's Dockerfile (the CDK would build Airbyte's template instead, with
        the clone's folder name as the console script's name)."""
        if connector_image_override:
            return connector_image_override
        root = cls.get_connector_root_dir().absolute()
        return build_connector_image(
            connector_name=cls.connector_name,
            connector_directory=root,
            metadata=MetadataFile.from_file(root / "metadata.yaml"),
            tag="dev-latest",
            no_verify=False,
            dockerfile_override=root / "Dockerfile",
            base_image_override=connector_base_image_override,
        )


def test_image_tests_would_build_this_repositorys_dockerfile(monkeypatch):
    """Without an engine the image tests skip; this checks what they would build with one."""
    calls = []
    monkeypatch.setattr(sys.modules[__name__], "build_connector_image", lambda **kwargs: calls.append(kwargs) or "img")
    assert TestDestinationKlaviyoStandardSuite._connector_image(None, None) == "img"
    (call,) = calls
    assert call["connector_name"] == "destination-klaviyo"
    assert call["dockerfile_override"] == ROOT / "Dockerfile"
    assert call["connector_directory"] == ROOT
    assert TestDestinationKlaviyoStandardSuite._connector_image("prebuilt:tag", None) == "prebuilt:tag"


def _copy_test_inputs(stage: Path) -> None:
    """What `airbyte-cdk connector test` reads: metadata.yaml, acceptance-test-config.yml and the configs."""
    stage.mkdir(parents=True)
    for name in ("metadata.yaml", "acceptance-test-config.yml"):
        shutil.copy2(ROOT / name, stage / name)
    shutil.copytree(ROOT / "integration_tests" / "standard_configs", stage / "integration_tests" / "standard_configs")


def test_airbyte_cdk_connector_test_cli(emulator, tmp_path):
    stage = tmp_path / "destination-klaviyo"
    _copy_test_inputs(stage)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS"}}
    env["KLAVIYO_API_ORIGIN"] = emulator.url
    args = [
        str(Path(sys.executable).parent / "airbyte-cdk"),
        "connector",
        "test",
        str(stage),
        "--pytest-arg=-m",
        "--pytest-arg=not image_tests",
        "--pytest-arg=-p",
        "--pytest-arg=no:cacheprovider",
    ]
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]

    # The CLI writes JUnit results into the connector folder: check what ran and passed.
    report = ET.parse(stage / "build" / "test-results" / "standard-tests-junit.xml").getroot()
    outcome: dict[str, str] = {}
    for case in report.iter("testcase"):
        kinds = {child.tag for child in case}
        outcome[case.attrib["name"]] = (
            "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        )
    passed = {name for name, result in outcome.items() if result == "passed"}
    assert "failed" not in outcome.values(), outcome
    for config in ("emulator_config", "wrong_key_config", "invalid_config", "missing_key_config"):
        assert f"test_check['{config}' Test Scenario]" in passed, sorted(passed)
    for config in ("emulator_config", "wrong_key_config"):
        assert f"test_config_matches_spec['{config}' Test Scenario]" in passed, sorted(passed)
    # The check against the emulator really happened (the good scenario called GET /api/accounts).
    assert ("GET", "/api/accounts", 200) in {
        (r["method"], r["path"], r["status"]) for r in emulator.state()["requests"]
    }
