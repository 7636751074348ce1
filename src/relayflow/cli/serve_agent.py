"""``relayflow serve-agent``: one agent of a workflow as its own HTTP endpoint (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relayflow.cli.output import UserError, note


def serve_agent(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)],
    agent: Annotated[
        str, typer.Argument(help="The name of the agent to serve.", show_default=False)
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8001,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn's log level (debug, info, warning…).")
    ] = "info",
) -> None:
    """Serve one agent as its own endpoint: POST /v1/run (a handoff in, the step's result out),
    POST /infer (the record in, the output record out), GET /v1/info, GET /healthz, /docs.
    A `type: service` step with `protocol: relayflow` calls it."""
    import asyncio

    try:
        import uvicorn

        from relayflow.server.agent_app import create_agent_app
    except ImportError as exc:
        raise UserError(
            f"serve-agent needs the server extra ({exc.name} is missing): "
            "pip install 'relayflow[server]'"
        ) from None
    from relayflow.cli.common import load_workflow

    app = create_agent_app(load_workflow(file), agent)
    service = app.state.agent_service

    async def serve() -> None:
        # prepared here, before the server listens, so that a broken script or a missing
        # model is one error line and exit 1 instead of uvicorn's startup traceback
        await service.start()
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower())
        server = uvicorn.Server(config)
        note(
            f"serving agent {service.name} ({service.config.type}) of workflow "
            f"{service.workflow.name}: POST http://{host}:{port}/v1/run"
        )
        try:
            await server.serve()
        finally:
            await service.stop()  # after a failed bind too (the lifespan never ran)

    asyncio.run(serve())
