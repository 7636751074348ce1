"""The FastAPI app of ``relayflow serve``: routes under ``/v1``, Prometheus ``/metrics``, JSON
errors, a request body limit, and the service's life bound to the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from relayflow.server import errors, feedback, figures, pages, reviews, runs, sse, workflows
from relayflow.server.confine import roots_of
from relayflow.server.operations import MetricsAccess, Operations
from relayflow.version import __version__

#: the default request body limit: 1 MiB
MAX_BODY = 1 << 20

TAGS = [
    {"name": "workflows", "description": "Register workflows; every version is kept."},
    {"name": "runs", "description": "Submit, follow, cancel and resume runs."},
    {"name": "reviews", "description": "The queue of steps escalated to a person."},
    {"name": "feedback", "description": "Labels that feed retraining."},
    {"name": "metrics", "description": "Figures per workflow, Prometheus, health."},
    {"name": "access", "description": "The caller's token and the denials log."},
]


def create_app(
    store: str,
    *,
    workers: int = 8,
    max_body: int = MAX_BODY,
    workflows_dir: str | Path | None = None,
    claim_seconds: float = 900.0,
    workflow_roots: Sequence[str | Path] = (),
    metrics: MetricsAccess = "token",
) -> FastAPI:
    """The app over the store at ``store`` (a path or database URL). ``workers`` runs execute
    at once; a request body over ``max_body`` bytes is refused with 413; workflows posted as
    text are kept under ``workflows_dir`` (default: ``workflows/`` beside a SQLite store).
    A workflow may be registered by path, and may name files, only under ``workflow_roots``
    (none: registration by path is off); ``metrics`` says who reads ``/metrics``."""
    from relayflow.store.sql_store import store_url

    operations = Operations(
        store_url(store),
        workers=workers,
        workflows_dir=workflows_dir,
        claim_seconds=claim_seconds,
        workflow_roots=roots_of(workflow_roots),
        metrics_access=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await operations.start()
        try:
            yield
        finally:
            await operations.close()

    app = FastAPI(
        title="relayflow",
        version=__version__,
        summary="Run AI workflows declared in YAML; review what the machine is unsure of.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        default_response_class=errors.SafeJSON,
    )
    app.state.operations = operations
    errors.install(app)
    for module in (workflows, runs, sse, reviews, feedback):
        app.include_router(module.router)
    app.include_router(figures.router)
    app.include_router(figures.public)
    # the review pages (server-rendered; kept out of the OpenAPI schema) and their CSS/JS
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(packages=[("relayflow.server", "web/static")]), name="static")
    app.add_middleware(errors.BodyLimit, max_bytes=max_body)
    return app
