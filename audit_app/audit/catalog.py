"""The action catalog: every known action, what it means, its OCSF class and activity, and whether
security teams want it. The one place the OCSF mapping is written (`audit.ocsf` reads it).

An action missing here still maps (API Activity, Other) and is reported as uncatalogued.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ocsf_emitter import AccountChangeAction as Account
from ocsf_emitter import ApiActivityAction as Api
from ocsf_emitter import AuthenticationAction as Auth
from ocsf_emitter import GroupManagementAction as Group
from ocsf_emitter import UserAccessAction as Access


@dataclass(frozen=True)
class OcsfClass:
    """An OCSF event class: its uid and name, its category, and its enumeration of activities."""

    uid: int
    name: str
    category_uid: int
    category_name: str
    activities: type[IntEnum]


AUTHENTICATION = OcsfClass(3002, "Authentication", 3, "Identity & Access Management", Auth)
ACCOUNT_CHANGE = OcsfClass(3001, "Account Change", 3, "Identity & Access Management", Account)
USER_ACCESS = OcsfClass(3005, "User Access Management", 3, "Identity & Access Management", Access)
GROUP_MANAGEMENT = OcsfClass(3006, "Group Management", 3, "Identity & Access Management", Group)
API_ACTIVITY = OcsfClass(6003, "API Activity", 6, "Application Activity", Api)


@dataclass(frozen=True)
class CatalogEntry:
    """One action: its description, OCSF class and activity, and whether it is security-relevant."""

    action: str
    description: str
    ocsf_class: OcsfClass
    activity: IntEnum
    security_relevant: bool
    catalogued: bool = True

    @property
    def activity_name(self) -> str:
        """The OCSF caption of the activity, e.g. `Password Reset`, `MFA Factor Enable`."""
        words = self.activity.name.split("_")
        return " ".join(word if word == "MFA" else word.capitalize() for word in words)

    @property
    def type_uid(self) -> int:
        """OCSF `type_uid`: class_uid * 100 + activity_id."""
        return self.ocsf_class.uid * 100 + int(self.activity)


_ENTRIES: tuple[tuple[str, str, OcsfClass, IntEnum, bool], ...] = (
    # Authentication and sessions
    ("user.login", "A user signed in (or failed to)", AUTHENTICATION, Auth.LOGON, True),
    ("user.logout", "A user signed out", AUTHENTICATION, Auth.LOGOFF, False),
    ("session.refresh", "A session was extended with a refresh token", AUTHENTICATION, Auth.OTHER, False),
    ("session.revoke", "A session was revoked (forced sign-out)", AUTHENTICATION, Auth.LOGOFF, True),
    ("api_key.use", "A request authenticated with an API key", AUTHENTICATION, Auth.LOGON, True),
    (
        "oauth.token_issue",
        "An OAuth access token was issued to a client",
        AUTHENTICATION,
        Auth.AUTHENTICATION_TICKET,
        True,
    ),
    # User and API key lifecycle
    ("user.create", "A user account was created", ACCOUNT_CHANGE, Account.CREATE, True),
    ("user.invite", "A user was invited (a pending account)", ACCOUNT_CHANGE, Account.CREATE, False),
    ("user.update", "A user's profile was changed", ACCOUNT_CHANGE, Account.OTHER, False),
    ("user.delete", "A user account was deleted", ACCOUNT_CHANGE, Account.DELETE, True),
    ("user.suspend", "A user account was suspended", ACCOUNT_CHANGE, Account.DISABLE, True),
    ("user.unsuspend", "A suspended user account was re-enabled", ACCOUNT_CHANGE, Account.ENABLE, True),
    ("user.password_reset", "A user's password was reset", ACCOUNT_CHANGE, Account.PASSWORD_RESET, True),
    ("user.mfa_enroll", "A user enrolled an MFA factor", ACCOUNT_CHANGE, Account.MFA_FACTOR_ENABLE, True),
    ("user.mfa_remove", "An MFA factor was removed from a user", ACCOUNT_CHANGE, Account.MFA_FACTOR_DISABLE, True),
    ("user.email_verify", "A user verified their email address", ACCOUNT_CHANGE, Account.OTHER, False),
    ("api_key.create", "An API key was created", ACCOUNT_CHANGE, Account.CREATE, True),
    ("api_key.revoke", "An API key was revoked", ACCOUNT_CHANGE, Account.DELETE, True),
    ("api_key.rotate", "An API key's secret was rotated", ACCOUNT_CHANGE, Account.PASSWORD_CHANGE, True),
    (
        "oauth_client.secret_rotate",
        "An OAuth client's secret was rotated",
        ACCOUNT_CHANGE,
        Account.PASSWORD_CHANGE,
        True,
    ),
    # Privileges
    ("role.assign", "A role was granted to a user", USER_ACCESS, Access.ASSIGN_PRIVILEGES, True),
    ("role.revoke", "A role was taken from a user", USER_ACCESS, Access.REVOKE_PRIVILEGES, True),
    ("permission.grant", "A permission was granted", USER_ACCESS, Access.ASSIGN_PRIVILEGES, True),
    ("permission.revoke", "A permission was revoked", USER_ACCESS, Access.REVOKE_PRIVILEGES, True),
    (
        "oauth.consent_grant",
        "A user consented to an OAuth client's scopes",
        USER_ACCESS,
        Access.ASSIGN_PRIVILEGES,
        True,
    ),
    # Groups
    ("group.create", "A group was created", GROUP_MANAGEMENT, Group.CREATE, False),
    ("group.member_add", "A user was added to a group", GROUP_MANAGEMENT, Group.ADD_USER, True),
    ("group.member_remove", "A user was removed from a group", GROUP_MANAGEMENT, Group.REMOVE_USER, True),
    # Configuration through the API
    ("role.create", "A role was defined", API_ACTIVITY, Api.CREATE, True),
    ("role.update", "A role's permissions were changed", API_ACTIVITY, Api.UPDATE, True),
    ("role.delete", "A role was deleted", API_ACTIVITY, Api.DELETE, True),
    ("tenant.update", "A tenant's profile was changed", API_ACTIVITY, Api.UPDATE, False),
    ("tenant.settings_change", "A tenant's settings were changed", API_ACTIVITY, Api.UPDATE, True),
    ("tenant.domain_verify", "A tenant verified a domain", API_ACTIVITY, Api.UPDATE, True),
    ("oauth_client.create", "An OAuth client was registered", API_ACTIVITY, Api.CREATE, True),
    ("oauth_client.update", "An OAuth client was changed", API_ACTIVITY, Api.UPDATE, True),
    ("oauth_client.delete", "An OAuth client was deleted", API_ACTIVITY, Api.DELETE, True),
    ("sso.connection_update", "An SSO connection was changed", API_ACTIVITY, Api.UPDATE, True),
    ("webhook.update", "A webhook was changed", API_ACTIVITY, Api.UPDATE, False),
    ("export.request", "A report export was requested", API_ACTIVITY, Api.READ, False),
    # The audit log's own records of who read or changed it
    ("audit.view", "An audit event's details were viewed", API_ACTIVITY, Api.READ, True),
    ("audit.export", "Audit events were exported", API_ACTIVITY, Api.READ, True),
    ("audit.feed", "A collector read the audit feed (first poll of an hour)", API_ACTIVITY, Api.READ, True),
    ("audit.verify", "The hash chains were verified", API_ACTIVITY, Api.READ, True),
    ("audit.purge", "Expired audit events were purged", API_ACTIVITY, Api.DELETE, True),
    ("audit.retention.update", "A retention setting was changed", API_ACTIVITY, Api.UPDATE, True),
    ("audit.stream.create", "A log stream was created", API_ACTIVITY, Api.CREATE, True),
    ("audit.stream.update", "A log stream's settings or credentials were changed", API_ACTIVITY, Api.UPDATE, True),
    ("audit.stream.pause", "A log stream was paused", API_ACTIVITY, Api.UPDATE, True),
    ("audit.stream.resume", "A log stream was resumed", API_ACTIVITY, Api.UPDATE, True),
    ("audit.stream.replay", "A log stream was moved back to replay events", API_ACTIVITY, Api.UPDATE, True),
    ("audit.stream.delete", "A log stream was deleted", API_ACTIVITY, Api.DELETE, True),
    # Sign-ins to the audit console itself
    ("console.sign_in", "A person signed in to the audit console", AUTHENTICATION, Auth.LOGON, True),
    ("console.sign_in_failed", "A sign-in to the audit console was refused", AUTHENTICATION, Auth.LOGON, True),
    ("console.sign_out", "A console session ended (sign-out or expiry)", AUTHENTICATION, Auth.LOGOFF, False),
)

CATALOG: dict[str, CatalogEntry] = {entry[0]: CatalogEntry(*entry) for entry in _ENTRIES}


def catalog_entry(action: str) -> CatalogEntry:
    """The catalog's entry for `action`; an unknown action maps to API Activity, Other (uncatalogued)."""
    known = CATALOG.get(action)
    if known is not None:
        return known
    return CatalogEntry(action, "Not in the catalog", API_ACTIVITY, Api.OTHER, False, catalogued=False)
