"""Tests of the code test agent: how a model's answer becomes a program, each on_failure verdict,
timeouts inside a real run, and errors in the handoff."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow import sandbox
from relayflow.agents.base import BuildContext
from relayflow.agents.code_test import (
    SANDBOX_VERSIONS,
    CodeTestAgent,
    CodeTestConfig,
    assemble_program,
    extract_code,
    sandbox_timeout,
    strip_fences,
)
from relayflow.core import events as ev
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError, SpecError
from relayflow.sandbox import bwrap, run_python
from tests.engine.helpers import write_workflow

STEP = StepInfo(run_id="r1", step="RunTests", attempt=1)

PROMPT = (
    "from typing import List\n\n\n"
    "def total(numbers: List[int]) -> int:\n"
    '    """ Sum of the numbers.\n'
    "    >>> total([1, 2])\n"
    "    3\n"
    '    """\n'
)
TESTS = (
    "\n\ndef check(candidate):\n"
    "    assert candidate([]) == 0\n"
    "    assert candidate([1, 2, 3]) == 6\n"
)
BODY = "    return sum(numbers)\n"
WRONG = "    return len(numbers)\n"


def problem(completion: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "demo/0",
        "prompt": PROMPT,
        "test": TESTS,
        "entry_point": "total",
        "completion": completion,
        **extra,
    }


def agent(ctx: BuildContext, **settings: Any) -> CodeTestAgent:
    return CodeTestAgent(CodeTestConfig(name="RunTests", type="code_test", **settings), ctx)


def run(a: CodeTestAgent, data: dict[str, Any]) -> Result:
    return asyncio.run(a.run(Handoff(data, run_id="r1"), STEP))


def passes(program: str) -> bool:
    return run_python(program, timeout=10, memory_mb=256).passed


def default_backend() -> str:
    """What ``sandbox: auto`` runs here: bwrap wherever it works (CI installs it)."""
    return "bwrap" if bwrap.problem() is None else "process"


# ---- from a model's answer to a program -------------------------------------------------------


def test_a_body_continues_the_prompt() -> None:
    program = assemble_program(PROMPT, BODY, TESTS, "total")
    assert program.startswith(PROMPT + BODY)
    assert program.endswith("\n\ncheck(total)\n")
    assert passes(program)


def test_a_whole_function_in_a_fence_replaces_the_prompts_stub() -> None:
    answer = (
        "Here is the function:\n\n```python\n"
        "def total(numbers: List[int]) -> int:\n"
        "    return sum(numbers)\n\n\n"
        "print(total([1, 2]))\n"
        "```\n\nIt adds the numbers."
    )
    code = extract_code(answer, PROMPT, "total")
    assert code == (
        "from typing import List\n\n\n"
        "def total(numbers: List[int]) -> int:\n"
        "    return sum(numbers)\n"
    )
    assert code.count("def total") == 1  # the prompt is not prepended a second time
    assert passes(assemble_program(PROMPT, answer, TESTS, "total"))


def test_helpers_of_the_prompt_and_of_the_answer_are_kept() -> None:
    prompt = "def helper(x):\n    return x + 1\n\n\ndef f(x):\n    '''helper twice'''\n"
    answer = (
        "```python\nimport math\n\ndef twice(x):\n    return helper(helper(x))\n\n"
        "def f(x):\n    return twice(x)\n\nclass Unused:\n    pass\n\n"
        "if __name__ == '__main__':\n    print(f(1))\n```"
    )
    code = extract_code(answer, prompt, "f")
    assert code.startswith("def helper(x):\n    return x + 1\n\n\nimport math\n")
    assert "class Unused" in code and "__main__" not in code
    assert passes(code + "assert f(1) == 3\n")


def test_an_indented_whole_function_is_dedented() -> None:
    answer = "    def total(numbers):\n        return sum(numbers)\n"
    assert passes(assemble_program(PROMPT, answer, TESTS, "total"))


def test_a_body_written_at_column_0_is_indented() -> None:
    answer = "```\nresult = 0\nfor n in numbers:\n    result += n\nreturn result\n```"
    program = assemble_program(PROMPT, answer, TESTS, "total")
    assert PROMPT + "    result = 0\n    for n in numbers:\n        result += n\n" in program
    assert passes(program)


def test_top_level_statements_after_a_body_are_dropped() -> None:
    answer = BODY + "\n\nprint(total([1]))\nassert False\n"
    program = assemble_program(PROMPT, answer, TESTS, "total")
    assert "assert False" not in program and "print(total" not in program
    assert passes(program)


def test_without_a_prompt_or_entry_point_the_code_runs_with_its_tests() -> None:
    program = assemble_program("", "```py\ndef f():\n    return 2\n```", "assert f() == 2", None)
    assert program == "def f():\n    return 2\n\n\nassert f() == 2"
    assert passes(program)


def test_strip_fences_prefers_the_python_block_and_accepts_an_unclosed_one() -> None:
    assert strip_fences("```text\nno\n```\n```python\nyes = 1\n```") == "yes = 1"
    assert strip_fences("```python\nx = 1\ny = 2") == "x = 1\ny = 2"
    assert strip_fences("x = 1") == "x = 1"


def test_the_tests_run_before_the_step_deadline() -> None:
    assert sandbox_timeout(10) == 9
    assert sandbox_timeout(0.5) == pytest.approx(0.45)


# ---- the agent --------------------------------------------------------------------------------


def test_passing_code_records_true_with_its_time(ctx: BuildContext) -> None:
    a = agent(ctx)
    result = run(a, problem(BODY))
    assert result.verdict == "ok" and result.confidence is None
    assert result.data["passed"] is True
    assert result.data["test_error"] is None
    assert result.data["test_seconds"] > 0
    assert result.data["completion"] == BODY  # the handoff is carried on
    assert a.versions() == {"sandbox": SANDBOX_VERSIONS[default_backend()]}
    assert result.versions == a.versions()  # what ran, in the step's lineage


@pytest.mark.parametrize("choice", ["bwrap", "process"])
def test_the_sandbox_setting_chooses_the_backend_and_the_step_records_it(
    ctx: BuildContext, choice: str
) -> None:
    if choice == "bwrap" and (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap cannot run here: {reason}")
    a = agent(ctx, sandbox=choice)
    asyncio.run(a.prepare())
    assert a.versions() == {"sandbox": SANDBOX_VERSIONS[choice]}
    # the host's /etc/shadow is only out of the program's sight under bwrap
    shadow = "    import os\n    assert not os.path.exists('/etc/shadow')\n" + BODY
    result = run(a, problem(shadow))
    assert result.versions == {"sandbox": SANDBOX_VERSIONS[choice]}
    assert result.data["passed"] is (choice == "bwrap" or not Path("/etc/shadow").exists())


def test_sandbox_bwrap_where_it_cannot_run_stops_the_step_at_prepare(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap, "problem", lambda: "bwrap is not installed (Debian: apt-get …)")
    with pytest.raises(AgentError) as caught:
        asyncio.run(agent(ctx, sandbox="bwrap").prepare())
    assert str(caught.value) == (
        "step RunTests: sandbox: bwrap cannot run here: bwrap is not installed (Debian: "
        "apt-get …) — install bubblewrap (apt-get install bubblewrap) or choose sandbox: auto "
        "or process"
    )


def test_sandbox_auto_falls_back_to_the_process_sandbox(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap, "problem", lambda: "no namespaces here")
    sandbox._auto.cache_clear()
    try:
        a = agent(ctx)
        asyncio.run(a.prepare())
        assert a.versions() == {"sandbox": SANDBOX_VERSIONS["process"]}
        assert run(a, problem(BODY)).versions == {"sandbox": SANDBOX_VERSIONS["process"]}
    finally:
        sandbox._auto.cache_clear()


def test_on_failure_record_keeps_the_run_going(ctx: BuildContext) -> None:
    result = run(agent(ctx, on_failure="record", output_field="ok"), problem(WRONG))
    assert result.verdict == "ok"
    assert result.data["ok"] is False
    assert result.data["test_error"] == "AssertionError"


def test_on_failure_fail_ends_the_run_with_the_error(ctx: BuildContext) -> None:
    result = run(agent(ctx, on_failure="fail"), problem(WRONG))
    assert result.verdict == "fail"
    assert result.reason == "tests failed: AssertionError"
    assert result.data["passed"] is False


def test_on_failure_escalate_parks_the_run(ctx: BuildContext) -> None:
    result = run(agent(ctx, on_failure="escalate"), problem("    return undefined_name\n"))
    assert result.verdict == "escalate"
    assert result.reason == "tests failed: NameError: name 'undefined_name' is not defined"


def test_on_failure_escalate_only_flags_when_a_reviewer_follows(tmp_path: Path) -> None:
    ctx = BuildContext(
        base_dir=tmp_path,
        workflow_file=None,
        get_provider=lambda alias: None,  # type: ignore[arg-type, return-value]
        reviewers_downstream={"RunTests": ("Review",)},
    )
    result = run(agent(ctx, on_failure="escalate"), problem(WRONG))
    assert result.verdict == "ok"
    assert result.flags == ("tests failed: AssertionError",)


def test_passing_code_is_ok_whatever_on_failure_says(ctx: BuildContext) -> None:
    for mode in ("fail", "escalate"):
        assert run(agent(ctx, on_failure=mode), problem(BODY)).verdict == "ok"


def test_a_hanging_program_is_recorded_as_timed_out(ctx: BuildContext) -> None:
    result = run(agent(ctx, timeout=1), problem("    while True:\n        pass\n"))
    assert result.data["passed"] is False
    assert result.data["test_error"] == "timed out after 0.9 s"


def test_a_missing_field_names_the_setting_to_fix(ctx: BuildContext) -> None:
    data = problem(BODY)
    del data["test"]
    with pytest.raises(AgentError, match=r"field 'test' \(tests\) is missing.*set tests:"):
        run(agent(ctx), data)
    with pytest.raises(AgentError, match=r"field 'code' \(code\) is a int, not text"):
        run(agent(ctx, code="code"), problem(BODY, code=3))


def test_an_entry_point_that_is_not_a_name_is_refused(ctx: BuildContext) -> None:
    with pytest.raises(AgentError, match="is not a Python name"):
        run(agent(ctx), problem(BODY, entry_point="total); import os; (x"))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="on_failure"):
        CodeTestConfig(name="t", type="code_test", on_failure="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory_mb"):
        CodeTestConfig(name="t", type="code_test", memory_mb=1)


def test_an_unknown_sandbox_is_a_line_of_the_workflow_file(tmp_path: Path) -> None:
    relayflow.register("code_test", CodeTestAgent)
    with pytest.raises(SpecError) as caught:
        write_workflow(
            tmp_path,
            "workflow:\n  - name: RunTests\n    type: code_test\n    sandbox: docker\n",
            {},
        )
    assert str(caught.value).endswith(
        "workflow.yaml:4: RunTests.sandbox: 'docker' is not allowed — use one of 'auto', "
        "'bwrap' or 'process'"
    )


# ---- inside a real run -------------------------------------------------------------------------

MAKE_PROBLEM = f"""
def transform(record):
    return {{
        "prompt": {PROMPT!r},
        "test": {TESTS!r},
        "entry_point": "total",
        "completion": record["completion"],
    }}
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def handle(self, event: ev.Event) -> None:
        self.events.append(event)


def run_workflow(
    tmp_path: Path, completion: str, settings: str, recorder: Recorder | None = None
) -> relayflow.RunResult:
    relayflow.register("code_test", CodeTestAgent)
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: Make, type: transform, script: make.py}\n"
        f"  - {{name: RunTests, type: code_test, {settings}}}\n",
        {"make.py": MAKE_PROBLEM},
    )

    async def main() -> relayflow.RunResult:
        consumers = [recorder] if recorder is not None else []
        async with relayflow.Runner(wf, consumers=consumers) as runner:
            return await runner.run({"completion": completion})

    return asyncio.run(main())


def test_a_hanging_program_fails_its_tests_not_the_step(tmp_path: Path) -> None:
    # The step's deadline is 1 s; the sandbox kills the program at 0.9 s, first.
    result = run_workflow(tmp_path, "    while True:\n        pass\n", "timeout: 1")
    assert result.status == "succeeded", result.error
    assert result.output is not None
    assert result.output["passed"] is False
    assert result.output["test_error"] == "timed out after 0.9 s"


def test_on_failure_fail_fails_the_run(tmp_path: Path) -> None:
    result = run_workflow(tmp_path, WRONG, "on_failure: fail")
    assert result.status == "failed"
    assert result.step == "RunTests"
    assert result.error is not None and "AssertionError" in result.error


def test_the_run_records_which_sandbox_ran_the_tests(tmp_path: Path) -> None:
    recorder = Recorder()
    result = run_workflow(tmp_path, BODY, "sandbox: auto", recorder)
    assert result.status == "succeeded", result.error
    [finished] = [
        e for e in recorder.events if isinstance(e, ev.StepFinished) and e.step == "RunTests"
    ]
    assert finished.versions["sandbox"] == SANDBOX_VERSIONS[default_backend()]
