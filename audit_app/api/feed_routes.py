"""The lossless feed for SIEM collectors (`GET /api/v1/admin/audit/feed`), over `audit_app.audit.feed`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audit_app.api.deps import ReaderPrincipal, ReadSessionDep
from audit_app.api.params import feed_filters
from audit_app.api.schemas import FeedAnswer, FeedGone
from audit_app.audit.feed import (
    DEFAULT_FEED_LIMIT,
    MAX_FEED_LIMIT,
    CursorExpiredError,
    FeedCursor,
    FeedCursorError,
    read_feed,
    record_poll,
)
from audit_app.audit.filters import AuditFilters
from audit_app.db import session_scope
from audit_app.models import utc

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
    response_model=FeedAnswer,
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
    format: Annotated[Literal["json"], Query(description="json")] = "json",
) -> Response:
    """Every event of the caller's scope exactly once, in a stable order: follow `Link: rel="next"` forever."""
    cursor = _start(after, since)
    try:
        page = read_feed(session, principal, filters, cursor, limit)
    except CursorExpiredError as exc:
        gone = FeedGone(detail=str(exc), since=exc.oldest_since)
        return JSONResponse(gone.model_dump(mode="json"), status_code=410)
    following = page.next.encode()
    with session_scope() as primary:  # the read database may be a replica: the record goes to the primary
        record_poll(
            primary,
            principal,
            filters,
            format,
            page,
            ip_address=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    body = FeedAnswer.model_validate({"items": page.items, "next": following}, from_attributes=True)
    link = request.url.remove_query_params(["after", "since"]).include_query_params(after=following)
    return Response(
        body.model_dump_json(),
        media_type="application/json",
        headers={"Link": f'<{link}>; rel="next"', "Cache-Control": "no-store"},
    )
