"""The audit endpoints: HTTP in and out; the logic lives in `audit_app.audit`."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import Field, create_model
from sqlmodel import Session

from audit_app.api.admission import WriterAdmission, write_until_disconnect
from audit_app.api.deps import (
    ExporterPrincipal,
    ReaderPrincipal,
    ReadSessionDep,
    SettingsDep,
    SnapshotSessionDep,
    WriterPrincipal,
)
from audit_app.api.event_json import page_json
from audit_app.api.params import (
    ListParams,
    ListRequest,
    list_params,
    list_request_dependency,
    stats_filters,
    stats_zone,
)
from audit_app.api.schemas import (
    ActionList,
    AuditLogPage,
    AuditStats,
    EventBatch,
    IngestResult,
    ResourceTypeList,
)
from audit_app.audit.access import Client, export_events, view_event
from audit_app.audit.export import (
    EXPORT_EXTENSIONS,
    EXPORT_FORMATS,
    export_filename,
)
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import EventTimeLimits, ingest_batch
from audit_app.audit.query import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    list_actions,
    list_events,
    list_resource_types,
)
from audit_app.audit.signing import NO_SIGNING_KEY, export_keys
from audit_app.audit.stats import compute_stats
from audit_app.auth import DOWNLOAD_TOKEN_USE, Principal
from audit_app.models import AuditLogPublic
from audit_app.settings import get_settings

AUDIT_PREFIX = "/api/v1/admin/audit"
MAX_PAGE = 10**9  # keeps OFFSET inside a 64-bit integer
MAX_LOG_ID_LENGTH = 64
MAX_CURSOR_LENGTH = 512
NOT_FOUND = "Audit log entry not found."

# Fixed paths under /api/v1/admin/audit/; `entry_router` (/{log_id}) must be included after
# every router holding such paths, or it would answer for them.
router = APIRouter(prefix=AUDIT_PREFIX, tags=["Audit"])
entry_router = APIRouter(prefix=AUDIT_PREFIX, tags=["Audit"])
ingest_router = APIRouter(prefix="/api/v1/audit", tags=["Audit ingestion"])

ListParamsDep = Annotated[ListParams, Depends(list_params)]
StatsFiltersDep = Annotated[AuditFilters, Depends(stats_filters)]


def _client(request: Request) -> Client:
    """The caller's address and user agent, for access events."""
    return Client(request.client.host if request.client else None, request.headers.get("user-agent"))


ListPageQuery = create_model(
    "ListPageQuery",
    page=(int, Field(default=1, ge=1, le=MAX_PAGE)),
    per_page=(int, Field(default=DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)),
    cursor=(str | None, Field(default=None, max_length=MAX_CURSOR_LENGTH)),
)
"""The list's own query parameters, as `list_audit_logs` declares them, for `answer_list_audit_logs`."""
ListRequestDep = Annotated[ListRequest, Depends(list_request_dependency(ListPageQuery))]


def answer_list_audit_logs(session: ReadSessionDep, principal: ReaderPrincipal, asked: ListRequestDep) -> Response:
    """The list route that answers: `list_audit_logs`'s parameters read in one pass (`params.query_model`).

    Registered before the documented route on the same path, so it is the one matched; the
    documented one gives the OpenAPI document its parameters (and answers the same, tested).
    """
    return _list_page(session, principal, asked)


def _list_page(session: Session, principal: Principal, asked: ListRequest) -> Response:
    filters, order = asked.asked.filters, asked.asked.order
    result = list_events(
        session,
        principal,
        filters,
        page=asked.page,
        per_page=asked.per_page,
        cursor=asked.cursor,
        order=order,
        as_stored=True,
    )
    # The AuditLogPage written straight from the rows (`event_json`): no validation of each row
    # and none again by FastAPI for the response model, which stays declared for the OpenAPI document.
    return Response(page_json(result), media_type="application/json")


# Behind the Reflex mount FastAPI's slash redirect never fires: answer both spellings.
router.add_api_route("/", answer_list_audit_logs, methods=["GET"], include_in_schema=False)
router.add_api_route("", answer_list_audit_logs, methods=["GET"], include_in_schema=False)


# Documents the list (its parameters, response and description); `answer_list_audit_logs`,
# matched first, answers it.
@router.get("/", summary="List Audit Logs", response_model=AuditLogPage)
def list_audit_logs(
    session: ReadSessionDep,
    principal: ReaderPrincipal,
    asked: ListParamsDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="Continue after a previous page: its `next_cursor` (keyset pagination)",
        ),
    ] = None,
) -> Response:
    """List audit logs with filtering."""
    return _list_page(session, principal, ListRequest(asked, page, per_page, cursor))


@router.get("/actions", summary="List Audit Actions")
def list_audit_actions(session: ReadSessionDep, principal: ReaderPrincipal) -> ActionList:
    """Get list of all audit action types."""
    return ActionList(actions=list_actions(session, principal))


@router.get("/resource-types", summary="List Resource Types")
def list_audit_resource_types(session: ReadSessionDep, principal: ReaderPrincipal) -> ResourceTypeList:
    """Get list of all resource types in audit logs."""
    return ResourceTypeList(resource_types=list_resource_types(session, principal))


@router.get("/stats", summary="Get Audit Stats")
def get_audit_stats(
    session: SnapshotSessionDep,
    principal: ReaderPrincipal,
    filters: StatsFiltersDep,
    zone: Annotated[ZoneInfo | None, Depends(stats_zone)],
) -> AuditStats:
    """Get audit log statistics."""
    return AuditStats.model_validate(compute_stats(session, principal, filters, zone=zone))


@router.get(
    "/export",
    summary="Export Audit Logs",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in EXPORT_FORMATS.values()}}},
)
def export_audit_logs(
    request: Request,
    principal: ExporterPrincipal,
    asked: ListParamsDep,
    format: Annotated[
        Literal["csv", "jsonl", "ocsf", "bundle"],
        Query(
            description="csv (with a header row), jsonl, ocsf (OCSF 1.5.0, JSON lines), or bundle (signed evidence zip)"
        ),
    ] = "csv",
    excel: Annotated[
        bool, Query(description="csv only: a UTF-8 byte-order mark first, so Excel reads accents and CJK right")
    ] = False,
) -> StreamingResponse:
    """Stream every matching event as CSV, JSON Lines or an evidence bundle; the export is itself audited.

    The time window is resolved when the export starts: without `end_time`, it ends at that instant.
    """
    if excel and format != "csv":
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "excel"),
                    "msg": "Value error, applies to format=csv only",
                    "input": "1",
                }
            ]
        )
    keys = export_keys(get_settings()) if format == "bundle" else None
    if keys is not None and keys.signing is None:
        raise HTTPException(status_code=503, detail=NO_SIGNING_KEY)
    settings = get_settings()
    download_id = principal.token_id if principal.token_use == DOWNLOAD_TOKEN_USE else None
    export = export_events(
        principal,
        asked.filters,
        format,
        _client(request),
        excel=excel,
        keys=keys,
        download_id=download_id,
        rows_per_second=settings.export_rows_per_second,
        order=asked.order,
    )
    filename = export_filename(export.filters, EXPORT_EXTENSIONS[format])
    return StreamingResponse(
        export.chunks,
        media_type=EXPORT_FORMATS[format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/export-keys", summary="List Export Signing Keys")
def list_export_keys() -> dict[str, list[dict[str, str]]]:
    """The public keys that verify evidence bundles, as a JSON Web Key Set (no token needed: they are public).

    Keys retired from signing stay listed, so bundles signed before a rotation still verify.
    """
    return export_keys(get_settings()).jwks()


@entry_router.get("/{log_id}", summary="Get Audit Log")
def get_audit_log(request: Request, principal: ReaderPrincipal, log_id: str) -> AuditLogPublic:
    """Get a single audit log entry with full details."""
    return AuditLogPublic.model_validate(view_event(principal, log_id, _client(request)))


@ingest_router.post("/events", status_code=201, summary="Write Audit Events")
async def write_audit_events(
    request: Request,
    batch: EventBatch,
    response: Response,
    principal: WriterPrincipal,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Makes a retried batch a no-op that returns the same ids (1-255 visible ASCII)"),
    ] = None,
) -> IngestResult:
    """Write 1 to 1,000 events atomically: all of them, or none and a 422."""
    if idempotency_key is not None and not (
        0 < len(idempotency_key) <= 255 and idempotency_key.isascii() and idempotency_key.isprintable()
    ):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", "idempotency-key"),
                    "msg": "Value error, must be 1 to 255 visible ASCII characters",
                    "input": idempotency_key[:300],
                }
            ]
        )
    limits = EventTimeLimits(earliest=settings.min_event_time, max_future_skew=settings.max_future_skew)
    admission: WriterAdmission = request.app.state.writers
    async with admission.admit((event.tenant_id for event in batch.events), settings.pool_timeout):
        outcome = await write_until_disconnect(
            request,
            lambda session: ingest_batch(
                session, principal, batch.events, idempotency_key=idempotency_key, time_limits=limits
            ),
        )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return IngestResult(ids=outcome.ids, count=len(outcome.ids))
