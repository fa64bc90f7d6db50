"""The Views menu's rows over the saved-views domain: notes, links, names the domain refuses."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session

from audit_app.audit.views import ViewChange, ViewQueryError, create_view, list_views, update_view
from audit_app.ui.state.views import _rows
from audit_app.ui.url_filters import ViewQuery, saved_query
from tests.principals import ACME, SUPER


def test_the_menu_lists_own_and_shared_views_with_their_links(session: Session) -> None:
    other = dataclasses.replace(SUPER, sub="someone-else")
    query = saved_query(ViewQuery.from_params({"q": "denied", "not_action": "audit.view", "range": "7d", "page": "3"}))
    mine = create_view(session, SUPER, ViewChange(name="Denied", query=query))
    create_view(session, other, ViewChange(name="Theirs, private", query={"result": "failure"}))
    create_view(session, other, ViewChange(name="Theirs", page="statistics", shared=True, query={"tenant_id": "acme"}))
    rows = _rows(list_views(session, SUPER), SUPER, "events")
    assert [(row["name"], row["note"], row["owned"]) for row in rows] == [
        ("Denied", "", "1"),
        ("Theirs", "shared, statistics", ""),
    ]
    assert rows[0]["id"] == mine.id
    assert rows[0]["href"] == "/events?q=denied&not_action=audit.view&range=7d"
    assert rows[1]["href"] == "/statistics?tenant_id=acme&range=all"
    assert _rows(list_views(session, ACME), ACME, "events") == []  # another scope sees none of them


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "a\x00b"])
def test_names_the_domain_refuses(session: Session, name: str) -> None:
    with pytest.raises(ViewQueryError, match="1 to 100 characters"):
        create_view(session, SUPER, ViewChange(name=name))
    view = create_view(session, SUPER, ViewChange(name="Fine"))
    with pytest.raises(ViewQueryError):
        update_view(session, SUPER, view.id, ViewChange(name=name))


def test_a_view_keeps_the_columns_shown_and_gives_them_back() -> None:
    from audit_app.audit.views import COLUMNS as EVENT_FIELDS
    from audit_app.ui.state.views import hidden_keys, shown_fields

    assert shown_fields([]) == [
        "timestamp",
        "tenant_id",
        "actor_id",
        "action",
        "resource_id",
        "result",
        "ip_address",
    ]
    assert set(shown_fields([])) <= set(EVENT_FIELDS)  # the fields the domain accepts
    assert shown_fields(["ip", "tenant"]) == ["timestamp", "actor_id", "action", "resource_id", "result"]
    assert hidden_keys(shown_fields(["ip", "tenant"])) == "tenant,ip"
    assert hidden_keys(shown_fields([])) == ""
    assert hidden_keys([]) is None  # a view saved without columns leaves the browser's choice


def test_a_view_keeps_the_time_order(session: Session) -> None:
    view = create_view(session, SUPER, ViewChange(name="Oldest first", query={"sort": "asc", "q": "x"}))
    assert view.query == {"sort": "asc", "q": "x"}
    with pytest.raises(ViewQueryError, match="sort must be asc or desc"):
        create_view(session, SUPER, ViewChange(name="Sideways", query={"sort": "sideways"}))
