"""Which addresses a log stream may reach: no loopback, private, link-local, multicast, reserved or
unspecified address (IPv4 and IPv6, IPv4-mapped and NAT64 forms included) unless the operator
allows its network (AUDIT_STREAM_ALLOWED_NETWORKS) or demo mode allows loopback and private ones.

A tenant administrator chooses a stream's target; without this, a stream could be pointed at the
platform's own database, its cloud metadata service (169.254.169.254) or its private networks.
The rule is applied twice: when a stream is created or changed (to the addresses its host resolves
to now, `check_target`), and at delivery to the address actually connected (`connect` and
`GuardedBackend`, so a name that resolves elsewhere later - DNS rebinding - gains nothing).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from audit_app.proxies import parse_networks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_HINT = "an operator may allow its network with AUDIT_STREAM_ALLOWED_NETWORKS"
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
"""Private networks (RFC 1918, the shared address space of RFC 6598, IPv6 unique local)."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")
DEMO_KINDS = frozenset({"loopback", "private"})
"""What demo mode allows (`make run` with a local syslog-ng); link-local (cloud metadata) never."""

getaddrinfo = socket.getaddrinfo
"""The resolver (a module attribute, so tests can make a name resolve elsewhere later)."""


class TargetRefusedError(Exception):
    """A stream target whose address streams may not reach."""


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def special_kind(address: IPAddress) -> str | None:
    """What makes `address` special (`loopback`, `private`, `link-local`, `multicast`, `reserved`,
    `unspecified`), None for an ordinary public address. An IPv6 address carrying an IPv4 one is
    what the IPv4 one is."""
    inner = _embedded_v4(address)
    if inner is not None:
        return special_kind(inner)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in PRIVATE_NETWORKS):
        return "private"
    if address.is_reserved or address.is_private or not address.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class TargetPolicy:
    """The addresses streams may reach: public ones, those in `allowed`, and in `demo` mode
    loopback and private ones."""

    allowed: tuple[IPNetwork, ...] = ()
    demo: bool = False

    @classmethod
    def of(cls, settings: Any) -> TargetPolicy:
        """The policy of `settings` (AUDIT_STREAM_ALLOWED_NETWORKS, AUDIT_DEMO)."""
        return cls(allowed=tuple(parse_networks(settings.stream_allowed_networks)), demo=bool(settings.demo))

    def refusal(self, address: IPAddress) -> str | None:
        """The kind of special address `address` is when streams may not reach it (None when they may)."""
        kind = special_kind(address)
        if kind is None or (self.demo and kind in DEMO_KINDS):
            return None
        inner = _embedded_v4(address)
        candidates = [address] if inner is None else [address, inner]
        if any(candidate in network for candidate in candidates for network in self.allowed):
            return None
        return kind


def refused_message(host: str, address: IPAddress, kind: str) -> str:
    """Why a stream may not reach `host`, in words."""
    a_kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    mapped = getattr(address, "ipv4_mapped", None)
    shown = f"::ffff:{mapped}" if mapped is not None else str(address)
    try:
        literal = ipaddress.ip_address(host) == address
    except ValueError:
        literal = False
    what = f"{shown} is {a_kind}" if literal else f"{host} resolves to {shown}, {a_kind}"
    return f"{what}, which log streams may not reach ({ALLOW_HINT})"


def target_host(stream_type: str, target: str) -> str:
    """The host of a stream target: an http(s) URL's, or host:port's for syslog (no brackets)."""
    if stream_type == "syslog":
        return target.rpartition(":")[0].strip("[]")
    return urlsplit(target).hostname or ""


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """The addresses `host` resolves to (an address literal is itself), in the resolver's order."""
    found: list[IPAddress] = []
    for *_, sockaddr in getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_target(stream_type: str, target: str, policy: TargetPolicy) -> None:
    """Refuse a target whose host resolves now to any address streams may not reach
    (TargetRefusedError). A name that does not resolve here passes: delivery checks again."""
    host = target_host(stream_type, target)
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError, ValueError):
        return
    for address in addresses:
        kind = policy.refusal(address)
        if kind is not None:
            raise TargetRefusedError(refused_message(host, address, kind))


def allowed_addresses(host: str, port: int, policy: TargetPolicy) -> list[IPAddress]:
    """The addresses of `host` a stream may connect to; TargetRefusedError when there is none
    (OSError when the name does not resolve)."""
    addresses = resolve(host, port)
    allowed = [address for address in addresses if policy.refusal(address) is None]
    if not allowed:
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        raise TargetRefusedError(refused_message(host, addresses[0], policy.refusal(addresses[0]) or ""))
    return allowed


def connect(host: str, port: int, timeout: float, policy: TargetPolicy) -> socket.socket:
    """A TCP connection to the first allowed address of `host` that answers (TargetRefusedError,
    or OSError of the last attempt)."""
    error: OSError | None = None
    for address in allowed_addresses(host, port, policy):
        try:
            return socket.create_connection((str(address), port), timeout=timeout)
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend connecting only to addresses the policy allows (the name is
    resolved here, once, and the checked address is the one connected; TLS still verifies the name)."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = allowed_addresses(host, port, self.policy)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


def guarded_transport(policy: TargetPolicy) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend` (use it with
    `trust_env=False`: a proxy from the environment would connect on the stream's behalf, unchecked)."""
    transport = httpx.HTTPTransport()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)  # httpx's
    transport._pool = httpcore.ConnectionPool(  # the pool httpx builds, with the guarded backend
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return transport
