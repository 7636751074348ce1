"""relayflow: run AI workflows declared in YAML, measure every run, make them cheaper and faster.

The public names are re-exported here and imported lazily, so ``import relayflow`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from relayflow.version import __version__ as __version__

__all__ = [
    "AccessDenied",
    "Agent",
    "AgentError",
    "BudgetExceeded",
    "CircuitOpen",
    "ConfigError",
    "Conflict",
    "Consumer",
    "Event",
    "Handoff",
    "InputError",
    "NotFound",
    "Problem",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RelayflowError",
    "Result",
    "RunResult",
    "Runner",
    "SpecError",
    "StoreError",
    "Unauthenticated",
    "Usage",
    "Workflow",
    "assign_variant",
    "build_runner",
    "load_workflow",
    "register",
    "variant_workflow",
]

_WHERE = {
    "AccessDenied": "relayflow.errors",
    "AgentError": "relayflow.errors",
    "BudgetExceeded": "relayflow.errors",
    "CircuitOpen": "relayflow.errors",
    "ConfigError": "relayflow.errors",
    "Conflict": "relayflow.errors",
    "InputError": "relayflow.errors",
    "NotFound": "relayflow.errors",
    "Problem": "relayflow.errors",
    "ProviderError": "relayflow.errors",
    "ProviderTimeout": "relayflow.errors",
    "RateLimited": "relayflow.errors",
    "RelayflowError": "relayflow.errors",
    "SpecError": "relayflow.errors",
    "StoreError": "relayflow.errors",
    "Unauthenticated": "relayflow.errors",
    "Agent": "relayflow.agents.base",
    "Result": "relayflow.core.result",
    "Usage": "relayflow.core.result",
    "Consumer": "relayflow.core.events",
    "Event": "relayflow.core.events",
    "Handoff": "relayflow.core.handoff",
    "RunResult": "relayflow.engine.runner",
    "Runner": "relayflow.engine.runner",
    "build_runner": "relayflow.engine.factory",
    "Workflow": "relayflow.schema.workflow",
    "load_workflow": "relayflow.spec.loader:load_spec",
    "register": "relayflow.agents.registry",
    "assign_variant": "relayflow.ab.assign",
    "variant_workflow": "relayflow.spec.variants",
}

if TYPE_CHECKING:
    from relayflow.ab.assign import assign_variant
    from relayflow.agents.base import Agent
    from relayflow.agents.registry import register
    from relayflow.core.events import Consumer, Event
    from relayflow.core.handoff import Handoff
    from relayflow.core.result import Result, Usage
    from relayflow.engine.factory import build_runner
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.errors import (
        AccessDenied,
        AgentError,
        BudgetExceeded,
        CircuitOpen,
        ConfigError,
        Conflict,
        InputError,
        NotFound,
        Problem,
        ProviderError,
        ProviderTimeout,
        RateLimited,
        RelayflowError,
        SpecError,
        StoreError,
        Unauthenticated,
    )
    from relayflow.schema.workflow import Workflow
    from relayflow.spec.loader import load_spec as load_workflow
    from relayflow.spec.variants import variant_workflow


def __getattr__(name: str) -> Any:
    target = _WHERE.get(name)
    if target is None:
        raise AttributeError(f"module 'relayflow' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
