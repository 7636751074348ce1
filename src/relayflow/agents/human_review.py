"""The human review agent: park the run for a person when the item was flagged or ``when`` holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from relayflow.agents.base import Agent, BuildContext
from relayflow.agents.expressions import Expression
from relayflow.agents.expressions import check_expression as _check_expression
from relayflow.agents.quality_check import confidence_step_problems, gate_confidence
from relayflow.core.result import Result, StepInfo
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem

#: below this confidence an item goes to a person when the step sets no ``when``
DEFAULT_MIN_CONFIDENCE = 0.85


def check_expression(source: str) -> str | None:
    """Why ``when`` is not a valid expression, or None (for the validator command)."""
    return _check_expression(source)


class HumanReviewConfig(AgentConfig):
    """Park the run for a person when the item was flagged or ``when`` holds."""

    when: str | None = None
    instructions: str | None = None
    show: list[str] | None = None
    #: without ``when``: the step whose confidence is judged (as on quality_check)
    confidence_of: str | None = None


class HumanReviewAgent(Agent):
    """Escalate (park the run) when ``when`` is true over the handoff; without ``when``, when
    an upstream check flagged the item or its confidence is below 0.85. Otherwise pass through.

    ``when`` sees ``data`` (and each of its keys), ``confidence`` (the latest step's),
    ``confidences`` (each step's, by name: ``confidences.ClassifyIntent < 0.8``) and ``flags``.
    """

    type_name: ClassVar[str] = "human_review"
    Config: ClassVar[type[AgentConfig]] = HumanReviewConfig
    runs_code: ClassVar[bool] = False
    config: HumanReviewConfig

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        assert isinstance(config, HumanReviewConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        problems = confidence_step_problems(config, check)
        if problems or not config.when:
            return problems
        # compiled by the environment the step uses: an unknown filter or test fails there
        error = _check_expression(config.when)
        if error is None:
            return []
        return [
            check.problem(
                "when",
                f"expression error: {error}",
                "write a Jinja expression, e.g. confidence < 0.9",
            )
        ]

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, HumanReviewConfig):
            config = HumanReviewConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._when: Expression | None = None

    async def prepare(self) -> None:
        if self.config.when is not None:
            self._when = Expression(self.config.when)

    def review_context(self) -> dict[str, Any]:
        """What the reviewer is shown with the item: the instructions and the fields to show."""
        return {"instructions": self.config.instructions, "show": self.config.show}

    def _reason(self, handoff: Handoff) -> str | None:
        """Why the item needs a person, or None when it does not."""
        if self.config.when is not None:
            if self._when is None:  # run() without prepare(): compile now rather than misjudge
                self._when = Expression(self.config.when)
            data = dict(handoff.data)
            context: Mapping[str, Any] = {
                "data": data,
                **data,
                "confidence": handoff.confidence,
                "confidences": {
                    e.step: e.confidence for e in handoff.lineage if e.confidence is not None
                },
                "flags": list(handoff.flags),
            }
            return f"when: {self.config.when}" if self._when.evaluate(context) else None
        if handoff.flags:
            return "; ".join(handoff.flags)
        return gate_confidence(handoff, DEFAULT_MIN_CONFIDENCE, self.config.confidence_of)

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        reason = self._reason(handoff)
        if reason is None:
            return Result(data=handoff.data, confidence=handoff.confidence)
        return Result(
            data=handoff.data, confidence=handoff.confidence, verdict="escalate", reason=reason
        )
