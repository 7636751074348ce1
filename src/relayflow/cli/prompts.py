"""``relayflow prompts list|show|diff|label``: the prompt versions in the registry (registered by
content hash when a run starts), their labels, their text and the differences between two."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relayflow.cli.common import StoreOption, load_workflow, store_for_writing
from relayflow.cli.models import WorkflowOption, existing_store
from relayflow.cli.output import UserError, console, local_time, note, print_json

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow
    from relayflow.store.registry import ModelVersion, Registry

app = typer.Typer(
    help="Prompt versions by content hash: list them, show or diff their text, label one.",
    no_args_is_help=True,
)

RefArgument = Annotated[
    str,
    typer.Argument(
        help="A version hash (or a unique prefix), a label, NAME@LABEL or NAME@HASH (NAME: the "
        "inference step or its template file), or a NAME alone (its production version, else "
        "its newest).",
        show_default=False,
    ),
]


def _registry(store: str | None, workflow: str | None, *, create: bool = False) -> Registry:
    from relayflow.store.registry import Registry

    location = store_for_writing(store) if create else existing_store(store)
    return Registry(location, workflow=workflow)


def register_workflow(registry: Registry, workflow: Workflow) -> list[tuple[str, str]]:
    """Register the template of every inference step of ``workflow`` (as a run start does);
    their keys (workflow, step), in file order."""
    from relayflow.agents.inference import InferenceConfig
    from relayflow.prompts.registry import register_prompt
    from relayflow.prompts.templates import PromptTemplate, load_template, split_pin

    names = []
    for step in workflow.agents:
        if not isinstance(step, InferenceConfig) or step.features is not None:
            continue
        if step.prompt_template is not None:
            file, label = split_pin(step.prompt_template)
            path = Path(file).expanduser()
            template = load_template(path if path.is_absolute() else workflow.base_dir / path)
        else:
            label, template = None, PromptTemplate(None, step.prompt or "")
        register_prompt(registry, step.name, template, workflow.name, used=label is None)
        names.append((workflow.name, step.name))
    return names


def _is_workflow(what: str) -> bool:
    return what.endswith((".yaml", ".yml")) and Path(what).is_file()


def _display(target: str | None) -> str:
    """A template path relative to the current folder when it is inside it."""
    if target is None:
        return "(inline)"
    try:
        return str(Path(target).relative_to(Path.cwd()))
    except ValueError:
        return target


@app.command("list")
def list_prompts(
    what: Annotated[
        str | None,
        typer.Argument(
            help="A workflow file (its templates are registered first), a step name or a "
            "template file. Default: every prompt.",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    workflow_name: WorkflowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every prompt version, newest first: its workflow and step, hash, labels, template, first
    seen, the workflows that used it and how many runs ran it."""
    from relayflow.prompts.registry import prompt_keys, prompt_versions

    workflow = what is not None and _is_workflow(what)
    registry = _registry(store, workflow_name, create=workflow)
    try:
        if what is None:
            keys = None
        elif workflow:
            keys = register_workflow(registry, load_workflow(what))
        else:
            keys = prompt_keys(registry, what, one_workflow=False)
        versions = prompt_versions(registry, keys)
    finally:
        registry.close()
    if as_json:
        print_json(
            [
                {
                    "workflow": v.workflow,
                    "name": v.name,
                    "version": v.version,
                    "labels": list(v.labels),
                    "template": v.template,
                    "first_seen": v.first_seen,
                    "workflows": list(v.workflows),
                    "runs": v.runs,
                    "status": v.status,
                }
                for v in versions
            ]
        )
        return
    out = console()
    if not versions:
        out.print(
            "no prompts in the registry: run a workflow, or `relayflow prompts list "
            "WORKFLOW.yaml` to register its templates",
            markup=False,
        )
        return
    from rich.table import Table
    from rich.text import Text

    table = Table()
    columns = ("workflow", "name", "version", "labels", "template", "first seen", "used by", "runs")
    for column in columns:
        table.add_column(column, no_wrap=column not in ("template", "used by"))
    for v in versions:
        cells = (
            v.workflow,
            v.name,
            v.version,
            ", ".join(v.labels) or "-",
            _display(v.template),
            local_time(v.first_seen),
            ", ".join(v.workflows) or "-",
            str(v.runs),
        )
        table.add_row(*(Text(c) for c in cells), style="bold" if v.labels else None)
    out.print(table)


def _resolve(registry: Registry, ref: str) -> ModelVersion:
    from relayflow.prompts.registry import resolve

    return resolve(registry, ref)


@app.command("show")
def show(ref: RefArgument, store: StoreOption = None, workflow: WorkflowOption = None) -> None:
    """Print the text of a prompt version (highlighted on a terminal)."""
    registry = _registry(store, workflow)
    try:
        version = _resolve(registry, ref)
        labels = sorted(
            label
            for (_n, label), v in registry.labels(version.name, workflow=version.workflow).items()
            if v == version.version
        )
    finally:
        registry.close()
    if version.kind != "prompt":
        raise UserError(f"{ref!r} is a {version.kind} model, not a prompt")
    tags = f" [{', '.join(labels)}]" if labels else ""
    note(f"{version.name}@{version.version}{tags} {_display(version.target)}")
    from rich.syntax import Syntax

    console().print(Syntax(version.artifact, "jinja", word_wrap=True, background_color="default"))


@app.command("diff")
def diff(
    old: RefArgument,
    new: Annotated[str, typer.Argument(help="The version to compare with.", show_default=False)],
    store: StoreOption = None,
    workflow: WorkflowOption = None,
    context: Annotated[int, typer.Option("--context", "-U", help="Lines of context.")] = 3,
) -> None:
    """A unified diff of two prompt versions (coloured on a terminal)."""
    import difflib

    registry = _registry(store, workflow)
    try:
        a, b = _resolve(registry, old), _resolve(registry, new)
    finally:
        registry.close()
    lines = list(
        difflib.unified_diff(
            a.artifact.splitlines(keepends=True),
            b.artifact.splitlines(keepends=True),
            fromfile=f"{a.name}@{a.version}",
            tofile=f"{b.name}@{b.version}",
            n=context,
        )
    )
    if not lines:
        note(f"{a.name}@{a.version} and {b.name}@{b.version} have the same text")
        return
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    from rich.syntax import Syntax

    console().print(Syntax(text, "diff", background_color="default"), end="")


@app.command("label")
def label(
    ref: Annotated[
        str,
        typer.Argument(
            help="What to label: a template file (its current text), a version hash, "
            "NAME@HASH, NAME@LABEL, or a step name (its newest version).",
            show_default=False,
        ),
    ],
    name: Annotated[
        str,
        typer.Argument(
            help="The label (v3, staging, production: labelling production promotes the version "
            "and writes it to its template file).",
            show_default=False,
        ),
    ],
    store: StoreOption = None,
    workflow: WorkflowOption = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Take the label off REF's prompt instead.")
    ] = False,
) -> None:
    """Point a label at a prompt version (moving it from the version it was on)."""
    from relayflow.prompts.registry import move_label, prompt_keys

    registry = _registry(store, workflow)
    try:
        if remove:
            for owner, prompt in prompt_keys(registry, ref.rpartition("@")[0] or ref):
                registry.remove_label(prompt, name, workflow=owner)
                note(f"{prompt}: label {name} removed")
            return
        chosen = move_label(registry, ref, name)
    finally:
        registry.close()
    note(f"{chosen.name}@{name} → {chosen.version}")
