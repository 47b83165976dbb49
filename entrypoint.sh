#!/usr/bin/env bash
# The image's entry point, as in Airbyte's Python connector template: run the console script.
set -e
exec destination-klaviyo "$@"
