"""A real OpenID provider on loopback for the tests: Canaille, run by pytest-iam (offline, in-process).

`Provider` registers clients and people, obtains tokens through the authorization code flow with
PKCE (Authlib's client, exactly as a relying party does), and rotates the provider's signing key.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.jwk import JWKRegistry

API_AUDIENCE = "audit-api"
CONSOLE_CLIENT = "audit-console"
REDIRECT_URI = "http://127.0.0.1:9/auth/callback"  # the flow stops at the redirect; nothing listens there
SCOPES = "openid profile email groups address"
# Where the test deployments find role, tenant and partner in Canaille's tokens.
ROLE_MAP = ",".join(
    (
        "audit-super=super_admin:audit:read audit:export",
        "audit-partners=partner_admin:audit:read",
        "audit-viewers=tenant_admin:audit:read",
    )
)
PROVIDER_ENV = {
    "AUDIT_ROLE_CLAIM": "groups",
    "AUDIT_TENANT_CLAIM": "address.locality",
    "AUDIT_PARTNER_CLAIM": "address.region",
    "AUDIT_ROLE_MAP": ROLE_MAP,
    "AUDIT_JWT_AUDIENCE": API_AUDIENCE,
}


class Provider:
    """The Canaille server of pytest-iam, seen as an organisation's identity provider."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.requests: Counter[str] = Counter()
        self._count_requests("oidc.endpoints.jwks")

    @property
    def issuer(self) -> str:
        return str(self.server.url).rstrip("/")

    @cached_property
    def metadata(self) -> dict[str, Any]:
        response = httpx.get(self.issuer + "/.well-known/openid-configuration")
        response.raise_for_status()
        return dict(response.json())

    def _count_requests(self, endpoint: str) -> None:
        """Count the requests an endpoint serves (the real view still answers them)."""
        app = self.server.app
        view = app.view_functions[endpoint]
        if getattr(view, "counted", False):
            view = view.wrapped

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests[endpoint] += 1
            return view(*args, **kwargs)

        counted.counted = True  # type: ignore[attr-defined]
        counted.wrapped = view  # type: ignore[attr-defined]
        app.view_functions[endpoint] = counted

    @property
    def jwks_fetches(self) -> int:
        return self.requests["oidc.endpoints.jwks"]

    def client(
        self,
        client_id: str = CONSOLE_CLIENT,
        *,
        secret: str | None = None,
        audience: tuple[str, ...] = (API_AUDIENCE,),
        redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
        post_logout_redirect_uris: tuple[str, ...] = (),
    ) -> Any:
        """Register (or update) a client whose access tokens name `audience` (plus itself)."""
        models, backend = self.server.models, self.server.backend
        audiences = [self._bare_client(name) for name in audience if name != client_id]
        client = backend.get(models.Client, client_id=client_id) or models.Client(client_id=client_id)
        backend.update(
            client,
            client_secret=secret,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=SCOPES.split(),
            client_uri="http://127.0.0.1",  # a trusted domain: no consent page, like an organisation's own app
        )
        backend.save(client)
        client.audience = [client, *audiences]
        backend.save(client)
        return client

    def _bare_client(self, client_id: str) -> Any:
        models, backend = self.server.models, self.server.backend
        client = backend.get(models.Client, client_id=client_id)
        if client is None:
            client = models.Client(client_id=client_id, redirect_uris=[REDIRECT_URI], scope=["openid"])
            backend.save(client)
        return client

    def person(self, *, groups: tuple[str, ...] = (), tenant: str | None = None, partner: str | None = None) -> Any:
        """A new person (unique user name) in `groups`, with tenant and partner in the address claim."""
        name = f"person-{uuid.uuid4().hex[:8]}"
        user = self.server.random_user(user_name=name, emails=[f"{name}@example.com"], locality=tenant, region=partner)
        for group_name in groups:
            group = self.server.backend.get(self.server.models.Group, display_name=group_name)
            if group is None:
                self.server.random_group(display_name=group_name, members=[user])
            else:
                group.members = [*group.members, user]
                self.server.backend.save(group)
        return self.server.backend.get(self.server.models.User, user_name=name)

    def tokens(self, person: Any, client_id: str = CONSOLE_CLIENT, secret: str | None = None) -> dict[str, Any]:
        """The person's tokens, by the authorization code flow with PKCE (S256), state and nonce."""
        self.server.login(person)
        try:
            oauth = OAuth2Client(
                client_id, secret, scope=SCOPES, redirect_uri=REDIRECT_URI, code_challenge_method="S256"
            )
            verifier = generate_token(48)
            url, state = oauth.create_authorization_url(
                self.metadata["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(16)
            )
            redirect = httpx.get(url, follow_redirects=False)
            assert redirect.status_code == 302, redirect.text
            return dict(
                oauth.fetch_token(
                    self.metadata["token_endpoint"],
                    authorization_response=redirect.headers["location"],
                    code_verifier=verifier,
                    state=state,
                )
            )
        finally:
            self.server.logout()

    def access_token(self, person: Any, client_id: str = CONSOLE_CLIENT) -> str:
        return str(self.tokens(person, client_id)["access_token"])

    @property
    def _jwks_config(self) -> dict[str, Any]:
        return dict(self.server.app.config["CANAILLE_OIDC"])

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """Sign with a new RSA key from now on; the old one stays published (inactive) unless told."""
        config = self.server.app.config["CANAILLE_OIDC"]
        key = JWKRegistry.generate_key("RSA", 2048)
        key.ensure_kid()
        old = list(config["ACTIVE_JWKS"])
        config["ACTIVE_JWKS"] = [key.as_dict(private=True)]
        config["INACTIVE_JWKS"] = [*(config.get("INACTIVE_JWKS") or []), *old] if keep_old else []
        return str(key.kid)


class Relay:
    """An HTTP relay on a fixed loopback port to the provider, started and stopped at will.

    Stopped, nothing listens on the port (connections are refused): the provider is unreachable.
    Each connection's `Host` is rewritten to the provider's own (Canaille answers only its name).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        target = self.target_port
        own_host, target_host = f"Host: 127.0.0.1:{self.port}".encode(), f"Host: localhost:{target}".encode()

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(("localhost", target)) as upstream:
                    copy: Callable[[socket.socket, socket.socket], None] = _copy
                    back = threading.Thread(target=copy, args=(upstream, self.request), daemon=True)
                    back.start()
                    upstream.sendall(self.request.recv(65536).replace(own_host, target_host, 1))
                    _copy(self.request, upstream)
                    back.join(timeout=5)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def provider_of(server: Any) -> Iterator[Provider]:
    """A Provider over pytest-iam's server; restores the signing keys afterwards."""
    config = server.app.config["CANAILLE_OIDC"]
    saved = (list(config["ACTIVE_JWKS"]), list(config.get("INACTIVE_JWKS") or []))
    yield Provider(server)
    config["ACTIVE_JWKS"], config["INACTIVE_JWKS"] = saved
