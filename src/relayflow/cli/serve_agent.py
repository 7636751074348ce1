"""``relayflow serve-agent``: one agent of a workflow as its own HTTP endpoint (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from types import FrameType
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
    served = app.state.served_agent

    #: the signals that stopped the server. uvicorn hands a signal on after its graceful
    #: shutdown, but under asyncio.run that only cancels the task if it still awaits: when the
    #: shutdown ends first, the command would exit 0. The exit status is decided from this.
    stopped_by: list[int] = []

    async def serve() -> None:
        # prepared here, before the server listens, so that a broken script or a missing
        # model is one error line and exit 1 instead of uvicorn's startup traceback
        await served.start()
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower())
        server = uvicorn.Server(config)
        handle_exit = server.handle_exit

        def on_exit(sig: int, frame: FrameType | None) -> None:
            stopped_by.append(sig)
            handle_exit(sig, frame)

        server.handle_exit = on_exit  # type: ignore[method-assign]
        note(
            f"serving agent {served.name} ({served.config.type}) of workflow "
            f"{served.workflow.name}: POST http://{host}:{port}/v1/run"
        )
        try:
            await server.serve()
        finally:
            await served.stop()  # after a failed bind too (the lifespan never ran)

    asyncio.run(serve())
    if stopped_by:
        raise typer.Exit(128 + stopped_by[0])  # as a shell reports it: 130 after Ctrl-C
