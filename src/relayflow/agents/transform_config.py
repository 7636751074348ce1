"""What a transform step may say (``TransformConfig``) and the check of its script: that it
compiles, defines ``function`` and fits ``run_in`` (agents/transform.py imports and calls it)."""

from __future__ import annotations

import ast
import importlib.machinery
from typing import TYPE_CHECKING, Literal

from relayflow.agents.checks import AgentCheck, path_kind
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.errors import Problem


class TransformConfig(AgentConfig):
    """Call ``function`` (default ``transform``) from a Python script on each record."""

    script: str
    function: str = "transform"
    run_in: Literal["auto", "inline", "thread"] = "auto"


#: names whose use may bind module names in ways a reading of the source cannot follow
_DYNAMIC = frozenset({"globals", "exec", "eval", "setattr", "vars", "locals", "__import__"})


def script_problem(agent: TransformConfig, check: AgentCheck) -> Problem | None:
    """What keeps the transform's script from being imported and called, or None."""
    path = check.resolve(agent.script)
    if path_kind(path) != "file":
        return None  # reported by the file check
    if path.suffix not in importlib.machinery.SOURCE_SUFFIXES:
        return check.problem("script", f"not a Python file: {path}", "point script: at a .py file")
    try:
        source = path.read_bytes()
    except OSError as exc:
        return check.problem(
            "script", f"cannot read {path}: {exc.strerror or exc}", "check its permissions"
        )
    try:
        # compiled as the agent compiles it: this also catches what only the compiler rejects
        # (`return` outside a function, a bad `nonlocal`)
        compile(source, str(path), "exec", dont_inherit=True)
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        at = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        return check.problem("script", f"{at}: syntax error: {exc.msg}", "fix the script")
    except (ValueError, RecursionError, MemoryError) as exc:
        return check.problem(
            "script", f"{path}: cannot compile: {exc}", "fix the script (Python source)"
        )
    bound = _module_names(tree)
    if bound is None:
        return None  # the script binds names dynamically: only importing it can tell
    function = agent.function
    at = "function" if "function" in agent.model_fields_set else "script"
    if function not in bound:
        return check.problem(
            "function",
            f"{path} defines no {function}()",
            f"define def {function}(record: dict) -> dict in the script, or set function: to "
            "the name it has",
            at=at,
        )
    if bound[function] == "async" and agent.run_in == "thread":
        return check.problem(
            "run_in",
            f"{function} is async def, which runs on the event loop",
            "set run_in: auto (or make it a plain def to run it in a thread)",
        )
    return None


def _module_names(tree: ast.Module) -> dict[str, str] | None:
    """The names the module binds when it runs, each with how ("async" for an ``async def``
    alone, else "other"); None when it may bind names that the source does not spell out
    (``from x import *``, ``globals()[...]``, a module ``__getattr__``)."""
    bound: dict[str, str] = {}

    def bind(name: str, how: str) -> None:
        bound[name] = how if bound.get(name, how) == how else "other"

    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and node.id in _DYNAMIC:
            return None
        if isinstance(node, ast.alias):
            if node.name == "*":
                return None
            bind(node.asname or node.name.partition(".")[0], "other")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bind(node.name, "async" if isinstance(node, ast.AsyncFunctionDef) else "other")
            # decorators, defaults and bases run at import; a function's body does not, and
            # the names a class body binds are the class's
            stack.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                stack.extend([*node.bases, *node.keywords])
            else:
                stack.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d)
            continue
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bind(node.id, "other")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bind(node.name, "other")
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            bind(node.name, "other")
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bind(node.rest, "other")
        if isinstance(node, ast.Lambda):
            continue
        stack.extend(ast.iter_child_nodes(node))
    if "__getattr__" in bound:
        return None
    return bound
