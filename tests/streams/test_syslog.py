"""A `syslog` stream into a real syslog-ng (Debian's syslog-ng-core) on a loopback port, writing a
file the test reads back: RFC 5424 with octet counting, structured data holding the event, and a
receiver restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from audit_app.audit.stream_delivery import DeliveryError, sample_event, sender_for
from audit_app.audit.streams import SPEC
from audit_app.models import utcnow
from audit_app.settings import Settings
from tests.streams.helpers import expected_ids, load, new_stream, running, write
from tests.streams.receivers import free_port, wait_until
from tests.syslog_ng import SyslogNg, running_syslog_ng


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[SyslogNg]:
    with running_syslog_ng(tmp_path / "syslog-ng") as server:
        yield server


def test_syslog_stream_into_syslog_ng(stream_settings: Settings, session: Session, syslog_ng: SyslogNg) -> None:
    sid = new_stream(
        session,
        type="syslog",
        target=f"127.0.0.1:{syslog_ng.port}",
        tenant_id=None,
        options={"hostname": "audit-host", "app_name": "audit_app"},
    ).id
    start = (load(session, sid).position, load(session, sid).position_id)
    write(session, 30, "acme")
    with running(stream_settings.database_url):
        write(session, 30, "globex", action="role.assign", result="denied")
        want = expected_ids(session, sid, start)
        wait_until(lambda: len(syslog_ng.lines()) >= len(want))
        wait_until(lambda: load(session, sid).position_id == want[-1])
        syslog_ng.stop()  # the receiver restarts: the worker reconnects
        write(session, 20, "acme")
        time.sleep(0.3)
        syslog_ng.start()
        want = expected_ids(session, sid, start)
        wait_until(lambda: len(syslog_ng.lines()) >= len(want))
    lines = syslog_ng.lines()
    assert [line[0] for line in lines] == want
    by_action = {line[2]: line for line in lines}
    denied = by_action["role.assign"]
    assert denied[1] == "globex"
    assert (denied[3], denied[4]) == ("audit_app", "audit-host")
    assert denied[5] == str(13 * 8 + 4)  # facility log audit, severity warning for a denial
    document = json.loads(denied[7])
    assert document["id"] == denied[0]
    assert document["result"] == "denied"
    assert json.loads(denied[6]) == document["details"]  # the structured data holds the event


def test_syslog_test_event_and_unreachable_receiver() -> None:
    spec = SPEC.validate_python({"name": "s", "type": "syslog", "target": f"127.0.0.1:{free_port()}"})
    sender = sender_for(spec, 1.0)
    with pytest.raises(DeliveryError) as failure:
        sender.send([sample_event("sid", "s", "acme", None, utcnow())])
    assert failure.value.retryable
    assert "cannot connect" in str(failure.value)
