"""Turn one row of river's Phishing CSV into the model's view: nine numeric features under their
CSV column names, the gold label under ``expected`` (scoring only) and a content-derived ``id``."""

from __future__ import annotations

import hashlib
from typing import Any

#: the CSV's feature columns, in file order: the names the model and the ruleset use
FEATURES: tuple[str, ...] = (
    "empty_server_form_handler",
    "popup_window",
    "https",
    "request_from_other_domain",
    "anchor_from_other_domain",
    "is_popular",
    "long_url",
    "age_of_domain",
    "ip_in_url",
)
LABEL_COLUMN = "is_phishing"
LABELS: tuple[str, str] = ("legit", "phishing")

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def label_of(value: Any) -> str:
    """``is_phishing`` as the model's class name: 1/True is "phishing", 0/False is "legit"."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return "phishing"
    if text in _FALSE:
        return "legit"
    raise ValueError(f"{LABEL_COLUMN} is {value!r}; expected 0/1 or true/false")


def row_id(features: dict[str, float], expected: str | None) -> str:
    """A short hash of the feature values and the label. The data set has no row ids, so this
    is a content id: rows that are identical (the CSV has many) share it, which keeps joins on
    ``id`` consistent; the run's item key (``…phishing.csv.gz#17``) names the row itself."""
    text = ",".join(f"{features[name]:g}" for name in FEATURES) + f"|{expected or ''}"
    return "ph-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def transform(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row in (values are strings, or numbers from other readers), the scored item out.

    A row without ``is_phishing`` (live traffic) gets ``expected: None``.
    """
    missing = [name for name in FEATURES if record.get(name) in (None, "")]
    if missing:
        raise ValueError(f"the row lacks feature(s) {missing}; it has {sorted(record)}")
    try:
        features = {name: float(record[name]) for name in FEATURES}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a feature is not a number ({exc}) in {record}") from None
    raw = record.get(LABEL_COLUMN)
    expected = None if raw in (None, "") else label_of(raw)
    return {"id": row_id(features, expected), **features, "expected": expected}
