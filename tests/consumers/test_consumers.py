"""Consumers by configuration: the ``consumers:`` section builds each entry through the registry
(built-in ``jsonl``, or a type an installed distribution adds by entry point), the factory
attaches it to the runner and the runner closes it; a bad entry is a problem at its line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from relayflow.consumers.jsonl import JsonlConsumer
from relayflow.engine.factory import build_runner
from relayflow.errors import SpecError
from relayflow.spec.loader import load_spec
from tests.consumers.plugin import install_tally

STEP = "def transform(record):\n    return {**record, 'n': record['n'] + 1}\n"


def workflow_file(folder: Path, consumers: str) -> Path:
    (folder / "step.py").write_text(STEP)
    path = folder / "counted.yaml"
    path.write_text(
        "name: counted\n"
        "workflow:\n"
        "  - {name: a, type: transform, script: step.py}\n"
        "  - {name: b, type: transform, script: step.py}\n"
        f"consumers:\n{consumers}"
    )
    return path


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return [str(p) for p in caught.value.problems]


class Seen:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def handle(self, event: Any) -> None:
        self.events.append(event)


async def run_once(path: Path, store: str | None = None, n: int = 1) -> Any:
    wf = load_spec(path)
    async with build_runner(wf, store=store) as runner:
        return await runner.run({"n": n})


def test_jsonl_appends_every_event_of_a_run_as_one_json_line_by_name(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, "  - {type: jsonl, path: events.jsonl}\n")
    result = asyncio.run(run_once(path))
    assert result.status == "succeeded"
    events = lines_of(tmp_path / "events.jsonl")
    assert [e["event"] for e in events] == [
        "run_started",
        *("step_started", "step_finished") * 2,
        "run_finished",
    ]
    assert {e["run_id"] for e in events} == {result.run_id}
    finished = events[2]
    assert (finished["step"], finished["output"], finished["attempt"]) == ("a", {"n": 2}, 1)
    assert set(finished["usage"]) >= {"input_tokens", "output_tokens", "cost"}
    assert events[-1]["status"] == "succeeded" and events[-1]["output"] == {"n": 3}


def test_jsonl_appends_across_runners_and_the_runner_closes_it(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, "  - {type: jsonl, path: events.jsonl}\n")
    wf = load_spec(path)

    async def main() -> JsonlConsumer:
        runner = build_runner(wf, store=str(tmp_path / "runs.db"))
        [consumer] = [c for c in runner.bus.consumers if isinstance(c, JsonlConsumer)]
        async with runner:
            await runner.run({"n": 1})
            assert not consumer.closed
        assert consumer.closed
        return consumer

    asyncio.run(main())
    asyncio.run(main())
    finished = [e for e in lines_of(tmp_path / "events.jsonl") if e["event"] == "run_finished"]
    assert len(finished) == 2


def test_the_callers_consumers_come_first_then_the_sections_in_order(tmp_path: Path) -> None:
    path = workflow_file(
        tmp_path,
        "  - {type: jsonl, path: one.jsonl}\n  - {type: jsonl, path: two.jsonl}\n",
    )
    seen = Seen()
    runner = build_runner(load_spec(path), consumers=[seen])
    consumers = runner.bus.consumers
    assert consumers[0] is seen
    assert [c.path.name for c in consumers[1:]] == ["one.jsonl", "two.jsonl"]  # type: ignore[attr-defined]
    asyncio.run(runner.close())


def test_a_consumer_type_from_an_installed_distribution_is_attached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(install_tally(tmp_path / "site")))
    path = workflow_file(tmp_path, "  - {type: tally, path: tally.txt}\n")
    result = asyncio.run(run_once(path))
    assert (tmp_path / "tally.txt").read_text() == f"{result.run_id} succeeded\n"


def test_a_misspelt_type_is_one_problem_at_its_line_with_the_type_it_meant(
    tmp_path: Path,
) -> None:
    path = workflow_file(tmp_path, "  - type: jsnl\n    path: e.jsonl\n")
    assert problems(path) == [
        f"{path}:6: consumers[0].type: unknown consumer type 'jsnl' — did you mean `jsonl`?"
    ]


def test_an_unknown_type_lists_the_known_ones(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, "  - {type: carrier-pigeon}\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:6: consumers[0].type: unknown consumer type")
    assert "use one of: " in problem and "jsonl" in problem


def test_a_bad_setting_is_a_problem_at_its_own_line(tmp_path: Path) -> None:
    path = workflow_file(
        tmp_path,
        "  - type: jsonl\n    pth: e.jsonl\n"
        "  - type: jsonl\n"
        "  - type: jsonl\n    path: no/e.jsonl\n",
    )
    assert problems(path) == [
        f"{path}:6: consumers[0].path: required field is missing — add `path: …`",
        f"{path}:7: consumers[0].pth: unknown field — did you mean `path`?",
        f"{path}:8: consumers[1].path: required field is missing — add `path: …`",
        f"{path}:10: consumers[2].path: folder not found: {tmp_path / 'no'} — create it or fix "
        "the path (relative to the YAML)",
    ]


def test_an_entry_that_is_not_a_mapping_is_a_problem(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, "  - jsonl\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:6: consumers[0]: input should be a valid dictionary")


def test_a_file_that_cannot_be_opened_is_an_error_at_the_entry_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = workflow_file(tmp_path, "  - {type: jsonl, path: events.jsonl}\n")
    wf = load_spec(path)
    (tmp_path / "events.jsonl").mkdir()  # after validation: the file became a folder
    with pytest.raises(SpecError) as caught:
        build_runner(wf)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (6, "consumers[0].path")
    assert "cannot open" in problem.message


def test_the_store_and_the_configured_consumers_see_the_same_events(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, "  - {type: jsonl, path: events.jsonl}\n")
    store = str(tmp_path / "runs.db")
    result = asyncio.run(run_once(path, store))
    from relayflow.store.sql_store import SqlStore

    reader = SqlStore(store)
    try:
        stored = [s.step for s in reader.steps(result.run_id)]
    finally:
        reader.close()
    events = lines_of(tmp_path / "events.jsonl")
    assert [e["step"] for e in events if e["event"] == "step_finished"] == stored == ["a", "b"]
