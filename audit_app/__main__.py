"""Command line: `python -m audit_app migrate|seed|token|check`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from audit_app.auth import ALL_SCOPES, ROLES, issue_token
from audit_app.db import check_database, session_scope
from audit_app.settings import ConfigError, Settings, get_settings


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
        written = seed(session, args.events, seed_value=args.seed)
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
    check_database()
    print(f"Configuration is valid; database reachable at {_safe_url(settings)}.")
    return 0


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m audit_app", description="audit_app administration")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("check", help="check configuration and database").set_defaults(func=cmd_check)
    seed = sub.add_parser("seed", help="write realistic demo events")
    seed.add_argument("--events", type=_positive, default=50_000, help="how many events (default 50,000)")
    seed.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same data")
    seed.add_argument("--force", action="store_true", help="seed even when the database holds events")
    seed.set_defaults(func=cmd_seed)
    token = sub.add_parser("token", help="print a signed bearer token for local use")
    token.add_argument("--role", choices=ROLES, required=True)
    token.add_argument("--tenant-id")
    token.add_argument("--partner-id")
    token.add_argument("--scope", default=ALL_SCOPES, help=f'space-separated scopes (default "{ALL_SCOPES}")')
    token.add_argument("--ttl", type=_positive, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--sub", help="subject (user id) of the token")
    token.add_argument("--email", help="email claim of the token")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; configuration problems end with one clear sentence and exit code 2."""
    args = build_parser().parse_args(argv)
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    try:
        return func(get_settings(), args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
