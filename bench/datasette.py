"""Datasette serving the benchmark's SQLite file: the generic table browser the embedded default is compared with.

Datasette is installed only for the benchmark, into a virtual environment of its own under
bench/data/ (git-ignored), never into the project's: `make bench` creates it on first use.
Each list case of the API is asked of Datasette's JSON table view with the same filters, the
same page size and the same newest-first order (`_sort_desc=timestamp`); Datasette then also
counts the filtered rows, as the API counts its total.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from audit_app.audit.filters import AuditFilters
from audit_app.auth import Principal
from audit_app.seed import TENANT_PARTNER
from bench.cluster import free_port

DATASETTE_VERSION = "0.65.5"
VENV = Path(__file__).resolve().parent / "data" / "datasette-venv"
PAGE_SIZE = 50


def datasette_binary(log: Any = print) -> Path:
    """The `datasette` of the benchmark's own virtual environment, created on first use."""
    binary = VENV / "bin" / "datasette"
    marker = VENV / f".datasette-{DATASETTE_VERSION}"
    if not marker.exists():
        log(f"installing datasette {DATASETTE_VERSION} into {VENV} (benchmark only) ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, f"datasette=={DATASETTE_VERSION}"], check=True)
        marker.touch()
    return binary


@contextmanager
def datasette_server(path: Path, log: Any = print) -> Iterator[str]:
    """Datasette serving the SQLite file at `path` on a free loopback port; yields its base URL."""
    binary = datasette_binary(log)
    port = free_port()
    cmd = [str(binary), "serve", str(path), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--setting", "sql_time_limit_ms", "60000", "--setting", "max_returned_rows", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/-/versions.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("datasette did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def table_path(path: Path) -> str:
    """The JSON table view of audit_log in the database Datasette names after the file."""
    return f"/{path.stem}/audit_log.json"


def stored_time(value: datetime) -> str:
    """A time as the SQLite file stores it (text compared by Datasette's filters)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def tenants_of_partner(partner_id: str) -> str:
    """The generated data's tenants of `partner_id`, comma-separated (Datasette's `__in`)."""
    return ",".join(sorted(tenant for tenant, partner in TENANT_PARTNER.items() if partner == partner_id))


def list_params(filters: AuditFilters, principal: Principal) -> dict[str, Any] | None:
    """Datasette's query string for an API list case (None when it has no equivalent)."""
    # `_nosuggest`: no facet suggestions (the API computes none); the filtered count stays on.
    params: dict[str, Any] = {"_sort_desc": "timestamp", "_size": PAGE_SIZE, "_nosuggest": 1}
    active = filters.active()
    if not _has_equivalent(active):
        return None
    for name, value in active.items():
        if name == "partner_id":
            params["tenant_id__in"] = tenants_of_partner(value)
        elif name == "start_time":
            params["timestamp__gte"] = stored_time(datetime.fromisoformat(value))
        elif name == "end_time":
            params["timestamp__lt"] = stored_time(datetime.fromisoformat(value))
        else:
            params[name] = value
    if principal.role == "tenant_admin" and principal.tenant_id:
        params["tenant_id"] = principal.tenant_id
    elif principal.role == "partner_admin" and principal.partner_id:
        params["tenant_id__in"] = tenants_of_partner(principal.partner_id)
    return params


def _has_equivalent(active: dict[str, Any]) -> bool:
    """Whether Datasette's table view can ask the same: exact matches only (no free text `q`, no
    exclusions, several values, prefixes, CIDR blocks nor case-insensitive emails)."""
    for name, value in active.items():
        if name == "q" or name.startswith("not_"):
            return False
        if isinstance(value, str) and name not in ("start_time", "end_time"):
            if "," in value or value.endswith("*") or (name == "ip_address" and "/" in value):
                return False
            if name == "actor_email" and value != value.lower():
                return False
    return True


def export_rows_per_s(base: str, path: Path, params: dict[str, Any]) -> tuple[int, float]:
    """Rows and rows/s of Datasette's streamed CSV export of the matching rows (`_stream=on`)."""
    rows = -1  # the header line; the generated fields hold no line breaks
    with httpx.Client(base_url=base, timeout=600) as client:
        started = time.perf_counter()
        with client.stream(
            "GET", f"/{path.stem}/audit_log.csv", params={**params, "_stream": "on", "_size": "max"}
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    rows += 1
        seconds = time.perf_counter() - started
    return rows, rows / seconds
