"""Rolling out a winner: the new shares, and the workflow file rewritten with only its weight
values changed (comments, order and layout kept), validated before it replaces the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayflow.ab.rollout import rollout, rollout_shares, set_weights
from relayflow.errors import RelayflowError, SpecError
from relayflow.schema.file import VariantSpec
from relayflow.spec.loader import load_spec
from relayflow.spec.variants import weights

WORKFLOW = """\
name: numbers   # a comment that must stay
workflow:
  - name: Double
    type: transform
    script: double.py
    run_in: inline

# the experiment
variants:
  - name: control        # the workflow as written
    weight: 0.5          # half the traffic
  - name: fast
    weight: '0.5'
    agents:
      Double: {run_in: thread}
  - {name: flow, agents: {Double: {run_in: auto}}}
  - name: bench_only
    description: no weight line yet
"""


def arms(*given: float | None) -> list[VariantSpec]:
    return [VariantSpec(name=f"v{i}", weight=w) for i, w in enumerate(given)]


def test_a_step_raises_the_winner_and_keeps_the_others_ratios() -> None:
    after = rollout_shares(arms(0.5, 0.3, 0.2), "v2", step=0.25)
    assert after == pytest.approx([0.5 * 0.55 / 0.8, 0.3 * 0.55 / 0.8, 0.45])
    assert rollout_shares(arms(0.5, 0.5), "v1", step=0.75) == pytest.approx([0.0, 1.0])
    assert rollout_shares(arms(1, 3), "v0", to=1.0) == pytest.approx([1.0, 0.0])
    # the winner had everything: what it gives up is shared equally
    assert rollout_shares(arms(0, 1, 0), "v1", to=0.5) == pytest.approx([0.25, 0.5, 0.25])


@pytest.mark.parametrize(
    ("winner", "options", "message"),
    [
        ("nope", {"step": 0.25}, "no variant 'nope' — use one of: v0, v1"),
        ("v0", {}, "give either a step"),
        ("v0", {"step": 0.25, "to": 1.0}, "give either a step"),
        ("v0", {"step": 0.0}, "--step must be above 0"),
        ("v0", {"to": 1.5}, "--to must be between 0 and 1"),
    ],
)
def test_bad_rollouts_are_refused(winner: str, options: dict[str, float], message: str) -> None:
    with pytest.raises(RelayflowError, match=message):
        rollout_shares(arms(0.5, 0.5), winner, **options)


def test_only_the_weight_values_change_in_the_text() -> None:
    edited = set_weights(WORKFLOW, ["0.25", "0.75", "0", "0"])
    assert edited.splitlines() == [
        "name: numbers   # a comment that must stay",
        "workflow:",
        "  - name: Double",
        "    type: transform",
        "    script: double.py",
        "    run_in: inline",
        "",
        "# the experiment",
        "variants:",
        "  - name: control        # the workflow as written",
        "    weight: 0.25          # half the traffic",
        "  - name: fast",
        "    weight: 0.75",
        "    agents:",
        "      Double: {run_in: thread}",
        "  - {name: flow, weight: 0, agents: {Double: {run_in: auto}}}",
        "  - name: bench_only",
        "    weight: 0",
        "    description: no weight line yet",
    ]


def test_rollout_rewrites_the_file_and_it_still_loads(tmp_path: Path) -> None:
    (tmp_path / "double.py").write_text("def transform(r):\n    return r\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW)
    done = rollout(path, "fast", step=0.25)
    assert done.variants == ("control", "fast", "flow", "bench_only")
    assert done.before == pytest.approx((0.5, 0.5, 0.0, 0.0))
    assert done.after == pytest.approx((0.25, 0.75, 0.0, 0.0))
    assert "# half the traffic" in path.read_text()
    assert weights(load_spec(path).spec.variants) == pytest.approx([0.25, 0.75, 0, 0])
    rollout(path, "fast", to=1.0)
    assert weights(load_spec(path).spec.variants) == pytest.approx([0, 1, 0, 0])
    assert path.read_text().count("weight:") == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_file_that_does_not_load_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW)  # double.py is missing
    with pytest.raises(SpecError):
        rollout(path, "fast", step=0.25)
    assert path.read_text() == WORKFLOW
