"""Delivery through the worker to receivers that check each vendor's contract, and the faults:
receiver down then back, 500 then 200, 429 with Retry-After, a slow receiver, refusals, long
failure, pause and replay, two workers. Each time: every event arrives, in feed order, and
duplicates come only from a batch in flight (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit.feed import FeedCursor
from audit_app.audit.ingest import new_event_id
from audit_app.audit.stream_worker import lock_key
from audit_app.audit.streams import StreamChange, change_stream, replay_stream, set_status
from audit_app.models import AuditLog, utcnow
from audit_app.settings import Settings
from tests.streams.helpers import FAST, ROOT, STREAM_KEY, TARGETS, expected_ids, load, new_stream, running, write
from tests.streams.receivers import (
    Answer,
    DatadogReceiver,
    ElasticReceiver,
    SplunkReceiver,
    WebhookReceiver,
    wait_until,
)

SECRET = "whsec-" + "w" * 26


def caught_up(session: Session, sid: str, last: str) -> Callable[[], bool]:
    """Whether stream `sid` has committed the position of event `last`."""
    return lambda: load(session, sid).position_id == last


def webhook(session: Session, receiver: WebhookReceiver, **fields: object) -> str:
    return new_stream(session, type="http", target=receiver.url, credentials={"secret": SECRET}, **fields).id


def test_http_stream_delivers_its_scope_and_filter_in_feed_order(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET, header=("X-Token", "tok")).start()
    try:
        write(session, 1, "acme")
        write(session, 1, "initech")
        sid = new_stream(
            session,
            type="http",
            target=receiver.url,
            partner_id="northwind",
            action_prefixes=["user."],
            results=["success", "failure"],
            options={"header_name": "X-Token"},
            credentials={"secret": SECRET, "header_value": "tok"},
        ).id
        write(session, 120, "acme", batch=7)
        write(session, 30, "globex", action="role.assign")  # not in the filter
        write(session, 20, "initech")  # another partner
        write(session, 15, "globex", result="denied")  # not in the filter
        write(session, 25, "globex", action="user.logout", result="failure")
        want = expected_ids(session, sid, (load(session, sid).position, load(session, sid).position_id))
        assert len(want) == 145
        with running(stream_settings.database_url):
            wait_until(lambda: len(receiver.ids) >= 145)
            wait_until(lambda: load(session, sid).delivered == 145)
        assert receiver.ids == want
        assert receiver.violations == []
        assert {doc["tenant_id"] for doc in receiver.events} == {"acme", "globex"}
        stream = load(session, sid)
        assert (stream.position_id, stream.failed, stream.last_error) == (want[-1], 0, None)
        assert stream.last_success_at is not None
    finally:
        receiver.stop()


def test_splunk_datadog_elastic_contracts(stream_settings: Settings, session: Session) -> None:
    splunk = SplunkReceiver("hec-token").start()
    datadog = DatadogReceiver("dd-key").start()
    elastic = ElasticReceiver("es-key", "logs-audit-default").start()
    try:
        streams = {
            "splunk": new_stream(
                session,
                type="splunk_hec",
                target=splunk.url,
                options={"index": "audit"},
                credentials={"token": "hec-token"},
            ).id,
            "datadog": new_stream(
                session, type="datadog", target=datadog.url, format="ocsf", credentials={"api_key": "dd-key"}
            ).id,
            "elastic": new_stream(
                session,
                type="elasticsearch",
                target=elastic.url,
                options={"data_stream": "logs-audit-default"},
                credentials={"api_key": "es-key"},
            ).id,
        }
        write(session, 2600, "acme", batch=500)
        timing = replace(FAST, batch_size=2500)
        pairs = ((splunk, streams["splunk"]), (datadog, streams["datadog"]), (elastic, streams["elastic"]))
        wants = {sid: expected_ids(session, sid, (-1, "")) for sid in streams.values()}
        with running(stream_settings.database_url, timing):
            for _receiver, sid in pairs:
                wait_until(caught_up(session, sid, wants[sid][-1]))
        for receiver, sid in pairs:
            assert receiver.violations == []
            want = wants[sid][wants[sid].index(sid_create_event(session, sid)) :]
            assert receiver.ids == want
        assert datadog.largest_array == 1000  # 2,500-event batches were split as the intake requires
        assert datadog.events[0]["class_uid"]  # OCSF documents
    finally:
        for receiver in (splunk, datadog, elastic):
            receiver.stop()


def sid_create_event(session: Session, sid: str) -> str:
    """The id of the audit.stream.create event of stream `sid` (the first event it delivers)."""
    return session.execute(
        select(col(AuditLog.id)).where(col(AuditLog.action) == "audit.stream.create", col(AuditLog.resource_id) == sid)
    ).scalar_one()


def test_elastic_item_errors_retry_the_items_and_refusals_mark_failing(
    stream_settings: Settings, session: Session
) -> None:
    elastic = ElasticReceiver("es-key", "logs-audit-default").start()
    try:
        sid = new_stream(
            session,
            type="elasticsearch",
            target=elastic.url,
            tenant_id=None,
            options={"data_stream": "logs-audit-default"},
            credentials={"api_key": "es-key"},
        ).id
        ids = write(session, 10, "acme")
        elastic.item_script[ids[3]] = 429
        with running(stream_settings.database_url):
            wait_until(lambda: set(ids) <= set(elastic.ids))
            wait_until(lambda: load(session, sid).delivered >= 11)
            assert load(session, sid).failed == 1
            bad = [new_event_id() for _ in range(5)]
            elastic.item_script[bad[2]] = 400  # before the write: the running worker may send it at once
            write(session, 5, "acme", ids=bad)
            wait_until(lambda: load(session, sid).status == "failing")
        stream = load(session, sid)
        assert "mapper_parsing_exception" in (stream.last_error or "")
        assert bad[2] not in elastic.ids
        assert elastic.ids == list(dict.fromkeys(elastic.ids))  # the retried batch's 409s add no duplicates
    finally:
        elastic.stop()


def test_receiver_down_then_back(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET)
    sid = webhook(session, receiver)
    start = (load(session, sid).position, load(session, sid).position_id)
    with running(stream_settings.database_url):
        write(session, 40, "acme")
        wait_until(lambda: load(session, sid).failed >= 3)  # refused connections, retried with backoff
        assert load(session, sid).status == "active"
        assert "cannot reach the receiver" in (load(session, sid).last_error or "")
        receiver.start()
        try:
            write(session, 40, "globex")
            want = expected_ids(session, sid, start)
            wait_until(lambda: len(receiver.ids) >= len(want))
            wait_until(lambda: load(session, sid).position_id == want[-1])
        finally:
            receiver.stop()
    assert receiver.ids == want
    assert load(session, sid).failing_since is None


def test_500_then_200_and_429_retry_after(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET).start()
    try:
        sid = webhook(session, receiver)
        start = (load(session, sid).position, load(session, sid).position_id)
        receiver.script = [Answer(500, "boom"), Answer(503, "busy"), Answer(429, "slow down", {"Retry-After": "1"})]
        with running(stream_settings.database_url):
            write(session, 30, "acme")
            wait_until(lambda: receiver.requests >= 3)
            asked = time.monotonic()
            wait_until(lambda: receiver.requests >= 4)
            waited = time.monotonic() - asked
            want = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == want[-1])
        assert waited >= 0.8  # the third answer asked for a second (retries otherwise back off from 0.05 s)
        assert receiver.ids == want
        stream = load(session, sid)
        assert stream.failed == 3
        assert stream.last_error == "HTTP 429: slow down"
        assert stream.status == "active"
    finally:
        receiver.stop()


def test_slow_receiver_keeps_order_and_batches(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET).start()
    receiver.delay = 0.3
    try:
        sid = webhook(session, receiver)
        start = (load(session, sid).position, load(session, sid).position_id)
        with running(stream_settings.database_url):
            for _ in range(4):
                write(session, 40, "acme", batch=5)
            want = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == want[-1], timeout=30)
        assert receiver.ids == want
        assert receiver.requests < len(want) / 10  # events written meanwhile went out together
    finally:
        receiver.stop()


def test_a_batch_read_ahead_is_not_sent_once_the_stream_changed(stream_settings: Settings, session: Session) -> None:
    """While a full batch is in flight the runner reads the next one; the filter changes before the
    first is acknowledged, so the batch read ahead (role.assign events) is read again under the new
    filter and never sent."""
    receiver = WebhookReceiver(SECRET).start()
    receiver.gate = threading.Event()
    try:
        write(session, 1, "acme")  # a registered tenant
        sid = webhook(session, receiver, tenant_id="acme")
        start = (load(session, sid).position, load(session, sid).position_id)
        logins = write(session, 10, "acme")
        write(session, 10, "acme", action="role.assign")
        logins += write(session, 5, "acme")
        before = expected_ids(session, sid, start)  # the stream's own create record, then the 25
        with running(stream_settings.database_url, replace(FAST, batch_size=10)):
            wait_until(lambda: receiver.arrived == 1)  # the first batch is in flight, held
            time.sleep(0.3)  # the read ahead of the second batch happens meanwhile
            change_stream(session, ROOT, sid, StreamChange(actions=["user.login"]), STREAM_KEY, TARGETS)
            receiver.gate.set()
            want = before[:10] + [i for i in before[10:] if i in set(logins)]
            wait_until(caught_up(session, sid, want[-1]))
        assert receiver.ids == want
    finally:
        receiver.gate.set()
        receiver.stop()


def test_refusal_marks_failing_with_the_answer_and_a_fix_resumes(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET).start()
    try:
        sid = new_stream(session, type="http", target=receiver.url, credentials={"secret": "wrong-" + "x" * 20}).id
        start = (load(session, sid).position, load(session, sid).position_id)
        with running(stream_settings.database_url):
            write(session, 20, "acme")
            wait_until(lambda: load(session, sid).status == "failing")
            stream = load(session, sid)
            assert stream.last_error == 'HTTP 401: {"error": "bad signature"}'
            assert (stream.failed, stream.delivered) == (1, 0)
            write(session, 5, "acme")
            change_stream(session, ROOT, sid, StreamChange(credentials={"secret": SECRET}), STREAM_KEY, TARGETS)
            want = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == want[-1])
        assert receiver.ids == want
    finally:
        receiver.stop()


def test_long_failure_marks_failing(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET).start()
    receiver.script = [Answer(503, "down for maintenance")] * 1000
    try:
        sid = webhook(session, receiver)
        timing = replace(FAST, failing_after=timedelta(seconds=1))
        with running(stream_settings.database_url, timing):
            write(session, 3, "acme")
            wait_until(lambda: load(session, sid).status == "failing")
        stream = load(session, sid)
        assert stream.last_error == "HTTP 503: down for maintenance"
        assert stream.failing_since is not None
        assert utcnow() - stream.failing_since >= timedelta(seconds=1)
        assert stream.failed >= 2
    finally:
        receiver.stop()


def pause_and_wait(session: Session, sid: str) -> None:
    """Pause a stream and wait until its worker let go of it (a batch read just before goes out)."""
    set_status(session, ROOT, sid, "paused")
    wait_until(lambda: load(session, sid).lease_holder is None)


def test_pause_stops_and_replay_redelivers(stream_settings: Settings, session: Session) -> None:
    receiver = WebhookReceiver(SECRET).start()
    try:
        sid = webhook(session, receiver, tenant_id=None)
        start = (load(session, sid).position, load(session, sid).position_id)
        with running(stream_settings.database_url):
            write(session, 10, "acme")
            first = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == first[-1])
            pause_and_wait(session, sid)
            at_pause = receiver.ids
            assert at_pause in (first, expected_ids(session, sid, start)[: len(first) + 1])  # + the pause record
            write(session, 10, "acme")
            time.sleep(FAST.poll_seconds * 6)
            assert receiver.ids == at_pause
            set_status(session, ROOT, sid, "active")
            everything = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == everything[-1])
            assert receiver.ids == everything
            pause_and_wait(session, sid)
            delivered = receiver.ids
            _, pending = replay_stream(session, ROOT, sid, cursor=load_cursor(start))
            set_status(session, ROOT, sid, "active")
            again = expected_ids(session, sid, start)
            assert pending == len(again) - 1  # the resume record came after the count
            wait_until(lambda: load(session, sid).position_id == again[-1])
        assert receiver.ids == delivered + again
    finally:
        receiver.stop()


def load_cursor(start: tuple[int, str]) -> str:
    return FeedCursor(position=start[0], event_id=start[1]).encode()


def test_two_workers_share_streams_one_worker_per_stream(stream_settings: Settings, session: Session) -> None:
    receivers = [WebhookReceiver(SECRET).start() for _ in range(3)]
    try:
        sids = [webhook(session, receiver, name=f"s{i}") for i, receiver in enumerate(receivers)]
        starts = [(load(session, s).position, load(session, s).position_id) for s in sids]
        # Leases long enough that a loaded machine cannot let one lapse mid-batch (a lapsed lease
        # hands the stream over with its batch in flight: the duplicates at-least-once allows).
        timing = replace(FAST, lease_seconds=20.0)
        with (
            running(stream_settings.database_url, timing, worker_id="w-a"),
            running(stream_settings.database_url, timing, worker_id="w-b"),
        ):
            for _ in range(5):
                write(session, 30, "acme", batch=3)
                write(session, 30, "globex", batch=3)
            wants = [expected_ids(session, s, start) for s, start in zip(sids, starts, strict=True)]
            for sid, want in zip(sids, wants, strict=True):
                wait_until(caught_up(session, sid, want[-1]))
            holders = {load(session, s).lease_holder for s in sids}
            assert holders <= {"w-a", "w-b"}
        for receiver, want in zip(receivers, wants, strict=True):
            assert receiver.ids == want  # no duplicates at all: never two workers on one stream
    finally:
        for receiver in receivers:
            receiver.stop()
    assert len({lock_key(s) for s in sids}) == 3
