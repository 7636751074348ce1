"""The handoff: the immutable envelope that passes between agents (payload plus lineage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from relayflow.core.result import NO_VERSIONS


class LineageEntry(NamedTuple):
    """Which step wrote into the handoff, the versions (script/prompt/model) that shaped it,
    and the confidence it reported (None: it reported none)."""

    step: str
    agent_type: str
    versions: Mapping[str, str] = NO_VERSIONS
    confidence: float | None = None


class Handoff(NamedTuple):
    """What an agent receives: ``data`` is the payload, ``lineage`` the steps that produced it.

    A step never mutates a handoff; the runner builds the next one from the step's result.
    (A named tuple, not a dataclass: one is built per step on the hot path.)
    """

    data: Mapping[str, Any]
    lineage: tuple[LineageEntry, ...] = ()
    run_id: str = ""
    #: the confidence of the latest step that reported one (model output, check, review)
    confidence: float | None = None
    #: reasons a human should look at this item, raised by checks that do not park the run
    flags: tuple[str, ...] = ()

    def confidence_of(self, step: str | None = None) -> tuple[str | None, float | None]:
        """``(step, confidence)``: that of ``step``, or with None the latest step's that
        reported one (the handoff's own confidence, which a merge sets to the lowest)."""
        if step is None:
            # the step that set it, not the checks after it that passed it on
            found: str | None = None
            for entry in reversed(self.lineage):
                if entry.confidence is None:
                    continue
                if entry.confidence != self.confidence:
                    break
                found = entry.step
            return found, self.confidence
        for entry in reversed(self.lineage):
            if entry.step == step:
                return step, entry.confidence
        return step, None

    def followed_by(
        self,
        data: Mapping[str, Any],
        entry: LineageEntry,
        confidence: float | None = None,
        flags: tuple[str, ...] = (),
    ) -> Handoff:
        return Handoff(
            data,
            (*self.lineage, entry),
            self.run_id,
            self.confidence if confidence is None else confidence,
            (*self.flags, *flags) if flags else self.flags,
        )


def merge_handoffs(handoffs: list[Handoff], inputs: list[Handoff | None] | None = None) -> Handoff:
    """Join the handoffs of several upstream steps into the input of the step after them.

    A key that an upstream step changed (compared with what that step received, ``inputs``)
    wins over a key it only passed through; when two upstreams change the same key, the later
    one wins. Lineage is united, flags are united, and the lowest confidence is kept.
    """
    if len(handoffs) == 1:
        return handoffs[0]
    data: dict[str, Any] = dict(handoffs[0].data)
    for position, h in enumerate(handoffs[1:], start=1):
        before = inputs[position] if inputs is not None else None
        if before is None:
            data.update(h.data)
            continue
        seen_before = before.data
        for key, value in h.data.items():
            if key not in data or key not in seen_before or _changed(seen_before[key], value):
                data[key] = value
    lineage: list[LineageEntry] = []
    flags: list[str] = []
    seen: set[str] = set()
    confidences = [h.confidence for h in handoffs if h.confidence is not None]
    for h in handoffs:
        flags.extend(f for f in h.flags if f not in flags)
        for entry in h.lineage:
            if entry.step not in seen:
                seen.add(entry.step)
                lineage.append(entry)
    return Handoff(
        data=data,
        lineage=tuple(lineage),
        run_id=handoffs[0].run_id,
        confidence=min(confidences) if confidences else None,
        flags=tuple(flags),
    )


def _changed(before: Any, after: Any) -> bool:
    return before is not after and bool(before != after)
