"""Property tests of the loader: DAGs load in order, cycles are named, junk is a SpecError."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relayflow.engine.plan import topological_levels
from relayflow.errors import SpecError
from relayflow.schema.workflow import Workflow
from relayflow.spec.loader import load_spec_text

SETTINGS = settings(max_examples=60, deadline=None)
NAMES = st.text(alphabet="abxy_", min_size=1, max_size=3)

Agents = list[tuple[str, list[str] | None]]  # name and depends_on (None: the agent above)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example, holding the script the generated agents name."""
    path = tmp_path_factory.mktemp("props")
    (path / "t.py").write_text("def transform(data):\n    return data\n")
    return path


@st.composite
def dags(draw: st.DrawFn) -> Agents:
    """Agents in file order; each depends only on agents above it (or on the one above)."""
    names = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    agents: Agents = []
    for index, name in enumerate(names):
        above = st.lists(st.sampled_from(names[:index]), unique=True) if index else st.just([])
        agents.append((name, draw(st.none() | above)))
    return agents


@st.composite
def graphs(draw: st.DrawFn) -> Agents:
    """Like ``dags``, but a dependency may point at any other agent, below it too."""
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    agents: Agents = []
    for name in names:
        others = [n for n in names if n != name]
        deps = st.lists(st.sampled_from(others), unique=True, max_size=3) if others else st.just([])
        agents.append((name, draw(st.none() | deps)))
    return agents


def _yaml(agents: Agents) -> str:
    entries: list[dict[str, Any]] = []
    for name, deps in agents:
        entry: dict[str, Any] = {"name": name, "type": "transform", "script": "t.py"}
        if deps is not None:
            entry["depends_on"] = deps
        entries.append(entry)
    return yaml.safe_dump({"workflow": entries}, sort_keys=False)


def _expected_deps(agents: Agents) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(deps) if deps is not None else ((agents[i - 1][0],) if i else ())
        for i, (name, deps) in enumerate(agents)
    }


def _is_acyclic(deps: dict[str, tuple[str, ...]]) -> bool:
    """Kahn's algorithm, written here so the test does not trust graphlib twice."""
    remaining = {name: set(ds) for name, ds in deps.items()}
    while remaining:
        free = [name for name, ds in remaining.items() if not ds]
        if not free:
            return False
        for name in free:
            del remaining[name]
        for ds in remaining.values():
            ds.difference_update(free)
    return True


@SETTINGS
@given(agents=dags())
def test_random_dags_load_and_order_every_agent_after_its_dependencies(
    folder: Path, agents: Agents
) -> None:
    wf = load_spec_text(_yaml(agents), folder / "workflow.yaml")
    names = [name for name, _ in agents]
    assert [a.name for a in wf.agents] == names
    assert wf.depends_on == _expected_deps(agents)

    levels = topological_levels(wf.depends_on)
    flat = [name for level in levels for name in level]
    assert sorted(flat) == sorted(names) and len(flat) == len(names)  # each exactly once
    level_of = {name: i for i, level in enumerate(levels) for name in level}
    for name, deps in wf.depends_on.items():
        # after all its dependencies, and as early as they allow
        assert all(level_of[d] < level_of[name] for d in deps)
        assert level_of[name] == max((level_of[d] + 1 for d in deps), default=0)
    for level in levels:
        assert level == sorted(level, key=names.index)  # file order within a level


@SETTINGS
@given(agents=graphs())
def test_random_graphs_load_or_name_a_real_cycle(folder: Path, agents: Agents) -> None:
    deps = _expected_deps(agents)
    try:
        wf: Workflow | None = load_spec_text(_yaml(agents), folder / "workflow.yaml")
    except SpecError as exc:
        wf = None
        [problem] = exc.problems
        assert "cycle" in problem.message
        match = re.fullmatch(r"cycle: (.+) \(each depends on the next\)", problem.message)
        assert match is not None
        cycle = match.group(1).split(" -> ")
        assert cycle[0] == cycle[-1] and len(cycle) >= 3
        assert all(b in deps[a] for a, b in zip(cycle, cycle[1:], strict=False))
        assert problem.field == f"{cycle[0]}.depends_on"
    assert (wf is not None) == _is_acyclic(deps)
    if wf is not None:
        assert sum(len(level) for level in topological_levels(wf.depends_on)) == len(agents)


def _check_problems_only(text: str, folder: Path) -> None:
    try:
        load_spec_text(text, folder / "workflow.yaml")
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message.strip()
            assert isinstance(problem.line, int) and problem.line >= 0
            assert str(problem)


YAML_BITS = [
    "workflow:", "- ", "  ", "\n", ": ", "name: a", "name: b", "type: transform", "type: inference",
    "type: quality_check", "type: retrieval", "type: human_review", "script: t.py", "depends_on: ",
    "[a, b]", "{", "}", "[", "]", ",", "&x ", "*x", "<<: ", "!!int ", "!!str ", "!!binary ", "'",
    '"', "#", "? ", "---", "...", "|", ">", "%YAML 1.1", "2020-13-45", "retry: ", "attempts: ",
    "timeout: -1", "prompt: '{{ x'", "ruleset: t.py", "source: .", "models:", "defaults:", "\t",
    "~", "null", "1e9", "0x1F", ".nan", "é", "\x00", "\ufeff",
]  # fmt: skip


@SETTINGS
@given(text=st.text(alphabet=string.printable, max_size=200))
def test_random_text_gives_only_spec_errors(folder: Path, text: str) -> None:
    _check_problems_only(text, folder)


@SETTINGS
@given(text=st.lists(st.sampled_from(YAML_BITS), max_size=40).map("".join))
@example(text="!!int ")  # PyYAML raised IndexError for an empty tagged int
@example(text="workflow: &x [*x]")  # a list that contains itself
def test_random_yaml_fragments_give_only_spec_errors(folder: Path, text: str) -> None:
    _check_problems_only(text, folder)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["t.py", "transform", "inference", "a", "b", "{{ data.x }}", "label"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "name", "type", "depends_on", "script", "retry", "timeout", "model", "prompt",
    "prompt_template", "output", "labels", "ruleset", "min_confidence", "source", "when",
    "trigger", "attempts", "output_schema",
]  # fmt: skip
AGENTS = st.lists(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)
    | st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c"]), "type": st.sampled_from(["transform", "x"])},
        optional={"script": VALUES, "depends_on": VALUES, "retry": VALUES, "timeout": VALUES},
    ),
    max_size=5,
)


@SETTINGS
@given(workflow=VALUES)
def test_random_nested_values_under_workflow_give_only_spec_errors(
    folder: Path, workflow: Any
) -> None:
    _check_problems_only(yaml.safe_dump({"workflow": workflow}), folder)


@SETTINGS
@given(workflow=AGENTS, extra=st.dictionaries(st.sampled_from(["models", "defaults"]), VALUES))
def test_random_agent_shaped_entries_give_only_spec_errors(
    folder: Path, workflow: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    _check_problems_only(yaml.safe_dump({**extra, "workflow": workflow}), folder)
