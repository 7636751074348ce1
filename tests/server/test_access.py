"""Tokens and roles (govern/access.py), the `relayflow tokens` commands, and the workflow's
``access.sensitive`` setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from relayflow.cli import app
from relayflow.errors import AccessDenied, SpecError
from relayflow.govern.access import Action, Grant, TokenStore, hash_token, parse_grant
from relayflow.spec.loader import load_spec
from relayflow.store import schema
from relayflow.store.sql_store import SqlStore


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    store = SqlStore(str(tmp_path / "runs.db"))
    store.close()
    return TokenStore(SqlStore(str(tmp_path / "runs.db"), journal=False).engine)


def test_only_a_hash_of_the_secret_is_stored(tokens: TokenStore) -> None:
    secret, token = tokens.create("ci", [Grant("*", "admin")], team="platform")
    with tokens.engine.connect() as conn:
        [row] = list(conn.execute(select(schema.api_tokens)))
    assert secret not in str(tuple(row))
    assert row.hash == hash_token(secret)
    found = tokens.authenticate(secret)
    assert found is not None and (found.name, found.team) == ("ci", "platform")
    assert tokens.authenticate(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None
    assert tokens.authenticate("not-a-token") is None


def test_a_revoked_token_no_longer_authenticates(tokens: TokenStore) -> None:
    secret, token = tokens.create("temp", [Grant("support", "viewer")])
    assert [t.token_id for t in tokens.revoke("temp")] == [token.token_id]
    assert tokens.authenticate(secret) is None
    assert tokens.list_tokens() == []
    assert [t.name for t in tokens.list_tokens(include_revoked=True)] == ["temp"]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"read"}),
        ("operator", {"read", "submit", "cancel", "feedback"}),
        ("reviewer", {"read", "review", "feedback"}),
        ("admin", {"read", "submit", "cancel", "review", "feedback", "register", "audit"}),
    ],
)
def test_what_each_role_allows_on_its_workflow_only(role: str, allowed: set[str]) -> None:
    from relayflow.govern.access import Token

    token = Token("t", "n", (parse_grant(f"support={role}"),), None, 0.0, None)
    actions: tuple[Action, ...] = (
        "read",
        "submit",
        "cancel",
        "review",
        "feedback",
        "register",
        "audit",
    )
    assert {a for a in actions if token.allows(a, "support")} == allowed
    assert not token.allows("audit", None)  # the denials log needs a "*" admin
    assert not any(token.allows(a, "billing") for a in actions)
    with pytest.raises(AccessDenied, match="needs role"):
        token.check("register" if role != "admin" else "audit", "billing")


def test_a_star_grant_covers_every_workflow_and_the_audit_log() -> None:
    from relayflow.govern.access import Token

    token = Token("t", "n", (Grant("*", "admin"),), None, 0.0, None)
    assert token.allows("register", "anything") and token.allows("audit", None)
    assert token.sees_sensitive("anything")
    viewer = Token(
        "t", "n", (parse_grant("a=viewer+sensitive"), Grant("b", "viewer")), None, 0, None
    )
    assert viewer.sees_sensitive("a") and not viewer.sees_sensitive("b")


@pytest.mark.parametrize(
    "text", ["support", "support=boss", "=admin", "a=viewer+all", "a=admin+code+code"]
)
def test_a_malformed_grant_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="WORKFLOW=ROLE"):
        parse_grant(text)


def test_registering_code_needs_admin_on_star_or_plus_code() -> None:
    from relayflow.govern.access import Token

    def token(*grants: str) -> Token:
        return Token("t", "n", tuple(parse_grant(g) for g in grants), None, 0.0, None)

    assert token("*=admin").allows("register_code", "support")
    assert token("support=admin+code").allows("register_code", "support")
    assert token("support=admin+sensitive+code").allows("register_code", "support")
    assert not token("support=admin+code").allows("register_code", "billing")
    scoped = token("support=admin")  # a scoped admin: never by default
    assert scoped.allows("register", "support") and not scoped.allows("register_code", "support")
    with pytest.raises(AccessDenied, match="runs code on workflow 'support'.*admin\\+code"):
        scoped.check("register_code", "support")
    with pytest.raises(ValueError, match=r"\+code .* goes with role admin only"):
        parse_grant("support=operator+code")
    assert str(parse_grant("support=admin+sensitive+code")) == "support=admin+sensitive+code"


def test_the_tokens_commands_create_list_and_revoke(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    runner = CliRunner()
    created = runner.invoke(
        app, ["tokens", "create", "alice", "--role", "support=reviewer", "--store", store]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("rf_")
    listed = runner.invoke(app, ["tokens", "list", "--store", store])
    assert "alice" in listed.stdout and "support=reviewer" in listed.stdout
    assert secret not in listed.stdout
    coder = ["tokens", "create", "carol", "--role", "support=admin+code", "--store", store]
    assert runner.invoke(app, coder).exit_code == 0
    assert "support=admin+code" in runner.invoke(app, ["tokens", "list", "--store", store]).stdout
    bad = runner.invoke(app, ["tokens", "create", "bob", "--role", "nonsense", "--store", store])
    assert bad.exit_code == 2 and "WORKFLOW=ROLE" in bad.output
    revoked = runner.invoke(app, ["tokens", "revoke", "alice", "--store", store])
    assert revoked.exit_code == 0
    missing = runner.invoke(app, ["tokens", "revoke", "alice", "--store", store])
    assert missing.exit_code == 1 and "no live token 'alice'" in missing.output


def test_an_unknown_sensitive_agent_is_reported_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text("def transform(r):\n    return r\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(
        "access:\n"
        "  sensitive: [a, ghost]\n"
        "workflow:\n"
        "  - {name: a, type: transform, script: step.py}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (2, "access.sensitive[1]")
    assert "no agent named 'ghost'" in problem.message
