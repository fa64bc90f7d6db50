"""The principals of the tests that call the domain directly: one per role and binding, with every scope.

Tests needing another subject or fewer scopes build that one Principal where they need it.
"""

from __future__ import annotations

from audit_app.auth import ALL_SCOPES, SUPER_ADMIN_SCOPES, Principal

SCOPES = frozenset(ALL_SCOPES.split())
SUPER = Principal(
    sub="root", email="root@example.com", role="super_admin", scopes=frozenset(SUPER_ADMIN_SCOPES.split())
)
NORTHWIND = Principal(sub="p", email="p@x", role="partner_admin", partner_id="northwind", scopes=SCOPES)
ACME = Principal(sub="t", email="t@x", role="tenant_admin", tenant_id="acme", scopes=SCOPES)
UNBOUND_PARTNER = Principal(sub="u", email="u@x", role="partner_admin", scopes=SCOPES)  # no partner_id: sees nothing
UNBOUND_TENANT = Principal(sub="v", email="v@x", role="tenant_admin", scopes=SCOPES)  # no tenant_id: sees nothing
