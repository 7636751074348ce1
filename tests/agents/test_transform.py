"""The transform agent: sync and async scripts, where they run, and every way a script can fail."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.transform import TransformAgent, TransformConfig
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError

STEP = StepInfo(run_id="r1", step="preprocess", attempt=1)

SYNC = """
import threading

def transform(record):
    record["text"] = record["text"].strip().lower()
    record["thread"] = threading.get_ident()
    return record
"""

ASYNC = """
import asyncio
import threading

async def transform(record):
    await asyncio.sleep(0)
    return {"words": len(record["text"].split()), "thread": threading.get_ident()}
"""


def write(tmp_path: Path, source: str, name: str = "pre.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def build(ctx: BuildContext, **settings: Any) -> TransformAgent:
    settings.setdefault("script", "pre.py")
    return TransformAgent(TransformConfig(name="pre", type="transform", **settings), ctx)


def run_once(agent: TransformAgent, data: dict[str, Any]) -> Result:
    async def go() -> Result:
        await agent.prepare()
        try:
            return await agent.run(Handoff(data=data, run_id="r1"), STEP)
        finally:
            await agent.close()

    return asyncio.run(go())


def run_with_loop_thread(agent: TransformAgent, data: dict[str, Any]) -> tuple[Result, int]:
    async def go() -> tuple[Result, int]:
        await agent.prepare()
        return await agent.run(Handoff(data=data), STEP), threading.get_ident()

    return asyncio.run(go())


def test_sync_function_runs_in_a_thread_by_default(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, SYNC)
    data = {"text": "  Hello World ", "id": 1}
    result, loop_thread = run_with_loop_thread(build(ctx), data)
    assert result.data["text"] == "hello world" and result.data["id"] == 1
    assert result.data["thread"] != loop_thread
    assert data == {"text": "  Hello World ", "id": 1}  # the handoff's payload is not mutated
    assert result.verdict == "ok"


def test_inline_runs_on_the_event_loop(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, SYNC)
    result, loop_thread = run_with_loop_thread(build(ctx, run_in="inline"), {"text": "A"})
    assert result.data["thread"] == loop_thread


def test_thread_runs_off_the_event_loop(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, SYNC)
    result, loop_thread = run_with_loop_thread(build(ctx, run_in="thread"), {"text": "A"})
    assert result.data["thread"] != loop_thread


@pytest.mark.parametrize("run_in", ["auto", "inline"])
def test_async_function_is_awaited_on_the_loop(
    tmp_path: Path, ctx: BuildContext, run_in: str
) -> None:
    write(tmp_path, ASYNC)
    result, loop_thread = run_with_loop_thread(build(ctx, run_in=run_in), {"text": "a b c"})
    assert result.data == {"words": 3, "thread": loop_thread}


def test_async_function_with_run_in_thread_is_refused(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, ASYNC)
    with pytest.raises(AgentError, match=r"async def.*set run_in: auto"):
        asyncio.run(build(ctx, run_in="thread").prepare())


def test_named_function_and_script_in_a_subfolder(tmp_path: Path, ctx: BuildContext) -> None:
    (tmp_path / "scripts").mkdir()
    write(tmp_path, "def clean(r):\n    return {'n': r['n'] + 1}\n", "scripts/clean.py")
    agent = build(ctx, script="scripts/clean.py", function="clean", run_in="inline")
    assert dict(run_once(agent, {"n": 1}).data) == {"n": 2}


def test_script_can_define_dataclasses(tmp_path: Path, ctx: BuildContext) -> None:
    write(
        tmp_path,
        "from __future__ import annotations\nfrom dataclasses import dataclass\n\n"
        "@dataclass\nclass Row:\n    n: int\n\n"
        "def transform(r):\n    return {'row': repr(Row(r['n']))}\n",
    )
    assert run_once(build(ctx), {"n": 5}).data == {"row": "Row(n=5)"}


def test_prepare_loads_the_script_once(tmp_path: Path, ctx: BuildContext) -> None:
    write(
        tmp_path,
        "calls = []\ncalls.append(1)\ndef transform(r):\n    return {'loads': len(calls)}\n",
    )
    agent = build(ctx, run_in="inline")

    async def go() -> list[Any]:
        await agent.prepare()
        await agent.prepare()
        return [(await agent.run(Handoff(data={}), STEP)).data["loads"] for _ in range(3)]

    assert asyncio.run(go()) == [1, 1, 1]


def test_two_agents_on_same_script_do_not_share_module_state(
    tmp_path: Path, ctx: BuildContext
) -> None:
    write(
        tmp_path, "seen = []\ndef transform(r):\n    seen.append(r)\n    return {'n': len(seen)}\n"
    )
    first, second = build(ctx, run_in="inline"), build(ctx, run_in="inline")

    async def go() -> list[Any]:
        await first.prepare()
        await second.prepare()
        a = (await first.run(Handoff(data={}), STEP)).data["n"]
        b = (await first.run(Handoff(data={}), STEP)).data["n"]
        c = (await second.run(Handoff(data={}), STEP)).data["n"]
        return [a, b, c]

    assert asyncio.run(go()) == [1, 2, 1]


def test_close_unregisters_the_module(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "def transform(r):\n    return {'module': __name__}\n")
    name = str(run_once(build(ctx, run_in="inline"), {}).data["module"])
    assert name.startswith("relayflow_script_") and name not in sys.modules


@pytest.mark.parametrize("run_in", ["auto", "inline", "thread"])
@pytest.mark.parametrize(
    ("returned", "type_name"), [("None", "NoneType"), ("[1, 2]", "list"), ("'x'", "str")]
)
def test_a_non_dict_return_is_an_error(
    tmp_path: Path, ctx: BuildContext, run_in: str, returned: str, type_name: str
) -> None:
    write(tmp_path, f"def transform(r):\n    return {returned}\n")
    with pytest.raises(
        AgentError, match=rf"pre\.py: transform\(\) returned {type_name}, not a dict"
    ):
        run_once(build(ctx, run_in=run_in), {"a": 1})


def test_an_async_non_dict_return_is_an_error(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "async def transform(r):\n    return 3\n")
    with pytest.raises(AgentError, match=r"returned int, not a dict"):
        run_once(build(ctx), {})


@pytest.mark.parametrize("run_in", ["auto", "inline", "thread"])
def test_an_exception_in_the_script_names_script_function_and_error(
    tmp_path: Path, ctx: BuildContext, run_in: str
) -> None:
    write(tmp_path, "def transform(r):\n    return {'x': r['missing']}\n")
    with pytest.raises(
        AgentError, match=r"^pre\.py: transform\(\) raised KeyError: 'missing'$"
    ) as e:
        run_once(build(ctx, run_in=run_in), {"a": 1})
    assert isinstance(e.value.__cause__, KeyError)


def test_an_exception_in_an_async_script(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "async def transform(r):\n    raise ValueError('bad amount')\n")
    with pytest.raises(AgentError, match=r"transform\(\) raised ValueError: bad amount"):
        run_once(build(ctx), {})


def test_missing_script(ctx: BuildContext) -> None:
    with pytest.raises(AgentError, match=r"cannot read transform script .*nope\.py.*check script"):
        asyncio.run(build(ctx, script="nope.py").prepare())


def test_missing_function(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "def other(r):\n    return r\n")
    with pytest.raises(
        AgentError, match=r"pre\.py: transform is not defined — define def transform"
    ):
        asyncio.run(build(ctx).prepare())
    write(tmp_path, "transform = 3\n")
    with pytest.raises(AgentError, match=r"transform is not a function"):
        asyncio.run(build(ctx).prepare())


def test_syntax_error_names_file_and_line(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "def transform(r):\n    return {\n\ndef x(:\n")
    with pytest.raises(AgentError, match=r"pre\.py:\d+: syntax error: .* — fix the script"):
        asyncio.run(build(ctx).prepare())


def test_error_at_import_time(tmp_path: Path, ctx: BuildContext) -> None:
    write(tmp_path, "import no_such_module_here\ndef transform(r):\n    return r\n")
    with pytest.raises(AgentError, match=r"importing the script raised ModuleNotFoundError"):
        asyncio.run(build(ctx).prepare())


def test_version_is_the_script_hash_and_changes_with_it(tmp_path: Path, ctx: BuildContext) -> None:
    import hashlib

    path = write(tmp_path, SYNC)
    first = build(ctx)
    assert first.versions() == {}  # nothing is known before prepare
    asyncio.run(first.prepare())
    assert first.versions() == {"script": hashlib.sha256(path.read_bytes()).hexdigest()[:12]}

    write(tmp_path, SYNC + "\n# edited\n")
    second = build(ctx)
    asyncio.run(second.prepare())
    assert second.versions()["script"] != first.versions()["script"]
    assert len(second.versions()["script"]) == 12
