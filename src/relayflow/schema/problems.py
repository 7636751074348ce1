"""Pydantic's validation errors as Problems at the YAML line that caused them, each saying what
to write instead (an unknown key names the nearest known one)."""

from __future__ import annotations

import difflib
import reprlib
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from relayflow.errors import Problem
from relayflow.schema.yaml_lines import LineMap, Path_

#: top-level keys that people write but no part of relayflow reads there: where they belong
_ELSEWHERE = {
    "concurrency": "runs at once is an option of the command: relayflow run --concurrency N",
    "triggers": "a retrain agent starts itself: `trigger: performance_drop | schedule | manual`",
}


class Chooser(Protocol):
    """Metadata of an ``Annotated`` field whose model depends on the value (a ``models:`` entry
    is validated by the config of the provider it names): how to explain its errors."""

    def model_for(self, raw: Any) -> type[BaseModel] | None:
        """The model that validates ``raw`` (None when it cannot be told)."""

    def elsewhere(self, key: str, raw: Any) -> tuple[str, str] | None:
        """Message and fix for ``key``, unknown to ``raw``'s model but known to another one."""


def problems_from(
    exc: ValidationError,
    prefix: Path_,
    where: str,
    lines: LineMap,
    model: type[BaseModel],
    label: str | None = None,
    skip_agents: bool = False,
    data: Any = None,
) -> list[Problem]:
    """One Problem per error of ``exc``, raised validating ``model`` at ``prefix`` of the file.
    ``label`` replaces the prefix in field names (an agent's name); ``skip_agents`` leaves out
    the errors inside ``workflow:`` items (each agent is validated on its own). ``data`` is the
    value validated, for fields whose model depends on it (a Chooser)."""
    out: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if skip_agents and len(loc) > 1 and loc[0] == "workflow" and isinstance(loc[1], int):
            continue
        path = (*prefix, *loc)
        field = ".".join(str(p) for p in loc)
        field = f"{label}.{field}" if label else dotted(path)
        message, fix = explain(error, loc, model, top=not prefix, data=data)
        out.append(Problem(where, lines.line_of(path), field, message, fix))
    return out


def explain(
    error: Any, loc: tuple[Any, ...], model: type[BaseModel], top: bool = False, data: Any = None
) -> tuple[str, str]:
    """The message and the fix of one pydantic error at ``loc`` of ``model``."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing", f"add `{loc[-1]}: …`"
    if kind == "too_short" and loc == ("workflow",):
        return "the workflow has no agents", "list them under `workflow:` (`- name: …`, `type: …`)"
    if kind == "extra_forbidden":
        return _unknown_key(loc, model, top, data)
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{short(error['input'])} is not allowed", f"use one of {expected}"
    value = error.get("input")
    shown = short(value) if not isinstance(value, dict | list) else type(value).__name__
    return f"{error['msg'].lower()} (got {shown})", "fix the value's type or range"


def _unknown_key(
    loc: tuple[Any, ...], model: type[BaseModel], top: bool, data: Any
) -> tuple[str, str]:
    key = str(loc[-1])
    section = top and len(loc) == 1
    message = "unknown section" if section else "unknown field"
    if section and key in _ELSEWHERE:
        return "not a section of a workflow file", _ELSEWHERE[key]
    _, chooser, raw = _walk(model, loc, data)
    if chooser is not None:
        other = chooser.elsewhere(key, raw)
        if other is not None:
            return other
    known = known_keys(model, loc, data)
    guess = did_you_mean(key, known)
    if guess is not None:
        return message, f"did you mean `{guess}`?"
    if section:
        return message, (
            f"remove it or use one of: {', '.join(known)} (a section of your own, for YAML "
            "anchors, starts with `x-`)"
        )
    if known:
        return message, f"remove it or use one of: {', '.join(known)}"
    return message, "remove it or check its spelling"


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The choice closest to ``word`` (a misspelling of it), or None when none is close."""
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not found:
        found = [c for c in choices if c.lower() == word.lower()]
    return found[0] if found else None


def known_keys(model: type[BaseModel], loc: tuple[Any, ...], data: Any = None) -> list[str]:
    """The keys the model at ``loc[:-1]`` inside ``model`` accepts (none when it cannot be
    told, e.g. inside a free-form mapping). ``data``: the value validated (see Chooser)."""
    current, _, _ = _walk(model, loc, data)
    target = _model_in(current)
    if target is None:
        return []
    extends = ["extends"] if target.__name__ == "WorkflowSpec" else []
    return sorted([*target.model_fields, *extends])


def _walk(
    model: type[BaseModel], loc: tuple[Any, ...], data: Any
) -> tuple[Any, Chooser | None, Any]:
    """The type at ``loc[:-1]`` inside ``model``, the Chooser that picked it (if one did) and
    the part of ``data`` there; the type is None when it cannot be told."""
    current: Any = model
    chooser: Chooser | None = None
    raw = data
    for part in loc[:-1]:
        current = _step(current, part)
        raw = _item(raw, part)
        if current is None:
            return None, None, raw
        current, chooser = _chosen(current, raw)
    return current, chooser, raw


def _chosen(tp: Any, raw: Any) -> tuple[Any, Chooser | None]:
    """``tp`` without ``Annotated``, or the model its Chooser picks for ``raw``."""
    if get_origin(tp) is not Annotated:
        return tp, None
    base, *metadata = get_args(tp)
    for item in metadata:
        if hasattr(item, "model_for") and hasattr(item, "elsewhere"):
            return item.model_for(raw) or base, item
    return base, None


def _item(raw: Any, part: Any) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(part)
    if isinstance(raw, list) and isinstance(part, int) and -len(raw) <= part < len(raw):
        return raw[part]
    return None


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _model_in(tp: Any) -> type[BaseModel] | None:
    """``tp`` itself, or the one model of an optional or union type."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if _is_union(tp):
        models = [m for m in map(_model_in, get_args(tp)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _step(tp: Any, part: Any) -> Any:
    """The type found at ``part`` inside a value of type ``tp`` (None when unknown)."""
    model = tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
    if model is not None:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    if _is_union(tp):
        # pydantic names the member that failed: ``cache.CacheSpec.ttl``
        for member in get_args(tp):
            if getattr(member, "__name__", None) == part:
                return member
        found = [s for s in (_step(m, part) for m in get_args(tp)) if s is not None]
        return found[0] if len(found) == 1 else None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, tuple, Sequence) and isinstance(part, int) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def short(value: Any) -> str:
    """A bounded repr: a user's value may be long, deeply nested or refer to itself."""
    return _REPR.repr(value)


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
