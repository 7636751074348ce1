"""Seed workflow's preprocessing script: normalise the customer's message."""

from typing import Any


def transform(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "text": str(data.get("text", "")).strip()}
