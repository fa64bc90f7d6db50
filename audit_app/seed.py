"""Realistic, deterministic demo data: partners, tenants, actors and 90 days of events."""

from __future__ import annotations

import ipaddress
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditEventIn, AuditLog, utc, utcnow
from audit_app.progress import Progress, no_progress

PARTNERS: dict[str, list[str]] = {
    "northwind": ["acme", "globex", "initech", "hooli"],
    "bluesky": ["umbrella", "wayne", "stark"],
    "redwood": ["tyrell", "cyberdyne", "soylent"],
}
TENANT_PARTNER = {tenant: partner for partner, tenants in PARTNERS.items() for tenant in tenants}


# action -> (resource type, weight, typical failure share)
ACTIONS: dict[str, tuple[str, float, float]] = {
    "user.login": ("session", 30, 0.04),
    "user.logout": ("session", 12, 0.0),
    "user.create": ("user", 3, 0.02),
    "user.update": ("user", 4, 0.02),
    "user.delete": ("user", 0.8, 0.03),
    "user.suspend": ("user", 0.5, 0.02),
    "user.unsuspend": ("user", 0.3, 0.0),
    "user.password_reset": ("user", 2, 0.05),
    "user.mfa_enroll": ("user", 1.2, 0.03),
    "user.mfa_remove": ("user", 0.4, 0.05),
    "user.email_verify": ("user", 1.5, 0.02),
    "user.invite": ("user", 1.5, 0.01),
    "role.create": ("role", 0.4, 0.02),
    "role.update": ("role", 0.5, 0.03),
    "role.delete": ("role", 0.2, 0.05),
    "role.assign": ("role", 2.5, 0.06),
    "role.revoke": ("role", 1.2, 0.04),
    "permission.grant": ("permission", 0.8, 0.04),
    "permission.revoke": ("permission", 0.5, 0.03),
    "api_key.create": ("api_key", 1, 0.02),
    "api_key.revoke": ("api_key", 0.6, 0.02),
    "api_key.rotate": ("api_key", 0.5, 0.02),
    "api_key.use": ("api_key", 10, 0.03),
    "tenant.update": ("tenant", 0.3, 0.02),
    "tenant.settings_change": ("tenant", 0.4, 0.03),
    "tenant.domain_verify": ("tenant", 0.1, 0.1),
    "session.revoke": ("session", 0.8, 0.01),
    "session.refresh": ("session", 8, 0.01),
    "oauth_client.create": ("oauth_client", 0.3, 0.02),
    "oauth_client.update": ("oauth_client", 0.4, 0.02),
    "oauth_client.delete": ("oauth_client", 0.1, 0.02),
    "oauth_client.secret_rotate": ("oauth_client", 0.2, 0.02),
    "oauth.token_issue": ("oauth_client", 9, 0.02),
    "oauth.consent_grant": ("oauth_client", 1, 0.01),
    "group.create": ("group", 0.3, 0.01),
    "group.member_add": ("group", 1.5, 0.02),
    "group.member_remove": ("group", 0.8, 0.02),
    "sso.connection_update": ("sso_connection", 0.2, 0.05),
    "webhook.update": ("webhook", 0.2, 0.03),
    "export.request": ("report", 0.3, 0.01),
}
ROLES = ["viewer", "editor", "admin", "billing", "support", "owner", "auditor"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
]
SERVICE_AGENTS = [
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "terraform-provider/1.9.2",
    "curl/8.11.0",
]
FIRST = [
    "ana",
    "ben",
    "chloe",
    "dev",
    "elena",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jon",
    "kofi",
    "lena",
    "mateo",
    "nora",
    "omar",
    "priya",
    "quinn",
    "rosa",
    "sven",
    "tara",
    "uma",
    "victor",
    "wen",
    "yara",
]
LAST = [
    "adams",
    "baker",
    "chen",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "haddad",
    "ito",
    "jensen",
    "khan",
    "lopez",
    "muller",
    "nakamura",
    "okafor",
    "petrov",
    "rossi",
    "silva",
    "tan",
    "weber",
]
RESULT_ON_FAILURE = ["failure", "failure", "failure", "denied", "denied", "error"]


@dataclass(frozen=True)
class Actor:
    """Someone or something that acts in a tenant."""

    id: str
    email: str | None
    type: str
    tenant_id: str
    ip: str
    agent: str


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.18:
        return str(ipaddress.IPv6Address((0x2001_0DB8 << 96) | rng.getrandbits(80)))
    first = rng.choice([81, 84, 91, 176, 185, 203, 62, 94])
    return f"{first}.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _actors(rng: random.Random, count: int = 200) -> list[Actor]:
    tenants = list(TENANT_PARTNER)
    actors: list[Actor] = []
    for n in range(count):
        tenant = tenants[n % len(tenants)] if n < len(tenants) * 2 else rng.choice(tenants)
        kind = rng.choices(["user", "service", "system"], weights=[85, 12, 3])[0]
        if kind == "user":
            first, last = rng.choice(FIRST), rng.choice(LAST)
            actors.append(
                Actor(
                    f"usr_{n:04d}",
                    f"{first}.{last}{n % 7 or ''}@{tenant}.example",
                    "user",
                    tenant,
                    _ip(rng),
                    rng.choice(USER_AGENTS),
                )
            )
        elif kind == "service":
            actors.append(Actor(f"svc_{n:04d}", None, "service", tenant, _ip(rng), rng.choice(SERVICE_AGENTS)))
        else:
            actors.append(
                Actor(
                    f"sys_{n:04d}", None, "system", tenant, "10.0.0." + str(rng.randint(2, 250)), "audit-scheduler/1.0"
                )
            )
    return actors


def _moment(rng: random.Random, start: datetime, now: datetime) -> datetime:
    """A time up to `now` with a weekly rhythm (quiet weekends) and a daily one (office hours)."""
    days = (now - start).days + 1
    while True:
        day = start + timedelta(days=rng.randrange(days))
        if day.weekday() >= 5 and rng.random() > 0.3:
            continue
        hour = min(23, max(0, int(rng.gauss(13, 3.5))))
        moment = day.replace(
            hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=rng.randrange(1_000_000)
        )
        if moment <= now:
            return moment


def _details(rng: random.Random, action: str, result: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if action in ("role.assign", "role.revoke"):
        before = rng.choice(ROLES)
        after = rng.choice([r for r in ROLES if r != before])
        details["changes"] = {
            "role": {
                "from": before if action == "role.assign" else after,
                "to": after if action == "role.assign" else None,
            }
        }
    elif action == "user.update":
        field = rng.choice(["display_name", "phone", "locale", "department"])
        details["changes"] = {
            field: {"from": f"old-{field}-{rng.randint(1, 99)}", "to": f"new-{field}-{rng.randint(1, 99)}"}
        }
    elif action in (
        "tenant.settings_change",
        "sso.connection_update",
        "oauth_client.update",
        "webhook.update",
        "role.update",
    ):
        setting = rng.choice(["session_ttl_minutes", "mfa_required", "password_min_length", "allowed_origins"])
        values = {
            "session_ttl_minutes": (60, 480),
            "mfa_required": (False, True),
            "password_min_length": (8, 14),
            "allowed_origins": (["https://app.example"], ["https://app.example", "https://admin.example"]),
        }[setting]
        details["changes"] = {setting: {"from": values[0], "to": values[1]}}
    elif action == "user.suspend":
        details["changes"] = {"status": {"from": "active", "to": "suspended"}}
    elif action == "user.unsuspend":
        details["changes"] = {"status": {"from": "suspended", "to": "active"}}
    elif action in ("user.login", "oauth.token_issue"):
        details["method"] = rng.choice(["password", "password+totp", "webauthn", "sso"])
    if result != "success":
        details["reason"] = (
            rng.choice(["invalid_credentials", "insufficient_permissions", "rate_limited", "policy_violation"])
            if result != "error"
            else "upstream_timeout"
        )
    return details


def generate_events(
    count: int, *, seed: int = 7, now: datetime | None = None, days: int = 90, as_of: datetime | None = None
) -> list[AuditEventIn]:
    """`count` demo events over `days` days up to `now`, the same for the same seed.

    With `as_of`, the events are generated as if it were `as_of` and then moved in time to end at
    `now`: the same events, relative to `now`, on every day (what tests need; the weekly rhythm
    then no longer falls on real weekends).
    """
    rng = random.Random(seed)
    now = utc(now or utcnow()).replace(minute=0, second=0, microsecond=0)
    if as_of is not None:
        generated = generate_events(count, seed=seed, now=as_of, days=days)
        shift = now - utc(as_of).replace(minute=0, second=0, microsecond=0)
        return [event.model_copy(update={"timestamp": event.timestamp + shift}) for event in generated]  # type: ignore[operator]
    start = (now - timedelta(days=days)).replace(hour=0)
    actors = _actors(rng)
    names = list(ACTIONS)
    weights = [ACTIONS[name][1] for name in names]
    events: list[AuditEventIn] = []
    bursts = max(1, count // 10_000)
    for _ in range(bursts):  # brute-force login runs from one address against one tenant
        victim = rng.choice([a for a in actors if a.type == "user"])
        attacker_ip, when = _ip(rng), _moment(rng, start, now - timedelta(hours=1))
        for n in range(rng.randint(60, 200)):
            events.append(
                _event(
                    victim,
                    "user.login",
                    "failure",
                    when + timedelta(seconds=n * rng.uniform(1, 6)),
                    {"reason": "invalid_credentials", "method": "password"},
                    ip=attacker_ip,
                    agent="python-requests/2.32.3",
                    rng=rng,
                )
            )
    while len(events) < count:
        actor = rng.choice(actors)
        action = rng.choices(names, weights=weights)[0]
        failure_share = ACTIONS[action][2] * (3 if rng.random() < 0.05 else 1)
        result = rng.choice(RESULT_ON_FAILURE) if rng.random() < failure_share else "success"
        events.append(_event(actor, action, result, _moment(rng, start, now), _details(rng, action, result), rng=rng))
    events = events[:count]
    events.sort(key=lambda e: e.timestamp or now)
    return events


def _event(
    actor: Actor,
    action: str,
    result: str,
    when: datetime,
    details: dict[str, Any],
    *,
    rng: random.Random,
    ip: str | None = None,
    agent: str | None = None,
) -> AuditEventIn:
    resource_type = ACTIONS[action][0]
    prefix = resource_type.split("_")[0][:4]
    resource_id = actor.id if action.startswith("user.login") else f"{prefix}_{rng.randint(1, 400):04d}"
    return AuditEventIn(
        tenant_id=actor.tenant_id,
        partner_id=TENANT_PARTNER[actor.tenant_id],
        actor_id=actor.id,
        actor_email=actor.email,
        actor_type=actor.type,
        action=action,
        resource_type=resource_type,  # type: ignore[arg-type]
        resource_id=resource_id,
        result=result,
        ip_address=ip or actor.ip,
        user_agent=agent or actor.agent,  # type: ignore[arg-type]
        request_id=f"req_{rng.getrandbits(64):016x}",
        session_id=f"ses_{rng.getrandbits(48):012x}" if actor.type == "user" else None,
        timestamp=when,
        details=details,
    )


def seed(
    session: Session,
    count: int,
    *,
    seed_value: int = 7,
    now: datetime | None = None,
    as_of: datetime | None = None,
    batch: int = 5000,
    progress: Progress = no_progress,
) -> int:
    """Write `count` demo events (ids derived from the seed) and return how many were written.

    `as_of` freezes the data: see `generate_events`. `progress` hears of each batch written.
    """
    events = generate_events(count, seed=seed_value, now=now, as_of=as_of)
    rng = random.Random(seed_value * 7919)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in events]
    progress("writing events", 0, len(events))
    for offset in range(0, len(events), batch):
        ingest_events(session, events[offset : offset + batch], ids=ids[offset : offset + batch], now=now)
        session.commit()
        progress("writing events", min(offset + batch, len(events)), len(events))
    return len(events)


def event_count(session: Session) -> int:
    """How many events the database holds."""
    return session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
