"""Helpers of the command-line tests: workflows of real transform scripts in a project folder,
and `relayflow` invoked there through Typer's CliRunner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner, Result

from relayflow.cli import app
from relayflow.store.sql_store import SqlStore

#: a script that adds ``doubled``; items with ``bad`` fail
DOUBLE = """
def transform(record):
    if record.get("bad"):
        raise ValueError("bad item")
    return {**record, "doubled": record["n"] * 2}
"""

FINISH = """
def transform(record):
    return {**record, "done": True}
"""

LINEAR = """
name: numbers
workflow:
  - name: Double
    type: transform
    script: double.py
    run_in: inline
  - name: Finish
    type: transform
    script: finish.py
    run_in: inline
"""

REVIEWED = """
name: reviewed
workflow:
  - name: Label
    type: transform
    script: label.py
    run_in: inline
  - name: Review
    type: human_review
    when: "true"
    instructions: Check the label
    show: [label]
  - name: Finish
    type: transform
    script: finish.py
    run_in: inline
"""

LABEL = """
def transform(record):
    return {**record, "label": "spam"}
"""


class Cli:
    """A project folder (the current directory during the test) and `relayflow` in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store_path = folder / ".relayflow" / "runs.db"
        self._runner = CliRunner()

    def __call__(self, *args: object) -> Result:
        return self._runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def linear(self) -> Path:
        self.write("double.py", DOUBLE)
        self.write("finish.py", FINISH)
        return self.write("numbers.yaml", LINEAR)

    def reviewed(self) -> Path:
        self.write("label.py", LABEL)
        self.write("finish.py", FINISH)
        return self.write("reviewed.yaml", REVIEWED)

    @contextmanager
    def store(self) -> Iterator[SqlStore]:
        store = SqlStore(str(self.store_path))
        try:
            yield store
        finally:
            store.close()


def summary_value(text: str, name: str) -> str:
    """A value of the closing summary table (`│ failed │ 1 │`)."""
    match = re.search(rf"^\W*{re.escape(name)}\W+(\S+)", text, re.MULTILINE)
    assert match is not None, f"no {name!r} row in:\n{text}"
    return match.group(1).rstrip("│ ")


def batch_id_of(text: str) -> str:
    match = re.search(r"relayflow resume --batch (\w+)", text)
    assert match is not None, text
    return match.group(1)
