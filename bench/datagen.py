"""Deterministic Airbyte messages for the benchmark: what a source would send destination-klaviyo.

Two kinds of input, each written once per (kind, rows, seed) to a cache file and reused:

- `profiles`: a `customers` stream of realistic customer rows: email, phone_e164, external_id,
  first/last name, an organization (null for some rows, as real tables have), a `location` object
  (with a null `address2` most of the time), and a handful of custom columns (plan, lifetime value,
  order count, dates, a boolean, a list of tags, a nullable timestamp). About 560 bytes a line.
- `memberships`: a `memberships` stream of `{"klaviyo_profile_id": <26-char id>, "list": "Bench"}`
  rows, for the `list_memberships_by_profile_id` surface.
- `events`: an `orders` stream of order rows for the `events` surface: a distinct `order_id` (the
  primary key), the buyer's email and first name (one of 100,000 customers), `ordered_at` (ISO
  8601, one a second from 2026-01-01), a `total` and 1-3 line items, a status, a channel and an
  `updated_at` cursor. About 400 bytes a line.
- `subscriptions`: a `subscriptions` stream of newsletter sign-ups, `{"email": ..., "list": "Bench"}`,
  for the `subscriptions` surface (email marketing consent into the list).

Issue 15's cases:

- `bigprofiles`: a `crm_contacts` stream of wide CRM rows for the `profiles` surface: the
  `profiles` columns plus 13 more (language, time zone, birthday, segment, acquisition channel and
  campaign, favourite categories, the last viewed products, a loyalty object, 12-month spend, an
  NPS score, opt-in source, a free-text note of one or two sentences), so that a rendered profile
  is about 1 KB (870-1,220 bytes, mean 1,035) and Klaviyo's 5,000,000-byte body, not its 10,000
  profiles, caps a bulk job. About 1.1 KB a line.
- `manylists`: a `list_members` stream of `{"email": ..., "list": "<one of 500 list names>"}` rows
  for the `list_memberships` surface. Each row's list is drawn from a Zipf-like distribution
  (weight of the k-th list = 1 / k^1.2): in 200,000 rows the biggest list gets about 48,000 rows,
  the fourth about 9,000, the hundredth about 190 and the last ones a few dozen. Rows of all lists
  are interleaved, as a source reading a membership table in key order would send them.
- `unsubscribes`: an `optouts` stream of CDC deletions (`_ab_cdc_deleted_at` set) of
  `{"email": ..., "list": "<one of 50 lists>"}`: each row unsubscribes a person from a list they
  are on (the bench puts them there first: `emulator_seed`).
- `suppressions`: a `suppressions` stream of `{"email": ..., "reason": ...}` rows (a bounce and
  complaint table): each row suppresses its address.
- `deletions`: an `erasure_requests` stream of `{"email": ..., "requested_at": ...}` rows (GDPR
  erasure requests) for the `profile_deletions` surface; the bench creates each person's profile
  first, so that every request deletes one.

A STREAM state follows every 1,000-5,000 rows (uniformly drawn, seeded), each carrying its cursor
and `sourceStats.recordCount`, and a STREAM_STATUS COMPLETE trace closes the stream, as the
platform sends after a clean source run. Every row is a distinct person (no duplicates), so the
emulator ends with exactly `rows` profiles or memberships.

    python bench/datagen.py --kind profiles --rows 100000 [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson

SEED = 20260415
STATE_EVERY_MIN = 1_000
STATE_EVERY_MAX = 5_000
EMITTED_AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BENCH_LIST = "Bench"
STREAMS = {
    "profiles": "customers",
    "memberships": "memberships",
    "events": "orders",
    "subscriptions": "subscriptions",
    "bigprofiles": "crm_contacts",
    "manylists": "list_members",
    "unsubscribes": "optouts",
    "suppressions": "suppressions",
    "deletions": "erasure_requests",
}
BENCH_METRIC = "Placed Order"
ORDER_CUSTOMERS = 100_000  # distinct buyers of the orders stream
CHANNELS = ("web", "ios", "android", "store")
PRODUCTS = ("Tea", "Coffee", "Mug", "Kettle", "Grinder", "Filter", "Beans", "Scale")

FIRST_NAMES = (
    "Ada Grace Alan Linus Margaret Edsger Barbara Donald Ken Dennis Frances Katherine Tim Radia Vint Bjarne "
    "Guido Yukihiro Sophie Jean Hedy Annie Mary Claude John Leslie Niklaus Robin Shafi Whitfield Adele Evelyn "
    "Karen Lynn Maria Olga Priya Rahul Wei Mei Hiroshi Aiko Lars Ingrid Pierre Amelie Chiara Luca Diego Lucia "
    "Kwame Amara Fatima Omar Noah Liam Emma Olivia Ava Mia Zoe Ethan"
).split()
LAST_NAMES = (
    "Lovelace Hopper Turing Torvalds Hamilton Dijkstra Liskov Knuth Thompson Ritchie Allen Johnson Berners-Lee "
    "Perlman Cerf Stroustrup van-Rossum Matsumoto Wilson Sammet Lamarr Easley Keller Shannon McCarthy Lamport "
    "Wirth Milner Goldwasser Diffie Goldberg Boyd Sparck-Jones Conway Klawe Petrov Sharma Gupta Zhang Chen "
    "Tanaka Sato Larsen Berg Dubois Martin Rossi Bianchi Garcia Lopez Mensah Okafor Haddad Nasser Smith Brown"
).split()
DOMAINS = ("example.com", "mail.example.org", "customers.example.net", "shop.example.io", "example.co.uk")
ORGANIZATIONS = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
STREETS = ("Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Sunset")
CITIES = (
    ("Boston", "MA", "02110"),
    ("San Francisco", "CA", "94107"),
    ("Austin", "TX", "78701"),
    ("Seattle", "WA", "98101"),
    ("Chicago", "IL", "60601"),
    ("Denver", "CO", "80202"),
    ("Brooklyn", "NY", "11201"),
    ("Portland", "OR", "97201"),
)
PLANS = ("free", "starter", "pro", "business", "enterprise")
TAGS = ("newsletter", "vip", "wholesale", "returning", "mobile", "eu", "beta", "churn-risk")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def profile_row(i: int, rng: random.Random) -> dict[str, Any]:
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    city, region, zip_code = rng.choice(CITIES)
    return {
        "email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
        "phone_e164": f"+1{rng.randrange(201, 990)}{i % 10_000_000:07d}",
        "external_id": f"cus_{i:09d}",
        "first_name": first,
        "last_name": last.replace("-", " "),
        "organization": rng.choice(ORGANIZATIONS) if rng.random() < 0.6 else None,
        "location": {
            "address1": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)} St",
            "address2": f"Apt {rng.randrange(1, 400)}" if rng.random() < 0.2 else None,
            "city": city,
            "region": region,
            "country": "US",
            "zip": zip_code,
        },
        "plan": rng.choice(PLANS),
        "lifetime_value": round(rng.random() * 5_000, 2),
        "orders_count": rng.randrange(0, 120),
        "signup_date": f"20{rng.randrange(15, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "is_vip": rng.random() < 0.05,
        "tags": rng.sample(TAGS, rng.randrange(0, 4)),
        "last_order_at": (
            f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00Z"
            if rng.random() < 0.7
            else None
        ),
    }


def profile_id(i: int) -> str:
    """A 26-character Crockford base32 id, the shape of Klaviyo profile ids, distinct per `i`."""
    value = (0x0190 << 112) | ((i * 0x9E3779B97F4A7C15) & ((1 << 112) - 1))  # odd multiplier: a bijection
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def membership_row(i: int, rng: random.Random) -> dict[str, Any]:
    return {"klaviyo_profile_id": profile_id(i), "list": BENCH_LIST}


def order_row(i: int, rng: random.Random) -> dict[str, Any]:
    buyer = i % ORDER_CUSTOMERS
    lines = [
        {"sku": f"SKU-{rng.randrange(1, 500):04d}", "name": rng.choice(PRODUCTS), "qty": rng.randrange(1, 4),
         "price": round(rng.random() * 60 + 2, 2)}
        for _ in range(rng.randrange(1, 4))
    ]  # fmt: skip
    ordered_at = datetime.fromtimestamp(EMITTED_AT // 1000 + i, tz=timezone.utc)
    return {
        "order_id": f"ord_{i:010d}",
        "email": f"buyer.{buyer}@{DOMAINS[buyer % len(DOMAINS)]}",
        "first_name": FIRST_NAMES[buyer % len(FIRST_NAMES)],
        "ordered_at": ordered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total": round(sum(line["qty"] * line["price"] for line in lines), 2),
        "items": lines,
        "status": rng.choice(("paid", "paid", "paid", "shipped", "refunded")),
        "channel": rng.choice(CHANNELS),
        "coupon": rng.choice(("WELCOME10", "SPRING")) if rng.random() < 0.1 else None,
        "updated_at": "2026-02-01T00:00:00Z",
    }


def subscription_row(i: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {"email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(), "list": BENCH_LIST}


# -- issue 15: wide profiles, many lists, consent and erasure ------------------------------------
LANGUAGES = ("en-US", "en-GB", "fr-FR", "de-DE", "es-ES", "it-IT", "pt-BR", "ja-JP", "nl-NL")
TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London")
SEGMENTS = (
    "High-value repeat buyer", "Lapsed subscriber", "New customer (first 30 days)", "Wholesale account",
    "Discount seeker", "Gift buyer", "Subscription box member", "Browsed, never bought",
)  # fmt: skip
CHANNEL_SOURCES = ("organic_search", "paid_social", "email", "referral", "affiliate", "direct", "podcast")
CAMPAIGNS = (
    "spring_sale_2025_lookalike_3pct", "holiday_gift_guide_retargeting", "brand_awareness_q3_video",
    "newsletter_signup_popup_10off", "back_in_stock_alerts", "loyalty_double_points_weekend",
)  # fmt: skip
CATEGORIES = ("Coffee", "Tea", "Brewing Gear", "Mugs & Cups", "Gift Sets", "Subscriptions", "Accessories")
PRODUCT_NAMES = (
    "Ceramic Pour-Over Dripper", "Single-Origin Ethiopia Yirgacheffe 250g", "Gooseneck Electric Kettle 1L",
    "Burr Grinder Pro 40mm", "Matcha Starter Kit", "Insulated Travel Mug 12oz", "Cold Brew Bottle 1.5L",
    "Espresso Blend No. 7 1kg", "Bamboo Tea Whisk", "Digital Coffee Scale with Timer",
)  # fmt: skip
NOTE_PHRASES = (
    "Prefers weekend delivery.", "Asked about bulk pricing for the office.", "Allergic to hazelnut flavouring.",
    "Returned a damaged kettle in March; replacement sent.", "Interested in the barista workshop.",
    "Wants invoices addressed to the accounts payable team.", "Gift orders go to a different address.",
    "Called support twice about a late subscription box.", "Reviews products regularly; high engagement.",
    "Opted out of SMS but reads every newsletter.", "Referred three friends last year.",
)  # fmt: skip
TIERS = ("bronze", "silver", "gold", "platinum")


def bigprofile_row(i: int, rng: random.Random) -> dict[str, Any]:
    """A wide CRM row: the `profiles` columns plus 13 more; renders to about 1 KB."""
    row = profile_row(i, rng)
    row.update(
        {
            "preferred_language": rng.choice(LANGUAGES),
            "timezone": rng.choice(TIMEZONES),
            "birthday": f"19{rng.randrange(50, 100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "marketing_segment": rng.choice(SEGMENTS),
            "acquisition_channel": rng.choice(CHANNEL_SOURCES),
            "utm_campaign": rng.choice(CAMPAIGNS),
            "favorite_categories": rng.sample(CATEGORIES, rng.randrange(1, 4)),
            "last_viewed_products": [
                f"SKU-{rng.randrange(1, 500):04d} {rng.choice(PRODUCT_NAMES)}" for _ in range(rng.randrange(1, 4))
            ],
            "loyalty": {
                "tier": rng.choice(TIERS),
                "points": rng.randrange(0, 20_000),
                "member_since": f"20{rng.randrange(15, 26)}-{rng.randrange(1, 13):02d}-01",
            },
            "total_spent_12m": round(rng.random() * 2_500, 2),
            "nps_score": rng.randrange(0, 11) if rng.random() < 0.4 else None,
            "email_opt_in_source": rng.choice(("checkout", "popup", "footer_form", "in_store", "import")),
            "customer_notes": " ".join(rng.sample(NOTE_PHRASES, rng.randrange(1, 3))),
        }
    )
    return row


MANY_LISTS = 500
LIST_SKEW = 1.2  # Zipf-like exponent: weight of the k-th list (from 1) is 1 / k^LIST_SKEW
LIST_TOPICS = ("Newsletter", "Store", "Waitlist", "Webinar", "Loyalty", "Event", "Beta", "Survey", "Region", "Partner")
_LIST_WEIGHTS: list[float] = []


def manylist_name(k: int) -> str:
    """The name of list number k (0-based; 0 is the biggest)."""
    return f"Bench {LIST_TOPICS[k % len(LIST_TOPICS)]} {k:03d}"


def manylist_names() -> list[str]:
    return [manylist_name(k) for k in range(MANY_LISTS)]


def manylist_row(i: int, rng: random.Random) -> dict[str, Any]:
    if not _LIST_WEIGHTS:
        total = 0.0
        for k in range(MANY_LISTS):
            total += 1 / (k + 1) ** LIST_SKEW
            _LIST_WEIGHTS.append(total)
    k = rng.choices(range(MANY_LISTS), cum_weights=_LIST_WEIGHTS)[0]
    first = rng.choice(FIRST_NAMES)
    return {"email": f"{first.lower()}.{i}@{rng.choice(DOMAINS)}", "list": manylist_name(k)}


OPTOUT_LISTS = 50
CDC_DELETED_AT = "2026-02-01T00:00:00Z"


def optout_list_name(k: int) -> str:
    return f"Bench optouts {k:02d}"


def unsubscribe_row(i: int, rng: random.Random) -> dict[str, Any]:
    """A CDC deletion of a list member: unsubscribes them from that list."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
        "list": optout_list_name(rng.randrange(OPTOUT_LISTS)),
        "_ab_cdc_deleted_at": CDC_DELETED_AT,
    }


def suppression_row(i: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
        "reason": rng.choice(("hard_bounce", "spam_complaint", "manual", "role_address")),
    }


def deletion_row(i: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    requested = datetime.fromtimestamp(EMITTED_AT // 1000 - 86_400 + i * 37, tz=timezone.utc)
    return {
        "email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
        "requested_at": requested.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def emulator_seed(kind: str, rows: int, seed: int = SEED) -> dict[str, Any]:
    """What the emulator must hold before the run, for the kinds that act on existing data:
    `lists` (names to create) and `profiles` (`[email, list name or None]`: a profile, and the list
    it is a member of)."""
    if kind == "manylists":
        return {"lists": manylist_names(), "profiles": []}
    if kind == "unsubscribes":
        members = [[m["record"]["data"]["email"], m["record"]["data"]["list"]] for m in _records(kind, rows, seed)]
        return {"lists": [optout_list_name(k) for k in range(OPTOUT_LISTS)], "profiles": members}
    if kind == "deletions":
        return {"lists": [], "profiles": [[m["record"]["data"]["email"], None] for m in _records(kind, rows, seed)]}
    return {"lists": [], "profiles": []}


def _records(kind: str, rows: int, seed: int) -> Iterator[dict[str, Any]]:
    return (m for m in messages(kind, rows, seed) if m["type"] == "RECORD")


def messages(kind: str, rows: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    stream = STREAMS[kind]
    make = {
        "profiles": profile_row,
        "memberships": membership_row,
        "events": order_row,
        "subscriptions": subscription_row,
        "bigprofiles": bigprofile_row,
        "manylists": manylist_row,
        "unsubscribes": unsubscribe_row,
        "suppressions": suppression_row,
        "deletions": deletion_row,
    }[kind]
    rng = random.Random(seed)
    states = random.Random(seed + 1)
    next_state = states.randint(STATE_EVERY_MIN, STATE_EVERY_MAX)
    since_state = 0
    for i in range(rows):
        yield {"type": "RECORD", "record": {"stream": stream, "data": make(i, rng), "emitted_at": EMITTED_AT}}
        since_state += 1
        if since_state == next_state or i == rows - 1:
            yield {
                "type": "STATE",
                "state": {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"cursor": i + 1}},
                    "sourceStats": {"recordCount": float(since_state)},
                },
            }
            since_state = 0
            next_state = states.randint(STATE_EVERY_MIN, STATE_EVERY_MAX)
    yield {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": EMITTED_AT,
            "stream_status": {"stream_descriptor": {"name": stream}, "status": "COMPLETE"},
        },
    }


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR") or Path(tempfile.gettempdir()) / "destination-klaviyo-bench")


def ensure_file(kind: str, rows: int, cache_dir: Path | None = None, seed: int = SEED) -> Path:
    """The cached input file for (kind, rows, seed), generated on first use (atomically)."""
    directory = cache_dir or default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{rows}-seed{seed}.jsonl"
    if path.exists():
        return path
    partial = path.with_suffix(f".partial{os.getpid()}")
    with partial.open("wb") as out:
        buffer: list[bytes] = []
        for message in messages(kind, rows, seed):
            buffer.append(orjson.dumps(message))
            if len(buffer) >= 10_000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    partial.replace(path)
    return path


def count_states(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for line in source if line.startswith(b'{"type":"STATE"'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=tuple(STREAMS), default="profiles")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, help="write here instead of the cache directory")
    args = parser.parse_args()
    if args.out:
        with args.out.open("wb") as out:
            for message in messages(args.kind, args.rows, args.seed):
                out.write(orjson.dumps(message) + b"\n")
        print(args.out)
    else:
        print(ensure_file(args.kind, args.rows, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
