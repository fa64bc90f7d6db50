"""Sending a batch of events to a stream's receiver, following each receiver's own contract.

A `Sender` delivers one batch and returns normally only when the receiver acknowledged all of
it; otherwise it raises `DeliveryError`, retryable (connection errors, timeouts, 408, 429,
5xx, per-item 429/5xx of Elasticsearch) or not (any other 4xx: a configuration the receiver
refuses), with the receiver's answer and its `Retry-After`. Types (docs/streams.md):

- `http`: NDJSON, `X-Audit-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
- `splunk_hec`: `{url}/services/collector/event`, `Authorization: Splunk <token>`, concatenated
  event objects.
- `datadog`: `{url}/api/v2/logs`, gzip JSON arrays of at most 1,000 entries and 5 MB, `DD-API-KEY`.
- `elasticsearch`: `{url}/{data stream}/_bulk`, `create` actions with the event id as `_id`
  (a 409 for an item means it is already there: a redelivery), `Authorization: ApiKey <key>`.
- `syslog`: RFC 5424 messages over TCP (optionally TLS), octet-counted (RFC 6587).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import operator
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import httpx
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from sqlalchemy import Row
from sqlmodel import Session

from audit_app.audit.chain import iso_utc
from audit_app.audit.filters import SYSTEM_TENANT
from audit_app.audit.ingest import new_event_id
from audit_app.audit.ocsf import to_ocsf
from audit_app.audit.stream_targets import TargetPolicy, TargetRefusedError, connect, guarded_transport
from audit_app.audit.streams import (
    CredentialsUnreadableError,
    DatadogStream,
    ElasticStream,
    HttpStream,
    SpecModel,
    SplunkStream,
    SyslogStream,
    full_spec,
    get_stream,
)
from audit_app.auth import Principal
from audit_app.models import AuditLogPublic, utc, utcnow

DATADOG_MAX_ENTRIES = 1000
DATADOG_MAX_BYTES = 5 * 1024 * 1024
MAX_ANSWER = 500
USER_AGENT = "audit_app-log-stream/1"
SYSLOG_SEVERITY = {"success": 6, "failure": 4, "denied": 4, "error": 3}
SD_ID = "audit@32473"
"""The structured-data id of the event (32473 is the private enterprise number reserved for examples)."""


class DeliveryError(Exception):
    """The receiver did not take the batch: its answer, whether to retry, and when."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


PUBLIC_FIELDS: tuple[str, ...] = tuple(AuditLogPublic.model_fields)
"""The fields of an event's `json` document, in the list endpoint's order (a feed row's first columns)."""
_public_values = operator.attrgetter(*PUBLIC_FIELDS)


def document(event: Any, fmt: str) -> dict[str, Any]:
    """An event as its stream's format shows it: the list endpoint's fields (`json`), or OCSF 1.5.0.

    `json` takes a feed row's values as they are (the database's own values of AuditLogPublic's
    columns, so validating them would change nothing); `encode` writes datetimes as the API does.
    """
    if fmt == "ocsf":
        return to_ocsf(event)
    values = event if isinstance(event, Row) else _public_values(event)
    return dict(zip(PUBLIC_FIELDS, values, strict=False))


def encode(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, datetimes and all as the API writes them (pydantic's serializer);
    what it cannot encode in UTF-8 (a lone surrogate from SQLite's JSON text) as json.dumps escapes it."""
    try:
        return to_json(value)
    except PydanticSerializationError:
        return json.dumps(to_jsonable_python(value)).encode()


def ndjson(events: Sequence[Any], fmt: str) -> bytes:
    """The events' documents, one JSON line each."""
    return b"".join([encode(document(event, fmt)) + b"\n" for event in events])


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, utc(when).timestamp() - (time.time() if now is None else now))


def _answer(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}: {text[:MAX_ANSWER]}" if text else f"HTTP {response.status_code}"


def check_http_answer(response: httpx.Response) -> None:
    """Raise DeliveryError unless the answer is a 2xx; 408, 429 and 5xx are retryable."""
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status in (408, 429) or status >= 500
    raise DeliveryError(
        _answer(response),
        retryable=retryable,
        status=status,
        retry_after=retry_after_seconds(response.headers.get("retry-after")) if retryable else None,
    )


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Audit-Signature` value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Sender:
    """Delivers batches of one stream to the addresses `targets` allows; `close` releases its connections."""

    def __init__(self, spec: SpecModel, timeout: float, targets: TargetPolicy) -> None:
        self.spec = spec
        self.timeout = timeout
        self.targets = targets

    def send(self, events: Sequence[Any]) -> str:
        """Deliver `events` (all acknowledged) and return the receiver's answer; DeliveryError otherwise."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class HttpSender(Sender):
    """Senders over HTTP: one pooled client, transport errors retryable."""

    def __init__(self, spec: SpecModel, timeout: float, targets: TargetPolicy) -> None:
        super().__init__(spec, timeout, targets)
        self.client = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            transport=guarded_transport(targets),
            trust_env=False,  # no proxy from the environment: the guarded transport connects itself
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST and check the answer (DeliveryError for transport errors and non-2xx answers)."""
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out after {self.timeout:g} s: {exc}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach the receiver: {exc}", retryable=True) from exc
        except TargetRefusedError as exc:
            raise DeliveryError(f"refused to connect: {exc}", retryable=False) from exc
        check_http_answer(response)
        return response

    def close(self) -> None:
        self.client.close()


class WebhookSender(HttpSender):
    """`http`: NDJSON signed with the stream's secret."""

    spec: HttpStream

    def send(self, events: Sequence[Any]) -> str:
        body = ndjson(events, self.spec.format)
        headers = {
            "Content-Type": "application/x-ndjson",
            "X-Audit-Signature": signature(self.spec.credentials.secret, body, int(time.time())),
        }
        if self.spec.options.header_name and self.spec.credentials.header_value:
            headers[self.spec.options.header_name] = self.spec.credentials.header_value
        return _answer(self.post(self.spec.target, body, headers))


class SplunkSender(HttpSender):
    """`splunk_hec`: concatenated HEC event objects."""

    spec: SplunkStream

    def send(self, events: Sequence[Any]) -> str:
        options = self.spec.options
        parts = []
        for event in events:
            item: dict[str, Any] = {
                "time": round(utc(event.timestamp).timestamp(), 6),
                "host": options.host,
                "source": options.source,
                "sourcetype": options.sourcetype,
            }
            if options.index:
                item["index"] = options.index
            item["event"] = document(event, self.spec.format)
            parts.append(encode(item))
        headers = {"Authorization": f"Splunk {self.spec.credentials.token}", "Content-Type": "application/json"}
        response = self.post(f"{self.spec.target}/services/collector/event", b"".join(parts), headers)
        return _answer(response)


def datadog_chunks(entries: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Entries grouped into arrays of at most 1,000 entries and 5 MB (uncompressed)."""
    chunk: list[bytes] = []
    size = 2
    for entry in entries:
        if chunk and (len(chunk) >= DATADOG_MAX_ENTRIES or size + len(entry) + 1 > DATADOG_MAX_BYTES):
            yield chunk
            chunk, size = [], 2
        chunk.append(entry)
        size += len(entry) + 1
    if chunk:
        yield chunk


class DatadogSender(HttpSender):
    """`datadog`: gzip JSON arrays of log entries, the event as the JSON `message`."""

    spec: DatadogStream

    def send(self, events: Sequence[Any]) -> str:
        options = self.spec.options
        entries = []
        for event in events:
            entry: dict[str, Any] = {
                "ddsource": options.ddsource,
                "service": options.service,
                "message": encode(document(event, self.spec.format)).decode(),
            }
            if options.ddtags:
                entry["ddtags"] = options.ddtags
            if options.hostname:
                entry["hostname"] = options.hostname
            entries.append(encode(entry))
        headers = {
            "DD-API-KEY": self.spec.credentials.api_key,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        answer = ""
        for chunk in datadog_chunks(entries):  # a failure retries the batch; Datadog de-duplicates nothing,
            body = gzip.compress(b"[" + b",".join(chunk) + b"]", compresslevel=5)  # receivers use the id
            answer = _answer(self.post(f"{self.spec.target}/api/v2/logs", body, headers))
        return answer


class ElasticSender(HttpSender):
    """`elasticsearch`: `_bulk` `create` actions; per-item errors of a 200 answer are failures."""

    spec: ElasticStream

    def send(self, events: Sequence[Any]) -> str:
        lines = []
        for event in events:
            doc = document(event, self.spec.format)
            doc["@timestamp"] = iso_utc(event.timestamp)
            lines.append(encode({"create": {"_id": event.id}}))
            lines.append(encode(doc))
        body = b"\n".join(lines) + b"\n"
        headers = {"Authorization": f"ApiKey {self.spec.credentials.api_key}", "Content-Type": "application/x-ndjson"}
        response = self.post(f"{self.spec.target}/{self.spec.options.data_stream}/_bulk", body, headers)
        try:
            answer = response.json()
            items = answer.get("items", []) if answer.get("errors") else []
        except (ValueError, AttributeError) as exc:
            raise DeliveryError(f"not a _bulk answer: {_answer(response)}", retryable=True) from exc
        retry: list[str] = []
        refused: list[str] = []
        for item in items:
            result: dict[str, Any] = next(iter(item.values()), {}) if isinstance(item, dict) else {}
            status = int(result.get("status", 500))
            if 200 <= status < 300 or status == 409:  # 409: created by an earlier delivery of the batch
                continue
            error = result.get("error") or {}
            reason = f"{result.get('_id')}: {status} {error.get('type', '')} {error.get('reason', '')}".strip()
            (retry if status == 429 or status >= 500 else refused).append(reason)
        if refused:
            raise DeliveryError(
                f"_bulk refused {len(refused)} item(s): {'; '.join(refused)[:MAX_ANSWER]}", retryable=False
            )
        if retry:
            raise DeliveryError(
                f"_bulk asked to retry {len(retry)} item(s): {'; '.join(retry)[:MAX_ANSWER]}",
                retryable=True,
                status=429,
            )
        return f"HTTP {response.status_code}: {len(events)} item(s) created"


def _sd_value(value: Any) -> str:
    """An RFC 5424 PARAM-VALUE: `"`, `\\` and `]` escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(value: str, limit: int) -> str:
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in value)
    return cleaned[:limit] or "-"


def syslog_message(event: Any, spec: SyslogStream, hostname: str) -> bytes:
    """One RFC 5424 message: the event's fields as structured data, its document as the message."""
    options = spec.options
    pri = options.facility * 8 + SYSLOG_SEVERITY.get(event.result, 5)
    when = utc(event.timestamp).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "id": event.id,
        "tenant": event.tenant_id,
        "partner": event.partner_id,
        "actor": event.actor_id,
        "actor_email": event.actor_email,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "result": event.result,
        "ip": event.ip_address,
        "request_id": event.request_id,
        "details": event.details or None,
    }
    sd = "".join(f' {name}="{_sd_value(value)}"' for name, value in params.items() if value is not None)
    msg = encode(document(event, spec.format)).decode()
    header = f"<{pri}>1 {when} {hostname} {options.app_name} - {_printable(event.action, 32)}"
    return f"{header} [{SD_ID}{sd}] {msg}".encode()


def frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: `<length> <message>`."""
    return str(len(message)).encode() + b" " + message


class SyslogSender(Sender):
    """`syslog`: one persistent TCP (or TLS) connection; a batch is acknowledged once fully written.

    TCP syslog has no application acknowledgement: before each batch the connection is checked
    for a close by the receiver (it never sends anything), so a restarted receiver gets a new
    connection instead of a write into a dead one.
    """

    spec: SyslogStream

    def __init__(self, spec: SpecModel, timeout: float, targets: TargetPolicy) -> None:
        super().__init__(spec, timeout, targets)
        self.sock: socket.socket | None = None
        self.hostname = self.spec.options.hostname or _printable(socket.gethostname(), 255)

    def _connect(self) -> socket.socket:
        host, _, port = self.spec.target.rpartition(":")
        host = host.strip("[]")
        try:
            sock = connect(host, int(port), self.timeout, self.targets)
            if self.spec.options.tls:
                context = ssl.create_default_context(cadata=self.spec.options.tls_ca or None)
                sock = context.wrap_socket(sock, server_hostname=host)
        except TargetRefusedError as exc:
            raise DeliveryError(f"refused to connect: {exc}", retryable=False) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"TLS: {exc.verify_message or exc}", retryable=False) from exc
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {self.spec.target}: {exc}", retryable=True) from exc
        return sock

    def _alive(self, sock: socket.socket) -> bool:
        """Whether the receiver kept the connection: it sends no data, so anything readable is its
        close (or reset) - or, over TLS, protocol records such as session tickets, read and dropped."""
        try:
            while select.select([sock], [], [], 0)[0] or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                sock.setblocking(False)
                try:
                    if not sock.recv(4096):
                        return False
                finally:
                    sock.settimeout(self.timeout)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True  # only TLS records were waiting
        except (OSError, ValueError):
            return False
        return True

    def send(self, events: Sequence[Any]) -> str:
        payload = b"".join(frame(syslog_message(e, self.spec, self.hostname)) for e in events)
        if self.sock is not None and not self._alive(self.sock):
            self.close()
        if self.sock is None:
            self.sock = self._connect()
        try:
            self.sock.sendall(payload)
        except OSError as exc:
            self.close()
            raise DeliveryError(f"connection to {self.spec.target} lost: {exc}", retryable=True) from exc
        return f"{len(events)} message(s) written to {self.spec.target}"

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


SENDERS: dict[str, Callable[[Any, float, TargetPolicy], Sender]] = {
    "http": WebhookSender,
    "splunk_hec": SplunkSender,
    "datadog": DatadogSender,
    "elasticsearch": ElasticSender,
    "syslog": SyslogSender,
}


def sender_for(spec: SpecModel, timeout: float, targets: TargetPolicy) -> Sender:
    """The sender of a stream's type, connecting only to the addresses `targets` allows."""
    return SENDERS[spec.type](spec, timeout, targets)


def sample_event(stream_id: str, stream_name: str, tenant_id: str, partner_id: str | None, now: datetime) -> Any:
    """A synthetic event for `POST .../test`: action `audit.stream.test`, never stored or chained."""
    return SimpleNamespace(
        id=new_event_id(),
        timestamp=now,
        tenant_id=tenant_id,
        partner_id=partner_id,
        actor_id="audit_app",
        actor_email=None,
        actor_type="system",
        action="audit.stream.test",
        resource_type="log_stream",
        resource_id=stream_id,
        result="success",
        ip_address=None,
        user_agent=None,
        request_id=None,
        session_id=None,
        details={"message": f"Test event of log stream {stream_name!r}", "test": True},
        ingested_at=now,
        hash="",
        prev_hash="",
    )


@dataclass(frozen=True)
class ReceiverAnswer:
    """The receiver's answer to a test event: taken or not, the answer, and for a refusal its status."""

    ok: bool
    event_id: str
    answer: str
    status: int | None = None
    retryable: bool | None = None


def send_test_event(
    session: Session,
    principal: Principal,
    stream_id: str,
    secret_key: str | None,
    timeout: float,
    targets: TargetPolicy,
) -> ReceiverAnswer:
    """Send one `audit.stream.test` event to the stream's receiver now (the caller must manage the
    stream); its position and counts are untouched and nothing is stored."""
    stream = get_stream(session, principal, stream_id)
    session.rollback()  # no transaction held while the receiver answers
    try:
        spec = full_spec(secret_key, stream)
    except CredentialsUnreadableError as exc:
        return ReceiverAnswer(ok=False, event_id="", answer=str(exc))
    event = sample_event(stream.id, stream.name, stream.tenant_id or SYSTEM_TENANT, stream.partner_id, utcnow())
    sender = sender_for(spec, timeout, targets)
    try:
        answer = sender.send([event])
    except DeliveryError as failure:
        return ReceiverAnswer(
            ok=False, event_id=event.id, answer=str(failure), status=failure.status, retryable=failure.retryable
        )
    finally:
        sender.close()
    return ReceiverAnswer(ok=True, event_id=event.id, answer=answer)
