"""The reference a run's output is judged against: with ``evaluate.golden``, the golden set's
record whose key equals the output's, else the reference the run carried to its output. Bench,
A/B and learning all measure accuracy against it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import ConfigError, InputError

if TYPE_CHECKING:
    from relayflow.schema.file import EvaluateSpec


class References:
    """The reference of a run's output: with ``evaluate.golden``, the golden record whose
    ``key`` equals the output's, else the output's own ``evaluate.reference`` field."""

    def __init__(self, evaluate: EvaluateSpec | None, base_dir: Path) -> None:
        self.evaluate = evaluate
        self._golden: dict[str, Any] | None = None
        if evaluate is not None and evaluate.golden is not None:
            self._golden = load_golden(base_dir / evaluate.golden, evaluate)

    @property
    def source(self) -> str:
        """Where references come from, in words (for the report)."""
        if self.evaluate is None:
            return "none (no evaluate: section)"
        if self.evaluate.golden is not None:
            return f"golden set {self.evaluate.golden}, joined by {self.evaluate.key!r}"
        return f"the {self.evaluate.reference!r} field each run carried to its output"

    def lookup(self, output: Mapping[str, Any] | None) -> Any | None:
        if self.evaluate is None or output is None:
            return None
        if self._golden is None:
            return output.get(self.evaluate.reference)
        key = output.get(self.evaluate.key)
        return None if key is None else self._golden.get(str(key))


def load_golden(path: Path, evaluate: EvaluateSpec) -> dict[str, Any]:
    """The golden set as ``{str(key): reference}``; read as JSONL, JSON, CSV or Parquet."""
    from relayflow.agents.formats import READERS, compression_of, format_of
    from relayflow.errors import AgentError

    if not path.is_file():
        raise ConfigError(
            f"golden set not found: {path} — create it, or fix evaluate.golden "
            "(a path relative to the YAML)"
        )
    table: dict[str, Any] = {}
    try:
        reader = READERS[format_of(str(path), None)]
        compression = compression_of(str(path))
        if compression is None:
            opened: Any = open(path, "rb")  # closed by the with below
        else:
            import fsspec

            opened = fsspec.open(str(path), "rb", compression=compression)
        with opened as raw:
            for number, record in enumerate(reader(raw, str(path)), 1):
                if not isinstance(record, Mapping) or evaluate.key not in record:
                    raise InputError(
                        f"{path}: record {number} has no {evaluate.key!r} field — give every "
                        "golden record the key that evaluate.key names"
                    )
                table[str(record[evaluate.key])] = record.get(evaluate.reference)
    except AgentError as exc:
        raise InputError(f"cannot read the golden set: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the golden set {path}: {exc.strerror or exc}") from exc
    return table
