"""The items ``relayflow optimize`` measures on: the dev split tunes the settings, the holdout
split confirms the chosen one. Read once from the workflow's source, in its order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.errors import Problem, SpecError

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow

#: source records read at most to find enough dev and holdout items
MAX_SCAN = 100_000


@dataclass(frozen=True, slots=True)
class Items:
    dev: tuple[Mapping[str, Any], ...]
    holdout: tuple[Mapping[str, Any], ...]
    #: how the split was made, in words
    how: str


async def split_items(workflow: Workflow, limit: int) -> Items:
    """The first ``limit`` dev items and the first ``limit`` holdout items of the source."""
    from relayflow.agents.formats import BadRecord
    from relayflow.engine.batch import source_agent
    from relayflow.engine.factory import build_runner
    from relayflow.learn.golden import held_out

    evaluate = workflow.spec.evaluate
    assert evaluate is not None  # noqa: S101 - readiness_problems ran first
    split = workflow.spec.optimize.split if workflow.spec.optimize is not None else None
    share = split.holdout if split is not None else None
    labels: dict[str, str] = {}
    if share is None:
        labels = _golden_labels(workflow)
    dev_label = split.dev if split is not None else "dev"
    holdout_label = split.holdout_label if split is not None else "holdout"
    dev: list[Mapping[str, Any]] = []
    holdout: list[Mapping[str, Any]] = []
    keyless = 0
    async with build_runner(workflow, store=None) as runner:
        agent = source_agent(runner, "a workflow to optimize reads its items from a source")
        records = agent.records()
        try:
            index = 0
            async for record in records:
                if index >= MAX_SCAN or (len(dev) >= limit and len(holdout) >= limit):
                    break
                index += 1
                if isinstance(record, BadRecord) or not isinstance(record, Mapping):
                    continue
                key = record.get(evaluate.key)
                if share is not None:
                    name = str(key if key is not None else index)
                    side = "holdout" if held_out(name, share) else "dev"
                else:
                    if key is None:
                        keyless += 1
                        continue
                    found = labels.get(str(key))
                    side = (
                        "dev" if found == dev_label else "holdout" if found == holdout_label else ""
                    )
                if side == "dev" and len(dev) < limit:
                    dev.append(record)
                elif side == "holdout" and len(holdout) < limit:
                    holdout.append(record)
        finally:
            close = getattr(records, "aclose", None)
            if close is not None:
                await close()
    if share is not None:
        how = f"{share:.0%} of the items held out by a hash of their {evaluate.key!r}"
    else:
        how = f"the golden set's {split.field if split else 'split'!r} field"
    if not dev or not holdout:
        raise SpecError([_empty(workflow, "dev" if not dev else "holdout", keyless, how)])
    return Items(tuple(dev), tuple(holdout), how)


def _golden_labels(workflow: Workflow) -> dict[str, str]:
    """Each golden record's split label, by its key."""
    from relayflow.agents.formats import READERS, format_of

    evaluate = workflow.spec.evaluate
    assert evaluate is not None and evaluate.golden is not None  # noqa: S101 - readiness
    split = workflow.spec.optimize.split if workflow.spec.optimize is not None else None
    field = split.field if split is not None else "split"
    path = workflow.base_dir / evaluate.golden
    labels: dict[str, str] = {}
    with open(path, "rb") as raw:
        for record in READERS[format_of(str(path), None)](raw, str(path)):
            if isinstance(record, Mapping) and record.get(evaluate.key) is not None:
                value = record.get(field)
                if value is not None:
                    labels[str(record[evaluate.key])] = str(value)
    return labels


def _empty(workflow: Workflow, side: str, keyless: int, how: str) -> Problem:
    evaluate = workflow.spec.evaluate
    key = evaluate.key if evaluate is not None else "id"
    where = str(workflow.extends or workflow.file)
    line = workflow.lines.line_of(("evaluate",))
    if keyless:
        return Problem(
            where,
            line,
            "evaluate.key",
            f"{keyless} source records have no {key!r} field, so none can be matched "
            "with the golden set's split before it runs",
            "give the source records the key the golden set uses, or add "
            "`optimize: {split: {holdout: 0.3}}` to split the items by position",
        )
    return Problem(
        where,
        line,
        "evaluate",
        f"no {side} items: no record of the source falls in the {side} split ({how})",
        "check that the golden set's keys are the source records' keys, or change optimize.split",
    )
