"""audit_app: the audit-log console and API of a multi-tenant identity platform."""
