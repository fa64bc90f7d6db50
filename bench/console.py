"""The console in a real browser (`make bench` runs it after bench.run): six interactions, p50/p95 each.

The app is built and started once (`reflex run --env prod`, one port) against the PostgreSQL
database bench.run builds (`audit_bench_<N>`, 1,000,000 events by default); headless Chromium,
driven by Playwright, signs in as the demo super admin and times, after untimed warmups:

- first render: /events opened in a new tab (a first visit) -> the first page's rows on screen;
- apply filter: click Apply (an Action picked) -> every row shown has that action;
- page change: click Next -> the rows of page 2 (none of page 1's);
- drawer open: click a row -> the drawer shows that event (its Event ID, no spinner);
- statistics load: /statistics opened in a new tab -> the five charts drawn with data;
- live tail update: an event committed through the product's ingestion while Live tail is on
  -> its row on screen.

Each end is the real DOM change, seen by a MutationObserver in the page and stamped at the next
animation frame (when the browser paints it); a navigation starts at the navigation's start
(`performance.now()` of the new document), a click at its `pointerdown`, a live-tail update at
the ingestion's commit (the browser's wall clock, `performance.timeOrigin + performance.now()`,
minus the commit's, on the same machine). Live tail samples are ingested at a random moment of
the tail's 0.5 s poll, so they are not all caught just after (or just before) a poll.

Writes: the drawer records an `audit.view` per event opened and each live-tail sample is one
ingested event (a few dozen events in all, as bench.run appends its ingestion batches).

    python -m bench.console --reuse                      # audit_bench_1000000, built by bench.run
    python -m bench.console --reuse --pg-database NAME   # e.g. a copy made WITH TEMPLATE
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import func, select
from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.audit.query import list_actions
from audit_app.db import engine_for
from audit_app.demo import DEMO_PERSONAS
from audit_app.migrations import upgrade
from audit_app.models import AuditEventIn, AuditLog
from bench.cluster import free_port
from bench.run import EXPORT_KEY, PG_ADMIN_URL, RESULTS, SECRET, SUPER, _pct, log, machine_info, prepare_postgres
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PERSONA_BUTTONS
from tests.reflex_server import console_environment, console_serving, log_tail, reflex_server

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 500.0
STREAM_KEY = "bench-stream-key-" + "c" * 24
LIVE_ACTOR = "bench-console-live"
"""The actor of the live-tail samples; the tail follows a view filtered on it, so nothing else lands in it."""
TAIL_POLL_S = 0.5
START_TIMEOUT = 600  # a cold build on a busy machine
STEP_TIMEOUT_MS = 60_000

# The page's side of the measurement: a MutationObserver checks the armed condition on every DOM
# change; once it holds, the next animation frame stamps the time. A navigation arms the page's
# own condition at document start (time 0 = navigation start); a click arms through `arm`.
WATCHER = """
(() => {
  const B = (window.__bench = { armed: null, t0: null, t1: null, wall1: null, found: null, socket: null });
  // When the page's first websocket (Reflex's state channel) opens: a phase of a navigation.
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => { if (B.socket === null) B.socket = performance.now(); }, { once: true });
    }
  };
  const grid = () => document.querySelector('.events-table');
  const rows = () => Array.from(document.querySelectorAll('.events-table tbody tr[data-event-id]'));
  const settled = () => { const g = grid(); return !!g && g.getAttribute('aria-busy') !== 'true'; };
  const conditions = {
    events: () => settled() && rows().length > 0 ? rows()[0].dataset.eventId : null,
    apply: (action) => {
      if (!settled() || !location.search.includes('action=')) return null;
      const cells = Array.from(document.querySelectorAll('.events-table tbody tr[data-event-id] td.col-action'));
      return cells.length > 0 && cells.every((c) => c.innerText.trim() === action) ? cells.length : null;
    },
    page: (before) => {
      const position = document.getElementById('page-position');
      if (!settled() || !position || !/^\\s*Page\\s+2\\s+of\\b/.test(position.innerText)) return null;
      const ids = rows().map((r) => r.dataset.eventId);
      return ids.length > 0 && ids.every((id) => !before.includes(id)) ? ids[0] : null;
    },
    drawer: (id) => {
      const dialog = document.querySelector('[role="dialog"]');
      if (!dialog || dialog.querySelector('[aria-label="Loading event"]')) return null;
      const term = Array.from(dialog.querySelectorAll('dt')).find((dt) => dt.innerText.trim() === 'Event ID');
      const value = term && term.nextElementSibling;
      return value && value.innerText.trim() === id ? id : null;
    },
    statistics: () => {
      const charts = document.querySelector('.chart-grid');
      if (!charts || charts.classList.contains('is-loading')) return null;
      const plots = Array.from(charts.querySelectorAll('.js-plotly-plot'));
      const drawn = plots.filter((p) => p.querySelector('.main-svg') && p.data && p.data.length > 0);
      return plots.length === 5 && drawn.length === 5 ? 5 : null;
    },
    row: (id) => (document.querySelector(`.events-table tbody tr[data-event-id="${id}"]`) ? id : null),
  };
  const check = () => {
    const armed = B.armed;
    if (!armed || armed.done) return;
    const found = conditions[armed.name](armed.arg);
    if (found === null || found === undefined) return;
    armed.done = true;
    B.found = found;
    requestAnimationFrame(() => {
      B.t1 = performance.now();
      B.wall1 = performance.timeOrigin + B.t1;
    });
  };
  B.arm = (name, arg, onClick) => {
    B.armed = { name, arg, done: false };
    B.t0 = onClick ? null : 0;
    B.t1 = null;
    B.wall1 = null;
    B.found = null;
    if (onClick) {
      document.addEventListener('pointerdown', () => { B.t0 = performance.now(); }, { capture: true, once: true });
    } else {
      check();
    }
  };
  new MutationObserver(check).observe(document, {
    childList: true, subtree: true, attributes: true, characterData: true,
  });
  const path = location.pathname;
  if (path.startsWith('/events')) B.arm('events', null, false);
  else if (path.startsWith('/statistics')) B.arm('statistics', null, false);
})();
"""


Sample = tuple[float, dict[str, float]]
"""One timed run: ms from start to end, and ms from the start to each phase passed on the way (navigations)."""


@dataclass
class Case:
    """One timed interaction and its samples in milliseconds (and its phases', for a navigation)."""

    name: str
    measured: str
    samples: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)

    def add(self, sample: Sample) -> None:
        elapsed, phases = sample
        self.samples.append(elapsed)
        for name, at in phases.items():
            self.phases.setdefault(name, []).append(at)

    def row(self) -> dict[str, Any]:
        p50 = _pct(self.samples, 50)
        return {
            "case": self.name,
            "measured": self.measured,
            "p50_ms": round(p50, 1),
            "p95_ms": round(_pct(self.samples, 95), 1),
            "min_ms": round(min(self.samples), 1) if self.samples else None,
            "max_ms": round(max(self.samples), 1) if self.samples else None,
            "samples": len(self.samples),
            "meets_p50_target": p50 < TARGET_P50_MS,
        } | (
            {"phases_p50_ms": {name: round(_pct(at, 50), 1) for name, at in self.phases.items()}} if self.phases else {}
        )


# ---------------------------------------------------------------- database and server


def existing_database(events: int, name: str | None) -> str:
    """The URL of the database bench.run built (or `name`), migrated; SystemExit when missing or short."""
    name = name or f"audit_bench_{events}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    try:
        with Session(engine_for(url)) as session:
            count = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    except Exception as exc:
        raise SystemExit(f"cannot use {name}: {str(exc).splitlines()[0]} (build it: python -m bench.run)") from exc
    if count < events:
        raise SystemExit(f"{name} holds {count:,} events, fewer than {events:,} (still being built?)")
    upgrade(url)
    log(f"reusing {name} ({count:,} events)")
    return url


@contextmanager
def console_server(url: str, port: int, log_path: Path) -> Iterator[str]:
    """`reflex run --env prod` (built once, as the browser tests start it) on `port`; its base URL."""
    base = f"http://127.0.0.1:{port}"
    arguments = ["--env", "prod", "--frontend-port", str(port), "--loglevel", "info"]
    started = time.perf_counter()
    with reflex_server(
        arguments,
        console_environment(url, jwt_secret=SECRET, export_key=EXPORT_KEY, stream_key=STREAM_KEY),
        log_path,
        lambda: console_serving(base),
        START_TIMEOUT,
    ):
        log(f"console built and serving at {base} in {time.perf_counter() - started:.0f} s (log: {log_path})")
        yield base


# ---------------------------------------------------------------- the browser side


def _stamp(page: Page) -> tuple[float, float, Any]:
    """Wait for the armed condition's frame; (t0, t1, found) in the page's clock (ms)."""
    page.wait_for_function("window.__bench.t1 !== null && window.__bench.t0 !== null", timeout=STEP_TIMEOUT_MS)
    t0, t1, found = page.evaluate("[window.__bench.t0, window.__bench.t1, window.__bench.found]")
    return float(t0), float(t1), found


NAVIGATION_PHASES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  return { html_received: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd,
           websocket_open: window.__bench.socket };
}"""


def _navigate(page: Page, path: str) -> Sample:
    """Navigate to `path`; ms from the navigation's start to its condition's frame (armed at document start),
    and to the phases on the way: the HTML received, DOMContentLoaded, the state websocket open."""
    page.goto(path, wait_until="commit")
    t0, t1, _found = _stamp(page)
    phases = page.evaluate(NAVIGATION_PHASES)
    return t1 - t0, {name: float(at) - t0 for name, at in phases.items() if at}


def _click(page: Page, name: str, arg: Any, target: Callable[[], Any]) -> tuple[float, Any]:
    """Arm condition `name`, click through `target()`; ms from pointerdown to the condition's frame."""
    page.evaluate("([name, arg]) => window.__bench.arm(name, arg, true)", [name, arg])
    target().click()
    t0, t1, found = _stamp(page)
    return t1 - t0, found


def sign_in(page: Page) -> None:
    """One click on the demo super admin's button, as the browser tests sign in."""
    persona = next(p for p in DEMO_PERSONAS if p.role == "super_admin")
    page.goto("/")
    page.get_by_role("button", name=PERSONA_BUTTONS[persona.key]).click()
    page.wait_for_url(re.compile(r"/events"))
    page.evaluate("window.__bench.arm('events', null, false)")  # routed in the page: no new document
    _stamp(page)


def in_new_tab(page: Page, path: str) -> Sample:
    """`path` opened in a new tab of the signed-in browser: a first visit (no page state kept for the tab yet).

    (A tab keeps its page state on the server across reloads, and a reload of the same view shows
    the rows it holds without reading them again; a new tab reads them.)
    """
    tab = page.context.new_page()
    try:
        return _navigate(tab, path)
    finally:
        tab.close()


def first_render(page: Page) -> Sample:
    return in_new_tab(page, "/events")


def apply_filter(page: Page, action: str) -> Sample:
    _navigate(page, "/events")
    page.get_by_label("Action", exact=True).select_option(action)
    elapsed, _rows = _click(page, "apply", action, lambda: page.get_by_role("button", name="Apply"))
    return elapsed, {}


def page_change(page: Page) -> Sample:
    _navigate(page, "/events")
    before = page.evaluate(
        "Array.from(document.querySelectorAll('.events-table tbody tr[data-event-id]')).map(r => r.dataset.eventId)"
    )
    elapsed, _first = _click(page, "page", before, lambda: page.get_by_role("button", name="Next page"))
    return elapsed, {}


def drawer_open(page: Page, row: int) -> Sample:
    _navigate(page, "/events")
    target = page.locator(".events-table tbody tr[data-event-id]").nth(row)
    event_id = target.get_attribute("data-event-id")
    elapsed, _found = _click(page, "drawer", event_id, lambda: target.locator("td").first)
    return elapsed, {}


def statistics_load(page: Page) -> Sample:
    return in_new_tab(page, "/statistics")


@contextmanager
def live_tail(page: Page, url: str) -> Iterator[Callable[[], float]]:
    """The events of LIVE_ACTOR with Live tail on; yields a sampler: ingest one event, ms from commit to its row.

    In a new tab: its page state holds no earlier view, so once the count shows, it is this view's
    (the switch turned on during a view's load would be turned off by it).
    """
    page = page.context.new_page()
    page.goto(f"/events?actor_id={LIVE_ACTOR}", wait_until="commit")
    expect(page.locator("#result-count")).to_contain_text(re.compile(r"^[\d,]+\+? events?\b"), timeout=STEP_TIMEOUT_MS)
    expect(page.locator(".events-table")).to_have_attribute("aria-busy", "false", timeout=STEP_TIMEOUT_MS)
    switch = page.get_by_role("switch", name="Live tail")
    switch.click()
    expect(switch).to_be_checked(timeout=STEP_TIMEOUT_MS)  # on once the server found the end of the feed
    engine = engine_for(url)

    def sample() -> float:
        time.sleep(random.uniform(0, TAIL_POLL_S))  # a random phase of the poll (the measure waits on the DOM)
        event = AuditEventIn(
            tenant_id="acme", actor_id=LIVE_ACTOR, action="user.login", result="success", timestamp=datetime.now(UTC)
        )
        with Session(engine) as session:
            (event_id,) = ingest_events(session, [event])
            page.evaluate("id => window.__bench.arm('row', id, false)", event_id)
            session.commit()
            committed = time.time() * 1000
        page.wait_for_function("window.__bench.wall1 !== null", timeout=STEP_TIMEOUT_MS)
        return float(page.evaluate("window.__bench.wall1")) - committed

    yield sample
    page.close()


def measure(browser: Browser, base: str, url: str, samples: int, warmup: int) -> list[Case]:
    """Every case, `warmup` untimed runs then `samples` timed ones, in one signed-in browser profile."""
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.add_init_script(WATCHER)
    page = context.new_page()
    sign_in(page)
    with Session(engine_for(url)) as session:
        actions = list_actions(session, SUPER)
    cases = [
        (Case("first render", "navigation start (new tab) -> /events rows on screen"), lambda n: first_render(page)),
        (
            Case("apply filter", "Apply pointerdown -> every row has the picked action"),
            lambda n: apply_filter(page, actions[n % len(actions)]),
        ),
        (Case("page change", "Next pointerdown -> page 2's rows on screen"), lambda n: page_change(page)),
        (Case("drawer open", "row pointerdown -> the drawer shows its Event ID"), lambda n: drawer_open(page, n % 10)),
        (
            Case("statistics load", "navigation start (new tab) -> the five charts drawn"),
            lambda n: statistics_load(page),
        ),
    ]
    done: list[Case] = []
    for case, run in cases:
        for n in range(warmup + samples):
            timed = run(n)
            if n >= warmup:
                case.add(timed)
        phases = ", ".join(f"{name} {_pct(at, 50):.0f}" for name, at in case.phases.items())
        log(
            f"  {case.name:18s} p50 {_pct(case.samples, 50):7.1f} ms   p95 {_pct(case.samples, 95):7.1f} ms"
            + (f"   (p50 ms from the start: {phases})" if phases else "")
        )
        done.append(case)
    tail = Case("live tail update", "ingestion commit -> the new row on screen (Live tail on)")
    with live_tail(page, url) as sample:
        for n in range(warmup + samples):
            elapsed = sample()
            if n >= warmup:
                tail.add((elapsed, {}))
    log(f"  {tail.name:18s} p50 {_pct(tail.samples, 50):7.1f} ms   p95 {_pct(tail.samples, 95):7.1f} ms")
    done.append(tail)
    context.close()
    return done


# ---------------------------------------------------------------- main


def print_table(report: dict[str, Any]) -> None:
    """The results as a Markdown table, next to the target."""
    print(f"\nConsole at {report['events']:,} events ({report['backend']}), {report['samples']} samples per case")
    print(f"target: p50 under {TARGET_P50_MS:.0f} ms\n")
    print("| case | p50 ms | p95 ms | p50 under target |")
    print("|---|---:|---:|---|")
    for row in report["cases"]:
        verdict = "yes" if row["meets_p50_target"] else "no"
        print(f"| {row['case']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {verdict} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the PostgreSQL database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the database bench.run built (refuses, never rebuilds, when it is missing); without: build it",
    )
    parser.add_argument("--pg-database", metavar="NAME", help="this database instead of audit_bench_<events>")
    parser.add_argument("--samples", type=int, default=15, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per case first")
    parser.add_argument("--port", type=int, default=0, help="the console's port (default: a free one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "console.json", help="the results file")
    args = parser.parse_args(argv)
    if args.reuse:
        url = existing_database(args.events, args.pg_database)
    else:
        url = prepare_postgres(args.events, False, name=args.pg_database)
    with Session(engine_for(url)) as session:
        total = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    report: dict[str, Any] = {
        "backend": "postgres",
        "database": url.rsplit("/", 1)[1],
        "events": total,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "samples": args.samples,
        "warmup": args.warmup,
        "target_p50_ms": TARGET_P50_MS,
        "server": "reflex run --env prod (one port; one backend worker unless REFLEX_REDIS_URL is set)",
    }
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        server_log = Path(tmp) / "server.log"
        try:
            with console_server(url, args.port or free_port(), server_log) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                report["browser"] = f"Chromium {browser.version} (headless, Playwright)"
                log(f"measuring 6 cases ({args.warmup} warmup + {args.samples} samples each) in {report['browser']}")
                cases = measure(browser, base, url, args.samples, args.warmup)
                browser.close()
        except Exception:
            print(f"--- console server log ---\n{log_tail(server_log, 120)}", file=sys.stderr)
            raise
    report["cases"] = [case.row() for case in cases]
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
