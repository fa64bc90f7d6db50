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

from audit_app.audit.stream_delivery import DeliveryError, SyslogSender, sample_event, sender_for
from audit_app.audit.streams import SPEC, StreamChange, change_stream
from audit_app.models import utcnow
from audit_app.settings import Settings
from tests.certs import CertificateAuthority
from tests.streams.helpers import ROOT, STREAM_KEY, TARGETS, expected_ids, load, new_stream, running, write
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
    sender = sender_for(spec, 1.0, TARGETS)
    with pytest.raises(DeliveryError) as failure:
        sender.send([sample_event("sid", "s", "acme", None, utcnow())])
    assert failure.value.retryable
    assert "cannot connect" in str(failure.value)


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def syslog_ng_tls(tmp_path: Path, authority: CertificateAuthority) -> Iterator[SyslogNg]:
    """syslog-ng with a TLS source whose certificate (for 127.0.0.1 and localhost) `authority` signed."""
    key_cert = authority.server("127.0.0.1", "localhost").write(tmp_path / "tls", "server")
    with running_syslog_ng(tmp_path / "syslog-ng", tls=key_cert) as server:
        yield server


def test_syslog_over_tls_verifies_the_receiver_with_the_streams_ca(
    stream_settings: Settings, session: Session, syslog_ng_tls: SyslogNg, authority: CertificateAuthority
) -> None:
    """The stream trusts the CA given in `options.tls_ca`: every event arrives in syslog-ng through
    TLS, over batches on one connection and across a receiver restart."""
    sid = new_stream(
        session,
        type="syslog",
        target=f"127.0.0.1:{syslog_ng_tls.port}",
        tenant_id=None,
        options={"tls": True, "tls_ca": authority.cert_pem, "hostname": "audit-host"},
    ).id
    start = (load(session, sid).position, load(session, sid).position_id)
    with running(stream_settings.database_url):
        for _ in range(3):
            write(session, 20, "acme")
            want = expected_ids(session, sid, start)
            wait_until(lambda: load(session, sid).position_id == want[-1])  # noqa: B023
        syslog_ng_tls.stop()
        write(session, 10, "globex")
        time.sleep(0.3)
        syslog_ng_tls.start()
        want = expected_ids(session, sid, start)
        wait_until(lambda: len(syslog_ng_tls.lines()) >= len(want))
    lines = syslog_ng_tls.lines()
    assert [line[0] for line in lines] == want  # each once, in order
    assert all(line[4] == "audit-host" for line in lines)
    assert load(session, sid).status == "active"  # the restart's refused connections were retried


def test_syslog_over_tls_refuses_an_unverified_receiver(
    stream_settings: Settings, session: Session, syslog_ng_tls: SyslogNg, authority: CertificateAuthority
) -> None:
    """Without the CA (system store), with another CA, or with a certificate for another name, the
    stream sends nothing and goes `failing` saying why; given the right CA it delivers."""
    target = f"127.0.0.1:{syslog_ng_tls.port}"
    event = sample_event("sid", "s", "acme", None, utcnow())
    for options in ({"tls": True}, {"tls": True, "tls_ca": CertificateAuthority().cert_pem}):
        spec = SPEC.validate_python({"name": "s", "type": "syslog", "target": target, "options": options})
        sender = sender_for(spec, 3.0, TARGETS)
        with pytest.raises(DeliveryError) as refused:
            sender.send([event])
        sender.close()
        assert not refused.value.retryable
        assert str(refused.value) == "TLS: unable to get local issuer certificate"
    by_name = SPEC.validate_python(
        {
            "name": "s",
            "type": "syslog",
            "target": f"localhost:{syslog_ng_tls.port}",
            "options": {"tls": True, "tls_ca": authority.cert_pem},
        }
    )
    sender = sender_for(by_name, 3.0, TARGETS)  # the certificate names localhost too
    assert isinstance(sender, SyslogSender)
    assert sender.send([event]).startswith("1 message(s) written")
    connection = sender.sock
    time.sleep(0.2)  # whatever TLS records follow the handshake (session tickets) are no close
    sender.send([event])
    assert sender.sock is connection  # one connection for both batches
    sender.close()

    sid = new_stream(session, type="syslog", target=target, tenant_id=None, options={"tls": True}).id
    start = (load(session, sid).position, load(session, sid).position_id)
    with running(stream_settings.database_url):
        write(session, 5, "acme")
        wait_until(lambda: load(session, sid).status == "failing")
        stream = load(session, sid)
        assert stream.last_error == "TLS: unable to get local issuer certificate"
        assert stream.delivered == 0
        change_stream(
            session, ROOT, sid, StreamChange(options={"tls": True, "tls_ca": authority.cert_pem}), STREAM_KEY, TARGETS
        )
        want = expected_ids(session, sid, start)
        wait_until(lambda: load(session, sid).position_id == want[-1])
    wait_until(lambda: len(syslog_ng_tls.lines()) >= len(want) + 2)
    assert [line[0] for line in syslog_ng_tls.lines()] == [event.id, event.id, *want]  # test events, then the stream


def test_syslog_over_tls_checks_the_name(tmp_path: Path, authority: CertificateAuthority) -> None:
    """A certificate the CA signed for another name is refused."""
    key_cert = authority.server("siem.example.com").write(tmp_path / "tls", "other")
    with running_syslog_ng(tmp_path / "syslog-ng", tls=key_cert) as server:
        spec = SPEC.validate_python(
            {
                "name": "s",
                "type": "syslog",
                "target": f"127.0.0.1:{server.port}",
                "options": {"tls": True, "tls_ca": authority.cert_pem},
            }
        )
        sender = sender_for(spec, 3.0, TARGETS)
        with pytest.raises(DeliveryError) as refused:
            sender.send([sample_event("sid", "s", "acme", None, utcnow())])
        sender.close()
    assert not refused.value.retryable
    assert str(refused.value) == "TLS: IP address mismatch, certificate is not valid for '127.0.0.1'."
    assert server.lines() == []
