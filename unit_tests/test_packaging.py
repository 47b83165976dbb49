"""The Dockerfile cannot be built here (no Docker engine), so check it statically against
metadata.yaml and pyproject.toml, and run the exact entry point it uses outside a container."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import ConnectorMetadataDefinitionV0

import destination_klaviyo

ROOT = Path(__file__).resolve().parent.parent
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_metadata_is_valid_for_airbyte():
    ConnectorMetadataDefinitionV0.model_validate(METADATA)
    data = METADATA["data"]
    assert data["connectorType"] == "destination"
    assert data["dockerRepository"] == "airbyte/destination-klaviyo"
    assert data["allowedHosts"]["hosts"] == ["a.klaviyo.com"]
    assert data["supportsDataActivation"] is True
    assert data["supportsRefreshes"] is True  # the platform then sends STREAM_STATUS COMPLETE (mirror needs it)


def test_versions_agree():
    version = PYPROJECT["project"]["version"]
    assert METADATA["data"]["dockerImageTag"] == version == destination_klaviyo.__version__
    assert f"LABEL io.airbyte.version={version}" in DOCKERFILE
    assert f"LABEL io.airbyte.name={METADATA['data']['dockerRepository']}" in DOCKERFILE


def test_dockerfile_uses_the_metadata_base_image_and_airbyte_entrypoint():
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert base == METADATA["data"]["connectorBuildOptions"]["baseImage"]
    assert re.match(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$", base)
    assert 'ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"' in DOCKERFILE
    assert 'ENTRYPOINT ["/entrypoint.sh"]' in DOCKERFILE
    assert "COPY --chmod=755 entrypoint.sh /entrypoint.sh" in DOCKERFILE
    assert "pip install --no-cache-dir -r requirements.lock" in DOCKERFILE
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path


def test_console_script_is_the_one_the_entrypoint_runs():
    assert PYPROJECT["project"]["scripts"] == {"destination-klaviyo": "destination_klaviyo.run:run"}
    assert 'exec destination-klaviyo "$@"' in (ROOT / "entrypoint.sh").read_text()


def test_entrypoint_script_runs_spec_outside_a_container():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        ["bash", str(ROOT / "entrypoint.sh"), "spec"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"type":"SPEC"' in done.stdout
