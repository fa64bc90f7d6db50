"""Request-size limits: oversized headers (431) and bodies (413) are refused before anything parses them."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024


async def refuse(send: Send, status: int, detail: str) -> None:
    """Answer `status` with a JSON `detail`, without calling the app."""
    payload = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class HeaderSizeLimit:
    """Refuse a request whose headers (names and values) total more than `max_bytes` with 431.

    On every path: the console's pages and the API behind `make run`, and the API alone under
    uvicorn, whose HTTP parser sets no limit of its own.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                if scope["type"] == "http":
                    detail = f"The request headers total more than {self.max_bytes // 1024} kB."
                    await refuse(send, 431, detail)
                else:
                    await send({"type": "websocket.close", "code": 1009})
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Buffer at most `max_bytes` of a request body under `prefix`; answer 413 beyond that.

    The declared Content-Length is checked first, and the bytes actually received are counted
    too, so a chunked or lying client cannot get past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await refuse(send, 400, "Invalid Content-Length header.")
                return
            if int(declared) > self.max_bytes:
                await refuse(send, 413, self._too_large)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await refuse(send, 413, self._too_large)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @property
    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes // (1024 * 1024)} MB."
