"""API tokens and what they may do: roles per workflow, sensitive agents' outputs, denials.

A token is ``rf_<id>_<secret>`` with 256 bits of randomness from ``secrets``; the store keeps
only its SHA-256 (a slow hash buys nothing against a random 256-bit secret). Each token carries
grants ``(workflow, role, see_sensitive)``; ``workflow`` ``*`` means every workflow.

Roles and what they allow:

    viewer     read workflows, runs, events, reviews, metrics
    operator   viewer + submit, cancel and resume runs, add feedback
    reviewer   viewer + claim and decide review items, add feedback
    admin      everything: register workflows, read sensitive outputs, read the denials log

A workflow's ``access.sensitive`` agents touch sensitive data: their outputs (and the fields they
wrote into later outputs) are redacted for every token but an admin's or a grant with
``see_sensitive``. Every refusal is recorded in the ``denials`` table.

Registering a workflow that runs code (transform scripts, service calls, pickled models) is
running that code as the server's user: the ``register_code`` action needs an admin grant on
``*`` or one given ``+code`` explicitly (``support=admin+code``); a scoped admin without it
registers only workflows that run no code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from relayflow.errors import AccessDenied
from relayflow.store.grants import Denial, StoredToken, TokenTables

if TYPE_CHECKING:
    from relayflow.store.database import Engine

Role = Literal["viewer", "operator", "reviewer", "admin"]
Action = Literal[
    "read", "submit", "cancel", "review", "feedback", "register", "register_code", "audit"
]
ROLES: tuple[Role, ...] = get_args(Role)

#: what each role may do
PERMISSIONS: dict[Role, frozenset[Action]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "submit", "cancel", "feedback"}),
    "reviewer": frozenset({"read", "review", "feedback"}),
    "admin": frozenset({"read", "submit", "cancel", "review", "feedback", "register", "audit"}),
}

TOKEN_PREFIX = "rf_"  # noqa: S105 - the public prefix of every token, no secret


#: the grant flags after ``+`` in ``WORKFLOW=ROLE+flag`` (the CLI's ``--role``)
FLAGS = ("sensitive", "code")


def roles_for(action: Action) -> list[Role]:
    """The roles that allow ``action``, for the message of a denial."""
    if action == "register_code":
        return ["admin"]
    return [role for role in ROLES if action in PERMISSIONS[role]]


def needed_for(action: Action) -> str:
    """What a denial of ``action`` says is needed."""
    if action == "register_code":
        return "role admin on '*', or admin+code on the workflow"
    return f"role {' or '.join(roles_for(action))}"


@dataclass(frozen=True, slots=True)
class Grant:
    """One role on one workflow (or ``*``: every workflow)."""

    workflow: str
    role: Role
    see_sensitive: bool = False
    #: may register workflows that run code (admin only; implied by admin on ``*``)
    register_code: bool = False

    def covers(self, workflow: str | None) -> bool:
        return self.workflow == "*" or (workflow is not None and self.workflow == workflow)

    def allows_code(self) -> bool:
        return self.role == "admin" and (self.workflow == "*" or self.register_code)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "role": self.role,
            "see_sensitive": self.see_sensitive,
            "register_code": self.register_code,
        }

    def __str__(self) -> str:
        """As ``parse_grant`` reads it: ``support=admin+code``."""
        flags = ("+sensitive" if self.see_sensitive else "") + (
            "+code" if self.register_code else ""
        )
        return f"{self.workflow}={self.role}{flags}"


def parse_grant(text: str) -> Grant:
    """``WORKFLOW=ROLE``, with ``+sensitive`` and/or ``+code`` after the role (the CLI's
    ``--role``): ``support=viewer+sensitive``, ``support=admin+code``."""
    workflow, sep, rest = text.partition("=")
    role, *flags = rest.split("+")
    if (
        not sep
        or not workflow
        or role not in ROLES
        or any(f not in FLAGS for f in flags)
        or len(set(flags)) != len(flags)
    ):
        raise ValueError(
            f"{text!r} is not WORKFLOW=ROLE[+FLAG]: use e.g. support=operator, '*=admin', "
            f"support=viewer+sensitive or support=admin+code; roles: {', '.join(ROLES)}; "
            f"flags: {', '.join(FLAGS)}"
        )
    if "code" in flags and role != "admin":
        raise ValueError(
            f"{text!r}: +code (may register workflows that run code) goes with role admin only"
        )
    return Grant(workflow, role, "sensitive" in flags, "code" in flags)


@dataclass(frozen=True, slots=True)
class Token:
    """A token as stored: never its secret."""

    token_id: str
    name: str
    grants: tuple[Grant, ...]
    team: str | None
    created: float
    revoked: float | None

    def allows(self, action: Action, workflow: str | None) -> bool:
        """Whether some grant covering ``workflow`` allows ``action``. ``workflow`` None asks
        about an action on no one workflow (the denials log): only ``*`` grants count."""
        return any(
            g.covers(workflow)
            and (g.allows_code() if action == "register_code" else action in PERMISSIONS[g.role])
            for g in self.grants
            if workflow is not None or g.workflow == "*"
        )

    def sees_sensitive(self, workflow: str) -> bool:
        return any(
            g.covers(workflow) and (g.role == "admin" or g.see_sensitive) for g in self.grants
        )

    def readable(self, workflows: Iterable[str]) -> list[str]:
        return [w for w in workflows if self.allows("read", w)]

    def check(self, action: Action, workflow: str | None) -> None:
        """Raise AccessDenied naming the action, the workflow and the roles that allow it."""
        if not self.allows(action, workflow):
            where = f"workflow {workflow!r}" if workflow else "every workflow ('*')"
            what = "register a workflow that runs code" if action == "register_code" else action
            hint = ""
            if workflow is None and action == "register":
                hint = " (or name the workflow in the request)"
            raise AccessDenied(
                f"token {self.name!r} may not {what} on {where}: needs {needed_for(action)}{hint}"
            )


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens and denials in the run store's database (store/grants.py keeps the rows)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tables = TokenTables(engine)

    def create(
        self, name: str, grants: Sequence[Grant], *, team: str | None = None
    ) -> tuple[str, Token]:
        """A new token: ``(secret, token)``. The secret is returned once and never stored."""
        if not grants:
            raise ValueError("a token needs at least one grant (--role WORKFLOW=ROLE)")
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        token = Token(token_id, name, tuple(grants), team, time.time(), None)
        stored = StoredToken(
            token_id, name, tuple(g.to_json() for g in grants), team, token.created, None
        )
        self.tables.insert(stored, hash_token(secret))
        return secret, token

    def authenticate(self, secret: str) -> Token | None:
        """The live token whose secret this is, or None."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        found = self.tables.by_hash(hash_token(secret))
        if found is None or found.revoked is not None:
            return None
        return _token(found)

    def get(self, token_id: str) -> Token | None:
        found = self.tables.by_id(token_id)
        return _token(found) if found is not None else None

    def list_tokens(self, *, include_revoked: bool = False) -> list[Token]:
        return [_token(t) for t in self.tables.tokens(include_revoked=include_revoked)]

    def revoke(self, id_or_name: str) -> list[Token]:
        """Revoke the token with this id, or every live token with this name."""
        live = [tok for tok in self.list_tokens() if id_or_name in (tok.token_id, tok.name)]
        if live:
            self.tables.revoke([tok.token_id for tok in live], time.time())
        return live

    def record_denial(
        self,
        token: Token | None,
        action: str,
        workflow: str | None,
        needed: str,
        detail: str,
    ) -> None:
        self.tables.insert_denial(
            Denial(
                denial_id=secrets.token_hex(8),
                ts=time.time(),
                token_id=token.token_id if token else None,
                token_name=token.name if token else None,
                action=action,
                workflow=workflow,
                needed=needed,
                detail=detail,
            )
        )

    def denials(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return [dataclasses.asdict(d) for d in self.tables.denials(limit=limit)]


def _token(row: StoredToken) -> Token:
    grants = tuple(
        Grant(g["workflow"], g["role"], bool(g.get("see_sensitive")), bool(g.get("register_code")))
        for g in row.grants
    )
    return Token(row.token_id, row.name, grants, row.team, row.created, row.revoked)
