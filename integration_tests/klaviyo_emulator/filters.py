"""Parser and evaluator for Klaviyo's ``?filter=`` expression syntax.

Grammar (what Klaviyo's filtering guide documents, see README.md):

    expression := term ("," term)*            # top-level commas mean AND
    term       := op "(" field ["," value] ")"
                | ("and"|"or") "(" expression ")"
                | "not" "(" term ")"
    value      := string | list | number | true | false | null | datetime
    list       := "[" [value ("," value)*] "]"
    string     := '"' ... '"'  |  "'" ... "'"

Strings may be wrapped in double or single quotes.  Inside a string a
backslash starts an escape: ``\\"`` ``\\'`` ``\\\\`` ``\\/`` ``\\b`` ``\\f``
``\\n`` ``\\r`` ``\\t`` ``\\xHH`` ``\\uHHHH`` ``\\UHHHHHHHH``.  That set covers
both ``json.dumps`` output and Python ``repr()`` output (Klaviyo's own MCP
server builds filter values with ``repr``).  Any other backslash sequence, an
unterminated string, or unbalanced brackets is a 400 ``invalid`` error on the
``filter`` parameter, so a connector that forgets to escape is caught.

Datetimes are written *unquoted* (``greater-than(updated,2023-01-01T00:00:00Z)``),
as the guide shows; a quoted datetime is rejected for datetime fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional, Union

from .errors import ApiError

_SIMPLE_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")
_PUNCT = "(),[]"


class FilterError(ApiError):
    """A malformed or disallowed filter: 400 ``invalid`` on ``filter``."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, parameter="filter")


@dataclass(frozen=True)
class Quoted:
    """A string literal (kept distinct from bare words such as datetimes)."""

    value: str


@dataclass(frozen=True)
class Bare:
    """An unquoted token: identifier, number, boolean, null or datetime."""

    text: str


@dataclass(frozen=True)
class Punct:
    """One of ``( ) , [ ]``."""

    char: str


Token = Union[Quoted, Bare, Punct]


@dataclass(frozen=True)
class Condition:
    """``op(field, value)``; ``value`` is already decoded to Python."""

    op: str
    field: str
    value: Any
    has_value: bool


@dataclass(frozen=True)
class BoolNode:
    """``and(...)`` / ``or(...)`` / ``not(...)`` over child nodes."""

    op: str
    children: tuple["Node", ...]


Node = Union[Condition, BoolNode]


def _read_string(text: str, pos: int) -> tuple[str, int]:
    """Decode one quoted string starting at ``text[pos]`` (the quote)."""
    quote = text[pos]
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(text):
                break
            esc = text[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
                continue
            if esc in _HEX_ESCAPES:
                width = _HEX_ESCAPES[esc]
                digits = text[i + 2 : i + 2 + width]
                if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                    raise FilterError(f"Invalid filter provided. Bad \\{esc} escape in string literal at position {i}.")
                try:
                    out.append(chr(int(digits, 16)))
                except (ValueError, OverflowError):
                    raise FilterError(
                        f"Invalid filter provided. Bad \\{esc} escape in string literal at position {i}."
                    ) from None
                i += 2 + width
                continue
            raise FilterError(
                f"Invalid filter provided. Unknown escape sequence '\\{esc}' in string literal "
                f"at position {i}; escape a literal backslash as '\\\\'."
            )
        out.append(ch)
        i += 1
    raise FilterError("Invalid filter provided. Unterminated string literal.")


def tokenize(text: str) -> list[Token]:
    """Split a filter expression into tokens."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCT:
            tokens.append(Punct(ch))
            i += 1
        elif ch in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Quoted(value))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _PUNCT and text[i] not in "\"'":
                i += 1
            tokens.append(Bare(text[start:i]))
    return tokens


def _decode_bare(text: str) -> Any:
    """Turn an unquoted literal into a Python value."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "null":
        return None
    if _NUMBER_RE.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if _DATE_RE.match(text):
        dt = parse_datetime(text)
        if dt is not None:
            return dt
    raise FilterError(f"Invalid filter provided. Could not parse value '{text}'; strings must be quoted.")


def parse_datetime(text: str) -> Optional[datetime]:
    """Parse an ISO-8601 datetime/date; naive values are taken as UTC."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


class _Parser:
    """Recursive-descent parser over the token list."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Optional[Token]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise FilterError("Invalid filter provided. Unexpected end of filter. Verify your parentheses match.")
        self.pos += 1
        return tok

    def expect(self, char: str) -> None:
        tok = self.next()
        if tok != Punct(char):
            raise FilterError(f"Invalid filter provided. Expected '{char}'. Verify your parentheses match.")

    def expression(self) -> list[Node]:
        nodes = [self.term()]
        while self.peek() == Punct(","):
            self.pos += 1
            nodes.append(self.term())
        return nodes

    def term(self) -> Node:
        tok = self.next()
        if not isinstance(tok, Bare):
            raise FilterError("Invalid filter provided. Expected an operator such as equals(...).")
        op = tok.text
        self.expect("(")
        if op in ("and", "or"):
            children = self.expression()
            self.expect(")")
            if len(children) < 2:
                raise FilterError(f"Invalid filter provided. '{op}' needs at least two conditions.")
            return BoolNode(op, tuple(children))
        if op == "not":
            child = self.term()
            self.expect(")")
            return BoolNode("not", (child,))
        field_tok = self.next()
        if not isinstance(field_tok, Bare):
            raise FilterError("Invalid filter provided. Expected a field name.")
        if self.peek() == Punct(")"):
            self.pos += 1
            return Condition(op, field_tok.text, None, False)
        self.expect(",")
        value = self.value()
        self.expect(")")
        return Condition(op, field_tok.text, value, True)

    def value(self) -> Any:
        tok = self.next()
        if isinstance(tok, Quoted):
            return tok
        if isinstance(tok, Bare):
            return _decode_bare(tok.text)
        if tok == Punct("["):
            items: list[Any] = []
            if self.peek() == Punct("]"):
                self.pos += 1
                return items
            while True:
                items.append(self.value())
                sep = self.next()
                if sep == Punct("]"):
                    return items
                if sep != Punct(","):
                    raise FilterError("Invalid filter provided. Expected ',' or ']' in list.")
        raise FilterError("Invalid filter provided. Expected a value.")


def parse_filter(text: str) -> list[Node]:
    """Parse a full ``filter`` parameter into top-level AND-ed nodes."""
    if not text or not text.strip():
        raise FilterError("Invalid filter provided. The filter is empty.")
    parser = _Parser(tokenize(text))
    nodes = parser.expression()
    if parser.peek() is not None:
        raise FilterError("Invalid filter provided. Unexpected trailing input. Verify your parentheses match.")
    return nodes


class AnyOf(tuple):
    """A multi-valued record field (e.g. a profile's suppressions): a condition holds if it holds
    for at least one of the values."""


@dataclass(frozen=True)
class FieldSpec:
    """Which operators a field allows and what kind of value it holds."""

    operators: frozenset[str]
    kind: str = "string"  # "string" | "datetime"


def _plain(value: Any, spec: FieldSpec, field: str, op: str) -> Any:
    """Unwrap a literal and check it suits the field's kind."""
    if spec.kind == "datetime":
        if isinstance(value, Quoted):
            raise FilterError(f"Invalid filter provided. Datetime values for '{field}' must not be quoted.")
        if not isinstance(value, datetime):
            raise FilterError(f"Invalid filter provided. '{field}' needs a datetime value.")
        return value
    if not isinstance(value, Quoted):
        raise FilterError(f"Invalid filter provided. '{field}' needs a quoted string value for '{op}'.")
    return value.value


def _check(node: Node, fields: Mapping[str, FieldSpec], max_list_values: Optional[int] = None) -> None:
    """Reject fields/operators the endpoint does not allow (like Klaviyo)."""
    if isinstance(node, BoolNode):
        for child in node.children:
            _check(child, fields, max_list_values)
        return
    spec = fields.get(node.field)
    if spec is None:
        raise FilterError(f"Invalid filter provided. '{node.field}' is not a filterable field for this resource.")
    if node.op not in spec.operators:
        raise FilterError(f"Invalid filter provided. '{node.op}' is not an allowed operator for '{node.field}'.")
    if not node.has_value:
        raise FilterError(f"Invalid filter provided. '{node.op}' needs a value for '{node.field}'.")
    if node.op == "any" and not isinstance(node.value, list):
        raise FilterError(f"Invalid filter provided. 'any' needs a list value for '{node.field}'.")
    values = node.value if isinstance(node.value, list) else [node.value]
    if max_list_values is not None and isinstance(node.value, list) and len(values) > max_list_values:
        raise FilterError(
            f"Invalid filter provided. '{node.op}' on '{node.field}' has {len(values)} values; "
            f"at most {max_list_values} are allowed in one list."
        )
    for v in values:
        _plain(v, spec, node.field, node.op)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "greater-than": lambda a, b: a > b,
    "greater-or-equal": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b,
    "less-or-equal": lambda a, b: a <= b,
}


def _eval(node: Node, record: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> bool:
    if isinstance(node, BoolNode):
        results = (_eval(c, record, fields) for c in node.children)
        if node.op == "and":
            return all(results)
        if node.op == "or":
            return any(results)
        return not next(iter(results))
    spec = fields[node.field]
    actual = record.get(node.field)
    if isinstance(actual, AnyOf):
        return any(_eval_one(node, value, spec) for value in actual)
    return _eval_one(node, actual, spec)


def _eval_one(node: Condition, actual: Any, spec: FieldSpec) -> bool:
    if node.op in ("equals", "any"):
        # equals with a list value (the spec's own example is
        # ``equals(name,['example'])``) is treated as membership.
        if isinstance(node.value, list):
            wanted = [_plain(v, spec, node.field, node.op) for v in node.value]
            return actual in wanted
        return actual == _plain(node.value, spec, node.field, node.op)
    if node.op in _COMPARE:
        if actual is None:
            return False
        return _COMPARE[node.op](actual, _plain(node.value, spec, node.field, node.op))
    raise FilterError(f"Invalid filter provided. Operator '{node.op}' is not supported by the emulator.")


def compile_filter(
    text: Optional[str], fields: Mapping[str, FieldSpec], *, max_list_values: Optional[int] = None
) -> Callable[[Mapping[str, Any]], bool]:
    """Parse and validate ``text``; return a predicate over field dicts.

    ``None`` (no filter) yields a predicate that accepts everything.  Errors
    are raised eagerly so the request fails before any data is read.
    ``max_list_values`` caps the number of values in one list literal (``any(f,[...])``).
    A record value wrapped in :class:`AnyOf` matches when any of its values does.
    """
    if text is None:
        return lambda record: True
    nodes = parse_filter(text)
    for node in nodes:
        _check(node, fields, max_list_values)
    return lambda record: all(_eval(n, record, fields) for n in nodes)


LIST_FILTER_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec(frozenset({"any", "equals"})),
    "id": FieldSpec(frozenset({"any", "equals"})),
    "created": FieldSpec(frozenset({"greater-than"}), "datetime"),
    "updated": FieldSpec(frozenset({"greater-than"}), "datetime"),
}

LIST_PROFILE_FILTER_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec(frozenset({"any", "equals"})),
    "phone_number": FieldSpec(frozenset({"any", "equals"})),
    "push_token": FieldSpec(frozenset({"any", "equals"})),
    "_kx": FieldSpec(frozenset({"equals"})),
    "joined_group_at": FieldSpec(
        frozenset({"greater-or-equal", "greater-than", "less-or-equal", "less-than"}), "datetime"
    ),
}


_SUPPRESSION_TIMESTAMP = FieldSpec(
    frozenset({"greater-or-equal", "greater-than", "less-or-equal", "less-than"}), "datetime"
)

# get_profiles' x-klaviyo-filters (GET /api/profiles).
PROFILE_FILTER_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec(frozenset({"any", "equals"})),
    "email": FieldSpec(frozenset({"any", "equals"})),
    "phone_number": FieldSpec(frozenset({"any", "equals"})),
    "external_id": FieldSpec(frozenset({"any", "equals"})),
    "_kx": FieldSpec(frozenset({"equals"})),
    "created": FieldSpec(frozenset({"greater-than", "less-than"}), "datetime"),
    "updated": FieldSpec(frozenset({"greater-than", "less-than"}), "datetime"),
    "subscriptions.email.marketing.list_suppressions.reason": FieldSpec(frozenset({"equals"})),
    "subscriptions.email.marketing.list_suppressions.timestamp": _SUPPRESSION_TIMESTAMP,
    "subscriptions.email.marketing.list_suppressions.list_id": FieldSpec(frozenset({"equals"})),
    "subscriptions.email.marketing.suppression.reason": FieldSpec(frozenset({"equals"})),
    "subscriptions.email.marketing.suppression.timestamp": _SUPPRESSION_TIMESTAMP,
}

# get_bulk_suppress_profiles_jobs / get_bulk_unsuppress_profiles_jobs' x-klaviyo-filters.
SUPPRESSION_JOB_FILTER_FIELDS: dict[str, FieldSpec] = {
    "status": FieldSpec(frozenset({"equals"})),
    "list_id": FieldSpec(frozenset({"equals"})),
    "segment_id": FieldSpec(frozenset({"equals"})),
}

# The spec states no maximum for the values of one ``any(...)`` list on the profile endpoints;
# other operations of the same spec say "Max of 100 items per list filter", so the emulator
# enforces 100 there (README: "Get Profiles").
MAX_PROFILE_FILTER_LIST_VALUES = 100


def quote_filter_string(value: str) -> str:
    """Quote a Python string as a filter literal (double quotes, escaped).

    Handy for tests and documentation: ``equals(name,{quote_filter_string(n)})``.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
