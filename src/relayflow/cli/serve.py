"""``relayflow serve``: the HTTP API, the worker pool, review queue and metrics (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from relayflow.cli.common import StoreOption, store_for_writing
from relayflow.cli.output import UserError, note


def serve(
    store: StoreOption = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=1, help="Runs executing at once.")
    ] = 8,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1, help="Largest request body, in bytes.")
    ] = 1 << 20,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    workflow_roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--workflow-root",
            help="A folder whose workflow files may be registered by path, and whose files "
            "registered workflows may name (repeat for more). Without one, registration by "
            "path is off and workflows bring their files as a bundle.",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        Literal["token", "public", "off"],
        typer.Option(
            "--metrics",
            help="Who reads /metrics: a token with a grant on '*' (token), anyone (public), "
            "no one (off).",
        ),
    ] = "token",
) -> None:
    """Serve the API under /v1 (OpenAPI at /docs), Prometheus at /metrics. Runs left queued or
    running by a previous server on the same store are picked up at start; SIGTERM and Ctrl-C
    stop it alike, leaving runs in flight for the next server to resume."""
    try:
        import uvicorn

        from relayflow.server.app import create_app
    except ImportError as exc:
        raise UserError(
            f"the server needs the `server` extra ({exc.name} is missing): "
            "pip install 'relayflow[server]'"
        ) from None
    from relayflow.errors import ConfigError
    from relayflow.govern.access import TokenStore
    from relayflow.server.confine import roots_of
    from relayflow.store.sql_store import SqlStore

    try:
        roots = roots_of(workflow_roots or [])
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--workflow-root") from None
    location = store_for_writing(store)
    probe = SqlStore(location)
    try:
        if not TokenStore(probe.engine).list_tokens():
            note(
                "no API tokens yet: create one with "
                "`relayflow tokens create NAME --role '*=admin'` (same --store)"
            )
    finally:
        probe.close()
    if not roots:
        note(
            "no --workflow-root: workflows are registered with their files in the request "
            "(yaml + files), not by a path on this machine"
        )
    app = create_app(
        location, workers=workers, max_body=max_body, workflow_roots=roots, metrics=metrics
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
