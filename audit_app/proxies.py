"""The client address of a request: the peer, or what a trusted proxy says it forwarded for.

`X-Forwarded-For` is believed only from the peers listed in `AUDIT_TRUSTED_PROXIES` (default:
none), whichever server runs the app. Granian (`make run`) hands the app the TCP peer as is;
uvicorn would rewrite it from `X-Forwarded-For` itself when the peer is in its
`FORWARDED_ALLOW_IPS` (default 127.0.0.1), so `uvicorn audit_app.api:app` leaves that to
this middleware (`audit_app.api`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> list[IPNetwork]:
    """Comma-separated addresses or CIDR networks; ValueError naming the first bad one."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in value.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
    return networks


def _is_trusted(host: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: list[str], trusted: list[IPNetwork]) -> str | None:
    """The client: walking `X-Forwarded-For` from the right while each hop is a trusted proxy."""
    if peer is None or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            hop = str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # garbage in the header: the proxy itself is the last address known
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


class ClientAddress:
    """ASGI middleware: `scope["client"]` becomes the client address `client_address` decides."""

    def __init__(self, app: Any, trusted: list[IPNetwork]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted and scope.get("client"):
            forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
            if forwarded:
                peer_host = scope["client"][0]
                host = client_address(peer_host, forwarded, self.trusted)
                if host != peer_host:
                    scope = {**scope, "client": (host, 0)}
        await self.app(scope, receive, send)
