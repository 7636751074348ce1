"""Checks of an inference step's ``compress:`` settings and of a template pinned by label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from relayflow.agents.inference import InferenceConfig
from relayflow.errors import Problem
from relayflow.spec.loader import load_spec

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]


def _inference(*lines: str, template: str = "templates/query_prompt.jinja") -> str:
    extra = "".join(f"    {line}\n" for line in lines)
    return (
        "workflow:\n"
        "  - name: Ask\n"
        "    type: inference\n"
        "    model: gpt-5x\n"
        f"    prompt_template: {template}\n" + extra
    )


def test_compress_and_a_pinned_template_load(write: Write) -> None:
    path = write(
        _inference(
            "compress: {max_tokens: 300, fields: [document], keep: ['\\d+%']}",
            template="templates/query_prompt.jinja@production",
        )
    )
    [step] = load_spec(path).agents
    assert isinstance(step, InferenceConfig) and step.compress is not None
    assert step.compress.max_tokens == 300 and step.compress.method == "extractive"
    assert step.prompt_template == "templates/query_prompt.jinja@production"


def test_extractive_compression_needs_a_budget(problems: Problems) -> None:
    [problem] = problems(_inference("compress: {fields: [document]}"))
    assert (problem.line, problem.field) == (6, "Ask.compress.max_tokens")
    assert problem.message == "method extractive needs a token budget"
    assert "max_tokens: 400" in problem.fix


def test_a_bad_keep_pattern_and_query_are_reported(problems: Problems) -> None:
    found = problems(
        _inference("compress:", "  max_tokens: 50", "  keep: ['(unclosed']", "  query: '{{ x'")
    )
    assert [(p.line, p.field) for p in found] == [
        (6, "Ask.compress.keep[0]"),
        (6, "Ask.compress.query"),
    ]
    assert found[0].message.startswith("not a regular expression: missing )")


def test_an_unknown_compress_setting_and_a_zero_budget_fail_to_load(problems: Problems) -> None:
    found = problems(_inference("compress: {max_tokens: 0, ratio: 2}"))
    assert {p.field for p in found} == {"Ask.compress.max_tokens", "Ask.compress.ratio"}


def test_a_pin_that_is_not_a_label_is_reported(problems: Problems) -> None:
    [problem] = problems(_inference(template="templates/query_prompt.jinja@3rd"))
    assert (problem.line, problem.field) == (5, "Ask.prompt_template")
    assert problem.message == "'3rd' after '@' is not a label name"


def test_a_pinned_template_file_must_exist(problems: Problems, workdir: Path) -> None:
    [problem] = problems(_inference(template="templates/missing.jinja@production"))
    assert problem.message == f"file not found: {workdir / 'templates' / 'missing.jinja'}"
