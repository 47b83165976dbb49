"""Demo: generate customer rows, sync them with the real connector into the local Klaviyo emulator,
and print what landed. Run it through `scripts/demo` (which sets up .venv first).

Three streams: `customers` (profiles), `audiences` (list memberships) and `newsletter` (consent:
subscriptions into the "Newsletter" list, a few historical, a few SMS, and two opt-outs: one of a
list member, one of a stranger, which the unsubscribe guard refuses to send)."""

from __future__ import annotations

import argparse
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
        if i % 400 == 7 and data.get("email"):  # a newsletter sign-up
            signup = {"email": data["email"]}
            if i % 1200 == 7:  # consent collected before: a historical import
                signup["consented_at"] = "2024-03-01T10:00:00Z"
            if data.get("phone_e164") and i % 800 == 7:  # also agreed to marketing texts
                signup |= {"phone_e164": data["phone_e164"], "sms_marketing": True}
            messages.append(record("newsletter", signup))
        if (i + 1) % 1000 == 0:
            messages.append(stream_state("customers", i + 1))
    signups = [m["record"]["data"]["email"] for m in messages if m["type"] == "RECORD" and m["record"]["stream"] == "newsletter"]
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
            {"stream": "newsletter", "surface": "subscriptions", "target": "Newsletter", "channels": ["email_marketing"]},
        ],
    }
    configured = catalog(
        configured_stream("customers", "append_dedup"),
        configured_stream("audiences", "append"),
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
    print(
        f"write: {args.rows} customer rows (+ audience and newsletter rows) in {elapsed:.1f}s; {len(states)} state "
        f"messages echoed"
    )
    for line in run.logs:
        if "summary" in line.lower() or "accepted bulk import job" in line or "Created Klaviyo list" in line:
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
    email_subscribed = [pid for pid, channels in consent.items() if channels.get("email.marketing", {}).get("consent") == "SUBSCRIBED"]
    historical = [pid for pid in email_subscribed if consent[pid]["email.marketing"]["consent_timestamp"].startswith("2024-03-01")]
    sms = [pid for pid, channels in consent.items() if channels.get("sms.marketing", {}).get("consent") == "SUBSCRIBED"]
    print(
        f"Consent: {len(email_subscribed)} profiles subscribed to email marketing ({len(historical)} as historical "
        f"imports, consented 2024-03-01), {len(sms)} to SMS marketing; "
        f"{sum(len(v) for v in landed['list_unsubscribes'].values())} unsubscribed from the Newsletter list; "
        f"{len(landed['global_unsubscribes'])} unsubscribed globally"
    )
    sample = profiles[1] if len(profiles) > 1 else (profiles[0] if profiles else None)
    if sample:
        print("A profile as Klaviyo stored it:")
        import json

        print("  " + json.dumps(sample, indent=2).replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
