"""Retraining jobs: find what a retrain step targets, gather its labelled runs, train or re-prompt
a candidate, judge it against production on the golden set, and promote it or reject it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from relayflow.learn.job import RetrainOutcome, RetrainRequest, resolve_target
from relayflow.providers.base import Provider
from relayflow.schema.workflow import Workflow
from relayflow.store.registry import Registry

#: the request and outcome of `run_retrain`, and how it finds its target, where callers look
__all__ = ["RetrainOutcome", "RetrainRequest", "resolve_target", "run_retrain"]


async def run_retrain(
    request: RetrainRequest, get_provider: Callable[[str], Provider] | None = None
) -> RetrainOutcome:
    """Run one job: fit a learned label model or refit a scikit-learn model (in a worker
    thread), or rebuild a prompt's
    few-shot examples (its golden evaluation calls the model through ``get_provider``)."""
    workflow = request.workflow
    target = resolve_target(workflow, request.target)
    registry = await asyncio.to_thread(
        Registry, request.store, workflow=workflow.name, artifacts=request.artifacts
    )
    try:
        if target.kind == "learned":
            from relayflow.learn.learned_job import retrain_learned

            return await asyncio.to_thread(retrain_learned, request, target, registry)
        if target.kind == "sklearn":
            from relayflow.learn.sklearn_job import retrain_sklearn

            return await asyncio.to_thread(retrain_sklearn, request, target, registry)
        from relayflow.learn.prompt_job import retrain_prompt

        return await retrain_prompt(request, target, registry, get_provider or _provider(workflow))
    finally:
        registry.close()


def _provider(workflow: Workflow) -> Callable[[str], Provider]:
    from relayflow.providers.registry import build_provider

    def get(alias: str) -> Provider:
        return build_provider(alias, workflow.spec.models.get(alias), workflow.base_dir)

    return get
