"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, Ollama) as a provider,
plus the chat-message and label helpers that the local llama.cpp provider shares."""

from __future__ import annotations

import asyncio
import difflib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from relayflow.errors import ProviderError, ProviderTimeout, RateLimited
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
from relayflow.scrub import remember, url_secrets

if TYPE_CHECKING:
    from openai import AsyncOpenAI

_EXCERPT = 200
#: confidence given to an answer that only resembles a label (so a quality check escalates it)
FUZZY_LABEL_CONFIDENCE = 0.0


def chat_messages(request: CompletionRequest) -> list[dict[str, str]]:
    """The OpenAI-style message list for ``request``; labels are listed in the user turn."""
    prompt = request.prompt
    if request.labels:
        choices = ", ".join(request.labels)
        prompt = f"{prompt}\n\nAnswer with exactly one of: {choices}."
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def check_json(text: str, finish_reason: str | None, max_tokens: int, name: str) -> None:
    """Raise ProviderError unless ``text`` is one complete JSON value."""
    try:
        json.loads(text)
    except ValueError as exc:
        if finish_reason == "length":
            raise ProviderError(
                f"model {name!r}: the JSON answer was cut at max_tokens={max_tokens}; "
                "raise max_tokens on the inference step"
            ) from exc
        raise ProviderError(
            f"model {name!r} answered invalid JSON ({exc}): {text[:_EXCERPT]!r}"
        ) from exc


def confidence_from_logprobs(logprobs: Sequence[float]) -> float | None:
    """exp(mean token log-probability), clamped to [0, 1]; None when there are none."""
    if not logprobs:
        return None
    return min(1.0, max(0.0, math.exp(sum(logprobs) / len(logprobs))))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(" \t\n\"'`.,;:!?*()[]")).casefold()


def match_label(answer: str, labels: Sequence[str]) -> tuple[str, bool] | None:
    """The label ``answer`` names and whether it named it clearly.

    Tried in order: exact, case-insensitive (ignoring quotes and punctuation around it), the
    longest label the answer starts with, the one label the answer contains as a word. Otherwise
    the closest label by ``difflib`` (ratio >= 0.6) with ``clear=False``; None when none is close.
    """
    if answer in labels:
        return answer, True
    norm = _norm(answer)
    by_norm = {_norm(label): label for label in labels}
    if norm in by_norm:
        return by_norm[norm], True
    starts = [lab for key, lab in by_norm.items() if key and re.match(rf"{re.escape(key)}\b", norm)]
    if starts:
        return max(starts, key=len), True
    contained = [
        lab for key, lab in by_norm.items() if key and re.search(rf"\b{re.escape(key)}\b", norm)
    ]
    if len(contained) == 1:
        return contained[0], True
    close = difflib.get_close_matches(norm, list(by_norm), n=1, cutoff=0.6)
    return (by_norm[close[0]], False) if close else None


class OpenAICompatProvider:
    """Chat completions over HTTP with the official ``openai`` client.

    Labels: the prompt lists them and the answer is mapped to one (see ``match_label``); an
    answer that only resembles a label gets that label with confidence 0.0, an answer that
    resembles none raises ProviderError. ``params``: ``json_mode`` is ``json_schema`` (default,
    OpenAI and vLLM) or ``json_object`` (llama.cpp server: the schema rides along), and
    ``extra_body`` is merged into every request, ``logprobs: false`` stops asking for token
    log-probabilities (no confidence then; llama.cpp's server sorts its whole vocabulary per token
    to produce them, which makes it several times slower), ``max_tokens_param:
    max_completion_tokens`` is for OpenAI's reasoning models.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        price: Price | None = None,
        params: Mapping[str, Any] | None = None,
        http_client: Any = None,
    ) -> None:
        self.name = name
        self.version = model
        self.price = price or Price()
        self._model = model
        self._base_url = base_url
        self._api_key = api_key or "not-needed"
        # an endpoint may quote the key it was sent in its error body ("Incorrect API key
        # provided: sk-…"): errors built from what it answered are scrubbed here, at the source,
        # and the process's logs learn the key too (a logged traceback shows the cause)
        self._scrub = remember([api_key, *url_secrets(base_url)])
        self._timeout = timeout
        self._max_retries = max_retries
        self._params = dict(params or {})
        self._http_client = http_client
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, name: str, api_key_env: str | None, **kwargs: Any) -> OpenAICompatProvider:
        """Build with the API key read from the environment variable ``api_key_env``."""
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ProviderError(
                    f"model {name!r}: environment variable {api_key_env} is not set; "
                    f"export {api_key_env}=<key> or remove api_key_env from models.{name}"
                )
        return cls(name, api_key=api_key, **kwargs)

    def _get_client(self) -> AsyncOpenAI:
        # an httpx pool belongs to the loop that opened it: a new loop gets a new client
        loop = asyncio.get_running_loop()
        if self._client is None or (self._http_client is None and self._client_loop is not loop):
            try:
                from openai import AsyncOpenAI
            except ImportError as exc:
                raise ProviderError(
                    f"model {self.name!r} needs the openai package: pip install 'relayflow[openai]'"
                ) from exc
            self._client = AsyncOpenAI(
                base_url=self._base_url,
                api_key=self._api_key,
                timeout=self._timeout,
                max_retries=self._max_retries,
                http_client=self._http_client,
            )
            self._client_loop = loop
        return self._client

    def _request_args(self, request: CompletionRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self._model,
            "messages": chat_messages(request),
            # OpenAI's reasoning models take max_completion_tokens; most servers know max_tokens
            str(self._params.get("max_tokens_param", "max_tokens")): request.max_tokens,
            "temperature": request.temperature,
        }
        if self._params.get("logprobs", True):
            # llama.cpp's server returns no logprobs unless top_logprobs is set
            args.update(logprobs=True, top_logprobs=1)
        if request.seed is not None:
            args["seed"] = request.seed
        if request.stop:
            args["stop"] = list(request.stop)
        if request.json_schema is not None:
            schema = dict(request.json_schema)
            if self._params.get("json_mode", "json_schema") == "json_object":
                args["response_format"] = {"type": "json_object", "schema": schema}
            else:
                args["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema},
                }
        extra = self._params.get("extra_body")
        if isinstance(extra, Mapping):
            args["extra_body"] = dict(extra)
        return args

    async def complete(self, request: CompletionRequest) -> Completion:
        import openai

        client = self._get_client()
        started = time.perf_counter()
        where = f"model {self.name!r} at {self._base_url or 'api.openai.com'}"
        scrub = self._scrub.text
        try:
            response = await client.chat.completions.create(**self._request_args(request))
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(
                scrub(f"{where} did not answer within {self._timeout:g} s")
            ) from exc
        except openai.RateLimitError as exc:
            raise RateLimited(scrub(f"{where} is rate limiting: {_excerpt(exc)}")) from exc
        except openai.APIStatusError as exc:
            raise ProviderError(
                scrub(f"{where} answered HTTP {exc.status_code}: {_excerpt(exc)}")
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(scrub(f"{where} is unreachable: {exc}")) from exc
        except (openai.OpenAIError, ValueError) as exc:
            raise ProviderError(scrub(f"{where} sent a malformed answer: {exc}")) from exc
        seconds = time.perf_counter() - started
        return self._to_completion(response, request, seconds)

    def _to_completion(
        self, response: Any, request: CompletionRequest, seconds: float
    ) -> Completion:
        where = f"model {self.name!r}"
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise ProviderError(
                f"{where} sent an answer without choices: {str(response)[:_EXCERPT]}"
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            raise ProviderError(f"{where} sent an answer without text: {str(choice)[:_EXCERPT]}")
        finish = getattr(choice, "finish_reason", None)
        content = getattr(getattr(choice, "logprobs", None), "content", None) or []
        logprobs = [float(c.logprob) for c in content if getattr(c, "logprob", None) is not None]
        confidence = confidence_from_logprobs([lp for lp in logprobs if math.isfinite(lp)])
        label = None
        if request.labels:
            matched = match_label(text, request.labels)
            if matched is None:
                raise ProviderError(
                    f"{where} answered {text[:_EXCERPT]!r}, which is none of the labels "
                    f"{list(request.labels)}; make the prompt name the labels more plainly"
                )
            label, clear = matched
            if not clear:
                confidence = FUZZY_LABEL_CONFIDENCE
        elif request.json_schema is not None:
            check_json(text, finish, request.max_tokens, self.name)
        usage = getattr(response, "usage", None)
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            self.version = model
        return Completion(
            text=text,
            confidence=confidence,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=seconds,
            model=self.version,
            label=label,
        )

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise ProviderError(
            f"model {self.name!r} is a text model, not a tabular model; "
            "point the step at a sklearn model or use a prompt"
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.close()
        self._client_loop = None

    async def release(self) -> None:
        """Close the connection pool opened on the running loop (before that loop ends: a pool
        left on a closed loop leaks its sockets); the next call opens a new one."""
        await self.close()


def _excerpt(exc: Any) -> str:
    response = getattr(exc, "response", None)
    body = getattr(response, "text", None) if response is not None else None
    text = body if isinstance(body, str) and body else str(exc)
    return " ".join(text.split())[:_EXCERPT]


class OpenAIConfig(ProviderConfig):
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, a llama.cpp server, Ollama): ``model:`` is
    the name the endpoint serves, the key comes from the variable ``api_key_env`` names."""

    provider: Literal["openai"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None

    model_hint: ClassVar[str | None] = "name the model the endpoint serves, e.g. model: gpt-4o-mini"

    def secrets(self, environ: Mapping[str, str]) -> set[str]:
        found = super().secrets(environ) | url_secrets(self.base_url)
        if self.api_key_env:
            found.add(environ.get(self.api_key_env, ""))
        return found

    def rate_key(self, alias: str, base_dir: str) -> tuple[str, ...]:
        # one endpoint's limit is shared by every workflow that calls it, wherever it lives
        return ("openai", self.base_url or "api.openai.com", self.model or alias)

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        from relayflow.providers import cache

        model = self.model
        if model is None:
            raise ProviderError(
                f"models.{alias}: provider 'openai' needs `model:` (the model name the endpoint "
                "serves)"
            )

        def make() -> Provider:
            return OpenAICompatProvider.from_env(
                alias,
                self.api_key_env,
                model=model,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
                price=self.price.price(),
                params=self.params,
            )

        return cache.cached(("openai", alias, self.model_dump_json()), make), ()
