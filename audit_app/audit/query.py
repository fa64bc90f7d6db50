"""Reading events: the filtered, scoped, newest-first list, one event, and distinct values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters, scope_condition, where_clause
from audit_app.auth import Principal
from audit_app.models import AuditLog

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
NEWEST_FIRST = (AuditLog.timestamp.desc(), AuditLog.id.desc())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class EventPage:
    """One page of a filtered list and where it stands in the whole."""

    items: list[AuditLog]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the whole list has (0 when empty)."""
        return math.ceil(self.total / self.per_page) if self.total else 0


def list_events(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> EventPage:
    """The page-th page of events matching `filters` within the caller's scope, newest first."""
    conditions = where_clause(session, principal, filters)
    total = session.execute(select(func.count()).select_from(AuditLog).where(*conditions)).scalar_one()
    stmt = select(AuditLog).where(*conditions).order_by(*NEWEST_FIRST).offset((page - 1) * per_page).limit(per_page)
    items = list(session.execute(stmt).scalars().all())
    return EventPage(items=items, total=total, page=page, per_page=per_page)


def get_event(session: Session, principal: Principal, log_id: str) -> AuditLog | None:
    """The event `log_id` if it exists within the caller's scope; None otherwise (no leak)."""
    stmt = select(AuditLog).where(AuditLog.id == log_id, scope_condition(principal))  # type: ignore[arg-type]
    return session.execute(stmt).scalars().first()


def distinct_values(session: Session, principal: Principal, column: Any) -> list[str]:
    """Sorted distinct non-empty values of `column` among the events the caller may see."""
    stmt = select(column).where(scope_condition(principal), column.is_not(None)).distinct().order_by(column)
    return [value for value in session.execute(stmt).scalars().all() if value]


def list_actions(session: Session, principal: Principal) -> list[str]:
    """Every action name in the caller's scope."""
    return distinct_values(session, principal, AuditLog.action)


def list_resource_types(session: Session, principal: Principal) -> list[str]:
    """Every resource type in the caller's scope."""
    return distinct_values(session, principal, AuditLog.resource_type)
