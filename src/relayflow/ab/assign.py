"""Sticky assignment of an input to a variant: a hash of the workflow's name and the input's key
picks a point in [0, 1), and the variants' cumulative weights cut [0, 1) into their shares.

The same key gets the same variant in every process and release (sha256, no random seed); when
weights change, only the keys between an old and a new boundary move (the bucketing of
Optimizely and GrowthBook). With two variants that means only keys that move to the variant
whose share grew.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from relayflow.errors import InputError
from relayflow.spec.variants import weights

if TYPE_CHECKING:
    from relayflow.schema.file import EvaluateSpec, VariantSpec
    from relayflow.schema.workflow import Workflow

_SCALE = float(1 << 64)


def bucket(salt: str, key: str) -> float:
    """A point in [0, 1) that depends only on ``salt`` and ``key`` (uniform over keys)."""
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(variants: Sequence[VariantSpec], key: str, *, salt: str) -> VariantSpec:
    """The variant that ``key`` belongs to, by the variants' normalised weights (in order)."""
    shares = weights(variants)
    live = [v for v, share in zip(variants, shares, strict=True) if share > 0]
    if not live:
        raise InputError("no variant has a weight above 0: give at least one a weight")
    point = bucket(salt, key)
    total = 0.0
    for variant, share in zip(variants, shares, strict=True):
        total += share
        if share > 0 and point < total:
            return variant
    return live[-1]  # the shares summed to a hair under 1: the point is in the last one


def assign_variant(workflow: Workflow, key: str) -> str:
    """The name of the variant of ``workflow`` that input ``key`` is assigned to; run it with
    ``build_runner(variant_workflow(workflow, name))``. Salted with the workflow's name, so two
    experiments on the same keys split independently."""
    if not workflow.spec.variants:
        raise InputError(f"{workflow.file}: workflow {workflow.name!r} has no variants: section")
    return assign(workflow.spec.variants, key, salt=workflow.name).name


def routing_key(record: Mapping[str, Any], evaluate: EvaluateSpec | None = None) -> str:
    """An input's stable key: its ``evaluate.key`` field, else its ``id``, else a hash of the
    whole record (canonical JSON), so the same input always lands in the same variant."""
    for field in (evaluate.key if evaluate is not None else None, "id"):
        if field is not None and record.get(field) is not None:
            return str(record[field])
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
