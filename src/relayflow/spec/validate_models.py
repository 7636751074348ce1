"""Checks of the ``models:`` section beyond field types, as each provider declares them
(``ProviderConfig.validate_entries``: a missing ``model:``, a router's candidates …), and the
model files that do not exist yet."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from relayflow.errors import Problem
from relayflow.schema.file import ModelSpec
from relayflow.schema.yaml_lines import LineMap


class _At:
    """Problems at ``models.<alias>.<field>`` lines of one workflow file."""

    def __init__(self, lines: LineMap, file: str) -> None:
        self.lines, self.file = lines, file
        self.problems: list[Problem] = []

    def __call__(
        self, alias: str, path: tuple[str | int, ...], message: str, fix: str = ""
    ) -> None:
        field = ".".join(["models", alias, *(p for p in path if isinstance(p, str))])
        line = self.lines.line_of(("models", alias, *path))
        self.problems.append(Problem(self.file, line, field, message, fix))


def validate_models(models: Mapping[str, ModelSpec], lines: LineMap, file: str) -> list[Problem]:
    """Every problem of ``models`` that its providers' checks find."""
    at = _At(lines, file)
    by_kind: dict[type[ModelSpec], dict[str, ModelSpec]] = {}
    for alias, spec in models.items():
        by_kind.setdefault(type(spec), {})[alias] = spec
    for kind, entries in by_kind.items():
        kind.validate_entries(entries, models, at)
    return at.problems


def model_file_notes(
    models: Mapping[str, ModelSpec], base: Path, lines: LineMap, file: str
) -> list[Problem]:
    """A model file that does not exist yet: a warning, not an error. The file is an artefact
    (a training script or a retrain step writes it), so a workflow is valid before it exists;
    the run stops at once without it, and this says so ahead."""
    from relayflow.agents.checks import path_kind, resolve_path

    at = _At(lines, file)
    for alias, spec in models.items():
        model = spec.model_file()
        if model is not None:
            path = resolve_path(base, model)
            if path_kind(path) != "file":
                at(alias, ("model",), *spec.missing_model_file(path))
    return at.problems
