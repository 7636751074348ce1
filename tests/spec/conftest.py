"""Fixtures of the spec tests: the seed's folder, a folder with its files, and YAML writers."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.errors import Problem, SpecError
from relayflow.spec.loader import load_spec

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "spec"

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    """The seed's workflow.yaml (verbatim from DESIGN.md) with the three files it names."""
    folder = tmp_path / "customer_support"
    shutil.copytree(RESOURCES / "seed", folder)
    return folder


@pytest.fixture
def workdir(seed_dir: Path) -> Path:
    """A folder holding preprocess.py, templates/query_prompt.jinja and
    validators/schema_v2.json, with no workflow file yet."""
    (seed_dir / "workflow.yaml").unlink()
    return seed_dir


@pytest.fixture
def write(workdir: Path) -> Write:
    """``write(text, name="workflow.yaml")``: the dedented YAML written into ``workdir``.
    Line 1 of the file is the first line of the text (write it right after the quotes)."""

    def _write(text: str, name: str = "workflow.yaml") -> Path:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def problems(write: Write) -> Problems:
    """``problems(text)``: write the workflow, load it, and return the problems it raised."""

    def _problems(text: str) -> list[Problem]:
        path = write(text)
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
        return info.value.problems

    return _problems
