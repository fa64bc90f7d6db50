"""Search and flexible filters through HTTP: `q`, several values, prefixes, CIDR, exclusions, scope, 422s.

Every test runs on SQLite (FTS5) and PostgreSQL (pg_trgm); the world is tests/api/conftest.py's.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from runpy import run_path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as event_module
from sqlalchemy import select, text
from sqlmodel import Session, col

from audit_app.audit.filters import PG_SEARCH_TEXT, SQLITE_SEARCH_TEXT, AuditFilters, search_terms, where_clause
from audit_app.auth import Principal
from audit_app.models import AuditLog
from tests.api.helpers import LIST, World, at, event, write
from tests.helpers import clear_tables, search_index_errors

STATS = LIST + "stats"
EXPORT = LIST + "export"
FEED = LIST + "feed"


def found(client: TestClient, headers: dict[str, str], params: Any) -> set[str]:
    """The ids the list returns for `params` (a dict, or a list of pairs for repeated names)."""
    response = client.get(LIST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return {item["id"] for item in body["items"]}


def invalid(client: TestClient, headers: dict[str, str], params: Any, url: str = LIST) -> dict[str, Any]:
    response = client.get(url, params=params, headers=headers)
    assert response.status_code == 422, response.text
    detail: dict[str, Any] = response.json()["detail"][0]
    return detail


@pytest.fixture
def extra(session: Session, world: World) -> dict[str, str]:
    """A few events made for searching: an IPv6 address, a browser, punctuation, upper case."""
    named = {
        "browser": event(
            "globex",
            at(4, 9),
            actor_id="globex-carol",
            actor_email="Carol.Danvers@Globex.Example",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            ip_address="2001:db8::5",
            request_id="req-7f3a",
            details={"reason": "Quarterly access review", "ratio": "100%"},
        ),
        "percent": event("umbrella", at(4, 10), resource_id="usr_007", details={"note": "50% done"}),
        "underscore": event("umbrella", at(4, 11), resource_id="usr_0099", ip_address="10.9.8.7"),
        "v6other": event("initech", at(4, 12), ip_address="2001:db9::1", resource_id="USR_00X"),
    }
    ids = write(session, list(named.values()))
    return dict(zip(named, ids, strict=True))


def test_q_is_case_insensitive_and_reaches_details_and_user_agent(
    client: TestClient, as_super: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    delete_event = world.ids["acme"][3]
    assert found(client, as_super, {"q": "BOB"}) == {delete_event}
    assert found(client, as_super, {"q": "viewer"}) == {delete_event}  # in details
    assert found(client, as_super, {"q": "firefox"}) == {extra["browser"]}  # user agent
    assert found(client, as_super, {"q": "REQ-7F3A"}) == {extra["browser"]}  # request id
    assert found(client, as_super, {"q": "quarterly"}) == {extra["browser"]}
    assert found(client, as_super, {"q": "nothing-like-this"}) == set()


def test_q_words_are_anded_and_quoted_phrases_kept_whole(
    client: TestClient, as_super: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    assert found(client, as_super, {"q": "alice 192.0.2"}) == {world.ids["acme"][2]}
    assert found(client, as_super, {"q": "linux mozilla"}) == {extra["browser"]}
    assert found(client, as_super, {"q": '"x11; linux"'}) == {extra["browser"]}
    assert found(client, as_super, {"q": '"linux x11"'}) == set()  # the phrase, not its words
    assert found(client, as_super, {"q": "linux x11"}) == {extra["browser"]}
    assert found(client, as_super, {"q": '"access review" carol'}) == {extra["browser"]}


def test_q_short_words_and_like_characters_are_literal(
    client: TestClient, as_super: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    assert found(client, as_super, {"q": "k-"}) == {world.ids["globex"][1]}  # two characters: no trigram
    assert found(client, as_super, {"q": "100%"}) == {extra["browser"]}
    assert found(client, as_super, {"q": "%"}) == {extra["browser"], extra["percent"]}
    assert found(client, as_super, {"q": "usr_0"}) == {extra["percent"], extra["underscore"], extra["v6other"]}
    assert found(client, as_super, {"q": "usr_00"}) == {extra["percent"], extra["underscore"], extra["v6other"]}
    assert found(client, as_super, {"q": "sr_009"}) == {extra["underscore"]}


def test_several_values_mean_any_of_them(client: TestClient, as_super: dict[str, str], world: World) -> None:
    wanted = {world.ids["acme"][1], world.ids["globex"][1]}
    assert found(client, as_super, {"action": "role.assign,apikey.revoke"}) == wanted
    assert found(client, as_super, [("action", "role.assign"), ("action", "apikey.revoke")]) == wanted
    assert found(client, as_super, {"result": "failure, denied"}) == {world.ids["acme"][2], world.ids["acme"][3]}
    assert found(client, as_super, {"tenant_id": "umbrella,globex"}) == world.of("umbrella", "globex")


def test_actor_email_ignores_case_and_a_star_is_a_prefix(
    client: TestClient, as_super: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    assert found(client, as_super, {"actor_email": "BOB@ACME.example"}) == {world.ids["acme"][3]}
    assert found(client, as_super, {"actor_email": "carol.danvers@globex.example"}) == {extra["browser"]}
    assert found(client, as_super, {"actor_email": "CAROL*"}) == {extra["browser"]}
    assert found(client, as_super, {"actor_id": "acme-*"}) == world.of("acme")
    assert found(client, as_super, {"resource_id": "usr_00*"}) == {extra["percent"], extra["underscore"]}
    assert found(client, as_super, {"resource_id": "usr_%*"}) == set()  # `%` and `_` stay literal
    assert found(client, as_super, {"action": "user.*,apikey.*"}) == found(
        client, as_super, {"action": "user.login,user.delete,apikey.revoke"}
    )
    assert found(client, as_super, {"resource_id": "usr_00"}) == set()  # without `*`: exact, as before
    assert found(client, as_super, {"resource_id": "us*_007"}) == set()  # a `*` inside a value is itself


def test_ip_address_takes_a_network(
    client: TestClient, as_super: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    assert found(client, as_super, {"ip_address": "192.0.2.0/24"}) == {world.ids["acme"][2]}
    ten = found(client, as_super, {"ip_address": "10.0.0.0/8"})
    assert ten == (world.all - {world.ids["acme"][2]}) | {extra["percent"], extra["underscore"]}
    assert found(client, as_super, {"ip_address": "10.9.0.0/16"}) == {extra["underscore"]}
    assert found(client, as_super, {"ip_address": "2001:db8::/32"}) == {extra["browser"]}
    assert found(client, as_super, {"ip_address": "2001:db8::/16"}) == {extra["browser"], extra["v6other"]}
    assert found(client, as_super, {"ip_address": "192.0.2.0/24,2001:db8::/32"}) == {
        world.ids["acme"][2],
        extra["browser"],
    }
    assert found(client, as_super, {"ip_address": "10.9.8.7"}) == {extra["underscore"]}  # one address: exact


def test_exclusions_leave_out_any_of_their_values(client: TestClient, as_super: dict[str, str], world: World) -> None:
    logins = found(client, as_super, {"action": "user.login"})
    assert found(client, as_super, {"not_action": "user.login"}) == world.all - logins
    assert found(client, as_super, {"not_result": "success,failure"}) == {world.ids["acme"][3], world.ids["initech"][2]}
    assert found(client, as_super, [("not_actor_id", "acme-alice"), ("not_actor_id", "globex-*")]) == world.of(
        "acme", "initech", "umbrella"
    ) - set(world.ids["acme"][:3])
    assert found(client, as_super, {"action": "user.login", "not_action": "user.*"}) == set()


def test_search_never_leaves_the_scope(
    client: TestClient, as_acme: dict[str, str], as_northwind: dict[str, str], world: World, extra: dict[str, str]
) -> None:
    assert found(client, as_acme, {"q": "initech"}) == set()
    assert found(client, as_acme, {"q": "alice"}) == world.of("acme") - {world.ids["acme"][3]}
    assert found(client, as_northwind, {"q": "umbrella"}) == set()
    assert found(client, as_northwind, {"ip_address": "0.0.0.0/0"}) == world.of("acme", "globex")
    assert found(client, as_northwind, {"not_action": "nothing"}) == world.of("acme", "globex") | {extra["browser"]}
    assert found(client, as_acme, {"tenant_id": "acme"}) == world.of("acme")
    refused = client.get(LIST, params={"tenant_id": "acme,initech"}, headers=as_acme)
    assert refused.status_code == 403
    assert "initech" not in refused.text
    assert client.get(LIST, params={"partner_id": "northwind,southwind"}, headers=as_northwind).status_code == 403
    stats = client.get(STATS, params={"q": "secret"}, headers=as_northwind).json()
    assert stats["total"] == 0
    assert stats["by_action"] == {}


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"ip_address": "10.0.0.0/33"}, "ip_address"),
        ({"ip_address": "banana/8"}, "ip_address"),
        ({"ip_address": "10.0.0.0/8,2001:db8::/129"}, "ip_address"),
        ({"action": "*"}, "action"),
        ({"result": "succ*"}, "result"),
        ({"tenant_id": "ac*"}, "tenant_id"),
        ({"not_result": "fail*"}, "not_result"),
        ({"q": "x" * 513}, "q"),
        ({"q": " ".join(f"w{n}" for n in range(17))}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"action": ",".join(f"a{n}" for n in range(51))}, "action"),
    ],
)
def test_bad_values_are_422_naming_the_parameter(
    client: TestClient, as_super: dict[str, str], params: dict[str, str], name: str
) -> None:
    for url in (LIST, STATS, EXPORT, FEED):
        detail = invalid(client, as_super, params, url)
        assert detail["loc"] == ["query", name], url


def test_the_same_parameters_work_on_stats_export_and_feed(
    client: TestClient, as_super: dict[str, str], world: World
) -> None:
    params = [("action", "user.login"), ("action", "role.assign"), ("not_result", "error"), ("q", "alice")]
    listed = found(client, as_super, params)
    assert len(listed) == 6
    stats = client.get(STATS, params=params, headers=as_super).json()
    assert stats["total"] == 6
    assert set(stats["by_action"]) == {"user.login", "role.assign"}
    feed = client.get(FEED, params=params, headers=as_super)
    assert feed.status_code == 200
    assert {item["id"] for item in feed.json()["items"]} == listed
    daily = client.get(STATS, params={"tenant_id": "umbrella,globex", "partner_id": "northwind"}, headers=as_super)
    assert daily.json()["total"] == len(world.of("globex"))  # the daily counts answer several tenants too
    export = client.get(EXPORT, params=[*params, ("format", "csv")], headers=as_super)
    assert export.status_code == 200
    assert {row["id"] for row in csv.DictReader(io.StringIO(export.text))} == listed
    lines = client.get(EXPORT, params=[*params, ("format", "jsonl")], headers=as_super).text.splitlines()
    assert {json.loads(line)["id"] for line in lines} == listed


def test_search_terms_syntax() -> None:
    assert search_terms('alice "x11;   linux" "unclosed phrase') == ["alice", "x11; linux", "unclosed phrase"]
    assert search_terms('  ""  ') == []
    assert search_terms(None) == []


def test_the_indexed_expressions_are_the_migrations() -> None:
    source = run_path(str(Path(__file__).parents[2] / "alembic" / "versions" / "0010_search.py"))
    assert source["PG_SEARCH_TEXT"] == PG_SEARCH_TEXT
    assert source["SQLITE_SEARCH_TEXT"] == SQLITE_SEARCH_TEXT


def test_q_runs_on_the_text_index(session: Session, world: World) -> None:
    """The plan reads the trigram index (PostgreSQL) or the FTS5 table (SQLite), not every row."""
    principal = Principal(sub="t", email="", role="super_admin")
    filters = AuditFilters(q="alice viewer")
    conditions = where_clause(session, principal, filters)
    stmt = select(col(AuditLog.id)).where(*conditions)
    compiled = stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {compiled}")))
        assert "ix_audit_log_search" in plan, plan
        addresses = where_clause(session, principal, AuditFilters(ip_address="10.0.0.0/8"))
        compiled = (
            select(col(AuditLog.id))
            .where(*addresses)
            .compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        )
        plan = "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {compiled}")))
        assert "ix_audit_log_inet" in plan, plan
    else:
        plan = "\n".join(str(row[-1]) for row in session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert "audit_log_search" in plan, plan
    session.rollback()


def test_q_patterns_are_written_into_the_statement(session: Session, world: World) -> None:
    """On PostgreSQL the ILIKE patterns travel in the SQL text, not as parameters: a statement that
    psycopg prepares gets a generic plan after a few runs, and that plan ignored how rare a word is
    (40 ms -> 300 ms at 1M events from the tenth identical search). Quotes and backslashes stay data."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite searches through FTS5 MATCH")
    sent: list[str] = []
    engine = session.get_bind()

    def keep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    principal = Principal(sub="t", email="", role="super_admin")
    event_module.listen(engine, "before_cursor_execute", keep)
    try:
        for q in ("alice", "o'neil \\x 100%"):
            stmt = select(col(AuditLog.id)).where(*where_clause(session, principal, AuditFilters(q=q)))
            assert session.execute(stmt).all() is not None
    finally:
        event_module.remove(engine, "before_cursor_execute", keep)
    assert "ILIKE '%%alice%%'" in sent[0], sent[0]  # % doubled for the driver's placeholders
    assert "o''neil" in sent[1], sent[1]
    session.rollback()


def test_purged_events_leave_the_search(
    session: Session, database_url: str, client: TestClient, as_super: dict[str, str]
) -> None:
    """The SQLite search table follows deletes (the purge); PostgreSQL's index does by itself."""
    write(session, [event("acme", at(5), details={"marker": "zebra-crossing"})])
    assert len(found(client, as_super, {"q": "zebra"})) == 1
    clear_tables(database_url)
    assert found(client, as_super, {"q": "zebra"}) == set()
    if session.get_bind().dialect.name == "sqlite":  # the delete trigger left no entry of the rows behind
        assert search_index_errors(session) == {"stray": 0, "miscounted": 0, "unfound": 0}
        assert session.execute(text("SELECT count(*) FROM temp.audit_log_search_instances")).scalar_one() == 0
    again = write(session, [event("acme", at(5), details={"marker": "zebra again"})])
    assert found(client, as_super, {"q": "zebra"}) == set(again)


def test_each_batch_indexes_exactly_its_own_events(
    session: Session, client: TestClient, as_super: dict[str, str]
) -> None:
    """SQLite: the writer fills the FTS5 table (no row trigger): after batches from several
    tenants, every event is indexed once with its searched text, and a new batch is found."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL's trigram index is kept by the database")
    triggers = session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
    assert "audit_log_search_insert" not in triggers
    first = write(
        session, [event(tenant, at(n + 1), details={"n": n}) for n, tenant in enumerate(["acme", "globex"] * 3)]
    )
    second = write(session, [event("acme", at(9), details={"marker": "okapi-sighting"})])
    mismatched = session.execute(
        text(
            f"SELECT count(*) FROM audit_log LEFT JOIN audit_log_search s ON s.rowid = audit_log.rowid "
            f"WHERE s.body IS NOT {SQLITE_SEARCH_TEXT}"
        )
    ).scalar_one()
    indexed = session.execute(
        text("SELECT count(*) FROM audit_log_search WHERE rowid IN (SELECT rowid FROM audit_log)")
    ).scalar_one()
    stored = session.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    assert (mismatched, indexed) == (0, stored)
    assert stored >= len(first) + len(second)
    assert found(client, as_super, {"q": "okapi"}) == set(second)
