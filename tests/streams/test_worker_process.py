"""The worker as its own process (`python -m audit_app stream`): killed with SIGKILL mid-batch and
restarted, no event is lost, order is kept, and only the batch in flight arrives twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from audit_app.settings import Settings
from tests.streams.helpers import ALLOWED_NETWORKS, STREAM_KEY, expected_ids, first_occurrences, load, new_stream, write
from tests.streams.receivers import WebhookReceiver, wait_until

SECRET = "whsec-" + "p" * 26
BATCH = 20
ROOT_DIR = Path(__file__).resolve().parents[2]


def worker_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    return env | {
        "PYTHONPATH": str(ROOT_DIR),  # this checkout's audit_app, whatever the editable install points at
        "AUDIT_DATABASE_URL": database_url,
        "AUDIT_SECRET_KEY": STREAM_KEY,
        "AUDIT_STREAM_ALLOWED_NETWORKS": ALLOWED_NETWORKS,
        "AUDIT_STREAM_BATCH_SIZE": str(BATCH),
        "AUDIT_STREAM_POLL_SECONDS": "0.05",
        "AUDIT_STREAM_RETRY_BASE_SECONDS": "0.05",
        "AUDIT_STREAM_RETRY_MAX_SECONDS": "0.5",
        "AUDIT_STREAM_LEASE_SECONDS": "2",
        "AUDIT_STREAM_CLAIM_SECONDS": "0.1",
        "AUDIT_STREAM_TIMEOUT_SECONDS": "5",
    }


@pytest.fixture
def workers(stream_settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(15)


def start_worker(url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "audit_app", "stream", "--worker-id", name],
        env=worker_env(url),
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def test_sigkill_mid_batch_then_restart(
    stream_settings: Settings, session: Session, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    receiver = WebhookReceiver(SECRET).start()
    receiver.delay = 0.4  # every batch is in flight for a while
    try:
        sid = new_stream(session, type="http", target=receiver.url, credentials={"secret": SECRET}).id
        start = (load(session, sid).position, load(session, sid).position_id)
        write(session, 200, "acme", batch=25)
        want = expected_ids(session, sid, start)
        log = tmp_path / "worker.log"
        first = start_worker(stream_settings.database_url, "first", log)
        workers.append(first)
        wait_until(lambda: load(session, sid).delivered >= 2 * BATCH, timeout=180)
        in_flight = receiver.requests
        wait_until(lambda: receiver.requests > in_flight)  # a batch was just sent and not yet answered
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        committed = load(session, sid).delivered
        second = start_worker(stream_settings.database_url, "second", log)
        workers.append(second)
        wait_until(lambda: load(session, sid).position_id == want[-1], timeout=180)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0, log.read_text()
    finally:
        receiver.stop()
    got = receiver.ids
    assert first_occurrences(got) == want  # nothing lost, feed order kept
    repeated = len(got) - len(want)
    assert repeated <= BATCH  # only the batch in flight came twice
    if repeated:
        twice = got[committed : committed + repeated]
        assert twice == want[committed : committed + repeated]
    assert load(session, sid).lease_holder is None
