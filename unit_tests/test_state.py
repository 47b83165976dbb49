from destination_klaviyo.state import StateLedger


def stream_state(name, value):
    return {
        "type": "STATE",
        "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": {"c": value}}},
    }


def test_state_waits_for_every_record_before_it():
    ledger = StateLedger()
    seqs = [ledger.next_record((None, "a")) for _ in range(3)]
    ledger.add_state(stream_state("a", 1))
    assert list(ledger.release(lowest_unaccepted_seq=seqs[2])) == []
    released = list(ledger.release(lowest_unaccepted_seq=None))
    assert [m["state"]["stream"]["stream_state"]["c"] for m in released] == [1]


def test_states_release_in_order_up_to_the_lowest_pending_record():
    ledger = StateLedger()
    ledger.next_record((None, "a"))
    ledger.add_state(stream_state("a", 1))
    pending = ledger.next_record((None, "a"))
    ledger.add_state(stream_state("a", 2))
    out = list(ledger.release(lowest_unaccepted_seq=pending))
    assert [m["state"]["stream"]["stream_state"]["c"] for m in out] == [1]
    assert ledger.pending_count() == 1


def test_record_count_is_per_stream_scope():
    ledger = StateLedger()
    for _ in range(2):
        ledger.next_record((None, "a"))
    ledger.next_record((None, "b"))
    ledger.add_state(stream_state("a", 1))
    ledger.add_state(stream_state("b", 1))
    ledger.add_state(stream_state("a", 2))
    out = list(ledger.release(None))
    assert [m["state"]["destinationStats"]["recordCount"] for m in out] == [2.0, 1.0, 0.0]


def test_global_state_counts_everything_and_keeps_unknown_fields():
    ledger = StateLedger()
    ledger.next_record((None, "a"))
    ledger.next_record((None, "b"))
    message = {
        "type": "STATE",
        "state": {"type": "GLOBAL", "global": {"shared_state": {}}, "id": 7, "sourceStats": {"recordCount": 2.0}},
    }
    ledger.add_state(message)
    (out,) = list(ledger.release(None))
    assert out["state"]["id"] == 7 and out["state"]["sourceStats"] == {"recordCount": 2.0}
    assert out["state"]["destinationStats"] == {"recordCount": 2.0, "rejectedRecordCount": 0.0}


def test_rejections_count_against_the_state_that_covers_their_record():
    from destination_klaviyo.batching import Entry

    ledger = StateLedger()
    a, b = (None, "a"), (None, "b")
    first = [ledger.next_record(a) for _ in range(3)]
    other = ledger.next_record(b)
    ledger.count_rejected(Entry(first[0], "a", 1, a))  # rejected while rendering, before its state came
    ledger.add_state(stream_state("a", 1))
    ledger.next_record(a)
    ledger.add_state(stream_state("a", 2))
    ledger.count_rejected(Entry(first[2], "a", 3, a))  # Klaviyo refused it later, from a worker
    ledger.count_rejected(Entry(other, "b", 1, b))  # stream b's state has not arrived yet
    ledger.add_state(stream_state("b", 1))
    stats = [m["state"]["destinationStats"] for m in ledger.release(None)]
    assert stats == [
        {"recordCount": 1.0, "rejectedRecordCount": 2.0},
        {"recordCount": 1.0, "rejectedRecordCount": 0.0},
        {"recordCount": 0.0, "rejectedRecordCount": 1.0},
    ]


def test_a_global_state_covers_rejections_of_every_stream():
    from destination_klaviyo.batching import Entry

    ledger = StateLedger()
    seqs = [ledger.next_record((None, name)) for name in ("a", "b", "b")]
    ledger.count_rejected(Entry(seqs[1], "b", 1, (None, "b")))
    ledger.add_state({"type": "STATE", "state": {"type": "GLOBAL", "global": {"shared_state": {}}}})
    (out,) = ledger.release(None)
    assert out["state"]["destinationStats"] == {"recordCount": 2.0, "rejectedRecordCount": 1.0}
