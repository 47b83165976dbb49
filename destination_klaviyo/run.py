"""Console script `destination-klaviyo`, the entry point Airbyte's image runs."""

import sys

from destination_klaviyo.destination import DestinationKlaviyo


def run() -> None:
    DestinationKlaviyo().run(sys.argv[1:])


if __name__ == "__main__":
    run()
