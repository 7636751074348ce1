"""Redaction of what sensitive agents wrote (server/redact.py)."""

from __future__ import annotations

from relayflow.server.redact import MASK, Redactor


def test_the_fields_a_sensitive_step_wrote_are_masked_downstream_only() -> None:
    deps = {"a": (), "pii": ("a",), "b": ("pii",)}
    r = Redactor(["pii"], deps, {"id": 1})
    r.see("a", {"id": 1, "n": 1})
    r.see("pii", {"id": 1, "n": 1, "ssn": "x", "name": "Ann"})
    r.see("b", {"id": 1, "n": 2, "ssn": "x", "name": "Ann"})
    assert r.keys == {"ssn", "name"}
    assert r.step_output("a", {"id": 1, "n": 1}) == ({"id": 1, "n": 1}, False)
    shown, hidden = r.step_output("pii", {"id": 1, "n": 1, "ssn": "x", "name": "Ann"})
    assert hidden and set(shown or {}) == {"id", "n", "ssn", "name"}
    assert set((shown or {}).values()) == {MASK}
    assert r.mask({"n": 2, "ssn": "x", "name": "Ann"}) == (
        {"n": 2, "ssn": MASK, "name": MASK},
        True,
    )


def test_a_field_the_sensitive_step_changed_counts_as_written() -> None:
    r = Redactor(["pii"], {"pii": ()}, {"email": "a@b.c", "n": 1})
    r.see("pii", {"email": "hashed", "n": 1})
    assert r.keys == {"email"}


def test_nothing_sensitive_hides_nothing() -> None:
    r = Redactor([], {}, None)
    assert not r
    assert r.step_output("x", {"a": 1}) == ({"a": 1}, False)
