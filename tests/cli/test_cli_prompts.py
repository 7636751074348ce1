"""``relayflow prompts list|show|diff|label`` on a project whose workflow asks a (fake, local
HTTP) OpenAI-compatible model; every user error is one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.prompts.templates import prompt_hash
from tests.cli.cli_support import Cli
from tests.engine.helpers import Endpoint

V1 = "Answer {{ q }}\n"
V2 = "Answer briefly: {{ q }}\n"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def project(cli: Cli, endpoint: Endpoint) -> Path:
    cli.write("ask.jinja", V1)
    return cli.write(
        "support.yaml",
        "name: support\n"
        "models:\n"
        f"  remote: {{provider: openai, model: fake, base_url: {endpoint.url}, max_retries: 0,"
        " params: {logprobs: false}}\n"
        "workflow:\n"
        "  - {name: Ask, type: inference, model: remote, prompt_template: ask.jinja}\n",
    )


def _listed(cli: Cli, *args: str) -> list[dict[str, object]]:
    result = cli("prompts", "list", *args, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_list_registers_a_workflows_templates_and_counts_runs(cli: Cli, project: Path) -> None:
    table = cli("prompts", "list", project.name)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "Ask" in line)
    assert prompt_hash(V1) in row and "ask.jinja" in row and "support" in row
    assert row.rstrip(" │").endswith("0")

    assert cli("run", project.name, "--input", '{"q": "hi"}').exit_code == 0
    cli.write("ask.jinja", V2)
    rows = _listed(cli, project.name)
    assert [(r["version"], r["runs"]) for r in rows] == [(prompt_hash(V2), 0), (prompt_hash(V1), 1)]
    assert _listed(cli, "Ask") == rows and _listed(cli) == rows


def test_label_show_and_diff(cli: Cli, project: Path) -> None:
    assert cli("prompts", "list", project.name).exit_code == 0
    cli.write("ask.jinja", V2)
    assert cli("prompts", "list", project.name).exit_code == 0

    labelled = cli("prompts", "label", "ask.jinja", "v2")
    assert labelled.exit_code == 0, labelled.output
    assert f"Ask@v2 → {prompt_hash(V2)}" in labelled.stderr
    promoted = cli("prompts", "label", f"Ask@{prompt_hash(V1)[:6]}", "production")
    assert promoted.exit_code == 0, promoted.output
    assert (cli.folder / "ask.jinja").read_text() == V2  # the file stays the user's
    assert [r["labels"] for r in _listed(cli)] == [["v2"], ["production"]]

    shown = cli("prompts", "show", "v2")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == V2.strip()
    assert f"Ask@{prompt_hash(V2)} [v2] ask.jinja" in shown.stderr

    diff = cli("prompts", "diff", "Ask@production", "v2")
    assert diff.exit_code == 0, diff.output
    lines = diff.stdout.splitlines()
    assert f"--- Ask@{prompt_hash(V1)}" in lines and f"+++ Ask@{prompt_hash(V2)}" in lines
    assert "-Answer {{ q }}" in lines and "+Answer briefly: {{ q }}" in lines

    same = cli("prompts", "diff", "v2", prompt_hash(V2))
    assert same.exit_code == 0 and "have the same text" in same.stderr

    removed = cli("prompts", "label", "Ask", "v2", "--remove")
    assert removed.exit_code == 0 and [r["labels"] for r in _listed(cli)] == [[], ["production"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "zzz"), "error: no prompt version, label or name 'zzz' in the registry"),
        (("show", "Ask@v7"), "error: 'Ask' has no version or label 'v7'"),
        (("label", "Ask", "7up"), "error: invalid label '7up'"),
        (("label", "Nobody", "v1"), "error: no prompt version, label or name 'Nobody'"),
        (("diff", "Ask", "deadbeef"), "error: no prompt version, label or name 'deadbeef'"),
        (("list", "Nobody"), "error: no prompt 'Nobody' in the registry"),
    ],
)
def test_errors_are_one_line(cli: Cli, project: Path, args: tuple[str, ...], message: str) -> None:
    assert cli("prompts", "list", project.name).exit_code == 0
    result = cli("prompts", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_without_a_store_the_error_says_how_to_make_one(cli: Cli) -> None:
    result = cli("prompts", "show", "v1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no run store at .relayflow/runs.db: run a workflow")


def test_a_step_name_in_two_workflows_needs_the_workflow(cli: Cli, project: Path) -> None:
    cli.write("sort.jinja", "Sort {{ q }}\n")
    text = project.read_text().replace("name: support", "name: triage")
    triage = cli.write("triage.yaml", text.replace("ask.jinja", "sort.jinja"))
    assert cli("prompts", "list", project.name).exit_code == 0
    assert cli("prompts", "list", triage.name).exit_code == 0

    rows = _listed(cli, "Ask")
    assert [(r["workflow"], r["version"]) for r in rows] == [
        ("support", prompt_hash(V1)),
        ("triage", prompt_hash("Sort {{ q }}\n")),
    ]
    ambiguous = cli("prompts", "show", "Ask")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == (
        "error: 'Ask' is in 2 workflows of the registry (support, triage): name one with "
        "--workflow\n"
    )
    shown = cli("prompts", "show", "Ask", "-w", "triage")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == "Sort {{ q }}"
    labelled = cli("prompts", "label", "Ask", "v1", "--workflow", "support")
    assert labelled.exit_code == 0, labelled.output
    assert [r["labels"] for r in _listed(cli, "Ask")] == [["v1"], []]
    assert [r["workflow"] for r in _listed(cli, "-w", "triage")] == ["triage"]
    models = cli("models", "list", "--json", "-w", "support")
    assert models.exit_code == 0, models.output
    assert [(v["workflow"], v["name"]) for v in json.loads(models.stdout)] == [("support", "Ask")]
    promote = cli("models", "promote", "Ask", prompt_hash(V1))
    assert promote.exit_code == 1 and "(support, triage)" in promote.stderr
    assert promote.stderr.count("\n") == 1
