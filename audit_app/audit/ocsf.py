"""Events as OCSF 1.5.0 events of the class the action catalog names, built on the schema's models.

The models come from `ocsf-emitter` (generated from the OCSF 1.5.0 schema): constructing one
validates every field against the schema, so a malformed event raises instead of being sent.
`ocsf_emitter.validate` additionally checks class identity and `type_uid` (the tests run it on
every catalogued action). The original event rides along under `unmapped`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocsf_emitter import models
from ocsf_emitter.defaults import OCSF_SCHEMA_VERSION

from audit_app import __version__
from audit_app.audit.catalog import ACCOUNT_CHANGE, AUTHENTICATION, GROUP_MANAGEMENT, USER_ACCESS, catalog_entry
from audit_app.audit.chain import iso_utc
from audit_app.models import EVENT_FIELDS

OCSF_VERSION = OCSF_SCHEMA_VERSION
PRODUCT = {"name": "audit_app", "vendor_name": "audit_app", "version": __version__}
MODELS: dict[int, Any] = {
    AUTHENTICATION.uid: models.Authentication,
    ACCOUNT_CHANGE.uid: models.AccountChange,
    USER_ACCESS.uid: models.UserAccess,
    GROUP_MANAGEMENT.uid: models.GroupManagement,
}
STATUS = {"success": (1, "Success")}  # failure, denied, error: 2 Failure
SEVERITY = {1: "Informational", 2: "Low", 3: "Medium"}
ACCOUNT_RESOURCES = ("user", "api_key", "oauth_client")


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _severity(result: str, security_relevant: bool) -> int:
    """Informational when it succeeded; a refused or failed security-relevant action is Medium, else Low."""
    if result == "success":
        return 1
    return 3 if security_relevant and result in ("failure", "denied") else 2


def _subject(event: Any) -> dict[str, Any]:
    """The user whose access or membership changed, when the event names one (else an empty user)."""
    details = event.details or {}
    named = details.get("user_id") or (event.resource_id if event.resource_type == "user" else None)
    return {"uid": str(named)} if named else {}


def _privilege(event: Any) -> str:
    """The privilege granted or revoked: the role changed to (from, for a revocation), else the resource."""
    change = ((event.details or {}).get("changes") or {}).get("role") or {}
    granted = change.get("to") or change.get("from") if isinstance(change, dict) else None
    return str(granted or event.resource_id or event.action)


def original(event: Any) -> dict[str, Any]:
    """The event as the API returns it (JSON-ready), for `unmapped`."""
    out = {name: getattr(event, name) for name in (*EVENT_FIELDS, "ingested_at", "hash")}
    out["timestamp"], out["ingested_at"] = iso_utc(event.timestamp), iso_utc(event.ingested_at)
    return out


def to_ocsf(event: Any) -> dict[str, Any]:
    """`event` (any object with the public fields of AuditLog) as a validated OCSF event (a JSON-ready dict)."""
    entry = catalog_entry(event.action)
    ocsf_class = entry.ocsf_class
    actor_user = {"uid": event.actor_id, "email_addr": event.actor_email, "type": event.actor_type}
    session = {"uid": event.session_id} if event.session_id else None
    status_id, status = STATUS.get(event.result, (2, "Failure"))
    severity_id = _severity(event.result, entry.security_relevant)
    body: dict[str, Any] = {
        "class_uid": ocsf_class.uid,
        "class_name": ocsf_class.name,
        "category_uid": ocsf_class.category_uid,
        "category_name": ocsf_class.category_name,
        "activity_id": int(entry.activity),
        "activity_name": entry.activity_name,
        "type_uid": entry.type_uid,
        "type_name": f"{ocsf_class.name}: {entry.activity_name}",
        "time": _millis(event.timestamp),
        "severity_id": severity_id,
        "severity": SEVERITY[severity_id],
        "status_id": status_id,
        "status": status,
        "status_detail": str((event.details or {}).get("reason") or event.result),
        "message": f"{event.action} {event.result}",
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": event.id,
            "tenant_uid": event.tenant_id,
            "correlation_uid": event.request_id,
            "event_code": event.action,
            "logged_time": _millis(event.ingested_at),
        },
        "actor": {"user": actor_user, "session": session},
        "src_endpoint": {"ip": event.ip_address},
        "http_request": {"user_agent": event.user_agent} if event.user_agent else None,
        "unmapped": original(event),
    }
    resource = {"uid": event.resource_id, "type": event.resource_type}
    if ocsf_class is AUTHENTICATION:
        body["user"] = actor_user
        body["session"] = session
    elif ocsf_class is ACCOUNT_CHANGE:
        subject = event.resource_type in ACCOUNT_RESOURCES and event.resource_id
        body["user"] = {"uid": event.resource_id, "type": event.resource_type} if subject else actor_user
    elif ocsf_class is USER_ACCESS:
        body["user"] = _subject(event)
        body["privileges"] = [_privilege(event)]
        body["resources"] = [resource]
    elif ocsf_class is GROUP_MANAGEMENT:
        body["group"] = {"uid": event.resource_id, "name": event.resource_id}
        body["user"] = _subject(event) or None
    else:
        body["api"] = {"operation": event.action, "service": {"name": event.resource_type}}
        body["resources"] = [resource]
    model = MODELS.get(ocsf_class.uid, models.ApiActivity)
    built = model.model_validate(body)
    return dict(built.model_dump(mode="json", exclude_none=True))
