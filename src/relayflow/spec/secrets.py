"""The secret values a workflow is configured with, so that they can be scrubbed from what is
stored, shown and logged (relayflow/scrub.py): model API keys, service headers, storage
credentials, and passwords or keys written into URLs."""

from __future__ import annotations

import os
from collections.abc import Mapping

from relayflow.agents.registry import agent_class
from relayflow.schema.workflow import Workflow
from relayflow.scrub import credential_values

__all__ = ["credential_values", "workflow_secrets"]


def workflow_secrets(workflow: Workflow, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value ``workflow`` uses, read from ``environ`` (default: the process's)
    where the file names a variable. Values may be short or empty: the scrubber decides."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for spec in workflow.spec.models.values():
        found |= spec.secrets(env)
    for agent in workflow.agents:
        found |= agent_class(agent.type).secrets(agent, env)
    # sections the loader keeps as written (triggers, escalation …) may hold webhooks' keys
    found |= credential_values(workflow.spec.model_extra or {})
    found |= credential_values(workflow.spec.escalation)
    return found
