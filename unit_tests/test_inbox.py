"""The stdin reader: lines come out whole and in order however the chunks fall, and a wake-up with
no line is a None, not a wait."""

import threading

import pytest

from destination_klaviyo import inbox as inbox_module
from destination_klaviyo.inbox import Inbox


class Chunks:
    """A binary stream whose reads return the given pieces, then end (or raise)."""

    def __init__(self, pieces, error=None, gate=None):
        self.pieces = list(pieces)
        self.error = error
        self.gate = gate  # the reader waits on it before the last piece

    def read1(self, size):
        if len(self.pieces) == 1 and self.gate is not None:
            self.gate.wait(timeout=30)
        if self.pieces:
            return self.pieces.pop(0)
        if self.error is not None:
            raise self.error
        return b""


def lines_of(inbox):
    return [line for line in inbox if line is not None]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"a\nbb\nccc\n"],
        [b"a\nb", b"b\ncc", b"c\n"],
        [b"a", b"\n", b"bb\n", b"c", b"c", b"c"],  # the last line has no newline
        [b"a\n\nbb\n", b"ccc\n"],  # an empty line is passed on (read_messages skips it)
    ],
)
def test_lines_come_out_whole_and_in_order_however_the_chunks_fall(pieces):
    got = lines_of(Inbox(Chunks(pieces)))
    assert [line for line in got if line] == [b"a", b"bb", b"ccc"]


def test_a_line_longer_than_many_chunks_is_joined_once():
    pieces = [b"x" * 1000 for _ in range(50)] + [b"\nnext\n"]
    assert lines_of(Inbox(Chunks(pieces))) == [b"x" * 50_000, b"next", b""]


def test_a_read_error_comes_after_the_lines_before_it():
    inbox = iter(Inbox(Chunks([b"a\nb\n"], error=OSError("pipe"))))
    assert [next(inbox), next(inbox)] == [b"a", b"b"]
    with pytest.raises(OSError):
        [line for line in inbox if line is not None]


def test_a_wake_up_with_no_line_is_a_none(monkeypatch):
    monkeypatch.setattr(inbox_module, "IDLE_SECONDS", 30.0)
    gate = threading.Event()
    inbox = Inbox(Chunks([b"first\n", b"last\n"], gate=gate))
    lines = iter(inbox)
    assert next(lines) == b"first"
    inbox.wakeup.set()  # what a finished request does, here while the loop was busy
    assert next(lines) is None  # answered at once, not after IDLE_SECONDS; "last" is still held back
    gate.set()
    assert [line for line in lines if line is not None] == [b"last", b""]
