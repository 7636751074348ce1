"""OpenAICompatProvider against a fake transport: answers, errors and label mapping."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from relayflow.errors import ProviderError, ProviderTimeout, RateLimited
from relayflow.providers.base import CompletionRequest, Price
from relayflow.providers.openai_compat import OpenAICompatProvider, match_label

httpx = pytest.importorskip("httpx2", reason="openai's HTTP client (extra: openai) is missing")
pytest.importorskip("openai", reason="the openai package (extra: openai) is missing")

Handler = Callable[[Any], Any]
LABELS = ["positive", "negative", "neutral"]


def answer(content: str, logprobs: list[float] | None = None, model: str = "srv-model") -> Any:
    lp: dict[str, Any] | None = None
    if logprobs is not None:
        lp = {
            "content": [
                {"token": f"t{i}", "logprob": v, "bytes": None, "top_logprobs": []}
                for i, v in enumerate(logprobs)
            ]
        }
    body = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": lp,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    return httpx.Response(200, json=body)


class Recorder:
    """A transport handler that remembers every request and answers with ``respond``."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        self.bodies.append(json.loads(request.content))
        return self.respond(request)


def provider(handler: Handler, max_retries: int = 0, **kwargs: Any) -> OpenAICompatProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatProvider(
        "gpt-5x",
        model="test-model",
        base_url="http://fake.test/v1",
        timeout=5.0,
        max_retries=max_retries,
        http_client=client,
        **kwargs,
    )


def call(prov: OpenAICompatProvider, request: CompletionRequest) -> Any:
    async def go() -> Any:
        try:
            return await prov.complete(request)
        finally:
            await prov.close()

    return asyncio.run(go())


def test_answer_with_logprobs_gives_text_tokens_and_confidence() -> None:
    rec = Recorder(lambda _: answer("Paris.", [-0.1, -0.3, -0.2]))
    prov = provider(rec, price=Price(input_per_1m=1.0))
    out = call(prov, CompletionRequest("Capital of France?", system="Be brief.", max_tokens=16))
    assert out.text == "Paris."
    assert (out.input_tokens, out.output_tokens) == (12, 3)
    assert out.confidence == pytest.approx(math.exp(-0.2))
    assert out.model == "srv-model" and prov.version == "srv-model"
    assert out.label is None and out.seconds >= 0
    sent = rec.bodies[0]
    assert sent["model"] == "test-model" and sent["max_tokens"] == 16
    assert sent["logprobs"] is True and sent["top_logprobs"] >= 1
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]


def test_max_tokens_can_go_by_its_newer_name() -> None:
    rec = Recorder(lambda _: answer("ok"))
    params = {"max_tokens_param": "max_completion_tokens"}
    call(provider(rec, params=params), CompletionRequest("q", max_tokens=7))
    assert rec.bodies[0]["max_completion_tokens"] == 7 and "max_tokens" not in rec.bodies[0]


def test_answer_without_logprobs_has_no_confidence() -> None:
    rec = Recorder(lambda _: answer("hi"))
    out = call(provider(rec, params={"logprobs": False}), CompletionRequest("hello"))
    assert out.text == "hi" and out.confidence is None
    assert "logprobs" not in rec.bodies[0] and "top_logprobs" not in rec.bodies[0]


def test_server_error_is_retried_then_raises_provider_error() -> None:
    rec = Recorder(lambda _: httpx.Response(500, text="upstream exploded"))
    with pytest.raises(ProviderError, match=r"HTTP 500.*upstream exploded") as info:
        call(provider(rec, max_retries=1), CompletionRequest("q"))
    assert type(info.value) is ProviderError
    assert len(rec.bodies) == 2  # the first try and one retry


def test_client_error_names_status_and_body() -> None:
    handler = lambda _: httpx.Response(404, json={"error": {"message": "no such model"}})  # noqa: E731
    with pytest.raises(ProviderError, match=r"HTTP 404.*no such model"):
        call(provider(handler), CompletionRequest("q"))


def test_malformed_json_body_raises_provider_error() -> None:
    def handler(_: Any) -> Any:
        return httpx.Response(
            200, content=b"{not json", headers={"content-type": "application/json"}
        )

    with pytest.raises(ProviderError, match="malformed"):
        call(provider(handler), CompletionRequest("q"))


def test_answer_without_choices_raises_provider_error() -> None:
    handler = lambda _: httpx.Response(200, json={"model": "m", "choices": []})  # noqa: E731
    with pytest.raises(ProviderError, match="without choices"):
        call(provider(handler), CompletionRequest("q"))


def test_timeout_raises_provider_timeout() -> None:
    def handler(request: Any) -> Any:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ProviderTimeout, match="did not answer within 5 s"):
        call(provider(handler), CompletionRequest("q"))


def test_unreachable_server_raises_provider_error() -> None:
    def handler(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderError, match="unreachable") as info:
        call(provider(handler), CompletionRequest("q"))
    assert not isinstance(info.value, ProviderTimeout)


def test_rate_limit_raises_rate_limited() -> None:
    handler = lambda _: httpx.Response(429, text="slow down")  # noqa: E731
    with pytest.raises(RateLimited, match="slow down"):
        call(provider(handler), CompletionRequest("q"))


def test_labels_are_listed_in_the_prompt_and_the_answer_is_mapped() -> None:
    rec = Recorder(lambda _: answer(" Negative.", [-0.05]))
    out = call(provider(rec), CompletionRequest("I hate it", labels=LABELS))
    assert out.label == "negative"
    assert out.confidence == pytest.approx(math.exp(-0.05))
    prompt = rec.bodies[0]["messages"][-1]["content"]
    assert "positive, negative, neutral" in prompt


def test_a_label_that_is_only_close_gets_zero_confidence() -> None:
    out = call(
        provider(lambda _: answer("negatve", [-0.01])), CompletionRequest("x", labels=LABELS)
    )
    assert out.label == "negative" and out.confidence == 0.0


def test_an_answer_that_is_no_label_raises() -> None:
    with pytest.raises(ProviderError, match="none of the labels"):
        call(provider(lambda _: answer("banana split")), CompletionRequest("x", labels=LABELS))


def test_json_mode_sends_the_schema_and_checks_the_answer() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    rec = Recorder(lambda _: answer('{"a": 1}'))
    out = call(provider(rec), CompletionRequest("x", json_schema=schema))
    assert json.loads(out.text) == {"a": 1}
    assert rec.bodies[0]["response_format"]["json_schema"]["schema"] == schema

    rec = Recorder(lambda _: answer('{"a": 1}'))
    call(provider(rec, params={"json_mode": "json_object"}), CompletionRequest("x", json_schema={}))
    assert rec.bodies[0]["response_format"] == {"type": "json_object", "schema": {}}

    with pytest.raises(ProviderError, match="invalid JSON"):
        call(provider(lambda _: answer('{"a": ')), CompletionRequest("x", json_schema=schema))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("positive", ("positive", True)),
        ("POSITIVE", ("positive", True)),
        ('"neutral"', ("neutral", True)),
        ("negative, because it broke", ("negative", True)),
        ("I would say this is neutral overall", ("neutral", True)),
        ("neutrall", ("neutral", False)),
        ("positive or negative", ("positive", True)),
        ("it is not negative but neutral", None),
        ("something else", None),
    ],
)
def test_match_label(text: str, expected: tuple[str, bool] | None) -> None:
    assert match_label(text, LABELS) == expected


def test_predict_is_refused() -> None:
    prov = provider(lambda _: answer("x"))
    with pytest.raises(ProviderError, match="not a tabular model"):
        asyncio.run(prov.predict({"a": 1}))


def test_missing_api_key_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYFLOW_TEST_NO_KEY", raising=False)
    with pytest.raises(ProviderError, match="RELAYFLOW_TEST_NO_KEY is not set"):
        OpenAICompatProvider.from_env("m", "RELAYFLOW_TEST_NO_KEY", model="x")
    monkeypatch.setenv("RELAYFLOW_TEST_NO_KEY", "sk-1")
    assert OpenAICompatProvider.from_env("m", "RELAYFLOW_TEST_NO_KEY", model="x").name == "m"


@pytest.mark.llm
def test_against_a_real_llama_cpp_server(llama_server: str) -> None:
    prov = OpenAICompatProvider("smol", model="smollm2", base_url=llama_server, max_retries=0)
    # no logprobs for JSON: llama.cpp's server sorts its vocabulary per token to produce them
    fast = OpenAICompatProvider(
        "smol-json",
        model="smollm2",
        base_url=llama_server,
        max_retries=0,
        params={"json_mode": "json_object", "logprobs": False},
    )
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}

    async def go() -> list[Any]:
        try:
            return [
                await prov.complete(
                    CompletionRequest("Name the capital of France.", max_tokens=12)
                ),
                await prov.complete(CompletionRequest("Is fire hot?", labels=["yes", "no"])),
                await fast.complete(CompletionRequest("Is fire hot?", json_schema=schema)),
            ]
        finally:
            await prov.close()
            await fast.close()

    text, label, data = asyncio.run(go())
    assert text.text.strip() and text.input_tokens > 0 and 0 < text.output_tokens <= 12
    assert text.confidence is not None and 0 < text.confidence <= 1
    assert text.model == "smollm2" and prov.version == "smollm2"
    assert label.label in ("yes", "no") and label.confidence is not None
    assert isinstance(json.loads(data.text)["ok"], bool) and data.confidence is None
