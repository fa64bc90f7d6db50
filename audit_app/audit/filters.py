"""The user's search (filters), applied on top of the caller's scope (`audit.scope`).

The scope is the security restriction derived from the token; filters are untrusted input.
Every query is `scope AND filters`, so no filter can widen what a caller sees.

Syntax (docs: README "Search and filter syntax"):
- a text filter takes several values, `action=a,b` (or the parameter repeated): any of them;
- a value ending in `*` is a prefix (`resource_id=usr_00*`), except for tenant, partner and result
  (a `*` anywhere else is an ordinary character);
- `actor_email` ignores case; `ip_address` also takes a network, `10.0.0.0/8` or `2001:db8::/32`;
- `not_action`, `not_result`, `not_actor_id` leave out events matching any of their values;
- `q` is free text over the event's text fields and its details: case-insensitive substrings,
  every word must occur, `"a quoted phrase"` is one word. It runs on the database's text
  search: a trigram GIN index on PostgreSQL, an FTS5 trigram table on SQLite (migration 0010).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, cast, func, literal, literal_column, not_, or_, text
from sqlalchemy.dialects.postgresql import INET
from sqlmodel import Session, col

from audit_app.audit.scope import Scope, tenants_of_partner
from audit_app.auth import Principal
from audit_app.models import RESULTS, AuditLog, utc

SYSTEM_TENANT = "platform"


@dataclass(frozen=True)
class AuditFilters:
    """The filters of the list endpoint, as the caller wrote them (see the module's syntax)."""

    tenant_id: str | None = None
    partner_id: str | None = None
    actor_id: str | None = None
    actor_email: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    result: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    ip_address: str | None = None
    request_id: str | None = None
    q: str | None = None
    not_action: str | None = None
    not_result: str | None = None
    not_actor_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))

    def active(self) -> dict[str, Any]:
        """The filters that are set, as JSON-ready values (for logs, file names, URLs)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None or value == "":
                continue
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def replace(self, **changes: Any) -> AuditFilters:
        """A copy with some filters changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return AuditFilters(**values)

    def values(self, name: str) -> list[str]:
        """The values of the multi-value filter `name` (empty when unset)."""
        return split_values(getattr(self, name))


TIME_FILTERS: tuple[str, ...] = ("start_time", "end_time")
TEXT_FILTERS: tuple[str, ...] = tuple(f.name for f in fields(AuditFilters) if f.name not in TIME_FILTERS)
"""The text filters, in the order of AuditFilters (forms and URLs list them so)."""
EXCLUSIONS: dict[str, str] = {"not_action": "action", "not_result": "result", "not_actor_id": "actor_id"}
"""Each exclusion filter and the column it leaves values of out."""
MATCH_COLUMNS: tuple[str, ...] = (
    "tenant_id",
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "result",
    "ip_address",
    "request_id",
)
"""Filters matching one column: any of their values, exactly (or as a prefix, a network)."""
EXACT_ONLY: frozenset[str] = frozenset({"tenant_id", "partner_id", "result", "not_result"})
"""Filters whose values never end in a `*` prefix (scope-bearing names and the fixed result set)."""
CASE_INSENSITIVE: frozenset[str] = frozenset({"actor_email"})
EXACT_FILTERS: tuple[str, ...] = tuple(name for name in TEXT_FILTERS if name != "q")
"""Filters that compare values (exact, prefix with `*`), as opposed to the free-text `q`."""
MAX_VALUES = 50
MAX_TERMS = 16
SEARCH_FIELDS: tuple[str, ...] = (
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "ip_address",
    "request_id",
    "user_agent",
)
"""The columns `q` searches, besides the text of `details`."""


def _search_document(details: str) -> str:
    joined = " || ' ' || ".join(f"coalesce({name}, '')" for name in SEARCH_FIELDS)
    return f"({joined} || ' ' || {details})"


PG_SEARCH_TEXT = _search_document("details::text")
"""The text `q` searches on PostgreSQL; migration 0010 indexes exactly this expression (gin_trgm_ops)."""
SQLITE_SEARCH_TEXT = _search_document("coalesce(details, '')")
"""The text `q` searches on SQLite; migration 0010 feeds it to the FTS5 table `audit_log_search`."""
PG_INET = "CAST(ip_address AS inet)"
"""The address as `inet` (ingest stores only valid ones); migration 0010 indexes it (GiST, inet_ops)."""


class FilterSyntaxError(ValueError):
    """A filter value that cannot mean anything (HTTP 422); `name` is the parameter."""

    def __init__(self, name: str, value: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.value = value


def split_values(raw: str | None) -> list[str]:
    """The comma-separated values of a filter, trimmed, without empty ones."""
    if not raw:
        return []
    return [value.strip() for value in raw.split(",") if value.strip()]


def search_terms(q: str | None) -> list[str]:
    """The terms of a `q`: words, and "quoted phrases" as one term (an unclosed quote runs to the end)."""
    if not q:
        return []
    terms = []
    for phrase, word in re.findall(r'"([^"]*)"?|(\S+)', q):
        term = " ".join(phrase.split()) if phrase else word
        if term:
            terms.append(term)
    return terms


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network of a CIDR value (`10.0.0.0/8`; host bits are ignored); ValueError when not one."""
    return ipaddress.ip_network(value, strict=False)


def check_syntax(filters: AuditFilters) -> None:
    """Raise FilterSyntaxError for values no event can be compared with (bad CIDR, misplaced `*`, ...)."""
    for name in TEXT_FILTERS:
        raw = getattr(filters, name)
        if raw is None:
            continue
        if name == "q":
            if len(search_terms(raw)) > MAX_TERMS:
                raise FilterSyntaxError(name, raw, f"Value error, at most {MAX_TERMS} search terms")
            continue
        values = split_values(raw)
        if len(values) > MAX_VALUES:
            raise FilterSyntaxError(name, raw, f"Value error, at most {MAX_VALUES} values")
        for value in values:
            if value == "*":
                raise FilterSyntaxError(name, raw, "Value error, `*` alone matches everything: leave the filter out")
            if value.endswith("*") and name in EXACT_ONLY:
                raise FilterSyntaxError(name, raw, "Value error, takes exact values only (no `*` prefix)")
            if name == "ip_address" and "/" in value:
                try:
                    parse_network(value)
                except ValueError:
                    raise FilterSyntaxError(
                        name, raw, f"Value error, {value!r} is not an IP network (e.g. 10.0.0.0/8, 2001:db8::/32)"
                    ) from None


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`: an index range (exact in the binary/C collations used here)
    narrowed by LIKE, so no other character can slip in."""
    bounds = [column >= prefix]
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        bounds.append(column < prefix[:-1] + chr(last + 1))
    return and_(*bounds, column.like(_like_escape(prefix) + "%", escape="\\"))


def ipv4_text_ranges(network: ipaddress.IPv4Network) -> tuple[list[str], list[str]] | None:
    """The stored texts of `network`'s addresses as (prefixes, whole addresses); None for /0 (every address).

    Addresses are stored in canonical form ("10.1.2.3", no leading zeros), so those of a /16 are
    the texts starting "10.1.", and a /12 is 16 such prefixes ("10.16." ... "10.31."); within the
    last octet they are whole addresses. At most 128 (a /9, /17 or /25).
    """
    if network.prefixlen == 0:
        return None
    fixed, spare = divmod(network.prefixlen, 8)
    octets = str(network.network_address).split(".")
    head = octets[:fixed]
    if fixed == 4:
        return [], [str(network.network_address)]
    if not spare:
        return [".".join(head) + "."], []
    first = int(octets[fixed])
    texts = [".".join([*head, str(first + n)]) for n in range(2 ** (8 - spare))]
    return ([], texts) if fixed == 3 else ([text + "." for text in texts], [])


def _in_network(dialect: str, value: str) -> ColumnElement[bool]:
    """The address lies in the network: PostgreSQL compares `inet` (GiST index); SQLite checks each
    candidate with `audit_ip_in_network`, candidates an IPv4 network narrows to text ranges of the
    address index first (else every row the other conditions leave)."""
    parsed = parse_network(value)
    network = str(parsed)
    if dialect == "postgresql":
        return literal_column(PG_INET).op("<<=", is_comparison=True)(cast(literal(network), INET))  # type: ignore[no-any-return]
    column: Any = col(AuditLog.ip_address)
    exact = func.audit_ip_in_network(column, network) == 1
    ranges = ipv4_text_ranges(parsed) if isinstance(parsed, ipaddress.IPv4Network) else None
    if ranges is None:
        return exact  # type: ignore[no-any-return]
    prefixes, addresses = ranges
    candidates = [_prefix(column, prefix) for prefix in prefixes]
    if addresses:
        candidates.append(column.in_(addresses))
    return and_(or_(*candidates), exact)


def value_condition(name: str, values: list[str], dialect: str) -> ColumnElement[bool]:
    """Column `name` matches any of `values` (exact, prefix with `*`, network for an IP with `/`)."""
    column: Any = col(getattr(AuditLog, name))
    if name in CASE_INSENSITIVE:
        column = func.lower(column)
        values = [value.lower() for value in values]
    exact = [v for v in values if not v.endswith("*") and not (name == "ip_address" and "/" in v)]
    options: list[ColumnElement[bool]] = []
    if exact:
        options.append(column == exact[0] if len(exact) == 1 else column.in_(exact))
    options += [_prefix(column, v[:-1]) for v in values if v.endswith("*")]
    if name == "ip_address":
        options += [_in_network(dialect, v) for v in values if "/" in v and not v.endswith("*")]
    return or_(*options) if len(options) > 1 else options[0]


def _pattern(term: str) -> ColumnElement[str]:
    """`%term%` for ILIKE, rendered into the SQL text as a quoted literal when the statement runs."""
    return bindparam(None, "%" + _like_escape(term) + "%", type_=String, literal_execute=True)


def search_condition(terms: list[str], dialect: str) -> ColumnElement[bool]:
    """Every term occurs, case-insensitively, in the event's searchable text (through the text index)."""
    if dialect == "postgresql":
        document: Any = literal_column(PG_SEARCH_TEXT)
        # Each pattern is written into the statement (as a quoted literal, at execution): with a
        # bound parameter, PostgreSQL switches a statement prepared by psycopg to a generic plan
        # after a few runs, and a generic plan cannot tell a rare word from a common one (seen:
        # 40 ms became 300 ms from the tenth run of the same two-word search).
        return and_(*(document.ilike(_pattern(term), escape="\\") for term in terms))
    conditions: list[ColumnElement[bool]] = []
    indexed = [term for term in terms if len(term) >= 3]  # a trigram index needs three characters
    if indexed:
        match = " AND ".join('"' + term.replace('"', '""') + '"' for term in indexed)
        conditions.append(
            literal_column("audit_log.rowid").in_(
                text("SELECT rowid FROM audit_log_search WHERE audit_log_search MATCH :match").bindparams(match=match)
            )
        )
    sqlite_document: Any = literal_column(SQLITE_SEARCH_TEXT)
    conditions += [sqlite_document.like("%" + _like_escape(t) + "%", escape="\\") for t in terms if len(t) < 3]
    return and_(*conditions)


def filter_conditions(filters: AuditFilters, dialect: str = "sqlite") -> list[ColumnElement[bool]]:
    """The SQL conditions of the user's filters (start inclusive, end exclusive) for `dialect`.

    Raises FilterSyntaxError for values check_syntax refuses.
    """
    check_syntax(filters)
    conditions: list[ColumnElement[bool]] = []
    for name in MATCH_COLUMNS:
        values = filters.values(name)
        if values:
            conditions.append(value_condition(name, values, dialect))
    partners = filters.values("partner_id")
    if partners:
        conditions.append(or_(*(col(AuditLog.tenant_id).in_(tenants_of_partner(p)) for p in partners)))
    for name, column in EXCLUSIONS.items():
        values = filters.values(name)
        if name == "not_result" and values:
            # The results are a fixed set: keep the others, an IN list the result index answers.
            conditions.append(col(AuditLog.result).in_([r for r in RESULTS if r not in values] or [""]))
        elif values:
            conditions.append(not_(value_condition(column, values, dialect)))
    terms = search_terms(filters.q)
    if terms:
        conditions.append(search_condition(terms, dialect))
    if filters.start_time is not None:
        conditions.append(col(AuditLog.timestamp) >= filters.start_time)
    if filters.end_time is not None:
        conditions.append(col(AuditLog.timestamp) < filters.end_time)
    return conditions


def check_filters_in_scope(session: Session, principal: Principal, filters: AuditFilters) -> None:
    """Refuse (403) a filter that names a tenant or partner outside the caller's scope."""
    scope = Scope.of(principal)
    for tenant in filters.values("tenant_id"):
        scope.check_named(session, tenant, None)
    for partner in filters.values("partner_id"):
        scope.check_named(session, None, partner)


def where_clause(session: Session, principal: Principal, filters: AuditFilters) -> list[ColumnElement[bool]]:
    """Scope and filters together, after checking that the filters stay within the scope (403)."""
    check_filters_in_scope(session, principal, filters)
    dialect = session.get_bind().dialect.name
    return [Scope.of(principal).condition(), *filter_conditions(filters, dialect)]
