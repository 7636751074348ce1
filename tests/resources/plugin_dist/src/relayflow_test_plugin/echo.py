"""The ``echo`` provider: answers each prompt with ``prefix`` and the prompt, at a price per
call. Its config declares its own setting (``prefix``) beside the common ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from relayflow.errors import ProviderError
from relayflow.providers.base import (
    BuildMember,
    Completion,
    CompletionRequest,
    Files,
    Prediction,
    Price,
    Provider,
    ProviderConfig,
)


class EchoProvider:
    def __init__(self, name: str, prefix: str, price: Price, version: str) -> None:
        self.name, self.prefix, self.price, self.version = name, prefix, price, version

    async def complete(self, request: CompletionRequest) -> Completion:
        text = f"{self.prefix}{request.prompt}"
        words = len(request.prompt.split())
        return Completion(text, 1.0, words, len(text.split()), 0.0, f"echo={self.version}")

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise ProviderError(f"model {self.name!r}: echo answers prompts, not features")

    async def close(self) -> None:
        return None


class EchoConfig(ProviderConfig):
    """``provider: echo``: ``prefix`` is put before every answer."""

    provider: Literal["echo"] = "echo"
    prefix: str = Field(default="echo: ", min_length=1)

    switch_hint: ClassVar[str | None] = "set provider: echo, or remove it"

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        provider = EchoProvider(alias, self.prefix, self.price.price(), self.version or "1")
        return provider, ()
