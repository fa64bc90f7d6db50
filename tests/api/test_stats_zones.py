"""/stats with `tz`: the time buckets are calendar days (hours, weeks, ...) of an IANA zone, on both databases."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters
from audit_app.audit.stats import compute_stats, compute_stats_scan, offset_steps
from audit_app.auth import Principal
from tests.api.helpers import LIST, event, write

STATS = LIST + "stats"
NEW_YORK = ZoneInfo("America/New_York")  # EST -05:00, EDT -04:00 from 2026-03-08 07:00 UTC
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # +05:45 all year
SUPER = Principal(sub="s", email="", role="super_admin")


def utc_at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Around local midnights and the spring-forward change of New York (2026-03-08 02:00 EST -> 03:00 EDT).
SPRING = [
    "2026-03-07 04:30",  # 03-06 23:30 EST
    "2026-03-07 05:30",  # 03-07 00:30 EST
    "2026-03-08 04:59",  # 03-07 23:59 EST
    "2026-03-08 05:00",  # 03-08 00:00 EST
    "2026-03-08 06:59",  # 03-08 01:59 EST, the last minute before the change
    "2026-03-08 07:00",  # 03-08 03:00 EDT
    "2026-03-09 03:59",  # 03-08 23:59 EDT (already 03-09 in UTC)
    "2026-03-09 04:00",  # 03-09 00:00 EDT
]


def write_at(session: Session, stamps: list[str], tenant: str = "acme", **fields: Any) -> list[datetime]:
    """Events of `tenant` at the UTC times `stamps` (every third a failure)."""
    moments = [utc_at(stamp) for stamp in stamps]
    results = ["failure" if n % 3 == 2 else "success" for n in range(len(moments))]
    write(session, [event(tenant, when, result=r, **fields) for when, r in zip(moments, results, strict=True)])
    return moments


def stats(client: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = client.get(STATS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def local_days(moments: list[datetime], zone: ZoneInfo) -> dict[str, int]:
    """The oracle: the events per calendar day of `zone`, from zoneinfo in Python."""
    return dict(Counter(moment.astimezone(zone).date().isoformat() for moment in moments))


def counted(body: dict[str, Any]) -> dict[str, int]:
    return {row["date"]: row["count"] for row in body["by_day"] if row["count"]}


def test_days_of_new_york_across_midnight_and_the_spring_change(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    moments = write_at(session, SPRING)
    write_at(session, ["2026-03-07 12:00"], tenant="globex")
    window = {"start_time": "2026-03-06T00:00:00-05:00", "end_time": "2026-03-10T00:00:00-04:00", "tenant_id": "acme"}
    local = stats(client, as_super, tz="America/New_York", **window)
    assert local["tz"] == "America/New_York"
    assert local["bucket"] == "day"
    assert [row["date"] for row in local["by_day"]] == ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"]
    assert (
        counted(local)
        == local_days(moments, NEW_YORK)
        == {
            "2026-03-06": 1,
            "2026-03-07": 2,
            "2026-03-08": 4,
            "2026-03-09": 1,
        }
    )
    assert local["by_day"][2]["by_result"] == {"success": 3, "failure": 1}
    # everything but the series is the zone's business of nobody
    utc = stats(client, as_super, **window)
    assert utc["tz"] == "UTC"
    assert counted(utc) == local_days(moments, ZoneInfo("UTC"))
    assert {k: v for k, v in local.items() if k not in ("by_day", "tz")} == {
        k: v for k, v in utc.items() if k not in ("by_day", "tz")
    }
    # the scan (filters the aggregate tables do not hold) buckets alike
    filters = AuditFilters(
        start_time=datetime.fromisoformat(window["start_time"]),
        end_time=datetime.fromisoformat(window["end_time"]),
        tenant_id="acme",
        action="user.login",
    )
    scan = compute_stats_scan(session, SUPER, filters, zone=NEW_YORK)
    assert (scan["bucket"], scan["by_day"], scan["tz"]) == ("day", local["by_day"], "America/New_York")


def test_an_open_window_runs_over_the_local_days_holding_events(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    moments = write_at(session, SPRING)
    local = stats(client, as_super, tz="America/New_York")
    assert local["by_day"][0]["date"] == "2026-03-06"
    assert local["by_day"][-1]["date"] == "2026-03-09"
    assert counted(local) == local_days(moments, NEW_YORK)


def test_days_of_kathmandu_start_at_a_quarter_past_the_utc_hour(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    moments = write_at(session, ["2026-03-01 18:14", "2026-03-01 18:15", "2026-03-02 18:14:59", "2026-03-03 02:00"])
    window = {"start_time": "2026-02-27T00:00:00+05:45", "end_time": "2026-03-05T00:00:00+05:45"}
    local = stats(client, as_super, tz="Asia/Kathmandu", **window)
    assert counted(local) == local_days(moments, KATHMANDU) == {"2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 1}
    assert local["by_day"][0]["date"] == "2026-02-27"
    assert len(local["by_day"]) == 6


def test_hours_of_kathmandu_within_48_hours(client: TestClient, as_super: dict[str, str], session: Session) -> None:
    moments = write_at(session, ["2026-03-01 18:14", "2026-03-01 18:15", "2026-03-01 19:14", "2026-03-02 08:00"])
    window = {"start_time": "2026-03-01T17:00:00Z", "end_time": "2026-03-02T17:00:00Z"}
    local = stats(client, as_super, tz="Asia/Kathmandu", **window)
    assert local["bucket"] == "hour"
    hours = [row["date"] for row in local["by_day"]]
    assert hours[0] == "2026-03-01T22:00:00+05:45"  # 16:15 UTC, the local hour holding the window's start
    assert hours[-1] == "2026-03-02T22:00:00+05:45"
    assert len(hours) == 25
    # 18:14 UTC is 23:59 there, 18:15 is midnight: the local hours start at a quarter past the UTC ones
    assert counted(local) == {
        "2026-03-01T23:00:00+05:45": 1,
        "2026-03-02T00:00:00+05:45": 2,
        "2026-03-02T13:00:00+05:45": 1,
    }
    assert [m.astimezone(KATHMANDU).strftime("%d %H:%M") for m in moments] == [
        "01 23:59",
        "02 00:00",
        "02 00:59",
        "02 13:45",
    ]


def test_the_autumn_change_keeps_both_one_oclock_hours_apart(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC; 01:30 happens twice.
    write_at(session, ["2026-11-01 05:30", "2026-11-01 06:30", "2026-11-01 06:45"])
    window = {"start_time": "2026-11-01T04:00:00Z", "end_time": "2026-11-01T08:00:00Z"}
    local = stats(client, as_super, tz="America/New_York", **window)
    assert local["bucket"] == "hour"
    assert [(row["date"], row["count"]) for row in local["by_day"]] == [
        ("2026-11-01T00:00:00-04:00", 0),
        ("2026-11-01T01:00:00-04:00", 1),
        ("2026-11-01T01:00:00-05:00", 2),
        ("2026-11-01T02:00:00-05:00", 0),
    ]


@pytest.mark.parametrize(
    ("window", "bucket"),
    [
        ({"start_time": "2025-01-01T00:00:00-05:00", "end_time": "2026-11-30T00:00:00-05:00"}, "week"),
        ({"start_time": "2015-01-01T00:00:00-05:00", "end_time": "2026-12-01T00:00:00-05:00"}, "month"),
    ],
)
def test_weeks_and_months_of_the_zone(
    client: TestClient, as_super: dict[str, str], session: Session, window: dict[str, str], bucket: str
) -> None:
    # Sunday 2026-03-08 23:30 EDT is Monday in UTC; 2026-03-31 22:00 EDT is April in UTC.
    moments = write_at(session, ["2026-03-09 03:30", "2026-03-09 04:30", "2026-04-01 02:00", "2026-04-01 04:30"])
    local = stats(client, as_super, tz="America/New_York", **window)
    assert local["bucket"] == bucket

    def start_of(day: date) -> str:
        return (day - timedelta(days=day.weekday()) if bucket == "week" else day.replace(day=1)).isoformat()

    expected = Counter(start_of(m.astimezone(NEW_YORK).date()) for m in moments)
    assert counted(local) == dict(expected)
    assert sum(row["count"] for row in local["by_day"]) == local["total"] == 4


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "../../etc/passwd", "", "x" * 65, "localtime"])
def test_an_unknown_zone_is_422(client: TestClient, as_super: dict[str, str], tz: str) -> None:
    response = client.get(STATS, params={"tz": tz}, headers=as_super)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "tz"]


def test_utc_is_the_default_and_the_same_without_tz(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    write_at(session, SPRING)
    assert stats(client, as_super, tz="UTC") == stats(client, as_super)


def test_a_tenant_admin_sees_only_its_tenant_in_any_zone(client: TestClient, session: Session, make_token: Any) -> None:
    write_at(session, SPRING)
    write_at(session, ["2026-03-08 05:30"], tenant="globex")
    headers = {"Authorization": "Bearer " + make_token("tenant_admin", tenant_id="globex")}
    local = stats(client, headers, tz="America/New_York")
    assert counted(local) == {"2026-03-08": 1}
    assert client.get(STATS, params={"tz": "Asia/Kathmandu", "tenant_id": "acme"}, headers=headers).status_code == 403


def test_offset_changes_are_found_to_the_second() -> None:
    first, steps = offset_steps(NEW_YORK, [date(2026, 3, 7), date(2026, 3, 8), date(2026, 11, 1)])
    assert first == -5 * 3600
    assert steps == [(utc_at("2026-03-08 07:00"), -4 * 3600), (utc_at("2026-11-01 06:00"), -5 * 3600)]
    # Nepal moved from +05:30 to +05:45 on 1986-01-01
    first, steps = offset_steps(KATHMANDU, [date(1985, 12, 31), date(1986, 6, 1)])
    assert (first, steps) == (19800, [(utc_at("1985-12-31 18:30"), 20700)])
    # a zone change between two days holding events is placed at the later day's start
    first, steps = offset_steps(NEW_YORK, [date(2026, 1, 5), date(2026, 7, 5)])
    assert (first, steps) == (-5 * 3600, [(utc_at("2026-07-05 00:00"), -4 * 3600)])
    assert offset_steps(NEW_YORK, [date(1, 1, 1), date(9999, 12, 31)]) == (0, [])


def test_compute_stats_takes_the_zone(session: Session) -> None:
    moments = write_at(session, SPRING)
    figures = compute_stats(session, SUPER, AuditFilters(), zone=NEW_YORK)
    assert counted(figures) == local_days(moments, NEW_YORK)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kathmandu", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_hourly_counts_scan_and_oracle_agree_on_odd_windows(session: Session, zone: str) -> None:
    # New York reads whole UTC hours from the hourly counts; the others cannot (a :30 or :45 offset;
    # Lord Howe moves by half an hour, +10:30 / +11:00), so every event of the window is counted.
    rng = random.Random(zone)
    base = utc_at("2026-02-20 00:00")
    written = [
        (base + timedelta(minutes=rng.randrange(0, 60 * 24 * 60)), rng.choice(["acme", "globex"])) for _ in range(300)
    ]
    # either side of each window's odd edges, in the same UTC hour
    edges = ["2026-02-25 03:05", "2026-02-25 03:20", "2026-04-01 21:40", "2026-04-01 21:50"]
    edges += ["2026-03-07 10:01", "2026-03-07 10:10", "2026-03-08 23:50", "2026-03-08 23:58"]
    written += [(utc_at(stamp), tenant) for stamp in edges for tenant in ("acme", "globex")]
    write(session, [event(tenant, when, result=rng.choice(["success", "failure"])) for when, tenant in written])
    place = ZoneInfo(zone)
    for start, end, tenant in [
        (utc_at("2026-02-25 03:17"), utc_at("2026-04-01 21:43"), None),
        (utc_at("2026-03-01 00:00"), utc_at("2026-03-03 00:00"), "acme"),  # 48 hours: per hour
        (utc_at("2026-03-07 10:05"), utc_at("2026-03-08 23:55"), None),
        (None, None, "globex"),
    ]:
        filters = AuditFilters(start_time=start, end_time=end, tenant_id=tenant)
        rolled = compute_stats(session, SUPER, filters, zone=place)
        scanned = compute_stats_scan(session, SUPER, filters, zone=place)
        assert rolled["by_day"] == scanned["by_day"], (start, end, tenant)
        inside = [
            when
            for when, owner in written
            if (start is None or when >= start) and (end is None or when < end) and tenant in (None, owner)
        ]
        if rolled["bucket"] == "hour":
            expected = Counter(when.astimezone(place).replace(minute=0, second=0).isoformat() for when in inside)
        else:
            assert rolled["bucket"] == "day"
            expected = Counter(when.astimezone(place).date().isoformat() for when in inside)
        assert counted(rolled) == dict(expected), (start, end, tenant)
        assert rolled["total"] == len(inside)
