"""Command line: `audit-app` (or `python -m audit_app`) followed by a command; `audit-app --help` lists them.

Long commands show their progress on standard error (audit_app/cli_progress.py); `--quiet` hides it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

import psycopg
from sqlalchemy.exc import DBAPIError

from audit_app.auth import ALL_SCOPES, ROLES, SCOPE_ADMIN, Principal, issue_token
from audit_app.cli_progress import reporting
from audit_app.db import check_database, check_databases, psycopg_url, session_scope
from audit_app.models import utc
from audit_app.settings import ConfigError, Settings, get_settings

# Exit codes of `verify`: a broken chain is never confused with a verification that could not run.
VERIFY_OK = 0  # every chain intact, and the audit.verify record written
VERIFY_BROKEN = 1  # a chain is broken (reported even when the record could not be written)
VERIFY_NOT_RUN = 2  # could not run: configuration, or the database unreachable or failing
VERIFY_NOT_RECORDED = 3  # every chain intact, but the audit.verify record could not be written


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    """Apply every migration to the configured database."""
    from audit_app.migrations import upgrade

    check_database()
    upgrade(settings.database_url)
    print(f"Database is at the newest schema ({_safe_url(settings)}).")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    """Write demo events (only into an empty database unless --force)."""
    from audit_app.seed import event_count, seed

    check_database()
    with session_scope() as session:
        existing = event_count(session)
        if existing and not args.force:
            print(f"The database already holds {existing:,} events; not seeding (use --force to add).")
            return 0
        with reporting(quiet=args.quiet) as progress:
            written = seed(session, args.events, seed_value=args.seed, as_of=args.as_of, progress=progress)
    print(f"Seeded {written:,} demo events into {_safe_url(settings)}.")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    """Print a signed token for local use."""
    print(
        issue_token(
            settings,
            role=args.role,
            tenant_id=args.tenant_id,
            partner_id=args.partner_id,
            scope=args.scope,
            ttl=args.ttl,
            sub=args.sub,
            email=args.email,
        )
    )
    return 0


def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    """Check the configuration and the database connection, as the server does at start."""
    settings.require_signing_key()
    check_databases()
    replica = " (and the read database)" if settings.read_database_url else ""
    print(f"Configuration is valid; database reachable at {_safe_url(settings)}{replica}.")
    return 0


def _cli_principal() -> Principal:
    """The operator at the command line: a super admin named after the OS user (for the audit trail)."""
    import getpass

    return Principal(sub=f"cli:{getpass.getuser()}", email="", role="super_admin")


def cmd_verify(_settings: Settings, args: argparse.Namespace) -> int:
    """Walk the hash chains and report the first broken link; exit with one of the VERIFY_* codes."""
    from audit_app.audit.integrity import AccessNotRecordedError, verify_chains
    from audit_app.audit.verify_lock import VerificationBusyError

    check_database()
    not_recorded: AccessNotRecordedError | None = None
    try:
        with session_scope() as session, reporting(quiet=args.quiet) as progress:
            report = verify_chains(session, _cli_principal(), args.tenant, full=args.full, progress=progress)
    except AccessNotRecordedError as exc:
        report, not_recorded = exc.report, exc
    except VerificationBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return VERIFY_NOT_RUN
    except (DBAPIError, psycopg.Error) as exc:
        print(f"error: the verification could not run: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return VERIFY_NOT_RUN
    print(f"Checked {report.events_checked:,} events in {report.tenants_checked:,} tenant chains.")
    broken = report.first_broken
    if broken is None:
        print("OK: every chain is intact.")
    else:
        print(
            f"BROKEN: tenant {broken.tenant_id!r}, event {broken.event_id} (link {broken.chain_seq}): {broken.message}"
        )
        print(f"  {broken.check} expected: {broken.expected}")
        print(f"  {broken.check} found:    {broken.found}")
    if broken is not None:
        if not_recorded is not None:
            print(f"warning: {not_recorded}", file=sys.stderr)
        return VERIFY_BROKEN
    if not_recorded is not None:
        print(f"error: {not_recorded}", file=sys.stderr)
        return VERIFY_NOT_RECORDED
    return VERIFY_OK


def cmd_purge(_settings: Settings, args: argparse.Namespace) -> int:
    """Delete expired events in small batches, keeping the chains verifiable."""
    from audit_app.audit.retention import purge_expired

    check_database()
    with session_scope() as session, reporting(quiet=args.quiet) as progress:
        report = purge_expired(
            session, _cli_principal(), tenant_id=args.tenant, batch_size=args.batch_size, progress=progress
        )
    for run in report.purged:
        print(
            f"{run.tenant_id}: purged {run.events_purged:,} events older than {run.retention_days} days "
            f"(through link {run.through_seq})"
        )
    for tenant in report.held:
        print(f"{tenant}: under legal hold, nothing purged")
    print(f"Purged {report.events_purged:,} events in total.")
    return 0


UNCHANGED = object()  # a retention option not given (None means "keep forever")


def _days(value: str) -> int | None:
    """Retention days from the command line: a number, or `none` to keep events forever."""
    if value.lower() in ("none", "forever"):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of days or 'none'") from None


def cmd_retention(_settings: Settings, args: argparse.Namespace) -> int:
    """Show or change retention: the platform default, a tenant's own days, legal hold."""
    from audit_app.audit.retention import (
        UNSET,
        RetentionError,
        retention_settings,
        set_default_retention,
        set_tenant_retention,
    )

    check_database()
    principal = _cli_principal()
    with session_scope() as session:
        try:
            if args.default is not UNCHANGED:
                set_default_retention(session, principal, args.default)
            if args.tenant is not None and (args.days is not UNCHANGED or args.legal_hold is not None):
                set_tenant_retention(
                    session,
                    principal,
                    args.tenant,
                    days=args.days if args.days is not UNCHANGED else UNSET,
                    legal_hold=None if args.legal_hold is None else args.legal_hold == "on",
                )
        except RetentionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        current = retention_settings(session, principal)
    print(f"default: {current.default_days or 'keep forever'} days")
    for policy in current.tenants:
        if args.tenant is None or policy.tenant_id == args.tenant:
            own = "default" if policy.days is None else f"{policy.days} days"
            hold = ", LEGAL HOLD" if policy.legal_hold else ""
            print(f"{policy.tenant_id}: {own} (effective {policy.effective_days or 'forever'}){hold}")
    return 0


def cmd_tenant(_settings: Settings, args: argparse.Namespace) -> int:
    """Register a tenant with its partner (or move it), or list the registered tenants."""
    from audit_app.audit.tenants import list_tenants, register_tenant

    check_database()
    principal = _cli_principal()
    with session_scope() as session:
        if args.action == "add":
            partner = None if args.no_partner else args.partner_id
            outcome = register_tenant(session, principal, args.tenant_id, partner)
            owner = f"partner {partner}" if partner else "no partner"
            if outcome.created:
                print(f"Registered tenant {args.tenant_id} ({owner}).")
            elif outcome.changed:
                was = outcome.previous_partner_id or "no partner"
                print(f"Moved tenant {args.tenant_id} from {was} to {owner}.")
            else:
                print(f"Tenant {args.tenant_id} is already registered ({owner}); nothing changed.")
            return 0
        for tenant in list_tenants(session, principal):
            if args.partner_id is None or tenant.partner_id == args.partner_id:
                print(f"{tenant.id}\t{tenant.partner_id or '-'}\t{tenant.created_at.isoformat()}")
    return 0


def cmd_partition(settings: Settings, args: argparse.Namespace) -> int:
    """Partition audit_log by month (first run), or add the missing months ahead (later runs)."""
    from audit_app.partitioning import add_months_ahead, partition_audit_log

    if settings.is_sqlite:
        print("error: partitioning needs PostgreSQL; AUDIT_DATABASE_URL is SQLite.", file=sys.stderr)
        return 2
    check_database()
    dsn = psycopg_url(settings.database_url)
    with reporting(quiet=args.quiet) as progress:
        count = partition_audit_log(dsn, months_ahead=args.months_ahead, progress=progress)  # 0: it already was
    if count:
        print(f"audit_log is now partitioned by month into {count} partitions (including DEFAULT).")
    else:
        created = add_months_ahead(dsn, months_ahead=args.months_ahead)
        print(f"audit_log is partitioned; added {len(created)} month(s) ahead: {', '.join(created) or 'none needed'}.")
    return 0


def cmd_stream(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver the log streams until SIGTERM or Ctrl-C (several workers may run: each stream has one)."""
    import logging
    import signal

    from audit_app.audit.stream_targets import TargetPolicy
    from audit_app.audit.stream_worker import StreamWorker, Timing
    from audit_app.audit.streams import StreamKeyMissingError
    from audit_app.db import unpooled_engine

    check_database()
    if not settings.secret_key:
        raise ConfigError(str(StreamKeyMissingError()))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s")
    worker = StreamWorker(
        unpooled_engine(settings.database_url),
        settings.secret_key,
        Timing.of(settings),
        targets=TargetPolicy.of(settings),
        worker_id=args.worker_id,
    )

    def stop(_signum: int, _frame: object) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Delivering log streams from {_safe_url(settings)} as worker {worker.worker_id}.", flush=True)
    worker.run()
    return 0


REPLAY_POLL_SECONDS = 1.0


def cmd_stream_replay(_settings: Settings, args: argparse.Namespace) -> int:
    """Redeliver a stream's events from a time; with --wait, follow the delivery until it is done.

    Exit 0 when set (and, with --wait, delivered), 1 when the stream stopped delivering (paused or
    failing) during --wait, 2 when there is no such stream.
    """
    import time

    from audit_app.audit.streams import LAG_COUNT_CAP, StreamNotFoundError, replay_progress, replay_stream

    check_database()
    principal = _cli_principal()
    with session_scope() as session, reporting(quiet=args.quiet) as progress:
        try:
            stream, total = replay_stream(session, principal, args.stream_id, since=args.since, progress=progress)
        except StreamNotFoundError:
            print(f"error: no log stream {args.stream_id!r}.", file=sys.stderr)
            return 2
        name, capped = stream.name, "+" if total >= LAG_COUNT_CAP else ""
        print(f"Replaying {name!r} from {args.since.isoformat()}: {total:,}{capped} events to deliver.", flush=True)
        if not args.wait:
            return 0
        while True:
            state = replay_progress(session, principal, args.stream_id, total)
            progress("delivering replayed events", state.delivered, total)
            if state.delivered >= total:
                break
            if state.status != "active":
                print(f"error: the stream is {state.status}: {state.last_error or 'not delivering'}", file=sys.stderr)
                return 1
            time.sleep(REPLAY_POLL_SECONDS)
    print(f"Delivered the {total:,}{capped} replayed events of {name!r}.")
    return 0


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def cmd_verify_export(args: argparse.Namespace) -> int:
    """Verify an evidence bundle offline: exit 0 when intact, 1 naming what failed, 2 when it cannot be checked."""
    from audit_app.audit.signing import load_public_key
    from audit_app.audit.verify_export import BundleError, keys_from_url, verify_bundle

    try:
        if args.key:
            with open(args.key, "rb") as pem:
                keys = [load_public_key(pem.read())]
        else:
            keys = keys_from_url(args.keys_url)
        with reporting(quiet=args.quiet) as progress:
            result = verify_bundle(args.bundle, keys, progress=progress)
    except (OSError, ValueError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.bundle}:")
    print(result.report())
    return 0 if result.ok else 1


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _instant(value: str) -> datetime:
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time, e.g. 2026-03-02T12:00:00Z") from exc


EXAMPLES = {  # one per command, shown at the end of its --help
    "migrate": "audit-app migrate",
    "check": "audit-app check",
    "seed": "audit-app seed --events 200000 --as-of 2026-03-02T12:00:00Z",
    "token": "audit-app token --role tenant_admin --tenant-id acme",
    "verify": "audit-app verify --tenant acme",
    "purge": "audit-app purge --batch-size 5000 --quiet",
    "retention": "audit-app retention --tenant acme --days 90 --legal-hold off",
    "partition": "audit-app partition --months-ahead 6",
    "tenant": "audit-app tenant add wayne-enterprises --partner-id northwind",
    "stream": "audit-app stream --worker-id worker-1",
    "stream replay": "audit-app stream replay 0b6f3c9e-7d4a-4e1b-9a51-2c8d0e6f1a23 --since 2026-03-01T00:00:00Z --wait",
    "verify-export": "audit-app verify-export evidence.zip --keys-url https://audit.example.com/api/v1/export-keys",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="audit-app", description="audit_app administration (also runs as `python -m audit_app`)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, *, long: bool = False) -> argparse.ArgumentParser:
        """A subcommand whose --help ends with its example; long ones take --quiet."""
        parser = sub.add_parser(name, help=summary, description=summary, epilog=f"example: {EXAMPLES[name]}")
        if long:
            parser.add_argument(
                "--quiet", action="store_true", help="print only the result (no progress on standard error)"
            )
        return parser

    command("migrate", "apply database migrations").set_defaults(func=cmd_migrate)
    command("check", "check configuration and database").set_defaults(func=cmd_check)
    seed = command("seed", "write realistic demo events", long=True)
    seed.add_argument("--events", type=_positive, default=50_000, help="how many events (default 50,000)")
    seed.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same data")
    seed.add_argument("--force", action="store_true", help="seed even when the database holds events")
    seed.add_argument(
        "--as-of",
        type=_instant,
        help="generate the data as of this ISO time, then move it to end now (the same data on any day)",
    )
    seed.set_defaults(func=cmd_seed)
    token = command("token", "print a signed bearer token for local use")
    token.add_argument("--role", choices=ROLES, required=True)
    token.add_argument("--tenant-id")
    token.add_argument("--partner-id")
    token.add_argument(
        "--scope",
        help=f'space-separated scopes (default "{ALL_SCOPES}", and {SCOPE_ADMIN} for a super admin)',
    )
    token.add_argument("--ttl", type=_positive, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--sub", help="subject (user id) of the token")
    token.add_argument("--email", help="email claim of the token")
    token.set_defaults(func=cmd_token)
    verify = command("verify", "verify the per-tenant hash chains (exit 1 when broken)", long=True)
    verify.add_argument("--tenant", help="verify only this tenant's chain")
    verify.add_argument(
        "--full", action="store_true", help="walk every link, not only those appended since the last verification"
    )
    verify.set_defaults(func=cmd_verify)
    purge = command("purge", "delete events past their retention, in small batches", long=True)
    purge.add_argument("--tenant", help="purge only this tenant")
    purge.add_argument("--batch-size", type=_positive, default=1000, help="events per transaction (default 1000)")
    purge.set_defaults(func=cmd_purge)
    retention = command("retention", "show or set retention days and legal hold")
    retention.add_argument(
        "--default", type=_days, default=UNCHANGED, metavar="DAYS|none", help="set the platform default retention"
    )
    retention.add_argument("--tenant", help="the tenant to show or change")
    retention.add_argument(
        "--days", type=_days, default=UNCHANGED, metavar="DAYS|none", help="the tenant's own days (none = default)"
    )
    retention.add_argument("--legal-hold", choices=("on", "off"), help="put the tenant under legal hold or lift it")
    retention.set_defaults(func=cmd_retention)
    tenant = command("tenant", "register tenants and their partners, or list them")
    tenant_actions = tenant.add_subparsers(dest="action", required=True)
    add = tenant_actions.add_parser("add", help="register a tenant with its partner, or move it to another partner")
    add.add_argument("tenant_id")
    owner = add.add_mutually_exclusive_group(required=True)
    owner.add_argument("--partner-id", help="the partner owning the tenant")
    owner.add_argument("--no-partner", action="store_true", help="a tenant of no partner (super admins see it)")
    listing = tenant_actions.add_parser("list", help="list registered tenants: id, partner (- for none), created")
    listing.add_argument("--partner-id", help="only the tenants of this partner")
    tenant.set_defaults(func=cmd_tenant)
    partition = command("partition", "PostgreSQL: partition audit_log by month, or add months ahead", long=True)
    partition.add_argument(
        "--months-ahead", type=_positive, default=3, help="keep partitions this many months ahead (default 3)"
    )
    partition.set_defaults(func=cmd_partition)
    stream = command("stream", "deliver the log streams to their receivers (runs until stopped)")
    stream.add_argument("--worker-id", help="this worker's name in the streams' health (default host:pid:random)")
    stream.add_argument("--quiet", action="store_true", help="log only failures")
    stream.set_defaults(func=cmd_stream)
    stream_actions = stream.add_subparsers(dest="stream_action", metavar="{replay}")
    summary = "redeliver a stream's events from a time (the stream worker delivers them)"
    replay = stream_actions.add_parser(
        "replay", help=summary, description=summary, epilog=f"example: {EXAMPLES['stream replay']}"
    )
    replay.add_argument("stream_id", help="the stream's id (GET /api/v1/admin/audit/streams, or the console)")
    replay.add_argument(
        "--since", type=_instant, required=True, help="redeliver events ingested at or after this ISO time"
    )
    replay.add_argument(
        "--wait", action="store_true", help="follow the delivery until every replayed event is delivered"
    )
    replay.add_argument("--quiet", action="store_true", help="print only the result (no progress on standard error)")
    replay.set_defaults(func=cmd_stream_replay)
    check = command("verify-export", "verify an evidence bundle offline (exit 1 naming what failed)", long=True)
    check.add_argument("bundle", help="the evidence bundle (.zip)")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", metavar="PEM", help="a file holding the Ed25519 public key (PEM)")
    source.add_argument("--keys-url", metavar="URL", help="the published key set (JWKS), e.g. .../export-keys")
    check.set_defaults(offline=cmd_verify_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; configuration problems end with one clear sentence and exit code 2."""
    args = build_parser().parse_args(argv)
    offline: Callable[[argparse.Namespace], int] | None = getattr(args, "offline", None)
    if offline is not None:  # needs no settings: an auditor runs it with the bundle and a key only
        return offline(args)
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    try:
        return func(get_settings(), args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cli() -> None:
    """The `audit-app` console script."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
