"""The public surface: one sorted __all__, every name importable, and a light import."""

from __future__ import annotations

import subprocess
import sys

import relayflow

EXPECTED = [
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


def test_all_is_sorted_and_complete() -> None:
    assert relayflow.__all__ == EXPECTED
    assert sorted(relayflow.__all__) == relayflow.__all__
    for name in relayflow.__all__:
        assert getattr(relayflow, name) is not None


def test_error_tree() -> None:
    assert issubclass(relayflow.SpecError, relayflow.RelayflowError)
    assert issubclass(relayflow.ProviderTimeout, relayflow.ProviderError)
    assert issubclass(relayflow.RateLimited, relayflow.ProviderError)
    for name in (
        "AgentError",
        "StoreError",
        "BudgetExceeded",
        "AccessDenied",
        "ConfigError",
        "Conflict",
        "InputError",
        "NotFound",
        "Unauthenticated",
    ):
        assert issubclass(getattr(relayflow, name), relayflow.RelayflowError)


def test_import_relayflow_loads_no_heavy_module() -> None:
    code = (
        "import sys, relayflow\n"
        "heavy = ['pydantic', 'sqlalchemy', 'jinja2', 'llama_cpp', 'openai', 'fsspec', "
        "'rich', 'typer', 'yaml', 'numpy']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
