"""Why a row, or a value of it, is not sent: what rendering a row can come to (`Rendered`).

A rendered row is a body (bytes) that goes into a batch as it is; an `Amended` body that goes too,
while the sink reports the value it left out (its `Omission`); or a `Rejection`, counted and
reported instead of sent. Every surface, the sinks, the targets and the report share these types,
so they sit below every module that renders. A reason's detail names columns, never values, and is
always writable: a column name can hold a lone UTF-16 surrogate, which `printable` escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class Rejection:
    """Why a record was not sent. `detail` names columns, never values: rows hold personal data.

    `hint` is advice about the stream rather than the row (a column that looks like a misnamed
    identifier): the report gives it once per stream, on top of the per-row lines.
    """

    code: str
    detail: str
    hint: Optional[str] = None

    def __post_init__(self) -> None:
        _writable_detail(self)


@dataclass(frozen=True)
class Omission:
    """A value left out of a row that is still sent (a phone number that is not one), and why."""

    code: str
    detail: str

    def __post_init__(self) -> None:
        _writable_detail(self)


def _writable_detail(reason: Union[Rejection, Omission]) -> None:
    # A column name can itself hold a lone surrogate; the log line naming it must still be writable.
    if not reason.detail.isascii():
        object.__setattr__(reason, "detail", printable(reason.detail))


@dataclass(frozen=True)
class Amended:
    """A rendered row that is sent without a value of the record: the sink reports the omission."""

    body: bytes
    omission: Omission


Rendered = Union[bytes, Rejection, Amended]


def printable(text: str) -> str:
    """`text` with anything UTF-8 cannot encode (lone surrogates) written as a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
