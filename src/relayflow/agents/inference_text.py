"""The item's own text, which a learned model reads instead of the rendered prompt: the fields
the step names in ``input_fields``, else those its prompt template reads, joined by newlines.
The fitting job (learn/learned_job.py) builds its training texts with the same function, so a
model sees at run time exactly what it was fitted on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayflow.schema.file import EvaluateSpec

#: names a prompt reads that are not fields of the item
CONTEXT_NAMES = frozenset({"data", "confidence"})


def text_fields(
    input_fields: Sequence[str] | None, template_variables: Iterable[str]
) -> tuple[str, ...]:
    """The fields the text is made of; empty: every text field of the item (a template that
    reads only ``data``)."""
    if input_fields:
        return tuple(input_fields)
    return tuple(name for name in template_variables if name not in CONTEXT_NAMES)


def telling_fields(output_field: str, evaluate: EvaluateSpec | None) -> tuple[str, ...]:
    """The fields that would give the label away: the step's own answer and the reference an
    item carries (``evaluate.reference``)."""
    return (output_field, *([evaluate.reference] if evaluate is not None else []))


def item_text(fields: Sequence[str], data: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """The values of ``fields`` in ``data`` (scalars as text; missing ones skipped), one per
    line; with no fields, every string value except those of ``exclude`` (the step's own answer
    and the reference the item carries, which would give the label away)."""
    if fields:
        values = [data.get(name) for name in fields]
    else:
        skipped = set(exclude)
        values = [v for k, v in data.items() if k not in skipped and isinstance(v, str)]
    return "\n".join(str(v) for v in values if v is not None and not isinstance(v, dict | list))
