"""Which config (and so which factory) serves each provider name, and the provider behind a
``models:`` entry (or an undefined alias), built once per process.

Built-in providers are lazy ``module:Class`` entries naming their config class (a subclass of
ProviderConfig that builds the provider); third-party ones come through the
``relayflow.providers`` entry-point group. A config module is imported only when a workflow
names its provider, and the provider's own (heavier) module only when it is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import create_model

from relayflow.core.plugins import NotAPlugin, Plugins
from relayflow.errors import ConfigError, NotFound, ProviderError, RelayflowError
from relayflow.providers.base import Files, Provider, ProviderConfig
from relayflow.providers.cache import (
    MISSING,
    default_gguf_path,
    file_version,
    forget,
    lock,
)
from relayflow.providers.cache import providers as _cached_providers

__all__ = [
    "build_provider",
    "close_all",
    "config_class",
    "default_gguf_path",
    "file_version",
    "known_providers",
    "provider_config",
    "register",
    "release_clients",
    "setting_owner",
]

#: the provider a ``models:`` entry without ``provider:`` has
DEFAULT = "llama_cpp"

_BUILTIN: dict[str, str] = {
    "llama_cpp": "relayflow.providers.llama_cpp:LlamaCppConfig",
    "openai": "relayflow.providers.openai_compat:OpenAIConfig",
    "sklearn": "relayflow.providers.sklearn_model:SklearnConfig",
    "router": "relayflow.providers.router_config:RouterConfig",
    "learned": "relayflow.providers.learned:LearnedConfig",
}

PROVIDERS: Plugins[ProviderConfig] = Plugins("relayflow.providers", ProviderConfig, _BUILTIN)


def register(name: str, config: type[ProviderConfig] | str) -> None:
    """Make provider ``name`` available: its config class, or a lazy ``"module:Class"``."""
    PROVIDERS.register(name, config)


def known_providers() -> list[str]:
    return PROVIDERS.names()


def config_class(name: str) -> type[ProviderConfig]:
    """The config class of provider ``name``, importing it on first use."""
    try:
        cls = PROVIDERS.resolve(name)
    except ImportError as exc:
        raise ConfigError(
            f"provider {name!r} needs a package that is not installed ({exc.name}); "
            "install the package that provides it"
        ) from exc
    except NotAPlugin as exc:
        raise ConfigError(f"{exc.target} is not a relayflow ProviderConfig subclass") from None
    if cls is None:
        raise NotFound(f"unknown provider {name!r}; known: {', '.join(known_providers())}")
    return cls


def provider_config(raw: Any) -> ProviderConfig:
    """One ``models:`` entry, validated by the config of the provider it names (default
    llama_cpp): the discriminated union of every registered provider, of which only the one
    named is imported. Raises pydantic's ValidationError, located inside the entry."""
    if isinstance(raw, ProviderConfig):
        return raw
    name = raw.get("provider", DEFAULT) if isinstance(raw, Mapping) else DEFAULT
    known = known_providers()
    if not isinstance(name, str) or name not in known:
        # pydantic's own error for a bad tag, at the entry's `provider:`
        tags: Any = Literal[tuple(known)]
        create_model("Provider", provider=(tags, ...)).model_validate({"provider": name})
    try:
        cls = config_class(name)
    except RelayflowError as exc:
        raise ValueError(str(exc)) from None
    return cls.model_validate(raw)


def setting_owner(setting: str, provider: Any) -> tuple[str, str] | None:
    """``(provider, fix)`` for a setting that ``provider``'s entries do not have but another
    provider's do (``candidates`` on a sklearn model): what to say instead of "unknown field".
    Asked only for a file that has such a mistake; imports the built-in configs."""
    for name in known_providers():
        if name == provider:
            continue
        try:
            cls = config_class(name)
        except RelayflowError:
            continue  # a plugin that cannot load: it owns nothing here
        if setting in cls.model_fields:
            return name, cls.switch_hint or f"set provider: {name}, or remove it"
    return None


@dataclass(frozen=True, slots=True)
class _Built:
    """A provider found for one (alias, spec object, folder): the runner asks for it on every
    item, so the next lookup only stats its model files instead of building the key again."""

    spec: ProviderConfig | None
    models: Mapping[str, ProviderConfig] | None
    files: Files
    provider: Provider


#: the latest provider per ``(alias, id(spec), id(models), base_dir)``; the entry keeps the spec
#: and models objects alive, so their ids are not reused while it exists
_built: dict[tuple[Any, ...], _Built] = {}
#: entries kept at most (a server loads new workflow versions; each has new spec objects)
_BUILT_MAX = 512


def build_provider(
    alias: str,
    spec: ProviderConfig | None,
    base_dir: Path,
    *,
    models: Mapping[str, ProviderConfig] | None = None,
) -> Provider:
    """The provider behind ``alias``; ``spec is None`` (alias not in ``models:``) means the
    embedded local SmolLM2. Providers are cached per process; aliases naming the same GGUF
    with the same settings share one loaded model. A router (``provider: router``) resolves
    its candidates in ``models``, by default the ``models:`` section its spec was loaded in.

    Asked again with the same spec object, it returns the provider it found last while every
    model file behind it is unchanged (one ``stat`` each): a file replaced in place (a
    promotion) gets a new provider from the next call on."""
    key = (alias, id(spec), id(models), base_dir)
    built = _built.get(key)
    if (
        built is not None
        and built.spec is spec
        and built.models is models
        and _unchanged(built.files)
    ):
        return built.provider
    provider, files = _build(alias, spec, base_dir, models)
    with lock:
        if len(_built) >= _BUILT_MAX:
            _built.clear()
        _built[key] = _Built(spec, models, files, provider)
    return provider


def _unchanged(files: Files) -> bool:
    for path, stat in files:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if stat == MISSING:
                continue
            return False  # gone: the full lookup says what is wrong
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_size) != stat:
            return False
    return True


def _build(
    alias: str,
    spec: ProviderConfig | None,
    base_dir: Path,
    models: Mapping[str, ProviderConfig] | None,
    chain: tuple[str, ...] = (),
) -> tuple[Provider, Files]:
    spec = spec or provider_config({})
    if alias in chain:
        raise ProviderError(
            f"models.{alias}: routing cycle {' -> '.join([*chain, alias])} — remove one of "
            "these candidates"
        )
    section = spec.section if models is None else models
    if not spec.builds_members:
        with lock:
            return spec.build(alias, base_dir, section, _no_members)

    def member(name: str, config: ProviderConfig) -> tuple[Provider, Files]:
        return _build(name, config, base_dir, section, (*chain, alias))

    return spec.build(alias, base_dir, section, member)


def _no_members(name: str, config: ProviderConfig) -> tuple[Provider, Files]:
    raise ProviderError(f"models.{name}: only a provider that builds_members may build others")


async def release_clients() -> None:
    """Let every cached provider close what it opened on the running event loop (HTTP
    connection pools), keeping the providers and their loaded models. Call it before a loop
    ends — ``asyncio.run`` in a command — while the providers live on in the process."""
    for provider in _cached_providers():
        release = getattr(provider, "release", None)
        if release is not None:
            await release()


async def close_all() -> None:
    """Close every cached provider and forget them (models are loaded again when needed)."""
    providers = forget()
    with lock:
        _built.clear()
    # closing a llama.cpp provider frees its engine, which every sharing alias reloads on use
    for provider in providers:
        await provider.close()
