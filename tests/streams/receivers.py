"""Receivers for the stream tests: HTTP servers that check each vendor's contract strictly.

Each receiver accepts only what the real service accepts (header names, body shape, limits,
signature), answers a contract violation with 400 and records it in `violations`, and records
every accepted event document in arrival order. Faults are scripted: `script` holds the next
answers (status, headers, body) to give instead of accepting; `delay` slows every answer; `gate`,
when set to an Event, holds every answer until it is set (`arrived` counts requests received);
`stop()`/`start()` take the port down and bring it back.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

SIGNATURE_TOLERANCE = 300  # seconds a signed request stays acceptable (replay protection)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ContractError(Exception):
    """What the request got wrong about the receiver's contract."""


@dataclass
class Answer:
    """A scripted answer."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """An HTTP receiver on a loopback port; subclasses check one contract in `accept`."""

    path = "/"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.violations: list[str] = []
        self.script: list[Answer] = []
        self.delay = 0.0
        self.gate: threading.Event | None = None
        self.arrived = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.received_at: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ids(self) -> list[str]:
        """The ids of the accepted events, in arrival order (duplicates kept)."""
        with self.lock:
            return [self.event_id(doc) for doc in self.events]

    def event_id(self, doc: dict[str, Any]) -> str:
        return str(doc.get("id") or doc.get("metadata", {}).get("uid"))

    def accept(self, headers: Any, body: bytes, path: str) -> tuple[list[dict[str, Any]], Answer]:
        """Check one request; return the event documents it carries and the answer to give."""
        raise NotImplementedError

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        with self.lock:
            self.arrived += 1
        if self.gate is not None:
            self.gate.wait(30)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests += 1
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            answer = scripted
        else:
            try:
                docs, answer = self.accept(handler.headers, body, handler.path)
            except ContractError as exc:
                with self.lock:
                    self.violations.append(str(exc))
                docs, answer = [], Answer(400, json.dumps({"error": str(exc)}))
            with self.lock:
                self.events.extend(docs)
                self.received_at.extend([time.time()] * len(docs))
        data = answer.body.encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _json_lines(body: bytes) -> list[dict[str, Any]]:
    if not body.endswith(b"\n"):
        raise ContractError("NDJSON body must end with a newline")
    try:
        docs = [json.loads(line) for line in body.decode().split("\n")[:-1]]
    except ValueError as exc:
        raise ContractError(f"a line is not JSON: {exc}") from exc
    if not all(isinstance(doc, dict) for doc in docs):
        raise ContractError("every line must be a JSON object")
    return docs


class WebhookReceiver(Receiver):
    """`http`: NDJSON with `X-Audit-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`."""

    def __init__(self, secret: str, port: int | None = None, header: tuple[str, str] | None = None) -> None:
        super().__init__(port)
        self.secret = secret
        self.header = header
        self.seen_signatures: set[str] = set()

    def accept(self, headers: Any, body: bytes, path: str) -> tuple[list[dict[str, Any]], Answer]:
        if headers.get("Content-Type") != "application/x-ndjson":
            raise ContractError("Content-Type must be application/x-ndjson")
        signed = headers.get("X-Audit-Signature") or ""
        parts = dict(part.split("=", 1) for part in signed.split(",") if "=" in part)
        if set(parts) != {"t", "v1"} or not parts["t"].isdigit():
            raise ContractError("X-Audit-Signature must be t=<unix time>,v1=<hex>")
        if abs(time.time() - int(parts["t"])) > SIGNATURE_TOLERANCE:
            raise ContractError("signature timestamp outside the tolerance (a replay?)")
        expected = hmac.new(self.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return [], Answer(401, '{"error": "bad signature"}')
        if self.header is not None and headers.get(self.header[0]) != self.header[1]:
            return [], Answer(403, '{"error": "missing token header"}')
        return _json_lines(body), Answer(200, '{"ok": true}')


class SplunkReceiver(Receiver):
    """Splunk HEC: `/services/collector/event`, `Authorization: Splunk <token>`, concatenated events."""

    def __init__(self, token: str, port: int | None = None) -> None:
        super().__init__(port)
        self.token = token

    def accept(self, headers: Any, body: bytes, path: str) -> tuple[list[dict[str, Any]], Answer]:
        if path != "/services/collector/event":
            return [], Answer(404, '{"text": "The requested URL was not found on this server.", "code": 404}')
        if headers.get("Authorization") != f"Splunk {self.token}":
            return [], Answer(401, '{"text": "Invalid authorization", "code": 3}')
        decoder = json.JSONDecoder()
        text, index, docs = body.decode(), 0, []
        while index < len(text):
            while index < len(text) and text[index].isspace():
                index += 1
            if index >= len(text):
                break
            try:
                item, index = decoder.raw_decode(text, index)
            except ValueError as exc:
                raise ContractError(f"not concatenated JSON objects: {exc}") from exc
            if not isinstance(item, dict) or "event" not in item:
                return [], Answer(400, '{"text": "Event field is required", "code": 12}')
            unknown = set(item) - {"time", "host", "source", "sourcetype", "index", "event", "fields"}
            if unknown:
                raise ContractError(f"unknown HEC keys {sorted(unknown)}")
            if not isinstance(item.get("time"), int | float):
                raise ContractError("time must be epoch seconds (a number)")
            docs.append(item["event"])
        if not docs:
            return [], Answer(400, '{"text": "No data", "code": 5}')
        return docs, Answer(200, '{"text": "Success", "code": 0}')


class DatadogReceiver(Receiver):
    """Datadog logs intake: `/api/v2/logs`, `DD-API-KEY`, a JSON array (gzip) of <= 1,000 entries, 5 MB."""

    def __init__(self, api_key: str, port: int | None = None) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.largest_array = 0

    def accept(self, headers: Any, body: bytes, path: str) -> tuple[list[dict[str, Any]], Answer]:
        if path != "/api/v2/logs":
            return [], Answer(404, '{"errors": ["Not found"]}')
        if headers.get("DD-API-KEY") != self.api_key:
            return [], Answer(403, '{"errors": ["Forbidden"]}')
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if len(body) > 5 * 1024 * 1024:
            return [], Answer(413, '{"errors": ["Payload too large"]}')
        entries = json.loads(body)
        if not isinstance(entries, list) or len(entries) > 1000:
            raise ContractError("the body must be a JSON array of at most 1,000 entries")
        self.largest_array = max(self.largest_array, len(entries))
        docs = []
        for entry in entries:
            if len(json.dumps(entry)) > 1024 * 1024:
                raise ContractError("an entry is larger than 1 MB")
            docs.append(json.loads(entry["message"]))
        return docs, Answer(202, "{}")


class ElasticReceiver(Receiver):
    """Elasticsearch `_bulk` into one data stream: only `create` actions, `ApiKey` auth, per-item answers.

    `item_script` maps an event id to the per-item status to answer once (e.g. 429 or 400).
    Ids already stored answer 409, as a data stream does for a repeated `_id`.
    """

    def __init__(self, api_key: str, data_stream: str, port: int | None = None) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.data_stream = data_stream
        self.stored: set[str] = set()
        self.item_script: dict[str, int] = {}

    def accept(self, headers: Any, body: bytes, path: str) -> tuple[list[dict[str, Any]], Answer]:
        if path != f"/{self.data_stream}/_bulk":
            return [], Answer(404, '{"error": "no such index"}')
        if headers.get("Authorization") != f"ApiKey {self.api_key}":
            return [], Answer(401, '{"error": "missing authentication credentials"}')
        if headers.get("Content-Type") != "application/x-ndjson":
            raise ContractError("Content-Type must be application/x-ndjson")
        lines = _json_lines(body)
        if len(lines) % 2:
            raise ContractError("every action needs its document")
        docs, items, errors = [], [], False
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            if list(action) != ["create"]:
                raise ContractError("data streams take only create actions")
            if "@timestamp" not in doc:
                raise ContractError("a data stream document needs @timestamp")
            doc_id = action["create"].get("_id")
            status = self.item_script.pop(doc_id, None) if doc_id else None
            if status is None:
                status = 409 if doc_id in self.stored else 201
            if status == 201:
                self.stored.add(doc_id)
                docs.append(doc)
                items.append({"create": {"_id": doc_id, "status": 201}})
            else:
                errors = True
                kind = {409: "version_conflict_engine_exception", 429: "es_rejected_execution_exception"}
                error = {"type": kind.get(status, "mapper_parsing_exception"), "reason": "scripted"}
                items.append({"create": {"_id": doc_id, "status": status, "error": error}})
        return docs, Answer(200, json.dumps({"took": 1, "errors": errors, "items": items}))


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
