"""Tests of the sandboxed prompt templates: rendering, errors, versions, syntax checks."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from relayflow.errors import AgentError
from relayflow.prompts.templates import (
    PromptTemplate,
    check_template_source,
    environment,
    load_template,
    prompt_hash,
    render,
)


def test_render_fills_variables_and_keeps_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "q.jinja"
    path.write_text(
        "Ticket: {{ data.text }}\n{% for t in tags %}\n- {{ t }}\n{% endfor %}\n",
        encoding="utf-8",
    )
    template = load_template(path)
    out = render(template, {"data": {"text": "help"}, "tags": ["a", "b"]})
    assert out == "Ticket: help\n- a\n- b\n"
    assert template.path == path


def test_no_autoescape() -> None:
    assert render(PromptTemplate(None, "{{ x }}"), {"x": "<b>&</b>"}) == "<b>&</b>"


def test_missing_variable_names_template_and_variable(tmp_path: Path) -> None:
    path = tmp_path / "prompt.jinja"
    path.write_text("Hello {{ customer_name }}", encoding="utf-8")
    with pytest.raises(AgentError, match=r"prompt\.jinja.*'customer_name' is undefined"):
        render(load_template(path), {"other": 1})


def test_missing_attribute_is_an_error_too() -> None:
    with pytest.raises(AgentError, match=r"<inline prompt>.*has no attribute 'missing'"):
        render(PromptTemplate(None, "{{ data.missing }}"), {"data": {"text": "x"}})


def test_sandbox_blocks_unsafe_access_and_mutation() -> None:
    with pytest.raises(AgentError, match="prompt template"):
        render(PromptTemplate(None, "{{ x.__class__.__mro__ }}"), {"x": 1})
    data = {"a": 1}
    with pytest.raises(AgentError):
        render(PromptTemplate(None, "{{ data.update({'a': 2}) }}"), {"data": data})
    assert data == {"a": 1}


def test_error_inside_template_expression_becomes_agent_error() -> None:
    with pytest.raises(AgentError, match="ZeroDivisionError"):
        render(PromptTemplate(None, "{{ 1 / n }}"), {"n": 0})


def test_unreadable_template_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"cannot read prompt template .*nope\.jinja"):
        load_template(tmp_path / "nope.jinja")


def test_syntax_error_at_load_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jinja"
    path.write_text("line one\n{% if x %}\nno end\n", encoding="utf-8")
    with pytest.raises(AgentError, match=r"bad\.jinja:\d+: template syntax error"):
        load_template(path)


def test_version_follows_source() -> None:
    a = PromptTemplate(None, "Hello {{ name }}")
    b = PromptTemplate(None, "Hello {{ name }}")
    c = PromptTemplate(None, "Hi {{ name }}")
    assert a.version == b.version == prompt_hash("Hello {{ name }}")
    assert a.version != c.version
    assert len(a.version) == 12 and int(a.version, 16) >= 0
    assert a == b


def test_prompt_hash_is_sha256_prefix() -> None:
    assert prompt_hash("") == "e3b0c44298fc"


def test_check_template_source() -> None:
    assert check_template_source("Hello {{ name }}") is None
    assert check_template_source("ok\n{{ name \n") == (
        2,
        "unexpected end of template, expected 'end of print statement'.",
    )
    assert check_template_source("a\nb\n{% endif %}") == (3, "Encountered unknown tag 'endif'.")


def test_check_template_source_catches_unknown_filters() -> None:
    assert check_template_source("a\n{{ x | no_such_filter }}") == (
        2,
        "No filter named 'no_such_filter'.",
    )


def test_environment_is_strict_and_shared() -> None:
    env = environment()
    assert env is environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is False
