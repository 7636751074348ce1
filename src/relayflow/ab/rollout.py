"""Roll out an A/B test's winner: new traffic weights, written into the workflow file by editing
only the ``weight:`` values (comments, order and layout stay as they were).

The edit uses the positions PyYAML's composer gives each node: a weight's scalar is replaced
in place; a variant without one gets a ``weight:`` line under its ``name:`` (or ``, weight: …``
inside a flow mapping). The new text is loaded and validated before it replaces the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from relayflow.errors import InputError, NotFound
from relayflow.schema.file import VariantSpec
from relayflow.schema.yaml_lines import compose_yaml
from relayflow.spec.variants import weights


@dataclass(frozen=True, slots=True)
class Rollout:
    """The shares of live traffic before and after, by variant, in the file's order."""

    variants: tuple[str, ...]
    before: tuple[float, ...]
    after: tuple[float, ...]


def rollout_shares(
    variants: Sequence[VariantSpec],
    winner: str,
    *,
    step: float | None = None,
    to: float | None = None,
) -> list[float]:
    """The shares after moving ``winner`` to ``to`` (or up by ``step``, at most 1); the other
    variants keep their shares relative to each other."""
    names = [v.name for v in variants]
    if winner not in names:
        raise NotFound(f"no variant {winner!r} — use one of: {', '.join(names)}")
    if (step is None) == (to is None):
        raise InputError("give either a step (--step 0.25) or a target share (--to 1.0)")
    if step is not None and not 0 < step <= 1:
        raise InputError(f"--step must be above 0 and at most 1, not {step}")
    if to is not None and not 0 <= to <= 1:
        raise InputError(f"--to must be between 0 and 1, not {to}")
    shares = weights(variants)
    index = names.index(winner)
    current = shares[index]
    target = to if to is not None else min(1.0, current + (step or 0.0))
    others = 1.0 - current
    after = []
    for i, share in enumerate(shares):
        if i == index:
            after.append(target)
        elif others > 0:
            after.append(share / others * (1.0 - target))
        else:  # the winner had everything: the rest share what it gives up equally
            after.append((1.0 - target) / (len(shares) - 1))
    return after


def rollout(
    file: Path, winner: str, *, step: float | None = None, to: float | None = None
) -> Rollout:
    """Rewrite the weights in ``file`` so that ``winner`` gets its new share of traffic."""
    from relayflow.spec.loader import load_spec, load_spec_text

    workflow = load_spec(file)
    variants = workflow.spec.variants
    if not variants:
        raise InputError(f"{file}: the workflow has no variants: section to roll out")
    names = [v.name for v in variants]
    if winner not in names:
        raise NotFound(f"{file}: no variant {winner!r} — use one of: {', '.join(names)}")
    after = rollout_shares(variants, winner, step=step, to=to)
    text = file.read_text(encoding="utf-8")
    edited = set_weights(text, [_number(share) for share in after], str(file))
    check = load_spec_text(edited, file)
    if [round(w, 6) for w in weights(check.spec.variants)] != [round(w, 6) for w in after]:
        raise InputError(
            f"{file}: the variants come from another file (extends:); roll out in that file"
        )
    _replace(file, edited)
    return Rollout(tuple(v.name for v in variants), tuple(weights(variants)), tuple(after))


def _number(share: float) -> str:
    """A weight as YAML: at most 4 decimals, no trailing zeros (0.3333, 0.75, 1, 0)."""
    text = f"{share:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def set_weights(text: str, values: Sequence[str], where: str = "<workflow>") -> str:
    """``text`` with the ``weight`` of the i-th variant set to ``values[i]``, nothing else
    changed."""
    root = compose_yaml(text)
    section = _value_of(root, "variants") if isinstance(root, yaml.MappingNode) else None
    if not isinstance(section, yaml.SequenceNode):
        raise InputError(f"{where}: no `variants:` list in this file")
    if len(section.value) != len(values):
        raise InputError(f"{where}: expected {len(values)} variants, found {len(section.value)}")
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), applied from the end
    for item, value in zip(section.value, values, strict=True):
        if not isinstance(item, yaml.MappingNode):
            raise InputError(f"{where}:{item.start_mark.line + 1}: a variant must be a mapping")
        weight = _value_of(item, "weight")
        if weight is not None:
            edits.append((weight.start_mark.index, weight.end_mark.index, value))
            continue
        name_key, name = _pair(item, "name")
        if item.flow_style:
            edits.append((name.end_mark.index, name.end_mark.index, f", weight: {value}"))
            continue
        newline = text.find("\n", name.end_mark.index)
        at = len(text) if newline < 0 else newline + 1
        line = " " * name_key.start_mark.column + f"weight: {value}\n"
        edits.append((at, at, line if newline >= 0 else "\n" + line))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _pair(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node]:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    line = mapping.start_mark.line + 1
    raise InputError(f"line {line}: a variant has no `{key}:`")


def _value_of(mapping: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(mapping, yaml.MappingNode):
        return None
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found: yaml.Node = value_node
            return found
    return None


def _replace(file: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``file``, then rename it over ``file``."""
    handle, temp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if file.exists():
            os.chmod(temp, file.stat().st_mode & 0o7777)
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
