"""Model cards: what a retrained version was trained on, how it scored on the golden set against
its parent, when, and with which library versions. Stored with the version and as JSON."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any


@dataclass(frozen=True, slots=True)
class GoldenScores:
    """The candidate's and its parent's score on the same golden set."""

    metric: str
    candidate: float
    parent: float
    n: int
    source: str

    @property
    def better(self) -> bool:
        """The promotion rule: strictly better than the version in production."""
        return self.candidate > self.parent

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "candidate": round(self.candidate, 6),
            "parent": round(self.parent, 6),
            "n": self.n,
            "golden": self.source,
        }


def library_versions(*packages: str) -> dict[str, str]:
    """Installed versions of relayflow, Python and ``packages`` (``-`` when not installed)."""
    found = {"python": platform.python_version()}
    for name in ("relayflow", *packages):
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def model_card(
    *,
    kind: str,
    workflow: str,
    target: str,
    parent: str | None,
    scores: GoldenScores,
    data: Mapping[str, Any],
    trigger: str,
    details: Mapping[str, Any] | None = None,
    packages: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The card of a candidate: ``data`` says how many rows came from where."""
    return {
        "kind": kind,
        "workflow": workflow,
        "target": target,
        "parent": parent,
        "trigger": trigger,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": dict(data),
        "golden": scores.as_dict(),
        "decision": "promoted" if scores.better else "rejected",
        "versions": library_versions(*packages),
        **(dict(details) if details else {}),
    }
