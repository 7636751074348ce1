"""What an inference step may say (``InferenceConfig``) and the checks of it, made once by
``relayflow validate`` (with the line of each) and again by the agent when it is built from a
config alone (agents/inference.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from relayflow.agents.checks import (
    AgentCheck,
    path_kind,
    read_text,
    schema_error,
    schema_file_problem,
    template_error,
)
from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, CompressSpec


class InferenceConfig(AgentConfig):
    """Call a model (alias from ``models:``) with a Jinja prompt rendered from the handoff."""

    model: str
    prompt_template: str | None = None
    prompt: str | None = None
    system: str | None = None
    output: Literal["text", "json", "label"] = "text"
    labels: list[str] | None = None
    output_schema: str | dict[str, Any] | None = None
    output_field: str = "output"
    features: list[str] | None = None
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    #: ``output: label`` only: contextual calibration (Zhao et al., 2021). The label scores of
    #: the prompt rendered from a content-free record ("N/A" for every string) are subtracted
    #: from each item's, which undoes a model's bias to some labels. Needs a provider that
    #: reports label scores (the local llama.cpp model does).
    calibrate: bool = False
    #: shorten long handoff text before the prompt is rendered (prompts/compress.py)
    compress: CompressSpec | None = None
    #: the handoff fields a learned model (provider: learned) reads as the item's text, joined
    #: by newlines; default: the fields the prompt template reads
    input_fields: list[str] | None = Field(default=None, min_length=1)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Settings of one step that do not fit together."""

    field: str
    message: str
    fix: str
    #: the line to point at, when the field itself may be missing
    at: str | None = None
    #: how the agent says it, with no file to point into (default: message — fix)
    alone: str | None = None

    def said_alone(self) -> str:
        return self.alone or f"{self.message} — {self.fix}"


def mismatches(agent: InferenceConfig) -> list[Mismatch]:
    """The settings of ``agent`` that do not fit together, in the order the agent meets them."""
    out: list[Mismatch] = []
    if agent.calibrate and (agent.features is not None or agent.output != "label"):
        out.append(
            Mismatch(
                "calibrate",
                "calibrate: true works on output: label only",
                "set output: label with labels, or drop calibrate",
            )
        )
    exactly_one = "set exactly one of prompt_template (a file) or prompt (inline text)"
    if not agent.prompt_template and agent.prompt is None and not agent.features:
        out.append(
            Mismatch(
                "prompt_template",
                "no prompt",
                "add `prompt_template: file.jinja` or `prompt: …`",
                alone=exactly_one,
            )
        )
    if agent.features is None and agent.prompt_template and agent.prompt is not None:
        out.append(
            Mismatch(
                "prompt",
                "set both with prompt_template",
                "keep one: prompt_template (a file) or prompt (inline text)",
                alone=exactly_one,
            )
        )
    if agent.output == "label" and not agent.labels and not agent.features:
        out.append(
            Mismatch(
                "labels",
                "output: label needs a list of labels",
                "add `labels: [a, b, …]`",
                at="output",
            )
        )
    return out


def template_file(value: str) -> str:
    """The file of ``prompt_template``, without a pinned label (``reply.jinja@production``;
    a label that is not a valid name is reported by ``_pin``, not as a missing file)."""
    path, _, label = value.rpartition("@")
    return path if path and "/" not in label else value


def inference_problems(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    problems = _model(agent, check)
    problems += [check.problem(m.field, m.message, m.fix, at=m.at) for m in mismatches(agent)]
    problems += _templates(agent, check)
    problems += _compress(agent, check)
    problems += _pin(agent, check)
    problems += _output_schema(agent, check)
    return problems


def _model(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    # With no `models:` section every alias means the embedded local model, so that the
    # handbook's example (model: "gpt-5x") runs as written; once a team declares models,
    # an alias it did not declare is a mistake.
    models = check.models
    if not models or agent.model in models:
        return []
    return [
        check.problem(
            "model",
            f"model alias {agent.model!r} is not defined",
            f"define it under `models:` or use one of: {', '.join(sorted(models))}",
        )
    ]


def _templates(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    """The prompt (a file or inline) compiles in the environment the steps use: a syntax error,
    an unknown filter or test fails there."""
    problems = []
    if agent.prompt_template:
        path = check.resolve(template_file(agent.prompt_template))
        text = read_text(path)
        if text is not None:
            error = template_error(text)
            if error is not None:
                problems.append(
                    Problem(str(path), error[0], f"{agent.name}.prompt_template",
                            f"template error: {error[1]}", "fix the Jinja syntax")
                )  # fmt: skip
        elif path_kind(path) == "file":
            problems.append(
                Problem(str(path), 0, f"{agent.name}.prompt_template",
                        "cannot read the template as UTF-8 text", "save it as UTF-8")
            )  # fmt: skip
    if agent.prompt is not None:
        error = template_error(agent.prompt)
        if error is not None:
            problems.append(
                check.problem("prompt", f"template error: {error[1]}", "fix the Jinja syntax")
            )
    return problems


def _output_schema(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    """``output_schema``: a JSON Schema file, or one written inline in the YAML."""
    field = f"{agent.name}.output_schema"
    if isinstance(agent.output_schema, str):
        problem = schema_file_problem(check.resolve(agent.output_schema), field)
        return [] if problem is None else [problem]
    if isinstance(agent.output_schema, dict):
        error = schema_error(agent.output_schema)
        if error is not None:
            inside, message, fix = error
            return [check.problem_at(("output_schema", *inside), "output_schema", message, fix)]
    return []


def _compress(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    spec = agent.compress
    if spec is None:
        return []
    problems = []
    if agent.features is not None:
        problems.append(
            check.problem(
                "compress",
                "a step that scores features has no prompt to compress",
                "drop compress, or use a prompt",
            )
        )
    if spec.method == "extractive" and spec.max_tokens is None:
        problems.append(
            check.problem(
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
                check.problem(
                    f"compress.keep[{i}]",
                    f"not a regular expression: {exc}",
                    "fix the pattern (Python re syntax; quote it in YAML)",
                    at="compress",
                )
            )
    if spec.query is not None:
        error = template_error(spec.query)
        if error is not None:
            problems.append(
                check.problem(
                    "compress.query",
                    f"template error: {error[1]}",
                    "fix the Jinja syntax",
                    at="compress",
                )
            )
    return problems


def _pin(agent: InferenceConfig, check: AgentCheck) -> list[Problem]:
    template = agent.prompt_template
    if not template or "@" not in template:
        return []
    from relayflow.prompts.templates import split_pin

    wrote = template.rpartition("@")[2]
    if split_pin(template)[1] is not None or "/" in wrote:  # a pin, or an "@" in a folder name
        return []
    return [
        check.problem(
            "prompt_template",
            f"{wrote!r} after '@' is not a label name",
            "pin a label as file.jinja@production (a letter, then letters, digits, '.', '_', '-')",
        )
    ]
