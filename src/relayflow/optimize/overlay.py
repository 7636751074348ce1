"""The chosen settings as an overlay workflow file (``extends:`` the optimized one): two variants,
``baseline`` (the workflow as written) and ``optimized``, weighted so that ``relayflow run`` runs
the chosen settings, or gives them a share for a gradual rollout (``relayflow variants
rollout``). A router whose threshold or order changed is written as a new alias, so the
baseline variant keeps the router as it was."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from relayflow.optimize.space import VARIANT, agent_overrides, model_overrides

if TYPE_CHECKING:
    from relayflow.optimize.points import Point
    from relayflow.optimize.search import Outcome
    from relayflow.optimize.space import Space
    from relayflow.schema.workflow import Workflow

BASELINE = "baseline"
OPTIMIZED = "optimized"
#: what a changed router's new alias ends with
SUFFIX = "_optimized"


def overlay_data(
    workflow: Workflow, space: Space, point: Point, path: Path, share: float = 1.0
) -> dict[str, Any]:
    """The overlay's sections for ``point``'s settings (``share``: the optimized variant's part
    of live traffic)."""
    knobs = {k.name: k for k in space.knobs}
    base_file = (workflow.extends or workflow.file).absolute()
    data: dict[str, Any] = {"extends": os.path.relpath(base_file, path.parent.absolute())}
    if workflow.extends is not None:
        # the optimized file is an overlay itself: keep what it adds (one level of extends)
        own = yaml.safe_load(workflow.file.read_text(encoding="utf-8")) or {}
        data.update({k: v for k, v in own.items() if k != "extends"})
    baseline_agents, chosen_agents = _variant_agents(workflow, space, point)
    for name, settings in agent_overrides(point.params, knobs, workflow.agents).items():
        chosen_agents.setdefault(name, {}).update(settings)
    models = dict(data.get("models") or {})
    renamed: dict[str, str] = {}
    for alias, entry in model_overrides(workflow, point.params, knobs).items():
        if _same(entry, workflow.spec.models[alias]):
            continue
        written = entry.model_dump(mode="json", exclude_defaults=True)
        written = {"provider": entry.provider, **written}
        if "candidates" in type(entry).model_fields:
            written["candidates"] = list(getattr(entry, "candidates", []))
        renamed[alias] = f"{alias}{SUFFIX}"
        models[renamed[alias]] = written
    for agent in workflow.agents:
        model = chosen_agents.get(agent.name, {}).get("model", getattr(agent, "model", None))
        if isinstance(model, str) and model in renamed:
            chosen_agents.setdefault(agent.name, {})["model"] = renamed[model]
    if models:
        data["models"] = models
    share = min(1.0, max(0.0, share))
    data["variants"] = [
        {"name": BASELINE, "weight": round(1.0 - share, 6), "agents": baseline_agents},
        {"name": OPTIMIZED, "weight": round(share, 6), "agents": chosen_agents},
    ]
    if not baseline_agents:
        del data["variants"][0]["agents"]
    return data


def _same(a: Any, b: Any) -> bool:
    return bool(a.model_dump(mode="json") == b.model_dump(mode="json"))


def _variant_agents(
    workflow: Workflow, space: Space, point: Point
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The overrides of the baseline's prompt variant and of the chosen one (copies)."""
    if not any(k.name == VARIANT for k in space.knobs):
        return {}, {}
    by_name = {v.name: v for v in workflow.spec.variants}
    first = workflow.spec.variants[0].name
    chosen = str(point.params.get(VARIANT, first))

    def copied(name: str) -> dict[str, dict[str, Any]]:
        variant = by_name.get(name)
        return {a: dict(s) for a, s in variant.agents.items()} if variant is not None else {}

    return copied(first), copied(chosen)


def overlay_text(
    workflow: Workflow, outcome: Outcome, point: Point, path: Path, share: float = 1.0
) -> str:
    """The overlay file's text: a header that says where it came from, then the sections."""
    data = overlay_data(workflow, outcome.space, point, path, share)
    holdout = outcome.holdout
    verdict = (
        ("recommended: " if holdout.recommended else "NOT recommended: ") + holdout.reason
        if holdout is not None
        else "not confirmed on the holdout split"
    )
    lines = [
        f"# Written by `relayflow optimize` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"# for {workflow.file.name}: trial {point.number} of {len(outcome.points)}.",
        f"# {verdict}",
        "# `relayflow run` on this file runs the `optimized` variant's share of the items with",
        "# the chosen settings; `relayflow variants rollout THIS_FILE optimized --step 0.25`",
        "# moves more traffic to it.",
    ]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(lines) + "\n" + body


def write_overlay(
    workflow: Workflow, outcome: Outcome, point: Point, path: Path, share: float = 1.0
) -> Workflow:
    """Write the overlay and load it back (what ``relayflow run`` will load)."""
    from relayflow.spec.loader import load_spec

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(overlay_text(workflow, outcome, point, path, share), encoding="utf-8")
    return load_spec(path)


def settings_text(params: Mapping[str, Any]) -> str:
    """``a=1, b=off`` for a point's knob values."""
    return ", ".join(f"{k}={'off' if v is None else _short(v)}" for k, v in params.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
