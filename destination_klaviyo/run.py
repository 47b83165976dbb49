"""Console script `destination-klaviyo`, the entry point Airbyte's image runs."""

import sys

from destination_klaviyo.destination import DestinationKlaviyo
from destination_klaviyo.errors import StopRequested
from destination_klaviyo.stopping import exit_stopped


def run() -> None:
    try:
        DestinationKlaviyo().run(sys.argv[1:])
    except StopRequested as stop:  # SIGTERM: exit 143 now, without joining requests still retrying
        exit_stopped(stop)


if __name__ == "__main__":
    run()
