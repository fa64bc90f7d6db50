"""The lossless feed for SIEM collectors (`GET /api/v1/admin/audit/feed`) and the action catalog
(`GET /api/v1/admin/audit/catalog`), over `audit_app.audit.feed`, `.catalog` and `.ocsf`."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from audit_app.api.deps import ReaderPrincipal, ReadSessionDep
from audit_app.api.event_json import feed_json
from audit_app.api.params import feed_filters
from audit_app.api.schemas import ActionCatalog, CatalogAction, FeedAnswer, FeedGone, OcsfFeedAnswer
from audit_app.audit.catalog import CATALOG, CatalogEntry, catalog_entry
from audit_app.audit.feed import (
    DEFAULT_FEED_LIMIT,
    MAX_FEED_LIMIT,
    CursorExpiredError,
    FeedCursor,
    FeedCursorError,
    FeedPage,
    collector_key,
    hour_recorded,
    poll_hour,
    read_feed,
    record_poll,
)
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ocsf import OCSF_VERSION, to_ocsf
from audit_app.audit.query import list_actions
from audit_app.auth import Principal
from audit_app.db import get_engine, session_scope
from audit_app.models import utc, utcnow

router = APIRouter(prefix="/api/v1/admin/audit", tags=["Audit feed"])
FeedFiltersDep = Annotated[AuditFilters, Depends(feed_filters)]


def _invalid(name: str, value: Any, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}])


def _start(after: str | None, since: datetime | None) -> FeedCursor:
    """The cursor a request starts from: `after`, else `since`, else the oldest retained event."""
    if after is not None:
        try:
            return FeedCursor.decode(after)
        except FeedCursorError as exc:
            raise _invalid("after", after, f"Value error, {exc}") from None
    if since is None:
        return FeedCursor()
    try:
        return FeedCursor(since=utc(since))
    except (OverflowError, ValueError):
        raise _invalid("since", since.isoformat(), "Value error, is outside the supported time range") from None


@router.get(
    "/feed",
    summary="Follow the Audit Feed",
    response_model=FeedAnswer | OcsfFeedAnswer,
    responses={410: {"model": FeedGone, "description": "The cursor points into purged history"}},
)
def follow_feed(
    request: Request,
    session: ReadSessionDep,
    principal: ReaderPrincipal,
    filters: FeedFiltersDep,
    after: Annotated[str | None, Query(max_length=512, description="The `next` of the previous answer")] = None,
    since: Annotated[datetime | None, Query(description="Without `after`: start at events ingested from then")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_LIMIT)] = DEFAULT_FEED_LIMIT,
    format: Annotated[
        Literal["json", "ocsf"], Query(description="json (events as the list returns them) or ocsf (OCSF 1.5.0)")
    ] = "json",
) -> Response:
    """Every event of the caller's scope exactly once, in a stable order: follow `Link: rel="next"` forever."""
    cursor = _start(after, since)
    try:
        page = read_feed(session, principal, filters, cursor, limit, details_as_json_text=format == "json")
    except CursorExpiredError as exc:
        gone = FeedGone(detail=str(exc), since=exc.oldest_since)
        return JSONResponse(gone.model_dump(mode="json"), status_code=410)
    following = page.next.encode()
    now = utcnow()
    poll = partial(
        _record_poll,
        principal,
        filters,
        format,
        page,
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        now=now,
    )
    counted_later = None
    if hour_recorded(get_engine(), collector_key(principal, filters, format), poll_hour(now)):
        counted_later = BackgroundTask(poll)  # only a count: it need not hold the answer back
    else:
        poll()  # the hour's first poll is recorded before it is answered
    content: str | bytes
    if format == "ocsf":
        content = OcsfFeedAnswer(items=[to_ocsf(row) for row in page.items], next=following).model_dump_json()
    else:
        content = feed_json(page.items, following)
    link = request.url.remove_query_params(["after", "since"]).include_query_params(after=following)
    return Response(
        content,
        media_type="application/json",
        headers={"Link": f'<{link}>; rel="next"', "Cache-Control": "no-store"},
        background=counted_later,
    )


def _record_poll(
    principal: Principal, filters: AuditFilters, fmt: str, page: FeedPage[Any], **context: Any
) -> str | None:
    """`record_poll` on the primary (the read database may be a replica)."""
    with session_scope() as primary:
        return record_poll(primary, principal, filters, fmt, page, **context)


def _catalog_action(entry: CatalogEntry) -> CatalogAction:
    return CatalogAction(
        action=entry.action,
        description=entry.description,
        ocsf_class_uid=entry.ocsf_class.uid,
        ocsf_class_name=entry.ocsf_class.name,
        ocsf_category_uid=entry.ocsf_class.category_uid,
        activity_id=int(entry.activity),
        activity_name=entry.activity_name,
        type_uid=entry.type_uid,
        security_relevant=entry.security_relevant,
    )


@router.get("/catalog", summary="Get the Action Catalog")
def get_action_catalog(session: ReadSessionDep, principal: ReaderPrincipal) -> ActionCatalog:
    """Every known action with its description, OCSF class and activity, and security relevance;
    plus the actions in the caller's scope the catalog does not know (sent as API Activity: Other)."""
    unknown = [action for action in list_actions(session, principal) if action not in CATALOG]
    return ActionCatalog(
        ocsf_version=OCSF_VERSION,
        actions=[_catalog_action(entry) for entry in CATALOG.values()],
        uncatalogued=[_catalog_action(catalog_entry(action)) for action in unknown],
    )
