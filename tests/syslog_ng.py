"""A real syslog-ng (Debian's syslog-ng-core) on a loopback port, writing each message it receives
as one line of a file the tests read back: the receiver of the `syslog` stream tests and of the
console's Streams page test. Over plain TCP, or TLS with a given key and certificate."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.cluster import free_port

SYSLOG_NG = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
CONFIG = """@version: 3.38
options {{ chain_hostnames(no); keep_hostname(yes); stats_freq(0); }};
source s_net {{ syslog(ip("127.0.0.1") port({port}) {transport} max-connections(10)); }};
destination d_file {{ file("{out}" template("${{.SDATA.audit@32473.id}}\\t${{.SDATA.audit@32473.tenant}}\\t\
${{MSGID}}\\t${{PROGRAM}}\\t${{HOST}}\\t${{PRI}}\\t${{.SDATA.audit@32473.details}}\\t${{MSG}}\\n")); }};
log {{ source(s_net); destination(d_file); }};
"""


@dataclass
class SyslogNg:
    """A syslog-ng process listening on `port`, writing each message as one line of `out`; over TLS
    when `tls` holds its key and certificate files (clients present no certificate)."""

    port: int
    out: Path
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    tls: tuple[Path, Path] | None = None

    def start(self) -> None:
        config = self.workdir / "syslog-ng.conf"
        transport = 'transport("tcp")'
        if self.tls is not None:
            key, cert = self.tls
            transport = f'transport("tls") tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))'
        config.write_text(CONFIG.format(port=self.port, out=self.out, transport=transport))
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


@contextmanager
def running_syslog_ng(workdir: Path, tls: tuple[Path, Path] | None = None) -> Iterator[SyslogNg]:
    """syslog-ng listening on a free loopback port for the block, over TLS with `tls` (key, certificate)
    (skipped when not installed, failed under CI)."""
    if not os.access(SYSLOG_NG, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("syslog-ng is required under CI (apt-get install syslog-ng-core)")
        pytest.skip("syslog-ng is not installed (apt-get install syslog-ng-core)")
    workdir.mkdir(parents=True, exist_ok=True)
    server = SyslogNg(port=free_port(), out=workdir / "messages.log", workdir=workdir, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
