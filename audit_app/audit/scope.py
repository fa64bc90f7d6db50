"""The caller's scope: which tenants a principal may see. The one place this rule is written.

`Scope.of(principal)` derives it from the token's role and binding: every tenant (super admin),
the tenants of one partner (partner admin), one tenant (tenant admin), or nothing (a role
without the binding it needs). Every query appends `scope.condition(...)` for its tenant-keyed
column; `contains` answers for one tenant, `tenant_ids`/`tenants` list what it covers, and
`check_named` refuses (403) a filter naming a tenant or partner outside it. Filters are
untrusted input applied on top (`audit.filters`), so no filter can widen a scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlmodel import Session, col

from audit_app.auth import ForbiddenError, Principal
from audit_app.models import AuditLog, Tenant


def tenants_of_partner(partner_id: str) -> Select[Any]:
    """A subquery of the ids of every tenant owned by `partner_id`."""
    return select(col(Tenant.id)).where(col(Tenant.partner_id) == partner_id)


def tenant_partner(session: Session, tenant_id: str) -> str | None:
    """The partner owning `tenant_id`, None when it has none or is unknown."""
    return session.execute(select(col(Tenant.partner_id)).where(col(Tenant.id) == tenant_id)).scalar()


@dataclass(frozen=True)
class Scope:
    """The tenants a caller may see: all of them, one partner's, one tenant, or none.

    At most one of `partner_id` / `tenant_id` is set, and only when `everything` is False.
    """

    everything: bool = False
    partner_id: str | None = None
    tenant_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Scope:
        """The scope of `principal`'s role; a partner or tenant admin without its id sees nothing."""
        if principal.role == "super_admin":
            return cls(everything=True)
        if principal.role == "partner_admin" and principal.partner_id:
            return cls(partner_id=principal.partner_id)
        if principal.role == "tenant_admin" and principal.tenant_id:
            return cls(tenant_id=principal.tenant_id)
        return cls()

    @property
    def is_empty(self) -> bool:
        """Whether this scope covers no tenant at all."""
        return not self.everything and self.partner_id is None and self.tenant_id is None

    def condition(self, tenant_column: Any = None) -> ColumnElement[bool]:
        """The SQL condition keeping the rows of covered tenants (`AuditLog.tenant_id` by default).

        Pass another tenant-keyed column (the daily counts, `Tenant.id`, ...) to scope its table.
        """
        tenant: Any = col(AuditLog.tenant_id) if tenant_column is None else tenant_column
        if self.everything:
            return true()
        if self.partner_id is not None:
            return tenant.in_(tenants_of_partner(self.partner_id))  # type: ignore[no-any-return]
        if self.tenant_id is not None:
            return tenant == self.tenant_id  # type: ignore[no-any-return]
        return false()

    def contains(self, session: Session, tenant_id: str) -> bool:
        """Whether this scope covers `tenant_id`."""
        if self.everything:
            return True
        if self.tenant_id is not None:
            return tenant_id == self.tenant_id
        return self.partner_id is not None and tenant_partner(session, tenant_id) == self.partner_id

    def covers_partner(self, session: Session, partner_id: str) -> bool:
        """Whether a filter on `partner_id` stays within this scope (a tenant admin: its tenant's partner)."""
        if self.everything:
            return True
        if self.tenant_id is not None:
            return tenant_partner(session, self.tenant_id) == partner_id
        return self.partner_id is not None and partner_id == self.partner_id

    def check_named(self, session: Session, tenant_id: str | None = None, partner_id: str | None = None) -> None:
        """Refuse (ForbiddenError, 403) a tenant or partner named by the caller outside this scope."""
        if tenant_id and not self.contains(session, tenant_id):
            raise ForbiddenError("The requested tenant is outside your scope.")
        if partner_id and not self.covers_partner(session, partner_id):
            raise ForbiddenError("The requested partner is outside your scope.")

    def require_everything(self, message: str) -> None:
        """Refuse (403, `message`) unless this scope covers every tenant (super admin actions)."""
        if not self.everything:
            raise ForbiddenError(message)

    def tenants(self, session: Session) -> Sequence[Tenant]:
        """The registered tenants this scope covers, sorted by id (for pickers and listings)."""
        stmt = select(Tenant).where(self.condition(col(Tenant.id))).order_by(col(Tenant.id))
        return session.execute(stmt).scalars().all()

    def tenant_ids(self, session: Session) -> list[str]:
        """The ids of the registered tenants this scope covers, sorted."""
        stmt = select(col(Tenant.id)).where(self.condition(col(Tenant.id))).order_by(col(Tenant.id))
        return list(session.execute(stmt).scalars())

    def partner_ids(self, session: Session) -> list[str]:
        """The partners owning the tenants this scope covers, sorted (for pickers)."""
        return sorted({tenant.partner_id for tenant in self.tenants(session) if tenant.partner_id})

    def tenant_ids_sql(self) -> tuple[str, dict[str, str]] | None:
        """A plain-SQL `SELECT id` of the covered tenants and its parameters, for hand-written
        queries (None: every tenant, no restriction)."""
        if self.everything:
            return None
        if self.partner_id is not None:
            return "SELECT id FROM tenant WHERE partner_id = :scope", {"scope": self.partner_id}
        if self.tenant_id is not None:
            return "SELECT CAST(:scope AS VARCHAR(255)) AS id", {"scope": self.tenant_id}
        return "SELECT id FROM tenant WHERE 1 = 0", {}
