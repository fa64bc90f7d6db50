"""audit_app: the audit-log console and API of a multi-tenant identity platform."""

__version__ = "1.0.0"
"""The server's version: in the API description and in every evidence bundle's manifest."""
