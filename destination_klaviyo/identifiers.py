"""Whom a row names: its identifier columns read into Klaviyo's identifiers, or why they cannot be.

Identifier columns are `email`, `phone_e164`/`phone_number` and `external_id` (and, where a surface
accepts one, `klaviyo_profile_id` as the resource `id`). An email must look like one; a phone
number must be usable (below). A row without any identifier is rejected, with a hint when one of
its column names looks like a misnamed identifier (`Email`, `mobile`: IDENTIFIER_ALIASES).

Phone numbers: one function (`phone_e164`) for every surface. A number already written in E.164 is
taken as it is (the common case, one regex). Without a default region, spaces, dots, dashes and
parentheses are removed and the rest must be E.164. With `default_phone_region`, libphonenumber
(`phonenumbers`) reads national formats for that region and any international format, and the
number must be *valid* for its region, not merely possible: validity checks the number plan
(length and prefixes per region), so a digit too many or a typo in the area code is caught before
Klaviyo stores a number no one can text. A row whose phone is unusable but that has another
identifier is sent without the phone, and the caller is told (`Identifiers.dropped`), unless
`strict_phone` asks for such rows to be rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import phonenumbers

from destination_klaviyo.rejections import Omission, Rejection

PHONE_COLUMNS = ("phone_e164", "phone_number")
IDENTIFIER_COLUMNS = ("email", *PHONE_COLUMNS, "external_id")
PROFILE_ID_COLUMN = "klaviyo_profile_id"

# Deliberately loose: one @, no spaces, a dot in the domain. Klaviyo decides the rest, and its
# per-profile 400 is handled by dropping just that row.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
PHONE_PUNCTUATION = re.compile(r"[\s().\-]")


@dataclass(frozen=True)
class PhoneRules:
    """How phone columns are read: `default_phone_region` (ISO 3166 alpha-2) and `strict_phone`."""

    default_region: Optional[str] = None
    strict: bool = False


DEFAULT_PHONE_RULES = PhoneRules()


class Identifiers(dict[str, Any]):
    """A row's identifiers (Klaviyo attribute -> value), and the unusable phone left out, if any.

    A dict, so that callers which only need the identifiers use it as one; `dropped` is read from
    the class (None) unless a phone was dropped, which keeps the common row free of extra work.
    """

    dropped: Optional[Omission] = None


def as_text(column: str, value: Any, allow_numbers: bool) -> Union[str, Rejection]:
    if isinstance(value, str):
        return value
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = type(value).__name__
    return Rejection("invalid_value", f"column '{column}' must be a string, got {kind}")


# (columns, in order of preference) -> rendered key, and whether a number is accepted as text.
# A phone given as a number (a CSV column typed as an integer) is read as its digits.
_IDENTIFIERS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("email",), "email", False),
    (PHONE_COLUMNS, "phone_number", True),
    (("external_id",), "external_id", True),
)
_PROFILE_ID: tuple[tuple[str, ...], str, bool] = ((PROFILE_ID_COLUMN,), "id", False)
_ID_GROUPS = _IDENTIFIERS + (_PROFILE_ID,)


def phone_e164(text: str, region: Optional[str]) -> Optional[str]:
    """The number in E.164 form, or None when it is not a usable phone number (see the module doc)."""
    if E164.match(text):
        return text
    if region is None:
        text = PHONE_PUNCTUATION.sub("", text)
        return text if E164.match(text) else None
    # Slow (tens of microseconds), so only for numbers not already written in E.164.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)  # type: ignore[no-any-return]


def _phone_rejection(column: str, rules: PhoneRules) -> Rejection:
    if rules.default_region is None:
        return Rejection(
            "invalid_phone", f"column '{column}' is not an E.164 phone number (+, country code, up to 15 digits)"
        )
    return Rejection(
        "invalid_phone",
        f"column '{column}' is not a valid phone number (E.164, or a national number of region {rules.default_region})",
    )


# Column names people give an identifier, squeezed (lower case; no spaces, _, - or .) -> the column
# the connector reads. Only ever suggested, when a row has no identifier: columns are never renamed,
# because `mobile` or `user_id` may well be meant as a custom property.
IDENTIFIER_ALIASES = {
    **dict.fromkeys(("phone", "phonee164", "phonenumbere164", "e164", "phonenum", "telephone", "tel"), "phone_number"),
    **dict.fromkeys(
        ("mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "cellnumber", "sms"), "phone_number"
    ),
    **dict.fromkeys(("mail", "emailaddress", "emailaddr", "emails"), "email"),
    **dict.fromkeys(("extid", "externalidentifier", "externalkey", "userid", "customerid"), "external_id"),
    **dict.fromkeys(("profileid", "klaviyoid", "klaviyoprofile"), PROFILE_ID_COLUMN),
}
_SQUEEZE = re.compile(r"[\s_.\-]+")
_HINTS: dict[tuple[tuple[str, ...], tuple[str, ...]], Optional[str]] = {}


def identifier_hint(columns: tuple[str, ...], accepted: tuple[str, ...]) -> Optional[str]:
    """ "did you mean `email`?" for a row with no identifier, from its column names alone.

    A column matches an accepted identifier column when they are equal ignoring case, spaces,
    underscores, dashes and dots (`Email`, `Phone-Number`, `externalId`), or through
    IDENTIFIER_ALIASES. Computed once per set of column names (rows of a stream share them), and
    only for rows rejected as missing an identifier: the hot path never comes here.
    """
    key = (columns, accepted)
    if key in _HINTS:
        return _HINTS[key]
    wanted = {_SQUEEZE.sub("", column).lower(): column for column in accepted}
    guesses = []
    for column in columns:
        if column in accepted:
            continue  # there, but blank
        squeezed = _SQUEEZE.sub("", column).lower()
        meant = wanted.get(squeezed) or IDENTIFIER_ALIASES.get(squeezed)
        if meant in accepted:
            guesses.append(f"did you mean `{meant}`? the row has a column `{column}`")
    hint = "; ".join(guesses) or None
    if len(_HINTS) < 10_000:  # bounded, like the column plans (rendering.py)
        _HINTS[key] = hint
    return hint


def missing_identifier(data: Mapping[str, Any], accepted: tuple[str, ...], detail: str) -> Rejection:
    """The `missing_identifier` rejection, with a hint when a column looks like a misnamed identifier."""
    hint = identifier_hint(tuple(data), accepted)
    if hint is None:
        return Rejection("missing_identifier", detail)
    return Rejection("missing_identifier", f"{detail} ({hint})", hint)


def identifiers(
    data: Mapping[str, Any], accept_profile_id: bool, phones: PhoneRules = DEFAULT_PHONE_RULES
) -> Union[Identifiers, Rejection]:
    found = Identifiers()
    bad_phone: Optional[Rejection] = None
    for columns, key, allow_numbers in _ID_GROUPS if accept_profile_id else _IDENTIFIERS:
        for column in columns:  # the first column of the group with a non-blank value
            value = data.get(column)
            if value is not None and not (value.__class__ is str and not value.strip()):
                break
        else:
            continue
        text = value if value.__class__ is str else as_text(column, value, allow_numbers=allow_numbers)
        if key == "phone_number":
            phone = phone_e164(text, phones.default_region) if text.__class__ is str else None
            if phone is None:
                bad_phone = _phone_rejection(column, phones)
                continue
            text = phone
        elif text.__class__ is Rejection:
            return text  # type: ignore[return-value]
        elif key == "email" and not EMAIL.match(text):
            return Rejection("invalid_email", f"column '{column}' is not an email address")
        found[key] = text
    if bad_phone is not None:
        # Only the phone is wrong: the row still reaches its profile through another identifier.
        if phones.strict or not found:
            return bad_phone
        found.dropped = Omission(
            "invalid_phone_dropped", f"{bad_phone.detail}; the row was sent without a phone number"
        )
    return found
