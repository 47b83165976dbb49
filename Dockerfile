# syntax=docker/dockerfile:1
# Follows Airbyte's Python connector template (airbytehq/airbyte docker-images/Dockerfile.python-connector):
# build in one stage, copy /usr/local into a clean base image, run the console script through
# /entrypoint.sh, and set AIRBYTE_ENTRYPOINT, which the platform requires to launch the container.
# BASE_IMAGE must equal data.connectorBuildOptions.baseImage in metadata.yaml (a unit test checks it).
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

FROM ${BASE_IMAGE} AS builder
WORKDIR /airbyte/integration_code
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY destination_klaviyo ./destination_klaviyo
RUN pip install --no-cache-dir --no-deps .

FROM ${BASE_IMAGE}
WORKDIR /airbyte/integration_code
COPY --from=builder /usr/local /usr/local
COPY --chmod=755 entrypoint.sh /entrypoint.sh
USER airbyte
ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"
ENTRYPOINT ["/entrypoint.sh"]
LABEL io.airbyte.name=airbyte/destination-klaviyo
LABEL io.airbyte.version=0.1.0
