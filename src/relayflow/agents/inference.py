"""The inference agent: render a prompt from the handoff and ask a model, or score a tabular row.

Labels can be calibrated (``calibrate: true``, contextual calibration after Zhao et al., 2021,
"Calibrate Before Use"): a small model prefers some labels whatever the input (often the first
one listed). The agent asks once for the label scores of the prompt rendered from a content-free
record and subtracts them from every item's label scores before picking the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from relayflow.agents.base import Agent, BuildContext, FileRef
from relayflow.agents.inference_config import InferenceConfig as InferenceConfig
from relayflow.agents.inference_prompt import StepCompressor, step_template
from relayflow.agents.inference_text import item_text, telling_fields, text_fields
from relayflow.agents.quality_check import read_schema, schema_validator
from relayflow.core.result import Result, StepInfo, Usage
from relayflow.errors import AgentError
from relayflow.prompts.templates import PromptTemplate, prompt_hash, render
from relayflow.providers.base import Completion, CompletionRequest, Provider, abstained
from relayflow.providers.context import request_type
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem
    from relayflow.govern.budget import Guard

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)


def load_output_schema(
    source: str | Mapping[str, Any], ctx: BuildContext, what: str
) -> tuple[dict[str, Any], Validator]:
    """The output schema and its validator: a JSON file (path from the YAML) or inline."""
    if isinstance(source, str):
        path = ctx.resolve(source)
        schema = read_schema(path, what)
        return schema, schema_validator(schema, f"{what} {path}")
    schema = dict(source)
    return schema, schema_validator(schema, what)


#: what every string of the content-free record reads (the paper's neutral input)
CONTENT_FREE = "N/A"


def content_free(value: Any) -> Any:
    """``value`` with its content taken out and its shape kept: every string becomes "N/A",
    numbers 0, booleans False, lists empty; mappings keep their keys; anything else is None."""
    if isinstance(value, str):
        return CONTENT_FREE
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    if isinstance(value, Mapping):
        return {key: content_free(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return []
    return None


@dataclass(frozen=True, slots=True)
class _Baseline:
    """The label log-probabilities of the content-free prompt, for one model version."""

    scores: Mapping[str, float]
    version: str
    model: tuple[str, str]


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; take what is inside it."""
    text = text.strip()
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


class InferenceAgent(Agent):
    """Ask the model ``config.model``; the answer (text, label or JSON) lands in
    ``data[output_field]``. With ``features`` set it calls the provider's ``predict`` instead."""

    type_name: ClassVar[str] = "inference"
    Config: ClassVar[type[AgentConfig]] = InferenceConfig
    cacheable: ClassVar[bool] = True
    cached_by_default: ClassVar[bool] = True
    runs_code: ClassVar[bool] = False
    config: InferenceConfig

    @classmethod
    def deterministic(cls, config: AgentConfig) -> bool:
        return not isinstance(config, InferenceConfig) or config.temperature == 0

    @classmethod
    def files(cls, config: AgentConfig) -> list[FileRef]:
        from relayflow.agents.inference_config import template_file

        assert isinstance(config, InferenceConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        out = []
        if config.prompt_template:
            out.append(FileRef("prompt_template", template_file(config.prompt_template)))
        if isinstance(config.output_schema, str):
            out.append(FileRef("output_schema", config.output_schema))
        return out

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        from relayflow.agents.inference_config import inference_problems

        assert isinstance(config, InferenceConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return inference_problems(config, check)

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, InferenceConfig):
            config = InferenceConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._template: PromptTemplate | None = None
        self._validator: Validator | None = None
        self._schema: dict[str, Any] | None = None
        self._provider: Provider | None = None
        #: the provider is a router (it records ``answered_by`` and keys by ``_request_type``)
        self._routes = False
        #: a router got since the last call, to be told which step it serves
        self._unwatched: Provider | None = None
        self._request_type = ("", config.name)
        #: the workflow's budget and the model's rate limit, around every call (or None)
        self._guard: Guard | None = None
        self._baseline: _Baseline | None = None
        self._compressor: StepCompressor | None = None
        #: the fields a learned model reads as the item's text (agents/inference_text.py)
        self._text_fields: tuple[str, ...] = ()
        self._text_exclude: tuple[str, ...] = ()
        # one lock per event loop: an asyncio.Lock is bound to the loop that first waits on it
        self._calibration_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Lock
        ] = weakref.WeakKeyDictionary()

    async def prepare(self) -> None:
        from relayflow.agents.inference_config import mismatches

        cfg = self.config
        for mismatch in mismatches(cfg):  # the checks of `relayflow validate`, for a bare config
            raise AgentError(f"step {cfg.name}: {mismatch.said_alone()}")
        if cfg.features is None:
            # the file, or the version a label pins; registered in the run store's registry
            self._template = await step_template(cfg, self.ctx)
            self._text_fields = text_fields(cfg.input_fields, self._template.variables)
            evaluate = self.ctx.workflow.spec.evaluate if self.ctx.workflow is not None else None
            self._text_exclude = telling_fields(cfg.output_field, evaluate)
            if cfg.compress is not None:
                self._compressor = StepCompressor(cfg.compress, self._template)
            if cfg.output == "json" and cfg.output_schema is not None:
                self._schema, self._validator = load_output_schema(
                    cfg.output_schema, self.ctx, f"step {cfg.name}: output_schema"
                )
        self._provider = self.ctx.get_provider(cfg.model)
        workflow = self.ctx.workflow
        self._request_type = (workflow.name if workflow is not None else "", cfg.name)
        self._routes = bool(getattr(self._provider, "routes", False))
        await self._watch(self._provider)
        from relayflow.govern.budget import guard_for

        self._guard = guard_for(self.ctx, cfg.model)

    def versions(self) -> Mapping[str, str]:
        out = {"model": self.config.model}
        if self._template is not None:
            out["template"] = self._template.version
        if self._schema is not None:
            out["output_schema"] = prompt_hash(json.dumps(self._schema, sort_keys=True))
        if self._compressor is not None:
            out["compress"] = self._compressor.version
        return out

    def _ready(self) -> Provider:
        if self._provider is None:
            raise AgentError(f"step {self.name}: run() called before prepare()")
        # Asked again on every call: providers are cached by model file and its mtime, so a
        # model that the registry promotes (written in place) is used from the next item on.
        provider = self.ctx.get_provider(self.config.model)
        if provider is not self._provider:
            self._provider = provider
            self._routes = bool(getattr(provider, "routes", False))
            self._unwatched = provider if self._routes else None
        return provider if self._guard is None else self._guard.wrap(provider)

    async def _watch(self, provider: Provider) -> None:
        """Let a router rank on the outcomes the run store records for this step."""
        watch = getattr(provider, "watch", None)
        url, workflow = self.ctx.store_url, self.ctx.workflow
        if self._routes and watch is not None and url is not None and workflow is not None:
            await watch(url, workflow.name, self.name, self.config.output_field)

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        provider = self._ready()
        if self._unwatched is not None:  # a new router (a candidate was retrained)
            router, self._unwatched = self._unwatched, None
            await self._watch(router)
        if self.config.features is not None:
            return await self._predict(provider, handoff)
        cfg = self.config
        assert self._template is not None  # noqa: S101 - invariant: prepare() set it whenever features is None
        data = dict(handoff.data)
        shown, compressed = data, None
        if self._compressor is not None:  # the prompt sees the compressed text, the output not
            shown, compressed = await self._compressor.apply(data, provider)
        context = {"data": shown, **shown, "confidence": handoff.confidence}
        prompt = render(self._template, context)
        baseline: _Baseline | None = None
        spent: Usage | None = None
        if cfg.calibrate:
            baseline, spent = await self._calibration(provider, data)
        request = self._request(prompt, item_text(self._text_fields, data, self._text_exclude))
        if self._routes:  # the router keys its records by this step
            token = request_type.set(self._request_type)
            try:
                completion = await provider.complete(request)
            finally:
                request_type.reset(token)
        else:
            completion = await provider.complete(request)
        value: Any
        confidence = completion.confidence
        passed_on = abstained(completion)
        if passed_on:  # no answer (a learned model short of labels): a person decides
            value, confidence = None, 0.0
        elif baseline is not None and (completion.label_scores is not None or not self._routes):
            # a router's tier without label scores (a learned model) answered as it is
            value, confidence = self._calibrated(completion, baseline, provider)
        elif cfg.output == "label":
            value = self._label(completion.label, completion.text)
        elif cfg.output == "json":
            value = self._json(completion.text)
        else:
            value = completion.text.strip()
        usage = self._usage(completion, provider)
        versions = {
            "prompt": prompt_hash(self._hashed(prompt)),
            "model": provider.name,
            "model_version": provider.version,
        }
        if self._routes:  # a router: the candidate that answered
            versions["answered_by"] = completion.model
        if passed_on:
            versions["abstained"] = "true"
        if baseline is not None:
            versions["calibration"] = baseline.version
        if compressed is not None:
            versions["compressed"] = compressed  # tokens of each field: "document:812>300"
        return Result(
            data={**data, cfg.output_field: value},
            confidence=confidence,
            usage=usage if spent is None else spent + usage,
            versions=versions,
        )

    def _request(self, prompt: str, text: str | None = None) -> CompletionRequest:
        cfg = self.config
        return CompletionRequest(
            prompt,
            system=cfg.system,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            labels=cfg.labels if cfg.output == "label" else None,
            json_schema=self._schema,
            text=text,
        )

    def _hashed(self, prompt: str) -> str:
        system = self.config.system
        return prompt if system is None else f"{system}\x00{prompt}"

    @staticmethod
    def _usage(completion: Completion, provider: Provider) -> Usage:
        return Usage(
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            model_calls=completion.calls,
            model_seconds=completion.seconds,
            cost=provider.price.cost(completion.input_tokens, completion.output_tokens)
            if completion.cost is None
            else completion.cost,
        )

    async def _calibration(
        self, provider: Provider, data: Mapping[str, Any]
    ) -> tuple[_Baseline, Usage | None]:
        """The content-free baseline, asked once (the first item's keys shape the record) and
        again only when the model behind the alias changes; with the usage when it was asked."""
        model = (provider.name, provider.version)
        baseline = self._baseline
        if baseline is not None and baseline.model == model:
            return baseline, None
        lock = self._calibration_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            baseline = self._baseline
            if baseline is not None and baseline.model == model:
                return baseline, None
            assert self._template is not None  # noqa: S101 - invariant: calibrate implies a prompt (checked in prepare)
            record = content_free(dict(data))
            prompt = render(self._template, {"data": record, **record, "confidence": None})
            request = dataclasses.replace(self._request(prompt), needs_label_scores=True)
            completion = await provider.complete(request)
            scores = self._label_scores(completion, provider, "the content-free baseline")
            baseline = _Baseline(scores, prompt_hash(self._hashed(prompt)), model)
            self._baseline = baseline
            return baseline, self._usage(completion, provider)

    def _label_scores(
        self, completion: Completion, provider: Provider, what: str
    ) -> dict[str, float]:
        """The log-probability of each configured label from ``completion``."""
        labels = self.config.labels or []
        scores = completion.label_scores
        if scores is None:
            raise AgentError(
                f"step {self.name}: calibrate: true needs a provider that reports label scores "
                f"(the local llama.cpp model does); model {self.config.model!r} "
                f"({type(provider).__name__}) gave none — use a llama_cpp model or drop calibrate"
            )
        missing = [label for label in labels if label not in scores]
        if missing:
            raise AgentError(
                f"step {self.name}: model {self.config.model!r} gave no score for the labels "
                f"{missing} of {what}"
            )
        out = {label: float(scores[label]) for label in labels}
        if not all(math.isfinite(score) for score in out.values()):
            raise AgentError(
                f"step {self.name}: model {self.config.model!r} gave a label a score that is "
                f"not finite for {what}: {out}"
            )
        return out

    def _calibrated(
        self, completion: Completion, baseline: _Baseline, provider: Provider
    ) -> tuple[str, float]:
        """The label with the highest calibrated score, score(label | item) − baseline(label),
        and its softmax share of the calibrated scores as the confidence."""
        scores = self._label_scores(completion, provider, "the item")
        calibrated = {label: score - baseline.scores[label] for label, score in scores.items()}
        answer = max(calibrated, key=calibrated.__getitem__)
        top = calibrated[answer]
        total = sum(math.exp(score - top) for score in calibrated.values())
        return answer, 1.0 / total

    def _label(self, label: str | None, text: str) -> str:
        labels = self.config.labels or []
        answer = label if label is not None else text.strip()
        if answer not in labels:
            raise AgentError(
                f"step {self.name}: model answered {answer[:80]!r}, not one of the labels "
                f"{labels} — retry, or make the prompt list the labels"
            )
        return answer

    def _json(self, text: str) -> Any:
        try:
            value = json.loads(_strip_fence(text))
        except json.JSONDecodeError as exc:
            raise AgentError(
                f"step {self.name}: model output is not valid JSON ({exc.msg}): {text[:200]!r}"
            ) from exc
        if self._validator is not None:
            error = best_match(self._validator.iter_errors(value))
            if error is not None:
                raise AgentError(
                    f"step {self.name}: model output breaks output_schema at {error.json_path}: "
                    f"{error.message}"
                )
        return value

    async def _predict(self, provider: Provider, handoff: Handoff) -> Result:
        cfg = self.config
        features = cfg.features or []
        data = dict(handoff.data)
        try:
            row = {f: data[f] for f in features}
        except KeyError as exc:
            raise AgentError(
                f"step {self.name}: feature {exc.args[0]!r} is missing from the handoff "
                f"(has: {', '.join(sorted(map(str, data))) or 'nothing'}) — fix features"
            ) from None
        if self._routes:  # the router keys its records by this step
            token = request_type.set(self._request_type)
            try:
                prediction = await provider.predict(row)
            finally:
                request_type.reset(token)
        else:
            prediction = await provider.predict(row)
        versions = {"model": provider.name, "model_version": provider.version}
        if self._routes:  # a router: the candidate that answered
            versions["answered_by"] = prediction.model
        confidence = prediction.confidence
        if confidence is None:
            confidence = prediction.probabilities.get(str(prediction.label))
        return Result(
            data={
                **data,
                cfg.output_field: prediction.label,
                f"{cfg.output_field}_probabilities": dict(prediction.probabilities),
            },
            confidence=confidence,
            usage=Usage(
                model_calls=prediction.calls,
                model_seconds=prediction.seconds,
                cost=provider.price.cost(0, 0) if prediction.cost is None else prediction.cost,
            ),
            versions=versions,
        )
