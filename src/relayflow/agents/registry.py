"""Which class implements each agent type: built-ins by lazy ``module:Class`` entries, third-party
types through the ``relayflow.agents`` entry-point group. Nothing is imported until first use."""

from __future__ import annotations

import importlib
from typing import Any

from relayflow.agents.base import Agent
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

_registered: dict[str, type[Agent] | str] = {}


def _plugins() -> Any:
    """Third-party agent types (importlib.metadata is slow to import; only on first use)."""
    from importlib.metadata import entry_points

    return entry_points(group="relayflow.agents")


def register(type_name: str, agent: type[Agent] | str) -> None:
    """Make ``type_name`` available: a class, or a lazy ``"module:Class"`` string."""
    _registered[type_name] = agent


def known_types() -> list[str]:
    names = set(_BUILTIN) | set(_registered)
    names.update(ep.name for ep in _plugins())
    return sorted(names)


def agent_class(type_name: str) -> type[Agent]:
    """The class for ``type_name``, importing it on first use."""
    target = _registered.get(type_name)
    if target is None:
        target = _BUILTIN.get(type_name)
    if target is None:
        for ep in _plugins():
            if ep.name == type_name:
                target = ep.value
                break
    if target is None:
        raise NotFound(f"unknown agent type {type_name!r}; known: {', '.join(known_types())}")
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"agent type {type_name!r} needs a package that is not installed ({exc.name}); "
                "install relayflow's extras, e.g. pip install 'relayflow[llm]'"
            ) from exc
        cls = getattr(module, attr)
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise ConfigError(f"{target} is not a relayflow Agent subclass")
        _registered[type_name] = cls
        return cls
    return target
