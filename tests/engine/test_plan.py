"""Tests of the plan: topological levels in file order, reviewers downstream, the compiled DAG."""

from __future__ import annotations

import graphlib
import textwrap
from pathlib import Path

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.human_review import HumanReviewConfig
from relayflow.agents.inference import InferenceConfig
from relayflow.agents.quality_check import QualityCheckConfig
from relayflow.agents.transform import TransformConfig
from relayflow.engine.plan import build_plan, reviewers_downstream, topological_levels
from relayflow.providers.base import Provider
from relayflow.schema.file import AgentConfig
from relayflow.schema.workflow import Workflow
from relayflow.spec.loader import load_spec


def _no_provider(alias: str) -> Provider:
    raise AssertionError(f"building a plan must not open a provider ({alias})")


# topological_levels


def test_levels_group_independent_agents() -> None:
    deps = {"load": (), "left": ("load",), "right": ("load",), "join": ("left", "right")}
    assert topological_levels(deps) == [["load"], ["left", "right"], ["join"]]


def test_levels_keep_file_order_not_alphabetical_order() -> None:
    deps = {"zeta": (), "alpha": (), "mid": (), "b": ("zeta",), "a": ("alpha",)}
    assert topological_levels(deps) == [["zeta", "alpha", "mid"], ["b", "a"]]


def test_an_agent_waits_for_its_slowest_dependency() -> None:
    deps = {"a": (), "b": ("a",), "c": ("b",), "d": ("a", "c"), "e": ("a",)}
    assert topological_levels(deps) == [["a"], ["b", "e"], ["c"], ["d"]]


def test_a_dependency_declared_below_still_comes_first() -> None:
    deps = {"report": ("fetch",), "fetch": ()}
    assert topological_levels(deps) == [["fetch"], ["report"]]


def test_a_single_agent_is_one_level() -> None:
    assert topological_levels({"only": ()}) == [["only"]]


def test_a_cycle_is_refused() -> None:
    # The loader reports cycles first; the plan must still never loop on one.
    with pytest.raises(graphlib.CycleError):
        topological_levels({"a": ("b",), "b": ("a",)})


# reviewers_downstream


def _agents(*specs: tuple[str, str]) -> tuple[AgentConfig, ...]:
    made: list[AgentConfig] = []
    for name, kind in specs:
        if kind == "human_review":
            made.append(HumanReviewConfig(name=name, type=kind))
        elif kind == "quality_check":
            made.append(QualityCheckConfig(name=name, type=kind))
        elif kind == "inference":
            made.append(InferenceConfig(name=name, type=kind, model="m", prompt="{{ data }}"))
        else:
            made.append(TransformConfig(name=name, type=kind, script="t.py"))
    return tuple(made)


def test_reviewers_downstream_are_found_through_other_agents() -> None:
    agents = _agents(
        ("classify", "inference"),
        ("check", "quality_check"),
        ("enrich", "transform"),
        ("review", "human_review"),
        ("publish", "transform"),
        ("audit", "human_review"),
    )
    deps = {
        "classify": (),
        "check": ("classify",),
        "enrich": ("check",),
        "review": ("enrich",),
        "publish": ("review",),
        "audit": ("publish",),
    }
    found = reviewers_downstream(agents, deps)
    assert set(found["classify"]) == {"review", "audit"}
    assert set(found["check"]) == {"review", "audit"}
    assert found["review"] == ("audit",)  # not itself
    assert found["publish"] == ("audit",)
    assert found["audit"] == ()


def test_reviewers_on_another_branch_do_not_count() -> None:
    agents = _agents(
        ("load", "transform"),
        ("score", "inference"),
        ("check", "quality_check"),
        ("review", "human_review"),
        ("side", "transform"),
    )
    deps = {
        "load": (),
        "score": ("load",),
        "check": ("score",),
        "review": ("check",),
        "side": ("load",),
    }
    found = reviewers_downstream(agents, deps)
    assert found["load"] == ("review",)
    assert found["check"] == ("review",)
    assert found["side"] == ()


def test_a_reviewer_reached_by_two_paths_is_listed_once() -> None:
    agents = _agents(
        ("a", "transform"), ("b", "transform"), ("c", "transform"), ("r", "human_review")
    )
    deps = {"a": (), "b": ("a",), "c": ("a",), "r": ("b", "c")}
    assert reviewers_downstream(agents, deps)["a"] == ("r",)


# build_plan on loaded workflows


def _load(tmp_path: Path, text: str) -> tuple[Workflow, BuildContext]:
    (tmp_path / "t.py").write_text("def transform(data):\n    return data\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(textwrap.dedent(text))
    wf = load_spec(path)
    ctx = BuildContext(base_dir=wf.base_dir, workflow_file=wf.file, get_provider=_no_provider)
    return wf, ctx


def test_a_diamond_plan_has_levels_sinks_and_no_fast_path(tmp_path: Path) -> None:
    wf, ctx = _load(
        tmp_path,
        """\
        workflow:
          - {name: start, type: transform, script: t.py}
          - {name: left, type: transform, script: t.py, depends_on: start}
          - {name: right, type: transform, script: t.py, depends_on: start}
          - {name: join, type: transform, script: t.py, depends_on: [left, right]}
          - {name: review, type: human_review, depends_on: start}
        """,
    )
    plan = build_plan(wf, ctx)
    assert [n.name for n in plan.nodes] == ["start", "left", "right", "join", "review"]
    assert plan.levels == ((0,), (1, 2, 4), (3,))
    assert plan.order == (0, 1, 2, 4, 3)
    assert plan.node("join").deps == (1, 2)
    assert plan.node("start").dependents == (1, 2, 4)
    assert plan.sinks == (3, 4)
    assert plan.linear is False
    assert plan.source is None  # the first agent is no retrieval


def test_a_chain_is_linear(tmp_path: Path) -> None:
    wf, ctx = _load(
        tmp_path,
        """\
        workflow:
          - {name: a, type: transform, script: t.py}
          - {name: b, type: transform, script: t.py}
          - {name: c, type: human_review}
        """,
    )
    plan = build_plan(wf, ctx)
    assert plan.levels == ((0,), (1,), (2,))
    assert plan.linear is True
    assert plan.sinks == (2,)
    with pytest.raises(KeyError):
        plan.node("missing")
