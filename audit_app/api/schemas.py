"""Bodies of the API's requests and responses (the event schema itself lives in models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit_app.models import AuditEventIn, AuditLogPublic

MAX_BATCH = 1000


class AuditLogPage(BaseModel):
    """One page of the filtered list."""

    items: list[AuditLogPublic]
    total: int
    page: int
    per_page: int
    pages: int
    total_exact: bool = True
    next_cursor: str | None = None


class ActionList(BaseModel):
    """Every action name in the caller's scope, sorted."""

    actions: list[str]


class ResourceTypeList(BaseModel):
    """Every resource type in the caller's scope, sorted."""

    resource_types: list[str]


class DayCount(BaseModel):
    """Events of one bucket (a UTC day unless `tz` says otherwise)."""

    model_config = ConfigDict(extra="allow")

    date: str
    count: int


class TopActor(BaseModel):
    """One of the most active actors."""

    actor_id: str
    actor_email: str | None
    count: int


class AuditStats(BaseModel):
    """Aggregates over the events in scope."""

    model_config = ConfigDict(extra="allow")

    total: int
    by_action: dict[str, int]
    by_result: dict[str, int]
    by_resource_type: dict[str, int]
    by_day: list[DayCount]
    bucket: Literal["hour", "day", "week", "month", "year"] = Field(
        default="day",
        description=(
            "What each `by_day` entry counts: the hour (windows of at most 48 hours; `date` is then the hour's "
            "start, ISO 8601 with the offset of `tz` then), day, week (from Monday), month or year from its `date`, "
            "in the calendar of `tz`"
        ),
    )
    tz: str = Field(default="UTC", description="The IANA time zone of the `by_day` buckets (the `tz` parameter)")
    top_actors: list[TopActor]
    unique_actors: int
    failure_rate: float


class EventBatch(BaseModel):
    """`POST /api/v1/audit/events`: 1 to 1,000 events, written all or none."""

    model_config = ConfigDict(extra="forbid")

    events: list[AuditEventIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(BaseModel):
    """The ids the server assigned, in the order of the batch."""

    ids: list[str]
    count: int


class FeedAnswer(BaseModel):
    """One answer of the feed: events in feed order and the cursor of the next request."""

    items: list[AuditLogPublic]
    next: str = Field(description='Pass as `after` next time (the `Link: rel="next"` header holds the whole URL)')


class OcsfFeedAnswer(BaseModel):
    """One answer of the feed with `format=ocsf`: OCSF 1.5.0 events in feed order."""

    items: list[dict[str, Any]]
    next: str


class CatalogAction(BaseModel):
    """One action of the catalog and the OCSF class and activity its events are sent as."""

    action: str
    description: str
    ocsf_class_uid: int
    ocsf_class_name: str
    ocsf_category_uid: int
    activity_id: int
    activity_name: str
    type_uid: int
    security_relevant: bool


class ActionCatalog(BaseModel):
    """The action catalog, and the actions in the caller's scope it does not know (sent as API Activity: Other)."""

    ocsf_version: str
    actions: list[CatalogAction]
    uncatalogued: list[CatalogAction]


class FeedGone(BaseModel):
    """410: the cursor points into purged history; restart with `since`."""

    detail: str
    since: datetime | None = Field(description="The oldest `since` still served (None: nothing retained)")
