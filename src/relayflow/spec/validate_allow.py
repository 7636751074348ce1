"""Checks of ``allow:`` (the folders and URL prefixes a lookup may read besides the workflow's
folder) and of lookups that could read nothing (a URL template whose host is a variable)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, RetrievalConfig, WorkflowSpec
from relayflow.schema.yaml_lines import LineMap
from relayflow.spec.validate_files import path_kind, resolve_path

if TYPE_CHECKING:
    from relayflow.spec.validate import Where

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


def validate_lookup_hosts(
    spec: WorkflowSpec, agents: list[AgentConfig], where: Where
) -> list[Problem]:
    """A lookup whose URL names its host by a variable can read only what ``allow:`` lists:
    with no URL prefix there for its scheme, every step of it would be refused."""
    from relayflow.agents.confine import is_url, literal_prefix, url_root

    schemes = {entry.partition("://")[0].lower() for entry in spec.allow if is_url(entry)}
    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, RetrievalConfig):
            continue
        prefix = literal_prefix(agent.source)
        if prefix == agent.source or not is_url(prefix):
            continue  # not a template, or not a URL one
        if url_root(prefix[: prefix.rfind("/") + 1]) is None:
            scheme = prefix.partition("://")[0].lower()
            if scheme not in schemes:
                problems.append(
                    where.problem(
                        index,
                        "source",
                        "the URL's host comes from the data, so this lookup may read nothing",
                        f"list the URL prefixes it may read under `allow:` ({scheme}://host/…), "
                        "or write the host in the source",
                    )
                )
    return problems
