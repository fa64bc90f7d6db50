"""A `syslog` stream into a real syslog-ng (Debian's syslog-ng-core) on a loopback port, writing a
file the test reads back: RFC 5424 with octet counting, structured data holding the event, and a
receiver restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from audit_app.audit.stream_delivery import DeliveryError, sample_event, sender_for
from audit_app.audit.streams import SPEC
from audit_app.models import utcnow
from audit_app.settings import Settings
from tests.streams.conftest import expected_ids, load, new_stream, running, write
from tests.streams.receivers import free_port, wait_until

SYSLOG_NG = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
CONFIG = """@version: 3.38
options {{ chain_hostnames(no); keep_hostname(yes); stats_freq(0); }};
source s_net {{ syslog(ip("127.0.0.1") port({port}) transport("tcp") max-connections(10)); }};
destination d_file {{ file("{out}" template("${{.SDATA.audit@32473.id}}\\t${{.SDATA.audit@32473.tenant}}\\t\
${{MSGID}}\\t${{PROGRAM}}\\t${{HOST}}\\t${{PRI}}\\t${{.SDATA.audit@32473.details}}\\t${{MSG}}\\n")); }};
log {{ source(s_net); destination(d_file); }};
"""


@dataclass
class SyslogNg:
    """A syslog-ng process listening on `port`, writing each message as one line of `out`."""

    port: int
    out: Path
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.workdir / "syslog-ng.conf"
        config.write_text(CONFIG.format(port=self.port, out=self.out))
        self.process = subprocess.Popen(
            [
                SYSLOG_NG,
                "-F",
                "-e",
                "-f",
                str(config),
                "-R",
                str(self.workdir / "persist"),
                "-p",
                str(self.workdir / "pid"),
                "-c",
                str(self.workdir / "ctl"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "syslog-ng.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "syslog-ng.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("syslog-ng did not start listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None

    def lines(self) -> list[list[str]]:
        if not self.out.exists():
            return []
        return [line.split("\t", 7) for line in self.out.read_text().splitlines() if line.strip()]


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[SyslogNg]:
    if not os.access(SYSLOG_NG, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("syslog-ng is required under CI (apt-get install syslog-ng-core)")
        pytest.skip("syslog-ng is not installed (apt-get install syslog-ng-core)")
    workdir = tmp_path / "syslog-ng"
    workdir.mkdir()
    server = SyslogNg(port=free_port(), out=workdir / "messages.log", workdir=workdir)
    server.start()
    yield server
    server.stop()


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
