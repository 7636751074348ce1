"""The ``retrain`` agent type. This release recognises it and passes the handoff through; the
drift detector that fires a retrain (``trigger: performance_drop``) arrives with the
benchmarks-and-feedback work, which gives it the metrics it watches."""

from __future__ import annotations

from collections.abc import Mapping

from relayflow.agents.base import Agent, Result, StepInfo
from relayflow.engine.handoff import Handoff
from relayflow.spec.models import RetrainConfig


class RetrainAgent(Agent):
    type_name = "retrain"
    Config = RetrainConfig

    def versions(self) -> Mapping[str, str]:
        assert isinstance(self.config, RetrainConfig)
        return {"trigger": self.config.trigger}

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        return Result(handoff.data, confidence=handoff.confidence)
