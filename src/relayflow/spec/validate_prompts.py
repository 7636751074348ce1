"""Checks of an inference step's prompt settings: ``compress:`` and a template pinned by label
(``prompt_template: reply.jinja@production``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, InferenceConfig

if TYPE_CHECKING:
    from relayflow.spec.validate import Where


def validate_prompts(agents: list[AgentConfig], where: Where) -> list[Problem]:
    problems: list[Problem] = []
    for index, agent in enumerate(agents):
        if isinstance(agent, InferenceConfig):
            problems += _compress(index, agent, where)
            problems += _pin(index, agent, where)
    return problems


def _compress(index: int, agent: InferenceConfig, where: Where) -> list[Problem]:
    spec = agent.compress
    if spec is None:
        return []
    problems = []
    if agent.features is not None:
        problems.append(
            where.problem(
                index,
                "compress",
                "a step that scores features has no prompt to compress",
                "drop compress, or use a prompt",
            )
        )
    if spec.method == "extractive" and spec.max_tokens is None:
        problems.append(
            where.problem(
                index,
                "compress.max_tokens",
                "method extractive needs a token budget",
                "add `max_tokens: 400` (tokens per compressed field), or set `method: clean`",
                at="compress",
            )
        )
    for i, pattern in enumerate(spec.keep):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(
                where.problem(
                    index,
                    f"compress.keep[{i}]",
                    f"not a regular expression: {exc}",
                    "fix the pattern (Python re syntax; quote it in YAML)",
                    at="compress",
                )
            )
    if spec.query is not None:
        from relayflow.prompts.templates import check_template_source

        error = check_template_source(spec.query)
        if error is not None:
            problems.append(
                where.problem(
                    index,
                    "compress.query",
                    f"template error: {error[1]}",
                    "fix the Jinja syntax",
                    at="compress",
                )
            )
    return problems


def _pin(index: int, agent: InferenceConfig, where: Where) -> list[Problem]:
    template = agent.prompt_template
    if not template or "@" not in template:
        return []
    from relayflow.prompts.templates import split_pin

    wrote = template.rpartition("@")[2]
    if split_pin(template)[1] is not None or "/" in wrote:  # a pin, or an "@" in a folder name
        return []
    return [
        where.problem(
            index,
            "prompt_template",
            f"{wrote!r} after '@' is not a label name",
            "pin a label as file.jinja@production (a letter, then letters, digits, '.', '_', '-')",
        )
    ]
