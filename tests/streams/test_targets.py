"""Safe stream targets: special-purpose addresses (loopback, private, link-local, multicast,
reserved, unspecified; IPv4 and IPv6, IPv4-mapped) are refused unless allowed by
AUDIT_STREAM_ALLOWED_NETWORKS or demo mode, when a stream is created and again at delivery on
the address actually connected (a name that resolves elsewhere later gains nothing)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from audit_app.audit import stream_targets
from audit_app.audit.stream_delivery import DeliveryError, sample_event, sender_for
from audit_app.audit.stream_targets import TargetPolicy, special_kind
from audit_app.audit.streams import SPEC, StreamConfigError, set_status
from audit_app.models import utcnow
from audit_app.proxies import parse_networks
from audit_app.settings import ConfigError, Settings, load_settings
from tests.streams.helpers import ROOT, TARGETS, load, new_stream, running, write
from tests.streams.receivers import WebhookReceiver, free_port, wait_until

SECRET = "whsec-" + "t" * 26
STRICT = TargetPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.1", "private"),
        ("192.168.0.10", "private"),
        ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_special_kinds(address: str, kind: str | None) -> None:
    assert special_kind(ipaddress.ip_address(address)) == kind


def test_policy_allows_networks_and_demo_allows_loopback_and_private_only() -> None:
    allowed = TargetPolicy(allowed=tuple(parse_networks("10.20.0.0/16, 127.0.0.1/32")))
    ip = ipaddress.ip_address
    assert allowed.refusal(ip("10.20.3.4")) is None
    assert allowed.refusal(ip("::ffff:10.20.3.4")) is None  # the mapped form of an allowed address
    assert allowed.refusal(ip("10.21.0.1")) == "private"
    assert allowed.refusal(ip("127.0.0.2")) == "loopback"
    assert allowed.refusal(ip("8.8.8.8")) is None
    demo = TargetPolicy(demo=True)
    assert [demo.refusal(ip(a)) for a in ("127.0.0.1", "::1", "192.168.1.1", "fd00::1")] == [None] * 4
    assert demo.refusal(ip("169.254.169.254")) == "link-local"  # cloud metadata: never in demo mode either
    assert demo.refusal(ip("0.0.0.0")) == "unspecified"


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not-a-network", "10.0.0.0/8,,example.com"])
def test_bad_allowed_networks_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AUDIT_STREAM_ALLOWED_NETWORKS", value)
    with pytest.raises(ConfigError, match=r"^Invalid AUDIT_STREAM_ALLOWED_NETWORKS: '.+' is not an IP address"):
        load_settings()


def test_policy_of_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_STREAM_ALLOWED_NETWORKS", "10.20.0.0/16,127.0.0.1/32")
    monkeypatch.setenv("AUDIT_DEMO", "1")
    monkeypatch.setenv("AUDIT_JWT_SECRET", "s" * 32)
    monkeypatch.setenv("AUDIT_SECRET_KEY", "k" * 32)
    policy = TargetPolicy.of(load_settings())
    assert policy == TargetPolicy(allowed=tuple(parse_networks("10.20.0.0/16,127.0.0.1/32")), demo=True)


def test_create_refuses_names_resolving_to_special_addresses(session: Session, stream_settings: Settings) -> None:
    new_stream(session, type="syslog", target="localhost:1")  # 127.0.0.1 is allowed in these tests
    with pytest.raises(StreamConfigError) as refused:
        new_stream(session, type="http", target="http://127.0.0.3/", credentials={"secret": SECRET})
    assert refused.value.loc == ("body", "http", "target")
    assert "127.0.0.3 is a loopback address" in str(refused.value)
    # a name that does not resolve here is not refused now (delivery checks it)
    new_stream(session, type="http", target="https://siem.invalid/in", credentials={"secret": SECRET})


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> Callable[[str, str], None]:
    """Make `names` resolve to the given addresses (others as usual); returns a function that re-points one."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            return real(names[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(stream_targets, "getaddrinfo", getaddrinfo)
    return names.__setitem__


def test_dns_rebinding_is_refused_on_the_address_connected(
    session: Session, stream_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolved to a public address when the stream was created, then to the loopback
    address a receiver really listens on: nothing reaches it, the stream goes failing, saying why;
    allowed, the same stream delivers."""
    receiver = WebhookReceiver(SECRET).start()
    repoint = fake_dns(monkeypatch, {"siem.rebind.test": "93.184.215.14"})
    try:
        target = f"http://siem.rebind.test:{receiver.port}/"
        sid = new_stream(session, type="http", target=target, credentials={"secret": SECRET}).id
        repoint("siem.rebind.test", "127.0.0.1")
        with running(stream_settings.database_url, targets=STRICT):
            write(session, 5, "acme")
            wait_until(lambda: load(session, sid).status == "failing")
        stream = load(session, sid)
        assert stream.last_error == (
            "refused to connect: siem.rebind.test resolves to 127.0.0.1, a loopback address, which log streams "
            "may not reach (an operator may allow its network with AUDIT_STREAM_ALLOWED_NETWORKS)"
        )
        assert (stream.delivered, receiver.requests) == (0, 0)

        set_status(session, ROOT, sid, "active")
        with running(stream_settings.database_url, targets=TARGETS):  # 127.0.0.1 allowed
            wait_until(lambda: len(receiver.ids) >= 5)
        assert load(session, sid).status == "active"
    finally:
        receiver.stop()


@pytest.mark.parametrize("kind", ["http", "syslog"])
def test_senders_check_the_address_they_connect_to(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test event (or a batch) to a name now resolving to 169.254.169.254 or loopback: refused,
    not retried, before any connection; the same sender reaches an allowed address."""
    repoint = fake_dns(monkeypatch, {"metadata.rebind.test": "169.254.169.254"})
    port = free_port()
    if kind == "http":
        raw = {"type": "http", "target": f"http://metadata.rebind.test:{port}/", "credentials": {"secret": SECRET}}
    else:
        raw = {"type": "syslog", "target": f"metadata.rebind.test:{port}"}
    spec = SPEC.validate_python({"name": "s"} | raw)
    event = sample_event("sid", "s", "acme", None, utcnow())
    sender = sender_for(spec, 1.0, TARGETS)
    try:
        with pytest.raises(DeliveryError) as refused:
            sender.send([event])
        assert not refused.value.retryable
        assert "metadata.rebind.test resolves to 169.254.169.254, a link-local address" in str(refused.value)
        repoint("metadata.rebind.test", "127.0.0.1")  # allowed, but nobody listens: a plain retryable failure
        with pytest.raises(DeliveryError) as down:
            sender.send([event])
        assert down.value.retryable
    finally:
        sender.close()
