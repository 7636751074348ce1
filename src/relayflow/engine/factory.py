"""The one way a runner is built: the consumers a caller brings, plus those the workflow's
``consumers:`` section configures, so that every command, the server and the benchmarks attach
the same ones with no wiring of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from relayflow.consumers.base import ConfiguredConsumer
from relayflow.consumers.registry import build_consumer
from relayflow.core.events import Consumer
from relayflow.engine.executor import Executor
from relayflow.engine.runner import Runner
from relayflow.schema.workflow import Workflow

if TYPE_CHECKING:
    from relayflow.store.protocol import RunStore


def build_runner(
    workflow: Workflow,
    *,
    store: str | RunStore | None = None,
    consumers: Sequence[Consumer] = (),
    executor: Executor | None = None,
    max_threads: int | None = None,
    use_cache: bool = True,
) -> Runner:
    """A runner of ``workflow``: use as ``async with build_runner(wf, store=…) as runner``.

    ``store`` is a URL or path of the durable store, a store object, or None for in-memory
    runs; ``consumers`` receive every event, before those of the workflow's ``consumers:``
    section, which are built here (a SpecError at the entry's line if one cannot be) and closed
    with the runner. ``use_cache=False`` runs every step even where the workflow allows the
    step cache."""
    configured = configured_consumers(workflow)
    try:
        return Runner(
            workflow,
            store=store,
            consumers=consumers,
            owned=configured,
            executor=executor,
            max_threads=max_threads,
            use_cache=use_cache,
        )
    except BaseException:
        _close(configured)
        raise


def configured_consumers(workflow: Workflow) -> list[ConfiguredConsumer]:
    """One consumer per entry of the workflow's ``consumers:`` section, in order."""
    from relayflow.spec.validate_consumers import consumer_context

    built: list[ConfiguredConsumer] = []
    try:
        for index, entry in enumerate(workflow.spec.consumers):
            context = consumer_context(
                workflow.name, workflow.base_dir, workflow.file, workflow.lines, index
            )
            built.append(build_consumer(entry.type, entry.settings, context))
    except BaseException:
        _close(built)
        raise
    return built


def _close(consumers: Sequence[ConfiguredConsumer]) -> None:
    for consumer in consumers:
        consumer.close()
