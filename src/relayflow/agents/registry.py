"""Which class implements each agent type: built-ins by lazy ``module:Class`` entries, third-party
types through the ``relayflow.agents`` entry-point group. Nothing is imported until first use."""

from __future__ import annotations

from relayflow.agents.base import Agent
from relayflow.core.plugins import NotAPlugin, Plugins
from relayflow.errors import ConfigError, NotFound

_BUILTIN: dict[str, str] = {
    "retrieval": "relayflow.agents.retrieval:RetrievalAgent",
    "transform": "relayflow.agents.transform:TransformAgent",
    "inference": "relayflow.agents.inference:InferenceAgent",
    "quality_check": "relayflow.agents.quality_check:QualityCheckAgent",
    "human_review": "relayflow.agents.human_review:HumanReviewAgent",
    "retrain": "relayflow.learn.retrain_agent:RetrainAgent",
    "code_test": "relayflow.agents.code_test:CodeTestAgent",
    "service": "relayflow.agents.service:ServiceAgent",
}

AGENT_TYPES: Plugins[Agent] = Plugins("relayflow.agents", Agent, _BUILTIN)


def register(type_name: str, agent: type[Agent] | str) -> None:
    """Make ``type_name`` available: a class, or a lazy ``"module:Class"`` string."""
    AGENT_TYPES.register(type_name, agent)


def known_types() -> list[str]:
    return AGENT_TYPES.names()


def agent_class(type_name: str) -> type[Agent]:
    """The class for ``type_name``, importing it on first use."""
    try:
        cls = AGENT_TYPES.resolve(type_name)
    except ImportError as exc:
        raise ConfigError(
            f"agent type {type_name!r} needs a package that is not installed ({exc.name}); "
            "install relayflow's extras, e.g. pip install 'relayflow[llm]'"
        ) from exc
    except NotAPlugin as exc:
        raise ConfigError(f"{exc.target} is not a relayflow Agent subclass") from None
    if cls is None:
        raise NotFound(f"unknown agent type {type_name!r}; known: {', '.join(known_types())}")
    return cls
