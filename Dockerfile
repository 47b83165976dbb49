# syntax=docker/dockerfile:1
# destination-klaviyo on Airbyte's Python connector base image, in the shape of Airbyte's template
# (airbytehq/airbyte docker-images/Dockerfile.python-connector): build in one stage, install into a
# clean base image, run the console script through /entrypoint.sh, set AIRBYTE_ENTRYPOINT (the
# platform launches the container through it, not through ENTRYPOINT) and the io.airbyte labels.
#
# Kept equal to metadata.yaml by unit_tests/test_packaging.py: BASE_IMAGE == connectorBuildOptions.baseImage
# (4.0.2 ships CPython 3.11, the interpreter requirements.lock is compiled for), io.airbyte.name ==
# dockerRepository, io.airbyte.version == dockerImageTag == the package version. Linted with hadolint
# in the same test. integration_tests/test_wheel_install.py repeats the install steps below without
# Docker (build the wheel; fresh environment; requirements.lock; the wheel with --no-deps; entrypoint.sh).
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

# Stage 1: build the connector's wheel from the sources (no dependencies, those come from the lock).
FROM ${BASE_IMAGE} AS builder
WORKDIR /build
COPY pyproject.toml README.md ./
COPY destination_klaviyo ./destination_klaviyo
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /build/dist .

# Stage 2: the image Airbyte runs. Locked runtime dependencies first (a cached layer while only the
# connector changes), then the wheel alone.
FROM ${BASE_IMAGE}
WORKDIR /airbyte/integration_code
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY --from=builder /build/dist/ /tmp/dist/
RUN pip install --no-cache-dir --no-deps /tmp/dist/destination_klaviyo-0.2.0-py3-none-any.whl \
    && rm -rf /tmp/dist
COPY --chmod=755 entrypoint.sh /entrypoint.sh

# The base image's non-root user (uid 1000), as in Airbyte's template.
# hadolint ignore=DL3066
USER airbyte

ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"
ENTRYPOINT ["/entrypoint.sh"]

LABEL io.airbyte.name=airbyte/destination-klaviyo
LABEL io.airbyte.version=0.2.0
