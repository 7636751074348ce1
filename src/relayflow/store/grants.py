"""The API tokens' tables: each token's hash and grants, its revocation, and the log of denied
requests (govern/access.py says what a token may do; this module only keeps them)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import schema
from relayflow.store.migrations import ensure_schema

__all__ = ["Denial", "StoredToken", "TokenTables"]


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token's row: never its secret. ``grants`` as stored: ``[{workflow, role, …}]``."""

    token_id: str
    name: str
    grants: tuple[Mapping[str, Any], ...]
    team: str | None
    created: float
    revoked: float | None


@dataclass(frozen=True, slots=True)
class Denial:
    """A request refused for lack of a role (403) or with an unknown token (401)."""

    denial_id: str
    ts: float
    token_id: str | None
    token_name: str | None
    action: str
    workflow: str | None
    needed: str
    detail: str


class TokenTables:
    """Tokens and denials in the database at ``engine`` (tables ``api_tokens``, ``denials``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    def insert(self, token: StoredToken, hashed: str) -> None:
        row = {
            "token_id": token.token_id,
            "name": token.name,
            "hash": hashed,
            "grants": json.dumps([dict(g) for g in token.grants]),
            "team": token.team,
            "created": token.created,
            "revoked": token.revoked,
        }
        self._write(schema.api_tokens.insert().values(**row))

    def by_hash(self, hashed: str) -> StoredToken | None:
        t = schema.api_tokens
        rows = self._read(select(t).where(t.c.hash == hashed))
        return _token(rows[0]) if rows else None

    def by_id(self, token_id: str) -> StoredToken | None:
        t = schema.api_tokens
        rows = self._read(select(t).where(t.c.token_id == token_id))
        return _token(rows[0]) if rows else None

    def tokens(self, *, include_revoked: bool = False) -> list[StoredToken]:
        """Every (live) token, oldest first."""
        t = schema.api_tokens
        query = select(t).order_by(t.c.created)
        if not include_revoked:
            query = query.where(t.c.revoked.is_(None))
        return [_token(r) for r in self._read(query)]

    def revoke(self, token_ids: Sequence[str], when: float) -> None:
        t = schema.api_tokens
        self._write(update(t).where(t.c.token_id.in_(list(token_ids))).values(revoked=when))

    def insert_denial(self, denial: Denial) -> None:
        row = {
            "denial_id": denial.denial_id,
            "ts": denial.ts,
            "token_id": denial.token_id,
            "token_name": denial.token_name,
            "action": denial.action[:40],
            "workflow": denial.workflow[:200] if denial.workflow else None,
            "needed": denial.needed[:200],
            "detail": denial.detail,
        }
        self._write(schema.denials.insert().values(**row))

    def denials(self, *, limit: int = 100) -> list[Denial]:
        """The newest ``limit`` denials, newest first."""
        t = schema.denials
        rows = self._read(select(t).order_by(t.c.ts.desc()).limit(limit))
        return [Denial(**r._mapping) for r in rows]

    def _write(self, stmt: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except IntegrityError as exc:  # a token id drawn twice: astronomically rare
            raise StoreError(f"cannot write a token: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to the token tables: {exc}") from exc

    def _read(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the token tables: {exc}") from exc


def _token(row: Any) -> StoredToken:
    grants = tuple(json.loads(row.grants))
    return StoredToken(row.token_id, row.name, grants, row.team, row.created, row.revoked)
