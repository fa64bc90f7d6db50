"""Demo data: counts, determinism and a realistic spread."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from audit_app.models import AuditLog, Tenant
from audit_app.seed import ACTIONS, PARTNERS, generate_events, seed

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_same_seed_same_data() -> None:
    first = generate_events(2000, seed=3, now=NOW)
    assert first == generate_events(2000, seed=3, now=NOW)
    assert first != generate_events(2000, seed=4, now=NOW)


def test_as_of_gives_the_same_events_relative_to_now_on_any_day() -> None:
    as_of = datetime(2026, 3, 2, 12, tzinfo=UTC)
    days = [datetime(2026, 11, 30, 9, 41, tzinfo=UTC), datetime(2027, 2, 13, 23, 5, tzinfo=UTC)]
    runs = [generate_events(500, now=day, as_of=as_of) for day in days]
    hours = [day.replace(minute=0) for day in days]
    assert all(e.timestamp is not None for run in runs for e in run)
    relative = [
        [(e.timestamp - hour, e.action, e.actor_id) for e in run if e.timestamp]
        for run, hour in zip(runs, hours, strict=True)
    ]
    assert len(relative[0]) == 500
    assert relative[0] == relative[1]
    assert max(e.timestamp for e in runs[1] if e.timestamp) <= hours[1]


def test_spread_is_realistic() -> None:
    events = generate_events(20_000, seed=7, now=NOW)
    assert len(events) == 20_000
    assert all(NOW - timedelta(days=91) <= e.timestamp <= NOW for e in events if e.timestamp)
    assert len({e.tenant_id for e in events}) == sum(len(t) for t in PARTNERS.values())
    assert len({e.actor_id for e in events}) >= 150
    assert len({e.action for e in events}) >= len(ACTIONS) - 5 >= 35
    results = Counter(e.result for e in events)
    assert results["success"] / len(events) > 0.85
    assert {"failure", "denied"} <= set(results)
    weekdays = Counter(e.timestamp.weekday() for e in events if e.timestamp)
    assert weekdays[2] > 2 * weekdays[6], "weekends are quieter"
    hours = Counter(e.timestamp.hour for e in events if e.timestamp)
    assert hours[13] > 5 * hours[3], "office hours are busier"
    assert any(":" in (e.ip_address or "") for e in events), "some IPv6"
    assert any("changes" in e.details for e in events if e.action == "role.assign")
    burst = Counter((e.ip_address, e.tenant_id) for e in events if e.action == "user.login" and e.result == "failure")
    assert burst.most_common(1)[0][1] >= 60, "a brute-force run from one address"


def test_seed_writes_tenants_and_events(session: Session) -> None:
    written = seed(session, 3000, now=NOW)
    assert written == 3000
    assert session.execute(select(func.count()).select_from(AuditLog)).scalar_one() == 3000
    rows = session.execute(select(col(Tenant.id), col(Tenant.partner_id))).all()
    owners = {tenant: partner for tenant, partner in rows}
    assert owners["acme"] == "northwind"
    assert owners["umbrella"] == "bluesky"
    ids = set(session.execute(select(col(AuditLog.id))).scalars())
    assert len(ids) == 3000
