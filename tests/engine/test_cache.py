"""The step cache: a deterministic step's result is reused for the same input and versions,
and never when its prompt, model, script or settings changed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import relayflow
from relayflow.core import events as ev
from tests.engine.helpers import Endpoint, write_workflow


class Finished:
    def __init__(self) -> None:
        self.events: list[ev.StepFinished] = []

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished):
            self.events.append(event)

    def cached(self, step: str) -> list[bool]:
        return [e.cached for e in self.events if e.step == step]


def _yaml(url: str, *, model: str = "fake", temperature: float = 0.0, extra: str = "") -> str:
    return (
        "models:\n"
        "  remote:\n"
        "    provider: openai\n"
        f"    model: {model}\n"
        f"    base_url: {url}\n"
        "    max_retries: 0\n"
        "    params: {logprobs: false}\n"
        f"{extra}"
        "workflow:\n"
        "  - {name: prepare, type: transform, script: prep.py}\n"
        "  - name: ask\n"
        "    type: inference\n"
        "    model: remote\n"
        "    prompt_template: ask.jinja\n"
        f"    temperature: {temperature}\n"
    )


SCRIPTS = {
    "prep.py": "def transform(r):\n    return {**r, 'prepared': True}\n",
    "ask.jinja": "Answer {{ q }}",
}


def _run(wf: relayflow.Workflow, store: str, items: list[dict[str, object]]) -> Finished:
    seen = Finished()

    async def main() -> None:
        async with relayflow.Runner(wf, store=store, consumers=[seen]) as runner:
            for item in items:
                result = await runner.run(item)
                assert result.status == "succeeded", result.error

    asyncio.run(main())
    return seen


def test_the_same_input_is_answered_from_the_cache(tmp_path: Path, endpoint: Endpoint) -> None:
    store = str(tmp_path / "runs.db")
    wf = write_workflow(tmp_path, _yaml(endpoint.url), SCRIPTS)
    first = _run(wf, store, [{"q": "a"}, {"q": "a"}, {"q": "b"}])
    assert endpoint.calls == 2
    assert first.cached("ask") == [False, True, False]
    hit = first.events[3]
    assert hit.usage == relayflow.Usage() and hit.versions["cache"] == "hit"
    assert hit.output == first.events[1].output
    # the transform is not cached by default: only inference at temperature 0 is
    assert first.cached("prepare") == [False, False, False]
    # a later runner (another process) finds the result in the store
    again = _run(relayflow.load_workflow(wf.file), store, [{"q": "b"}])
    assert again.cached("ask") == [True]
    assert endpoint.calls == 2


def test_a_changed_prompt_model_or_setting_is_never_served_stale(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    store = str(tmp_path / "runs.db")
    wf = write_workflow(tmp_path, _yaml(endpoint.url), SCRIPTS)
    _run(wf, store, [{"q": "a"}])
    assert endpoint.calls == 1
    (tmp_path / "ask.jinja").write_text("Answer briefly: {{ q }}")
    assert _run(relayflow.load_workflow(wf.file), store, [{"q": "a"}]).cached("ask") == [False]
    assert endpoint.calls == 2
    wf = write_workflow(tmp_path, _yaml(endpoint.url, model="fake-2"), {})
    assert _run(wf, store, [{"q": "a"}]).cached("ask") == [False]
    assert endpoint.calls == 3
    wf = write_workflow(
        tmp_path,
        _yaml(endpoint.url, model="fake-2").replace(
            "temperature: 0.0", "temperature: 0.0\n    max_tokens: 9"
        ),
        {},
    )
    assert _run(wf, store, [{"q": "a"}]).cached("ask") == [False]
    assert endpoint.calls == 4


def test_a_changed_script_is_never_served_stale(tmp_path: Path, endpoint: Endpoint) -> None:
    store = str(tmp_path / "runs.db")
    wf = write_workflow(tmp_path, _yaml(endpoint.url, extra="cache: true\n"), SCRIPTS)
    seen = _run(wf, store, [{"q": "a"}, {"q": "a"}])
    assert seen.cached("prepare") == [False, True]
    (tmp_path / "prep.py").write_text("def transform(r):\n    return {**r, 'prepared': 2}\n")
    seen = _run(relayflow.load_workflow(wf.file), store, [{"q": "a"}])
    assert seen.cached("prepare") == [False]
    assert seen.events[0].output["prepared"] == 2


def test_sampling_is_cached_only_on_explicit_opt_in(tmp_path: Path, endpoint: Endpoint) -> None:
    store = str(tmp_path / "runs.db")
    hot = _yaml(endpoint.url, temperature=0.7, extra="cache: true\n")
    wf = write_workflow(tmp_path, hot, SCRIPTS)
    assert _run(wf, store, [{"q": "a"}, {"q": "a"}]).cached("ask") == [False, False]
    opted = hot.replace("    temperature: 0.7\n", "    temperature: 0.7\n    cache: true\n")
    wf = write_workflow(tmp_path, opted, {})
    assert _run(wf, store, [{"q": "a"}, {"q": "a"}]).cached("ask") == [False, True]


def test_entries_expire_after_their_ttl(tmp_path: Path, endpoint: Endpoint) -> None:
    store = str(tmp_path / "runs.db")
    text = _yaml(endpoint.url).replace(
        "    temperature: 0.0\n", "    temperature: 0.0\n    cache: {ttl: 0.2}\n"
    )
    wf = write_workflow(tmp_path, text, SCRIPTS)
    assert _run(wf, store, [{"q": "a"}, {"q": "a"}]).cached("ask") == [False, True]
    time.sleep(0.3)
    assert _run(wf, store, [{"q": "a"}]).cached("ask") == [False]


def test_cache_false_turns_it_off(tmp_path: Path, endpoint: Endpoint) -> None:
    text = _yaml(endpoint.url).replace(
        "    temperature: 0.0\n", "    temperature: 0.0\n    cache: false\n"
    )
    wf = write_workflow(tmp_path, text, SCRIPTS)
    seen = _run(wf, str(tmp_path / "runs.db"), [{"q": "a"}, {"q": "a"}])
    assert seen.cached("ask") == [False, False]
    assert endpoint.calls == 2


def test_hits_and_misses_reach_the_bench_figures(tmp_path: Path, endpoint: Endpoint) -> None:
    from relayflow.bench.collector import Collector, figures

    wf = write_workflow(tmp_path, _yaml(endpoint.url), SCRIPTS)
    collector = Collector(measuring=True)

    async def main() -> None:
        async with relayflow.Runner(
            wf, store=str(tmp_path / "runs.db"), consumers=[collector]
        ) as runner:
            for q in ("a", "a", "b", "a"):
                await runner.run({"q": q})

    asyncio.run(main())
    f = figures(collector.runs(), cpu_seconds=0.0, rate=0.0)
    assert (f.cache_hits, f.cache_misses) == (2, 2)


def test_a_runner_can_bypass_the_cache(tmp_path: Path, endpoint: Endpoint) -> None:
    wf = write_workflow(tmp_path, _yaml(endpoint.url), SCRIPTS)
    seen = Finished()

    async def main() -> None:
        async with relayflow.Runner(
            wf, store=str(tmp_path / "runs.db"), consumers=[seen], use_cache=False
        ) as runner:
            for _ in range(2):
                await runner.run({"q": "a"})

    asyncio.run(main())
    assert seen.cached("ask") == [False, False]
    assert all("cache" not in e.versions for e in seen.events)
    assert endpoint.calls == 2
