"""``relayflow retrain`` and ``relayflow models list|promote|rollback`` on a project folder whose
store holds real runs of a scikit-learn workflow; every user error is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relayflow.store.registry import Registry
from tests.cli.cli_support import Cli
from tests.learn import synthetic as syn

pytest.importorskip("sklearn", reason="scikit-learn (extra: sklearn) is missing")


@pytest.fixture
def project(cli: Cli) -> Path:
    """The synthetic fraud workflow (model trained on concept a) and 120 runs of concept b."""
    workflow = syn.project(cli.folder, trigger="manual")
    lines = "".join(json.dumps(row) + "\n" for row in syn.items(120, "b", seed=4))
    cli.write("items.jsonl", lines)
    result = cli("run", workflow.name, "--inputs", "items.jsonl", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    return workflow


def _versions(cli: Cli) -> list[dict[str, object]]:
    result = cli("models", "list", "fraud", "--json")
    assert result.exit_code == 0, result.output
    versions: list[dict[str, object]] = json.loads(result.stdout)
    return versions


def test_retrain_promotes_and_models_list_shows_the_history(cli: Cli, project: Path) -> None:
    model_file = cli.folder / "model" / "fraud.joblib"
    before = model_file.read_bytes()

    result = cli("retrain", project.name)

    assert result.exit_code == 0, result.output
    assert "decision" in result.stdout and "promoted" in result.stdout
    assert "golden f1" in result.stdout and "held out" in result.stdout
    versions = _versions(cli)
    assert [v["status"] for v in versions] == ["production", "archived"]
    candidate, base = versions
    assert candidate["parent"] == base["version"]
    assert model_file.read_bytes() != before

    table = cli("models", "list")
    assert table.exit_code == 0, table.output
    lines = [line for line in table.stdout.splitlines() if "fraud" in line]
    assert len(lines) == 2
    assert str(candidate["version"]) in lines[0] and "production" in lines[0]
    assert "f1 1.000" in lines[0] and str(base["version"]) in lines[1]


def test_retrain_as_json(cli: Cli, project: Path) -> None:
    result = cli("retrain", project.name, "--target", "Score", "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["decision"] == "promoted" and outcome["name"] == "fraud"
    assert outcome["golden"]["metric"] == "f1" and outcome["golden"]["n"] >= 5


def test_rollback_then_promote_by_hand(cli: Cli, project: Path) -> None:
    assert cli("retrain", project.name).exit_code == 0
    candidate, base = _versions(cli)
    model_file = cli.folder / "model" / "fraud.joblib"
    promoted = model_file.read_bytes()

    result = cli("models", "rollback", "fraud")
    assert result.exit_code == 0, result.output
    assert f"fraud rolled back to {base['version']} (was {candidate['version']})" in result.stderr
    assert [v["status"] for v in _versions(cli)] == ["archived", "production"]
    with Registry(str(cli.store_path)) as registry:
        base_file = Path(registry.get("fraud", str(base["version"])).artifact)
    assert model_file.read_bytes() == base_file.read_bytes() != promoted

    result = cli("models", "promote", "fraud", str(candidate["version"])[:5])
    assert result.exit_code == 0, result.output
    assert f"fraud {candidate['version']} is in production" in result.stderr
    assert model_file.read_bytes() == promoted
    assert [v["status"] for v in _versions(cli)] == ["production", "archived"]


def test_user_errors_are_one_line(cli: Cli, project: Path) -> None:
    cases = [
        (("models", "promote", "fraud", "nope"), "error: no version 'nope' of 'fraud'"),
        (("models", "rollback", "fraud"), "error: 'fraud' has no earlier production version"),
        (("models", "list", "--store", "other.db"), "error: no run store at other.db"),
        (
            ("retrain", project.name, "--target", "Feedback"),
            "error: retrain target 'Feedback' is not an inference step",
        ),
        (("retrain", "missing.yaml"), "error: missing.yaml: file not found"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_an_empty_registry_says_how_to_fill_it(cli: Cli, project: Path) -> None:
    result = cli("models", "list")
    assert result.exit_code == 0
    assert "no versions in the registry: run `relayflow retrain FILE`" in result.stdout
