import orjson
import pytest

from destination_klaviyo.identifiers import PhoneRules, phone_e164
from destination_klaviyo.rejections import Amended, Rejection
from destination_klaviyo.surfaces.list_memberships_by_profile_id import render_profile_reference
from destination_klaviyo.surfaces.profiles import MAX_PROFILE_BYTES, render_profile


def rendered(data, **kwargs):
    out = render_profile(data, **kwargs)
    assert isinstance(out, bytes), out
    return orjson.loads(out)


def test_identifiers_attributes_and_properties_are_split():
    profile = rendered(
        {
            "email": "ada@example.com",
            "phone_e164": "+15005550006",
            "external_id": 42,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "organization": "Analytical Engines",
            "locale": "en-GB",
            "title": "Countess",
            "image": "https://example.com/ada.png",
            "anonymous_id": "anon-1",
            "location": {"city": "London", "country": "UK", "zip": None},
            "properties": {"tier": "gold", "dropped": None},
            "lifetime_value": 12.5,
            "tags": ["a", "b"],
        }
    )
    assert profile == {
        "type": "profile",
        "attributes": {
            "email": "ada@example.com",
            "phone_number": "+15005550006",
            "external_id": "42",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "organization": "Analytical Engines",
            "locale": "en-GB",
            "title": "Countess",
            "image": "https://example.com/ada.png",
            "anonymous_id": "anon-1",
            "location": {"city": "London", "country": "UK"},
            "properties": {"tier": "gold", "lifetime_value": 12.5, "tags": ["a", "b"]},
        },
    }


def test_nulls_are_never_sent_at_any_depth():
    profile = rendered(
        {"email": "a@b.co", "first_name": None, "nested": {"x": None, "y": {"z": None, "k": 1}}, "gone": None}
    )
    assert profile["attributes"] == {"email": "a@b.co", "properties": {"nested": {"y": {"k": 1}}}}
    assert b"null" not in render_profile({"email": "a@b.co", "location": {"city": None}})


def test_phone_number_column_is_accepted_and_phone_e164_wins():
    assert rendered({"phone_number": "+15005550006"})["attributes"] == {"phone_number": "+15005550006"}
    assert rendered({"phone_e164": "+33612345678", "phone_number": "+15005550006"})["attributes"] == {
        "phone_number": "+33612345678"
    }


def test_phone_punctuation_is_removed_and_non_e164_is_rejected():
    assert rendered({"phone_e164": "+1 (500) 555-0006"})["attributes"] == {"phone_number": "+15005550006"}
    for bad in ("5005550006", "+0123", "+1-800-FLOWERS", "+1234567890123456"):
        out = render_profile({"phone_e164": bad})
        assert isinstance(out, Rejection) and out.code == "invalid_phone", bad
        assert bad not in out.detail


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "two@@example.com", "sp ace@example.com", "@example.com"])
def test_malformed_email_is_rejected_without_quoting_it(bad):
    out = render_profile({"email": bad, "first_name": "x"})
    assert isinstance(out, Rejection) and out.code == "invalid_email"
    assert bad not in out.detail


def test_values_json_cannot_carry_are_converted_or_rejected():
    import datetime
    from decimal import Decimal

    profile = rendered(
        {
            "email": "a@b.co",
            "amount": Decimal("12.50"),
            "signed_up": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "day": datetime.date(2026, 1, 2),
        }
    )
    assert profile["attributes"]["properties"] == {
        "amount": 12.5,
        "signed_up": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
    }
    for bad in (float("nan"), float("inf"), Decimal("NaN"), [1.0, float("-inf")]):
        out = render_profile({"email": "a@b.co", "score": bad})
        assert isinstance(out, Rejection) and out.code == "invalid_value", bad
    assert isinstance(render_profile({"email": "a@b.co", "note": "nullable, null"}), bytes)  # the word is fine


def test_nulls_inside_arrays_are_dropped():
    assert rendered({"email": "a@b.co", "tags": ["a", None, {"k": None}]})["attributes"]["properties"] == {
        "tags": ["a", {}]
    }


@pytest.mark.parametrize("data", [{}, {"first_name": "x"}, {"email": None, "external_id": "  "}, {"email": ""}])
def test_record_without_identifier_is_rejected_with_a_reason(data):
    out = render_profile(data)
    assert isinstance(out, Rejection) and out.code == "missing_identifier"
    assert "email" in out.detail and "external_id" in out.detail


def test_profile_id_identifies_only_where_accepted():
    assert isinstance(render_profile({"klaviyo_profile_id": "01ABC"}), Rejection)
    profile = rendered({"klaviyo_profile_id": "01ABC", "first_name": "A"}, accept_profile_id=True)
    assert profile == {"type": "profile", "id": "01ABC", "attributes": {"first_name": "A"}}


def test_meta_and_excluded_columns_are_not_properties():
    profile = rendered(
        {"email": "a@b.co", "_ab_cdc_updated_at": "x", "_airbyte_extracted_at": 1, "list": "VIP"},
        excluded_columns=("list",),
    )
    assert profile["attributes"] == {"email": "a@b.co"}


def test_wrong_types_are_rejected_without_quoting_values():
    out = render_profile({"email": "secret@example.com", "location": "Paris"})
    assert isinstance(out, Rejection) and out.code == "invalid_value"
    assert "Paris" not in out.detail and "secret" not in out.detail
    assert isinstance(render_profile({"email": ["x"]}), Rejection)
    assert isinstance(render_profile({"email": "a@b.co", "first_name": {"a": 1}}), Rejection)
    unknown = render_profile({"email": "a@b.co", "location": {"planet": "Mars"}})
    assert isinstance(unknown, Rejection) and "planet" in unknown.detail and "Mars" not in unknown.detail


def test_top_level_column_wins_over_properties_key():
    profile = rendered({"email": "a@b.co", "properties": {"tier": "old", "keep": 1}, "tier": "new"})
    assert profile["attributes"]["properties"] == {"tier": "new", "keep": 1}


def test_oversize_profile_is_rejected():
    small = render_profile({"email": "a@b.co", "blob": "x" * (MAX_PROFILE_BYTES - 200)})
    assert isinstance(small, bytes) and len(small) <= MAX_PROFILE_BYTES
    big = render_profile({"email": "a@b.co", "blob": "x" * MAX_PROFILE_BYTES})
    assert isinstance(big, Rejection) and big.code == "profile_too_large"


def test_profile_reference_rendering():
    assert orjson.loads(render_profile_reference({"klaviyo_profile_id": "P1", "email": "x"})) == {
        "type": "profile",
        "id": "P1",
    }
    assert isinstance(render_profile_reference({"email": "a@b.co"}), Rejection)


# -- phone numbers: default_phone_region, dropping an unusable phone, strict_phone -------------------


@pytest.mark.parametrize(
    "region,national,e164",
    [
        ("US", "(415) 867-5309", "+14158675309"),
        ("US", "212.736.5000", "+12127365000"),
        ("US", "1-212-736-5000", "+12127365000"),
        ("FR", "06 12 34 56 78", "+33612345678"),
        ("FR", "01.42.68.53.00", "+33142685300"),
        ("FR", "+33 (0)6 12 34 56 78", "+33612345678"),
        ("GB", "020 7946 0958", "+442079460958"),
        ("GB", "07911 123456", "+447911123456"),
        ("DE", "030 901820", "+4930901820"),
    ],
)
def test_national_formats_become_e164_with_a_default_region(region, national, e164):
    phones = PhoneRules(default_region=region)
    assert rendered({"phone_number": national}, phones=phones)["attributes"] == {"phone_number": e164}
    # Without the option, today's rule: E.164 once punctuation is removed, so a national number fails.
    if not national.startswith("+"):
        out = render_profile({"phone_number": national})
        assert isinstance(out, Rejection) and out.code == "invalid_phone"


@pytest.mark.parametrize(
    "region,invalid",
    [
        ("US", "(415) 867-530"),  # a digit short
        ("US", "(015) 867-5309"),  # no US area code starts with 0
        ("FR", "06 12 34 56"),  # too short for a French mobile
        ("GB", "07700 900123"),  # possible, but in the range Ofcom reserves for drama: not valid
        ("DE", "12345"),
        ("US", "call me"),
        ("US", "+1 (555) 123-4567"),  # the 555 exchange outside 555-01xx is not a valid US number
    ],
)
def test_numbers_that_are_not_valid_for_their_region_are_rejected_without_quoting_them(region, invalid):
    out = render_profile({"phone_number": invalid}, phones=PhoneRules(default_region=region))
    assert isinstance(out, Rejection) and out.code == "invalid_phone", invalid
    assert region in out.detail and "phone_number" in out.detail
    assert invalid not in out.detail


def test_e164_numbers_need_no_region_and_are_taken_as_they_are():
    for phones in (PhoneRules(), PhoneRules(default_region="FR")):
        assert rendered({"phone_e164": "+15005550006"}, phones=phones)["attributes"] == {"phone_number": "+15005550006"}


def test_a_phone_given_as_a_number_is_read_as_its_digits():
    assert rendered({"phone_number": 4158675309}, phones=PhoneRules(default_region="US"))["attributes"] == {
        "phone_number": "+14158675309"
    }


def test_phone_e164_of_every_kind_of_input():
    assert phone_e164("+33612345678", None) == "+33612345678"
    assert phone_e164("+33 6 12 34 56 78", None) == "+33612345678"
    assert phone_e164("06 12 34 56 78", None) is None
    assert phone_e164("06 12 34 56 78", "FR") == "+33612345678"
    assert phone_e164("", "FR") is None and phone_e164("++", "US") is None


def test_an_unusable_phone_is_dropped_when_another_identifier_is_there():
    out = render_profile({"email": "a@b.co", "phone_number": "not a phone", "first_name": "A"})
    assert isinstance(out, Amended)
    assert out.omission.code == "invalid_phone_dropped" and "phone_number" in out.omission.detail
    assert "not a phone" not in out.omission.detail
    assert orjson.loads(out.body)["attributes"] == {"email": "a@b.co", "first_name": "A"}
    # A wrong type in the phone column is an unusable phone too.
    assert isinstance(render_profile({"external_id": "x1", "phone_e164": {"n": 1}}), Amended)
    # On list_memberships the profile id is another identifier.
    assert isinstance(
        render_profile({"klaviyo_profile_id": "P1", "phone_number": "12"}, accept_profile_id=True), Amended
    )


def test_strict_phone_rejects_and_a_phone_as_the_only_identifier_is_always_rejected():
    strict = PhoneRules(strict=True)
    out = render_profile({"email": "a@b.co", "phone_number": "12"}, phones=strict)
    assert isinstance(out, Rejection) and out.code == "invalid_phone"
    for phones in (PhoneRules(), strict, PhoneRules(default_region="US")):
        out = render_profile({"phone_number": "12", "first_name": "A"}, phones=phones)
        assert isinstance(out, Rejection) and out.code == "invalid_phone"
    # A bad email is still a rejection of its own, phone or not.
    out = render_profile({"email": "nope", "phone_number": "+15005550006"})
    assert isinstance(out, Rejection) and out.code == "invalid_email"


# -- near-miss identifier column names -------------------------------------------------------------


@pytest.mark.parametrize(
    "column,meant",
    [
        ("phone", "phone_number"),
        ("phone_number_e164", "phone_number"),
        ("mobile", "phone_number"),
        ("Phone Number", "phone_number"),
        ("PHONE_E164", "phone_e164"),
        ("Email", "email"),
        ("EMAIL", "email"),
        ("email_address", "email"),
        ("e-mail", "email"),
        ("externalId", "external_id"),
        ("user_id", "external_id"),
    ],
)
def test_a_row_without_identifier_suggests_the_column_it_probably_meant(column, meant):
    out = render_profile({column: "value", "first_name": "A"})
    assert isinstance(out, Rejection) and out.code == "missing_identifier"
    assert f"did you mean `{meant}`? the row has a column `{column}`" in out.detail
    assert out.hint and meant in out.hint and "value" not in out.detail


def test_no_suggestion_without_a_near_miss_and_only_for_accepted_identifiers():
    out = render_profile({"plan": "pro", "first_name": "A"})
    assert isinstance(out, Rejection) and out.hint is None and "did you mean" not in out.detail
    # klaviyo_profile_id is suggested only where it identifies a row.
    assert render_profile({"profile_id": "P1"}).hint is None
    assert "`klaviyo_profile_id`" in render_profile({"profile_id": "P1"}, accept_profile_id=True).hint
    assert "`klaviyo_profile_id`" in render_profile_reference({"Klaviyo Profile ID": "P1"}).hint
    # A near-miss column is never renamed: with an identifier the row goes, the column as a property.
    assert rendered({"email": "a@b.co", "mobile": "x"})["attributes"] == {
        "email": "a@b.co",
        "properties": {"mobile": "x"},
    }


# -- flat location columns ---------------------------------------------------------------------------


def test_flat_location_columns_go_into_location():
    profile = rendered(
        {
            "email": "a@b.co",
            "city": "Paris",
            "country": "FR",
            "region": "IDF",
            "zip": 75001,
            "address1": "1 rue de Rivoli",
            "address2": None,
            "timezone": "Europe/Paris",
            "latitude": 48.86,
            "longitude": "2.33",
            "ip": "192.0.2.1",
            "plan": "pro",
        }
    )
    assert profile["attributes"] == {
        "email": "a@b.co",
        "location": {
            "city": "Paris",
            "country": "FR",
            "region": "IDF",
            "zip": 75001,
            "address1": "1 rue de Rivoli",
            "timezone": "Europe/Paris",
            "latitude": 48.86,
            "longitude": "2.33",
            "ip": "192.0.2.1",
        },
        "properties": {"plan": "pro"},
    }


def test_the_location_object_wins_for_its_keys_and_flat_columns_fill_the_rest():
    data = {"email": "a@b.co", "city": "Flat city", "zip": "75001", "location": {"city": "Object city", "region": None}}
    assert rendered(data)["attributes"]["location"] == {"city": "Object city", "zip": "75001"}
    # Whatever the column order, and with a null location object, flat columns are location keys.
    assert rendered({"location": {"city": "Object city"}, "city": "Flat", "email": "a@b.co"})["attributes"][
        "location"
    ] == {"city": "Object city"}
    assert rendered({"email": "a@b.co", "location": None, "city": "Flat"})["attributes"] == {
        "email": "a@b.co",
        "location": {"city": "Flat"},
    }


def test_a_flat_location_column_of_the_wrong_type_is_rejected_and_the_target_column_stays_out():
    out = render_profile({"email": "a@b.co", "city": {"name": "Paris"}})
    assert isinstance(out, Rejection) and out.code == "invalid_value" and "'city'" in out.detail
    assert "Paris" not in out.detail
    assert isinstance(render_profile({"email": "a@b.co", "zip": True}), Rejection)
    # A target column named like a location key steers the row and is not sent.
    assert rendered({"email": "a@b.co", "region": "EU list"}, excluded_columns=("region",))["attributes"] == {
        "email": "a@b.co"
    }
