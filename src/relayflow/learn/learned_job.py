"""The learned-model job: fit a label model (providers/text_labels.py) on what people labelled
for a step — approved and corrected reviews, ``relayflow feedback add``, and a labelled history
file — score it and production on the golden holdout, and promote it only when it is strictly
better. Labels an item merely carries are not learned from (in many workflows the field that
would carry one is the step's own answer), and no golden holdout row is ever trained on.

The golden rows are the workflow's golden file (its ``holdout`` split when the file has a
``split`` field) with their inputs from the store's runs or the history; when fewer than
`MIN_GOLDEN` of them can be read, a fixed share of the labelled rows held out by a hash of their
key judges instead (the same share every time, never trained on)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from relayflow.agents.inference_text import item_text, telling_fields, text_fields
from relayflow.errors import Conflict
from relayflow.eval.scoring import score
from relayflow.eval.stats import bootstrap_ci
from relayflow.learn.card import GoldenScores, model_card
from relayflow.learn.data import Fields, labelled_rows, read_records, wait_for_runs
from relayflow.learn.golden import HOLDOUT_SHARE, held_out
from relayflow.learn.job import (
    MIN_GOLDEN,
    RetrainOutcome,
    RetrainRequest,
    Target,
    decide,
    fields_of,
    golden_file,
    golden_metric,
    workflow_path,
)
from relayflow.providers.text_labels import Featurizer
from relayflow.schema.workflow import Workflow
from relayflow.store.registry import Candidate, Registry

#: the label sources a learned model learns from (a person's, or the user's history)
SOURCES = ("review", "manual", "history")
#: the split of a golden file that judges promotions (the other rows may be trained on)
HOLDOUT = "holdout"
#: fewer labelled rows than this and no job runs (a model needs two labels it saw enough of)
MIN_TRAIN = 6


@dataclass(frozen=True, slots=True)
class Example:
    key: str
    text: str
    label: str
    source: str


def retrain_learned(request: RetrainRequest, target: Target, registry: Registry) -> RetrainOutcome:
    """Blocking: meant for a worker thread (`run_retrain` puts it there)."""
    from relayflow.providers.text_labels import TextLabelModel

    assert target.path is not None  # noqa: S101 - invariant: a learned target names its model file
    workflow = request.workflow
    spec = workflow.spec.models[target.name]
    fields = fields_of(workflow, target)
    examples = _examples(request, target, registry, fields)
    golden_labels, golden_split = _golden_labels(workflow, fields)
    train = [e for e in examples if e.key not in golden_labels]
    golden = _golden(examples, golden_labels)
    source = f"file: {golden_file(workflow)}" + (f" ({HOLDOUT} split)" if golden_split else "")
    if len(golden) < MIN_GOLDEN:
        golden = [e for e in train if held_out(e.key)]
        train = [e for e in train if not held_out(e.key)]
        source = f"held out: {HOLDOUT_SHARE:.0%} of the labelled rows by key"
    if len(golden) < MIN_GOLDEN or len(train) < MIN_TRAIN:
        raise Conflict(
            f"only {len(train)} labelled rows to learn from and {len(golden)} to judge by "
            f"({source}); {MIN_TRAIN} and {MIN_GOLDEN} are needed: review more items, add "
            "labels (relayflow feedback add) or point --history at a labelled file"
        )
    featurizer: Featurizer = getattr(spec, "featurizer", "wordllama")
    min_per_label = int(getattr(spec, "min_per_label", 3))
    candidate = TextLabelModel(featurizer, min_per_label=min_per_label)
    candidate.fit([e.text for e in train], [e.label for e in train])
    if candidate.abstains:
        raise Conflict(
            f"no two labels have {min_per_label} examples each among the {len(train)} labelled "
            f"rows ({dict(Counter(e.label for e in train).most_common(5))}): label more items"
        )
    production = registry.production(target.name)
    if production is None and target.path.is_file():
        production = registry.adopt(target.name, "learned", target.path)
    parent: TextLabelModel | None = None
    if production is not None:
        parent = TextLabelModel.from_bytes(Path(production.artifact).read_bytes())
    metric = golden_metric(workflow, request)
    texts, truth = [e.text for e in golden], [e.label for e in golden]
    mine = [a.label for a in candidate.predict(texts)]
    theirs = [a.label for a in parent.predict(texts)] if parent is not None else [None] * len(texts)
    scores = GoldenScores(
        metric,
        candidate=score(metric, mine, truth).value,
        parent=score(metric, theirs, truth).value,
        n=len(golden),
        source=source,
    )
    content = candidate.to_bytes()
    card = model_card(
        kind="learned",
        workflow=workflow.name,
        target=target.name,
        parent=production.version if production is not None else None,
        scores=scores,
        data={
            "train_rows": len(train),
            "golden_rows": len(golden),
            "label_sources": dict(Counter(e.source for e in train)),
            "per_label": dict(sorted(candidate.counts.items())),
            "not_learned": candidate.skipped,
            "from": "labels people gave step " + target.step.name,
        },
        trigger=request.trigger,
        details={
            "featurizer": featurizer,
            "min_per_label": min_per_label,
            "labels": list(candidate.labels),
            "golden_interval": _intervals(mine, theirs, truth),
            "coverage": sum(label is not None for label in mine) / len(mine),
        },
        packages=("scikit-learn", "skops", "wordllama"),
    )
    registered = registry.register(
        Candidate(
            target.name,
            "learned",
            content,
            target=target.path,
            parent=production.version if production is not None else None,
            metrics={"golden": scores.as_dict()},
            card=card,
        )
    )
    parent_version = production.version if production is not None else "none"
    return decide(registry, target, registered.version, parent_version, scores, len(train))


def _examples(
    request: RetrainRequest, target: Target, registry: Registry, fields: Fields
) -> list[Example]:
    """The texts and labels to learn from: the store's, then the history file's; the newest
    label of a key wins."""
    workflow = request.workflow
    step = target.step
    variables: Sequence[str] = ()
    if step.features is None:
        variables = _template_variables(workflow, target)
    names = text_fields(step.input_fields, variables)
    exclude = telling_fields(step.output_field, workflow.spec.evaluate)
    found: dict[str, Example] = {}
    if request.history is not None:
        from relayflow.learn.history import read_history

        history = read_history(request.history, workflow, step.name, fields)
        for hrow in history.rows:
            text = item_text(names, hrow.inputs, exclude)
            found[hrow.key] = Example(hrow.key, text, str(hrow.label), "history")
    if request.wait_for:
        wait_for_runs(registry.engine, step.name, request.wait_for)
    rows = labelled_rows(
        registry.engine,
        workflow=workflow.name,
        step=step.name,
        fields=fields,
        runs=request.runs,
        since=request.since,
        limit=request.limit,
    )
    for row in rows:
        if row.source not in SOURCES or not isinstance(row.label, str | int | bool):
            continue
        found[row.key] = Example(
            row.key, item_text(names, row.inputs, exclude), str(row.label), row.source
        )
    return [e for e in found.values() if e.text.strip()]


def _template_variables(workflow: Workflow, target: Target) -> Sequence[str]:
    from relayflow.prompts.templates import PromptTemplate, load_template, split_pin

    step = target.step
    if step.prompt_template is not None:
        file, _label = split_pin(step.prompt_template)
        return load_template(workflow_path(workflow, file)).variables
    return PromptTemplate(None, step.prompt or "").variables


def _golden_labels(workflow: Any, fields: Fields) -> tuple[dict[str, str], bool]:
    """The expected label of each of the golden file's holdout rows by key (all its rows when
    it has no split), and whether the file had a split."""
    path = golden_file(workflow)
    if path is None:
        return {}, False
    records = read_records(path)
    has_split = any("split" in r for r in records)
    labels = {
        str(r[fields.key]): str(r[fields.reference])
        for r in records
        if r.get(fields.key) is not None
        and r.get(fields.reference) is not None
        and (not has_split or r.get("split") == HOLDOUT)
    }
    return labels, has_split


def _golden(examples: Sequence[Example], labels: dict[str, str]) -> list[Example]:
    """The golden rows whose inputs are known, each with the golden file's label."""
    return [replace(e, label=labels[e.key], source="golden") for e in examples if e.key in labels]


def _intervals(mine: list[Any], theirs: list[Any], truth: list[str]) -> dict[str, list[float]]:
    """95 % bootstrap intervals of both accuracies on the golden rows."""
    out = {}
    for name, answers in (("candidate", mine), ("parent", theirs)):
        hits = [float(a is not None and a == t) for a, t in zip(answers, truth, strict=True)]
        low, high = bootstrap_ci(hits)
        out[name] = [round(low, 4), round(high, 4)]
    return out
