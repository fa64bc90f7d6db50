"""Saved views: a named set of filters, time range and columns, private or shared within one scope.

A view belongs to its owner (the token's `sub`) and to the scope the owner had when saving it
(every tenant, one partner's, one tenant's). It is visible to its owner within that scope and,
when shared, to everyone with exactly the same scope; only its owner changes or deletes it.
Its filters are checked like a request's: syntax (422) and tenants within the scope (403).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from audit_app.audit.filters import TEXT_FILTERS, TIME_FILTERS, AuditFilters, check_filters_in_scope, check_syntax
from audit_app.audit.scope import Scope
from audit_app.auth import ForbiddenError, Principal
from audit_app.models import AuditLogPublic, SavedView, utcnow

VIEW_PAGES: tuple[str, ...] = ("events", "statistics")
VIEW_SETTINGS: tuple[str, ...] = ("range", "per_page", "sort")
"""Besides the filters, what a view's query may hold: the relative time range, the page size, the time order."""
QUERY_KEYS: tuple[str, ...] = (*TEXT_FILTERS, *TIME_FILTERS, *VIEW_SETTINGS)
"""Every key a view's query may hold."""
RANGES: tuple[str, ...] = ("1h", "24h", "7d", "30d")
COLUMNS: tuple[str, ...] = tuple(AuditLogPublic.model_fields)
MAX_VIEWS = 200
"""Views one owner may keep in one scope."""
MAX_NAME = 100


class ViewNotFoundError(LookupError):
    """No view with this id is visible to the caller (HTTP 404; the same for another scope's)."""


class ViewConflictError(ValueError):
    """The owner already has a view of this name in this scope, or too many views (HTTP 409)."""


class ViewQueryError(ValueError):
    """A view's query holds a key or value no view can (HTTP 422); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def scope_key(principal: Principal) -> str:
    """The scope a view is saved in and shared within: `all`, `partner:<id>`, `tenant:<id>` or `none`."""
    scope = Scope.of(principal)
    if scope.everything:
        return "all"
    if scope.partner_id is not None:
        return f"partner:{scope.partner_id}"
    if scope.tenant_id is not None:
        return f"tenant:{scope.tenant_id}"
    return "none"


def check_query(session: Session, principal: Principal, query: Mapping[str, str]) -> dict[str, str]:
    """The view's query, cleaned: known keys only, valid filters within the caller's scope."""
    clean: dict[str, str] = {}
    for key, value in query.items():
        if key not in QUERY_KEYS:
            raise ViewQueryError("query", f"Value error, {key!r} is not a filter ({', '.join(QUERY_KEYS)})")
        if "\x00" in value:
            raise ViewQueryError("query", f"Value error, {key} must not contain NUL characters")
        if value.strip():
            clean[key] = value.strip()
    if clean.get("range", "") not in ("", *RANGES):
        raise ViewQueryError("query", f"Value error, range must be one of {', '.join(RANGES)}")
    if clean.get("sort", "") not in ("", "asc", "desc"):
        raise ViewQueryError("query", "Value error, sort must be asc or desc")
    if "per_page" in clean and not (clean["per_page"].isdigit() and 1 <= int(clean["per_page"]) <= 500):
        raise ViewQueryError("query", "Value error, per_page must be 1 to 500")
    text: dict[str, Any] = {name: clean.get(name) for name in TEXT_FILTERS}
    filters = AuditFilters(**text)
    try:
        check_syntax(filters)
    except ValueError as exc:
        raise ViewQueryError("query", f"{exc} ({getattr(exc, 'name', '')})") from None
    check_filters_in_scope(session, principal, filters)
    return clean


def check_name(name: str) -> str:
    """A view's name: some visible text, at most MAX_NAME characters, no NUL."""
    if not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        raise ViewQueryError("name", f"Value error, a name is 1 to {MAX_NAME} characters, not only spaces")
    return name


def check_columns(columns: Sequence[str]) -> list[str]:
    """The chosen columns, in order, each an event field once."""
    unknown = [name for name in columns if name not in COLUMNS]
    if unknown:
        raise ViewQueryError("columns", f"Value error, not event fields: {', '.join(unknown)}")
    if len(set(columns)) != len(columns):
        raise ViewQueryError("columns", "Value error, a column is listed twice")
    return list(columns)


def _visible(principal: Principal) -> Any:
    return (col(SavedView.scope_key) == scope_key(principal)) & or_(
        col(SavedView.owner) == principal.sub, col(SavedView.shared).is_(True)
    )


def list_views(session: Session, principal: Principal, page: str | None = None) -> Sequence[SavedView]:
    """The views the caller sees (its own and those shared in its scope), by name, optionally of one page."""
    stmt = select(SavedView).where(_visible(principal))
    if page is not None:
        stmt = stmt.where(col(SavedView.page) == page)
    return session.execute(stmt.order_by(col(SavedView.name), col(SavedView.id))).scalars().all()


def get_view(session: Session, principal: Principal, view_id: str) -> SavedView:
    """One visible view, else ViewNotFoundError (the same for a view of another scope)."""
    view = session.execute(select(SavedView).where(col(SavedView.id) == view_id, _visible(principal))).scalar()
    if view is None:
        raise ViewNotFoundError("Saved view not found.")
    return view


def _owned(session: Session, principal: Principal, view_id: str) -> SavedView:
    view = get_view(session, principal, view_id)
    if view.owner != principal.sub:
        raise ForbiddenError("Only the owner of a saved view changes or deletes it.")
    return view


@dataclass(frozen=True)
class ViewChange:
    """What to set on a view; None leaves a field as it is."""

    name: str | None = None
    page: str | None = None
    shared: bool | None = None
    query: Mapping[str, str] | None = None
    columns: Sequence[str] | None = None


def _commit(session: Session, view: SavedView) -> SavedView:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ViewConflictError(f"You already have a view named {view.name!r}.") from None
    session.refresh(view)
    return view


def create_view(session: Session, principal: Principal, change: ViewChange) -> SavedView:
    """Save a new view for the caller in its scope (private unless `shared`)."""
    key = scope_key(principal)
    owned = select(col(SavedView.id)).where(col(SavedView.owner) == principal.sub, col(SavedView.scope_key) == key)
    if len(session.execute(owned.limit(MAX_VIEWS)).all()) >= MAX_VIEWS:
        raise ViewConflictError(f"You already have {MAX_VIEWS} saved views; delete some first.")
    now = utcnow()
    view = SavedView(
        id=str(uuid.uuid4()),
        name=check_name(change.name or ""),
        owner=principal.sub,
        scope_key=key,
        page=change.page or "events",
        shared=bool(change.shared),
        query=check_query(session, principal, change.query or {}),
        columns=check_columns(change.columns or []),
        created_at=now,
        updated_at=now,
    )
    session.add(view)
    return _commit(session, view)


def update_view(session: Session, principal: Principal, view_id: str, change: ViewChange) -> SavedView:
    """Rename, share or unshare, or replace the query or columns of one of the caller's views."""
    view = _owned(session, principal, view_id)
    if change.name is not None:
        view.name = check_name(change.name)
    if change.page is not None:
        view.page = change.page
    if change.shared is not None:
        view.shared = change.shared
    if change.query is not None:
        view.query = check_query(session, principal, change.query)
    if change.columns is not None:
        view.columns = check_columns(change.columns)
    view.updated_at = utcnow()
    session.add(view)
    return _commit(session, view)


def delete_view(session: Session, principal: Principal, view_id: str) -> None:
    """Delete one of the caller's views."""
    session.delete(_owned(session, principal, view_id))
    session.commit()
