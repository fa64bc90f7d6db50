"""Saved views over HTTP: CRUD, private and shared within one scope, never across scopes, 4xx on bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import bearer
from tests.helpers import TokenFactory

VIEWS = "/api/v1/admin/audit/views"


def save(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(VIEWS, json={"name": "Failed logins", **body}, headers=headers)
    assert response.status_code == 201, response.text
    saved: dict[str, Any] = response.json()
    return saved


def names(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get(VIEWS, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


@pytest.fixture
def people(make_token: TokenFactory) -> dict[str, dict[str, str]]:
    """Two admins of acme, one of globex, two partner admins of northwind and one of southwind, a super admin."""
    return {
        "ann": bearer(make_token("tenant_admin", tenant_id="acme", sub="ann")),
        "ben": bearer(make_token("tenant_admin", tenant_id="acme", sub="ben")),
        "gil": bearer(make_token("tenant_admin", tenant_id="globex", sub="gil")),
        "nora": bearer(make_token("partner_admin", partner_id="northwind", sub="nora")),
        "ned": bearer(make_token("partner_admin", partner_id="northwind", sub="ned")),
        "sam": bearer(make_token("partner_admin", partner_id="southwind", sub="sam")),
        "root": bearer(make_token("super_admin", sub="root")),
    }


def test_save_read_rename_update_delete(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    ann = people["ann"]
    saved = save(
        client,
        ann,
        query={"action": "user.login,user.logout", "result": "failure", "range": "7d", "q": '"bad password"'},
        columns=["timestamp", "actor_email", "ip_address"],
    )
    assert saved["owned"] is True
    assert saved["shared"] is False
    assert saved["page"] == "events"
    assert saved["query"]["range"] == "7d"
    assert client.get(f"{VIEWS}/{saved['id']}", headers=ann).json() == saved
    renamed = client.patch(f"{VIEWS}/{saved['id']}", json={"name": "Logins that failed"}, headers=ann)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Logins that failed"
    assert renamed.json()["query"] == saved["query"]
    updated = client.patch(f"{VIEWS}/{saved['id']}", json={"query": {"not_action": "audit.view"}}, headers=ann).json()
    assert updated["query"] == {"not_action": "audit.view"}
    assert updated["columns"] == ["timestamp", "actor_email", "ip_address"]
    assert client.delete(f"{VIEWS}/{saved['id']}", headers=ann).status_code == 204
    assert client.get(f"{VIEWS}/{saved['id']}", headers=ann).status_code == 404
    assert names(client, ann) == []


def test_private_views_stay_private_and_shared_ones_reach_the_same_scope_only(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    private = save(client, people["ann"], name="Mine")
    shared = save(client, people["ann"], name="Team", shared=True)
    save(client, people["nora"], name="Partner wide", shared=True)
    save(client, people["root"], name="Everything", shared=True, page="statistics")
    assert names(client, people["ann"]) == ["Mine", "Team"]
    assert names(client, people["ben"]) == ["Team"]  # same tenant: the shared one
    assert names(client, people["gil"]) == []  # another tenant of the same partner
    assert names(client, people["ned"]) == ["Partner wide"]  # same partner scope
    assert names(client, people["sam"]) == []
    assert names(client, people["nora"]) == ["Partner wide"]  # a partner scope is not its tenants' scopes
    assert names(client, people["root"], page="statistics") == ["Everything"]
    assert names(client, people["root"], page="events") == []
    for outsider in ("gil", "nora", "sam"):
        for view in (private, shared):
            assert client.get(f"{VIEWS}/{view['id']}", headers=people[outsider]).status_code == 404
            assert client.delete(f"{VIEWS}/{view['id']}", headers=people[outsider]).status_code == 404
    assert client.get(f"{VIEWS}/{private['id']}", headers=people["ben"]).status_code == 404
    seen = client.get(f"{VIEWS}/{shared['id']}", headers=people["ben"]).json()
    assert seen["owned"] is False
    # Only the owner changes or deletes; unsharing hides it again.
    assert client.patch(f"{VIEWS}/{shared['id']}", json={"name": "x"}, headers=people["ben"]).status_code == 403
    assert client.delete(f"{VIEWS}/{shared['id']}", headers=people["ben"]).status_code == 403
    assert client.patch(f"{VIEWS}/{shared['id']}", json={"shared": False}, headers=people["ann"]).status_code == 200
    assert names(client, people["ben"]) == []


@pytest.mark.usefixtures("world")
def test_a_view_cannot_name_a_tenant_outside_the_scope(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    refused = client.post(VIEWS, json={"name": "Peek", "query": {"tenant_id": "acme,initech"}}, headers=people["ann"])
    assert refused.status_code == 403
    assert names(client, people["ann"]) == []
    own = save(client, people["nora"], name="Acme", query={"tenant_id": "acme"})
    patched = client.patch(f"{VIEWS}/{own['id']}", json={"query": {"partner_id": "southwind"}}, headers=people["nora"])
    assert patched.status_code == 403
    assert client.get(f"{VIEWS}/{own['id']}", headers=people["nora"]).json()["query"] == {"tenant_id": "acme"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 101}, ["body", "name"]),
        ({"name": "ok", "page": "charts"}, ["body", "page"]),
        ({"name": "ok", "query": {"colour": "red"}}, ["body", "query"]),
        ({"name": "ok", "query": {"ip_address": "10.0.0.0/33"}}, ["body", "query"]),
        ({"name": "ok", "query": {"action": "a\x00"}}, ["body", "query"]),
        ({"name": "ok", "query": {"range": "2y"}}, ["body", "query"]),
        ({"name": "ok", "query": {"per_page": "0"}}, ["body", "query"]),
        ({"name": "ok", "columns": ["password"]}, ["body", "columns"]),
        ({"name": "ok", "columns": ["id", "id"]}, ["body", "columns"]),
        ({"name": "ok", "owner": "someone-else"}, ["body", "owner"]),
    ],
)
def test_bad_views_are_422_and_save_nothing(
    client: TestClient, people: dict[str, dict[str, str]], body: dict[str, Any], loc: list[str]
) -> None:
    response = client.post(VIEWS, json=body, headers=people["ann"])
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == loc
    assert names(client, people["ann"]) == []


def test_names_are_unique_per_owner_and_scope(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    first = save(client, people["ann"], name="Same")
    assert client.post(VIEWS, json={"name": "Same"}, headers=people["ann"]).status_code == 409
    save(client, people["ben"], name="Same")  # another owner may use the name
    other = save(client, people["ann"], name="Other")
    clash = client.patch(f"{VIEWS}/{other['id']}", json={"name": "Same"}, headers=people["ann"])
    assert clash.status_code == 409
    assert client.get(f"{VIEWS}/{first['id']}", headers=people["ann"]).json()["name"] == "Same"
    assert sorted(names(client, people["ann"])) == ["Other", "Same"]


def test_views_need_a_reading_token(client: TestClient, make_token: TokenFactory) -> None:
    assert client.get(VIEWS).status_code == 401
    writer = bearer(make_token("tenant_admin", tenant_id="acme", scope="audit:write"))
    assert client.post(VIEWS, json={"name": "x"}, headers=writer).status_code == 403
    assert client.get(f"{VIEWS}/nope", headers=bearer(make_token("super_admin"))).status_code == 404
