"""The Streams page's form: its fields per type, what a submitted form means to the domain, the
domain's refusals by field, and a stream as a row of the list. No rules of its own: every check
is the domain's (audit/streams.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from pydantic import ValidationError

from audit_app.audit.streams import STREAM_TYPES, StreamChange, StreamConfigError, StreamLag, config_errors
from audit_app.models import LogStream
from audit_app.ui.present import ago, show_time

TYPE_LABELS = {
    "http": "HTTP (signed NDJSON)",
    "splunk_hec": "Splunk HEC",
    "datadog": "Datadog",
    "elasticsearch": "Elasticsearch",
    "syslog": "Syslog (RFC 5424 over TCP)",
}
TARGET_HINTS = {
    "http": "URL, e.g. https://siem.example.com/ingest",
    "splunk_hec": "base URL, e.g. https://splunk.example.com:8088",
    "datadog": "intake URL, e.g. https://http-intake.logs.datadoghq.eu",
    "elasticsearch": "base URL, e.g. https://es.example.com:9200",
    "syslog": "host:port, e.g. siem.example.com:6514",
}
LIST_FIELDS = ("actions", "action_prefixes", "results")
BASE_FIELDS = ("name", "target", "format", "owner", *LIST_FIELDS)


@dataclass(frozen=True)
class FormField:
    """One per-type control: `key` is `options.<name>` or `credentials.<name>` (write-only)."""

    key: str
    label: str
    kind: str = "text"  # text, secret, check, number, textarea
    hint: str = ""

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]


TYPE_FIELDS: dict[str, tuple[FormField, ...]] = {
    "http": (
        FormField("credentials.secret", "Signing secret", "secret", "16+ characters; signs X-Audit-Signature"),
        FormField("options.header_name", "Static header name", hint="optional, e.g. X-Token"),
        FormField("credentials.header_value", "Static header value", "secret", "with the header name"),
    ),
    "splunk_hec": (
        FormField("credentials.token", "HEC token", "secret"),
        FormField("options.index", "Index", hint="optional"),
        FormField("options.source", "Source"),
        FormField("options.sourcetype", "Source type"),
        FormField("options.host", "Host"),
    ),
    "datadog": (
        FormField("credentials.api_key", "API key", "secret"),
        FormField("options.service", "Service"),
        FormField("options.ddsource", "Source (ddsource)"),
        FormField("options.ddtags", "Tags (ddtags)", hint="optional, e.g. env:prod,team:sec"),
        FormField("options.hostname", "Hostname", hint="optional"),
    ),
    "elasticsearch": (
        FormField("credentials.api_key", "API key", "secret"),
        FormField("options.data_stream", "Data stream", hint="e.g. logs-audit-default"),
    ),
    "syslog": (
        FormField("options.tls", "Use TLS", "check"),
        FormField("options.tls_ca", "CA certificates (PEM)", "textarea", "optional: trusted instead of the system's"),
        FormField("options.facility", "Facility", "number", "0-23; 13 = log audit"),
        FormField("options.hostname", "Hostname", hint="optional"),
        FormField("options.app_name", "App name"),
    ),
}
"""The controls of each type, in the order shown (every name is the domain's)."""
assert set(TYPE_FIELDS) == set(STREAM_TYPES)


def _words(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value or "") if part]


def _typed(form: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The options and the credentials typed for a stream of `kind` (empty fields are left out)."""
    options: dict[str, Any] = {}
    credentials: dict[str, str] = {}
    for field in TYPE_FIELDS[kind]:
        raw = form.get(field.key, "")
        if field.kind == "check":
            options[field.name] = raw in (True, "on", "true", "1")
            continue
        value = str(raw) if field.kind == "secret" else str(raw).strip()
        if value == "":
            continue
        (credentials if field.section == "credentials" else options)[field.name] = value
    return options, credentials


def spec_input(form: dict[str, Any], kind: str) -> dict[str, Any]:
    """The configuration of a new stream from a submitted form, as the API's create body has it."""
    options, credentials = _typed(form, kind)
    raw: dict[str, Any] = {
        "type": kind,
        "name": str(form.get("name", "")).strip(),
        "target": str(form.get("target", "")).strip(),
        "format": str(form.get("format", "") or "json"),
        "options": options,
        "credentials": credentials,
    }
    owner = str(form.get("owner", ""))
    if owner.startswith("tenant:"):
        raw["tenant_id"] = owner.removeprefix("tenant:")
    elif owner.startswith("partner:"):
        raw["partner_id"] = owner.removeprefix("partner:")
    for name in LIST_FIELDS:
        raw[name] = _words(str(form.get(name, "")))
    return raw


def change_input(form: dict[str, Any], kind: str) -> StreamChange:
    """A change from a submitted edit form: every setting as shown, credentials only where retyped."""
    options, credentials = _typed(form, kind)
    return StreamChange(
        name=str(form.get("name", "")).strip(),
        target=str(form.get("target", "")).strip(),
        format=str(form.get("format", "") or "json"),  # type: ignore[arg-type]
        actions=_words(str(form.get("actions", ""))),
        action_prefixes=_words(str(form.get("action_prefixes", ""))),
        results=_words(str(form.get("results", ""))),
        options=options,
        credentials=dict(credentials) or None,
    )


def errors_by_field(exc: ValidationError | StreamConfigError) -> tuple[dict[str, str], str]:
    """The domain's refusal as messages by form field (`options.x`, `credentials.x`, ...), and what
    belongs to no single field."""
    fields: dict[str, str] = {}
    general: list[str] = []
    for error in config_errors(exc, untag=True):
        loc = [str(part) for part in error["loc"][1:] if not isinstance(part, int)]
        message = str(error["msg"]).removeprefix("Value error, ")
        key = ".".join(loc[:2])
        if key in ("tenant_id", "partner_id"):
            key = "owner"
        if key in BASE_FIELDS or any(key == f.key for fields_ in TYPE_FIELDS.values() for f in fields_):
            fields.setdefault(key, message)
        elif key in ("options", "credentials"):
            general.append(f"{key}: {message}")
        else:
            general.append(message)
    return fields, " ".join(general)


def form_values(stream: LogStream, credential_names: list[str]) -> dict[str, str]:
    """What the edit form shows of a stream (never a credential's value)."""
    values = {
        "name": stream.name,
        "target": stream.target,
        "format": stream.format,
        "owner": owner_text(stream),
        **{name: ", ".join(getattr(stream, name)) for name in LIST_FIELDS},
    }
    for field in TYPE_FIELDS.get(stream.type, ()):
        if field.section == "options":
            value = stream.options.get(field.name)
            values[field.key] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        else:
            values[field.key] = ""
            values[field.key + ":set"] = "true" if field.name in credential_names else ""
    return values


def owner_text(stream: LogStream) -> str:
    """Whose events a stream carries, in words."""
    if stream.tenant_id:
        return f"tenant {stream.tenant_id}"
    if stream.partner_id:
        return f"partner {stream.partner_id}"
    return "platform (every tenant)"


def _seconds(value: float) -> str:
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.0f} min"


def stream_row(stream: LogStream, lag: StreamLag, zone: tzinfo = UTC, now: datetime | None = None) -> dict[str, str]:
    """One row of the list: display strings of the stream's configuration and health."""
    now = now or datetime.now(UTC)
    events = f"{lag.events:,}" + ("+" if lag.capped else "")
    return {
        "id": stream.id,
        "name": stream.name,
        "type": TYPE_LABELS.get(stream.type, stream.type),
        "target": stream.target,
        "owner": owner_text(stream),
        "status": stream.status,
        "lag": "none" if not lag.events else f"{events} event{'' if events == '1' else 's'}, {_seconds(lag.seconds)}",
        "last_success": (
            f"{show_time(stream.last_success_at, zone)} ({ago(stream.last_success_at, now)})"
            if stream.last_success_at
            else "never"
        ),
        "last_error": stream.last_error or "",
        "last_error_at": show_time(stream.last_error_at, zone),
        "delivered": f"{stream.delivered:,}",
        "failed": f"{stream.failed:,}",
    }
