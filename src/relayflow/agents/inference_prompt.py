"""What an inference step does with its prompt besides rendering it: read the template (the
file, or the version a label pins), register it in the run store's registry, and compress the
long text of the handoff before the template sees it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from relayflow.errors import AgentError, RelayflowError
from relayflow.prompts.templates import (
    PromptTemplate,
    environment,
    load_template,
    prompt_hash,
    split_pin,
)

if TYPE_CHECKING:
    from relayflow.agents.base import BuildContext
    from relayflow.agents.inference_config import InferenceConfig
    from relayflow.prompts.compress import TokenCounter
    from relayflow.providers.base import Provider
    from relayflow.schema.file import CompressSpec

STORE_ENV = "RELAYFLOW_STORE"


def _store(ctx: BuildContext) -> str | None:
    """The runner's store, else ``$RELAYFLOW_STORE``; None (or a SQLite database in memory,
    which another connection cannot see) means no registry."""
    from relayflow.store.database import is_memory

    url = ctx.store_url or os.environ.get(STORE_ENV) or None
    return None if url is None or is_memory(url) else url


async def step_template(config: InferenceConfig, ctx: BuildContext) -> PromptTemplate:
    """The step's template: its file, or the stored version a label pins (``file@label``);
    registered, with the workflow that uses it, when the step has a store."""
    if config.prompt_template is None:
        template = PromptTemplate(None, config.prompt or "")
        label = None
    else:
        file, label = split_pin(config.prompt_template)
        template = load_template(ctx.resolve(file))
    store = _store(ctx)
    if store is None:
        if label is not None:
            raise AgentError(
                f"step {config.name}: prompt_template {config.prompt_template} pins label "
                f"{label!r}, which lives in the run store: run with a store (--store or "
                f"${STORE_ENV})"
            )
        return template
    workflow = ctx.workflow.name if ctx.workflow is not None else "-"
    return await asyncio.to_thread(_register, store, config.name, template, label, workflow)


def _register(
    store: str, name: str, template: PromptTemplate, label: str | None, workflow: str
) -> PromptTemplate:
    from relayflow.prompts.registry import pinned_source, register_prompt
    from relayflow.store.registry import Registry

    with Registry(store, workflow=workflow) as registry:
        if label is not None:
            assert template.path is not None  # noqa: S101 - only a file can be pinned
            try:
                source = pinned_source(registry, name, label, template.path, workflow)
            except RelayflowError as exc:
                raise AgentError(f"step {name}: {exc}") from None
            template = PromptTemplate(template.path, source)
        register_prompt(registry, name, template, workflow)
    return template


class StepCompressor:
    """Compresses the handoff fields a step names (or every string longer than the budget)
    before its prompt is rendered. The tokens are the model's when its provider can count
    them (``count_tokens``), else `estimate_tokens`."""

    def __init__(self, spec: CompressSpec, template: PromptTemplate) -> None:
        from relayflow.prompts.compress import instruction_of

        self.spec = spec
        settings = spec.model_dump(mode="json")
        #: the settings' hash: in the step's versions, so lineage and the cache key change
        self.version = prompt_hash(json.dumps(settings, sort_keys=True))
        self._query = environment().from_string(spec.query) if spec.query is not None else None
        self._instruction = instruction_of(template.source)

    def _fields(self, data: Mapping[str, Any], count: TokenCounter) -> list[str]:
        if self.spec.fields is not None:
            return [f for f in self.spec.fields if isinstance(data.get(f), str)]
        budget = self.spec.max_tokens
        return [
            key
            for key, value in data.items()
            if isinstance(value, str) and (budget is None or count(value) > budget)
        ]

    async def apply(
        self, data: dict[str, Any], provider: Provider
    ) -> tuple[dict[str, Any], str | None]:
        """``data`` with its long fields compressed, and ``field:before>after,…`` (tokens) for
        the step's versions; None when nothing was compressed."""
        return await asyncio.to_thread(self._apply, data, provider)

    def _apply(self, data: dict[str, Any], provider: Provider) -> tuple[dict[str, Any], str | None]:
        from relayflow.prompts.compress import compress, estimate_tokens

        counter = getattr(provider, "count_tokens", None)
        count: TokenCounter = counter if callable(counter) else estimate_tokens
        fields = self._fields(data, count)
        if not fields:
            return data, None
        query = self._instruction
        if self._query is not None:
            try:
                query = self._query.render({"data": data, **data})
            except Exception as exc:  # an error in the user's query expression
                raise AgentError(f"compress.query: {type(exc).__name__}: {exc}") from exc
        out = dict(data)
        notes = []
        for field in fields:
            done = compress(
                data[field],
                max_tokens=self.spec.max_tokens,
                query=query,
                count=count,
                keep=self.spec.keep,
                method=self.spec.method,
            )
            out[field] = done.text
            notes.append(f"{field}:{done.tokens_before}>{done.tokens_after}")
        return out, ",".join(notes)
