"""Log streams over HTTP: configuration per type, write-only encrypted credentials, scope rules,
audit records of every change, replay and the test event (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlmodel import Session, col

from audit_app.api import create_api
from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditLog, LogStream
from audit_app.settings import Settings, get_settings
from tests.api.helpers import World, at, bearer, event
from tests.helpers import TokenFactory
from tests.streams.helpers import ALLOWED_NETWORKS
from tests.streams.receivers import SplunkReceiver, WebhookReceiver

STREAMS = "/api/v1/admin/audit/streams"
SECRET = "whsec-" + "s" * 26
STREAM_KEY = "stream-key-" + "k" * 30


@pytest.fixture(autouse=True)
def stream_key(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test here runs with AUDIT_SECRET_KEY set (one test removes it again), and 127.0.0.1 (the
    receivers') as the one special-purpose address streams may reach."""
    monkeypatch.setenv("AUDIT_SECRET_KEY", STREAM_KEY)
    monkeypatch.setenv("AUDIT_STREAM_ALLOWED_NETWORKS", ALLOWED_NETWORKS)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def admin(make_token: TokenFactory, role: str, **claims: str) -> dict[str, str]:
    """Headers of a token of `role` holding audit:admin."""
    return bearer(make_token(role, scope="audit:read audit:admin", **claims))


def http_stream(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "SIEM webhook",
        "type": "http",
        "target": "https://siem.example.com/ingest",
        "credentials": {"secret": SECRET},
    }
    return body | fields


def register(session: Session, world: World | None = None) -> None:
    """Register the conftest tenants (acme, globex of northwind; initech of southwind; umbrella)."""
    if world is None:
        ingest_events(session, [event(t, at(1)) for t in ("acme", "globex", "initech", "umbrella")])
        session.commit()


def audit_events(session: Session, action: str) -> list[AuditLog]:
    session.expire_all()
    return list(session.execute(select(AuditLog).where(col(AuditLog.action) == action)).scalars())


def test_create_each_type_credentials_are_write_only_and_encrypted(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    register(session)
    headers = admin(make_token, "super_admin")
    bodies = [
        http_stream(options={"header_name": "X-Token"}, credentials={"secret": SECRET, "header_value": "tok-123"}),
        {
            "name": "splunk",
            "type": "splunk_hec",
            "target": "https://hec.example.com:8088/",
            "format": "ocsf",
            "options": {"index": "audit"},
            "credentials": {"token": "splunk-tok-1"},
        },
        {
            "name": "dd",
            "type": "datadog",
            "target": "https://http-intake.logs.datadoghq.eu",
            "credentials": {"api_key": "dd-key-1"},
            "tenant_id": "acme",
        },
        {
            "name": "es",
            "type": "elasticsearch",
            "target": "http://es:9200",
            "partner_id": "northwind",
            "options": {"data_stream": "logs-audit-default"},
            "credentials": {"api_key": "es-key-1"},
        },
        {
            "name": "syslog",
            "type": "syslog",
            "target": "127.0.0.1:6514",
            "options": {"tls": True},
            "results": ["failure", "denied"],
            "action_prefixes": ["user."],
        },
    ]
    created = []
    for body in bodies:
        answer = client.post(STREAMS, json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        created.append(answer.json())
        for secret in ("tok-123", SECRET, "splunk-tok-1", "dd-key-1", "es-key-1"):
            assert secret not in answer.text
    assert [c["credentials_set"] for c in created] == [
        ["header_value", "secret"],
        ["token"],
        ["api_key"],
        ["api_key"],
        [],
    ]
    assert created[1]["target"] == "https://hec.example.com:8088"
    assert (created[2]["tenant_id"], created[3]["partner_id"], created[4]["tenant_id"]) == ("acme", "northwind", None)
    assert all(c["status"] == "active" for c in created)
    listed = client.get(STREAMS, headers=headers)
    assert sorted(s["name"] for s in listed.json()["streams"]) == ["SIEM webhook", "dd", "es", "splunk", "syslog"]
    for secret in ("tok-123", SECRET, "splunk-tok-1", "dd-key-1", "es-key-1"):
        assert secret not in listed.text
    stored = session.execute(text("SELECT credentials FROM log_stream")).scalars().all()
    assert all(secret not in value for value in stored for secret in (SECRET, "tok-123", "splunk-tok-1"))


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (http_stream(type="ftp"), ["body"]),
        (http_stream(target="ftp://x"), ["body", "http", "target"]),
        (http_stream(credentials={}), ["body", "http", "credentials", "secret"]),
        (http_stream(credentials={"secret": "short"}), ["body", "http", "credentials", "secret"]),
        (http_stream(options={"header_name": "X-Token"}), ["body", "http"]),
        (
            http_stream(options={"header_name": "Authorization"}, credentials={"secret": SECRET, "header_value": "v"}),
            ["body", "http", "options", "header_name"],
        ),
        (http_stream(tenant_id="acme", partner_id="northwind"), ["body", "http"]),
        (http_stream(results=["maybe"]), ["body", "http", "results", 0]),
        (http_stream(actions=["bad action"]), ["body", "http", "actions", 0]),
        (http_stream(format="xml"), ["body", "http", "format"]),
        ({"name": "s", "type": "syslog", "target": "no-port"}, ["body", "syslog", "target"]),
        ({"name": "s", "type": "syslog", "target": "h:99999"}, ["body", "syslog", "target"]),
        (
            {
                "name": "e",
                "type": "elasticsearch",
                "target": "http://es",
                "credentials": {"api_key": "k"},
                "options": {"data_stream": "Bad/Name"},
            },
            ["body", "elasticsearch", "options", "data_stream"],
        ),
        (
            {
                "name": "d",
                "type": "datadog",
                "target": "https://dd",
                "credentials": {"api_key": "k"},
                "options": {"unknown": 1},
            },
            ["body", "datadog", "options", "unknown"],
        ),
        (http_stream(tenant_id="nobody"), ["body", "tenant_id"]),
    ],
)
def test_bad_configuration_is_a_422_and_writes_nothing(
    client: TestClient, make_token: TokenFactory, session: Session, body: dict[str, Any], loc: list[Any]
) -> None:
    register(session)
    answer = client.post(STREAMS, json=body, headers=admin(make_token, "super_admin"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][: len(loc)] == loc
    assert session.execute(select(LogStream)).first() is None
    assert audit_events(session, "audit.stream.create") == []


def test_streams_are_refused_without_a_secret_key_outside_demo_mode(
    client: TestClient, make_token: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDIT_SECRET_KEY")
    get_settings.cache_clear()
    answer = client.post(STREAMS, json=http_stream(), headers=admin(make_token, "super_admin"))
    assert answer.status_code == 503
    assert "AUDIT_SECRET_KEY" in answer.json()["detail"]


def test_demo_mode_makes_a_local_key(monkeypatch: pytest.MonkeyPatch, make_token: TokenFactory) -> None:
    monkeypatch.delenv("AUDIT_SECRET_KEY")
    monkeypatch.setenv("AUDIT_DEMO", "1")
    get_settings.cache_clear()
    with TestClient(create_api()) as demo:
        answer = demo.post(STREAMS, json=http_stream(), headers=admin(make_token, "super_admin"))
    assert answer.status_code == 201, answer.text
    assert get_settings().secret_key


def test_scope_rules_tenant_partner_super(client: TestClient, make_token: TokenFactory, session: Session) -> None:
    register(session)
    acme = admin(make_token, "tenant_admin", tenant_id="acme")
    initech = admin(make_token, "tenant_admin", tenant_id="initech")
    northwind = admin(make_token, "partner_admin", partner_id="northwind")
    southwind = admin(make_token, "partner_admin", partner_id="southwind")
    root = admin(make_token, "super_admin")

    own = client.post(STREAMS, json=http_stream(name="acme own"), headers=acme).json()
    assert (own["tenant_id"], own["partner_id"]) == ("acme", None)
    assert client.post(STREAMS, json=http_stream(tenant_id="globex"), headers=acme).status_code == 403
    assert client.post(STREAMS, json=http_stream(partner_id="northwind"), headers=acme).status_code == 403
    partner = client.post(STREAMS, json=http_stream(name="nw"), headers=northwind).json()
    assert (partner["tenant_id"], partner["partner_id"]) == (None, "northwind")
    globex = client.post(STREAMS, json=http_stream(name="globex", tenant_id="globex"), headers=northwind)
    assert globex.status_code == 201
    assert client.post(STREAMS, json=http_stream(tenant_id="initech"), headers=northwind).status_code == 403
    assert client.post(STREAMS, json=http_stream(partner_id="southwind"), headers=northwind).status_code == 403
    platform = client.post(STREAMS, json=http_stream(name="platform"), headers=root).json()
    assert (platform["tenant_id"], platform["partner_id"]) == (None, None)

    def names(headers: dict[str, str]) -> list[str]:
        return [s["name"] for s in client.get(STREAMS, headers=headers).json()["streams"]]

    assert names(acme) == ["acme own"]
    assert names(initech) == []
    assert names(northwind) == ["acme own", "globex", "nw"]
    assert names(southwind) == []
    assert names(root) == ["acme own", "globex", "nw", "platform"]
    for other in (initech, southwind):
        for method, suffix in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/pause"), ("post", "/test")):
            kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "patch" else {}
            answer = client.request(method.upper(), f"{STREAMS}/{own['id']}{suffix}", headers=other, **kwargs)
            assert answer.status_code == 404, (method, suffix, answer.text)
            assert "acme" not in answer.text
    missing = client.get(f"{STREAMS}/00000000-0000-0000-0000-000000000000", headers=root)
    assert missing.status_code == 404
    assert client.get(f"{STREAMS}/{platform['id']}", headers=northwind).status_code == 404
    reader = bearer(make_token("super_admin", scope="audit:read"))
    assert client.get(STREAMS, headers=reader).status_code == 403
    assert client.post(STREAMS, json=http_stream(), headers=reader).status_code == 403


def test_changes_are_audit_events_in_the_owners_tenant(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    register(session)
    acme = admin(make_token, "tenant_admin", tenant_id="acme")
    created = client.post(STREAMS, json=http_stream(), headers=acme).json()
    sid = created["id"]
    (create,) = audit_events(session, "audit.stream.create")
    assert (create.tenant_id, create.resource_type, create.resource_id) == ("acme", "log_stream", sid)
    assert create.details["credentials"] == ["secret"]
    assert SECRET not in str(create.details)

    changed = client.patch(
        f"{STREAMS}/{sid}",
        json={"name": "renamed", "results": ["failure"], "credentials": {"secret": "n" * 20}},
        headers=acme,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["results"]) == ("renamed", ["failure"])
    (update,) = audit_events(session, "audit.stream.update")
    assert update.details["changes"]["name"] == {"from": "SIEM webhook", "to": "renamed"}
    assert update.details["credentials_changed"] == ["secret"]
    assert "n" * 20 not in str(update.details)
    same = client.patch(f"{STREAMS}/{sid}", json={"name": "renamed"}, headers=acme)
    assert same.status_code == 200
    assert len(audit_events(session, "audit.stream.update")) == 1
    bad = client.patch(f"{STREAMS}/{sid}", json={"target": "not a url"}, headers=acme)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["body", "target"]
    assert client.patch(f"{STREAMS}/{sid}", json={"type": "syslog"}, headers=acme).status_code == 422

    assert client.post(f"{STREAMS}/{sid}/pause", headers=acme).json()["status"] == "paused"
    assert client.post(f"{STREAMS}/{sid}/pause", headers=acme).json()["status"] == "paused"
    assert client.post(f"{STREAMS}/{sid}/resume", headers=acme).json()["status"] == "active"
    deleted = client.delete(f"{STREAMS}/{sid}", headers=acme)
    assert deleted.status_code == 200
    assert client.get(f"{STREAMS}/{sid}", headers=acme).status_code == 404
    for action, count in (("pause", 1), ("resume", 1), ("delete", 1)):
        found = audit_events(session, f"audit.stream.{action}")
        assert len(found) == count
        assert all(e.tenant_id == "acme" for e in found)
    (delete,) = audit_events(session, "audit.stream.delete")
    assert delete.id == deleted.json()["audit_event_id"]
    northwind = admin(make_token, "partner_admin", partner_id="northwind")
    client.post(STREAMS, json=http_stream(name="partner-wide"), headers=northwind)
    partner_create = [e for e in audit_events(session, "audit.stream.create") if e.resource_id != sid]
    assert [e.tenant_id for e in partner_create] == ["platform"]
    assert partner_create[0].details["stream"]["partner_id"] == "northwind"


def test_failing_stream_becomes_active_when_its_configuration_changes(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    headers = admin(make_token, "super_admin")
    sid = client.post(STREAMS, json=http_stream(), headers=headers).json()["id"]
    session.execute(text("UPDATE log_stream SET status = 'failing', last_error = 'HTTP 401: bad signature'"))
    session.commit()
    shown = client.get(f"{STREAMS}/{sid}", headers=headers).json()
    assert (shown["status"], shown["health"]["last_error"]) == ("failing", "HTTP 401: bad signature")
    fixed = client.patch(f"{STREAMS}/{sid}", json={"credentials": {"secret": "f" * 24}}, headers=headers).json()
    assert fixed["status"] == "active"


def test_new_streams_start_at_the_tail_and_replay_moves_back(
    client: TestClient, make_token: TokenFactory, session: Session, world: World
) -> None:
    headers = admin(make_token, "super_admin")
    created = client.post(STREAMS, json=http_stream(tenant_id="acme"), headers=headers).json()
    sid = created["id"]
    assert created["health"]["lag_events"] == 1  # its own audit.stream.create, in acme
    ingest_events(session, [event("acme", at(5)), event("globex", at(5)), event("acme", at(5), result="failure")])
    session.commit()
    lag = client.get(f"{STREAMS}/{sid}", headers=headers).json()["health"]
    assert lag["lag_events"] == 3  # the two new acme events and the stream's own audit.stream.create
    assert lag["lag_seconds"] >= 0

    everything = client.post(f"{STREAMS}/{sid}/replay", json={"since": "2000-01-01T00:00:00Z"}, headers=headers)
    assert everything.status_code == 200, everything.text
    acme_total = session.execute(select(col(AuditLog.id)).where(col(AuditLog.tenant_id) == "acme")).all()
    assert everything.json()["pending_events"] == len(acme_total)
    (replay,) = audit_events(session, "audit.stream.replay")
    assert replay.tenant_id == "acme"
    cursor = created["position"]
    back = client.post(f"{STREAMS}/{sid}/replay", json={"cursor": cursor}, headers=headers).json()
    assert back["pending_events"] == 5  # create, two acme events, and both replays' records
    assert back["stream"]["position"] == cursor
    future = client.post(f"{STREAMS}/{sid}/replay", json={"since": "2999-01-01T00:00:00Z"}, headers=headers).json()
    assert future["pending_events"] == 1  # its own replay record only
    for body, loc in (
        ({"cursor": "nonsense"}, ["body", "cursor"]),
        ({}, ["body"]),
        ({"since": "2026-01-01T00:00:00Z", "cursor": cursor}, ["body"]),
        ({"since": "yesterday"}, ["body", "since"]),
    ):
        answer = client.post(f"{STREAMS}/{sid}/replay", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == loc


def test_test_event_shows_the_receivers_answer(client: TestClient, make_token: TokenFactory) -> None:
    headers = admin(make_token, "super_admin")
    receiver = WebhookReceiver(SECRET).start()
    splunk = SplunkReceiver("right-token").start()
    try:
        sid = client.post(STREAMS, json=http_stream(target=receiver.url), headers=headers).json()["id"]
        answer = client.post(f"{STREAMS}/{sid}/test", headers=headers).json()
        assert answer["ok"] is True, answer
        assert "HTTP 200" in answer["answer"]
        assert receiver.ids == [answer["event_id"]]
        assert receiver.events[0]["action"] == "audit.stream.test"
        assert receiver.violations == []
        wrong = {"name": "hec", "type": "splunk_hec", "target": splunk.url, "credentials": {"token": "wrong"}}
        hec = client.post(STREAMS, json=wrong, headers=headers).json()["id"]
        refused = client.post(f"{STREAMS}/{hec}/test", headers=headers).json()
        assert (refused["ok"], refused["status"], refused["retryable"]) == (False, 401, False)
        assert "Invalid authorization" in refused["answer"]
        shown = client.get(f"{STREAMS}/{sid}", headers=headers).json()
        assert shown["health"]["delivered"] == 0
    finally:
        receiver.stop()
        splunk.stop()


@pytest.mark.parametrize(
    ("stream", "refused"),
    [
        (http_stream(target="http://169.254.169.254/latest/meta-data"), "169.254.169.254 is a link-local address"),
        (http_stream(target="http://2852039166/latest"), "resolves to 169.254.169.254, a link-local address"),
        (http_stream(target="https://[::ffff:169.254.169.254]/"), "::ffff:169.254.169.254 is a link-local address"),
        (http_stream(target="http://127.0.0.2:5432"), "127.0.0.2 is a loopback address"),
        (http_stream(target="http://[::1]:8080"), "::1 is a loopback address"),
        (http_stream(target="http://10.20.1.5/"), "10.20.1.5 is a private address"),
        (http_stream(target="http://[fd00::5]/"), "fd00::5 is a private address"),
        (http_stream(target="http://0.0.0.0:8080/"), "0.0.0.0 is an unspecified address"),
        (http_stream(target="http://224.0.0.1/"), "224.0.0.1 is a multicast address"),
        ({"name": "s", "type": "syslog", "target": "127.0.0.2:514"}, "127.0.0.2 is a loopback address"),
        ({"name": "s", "type": "syslog", "target": "[::ffff:10.0.0.1]:6514"}, "a private address"),
    ],
)
def test_targets_on_special_addresses_are_refused_by_field(
    client: TestClient, make_token: TokenFactory, session: Session, stream: dict[str, Any], refused: str
) -> None:
    """Loopback (but the allowed 127.0.0.1), private, link-local (cloud metadata), multicast,
    unspecified, IPv4-mapped and numeric spellings: 422 on `target`, like any other refused field."""
    register(session)
    headers = admin(make_token, "super_admin")
    answer = client.post(STREAMS, json=stream, headers=headers)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", stream["type"], "target"]
    assert refused in error["msg"]
    assert "AUDIT_STREAM_ALLOWED_NETWORKS" in error["msg"]
    assert error["input"] == stream["target"].rstrip("/")  # as the stream would keep it
    assert audit_events(session, "audit.stream.create") == []


def test_a_change_to_a_special_address_is_refused_and_an_allowed_network_passes(
    client: TestClient, make_token: TokenFactory, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(session)
    headers = admin(make_token, "tenant_admin", tenant_id="acme")
    sid = client.post(STREAMS, json=http_stream(), headers=headers).json()["id"]
    bad = client.patch(f"{STREAMS}/{sid}", json={"target": "http://10.20.1.5/ingest"}, headers=headers)
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"][0]["loc"] == ["body", "target"]
    assert "10.20.1.5 is a private address" in bad.json()["detail"][0]["msg"]

    monkeypatch.setenv("AUDIT_STREAM_ALLOWED_NETWORKS", "10.20.0.0/16,127.0.0.1/32")
    get_settings.cache_clear()
    good = client.patch(f"{STREAMS}/{sid}", json={"target": "http://10.20.1.5/ingest"}, headers=headers)
    assert good.status_code == 200, good.text
    assert good.json()["target"] == "http://10.20.1.5/ingest"
    other = client.post(STREAMS, json=http_stream(target="http://10.21.0.1/"), headers=headers)
    assert other.status_code == 422  # only the allowed network
