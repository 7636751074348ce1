"""`validate` rejects what building a run rejects: each case here is refused by load_spec at its
line, and the same settings, built into agents directly (no validation), fail in ``prepare``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from relayflow.agents.base import BuildContext
from relayflow.agents.registry import agent_class
from relayflow.errors import Problem, RelayflowError
from relayflow.providers.registry import build_provider
from relayflow.schema.file import WorkflowSpec
from relayflow.spec.loader import load_spec

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]


def _transform(script: str, *extra: str) -> str:
    lines = "".join(f"    {line}\n" for line in extra)
    return f"workflow:\n  - name: t\n    type: transform\n    script: {script}\n{lines}"


def _inference(*extra: str) -> str:
    lines = "".join(f"    {line}\n" for line in extra)
    return f"workflow:\n  - name: ask\n    type: inference\n    model: m\n{lines}"


def _prepare(path: Path) -> None:
    """Build every agent of the workflow at ``path`` without validating the file, and prepare
    it, as `relayflow run` does (models from the file's ``models:``)."""
    data = yaml.safe_load(path.read_text())
    spec = WorkflowSpec.model_validate(data)
    ctx = BuildContext(
        base_dir=path.parent,
        workflow_file=None,
        get_provider=lambda alias: build_provider(alias, spec.models.get(alias), path.parent),
    )

    async def prepare_all() -> None:
        for raw in data["workflow"]:
            cls = agent_class(raw["type"])
            agent = cls(cls.Config.model_validate(raw), ctx)
            try:
                await agent.prepare()
            finally:
                await agent.close()

    asyncio.run(prepare_all())


#: (files to write beside the workflow, the workflow, its problem's line, field, message start)
CASES: dict[str, tuple[dict[str, str], str, int, str, str]] = {
    "script with a syntax error": (
        {"bad.py": "def transform(record):\n    return {record\n"},
        _transform("bad.py"),
        4,
        "t.script",
        "{dir}/bad.py:2: syntax error: ",
    ),
    "script that is no Python file": (
        {"passwd": "root:x:0:0:root:/root:/bin/bash\n"},
        _transform("passwd"),
        4,
        "t.script",
        "not a Python file: {dir}/passwd",
    ),
    "script that only the compiler rejects": (
        {"ret.py": "return 1\ndef transform(record):\n    return record\n"},
        _transform("ret.py"),
        4,
        "t.script",
        "{dir}/ret.py:1: syntax error: 'return' outside function",
    ),
    "script without its function": (
        {"other.py": "def transformer(record):\n    return record\n"},
        _transform("other.py"),
        4,
        "t.function",
        "{dir}/other.py defines no transform()",
    ),
    "function: naming nothing": (
        {"ok.py": "def transform(record):\n    return record\n"},
        _transform("ok.py", "function: go"),
        5,
        "t.function",
        "{dir}/ok.py defines no go()",
    ),
    "async function run in a thread": (
        {"aio.py": "async def transform(record):\n    return record\n"},
        _transform("aio.py", "run_in: thread"),
        5,
        "t.run_in",
        "transform is async def",
    ),
    "prompt file with an unknown filter": (
        {"p.jinja": "Hello\n{{ name | shout }}\n"},
        _inference("prompt_template: p.jinja"),
        2,
        "ask.prompt_template",
        "template error: No filter named 'shout'",
    ),
    "inline prompt with an unknown test": (
        {},
        _inference("prompt: '{{ x is loud }}'"),
        5,
        "ask.prompt",
        "template error: No test named 'loud'",
    ),
    "prompt and prompt_template both": (
        {"p.jinja": "Hello {{ name }}\n"},
        _inference("prompt_template: p.jinja", "prompt: Hi"),
        6,
        "ask.prompt",
        "set both with prompt_template",
    ),
    "calibrate without labels": (
        {},
        _inference("prompt: Hi", "calibrate: true"),
        6,
        "ask.calibrate",
        "calibrate: true works on output: label only",
    ),
    "sklearn model without a file": (
        {},
        "models:\n  m:\n    provider: sklearn\n" + _inference("features: [a]"),
        2,
        "models.m.model",
        "provider 'sklearn' needs `model:`",
    ),
    "openai model without a name": (
        {},
        "models:\n  m:\n    provider: openai\n" + _inference("prompt: Hi"),
        2,
        "models.m.model",
        "provider 'openai' needs `model:`",
    ),
    "schedule trigger without a schedule": (
        {},
        "workflow:\n  - name: r\n    type: retrain\n    trigger: schedule\n",
        4,
        "r.schedule",
        "trigger: schedule needs a schedule",
    ),
    "schedule that is not one": (
        {},
        "workflow:\n  - name: r\n    type: retrain\n    trigger: schedule\n"
        "    schedule: every blue moon\n",
        5,
        "r.schedule",
        "'every blue moon' is not a schedule",
    ),
    "review condition with an unknown filter": (
        {},
        "workflow:\n  - name: h\n    type: human_review\n    when: 'x | loud'\n",
        4,
        "h.when",
        "expression error: No filter named 'loud'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_rejects_what_prepare_rejects(
    problems: Problems, write: Write, workdir: Path, case: str
) -> None:
    files, text, line, field, message = CASES[case]
    for name, body in files.items():
        write(body, name)
    found = problems(text)
    [problem] = [p for p in found if p.field == field]
    assert problem.message.startswith(message.format(dir=workdir)), problem
    assert problem.line == line
    # the same settings, unvalidated, fail when the run builds them
    with pytest.raises(RelayflowError):
        _prepare(workdir / "workflow.yaml")


def test_etc_passwd_as_a_script_is_refused_as_the_issue_wrote_it(problems: Problems) -> None:
    [problem] = problems(_transform("/etc/passwd"))
    assert (problem.line, problem.field) == (4, "t.script")
    assert problem.message == "not a Python file: /etc/passwd"


@pytest.mark.parametrize(
    "script",
    [
        "def transform(record):\n    return record\n",
        "from json import loads as transform\n",
        "import os\ntry:\n    from fast import transform\nexcept ImportError:\n"
        "    def transform(record):\n        return record\n",
        "transform = lambda record: record\n",
        "class Step:\n    def __call__(self, record):\n        return record\ntransform = Step()\n",
        "from helpers import *\n",  # may define it: only importing can tell
        "def __getattr__(name):\n    return lambda record: record\n",
        "globals()['transform'] = lambda record: record\n",
        "if (transform := None) is None:\n    pass\n",
    ],
)
def test_scripts_that_define_the_function_in_any_way_pass(write: Write, script: str) -> None:
    write(script, "s.py")
    assert load_spec(write(_transform("s.py"))).agents[0].name == "t"


def test_a_name_bound_only_inside_a_function_or_class_is_not_defined(
    problems: Problems, write: Write
) -> None:
    write(
        "def setup():\n    transform = 1\n    return transform\n"
        "class Holder:\n    transform = staticmethod(lambda r: r)\n",
        "s.py",
    )
    [problem] = problems(_transform("s.py"))
    assert problem.field == "t.function"


def test_a_variant_that_names_a_missing_function_is_reported_at_the_variant(
    problems: Problems, write: Write
) -> None:
    write("def transform(record):\n    return record\n", "s.py")
    found = problems(
        _transform("s.py")
        + "variants:\n  - name: a\n  - name: b\n    agents:\n      t: {function: nope}\n"
    )
    [problem] = found
    assert (problem.line, problem.field) == (9, "variants[1].agents.t.function")


def _sklearn_workflow(model: str) -> str:
    return (
        f"models:\n  m:\n    provider: sklearn\n    model: {model}\n"
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n    features: [a]\n"
    )


def test_a_model_file_still_to_train_is_a_warning_not_an_error(write: Write, workdir: Path) -> None:
    wf = load_spec(write(_sklearn_workflow("model/clf.joblib")))
    assert [(n.line, n.field) for n in wf.notes] == [(4, "models.m.model")]
    assert wf.notes[0].message == f"model file {workdir}/model/clf.joblib does not exist yet"
    # and the run does stop for it
    with pytest.raises(RelayflowError, match="does not exist"):
        _prepare(workdir / "workflow.yaml")


def test_a_warning_of_an_overlay_names_the_file_that_wrote_the_model(
    write: Write, workdir: Path
) -> None:
    write(_transform("preprocess.py"), "base.yaml")
    overlay = write("extends: base.yaml\nmodels:\n  m: {provider: sklearn, model: x.joblib}\n")
    [note] = load_spec(overlay).notes
    assert (note.file, note.line, note.field) == (str(overlay), 3, "models.m.model")
