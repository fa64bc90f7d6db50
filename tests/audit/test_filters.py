"""Filters: naive times are UTC, and named tenants and partners stay within the caller's scope (audit.filters)."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters, check_filters_in_scope, ipv4_text_ranges
from audit_app.audit.ingest import ingest_events
from audit_app.auth import (
    ForbiddenError,
)
from audit_app.models import AuditEventIn
from tests.principals import ACME, NORTHWIND, SUPER


def test_filters_take_naive_times_as_utc() -> None:
    filters = AuditFilters(start_time=datetime(2026, 3, 1, 12), end_time=datetime(2026, 3, 1, 14, tzinfo=UTC))
    assert filters.start_time == datetime(2026, 3, 1, 12, tzinfo=UTC)
    shifted = AuditFilters(start_time=datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(hours=1))
    assert shifted.active() == {"start_time": "2026-03-01T13:00:00+00:00"}


def test_scope_checks_of_filters(session: Session) -> None:
    ingest_events(
        session,
        [
            AuditEventIn(tenant_id="acme", partner_id="northwind", actor_id="a", action="x"),
            AuditEventIn(tenant_id="initech", partner_id="southwind", actor_id="a", action="x"),
        ],
    )
    session.commit()
    check_filters_in_scope(session, NORTHWIND, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, ACME, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, SUPER, AuditFilters(tenant_id="anything", partner_id="anyone"))
    for principal, filters in (
        (NORTHWIND, AuditFilters(tenant_id="initech")),
        (NORTHWIND, AuditFilters(tenant_id="unknown")),
        (NORTHWIND, AuditFilters(partner_id="southwind")),
        (ACME, AuditFilters(tenant_id="initech")),
        (ACME, AuditFilters(partner_id="southwind")),
    ):
        with pytest.raises(ForbiddenError):
            check_filters_in_scope(session, principal, filters)


def test_an_ipv4_networks_text_ranges_hold_exactly_its_addresses() -> None:
    """An address's canonical text lies in the ranges of every network that holds it, and of no other."""
    rng = random.Random(11)
    for _ in range(2000):
        network = ipaddress.IPv4Network((rng.randrange(2**32), rng.randrange(1, 33)), strict=False)
        ranges = ipv4_text_ranges(network)
        assert ranges is not None
        prefixes, addresses = ranges
        assert len(prefixes) + len(addresses) <= 128
        for _ in range(20):
            inside = network.network_address + rng.randrange(network.num_addresses)
            for address in (inside, ipaddress.IPv4Address(rng.randrange(2**32))):
                text = str(address)
                assert (text in addresses or text.startswith(tuple(prefixes))) == (address in network), (network, text)
    assert ipv4_text_ranges(ipaddress.IPv4Network("0.0.0.0/0")) is None
    assert ipv4_text_ranges(ipaddress.IPv4Network("10.16.0.0/12")) == ([f"10.{n}." for n in range(16, 32)], [])
    assert ipv4_text_ranges(ipaddress.IPv4Network("10.1.2.4/30")) == ([], [f"10.1.2.{n}" for n in range(4, 8)])
