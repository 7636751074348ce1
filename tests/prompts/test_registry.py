"""The prompt registry: templates registered by content hash when a run starts (in the one
model/prompt registry that retraining uses), labels, references, and templates pinned by label."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import relayflow
from relayflow.errors import AgentError, RelayflowError
from relayflow.prompts.registry import (
    move_label,
    prompt_versions,
    register_prompt,
    resolve,
    split_pin,
)
from relayflow.prompts.templates import PromptTemplate, prompt_hash
from relayflow.store.registry import Registry
from tests.engine.helpers import Endpoint, write_workflow


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(str(tmp_path / "runs.db")) as reg:
        yield reg


def _template(folder: Path, text: str, name: str = "ask.jinja") -> PromptTemplate:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return PromptTemplate(path, text)


def test_split_pin() -> None:
    assert split_pin("templates/reply.jinja@production") == ("templates/reply.jinja", "production")
    assert split_pin("reply.jinja@v3.1") == ("reply.jinja", "v3.1")
    assert split_pin("reply.jinja") == ("reply.jinja", None)
    assert split_pin("/home/me@corp/reply.jinja") == ("/home/me@corp/reply.jinja", None)
    assert split_pin("reply.jinja@3v") == ("reply.jinja@3v", None)


def test_a_template_is_registered_once_per_text_in_each_workflow_s_history(
    registry: Registry, tmp_path: Path
) -> None:
    one = _template(tmp_path, "Answer {{ q }}")
    first = register_prompt(registry, "Ask", one, "support")
    assert register_prompt(registry, "Ask", one, "support") == first, "registered once"
    again = register_prompt(registry, "Ask", one, "triage")
    assert first.version == again.version == prompt_hash("Answer {{ q }}") == one.version
    assert (first.workflow, again.workflow) == ("support", "triage")
    assert first.kind == "prompt" and first.artifact == "Answer {{ q }}"
    assert first.target == str((tmp_path / "ask.jinja").resolve())
    two = register_prompt(registry, "Ask", _template(tmp_path, "Reply to {{ q }}"), "support")
    listed = prompt_versions(registry)
    # two workflows with a step of the same name keep two histories
    assert [(v.workflow, v.version, v.workflows) for v in listed] == [
        ("support", two.version, ("support",)),
        ("support", first.version, ("support",)),
        ("triage", first.version, ("triage",)),
    ]
    # one registry: retraining's view (`relayflow models list`) holds the same versions
    assert {v.version for v in registry.list("Ask")} == {first.version, two.version}


def test_labels_move_and_production_is_the_promoted_version(
    registry: Registry, tmp_path: Path
) -> None:
    v1 = register_prompt(registry, "Ask", _template(tmp_path, "one {{ q }}"), "wf")
    v2 = register_prompt(registry, "Ask", _template(tmp_path, "two {{ q }}"), "wf")
    registry.set_label("Ask", "v3", v1.version)
    assert registry.labels("Ask") == {("Ask", "v3"): v1.version}
    registry.set_label("Ask", "v3", v2.version[:6])  # moved, by a prefix
    assert registry.labelled("Ask", "v3").version == v2.version
    assert [e[0] for e in registry.events("Ask")] == ["label", "label"]

    registry.set_label("Ask", "production", v1.version)
    assert registry.production("Ask").version == v1.version  # type: ignore[union-attr]
    assert (tmp_path / "ask.jinja").read_text() == "two {{ q }}"  # the user's file is untouched
    assert registry.labels("Ask")[("Ask", "production")] == v1.version
    assert [v.labels for v in prompt_versions(registry)] == [("v3",), ("production",)]

    registry.remove_label("Ask", "v3")
    assert ("Ask", "v3") not in registry.labels("Ask")
    with pytest.raises(RelayflowError, match="cannot be removed"):
        registry.remove_label("Ask", "production")
    with pytest.raises(RelayflowError, match="has no version labelled 'staging'"):
        registry.labelled("Ask", "staging")
    with pytest.raises(RelayflowError, match="invalid label '3x'"):
        registry.set_label("Ask", "3x", v1.version)


def test_references_name_one_version(registry: Registry, tmp_path: Path) -> None:
    ask1 = register_prompt(registry, "Ask", _template(tmp_path, "one {{ q }}"), "wf")
    ask2 = register_prompt(registry, "Ask", _template(tmp_path, "two {{ q }}"), "wf")
    other = register_prompt(registry, "Other", _template(tmp_path, "x", "o.jinja"), "wf")
    registry.set_label("Ask", "staging", ask1.version)
    registry.set_label("Ask", "v9", ask2.version)
    registry.set_label("Other", "v9", other.version)

    assert resolve(registry, ask2.version[:5]).version == ask2.version
    assert resolve(registry, "staging").version == ask1.version
    assert resolve(registry, "Ask@v9").version == ask2.version
    assert resolve(registry, f"Ask@{ask1.version[:4]}").version == ask1.version
    assert resolve(registry, f"{tmp_path / 'o.jinja'}@v9").name == "Other"
    assert resolve(registry, "Other").version == other.version
    with pytest.raises(RelayflowError, match=r"label 'v9' is on 2 prompts \(Ask, Other\)"):
        resolve(registry, "v9")
    with pytest.raises(RelayflowError, match="no prompt version, label or name 'nope'"):
        resolve(registry, "nope")
    with pytest.raises(RelayflowError, match="'Ask' has no version or label 'zz'"):
        resolve(registry, "Ask@zz")


def test_labelling_a_template_file_labels_its_current_text(
    registry: Registry, tmp_path: Path
) -> None:
    register_prompt(registry, "Ask", _template(tmp_path, "one {{ q }}"), "wf")
    current = register_prompt(registry, "Ask", _template(tmp_path, "two {{ q }}"), "wf")
    assert move_label(registry, str(tmp_path / "ask.jinja"), "v2").version == current.version
    (tmp_path / "ask.jinja").write_text("three {{ q }}")
    with pytest.raises(RelayflowError, match="is not registered"):
        move_label(registry, str(tmp_path / "ask.jinja"), "v3")


# ---- through the runner -------------------------------------------------------------------


def _yaml(url: str, template: str = "ask.jinja") -> str:
    return (
        "name: support\n"
        "models:\n"
        "  remote: {provider: openai, model: fake, base_url: " + url + ", max_retries: 0,"
        " params: {logprobs: false}}\n"
        "workflow:\n"
        "  - name: Ask\n"
        "    type: inference\n"
        "    model: remote\n"
        f"    prompt_template: {template}\n"
        "    cache: false\n"
    )


def _run(wf: relayflow.Workflow, store: str | None, items: int) -> None:
    async def main() -> None:
        async with relayflow.Runner(wf, store=store) as runner:
            for i in range(items):
                result = await runner.run({"q": f"question {i}"})
                assert result.status == "succeeded", result.error

    asyncio.run(main())


def test_a_run_registers_its_template_and_runs_are_counted(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    store = str(tmp_path / "runs.db")
    wf = write_workflow(tmp_path, _yaml(endpoint.url), {"ask.jinja": "Answer {{ q }}"})
    _run(wf, store, 2)
    (tmp_path / "ask.jinja").write_text("Answer briefly: {{ q }}")
    _run(relayflow.load_workflow(wf.file), store, 1)

    with Registry(store) as registry:
        listed = prompt_versions(registry)
    assert [(v.name, v.version, v.runs, v.workflows) for v in listed] == [
        ("Ask", prompt_hash("Answer briefly: {{ q }}"), 1, ("support",)),
        ("Ask", prompt_hash("Answer {{ q }}"), 2, ("support",)),
    ]


def test_a_pinned_template_runs_the_labelled_text(tmp_path: Path, endpoint: Endpoint) -> None:
    store = str(tmp_path / "runs.db")
    wf = write_workflow(tmp_path, _yaml(endpoint.url), {"ask.jinja": "Answer {{ q }}"})
    _run(wf, store, 1)
    with Registry(store) as registry:
        registry.set_label("Ask", "stable", prompt_hash("Answer {{ q }}"))
    (tmp_path / "ask.jinja").write_text("A draft nobody reviewed {{ q }}")

    pinned = write_workflow(tmp_path, _yaml(endpoint.url, "ask.jinja@stable"), {})
    _run(pinned, store, 2)

    with Registry(store) as registry:
        runs = {v.version: v.runs for v in prompt_versions(registry)}
    assert runs == {prompt_hash("Answer {{ q }}"): 3}  # the draft never ran, nor was registered


def test_a_missing_label_or_store_stops_the_run_with_one_line(
    tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    wf = write_workflow(
        tmp_path, _yaml(endpoint.url, "ask.jinja@production"), {"ask.jinja": "Answer {{ q }}"}
    )
    with pytest.raises(
        AgentError,
        match=r"^step Ask: prompt_template .*ask.jinja@production: "
        r"'Ask' has no version labelled 'production'",
    ) as err:
        _run(wf, str(tmp_path / "runs.db"), 1)
    assert "\n" not in str(err.value)
    with pytest.raises(AgentError, match="pins label 'production', which lives in the run store"):
        _run(wf, None, 1)
    assert endpoint.calls == 0


def test_two_workflows_with_a_step_of_the_same_name_keep_separate_histories(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    store = str(tmp_path / "runs.db")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    support = write_workflow(tmp_path / "a", _yaml(endpoint.url), {"ask.jinja": "Answer {{ q }}"})
    triage_yaml = _yaml(endpoint.url).replace("name: support", "name: triage")
    triage = write_workflow(tmp_path / "b", triage_yaml, {"ask.jinja": "Sort {{ q }}"})
    _run(support, store, 2)
    _run(triage, store, 1)

    with Registry(store) as registry:
        listed = prompt_versions(registry)
        assert [(v.workflow, v.name, v.version, v.runs, v.workflows) for v in listed] == [
            ("support", "Ask", prompt_hash("Answer {{ q }}"), 2, ("support",)),
            ("triage", "Ask", prompt_hash("Sort {{ q }}"), 1, ("triage",)),
        ]
        # a label on one workflow's step is not on the other's
        registry.set_label("Ask", "stable", prompt_hash("Sort {{ q }}"), workflow="triage")
        assert registry.labels("Ask", workflow="support") == {}
        assert resolve(registry, "Ask@stable").workflow == "triage"
        with pytest.raises(RelayflowError, match=r"'Ask' is in 2 workflows .*\(support, triage\)"):
            resolve(registry, "Ask")
        with pytest.raises(RelayflowError, match=r"'Ask' is in 2 workflows .*--workflow"):
            registry.production("Ask")
    with Registry(store, workflow="support") as registry:
        assert resolve(registry, "Ask").version == prompt_hash("Answer {{ q }}")
        assert [v.workflow for v in registry.list("Ask")] == ["support"]

    # retraining's view: each workflow's production is its own
    with Registry(store, workflow="support") as registry:
        registry.promote("Ask", prompt_hash("Answer {{ q }}"))
    with Registry(store) as registry:
        assert registry.production("Ask", workflow="triage") is None
        kept = registry.production("Ask", workflow="support")
        assert kept is not None and kept.version == prompt_hash("Answer {{ q }}")
