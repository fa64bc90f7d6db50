"""`reflex run --env prod --backend-only` that also serves the frontend already built in `.web`.

`python -m tests.reflex_backend --backend-port P [options of reflex run]` is the prod start of
`reflex run --env prod --frontend-port P` without its two build steps (compiling the pages and
the bun/vite build of the frontend, ~25 s on a 2-core machine): the same backend, the same
Granian workers (GRANIAN_WORKERS), the same single port, and the compiled frontend mounted in
the backend as prod mode mounts it. The pages must have been built from this source already
(tests/reflex_server.py starts it only after a build of this test run).

Reflex's own `--backend-only` never mounts the frontend: its run_backend_prod sets
REFLEX_MOUNT_FRONTEND_COMPILED_APP from the running mode, over any value in the environment,
so that one call is wrapped here to ask for the mount.
"""

from __future__ import annotations

import sys

from reflex.reflex import cli
from reflex.utils import exec as reflex_exec
from reflex_base.constants import LogLevel

_run_backend_prod = reflex_exec.run_backend_prod


def _run_backend_prod_with_frontend(
    host: str, port: int, loglevel: LogLevel = LogLevel.ERROR, mount_frontend_compiled_app: bool = False
) -> None:
    """Reflex's prod backend, always with the compiled frontend mounted (as a full-stack prod run has it)."""
    _run_backend_prod(host, port, loglevel, mount_frontend_compiled_app=True)


def main(arguments: list[str]) -> None:
    """`reflex run --env prod --backend-only <arguments>`, serving the built frontend too."""
    reflex_exec.run_backend_prod = _run_backend_prod_with_frontend
    cli(["run", "--env", "prod", "--backend-only", *arguments])


if __name__ == "__main__":
    main(sys.argv[1:])
