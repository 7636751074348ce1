"""The secret values a workflow is configured with, so that they can be scrubbed from what is
stored, shown and logged (relayflow/scrub.py): model API keys, service headers, storage
credentials, and passwords or keys written into URLs."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from typing import Any

from relayflow.schema.file import RetrievalConfig, ServiceConfig
from relayflow.schema.workflow import Workflow
from relayflow.scrub import CREDENTIAL_NAME, url_secrets
from relayflow.spec.validate_service import env_identifiers


def workflow_secrets(workflow: Workflow, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value ``workflow`` uses, read from ``environ`` (default: the process's)
    where the file names a variable. Values may be short or empty: the scrubber decides."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for spec in workflow.spec.models.values():
        if spec.api_key_env:
            found.add(env.get(spec.api_key_env, ""))
        found |= url_secrets(spec.base_url)
        found |= credential_values(spec.params)
    for agent in workflow.agents:
        if isinstance(agent, ServiceConfig):
            found |= service_secrets(agent, env)
        elif isinstance(agent, RetrievalConfig):
            found |= url_secrets(agent.source)
            found |= credential_values(agent.storage_options)
    # sections the loader keeps as written (triggers, escalation …) may hold webhooks' keys
    found |= credential_values(workflow.spec.model_extra or {})
    found |= credential_values(workflow.spec.escalation)
    return found


def credential_values(value: Any, named: bool = False) -> set[str]:
    """The strings under credential-named keys (``secret``, ``token``, ``password``, ``key`` …)
    anywhere in a settings mapping, and the passwords of URLs in it (``storage_options``)."""
    found: set[str] = set()
    if isinstance(value, str):
        found |= url_secrets(value)
        if named:
            found |= _with_token(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= credential_values(item, named or bool(CREDENTIAL_NAME.search(str(key))))
    elif isinstance(value, list | tuple):
        for item in value:
            found |= credential_values(item, named)
    return found


def _with_token(value: str) -> set[str]:
    """A credential value, and its last word on its own (``Bearer X``: an error may quote X)."""
    words = value.split()
    return {value, words[-1]} if len(words) > 1 else {value}


def service_secrets(agent: ServiceConfig, environ: Mapping[str, str] | None = None) -> set[str]:
    """A service step's credentials: the values of its headers that come from the environment
    or have a credential's name, and what its URL holds (``user:pw@``, ``?api_key=``)."""
    env = os.environ if environ is None else environ
    found = url_secrets(agent.url)
    for name, value in agent.headers.items():
        try:
            names = env_identifiers(value)
        except ValueError:  # validation reports it; the literal may still be a secret
            names = []
        found.update(env.get(var, "") for var in names)
        if names or CREDENTIAL_NAME.search(name):
            found |= _with_token(string.Template(value).safe_substitute(env))
    for var in agent.headers_env.values():
        found |= _with_token(env.get(var, ""))
    return found
