"""The console shows a large export's progress as the server streams it, and Cancel stops the stream.

The console runs with AUDIT_EXPORT_ROWS_PER_SECOND (a real setting: it caps every export's pace)
so that an export of SEED_EVENTS rows takes about SEED_EVENTS / RATE seconds on any machine.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import select
from sqlmodel import col

from audit_app.models import AuditLog
from tests.e2e.conftest import DOCS, ENV_ASSET, Console, _pin_backend_port, running_console, sign_in
from tests.reflex_server import log_tail

pytestmark = pytest.mark.e2e
SEED_EVENTS = 9_000  # under the count cap of 10,000, so the page shows exact totals
RATE = 300  # rows per second: the whole view takes about thirty seconds, time to page and cancel on a busy machine
WAIT = 20_000  # ms: a progress update comes with each chunk of 1,000 rows (every 3.3 s); pages may load slowly
RUNNING = re.compile(r"Export in CSV: ([\d,]+) of ([\d,]+) rows sent")


@pytest.fixture(scope="module")
def paced_console(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Console]:
    """A console whose exports stream at most RATE rows a second."""
    extra_env = {"AUDIT_EXPORT_ROWS_PER_SECOND": str(RATE)}
    workdir = tmp_path_factory.mktemp("paced_console")
    with running_console(workdir, seed_events=SEED_EVENTS, extra_env=extra_env) as (console, _pid):
        yield console
        if request.session.testsfailed:
            print(f"\n--- paced console server log ({console.log}) ---\n{log_tail(console.log, 200)}")


@pytest.fixture
def paced_page(browser: Browser, paced_console: Console) -> Iterator[Page]:
    """A fresh browser profile on the paced console."""
    context = browser.new_context(
        base_url=paced_console.base_url, viewport={"width": 1440, "height": 1000}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, paced_console.base_url))
    page = context.new_page()
    yield page
    context.close()


def _sent(panel: Locator) -> tuple[int, int]:
    """Rows sent and rows in the view, as the panel says them now."""
    found = RUNNING.search(panel.inner_text())
    assert found is not None, panel.inner_text()
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def _export_end(console: Console) -> AuditLog:
    with console.session() as session:
        stmt = select(AuditLog).where(col(AuditLog.action) == "audit.export.end").order_by(col(AuditLog.ingested_at))
        return list(session.execute(stmt).scalars())[-1]


def test_a_large_export_shows_rows_sent_live_and_cancel_stops_it(paced_page: Page, paced_console: Console) -> None:
    page = paced_page
    sign_in(page, "super")
    panel = page.locator("#export-progress-text")
    with page.expect_download() as started:
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_role("menuitem", name="CSV", exact=True).click()
    expect(page.get_by_text(re.compile(r"Export started: [\d,]+ rows")).last).to_be_visible(timeout=WAIT)
    expect(panel).to_contain_text(re.compile(r"Export in CSV: [1-9][\d,]* of [\d,]+ rows sent"), timeout=WAIT)
    first, in_view = _sent(panel)
    assert in_view >= SEED_EVENTS
    expect(panel).not_to_have_text(panel.inner_text(), timeout=WAIT)  # the count moves on by itself
    second, _ = _sent(panel)
    assert first < second < in_view
    page.screenshot(path=str(DOCS / "export-progress.png"))

    # The page stays usable while the export streams: paging loads the next page.
    page.get_by_role("button", name="Next page").click()
    page.wait_for_url(re.compile(r"page=2"))
    expect(page.get_by_text(re.compile(r"Page 2 of "))).to_be_visible(timeout=WAIT)
    expect(panel).to_contain_text(RUNNING, timeout=WAIT)

    page.get_by_role("button", name="Cancel", exact=True).click()
    stopped = re.compile(r"Export cancelled after ([\d,]+) of ([\d,]+) rows; the file is incomplete\.")
    expect(panel).to_contain_text(stopped, timeout=WAIT)
    found = stopped.search(panel.inner_text())
    assert found is not None
    cancelled_at = int(found[1].replace(",", ""))
    assert second <= cancelled_at < in_view
    assert started.value.failure() is not None  # the browser's download failed: no short file passed as whole
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0, timeout=WAIT)

    ended = _export_end(paced_console)
    assert ended.details["complete"] is False
    assert ended.details["cancelled"] is True
    assert ended.details["rows"] == cancelled_at  # the panel shows the server's own count


def test_a_finished_export_shows_every_row_sent(paced_page: Page, paced_console: Console) -> None:
    page = paced_page
    sign_in(page, "tenant")  # acme's events only: a few seconds at RATE
    panel = page.locator("#export-progress-text")
    with page.expect_download() as started:
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_role("menuitem", name="CSV", exact=True).click()
    finished = re.compile(r"Export finished: ([\d,]+) of ([\d,]+) rows sent\.")
    expect(panel).to_contain_text(finished, timeout=60_000)
    found = finished.search(panel.inner_text())
    assert found is not None
    rows = list(csv.DictReader(io.StringIO(Path(started.value.path()).read_text(encoding="utf-8"))))
    assert int(found[1].replace(",", "")) == int(found[2].replace(",", "")) == len(rows) > 0
    ended = _export_end(paced_console)
    assert (ended.details["complete"], ended.details["rows"]) == (True, len(rows))
    page.get_by_role("button", name="Close export progress").click()
    expect(panel).to_have_count(0, timeout=WAIT)
