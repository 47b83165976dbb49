"""Airbyte destination for Klaviyo."""

__version__ = "0.2.0"

from destination_klaviyo.destination import DestinationKlaviyo  # noqa: E402

__all__ = ["DestinationKlaviyo", "__version__"]
