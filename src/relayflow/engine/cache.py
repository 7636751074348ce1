"""Which steps the runner may answer from the step cache, and the key of a cached result.

The key is a content hash of everything that shapes a step's output: the agent type, its
static versions (script hash, template hash), the version of the model behind it, its settings
(labels, max_tokens, temperature …) and its input. A changed prompt, model or script changes
the key, so it never returns a stale result.

By default only deterministic model calls are cached: inference at temperature 0. A workflow's
``cache:`` extends that to its other deterministic steps of the types that declare themselves
``cacheable`` (transforms, code tests, inference at temperature 0; agents/base.py); an agent's
own ``cache:`` is an explicit choice and always wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relayflow.agents.registry import agent_class
from relayflow.schema.file import AgentConfig, CacheSetting, CacheSpec

#: settings that do not shape a step's output
_NOT_IN_KEY = {"name", "depends_on", "description", "retry", "timeout", "cache"}


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl: float | None


def cache_policy(config: AgentConfig, workflow_default: CacheSetting) -> CachePolicy | None:
    """How ``config``'s step is cached, or None when it always runs."""
    if config.cache is not None:
        return _enabled(config.cache)
    kind = agent_class(config.type)
    if workflow_default is not None:
        if not kind.cacheable or not kind.deterministic(config):
            return None
        return _enabled(workflow_default)
    if kind.cached_by_default and kind.deterministic(config):
        return CachePolicy(ttl=None)
    return None


def _enabled(setting: bool | CacheSpec) -> CachePolicy | None:
    spec = CacheSpec() if setting is True else setting
    if spec is False or not isinstance(spec, CacheSpec) or not spec.enabled:
        return None
    return CachePolicy(ttl=spec.ttl)


class KeyMaker:
    """Cache keys for one step: the parts that do not change between items are encoded once."""

    def __init__(
        self,
        config: AgentConfig,
        versions: Mapping[str, str],
        model_version: Callable[[], str] | None = None,
    ) -> None:
        settings = config.model_dump(mode="json", exclude=_NOT_IN_KEY)
        self._prefix = json.dumps([settings, dict(versions)], sort_keys=True, default=str)
        self._model_version = model_version

    def key(self, data: Mapping[str, Any]) -> str:
        model = self._model_version() if self._model_version is not None else ""
        body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
        digest = hashlib.sha256(self._prefix.encode())
        digest.update(b"\0" + model.encode() + b"\0" + body.encode())
        return digest.hexdigest()
