"""The quality check agent: a JSON Schema ruleset and a minimum confidence, judged per item."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import jsonschema
from jsonschema.protocols import Validator
from pydantic import Field

from relayflow.agents.base import Agent, BuildContext, FileRef
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem


def confidence_reason(confidence: float, threshold: float, step: str | None = None) -> str:
    """``ClassifyIntent confidence 0.62 < 0.85``: why an item is below its threshold, with the
    step whose confidence it is."""
    whose = f"{step} " if step else ""
    return f"{whose}confidence {confidence:.4g} < {threshold:.4g}"


def gate_confidence(handoff: Handoff, threshold: float, step: str | None) -> str | None:
    """Why the confidence that ``step`` reported (None: the latest step that reported one) is
    below ``threshold``, or None when it is not (or no step reported one)."""
    whose, confidence = handoff.confidence_of(step)
    if confidence is None or confidence >= threshold:
        return None
    return confidence_reason(confidence, threshold, whose)


def confidence_step_problems(config: Any, check: AgentCheck) -> list[Problem]:
    """``confidence_of`` names a step listed before this one."""
    wanted = config.confidence_of
    if wanted is None or wanted in check.earlier:
        return []
    names = ", ".join(check.earlier) or "none"
    return [
        check.problem(
            "confidence_of",
            f"{wanted!r} is not a step listed before {config.name}",
            f"name the step whose confidence to judge, one of: {names}",
        )
    ]


def read_schema(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (AgentError naming ``what`` if it is not one)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AgentError(
            f"{what}: cannot read {path}: {why} — check the path (relative to the workflow file)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"{what}: {path}:{exc.lineno}: not valid JSON: {exc.msg} — fix the JSON syntax"
        ) from exc
    if not isinstance(schema, dict):
        raise AgentError(f'{what}: {path} is not a JSON Schema object — write {{"type": ...}}')
    return schema


def schema_validator(schema: dict[str, Any], what: str) -> Validator:
    """A validator for ``schema`` of the draft its ``$schema`` names (default 2020-12), with
    ``format`` checked; AgentError if the schema itself is invalid."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise AgentError(
            f"{what}: not a valid JSON Schema: {exc.message} (at {exc.json_path}) — fix the schema"
        ) from exc
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check_ruleset_file(path: Path | str) -> str | None:
    """Why the ruleset at ``path`` is unusable, or None when it is a valid JSON Schema."""
    try:
        schema_validator(read_schema(Path(path), "ruleset"), f"ruleset {path}")
    except AgentError as exc:
        return str(exc)
    return None


def violations(validator: Validator, instance: Any) -> list[str]:
    """Every way ``instance`` breaks the schema, as ``path: message``, in a stable order."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (e.json_path, e.message))
    return [f"{e.json_path}: {e.message}" for e in errors]


class QualityCheckConfig(AgentConfig):
    """Check the handoff against a JSON Schema ruleset and a minimum confidence."""

    ruleset: str | None = None
    min_confidence: float = Field(default=0.85, ge=0, le=1)
    on_failure: Literal["retry", "escalate", "fail"] = "escalate"
    field: str | None = None
    #: the step whose confidence is judged against ``min_confidence``; default: the latest
    #: step that reported one. Name the step whose confidence estimates correctness (a
    #: learned or calibrated label's probability), not a generated text's token probability.
    confidence_of: str | None = None


class QualityCheckAgent(Agent):
    """Check the handoff (or ``data[field]``) against a ruleset and ``min_confidence``.

    A failed check retries the upstream, fails the run, or escalates to a human. When a
    ``human_review`` step follows, escalation only flags the item and the reviewer step parks it.
    """

    type_name: ClassVar[str] = "quality_check"
    Config: ClassVar[type[AgentConfig]] = QualityCheckConfig
    runs_code: ClassVar[bool] = False
    config: QualityCheckConfig

    @classmethod
    def files(cls, config: AgentConfig) -> list[FileRef]:
        assert isinstance(config, QualityCheckConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return [FileRef("ruleset", config.ruleset)] if config.ruleset else []

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        from relayflow.agents.checks import schema_file_problem

        assert isinstance(config, QualityCheckConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        problems = confidence_step_problems(config, check)
        if not config.ruleset:
            return problems
        problem = schema_file_problem(check.resolve(config.ruleset), f"{config.name}.ruleset")
        return problems if problem is None else [*problems, problem]

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, QualityCheckConfig):
            config = QualityCheckConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._validator: Validator | None = None
        self._ruleset_version = ""

    async def prepare(self) -> None:
        if self.config.ruleset is None:
            return
        path = self.ctx.resolve(self.config.ruleset)
        what = f"step {self.name}: ruleset"
        schema = read_schema(path, what)
        self._validator = schema_validator(schema, f"{what} {path}")
        self._ruleset_version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]

    def versions(self) -> Mapping[str, str]:
        return {"ruleset": self._ruleset_version} if self._ruleset_version else {}

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        cfg = self.config
        found: list[str] = []
        if self._validator is not None:
            if cfg.field is None:
                found.extend(violations(self._validator, dict(handoff.data)))
            elif cfg.field not in handoff.data:
                found.append(f"{cfg.field}: missing from the handoff")
            else:
                found.extend(violations(self._validator, handoff.data[cfg.field]))
        low = gate_confidence(handoff, cfg.min_confidence, cfg.confidence_of)
        if low is not None:
            found.append(low)
        if not found:
            return Result(data=handoff.data, confidence=handoff.confidence)
        reason = "; ".join(found)
        if cfg.on_failure == "escalate" and self.ctx.reviewers_downstream.get(cfg.name):
            return Result(data=handoff.data, confidence=handoff.confidence, flags=(reason,))
        return Result(
            data=handoff.data,
            confidence=handoff.confidence,
            verdict=cfg.on_failure,
            reason=reason,
        )
