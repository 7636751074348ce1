"""Checks of ``consumers:``: each entry names a known consumer type (built-in, registered or
from the ``relayflow.consumers`` entry-point group), and its settings pass that type's model
and its own ``check``; each problem at the entry's line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from relayflow.consumers.base import ConsumerContext
from relayflow.consumers.registry import ConsumerTypeError, consumer_class, known_types
from relayflow.errors import Problem
from relayflow.schema.file import WorkflowSpec
from relayflow.schema.problems import did_you_mean, problems_from
from relayflow.schema.yaml_lines import LineMap


def consumer_context(
    name: str, base: Path, file: Path, lines: LineMap, index: int
) -> ConsumerContext:
    """The context of entry ``index`` of ``consumers:``, its errors at the entry's line."""
    return ConsumerContext(
        workflow=name,
        base_dir=base,
        file=file,
        line=lines.line_of(("consumers", index)),
        field=f"consumers[{index}]",
    )


def validate_consumers(spec: WorkflowSpec, base: Path, lines: LineMap, file: str) -> list[Problem]:
    problems: list[Problem] = []
    for index, entry in enumerate(spec.consumers):
        label = f"consumers[{index}]"
        try:
            cls = consumer_class(entry.type)
        except ConsumerTypeError as exc:
            guess = did_you_mean(entry.type, known_types()) if exc.unknown else None
            fix = f"did you mean `{guess}`?" if guess else exc.fix
            line = lines.line_of(("consumers", index, "type"))
            problems.append(Problem(file, line, f"{label}.type", exc.message, fix))
            continue
        try:
            settings = cls.settings.model_validate(entry.settings)
        except ValidationError as exc:
            problems += problems_from(exc, ("consumers", index), file, lines, cls.settings, label)
            continue
        context = consumer_context(spec.name or "", base, Path(file), lines, index)
        for finding in cls.check(settings, context):
            line = lines.line_of(("consumers", index, finding.field))
            problems.append(
                Problem(file, line, f"{label}.{finding.field}", finding.message, finding.fix)
            )
    return problems
