"""Saved views over HTTP (`/api/v1/admin/audit/views`), over `audit_app.audit.views`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from audit_app.api.deps import ReaderPrincipal, SessionDep
from audit_app.audit.views import (
    MAX_NAME,
    ViewChange,
    ViewConflictError,
    ViewNotFoundError,
    ViewQueryError,
    create_view,
    delete_view,
    get_view,
    list_views,
    update_view,
)
from audit_app.auth import Principal
from audit_app.models import SavedView

router = APIRouter(prefix="/api/v1/admin/audit/views", tags=["Saved views"])
ViewIdPath = Annotated[str, Path(min_length=1, max_length=36)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00]*\S[^\x00]*$")]
Page = Literal["events", "statistics"]
QueryValues = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]], Field(max_length=40)
]
Columns = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=40)]


class SavedViewIn(BaseModel):
    """A view to save: its name, page, whether everyone of the same scope sees it, and what it shows."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    page: Page = "events"
    shared: bool = False
    query: QueryValues = Field(
        default_factory=dict,
        description=(
            "URL parameters: filters (as the list takes them), `range` (1h, 24h, 7d, 30d), `per_page`, `sort`"
            " (asc, desc)"
        ),
    )
    columns: Columns = Field(default_factory=list, description="Event fields shown, in order (empty: the default)")


class SavedViewPatch(BaseModel):
    """The fields of a view to change (rename, share, update the query or columns)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    page: Page | None = None
    shared: bool | None = None
    query: QueryValues | None = None
    columns: Columns | None = None


class SavedViewOut(BaseModel):
    """A saved view; `owned` says whether the caller may change it."""

    id: str
    name: str
    page: str
    shared: bool
    owned: bool
    query: dict[str, str]
    columns: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: SavedView, principal: Principal) -> SavedViewOut:
        """The public form of a view, as `principal` sees it."""
        return cls(
            id=view.id,
            name=view.name,
            page=view.page,
            shared=view.shared,
            owned=view.owner == principal.sub,
            query=view.query,
            columns=view.columns,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


class SavedViewList(BaseModel):
    """The views the caller sees: its own and those shared in its scope, by name."""

    items: list[SavedViewOut]


def _change(body: SavedViewIn | SavedViewPatch) -> ViewChange:
    return ViewChange(name=body.name, page=body.page, shared=body.shared, query=body.query, columns=body.columns)


def _translated(exc: Exception) -> Exception:
    if isinstance(exc, ViewNotFoundError):
        return HTTPException(status_code=404, detail=str(exc))
    if isinstance(exc, ViewConflictError):
        return HTTPException(status_code=409, detail=str(exc))
    assert isinstance(exc, ViewQueryError)
    return RequestValidationError([{"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}])


@router.get("", summary="List Saved Views")
def get_saved_views(
    session: SessionDep,
    principal: ReaderPrincipal,
    page: Annotated[Page | None, Query(description="Only the views of this console page")] = None,
) -> SavedViewList:
    """The caller's views and those shared with its scope."""
    return SavedViewList(items=[SavedViewOut.of(view, principal) for view in list_views(session, principal, page)])


@router.post("", status_code=201, summary="Save a View")
def post_saved_view(session: SessionDep, principal: ReaderPrincipal, body: SavedViewIn) -> SavedViewOut:
    """Save the current view under a name (private unless `shared`)."""
    try:
        return SavedViewOut.of(create_view(session, principal, _change(body)), principal)
    except (ViewConflictError, ViewQueryError) as exc:
        raise _translated(exc) from None


@router.get("/{view_id}", summary="Get a Saved View")
def get_saved_view(session: SessionDep, principal: ReaderPrincipal, view_id: ViewIdPath) -> SavedViewOut:
    """One view the caller sees."""
    try:
        return SavedViewOut.of(get_view(session, principal, view_id), principal)
    except ViewNotFoundError as exc:
        raise _translated(exc) from None


@router.patch("/{view_id}", summary="Change a Saved View")
def patch_saved_view(
    session: SessionDep, principal: ReaderPrincipal, view_id: ViewIdPath, body: SavedViewPatch
) -> SavedViewOut:
    """Rename, share or unshare, or update the query or columns of one of the caller's views."""
    try:
        return SavedViewOut.of(update_view(session, principal, view_id, _change(body)), principal)
    except (ViewNotFoundError, ViewConflictError, ViewQueryError) as exc:
        raise _translated(exc) from None


@router.delete("/{view_id}", status_code=204, summary="Delete a Saved View")
def delete_saved_view(session: SessionDep, principal: ReaderPrincipal, view_id: ViewIdPath) -> Response:
    """Delete one of the caller's views."""
    try:
        delete_view(session, principal, view_id)
    except ViewNotFoundError as exc:
        raise _translated(exc) from None
    return Response(status_code=204)
