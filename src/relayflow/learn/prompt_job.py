"""The prompt retraining job: a new version of an inference step's prompt whose few-shot block
holds corrected reviews (input → corrected output), judged against production on the golden
set by running the step itself with each prompt."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from relayflow.agents.base import BuildContext
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.errors import AgentError, Conflict
from relayflow.eval.scoring import score
from relayflow.learn.card import GoldenScores, model_card
from relayflow.learn.data import Fields, LabelledRow, labelled_rows, wait_for_runs
from relayflow.learn.golden import split
from relayflow.learn.job import (
    MIN_GOLDEN,
    RetrainOutcome,
    RetrainRequest,
    Target,
    decide,
    fields_of,
    golden_file,
    golden_metric,
)
from relayflow.providers.base import Provider
from relayflow.schema.workflow import Workflow
from relayflow.store.registry import Candidate, Registry

#: at most this many corrected examples go into the few-shot block (the newest)
MAX_EXAMPLES = 5
#: golden items evaluated at once
CONCURRENCY = 4
BEGIN = "{# relayflow:few-shot begin #}"
END = "{# relayflow:few-shot end #}"
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)


def strip_examples(text: str) -> str:
    """The prompt without a few-shot block that an earlier retrain added."""
    return _BLOCK.sub("", text)


def template_fields(source: str) -> list[str]:
    """The handoff fields a template reads: top-level names and ``data.x`` / ``data['x']``."""
    from jinja2 import meta, nodes

    from relayflow.prompts.templates import environment

    ast = environment().parse(source)
    names = set(meta.find_undeclared_variables(ast)) - {"data", "confidence"}
    for attr in ast.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "data":
            names.add(attr.attr)
    for item in ast.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "data"
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            names.add(item.arg.value)
    return sorted(names)


def _inputs(row: LabelledRow, fields: Fields, used: Sequence[str]) -> dict[str, Any]:
    skip = {fields.output, f"{fields.output}_probabilities", fields.reference, fields.key}
    data = {k: v for k, v in row.inputs.items() if k not in skip}
    return {k: data[k] for k in used if k in data} if used else data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def with_examples(
    base: str, examples: Sequence[LabelledRow], fields: Fields, used: Sequence[str]
) -> str:
    """``base`` (without any earlier block) under a block of input → corrected output pairs.

    The block sits between Jinja comments (which render to nothing) and inside ``raw``, so an
    example's braces are never taken for template syntax."""
    lines = ["Examples of inputs and their correct output:", ""]
    for row in examples:
        example = f"Input: {_text(_inputs(row, fields, used))}\nOutput: {_text(row.label)}\n"
        if "endraw" in example:
            continue
        lines.append(example)
    body = "\n".join(lines)
    return f"{BEGIN}{{% raw %}}{body}\n{{% endraw %}}{END}\n{strip_examples(base)}"


async def evaluate_prompt(
    text: str,
    target: Target,
    workflow: Workflow,
    get_provider: Callable[[str], Provider],
    golden: Sequence[LabelledRow],
    metric: str,
    fields: Fields,
) -> float:
    """``metric`` of the step run with prompt ``text`` over the golden rows. An answer the step
    rejects (not a label, invalid JSON) counts as a wrong answer."""
    from relayflow.agents.inference import InferenceAgent

    config = target.step.model_copy(update={"prompt": text, "prompt_template": None})
    ctx = BuildContext(workflow.base_dir, workflow.file, get_provider)
    agent = InferenceAgent(config, ctx)
    await agent.prepare()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def answer(index: int, row: LabelledRow) -> Any:
        data = _inputs(row, fields, ())
        async with limit:
            try:
                result = await agent.run(
                    Handoff(data, run_id=f"golden-{index}"),
                    StepInfo(f"golden-{index}", config.name, 1),
                )
            except AgentError:
                return None
        return result.data.get(fields.output)

    try:
        predictions = await asyncio.gather(*(answer(i, r) for i, r in enumerate(golden)))
    finally:
        await agent.close()
    return score(metric, list(predictions), [row.label for row in golden]).value


async def retrain_prompt(
    request: RetrainRequest,
    target: Target,
    registry: Registry,
    get_provider: Callable[[str], Provider],
) -> RetrainOutcome:
    """Register a prompt with the newest corrected reviews as few-shot examples; promote it
    when it scores strictly better than production on the golden set."""
    workflow = request.workflow
    inline = None if target.path is not None else (target.step.prompt or "").encode("utf-8")
    if target.label is not None:  # a pinned step runs the labelled version, not the file
        pinned = await asyncio.to_thread(registry.labelled, target.name, target.label)
        inline = pinned.artifact.encode("utf-8")
    production = await asyncio.to_thread(
        registry.adopt, target.name, "prompt", target.path, content=inline
    )
    fields = fields_of(workflow, target)
    if request.wait_for:
        await asyncio.to_thread(wait_for_runs, registry.engine, target.step.name, request.wait_for)
    rows = await asyncio.to_thread(
        labelled_rows,
        registry.engine,
        workflow=workflow.name,
        step=target.step.name,
        fields=fields,
        runs=request.runs,
        since=request.since,
        limit=request.limit,
    )
    used = template_fields(strip_examples(production.artifact))
    parts = split(rows, fields=fields, golden_file=golden_file(workflow), needed=used)
    if len(parts.golden) < MIN_GOLDEN:
        raise Conflict(
            f"only {len(parts.golden)} golden rows ({parts.source}); {MIN_GOLDEN} are needed "
            "to judge a prompt: label more runs or set evaluate.golden"
        )
    corrected = list({row.key: row for row in parts.train if row.corrected}.values())
    if not corrected:
        raise Conflict(
            f"no corrected reviews of step {target.step.name} to learn from: correct some "
            "answers (relayflow review correct) or add labels (relayflow feedback add)"
        )
    examples = corrected[-MAX_EXAMPLES:]
    text = with_examples(production.artifact, examples, fields, used)
    metric = golden_metric(workflow, request)
    args = (target, workflow, get_provider, parts.golden, metric, fields)
    scores = GoldenScores(
        metric,
        candidate=await evaluate_prompt(text, *args),
        parent=await evaluate_prompt(production.artifact, *args),
        n=len(parts.golden),
        source=parts.source,
    )
    card = model_card(
        kind="prompt",
        workflow=workflow.name,
        target=target.name,
        parent=production.version,
        scores=scores,
        data={
            "examples": len(examples),
            "corrected_reviews": len(corrected),
            "golden_rows": len(parts.golden),
            "from": "corrected answers of step " + target.step.name,
        },
        trigger=request.trigger,
        details={"model": target.step.model, "fields": used},
    )
    registered = await asyncio.to_thread(
        registry.register,
        Candidate(
            target.name,
            "prompt",
            text.encode("utf-8"),
            target=target.path,
            parent=production.version,
            metrics={"golden": scores.as_dict()},
            card=card,
        ),
    )
    outcome = await asyncio.to_thread(
        decide, registry, target, registered.version, production.version, scores, len(examples)
    )
    if outcome.decision == "promoted" and target.label is None and target.path is not None:
        # the registry holds it; the user's file is never rewritten
        pin = f"prompt_template: {target.step.prompt_template}@production"
        outcome = dataclasses.replace(
            outcome, note=f"{outcome.note}; the step reads its file: pin `{pin}` to run it"
        )
    return outcome
