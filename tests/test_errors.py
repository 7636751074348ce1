"""The one error tree: read from the source, no raise of the bare base class and no error class
outside relayflow/errors.py, so that every error says which kind it is; and the HTTP table in
relayflow/errors_http.py gives every class of the tree its own answer."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from relayflow import errors
from relayflow.errors import RelayflowError
from relayflow.errors_http import KINDS, error_class, kind_of

SRC = Path(errors.__file__).parent
TREE = {
    name
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, RelayflowError)
}


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def test_no_code_builds_the_bare_base_class() -> None:
    found = [
        f"{path.relative_to(SRC.parent)}:{node.lineno}"
        for path, module in _modules()
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and _name(node.func) == "RelayflowError"
    ]
    assert found == [], "raise one of relayflow/errors.py's classes instead: " + ", ".join(found)


def test_every_error_class_lives_in_the_tree() -> None:
    found = [
        f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}"
        for path, module in _modules()
        if path != SRC / "errors.py"
        for node in ast.walk(module)
        if isinstance(node, ast.ClassDef) and any(_name(base) in TREE for base in node.bases)
    ]
    assert found == [], "define error classes in relayflow/errors.py: " + ", ".join(found)


def test_the_source_reader_finds_what_it_looks_for() -> None:
    # the two tests above pass on an empty tree too: show that they see a raise and a class
    module = ast.parse("class Oops(errors.AgentError): ...\nraise RelayflowError('x')\n")
    calls = [
        n for n in ast.walk(module) if isinstance(n, ast.Call) and _name(n.func) == "RelayflowError"
    ]
    classes = [
        n for n in ast.walk(module) if isinstance(n, ast.ClassDef) and _name(n.bases[0]) in TREE
    ]
    assert (len(calls), len(classes)) == (1, 1)


def test_every_class_has_its_own_answer_and_its_type_leads_back_to_it() -> None:
    own = {cls for cls, _kind in KINDS}
    assert own == {getattr(errors, name) for name in TREE}
    types = [kind.type for _cls, kind in KINDS]
    assert len(set(types)) == len(types)
    for cls, kind in KINDS:
        assert error_class(kind.type) is cls
        assert kind_of(cls.__new__(cls)) is kind  # the most specific row wins
    assert error_class("no_such_type") is None and error_class(None) is None


def test_a_users_mistake_is_a_4xx() -> None:
    users = (
        errors.SpecError,
        errors.InputError,
        errors.NotFound,
        errors.Conflict,
        errors.Unauthenticated,
        errors.AccessDenied,
        errors.AgentError,
        errors.BudgetExceeded,
        errors.RateLimited,
    )
    assert {cls.__name__: 400 <= dict(KINDS)[cls].status < 500 for cls in users} == {
        cls.__name__: True for cls in users
    }
