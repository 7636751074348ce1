"""Checks of ``allow:``: the folders and URL prefixes a lookup may read besides the workflow's
folder (a lookup whose host is a variable is checked against it by the retrieval agent)."""

from __future__ import annotations

from pathlib import Path

from relayflow.agents.checks import path_kind, resolve_path
from relayflow.errors import Problem
from relayflow.schema.file import WorkflowSpec
from relayflow.schema.yaml_lines import LineMap

_EXAMPLE = "e.g. `allow: [shared/kb, https://kb.example/docs/, s3://kb-bucket/public/]`"


def validate_allow(spec: WorkflowSpec, base: Path, lines: LineMap, file: str) -> list[Problem]:
    from relayflow.agents.confine import is_url, url_root

    problems = []
    for index, entry in enumerate(spec.allow):
        line = lines.line_of(("allow", index))
        field = f"allow[{index}]"
        if not entry.strip():
            problems.append(
                Problem(file, line, field, "empty", f"name a folder or URL prefix, {_EXAMPLE}")
            )
            continue
        if "{{" in entry or "{%" in entry:
            problems.append(
                Problem(file, line, field, "a template", "write a fixed folder or URL prefix")
            )
            continue
        if entry.startswith("package://"):
            continue  # a package's data: found when the lookup runs (the package may come later)
        if is_url(entry):
            if url_root(entry) is None:
                problems.append(
                    Problem(file, line, field,
                            f"{entry!r} is not a URL prefix with a host and a plain path",
                            f"write scheme://host/path/ (no `.` or `..` segments), {_EXAMPLE}")
                )  # fmt: skip
            continue
        path = resolve_path(base, entry.removeprefix("file://"))
        kind = path_kind(path)
        if kind != "dir":
            what = "folder not found" if kind == "missing" else "not a folder"
            problems.append(
                Problem(file, line, field, f"{what}: {path}",
                        "create it or fix the path (relative to the YAML)")
            )  # fmt: skip
    return problems
