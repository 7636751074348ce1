"""A label model that relayflow fits itself from the labels people gave a step
(``provider: learned``), served as a text provider for ``output: label`` steps.

``model:`` is the file the fitted model lives in. relayflow writes it (``relayflow retrain``, or
a retrain step) when a fitted version beats production on the golden set; until then there is
no file, and the provider abstains on every item, so a cascade or a person answers instead. A
replaced file gets a new provider from the next item on (the registry stats it per call).

It reads the item's own text (``CompletionRequest.text``: the fields the step's prompt reads),
not the rendered prompt, and answers one of the labels it learned with the calibrated
probability of that label as the confidence; a label it has not seen enough of, or one the
step does not allow, it leaves to the next tier (``Completion.abstained``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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

if TYPE_CHECKING:
    from relayflow.providers.text_labels import TextLabelModel

#: the version a learned model has before it was first fitted (no model file yet)
UNTRAINED = "untrained"


class LearnedProvider:
    """Answers ``output: label`` steps from a `TextLabelModel` read (once) from ``path``."""

    def __init__(self, name: str, path: Path, *, version: str, price: Price | None = None) -> None:
        self.name = name
        self.path = path
        self.version = version
        self.price = price or Price()
        self._model: TextLabelModel | None = None
        self._lock = threading.Lock()

    def _load(self) -> TextLabelModel | None:
        if self._model is None and self.version != UNTRAINED:
            with self._lock:
                if self._model is None:
                    from relayflow.providers.text_labels import TextLabelModel

                    try:
                        content = self.path.read_bytes()
                    except OSError as exc:
                        raise ProviderError(
                            f"model {self.name!r}: cannot read {self.path}: {exc.strerror or exc}"
                        ) from exc
                    self._model = TextLabelModel.from_bytes(
                        content, source=f"model {self.name!r} ({self.path})"
                    )
        return self._model

    async def complete(self, request: CompletionRequest) -> Completion:
        started = time.perf_counter()
        model = self._model if self._model is not None else await asyncio.to_thread(self._load)
        if model is None or request.needs_label_scores:
            return self._abstain(started)
        text = request.text if request.text is not None else request.prompt
        answer = model.predict([text])[0]
        allowed = request.labels
        if answer.label is None or (allowed is not None and answer.label not in allowed):
            return self._abstain(started)
        return Completion(
            text=answer.label,
            confidence=answer.confidence,
            input_tokens=0,
            output_tokens=0,
            seconds=time.perf_counter() - started,
            model=self.version,
            label=answer.label,
        )

    def _abstain(self, started: float) -> Completion:
        return Completion(
            text="",
            confidence=0.0,
            input_tokens=0,
            output_tokens=0,
            seconds=time.perf_counter() - started,
            model=self.version,
            abstained=True,
        )

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise ProviderError(
            f"model {self.name!r} is a learned text model: use it from an `output: label` step "
            "with a prompt; for tabular `features:` use provider: sklearn (relayflow retrain "
            "refits it)"
        )

    async def close(self) -> None:
        self._model = None


class LearnedConfig(ProviderConfig):
    """A label model relayflow fits from reviews and labelled history: ``model:`` is the file
    it lives in (written on promotion), ``featurizer`` how text becomes features, and
    ``min_per_label`` how many examples a label needs before the model answers it."""

    provider: Literal["learned"] = "learned"
    featurizer: Literal["wordllama", "tfidf"] = "wordllama"
    min_per_label: int = Field(default=3, ge=2)

    model_hint: ClassVar[str | None] = (
        "name the file the fitted model is kept in, e.g. model: models/intent.skops"
    )
    loads_model_file: ClassVar[bool] = True
    refit: ClassVar[Literal["sklearn", "learned"] | None] = "learned"
    switch_hint: ClassVar[str | None] = "set provider: learned, or remove it"

    def missing_model_file(self, path: Path) -> tuple[str, str]:
        return (
            f"not fitted yet ({path} does not exist): it passes every item on until a fitted "
            "version is promoted there",
            "fit it from labelled data: relayflow retrain FILE --history LABELLED.jsonl, or let "
            "a retrain step learn from reviews",
        )

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        from relayflow.providers import cache

        assert self.model is not None  # noqa: S101 - validate_entries reports a missing model:
        path = Path(self.model).expanduser()
        path = (path if path.is_absolute() else base_dir / path).resolve()
        try:
            stat = cache.stat(path)
        except FileNotFoundError:
            stat = cache.MISSING  # not fitted yet: it abstains until a version is promoted here
        key = ("learned", alias, str(path), stat, self.model_dump_json())

        def make() -> Provider:
            version = (
                UNTRAINED if stat == cache.MISSING else self.version or cache.file_version(path)
            )
            return LearnedProvider(alias, path, version=version, price=self.price.price())

        return cache.cached(key, make), ((str(path), stat),)
