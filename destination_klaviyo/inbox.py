"""Reading stdin on a thread of its own, so that the message loop never sits in a read.

A state may be echoed the moment Klaviyo accepted the rows before it. A loop that reads stdin
itself can only do that between two lines: while the source is quiet (a slow query, the next page
of a big table) or the platform holds its side of the pipe, accepted states would sit unechoed,
and a SIGTERM in that silence would lose them. Here a thread reads stdin in large chunks (one
system call per megabyte: few handovers of the interpreter lock, none per row) and the main thread
splits them into lines. When no line is there, the main thread waits on `wakeup`, which a chunk
arriving, a request finishing (dispatch.py) and SIGTERM (stopping.py) all set; woken without a
line, or after a quiet second, it gets None and can echo states, log progress, or stop.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, BinaryIO, Iterator, Optional

CHUNK_BYTES = 1 << 20
MAX_CHUNKS_AHEAD = 8  # read-ahead is bounded: at most this many chunks wait for the main thread
IDLE_SECONDS = 1.0  # with nothing arriving, the loop still gets a None this often


class _End:
    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


class Inbox:
    """Lines of a binary stream read ahead on a thread; iterating yields each line, or None when
    woken (or idle for IDLE_SECONDS) with no complete line to give."""

    def __init__(self, stream: BinaryIO, wakeup: Optional[threading.Event] = None) -> None:
        self.stream = stream
        self.wakeup = wakeup if wakeup is not None else threading.Event()
        self._chunks: deque[Any] = deque()
        self._space = threading.Event()
        self._waiting = False  # the main thread sleeps on `wakeup` for a chunk
        self._reader_blocked = False  # the reader sleeps on `_space`
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="airbyte-stdin", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reading ahead (a reader blocked in a read of stdin stays there until the process ends)."""
        self._closed = True
        self._space.set()

    # -- the reader thread ------------------------------------------------------------------------
    def _read(self) -> None:
        end = _End()
        try:
            # read1: whatever the pipe holds, up to CHUNK_BYTES, in one system call
            read = self.stream.read1 if hasattr(self.stream, "read1") else self.stream.read
            while not self._closed:
                chunk = read(CHUNK_BYTES)
                if not chunk:
                    break
                self._chunks.append(chunk)
                if self._waiting:
                    self.wakeup.set()
                if len(self._chunks) >= MAX_CHUNKS_AHEAD:
                    self._space.clear()
                    self._reader_blocked = True
                    while len(self._chunks) > MAX_CHUNKS_AHEAD // 2 and not self._closed:
                        self._space.wait(0.5)
                    self._reader_blocked = False
        except BaseException as exc:  # handed to the main thread, in order, after the chunks before it
            end = _End(exc)
        finally:
            self._chunks.append(end)
            self.wakeup.set()

    # -- the main thread --------------------------------------------------------------------------
    def _take(self) -> Any:
        """The next chunk, an _End, or None if none came before a wake-up or IDLE_SECONDS.

        A wake-up set while the main thread was busy is not lost: it is answered with a None at
        once (the caller then looks at what finished, which costs little if nothing did)."""
        chunks = self._chunks
        if not chunks:
            if not self.wakeup.is_set():
                self._waiting = True
                if not chunks:
                    self.wakeup.wait(IDLE_SECONDS)
                self._waiting = False
            self.wakeup.clear()
            if not chunks:
                return None
        chunk = chunks.popleft()
        if self._reader_blocked and len(chunks) <= MAX_CHUNKS_AHEAD // 2:
            self._space.set()
        return chunk

    def __iter__(self) -> Iterator[Optional[bytes]]:
        parts: list[bytes] = []  # the line being assembled: a long line is joined once, not per chunk
        while True:
            chunk = self._take()
            if chunk is None:
                yield None
                continue
            if isinstance(chunk, _End):
                if parts:
                    yield b"".join(parts)
                if chunk.error is not None:
                    raise chunk.error
                return
            newline = chunk.find(b"\n")
            if newline < 0:
                parts.append(chunk)
                continue
            parts.append(chunk[:newline])
            lines = chunk[newline + 1 :].split(b"\n")
            yield b"".join(parts)
            parts = [lines.pop()]
            yield from lines
