"""One runner factory: ``build_runner`` is the only place that calls the Runner constructor in
the package, the benchmarks and the examples, so a consumer configured in a workflow reaches
every command and the server."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import relayflow

ROOT = Path(__file__).resolve().parents[2]


def _runner_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "Runner":
                lines.append(node.lineno)
    return lines


def test_only_the_factory_calls_the_runner_constructor() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("src", "benchmarks", "examples")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in _runner_calls(path)
    }
    [factory] = [where for where in found if where.startswith("src/relayflow/engine/factory.py")]
    assert found == {factory}


def test_the_factory_is_public_and_builds_a_runner() -> None:
    from relayflow.engine.factory import build_runner

    assert relayflow.build_runner is build_runner


def test_a_runner_closes_the_consumers_it_owns_but_not_those_it_was_given(
    tmp_path: Path,
) -> None:
    from relayflow.consumers.base import ConfiguredConsumer, ConsumerContext
    from relayflow.engine.runner import Runner
    from relayflow.spec.loader import load_spec

    class Counting(ConfiguredConsumer):
        def __init__(self) -> None:
            super().__init__(None, ConsumerContext("w", tmp_path, tmp_path / "w.yaml"))
            self.closed = 0

        def handle(self, event: object) -> None:
            return None

        def close(self) -> None:
            self.closed += 1

    file = tmp_path / "w.yaml"
    file.write_text("workflow:\n  - {name: a, type: quality_check, min_confidence: 0}\n")
    given, owned = Counting(), Counting()
    runner = Runner(load_spec(file), consumers=[given], owned=[owned])
    assert runner.bus.consumers == [given, owned]

    async def main() -> None:
        async with runner:
            await runner.run({"x": 1})

    asyncio.run(main())
    assert (given.closed, owned.closed) == (0, 1)
