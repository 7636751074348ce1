"""What a retraining job is: its request, its target (a scikit-learn model or an inference step's
prompt), the data and golden set it judges by, and how it decides (promote, reject, unchanged).
The jobs themselves (sklearn_job.py, prompt_job.py) and the entry point (retrain.py) use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from relayflow.agents.inference import InferenceConfig
from relayflow.errors import ConfigError, Conflict
from relayflow.learn.card import GoldenScores
from relayflow.learn.data import Fields
from relayflow.schema.workflow import Workflow
from relayflow.store.registry import Kind, Registry

Decision = Literal["promoted", "rejected", "unchanged"]

#: fewer labelled rows than this to train on, or golden rows to judge by, and no job runs
MIN_TRAIN = 20
MIN_GOLDEN = 5


@dataclass(frozen=True, slots=True)
class Target:
    """What a retrain step improves: a scikit-learn model (registry name: its ``models:``
    alias) or the prompt of an inference step (registry name: the step)."""

    kind: Kind
    name: str
    step: InferenceConfig
    path: Path | None
    #: the label the step's template is pinned to (``reply.jinja@production``)
    label: str | None = None


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """One job. ``runs`` restricts the data to those runs (a drift window); ``since`` to the
    runs whose target step ended after that time; otherwise the newest ``limit`` labelled runs."""

    workflow: Workflow
    store: str
    target: str | None = None
    trigger: str = "manual"
    metric: str | None = None
    runs: tuple[str, ...] | None = None
    #: runs the job waits (briefly) to see in the store: the run store commits its log a
    #: moment after a step ends, and the newest runs are the point of a retrain
    wait_for: tuple[str, ...] = ()
    since: float | None = None
    limit: int = 5000
    artifacts: Path | None = None
    #: a labelled file (JSONL/CSV/…: the item and its label) to learn from besides the store's
    #: labels (a learned model's target only)
    history: Path | None = None


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """What a job decided, with the golden-set scores behind the decision."""

    name: str
    kind: str
    decision: Decision
    candidate: str
    parent: str
    production: str
    scores: GoldenScores
    train_rows: int
    golden_rows: int
    note: str = ""


def resolve_target(workflow: Workflow, target: str | None) -> Target:
    """The target named by ``target`` (a ``models:`` alias or an inference step), or the only
    inference step of the workflow."""
    steps = [a for a in workflow.agents if isinstance(a, InferenceConfig)]
    if target is None:
        if len(steps) != 1:
            names = ", ".join(s.name for s in steps) or "none"
            raise ConfigError(
                f"workflow {workflow.name!r} has {len(steps)} inference steps ({names}): set "
                "`target:` on the retrain step (or pass --target) to the one to retrain"
            )
        return _step_target(workflow, steps[0])
    by_name = {s.name: s for s in steps}
    if target in by_name:
        return _step_target(workflow, by_name[target])
    spec = workflow.spec.models.get(target)
    if spec is not None:
        if spec.refit is None:
            users = ", ".join(s.name for s in steps if s.model == target) or "the inference step"
            raise ConfigError(
                f"models.{target} is a {spec.provider} model, which relayflow cannot refit: "
                f"target the step that prompts it ({users}) to retrain its prompt"
            )
        if spec.refit == "learned":
            return _learned_target(workflow, target, steps)
        users_of = [s for s in steps if s.model == target and s.features is not None]
        if not users_of:
            raise ConfigError(
                f"no inference step scores with models.{target} (`model: {target}` and "
                "`features:`): add one, or target an inference step"
            )
        return _step_target(workflow, users_of[0])
    others = [a.name for a in workflow.agents if a.name == target]
    what = "is not an inference step" if others else "is neither a models: alias nor a step"
    known = ", ".join([*workflow.spec.models, *by_name]) or "none"
    raise ConfigError(f"retrain target {target!r} {what}: use one of {known}")


def learned_behind(workflow: Workflow, alias: str, seen: tuple[str, ...] = ()) -> list[str]:
    """The learned models an alias is or routes to (a router's candidates and fallbacks)."""
    spec = workflow.spec.models.get(alias)
    if spec is None or alias in seen:
        return []
    if spec.refit == "learned":
        return [alias]
    members = [
        *(getattr(spec, "candidates", None) or ()),
        *(getattr(spec, "fallbacks", None) or ()),
    ]
    found: list[str] = []
    for member in members:
        for name in learned_behind(workflow, str(member), (*seen, alias)):
            if name not in found:
                found.append(name)
    return found


def _learned_target(workflow: Workflow, alias: str, steps: Sequence[InferenceConfig]) -> Target:
    users = [s for s in steps if alias in learned_behind(workflow, s.model)]
    labelled = [s for s in users if s.output == "label" and s.features is None]
    if not labelled:
        raise ConfigError(
            f"no `output: label` step answers with models.{alias} (directly or through a "
            "router): a learned model learns one step's labels; use it in such a step"
        )
    spec = workflow.spec.models[alias]
    assert spec.model is not None  # noqa: S101 - validation requires model: on a learned entry
    return Target("learned", alias, labelled[0], workflow_path(workflow, spec.model))


def _step_target(workflow: Workflow, step: InferenceConfig) -> Target:
    spec = workflow.spec.models.get(step.model)
    learned = learned_behind(workflow, step.model)
    if learned and step.output == "label" and step.features is None:
        return _learned_target(workflow, learned[0], [step])
    if step.features is not None:
        if spec is None or spec.refit != "sklearn" or spec.model is None:
            raise ConfigError(
                f"step {step.name} scores with models.{step.model}, which is not a scikit-learn "
                "model file: only provider sklearn models can be refitted"
            )
        return Target("sklearn", step.model, step, workflow_path(workflow, spec.model))
    if step.prompt_template is None:
        return Target("prompt", step.name, step, None)
    from relayflow.prompts.templates import split_pin

    file, label = split_pin(step.prompt_template)
    return Target("prompt", step.name, step, workflow_path(workflow, file), label)


def workflow_path(workflow: Workflow, path: str) -> Path:
    """``path`` from the workflow file, absolute (a relative one starts at its folder)."""
    p = Path(path).expanduser()
    return (p if p.is_absolute() else workflow.base_dir / p).resolve()


def fields_of(workflow: Workflow, target: Target) -> Fields:
    """Where the target step's answer, the carried reference and the item id are."""
    evaluate = workflow.spec.evaluate
    if evaluate is None:
        return Fields(output=target.step.output_field)
    return Fields(output=target.step.output_field, reference=evaluate.reference, key=evaluate.key)


def golden_file(workflow: Workflow) -> Path | None:
    evaluate = workflow.spec.evaluate
    if evaluate is None or evaluate.golden is None:
        return None
    return workflow_path(workflow, evaluate.golden)


def golden_metric(workflow: Workflow, request: RetrainRequest) -> str:
    """The workflow's ``evaluate`` metric, else the retrain step's, else accuracy."""
    evaluate = workflow.spec.evaluate
    if evaluate is not None and "metric" in evaluate.model_fields_set:
        return evaluate.metric
    return request.metric or (evaluate.metric if evaluate is not None else "accuracy")


def check_sizes(train: Sequence[object], golden: Sequence[object], source: str) -> None:
    if len(golden) < MIN_GOLDEN:
        raise Conflict(
            f"only {len(golden)} golden rows ({source}); {MIN_GOLDEN} are needed to judge a "
            "candidate: label more runs (relayflow feedback add, reviews) or set evaluate.golden"
        )
    if len(train) < MIN_TRAIN:
        raise Conflict(
            f"only {len(train)} labelled runs to train on; {MIN_TRAIN} are needed: run more "
            "items that carry a reference, or label runs (relayflow feedback add, reviews)"
        )


def decide(
    registry: Registry,
    target: Target,
    candidate: str,
    parent: str,
    scores: GoldenScores,
    train_rows: int,
) -> RetrainOutcome:
    """Promote a strictly better candidate; reject any other (production stays as it is)."""
    name, kind = target.name, target.kind
    if candidate == parent:
        note = "the candidate is identical to production"
        return RetrainOutcome(
            name, kind, "unchanged", candidate, parent, parent, scores, train_rows, scores.n, note
        )
    note = (
        f"golden {scores.metric} {scores.candidate:.4f} vs {scores.parent:.4f} "
        f"({scores.n} rows, {scores.source})"
    )
    if scores.better:
        registry.promote(name, candidate, note=note)
        return RetrainOutcome(
            name, kind, "promoted", candidate, parent, candidate, scores, train_rows, scores.n, note
        )
    registry.reject(name, candidate, note=note)
    return RetrainOutcome(
        name, kind, "rejected", candidate, parent, parent, scores, train_rows, scores.n, note
    )
