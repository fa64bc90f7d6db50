"""The Streams page: a syslog stream created in the console delivers its test event into a real
syslog-ng, a bad target is refused by field, pause and resume are recorded, and the page keeps
to the caller's scope (and to principals with audit:admin)."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import col

from audit_app.audit.filters import SYSTEM_TENANT
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.stream_worker import StreamWorker
from audit_app.audit.streams import SPEC, create_stream, full_spec
from audit_app.auth import Principal
from audit_app.db import unpooled_engine
from audit_app.models import AuditLog, LogStream
from tests.e2e.conftest import E2E_STREAM_KEY, SEED_EVENTS, Console, sign_in
from tests.streams.helpers import FAST
from tests.streams.receivers import free_port, wait_until
from tests.syslog_ng import SyslogNg, running_syslog_ng

SUPER = Principal(sub="e2e-streams", email="", role="super_admin", scopes=frozenset({"audit:admin"}))


@pytest.fixture(scope="module")
def syslog_ng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyslogNg]:
    with running_syslog_ng(tmp_path_factory.mktemp("syslog-ng")) as server:
        yield server


@contextmanager
def delivering(console: Console) -> Iterator[None]:
    """A stream worker on the console's database for the block; a stream fails after a second of errors."""
    timing = dataclasses.replace(FAST, failing_after=timedelta(seconds=1), batch_size=500)
    worker = StreamWorker(
        unpooled_engine(console.database_url),
        E2E_STREAM_KEY,
        timing,
        targets=TargetPolicy.of(console.settings),  # demo mode, as the console: loopback allowed
        worker_id="e2e-worker",
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop.set()
        thread.join(15)


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
            create_stream(session, SUPER, spec, console.settings.secret_key, TargetPolicy.of(console.settings))

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

    # credentials are write-only: never shown back, kept by an edit unless retyped
    secret = "acme-signing-secret-" + "q" * 12
    page.get_by_role("button", name="New stream").click()
    form = page.get_by_role("form", name="New stream")
    form.get_by_label("Type", exact=True).select_option("http")
    form.get_by_label("Name", exact=True).fill("acme webhook")
    form.get_by_label("Target", exact=True).fill("https://hooks.acme.example/audit")
    form.get_by_label("Signing secret").fill(secret)
    form.get_by_role("button", name="Create stream").click()
    row = stream_row(page, "acme webhook")
    expect(row).to_contain_text("tenant acme")
    row.get_by_role("button", name="Edit").click()
    form = page.get_by_role("form", name="Edit stream")
    expect(form.get_by_label("Signing secret")).to_have_value("")
    expect(form).to_contain_text("stored; leave empty to keep it")
    form.get_by_label("Name", exact=True).fill("acme webhook v2")
    form.get_by_role("button", name="Save changes").click()
    expect(stream_row(page, "acme webhook v2")).to_be_visible()
    assert secret not in page.content()
    with console.session() as session:
        stream = session.execute(select(LogStream).where(col(LogStream.name) == "acme webhook v2")).scalar_one()
        assert stream.tenant_id == "acme"
        assert full_spec(console.settings.secret_key, stream).credentials.model_dump() == {
            "secret": secret,
            "header_value": None,
        }


def test_a_failing_stream_recovers_when_fixed_and_its_replay_shows_progress(
    page: Page, console: Console, syslog_ng: SyslogNg
) -> None:
    with console.session() as session:
        spec = SPEC.validate_python({"name": "e2e wrong port", "type": "syslog", "target": f"127.0.0.1:{free_port()}"})
        stream_id = create_stream(
            session, SUPER, spec, console.settings.secret_key, TargetPolicy.of(console.settings)
        ).id
    sign_in(page, "super")
    page.goto("/streams")
    row = stream_row(page, "e2e wrong port")
    with delivering(console):
        row.get_by_role("button", name="Replay").click()
        replay = page.get_by_role("form", name="Replay stream")
        replay.get_by_label("Redeliver from").fill("2000-01-01 00:00")  # every event
        replay.get_by_role("button", name="Replay").click()
        progress = page.locator("#stream-replay-progress")
        expect(progress).to_contain_text(re.compile(r"[\d,]+ of [\d,]+ events delivered"))
        expect(progress).to_contain_text("the stream is failing")  # nobody listens on that port
        page.get_by_role("button", name="Refresh").click()
        expect(row.get_by_label("Status")).to_have_text("failing")
        expect(row).to_contain_text("cannot connect to 127.0.0.1:")

        row.get_by_role("button", name="Edit").click()
        form = page.get_by_role("form", name="Edit stream")
        form.get_by_label("Target", exact=True).fill(f"127.0.0.1:{syslog_ng.port}")
        form.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status").filter(has_text="Saved stream")).to_be_visible()
        expect(progress).to_contain_text("finished", timeout=60_000)  # the worker delivered every replayed event
        expect(row.get_by_label("Status")).to_have_text("active")
        expect(row).not_to_contain_text("never")  # a last success is shown
    total = int(re.search(r"of ([\d,]+) events", progress.inner_text())[1].replace(",", ""))  # type: ignore[index]
    assert total > SEED_EVENTS
    delivered_ids = {line[0] for line in syslog_ng.lines()}
    with console.session() as session:
        ids = set(session.execute(select(col(AuditLog.id))).scalars())
    assert len(ids & delivered_ids) >= total - 1  # all but, at most, the replay's own record (delivered later)

    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Delete stream e2e wrong port?")
    dialog.get_by_role("button", name="Delete stream").click()
    expect(stream_row(page, "e2e wrong port")).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="Deleted stream")).to_be_visible()
    with console.session() as session:
        assert session.get(LogStream, stream_id) is None
        recorded = session.execute(
            select(col(AuditLog.action)).where(col(AuditLog.resource_id) == stream_id).order_by(col(AuditLog.chain_seq))
        ).scalars()
        assert list(recorded) == [
            "audit.stream.create",
            "audit.stream.replay",
            "audit.stream.update",
            "audit.stream.delete",
        ]
