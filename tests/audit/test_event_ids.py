"""Server-assigned event ids: version 7 UUIDs (time-ordered, unique)."""

from __future__ import annotations

import time
import uuid

from audit_app.audit.ingest import new_event_id, new_event_ids


def test_event_ids_are_unique_version_7_uuids_in_time_order() -> None:
    first = [new_event_id() for _ in range(10_000)] + new_event_ids(10_000)
    time.sleep(0.002)
    later = new_event_id()
    assert len(set(first)) == len(first)
    for value in (*first[:100], *first[-100:], later):
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert max(first) < later  # a later millisecond sorts after every id of earlier ones
    clock = int(later.replace("-", "")[:12], 16)
    assert abs(clock - time.time() * 1000) < 60_000
