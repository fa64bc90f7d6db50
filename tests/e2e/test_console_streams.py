"""The Streams page: a syslog stream created in the console delivers its test event into a real
syslog-ng, a bad target is refused by field, pause and resume are recorded, and the page keeps
to the caller's scope (and to principals with audit:admin)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import col

from audit_app.audit.filters import SYSTEM_TENANT
from audit_app.audit.streams import SPEC, create_stream
from audit_app.auth import Principal
from audit_app.models import AuditLog, LogStream
from tests.e2e.conftest import Console, sign_in
from tests.streams.receivers import wait_until
from tests.syslog_ng import SyslogNg, running_syslog_ng

SUPER = Principal(sub="e2e-streams", email="", role="super_admin", scopes=frozenset({"audit:admin"}))


@pytest.fixture(scope="module")
def syslog_ng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyslogNg]:
    with running_syslog_ng(tmp_path_factory.mktemp("syslog-ng")) as server:
        yield server


def stream_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.get_by_role("row", name=name, exact=True)


def test_a_syslog_stream_created_in_the_console_delivers_its_test_event(
    page: Page, console: Console, syslog_ng: SyslogNg
) -> None:
    sign_in(page, "super")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Streams").click()
    page.wait_for_url(re.compile(r"/streams/?$"))
    page.get_by_role("button", name="New stream").click()
    form = page.get_by_role("form", name="New stream")
    expect(form.get_by_label("Type", exact=True)).to_have_value("syslog")
    form.get_by_label("Name", exact=True).fill("e2e syslog-ng")
    form.get_by_label("Target", exact=True).fill("syslog-ng without a port")
    form.get_by_label("App name", exact=True).fill("e2e_console")
    form.get_by_role("button", name="Create stream").click()
    expect(form.locator("#stream-target-error")).to_contain_text("must be host:port")
    expect(form.get_by_label("Target", exact=True)).to_have_attribute("aria-invalid", "true")

    form.get_by_label("Target", exact=True).fill(f"127.0.0.1:{syslog_ng.port}")
    form.get_by_role("button", name="Create stream").click()
    row = stream_row(page, "e2e syslog-ng")
    expect(row.get_by_label("Status")).to_have_text("active")
    expect(row).to_contain_text("platform (every tenant)")

    row.get_by_role("button", name="Send test event").click()
    expect(page.locator("#stream-test-answer")).to_contain_text("Test event to e2e syslog-ng accepted")
    wait_until(lambda: any(line[2] == "audit.stream.test" for line in syslog_ng.lines()), timeout=20)
    received = next(line for line in syslog_ng.lines() if line[2] == "audit.stream.test")
    assert received[3] == "e2e_console"  # the app name typed in the form

    row.get_by_role("button", name="Pause").click()
    expect(row.get_by_label("Status")).to_have_text("paused")
    row.get_by_role("button", name="Resume").click()
    expect(row.get_by_label("Status")).to_have_text("active")
    with console.session() as session:
        stream = session.execute(select(LogStream).where(col(LogStream.name) == "e2e syslog-ng")).scalar_one()
        actions = session.execute(
            select(col(AuditLog.action), col(AuditLog.tenant_id)).where(col(AuditLog.resource_id) == stream.id)
        ).all()
    assert stream.options["app_name"] == "e2e_console"
    assert sorted(actions) == sorted(
        (action, SYSTEM_TENANT) for action in ("audit.stream.create", "audit.stream.pause", "audit.stream.resume")
    )


def test_only_admins_see_streams_and_only_those_of_their_scope(page: Page, console: Console, tmp_path: Path) -> None:
    with console.session() as session:
        for tenant in ("acme", "globex"):
            spec = SPEC.validate_python(
                {"name": f"{tenant} SIEM", "type": "syslog", "target": "127.0.0.1:1", "tenant_id": tenant}
            )
            create_stream(session, SUPER, spec, console.settings.secret_key)

    sign_in(page, "tenant")  # the demo tenant admin holds no audit:admin
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Streams")).to_have_count(0)
    page.goto("/streams")
    expect(page.get_by_role("alert")).to_contain_text("audit:admin")
    expect(page.get_by_role("table")).to_have_count(0)
    expect(page.get_by_text("acme SIEM")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/(\?.*)?$"))
    token = console.token(
        role="tenant_admin", tenant_id="acme", sub="acme-admin", scope="audit:read audit:export audit:admin"
    )
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/events/?$"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Streams").click()
    expect(stream_row(page, "acme SIEM")).to_be_visible()
    expect(page.get_by_text("globex SIEM")).to_have_count(0)
    expect(page.get_by_text("e2e syslog-ng")).to_have_count(0)  # a platform stream, whatever ran before
