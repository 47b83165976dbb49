"""Identifier lookups and sets of people: filter building, batching, match order, keep-sets."""

import pytest

from destination_klaviyo.client import any_filter
from destination_klaviyo.identity import Identities, find_profiles, resolve
from integration_tests.klaviyo_emulator.filters import Condition, parse_filter


def test_any_filter_quotes_every_value_so_klaviyos_parser_reads_them_back():
    values = ["plain@example.com", 'say "hi"@example.com', "back\\slash", "a,b", "it's", "Ünïcødé ✓"]
    text = any_filter("email", values)
    assert text.startswith("any(email,[") and text.endswith("])")
    (node,) = parse_filter(text)
    assert isinstance(node, Condition) and node.op == "any" and node.field == "email"
    assert [v.value for v in node.value] == values


@pytest.mark.parametrize("count", [0, 101])
def test_any_filter_refuses_an_empty_or_oversized_list(count):
    with pytest.raises(ValueError):
        any_filter("email", [f"u{i}" for i in range(count)])


class FakeProfiles:
    """get_profiles over a fixed set of profiles, evaluating `any(field,[...])` like Klaviyo."""

    def __init__(self, profiles):
        self.profiles = profiles
        self.filters = []

    def get_profiles(self, filter):
        self.filters.append(filter)
        (node,) = parse_filter(filter)
        wanted = {v.value for v in node.value}
        for profile in self.profiles:
            value = profile["id"] if node.field == "id" else profile["attributes"].get(node.field)
            if value in wanted:
                yield profile


def profile(pid, **attributes):
    return {"type": "profile", "id": pid, "attributes": attributes}


def test_lookups_go_100_values_a_request_and_deduplicate():
    client = FakeProfiles([profile(f"P{i}", external_id=f"x{i}") for i in range(250)])
    found = find_profiles(client, "external_id", [f"x{i}" for i in range(250)] + ["x0", "x1", "nobody"])
    assert len(client.filters) == 3  # 251 distinct values: 100 + 100 + 51
    assert all(len(parse_filter(f)[0].value) <= 100 for f in client.filters)
    assert found["x7"] == ["P7"] and "nobody" not in found


def test_a_row_resolves_to_the_profile_a_bulk_import_would_match_id_then_email_then_phone_then_external_id():
    client = FakeProfiles(
        [
            profile("BY_ID"),
            profile("BY_EMAIL", email="ada@example.com", external_id="e1"),
            profile("BY_PHONE", phone_number="+14155550100"),
            profile("BY_EXT", external_id="e2"),
        ]
    )
    rows = [
        {"id": "BY_ID", "email": "ada@example.com"},  # the id wins
        {"id": "GONE", "email": "ada@example.com"},  # an unknown id falls through to the email
        {"email": "nobody@example.com", "phone_number": "+14155550100"},
        {"external_id": "e2"},
        {"external_id": "e1", "email": "other@example.com"},  # an email not found falls through
        {"email": "ghost@example.com"},  # not in Klaviyo
    ]
    assert resolve(client, rows) == [["BY_ID"], ["BY_EMAIL"], ["BY_PHONE"], ["BY_EXT"], ["BY_EMAIL"], []]


def test_fields_are_looked_up_only_for_rows_the_earlier_fields_left_unresolved():
    client = FakeProfiles([profile("A", email="a@example.com", external_id="1")])
    resolve(client, [{"email": "a@example.com", "external_id": "1"}])
    assert [parse_filter(f)[0].field for f in client.filters] == ["email"]


def test_an_email_found_in_another_case_still_resolves():
    # Klaviyo may store an address in another case than the warehouse sends; the lookup result is
    # matched back case-insensitively.
    client = FakeProfiles([profile("A", email="ada@example.com")])
    client.get_profiles = lambda filter: iter([profile("A", email="ada@example.com")])
    assert resolve(client, [{"email": "Ada@Example.COM"}]) == [["A"]]


def test_identities_keep_a_member_when_any_identifier_matches():
    kept = Identities()
    kept.add({"email": "Ada@Example.com", "external_id": "7"})
    kept.add({"id": "P9"})
    kept.add({"phone_number": "+33612345678"})
    assert kept.includes(profile("X", email="ada@example.com"))
    assert kept.includes(profile("X", external_id="7", email="other@example.com"))
    assert kept.includes(profile("P9"))
    assert kept.includes(profile("X", phone_number="+33612345678"))
    assert not kept.includes(profile("X", email="bob@example.com", external_id="8", phone_number=None))
    assert not kept.only_profile_ids()
    kept.discard({"external_id": "7", "email": "ada@example.com"})
    assert not kept.includes(profile("X", external_id="7"))


def test_identities_of_profile_ids_alone_need_no_member_identifiers():
    kept = Identities()
    kept.add({"id": "P1"})
    other = Identities()
    other.add({"id": "P2"})
    kept |= other
    assert kept.only_profile_ids() and len(kept) == 2
