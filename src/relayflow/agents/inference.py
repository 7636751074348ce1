"""The inference agent: render a prompt from the handoff and ask a model, or score a tabular row."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from relayflow.agents.base import Agent, BuildContext, Result, StepInfo, Usage
from relayflow.agents.quality_check import read_schema, schema_validator
from relayflow.errors import AgentError
from relayflow.models.base import CompletionRequest, Provider
from relayflow.prompts.templates import PromptTemplate, load_template, prompt_hash, render
from relayflow.spec.models import AgentConfig, InferenceConfig

if TYPE_CHECKING:
    from relayflow.engine.handoff import Handoff

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
    config: InferenceConfig

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, InferenceConfig):
            config = InferenceConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._template: PromptTemplate | None = None
        self._validator: Validator | None = None
        self._schema: dict[str, Any] | None = None
        self._provider: Provider | None = None

    async def prepare(self) -> None:
        cfg = self.config
        if cfg.features is None:
            if (cfg.prompt_template is None) == (cfg.prompt is None):
                raise AgentError(
                    f"step {cfg.name}: set exactly one of prompt_template (a file) or prompt "
                    "(inline text)"
                )
            if cfg.prompt_template is not None:
                self._template = load_template(self.ctx.resolve(cfg.prompt_template))
            else:
                self._template = PromptTemplate(None, cfg.prompt or "")
            if cfg.output == "label" and not cfg.labels:
                raise AgentError(f"step {cfg.name}: output: label needs a list of labels")
            if cfg.output == "json" and cfg.output_schema is not None:
                self._schema, self._validator = load_output_schema(
                    cfg.output_schema, self.ctx, f"step {cfg.name}: output_schema"
                )
        self._provider = self.ctx.get_provider(cfg.model)

    def versions(self) -> Mapping[str, str]:
        out = {"model": self.config.model}
        if self._template is not None:
            out["template"] = self._template.version
        if self._schema is not None:
            out["output_schema"] = prompt_hash(json.dumps(self._schema, sort_keys=True))
        return out

    def _ready(self) -> Provider:
        if self._provider is None:
            raise AgentError(f"step {self.name}: run() called before prepare()")
        # Asked again on every call: providers are cached by model file and its mtime, so a
        # model that the registry promotes (written in place) is used from the next item on.
        self._provider = self.ctx.get_provider(self.config.model)
        return self._provider

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        provider = self._ready()
        if self.config.features is not None:
            return await self._predict(provider, handoff)
        cfg = self.config
        assert self._template is not None  # set by prepare() whenever features is None
        data = dict(handoff.data)
        context = {"data": data, **data, "confidence": handoff.confidence}
        prompt = render(self._template, context)
        completion = await provider.complete(
            CompletionRequest(
                prompt,
                system=cfg.system,
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                labels=cfg.labels if cfg.output == "label" else None,
                json_schema=self._schema,
            )
        )
        if cfg.output == "label":
            value: Any = self._label(completion.label, completion.text)
        elif cfg.output == "json":
            value = self._json(completion.text)
        else:
            value = completion.text.strip()
        hashed = prompt if cfg.system is None else f"{cfg.system}\x00{prompt}"
        return Result(
            data={**data, cfg.output_field: value},
            confidence=completion.confidence,
            usage=Usage(
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                model_calls=1,
                model_seconds=completion.seconds,
                cost=provider.price.cost(completion.input_tokens, completion.output_tokens),
            ),
            versions={
                "prompt": prompt_hash(hashed),
                "model": provider.name,
                "model_version": provider.version,
            },
        )

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
        prediction = await provider.predict(row)
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
                model_calls=1,
                model_seconds=prediction.seconds,
                cost=provider.price.cost(0, 0),
            ),
            versions={"model": provider.name, "model_version": provider.version},
        )
