"""The code test agent: runs generated code against its tests in the sandbox (bubblewrap, or the
process sandbox) and records whether they passed (HumanEval-style: prompt + completion + tests +
``check(entry)``)."""

from __future__ import annotations

import asyncio
import re
import signal
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from relayflow.agents.base import Agent, BuildContext
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.core.handoff import Handoff
    from relayflow.sandbox import Isolation

#: the version of each sandbox backend, in the step's versions (lineage and cache key): what
#: ran shapes what a program can do (v2: stdout and stderr are no longer files in its folder)
SANDBOX_VERSIONS: Mapping[str, str] = {
    "bwrap": "bwrap-v1",
    "process": "process-v2",
}
#: the most of an error message kept in ``test_error``
ERROR_LIMIT = 300

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
#: top-level lines that may follow a function and still belong to the code
_KEEP_AFTER = ("def ", "async def ", "class ", "import ", "from ", "@", "#")


class CodeTestConfig(AgentConfig):
    """Run ``data[code]`` (after ``data[prompt]``) with ``data[tests]`` and ``check(entry)``."""

    code: str = "completion"
    prompt: str | None = "prompt"
    tests: str = "test"
    entry_point: str | None = "entry_point"
    #: the step's deadline; the tests themselves get it less a margin (see sandbox_timeout)
    timeout: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=512, ge=32)
    on_failure: Literal["record", "fail", "escalate"] = "record"
    output_field: str = "passed"
    #: what isolates the program: bubblewrap (``bwrap``), the process sandbox (``process``:
    #: limits only, see relayflow/sandbox), or bwrap where it works (``auto``, with a warning
    #: when it falls back)
    sandbox: Literal["auto", "bwrap", "process"] = "auto"


def sandbox_timeout(step_timeout: float) -> float:
    """The tests' wall-clock limit: the step's timeout less 10 % (at most 1 s), so that a
    program that hangs is killed and recorded as failing before the runner's own deadline for
    the step ends it as an error."""
    return step_timeout - min(1.0, step_timeout / 10)


def strip_fences(text: str) -> str:
    """The code inside a Markdown fence (the first ``python`` one, else the first one; an
    unclosed fence runs to the end), or ``text`` itself when it has no fence."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    for language, body in blocks:
        if language.lower() in ("python", "py", "python3"):
            return str(body)
    return str(blocks[0][1])


def _until_top_level(lines: list[str], keep: tuple[str, ...]) -> list[str]:
    """``lines`` up to the first non-blank line at column 0 that does not start with ``keep``
    (a model's example calls, prints and ``if __name__`` blocks after the code)."""
    for index, line in enumerate(lines):
        if line.strip() and not line[0].isspace() and not line.startswith(keep):
            return lines[:index]
    return lines


def _defines(code: str, entry_point: str) -> int | None:
    """The index of the top-level line that starts ``def entry_point(``, if any."""
    pattern = re.compile(rf"^(async\s+)?def\s+{re.escape(entry_point)}\s*\(")
    for index, line in enumerate(code.splitlines()):
        if pattern.match(line):
            return index
    return None


def _preamble(prompt: str, entry_point: str) -> str:
    """What the prompt holds before its ``def entry_point(`` (imports, helper functions)."""
    lines = prompt.splitlines(keepends=True)
    index = _defines(prompt, entry_point)
    return "".join(lines[:index]) if index is not None else prompt


def extract_code(completion: str, prompt: str, entry_point: str | None) -> str:
    """The program text that a model's answer contributes after the prompt.

    Models answer either with the function's body (HumanEval's convention: it continues the
    prompt) or with the whole function again, often inside a Markdown fence, followed by
    example calls. So: take the fenced code; when it defines ``entry_point`` itself, return the
    prompt's preamble (imports, helpers) plus that code, without the prompt's own stub; else
    treat it as the body, indenting it when the model wrote it at column 0. Trailing top-level
    statements (``print(...)``, ``if __name__ == ...``, asserts) are dropped in both cases.
    """
    code = strip_fences(completion).expandtabs(4).rstrip()
    if entry_point is not None and _defines(textwrap.dedent(code), entry_point) is not None:
        code = textwrap.dedent(code)  # the whole function, perhaps indented as a block
    lines = code.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if entry_point is not None and (start := _defines("\n".join(lines), entry_point)) is not None:
        # keep its imports and helpers above it, then the function and what belongs with it
        head = [ln for ln in lines[:start] if ln.startswith(_KEEP_AFTER) or ln[:1].isspace()]
        body = lines[start : start + 1] + _until_top_level(lines[start + 1 :], _KEEP_AFTER)
        return _preamble(prompt, entry_point) + "\n".join(head + body).rstrip() + "\n"
    if not prompt:
        return "\n".join(lines) + "\n"
    if lines and not lines[0][:1].isspace() and not lines[0].startswith(_KEEP_AFTER):
        lines = ["    " + ln if ln.strip() else ln for ln in lines]
    body = _until_top_level(lines, ("def ", "async def ", "class ", "@"))
    return prompt + "\n".join(body).rstrip() + "\n"


def assemble_program(prompt: str, completion: str, tests: str, entry_point: str | None) -> str:
    """The whole program run in the sandbox: code, tests and the call that runs them."""
    program = extract_code(completion, prompt, entry_point) + "\n\n" + tests
    if entry_point is not None:
        program += f"\n\ncheck({entry_point})\n"
    return program


def error_line(stderr: str, returncode: int, timed_out: bool, timeout: float) -> str:
    """Why a program failed, in one line of at most 300 characters."""
    if timed_out:
        return f"timed out after {timeout:g} s"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines:
        return lines[-1][:ERROR_LIMIT]
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class CodeTestAgent(Agent):
    """Test the code in ``data[code]``: ``data[output_field]`` says whether it passed, with
    ``test_seconds`` and ``test_error``. A failure is recorded (verdict ok), fails the run, or
    escalates it to a human (only flagged when a ``human_review`` step follows)."""

    type_name: ClassVar[str] = "code_test"
    Config: ClassVar[type[AgentConfig]] = CodeTestConfig
    cacheable: ClassVar[bool] = True
    config: CodeTestConfig

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, CodeTestConfig):
            config = CodeTestConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        #: the backend that runs this step's programs, chosen in prepare
        self._isolation: Isolation | None = None

    async def prepare(self) -> None:
        # probed once per process by starting a child: do it off the event loop, up front
        self._isolation = await asyncio.to_thread(self._resolve)

    def _resolve(self) -> Isolation:
        from relayflow.sandbox import resolve_backend

        try:
            return resolve_backend(self.config.sandbox)
        except OSError as exc:
            raise AgentError(f"step {self.name}: sandbox: {exc}") from exc

    def versions(self) -> Mapping[str, str]:
        if self._isolation is None:
            self._isolation = self._resolve()
        return {"sandbox": SANDBOX_VERSIONS[self._isolation]}

    def _text(self, data: Mapping[str, Any], field: str, setting: str) -> str:
        if field not in data:
            has = ", ".join(sorted(map(str, data))) or "nothing"
            raise AgentError(
                f"step {self.name}: field {field!r} ({setting}) is missing from the handoff "
                f"(has: {has}) — set {setting}: to the field that holds it"
            )
        value = data[field]
        if not isinstance(value, str):
            raise AgentError(
                f"step {self.name}: field {field!r} ({setting}) is a {type(value).__name__}, "
                "not text — point it at a string field"
            )
        return value

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        from relayflow.sandbox import run_python_async

        cfg = self.config
        data = handoff.data
        code = self._text(data, cfg.code, "code")
        tests = self._text(data, cfg.tests, "tests")
        prompt = self._text(data, cfg.prompt, "prompt") if cfg.prompt is not None else ""
        entry = (
            self._text(data, cfg.entry_point, "entry_point")
            if cfg.entry_point is not None
            else None
        )
        if entry is not None and not entry.isidentifier():
            raise AgentError(
                f"step {self.name}: entry point {entry[:80]!r} is not a Python name — "
                "check the entry_point field"
            )
        limit = sandbox_timeout(cfg.timeout)
        try:
            outcome = await run_python_async(
                assemble_program(prompt, code, tests, entry),
                timeout=limit,
                memory_mb=cfg.memory_mb,
                backend=self._isolation or cfg.sandbox,
            )
        except OSError as exc:
            raise AgentError(f"step {self.name}: cannot start the test sandbox: {exc}") from exc
        error = (
            None
            if outcome.passed
            else error_line(outcome.stderr, outcome.returncode, outcome.timed_out, limit)
        )
        out = {
            **data,
            cfg.output_field: outcome.passed,
            "test_seconds": round(outcome.seconds, 4),
            "test_error": error,
        }
        # what ran, in the step's lineage
        versions = {"sandbox": SANDBOX_VERSIONS[outcome.isolation]}
        if outcome.passed or cfg.on_failure == "record":
            return Result(data=out, versions=versions)
        reason = f"tests failed: {error}"
        if cfg.on_failure == "escalate" and self.ctx.reviewers_downstream.get(cfg.name):
            return Result(data=out, flags=(reason,), versions=versions)
        return Result(data=out, verdict=cfg.on_failure, reason=reason, versions=versions)
