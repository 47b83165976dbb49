"""The message loop with a fake client: what must hold whatever the threads do."""

from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

from destination_klaviyo.config import parse_config
from destination_klaviyo.dispatch import Dispatcher
from destination_klaviyo.writer import KlaviyoWriter


class FakeClient:
    def __init__(self):
        self.jobs = []

    def create_bulk_import_job(self, body):
        self.jobs.append(body)
        return f"job{len(self.jobs)}"

    def close(self):
        pass


def catalog():
    stream = {"name": "customers", "json_schema": {}, "supported_sync_modes": ["incremental"]}
    configured = {"stream": stream, "sync_mode": "incremental", "destination_sync_mode": "append"}
    return ConfiguredAirbyteCatalogSerializer.load({"streams": [configured]})


def messages(rows, every):
    for i in range(rows):
        yield {"type": "RECORD", "record": {"stream": "customers", "data": {"email": f"u{i}@example.com"}}}
        if (i + 1) % every == 0:
            state = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "customers"}, "stream_state": {"c": i}}}
            yield {"type": "STATE", "state": state}


def test_the_last_states_come_out_even_if_a_finished_request_went_uncounted(monkeypatch):
    # The writer skips re-checking states while the dispatcher's finished count is unchanged. If an
    # increment were ever lost, the end of input must still release every state.
    monkeypatch.setattr(Dispatcher, "_count_completion", lambda self, future, body_bytes=0: None)
    config = parse_config({"private_api_key": "pk", "default_surface": "profiles"})
    writer = KlaviyoWriter(config, catalog(), FakeClient, raw_config={"private_api_key": "pk"})
    try:
        out = list(writer.write(messages(25, every=5)))
    finally:
        writer.close()
    states = [m["state"]["stream"]["stream_state"]["c"] for m in out if m["type"] == "STATE"]
    assert states == [4, 9, 14, 19, 24]
