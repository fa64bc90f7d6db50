"""Demo mode (`AUDIT_DEMO`): the personas the sign-in page offers, one per role."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    """A demo sign-in: one per role, each seeing only its scope."""

    key: str
    label: str
    role: str
    sub: str
    email: str
    tenant_id: str | None = None
    partner_id: str | None = None


DEMO_PERSONAS: tuple[Persona, ...] = (
    Persona("super", "Super admin (all tenants)", "super_admin", "demo-super", "sam.super@platform.example"),
    Persona(
        "partner",
        "Partner admin (northwind)",
        "partner_admin",
        "demo-partner",
        "pat.partner@northwind.example",
        partner_id="northwind",
    ),
    Persona(
        "tenant", "Tenant admin (acme)", "tenant_admin", "demo-tenant", "tia.tenant@acme.example", tenant_id="acme"
    ),
)
