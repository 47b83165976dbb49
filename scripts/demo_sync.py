"""Demo: generate customer, audience, order and newsletter rows, sync them with the real connector
into the local Klaviyo emulator, and print what landed. Run it through `scripts/demo` (which sets up
.venv first).

The newsletter stream is consent (the subscriptions surface): sign-ups into the "Newsletter" list, a
few historical, a few SMS, and two opt-outs: one of a list member, one of a stranger, which the
unsubscribe guard refuses to send."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration_tests.harness import (  # noqa: E402
    EMULATOR_KEY,
    EmulatorProcess,
    catalog,
    configured_stream,
    lines,
    record,
    run_connector,
    stream_state,
)

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson"]
ORDERS_FROM = 1_767_225_600  # 2026-01-01T00:00:00Z


def generate(rows: int) -> list[dict]:
    messages = []
    for i in range(rows):
        data = {
            "email": f"customer{i:06d}@example.com" if i % 10 else None,
            "phone_e164": f"+1555{i:07d}" if i % 3 == 0 else None,
            "external_id": f"cust-{i}",
            "first_name": FIRST[i % len(FIRST)],
            "last_name": LAST[i % len(LAST)],
            "location": {"city": "Paris" if i % 2 else "Lyon", "country": "France", "zip": None},
            "lifetime_value": round(i * 1.37, 2),
            "plan": ["free", "pro", "enterprise"][i % 3],
            "churn_risk": None,
        }
        if i % 997 == 0:  # a few rows that cannot become a profile: no identifier at all
            data = {"first_name": "Nobody", "plan": "free"}
        messages.append(record("customers", data))
        if i % 50 == 1 and data.get("email"):  # an audience: every 50th customer, in one of two lists
            audience = "VIP customers" if i % 100 == 1 else "Win-back, Q4"
            messages.append(record("audiences", {"email": data["email"], "list": audience, "source": "demo"}))
        if i % 10 == 5 and data.get("email"):  # an order for every tenth customer; a few were refunded
            number = i // 10
            placed_at = ORDERS_FROM + number * 3_600  # one an hour, in epoch seconds as warehouses export them
            total = f"{20 + (i % 17) * 3.25:.2f}"  # a decimal, as text
            order = {"order_id": f"A-{number:05d}", "email": data["email"], "kind": "Placed Order",
                     "ordered_at": placed_at, "total": total, "items": [{"sku": f"SKU-{i % 9}", "qty": 1 + i % 2}],
                     "coupon": None}  # fmt: skip
            messages.append(record("orders", order))
            if number % 25 == 0:
                refund = {**order, "kind": "Refunded Order", "ordered_at": placed_at + 86_400, "reason": "damaged"}
                messages.append(record("orders", refund))
        if i % 400 == 7 and data.get("email"):  # a newsletter sign-up
            signup = {"email": data["email"]}
            if i % 1200 == 7:  # consent collected before: a historical import
                signup["consented_at"] = "2024-03-01T10:00:00Z"
            if data.get("phone_e164") and i % 800 == 7:  # also agreed to marketing texts
                signup |= {"phone_e164": data["phone_e164"], "sms_marketing": True}
            messages.append(record("newsletter", signup))
        if (i + 1) % 1000 == 0:
            messages.append(stream_state("customers", i + 1))
            messages.append(stream_state("orders", i + 1))
    signups = [m["record"]["data"]["email"] for m in messages if m.get("record", {}).get("stream") == "newsletter"]
    if signups:  # two opt-outs (CDC deletions): a list member, and someone never on the list
        deleted = {"_ab_cdc_deleted_at": "2026-01-01T00:00:00Z"}
        messages.append(record("newsletter", {"email": signups[0], **deleted}))
        messages.append(record("newsletter", {"email": "never.subscribed@example.com", **deleted}))
        messages.append(stream_state("newsletter", len(signups) + 2))
    return messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=12_000)
    args = parser.parse_args()

    config = {
        "private_api_key": EMULATOR_KEY,
        "streams": [
            {"stream": "customers", "surface": "profiles"},
            {"stream": "audiences", "surface": "list_memberships"},
            {
                "stream": "orders",
                "surface": "events",
                "metric_field": "kind",
                "time_field": "ordered_at",
                "value_field": "total",
                "value_currency": "EUR",
            },
            {
                "stream": "newsletter",
                "surface": "subscriptions",
                "target": "Newsletter",
                "channels": ["email_marketing"],
            },
        ],
    }
    orders = configured_stream("orders", "append")
    orders["primary_key"] = [["order_id"], ["kind"]]  # the default unique id: one event per order and kind
    configured = catalog(
        configured_stream("customers", "append_dedup"),
        configured_stream("audiences", "append"),
        orders,
        configured_stream("newsletter", "append"),
    )
    messages = generate(args.rows)

    with EmulatorProcess() as emulator:
        print(f"Local Klaviyo emulator at {emulator.url}")
        check = run_connector("check", config=config, origin=emulator.url)
        print("check:", check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"])
        started = time.monotonic()
        run = run_connector("write", config=config, catalog=configured, stdin=lines(messages), origin=emulator.url)
        elapsed = time.monotonic() - started
        if run.returncode != 0:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
            print(f"write FAILED with exit code {run.returncode}")
            return 1
        landed = emulator.state()

    states = run.states
    customers = [s for s in states if s["stream"]["stream_descriptor"]["name"] == "customers"]
    print(
        f"write: {args.rows} customer rows (+ audience, order and newsletter rows) in {elapsed:.1f}s; "
        f"{len(states)} state messages echoed, last cursor of customers "
        f"{customers[-1]['stream']['stream_state']['cursor'] if customers else None}"
    )
    for line in run.logs:
        shown = ("accepted bulk import job", "Created Klaviyo list", "Bulk Create Events")
        if "summary" in line.lower() or any(text in line for text in shown):
            print("  connector:", line)
        elif "(not_a_list_member)" in line:
            print("  connector:", line[:160] + " ...")
    for control in run.of_type("CONTROL"):
        registry = control["control"]["connectorConfig"]["config"].get("target_registry")
        print(f"  connector: config update for Airbyte to store (key masked): target_registry={registry}")
    profiles = landed["profiles"]
    print(f"Klaviyo emulator now holds {len(profiles)} profiles from {len(landed['jobs'])} bulk import jobs:")
    for job in landed["jobs"]:
        into = f" into list {job['list_id']}" if job["list_id"] else ""
        print(f"  job {job['id']}: {job['profile_count']} profiles, {job['body_size']} bytes{into}")
    for item in landed["lists"]:
        members = len(landed["memberships"].get(item["id"], []))
        print(f"Klaviyo list {item['id']} '{item['name']}': {members} members")
    consent = landed["consent"]

    def subscribed(channel: str) -> list[str]:
        return [pid for pid, channels in consent.items() if channels.get(channel, {}).get("consent") == "SUBSCRIBED"]

    email_subscribed, sms = subscribed("email.marketing"), subscribed("sms.marketing")
    historical = [
        p for p in email_subscribed if consent[p]["email.marketing"]["consent_timestamp"].startswith("2024-03-01")
    ]
    print(
        f"Consent: {len(email_subscribed)} profiles subscribed to email marketing ({len(historical)} as historical "
        f"imports, consented 2024-03-01), {len(sms)} to SMS marketing; "
        f"{sum(len(v) for v in landed['list_unsubscribes'].values())} unsubscribed from the Newsletter list; "
        f"{len(landed['global_unsubscribes'])} unsubscribed globally"
    )
    events = landed["events"]
    requests = len(landed["event_jobs"])
    print(f"Klaviyo emulator now holds {len(events)} events from {requests} Bulk Create Events requests:")
    for metric in landed["metrics"]:
        mine = [e for e in events if e["metric"] == metric["name"]]
        revenue = sum(e["value"] or 0 for e in mine)
        currency = mine[0]["value_currency"] if mine else ""
        print(f"  metric {metric['id']} '{metric['name']}': {len(mine)} events, value {revenue:,.2f} {currency}")
    if events:
        print("An event as Klaviyo stored it:")
        print("  " + json.dumps(events[0], indent=2).replace("\n", "\n  "))
    sample = profiles[1] if len(profiles) > 1 else (profiles[0] if profiles else None)
    if sample:
        print("A profile as Klaviyo stored it:")
        print("  " + json.dumps(sample, indent=2).replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
