"""``Idempotency-Key`` on run and batch submissions, kept in the store's ``idempotency_keys``
table per token and workflow: the first request claims the key for the id it will create; a
retry with the same body gets that id back, another body under the same key is a conflict."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import schema

#: what a key may be: printable ASCII without spaces, as long as a UUID or a hash and then some
KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
HEADER = "Idempotency-Key"
HEADER_HELP = (
    "Makes a retry safe: the same key with the same body answers 200 with the run (or batch) "
    "the first request created, instead of creating another; the same key with another body "
    "is refused with 409. Keys are scoped to the token and the workflow and kept in the store."
)

Kind = Literal["run", "batch"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A key as stored: the id it stands for, and whether this request may go on with it."""

    kind: str
    body_hash: str
    result_id: str


def body_hash(body: Mapping[str, Any]) -> str:
    """The request body's hash: keys sorted, so a retry that orders them otherwise matches."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyKeys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self, token_id: str, workflow: str, key: str, kind: Kind, digest: str, result_id: str
    ) -> Claim | None:
        """Claim ``key`` for ``result_id``: None when this request made the claim, else the
        claim an earlier request made (compare its kind and hash)."""
        t = schema.idempotency_keys
        row = {
            "token_id": token_id,
            "workflow": workflow,
            "key": key,
            "kind": kind,
            "body_hash": digest,
            "result_id": result_id,
            "created": time.time(),
        }
        for _ in range(3):  # a claim released between our insert and our read: insert again
            try:
                with self.engine.begin() as conn:
                    conn.execute(t.insert().values(**row))
                return None
            except IntegrityError:  # an earlier (or a concurrent) request holds the key
                pass
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot record the Idempotency-Key: {exc}") from exc
            found = self.find(token_id, workflow, key)
            if found is not None:
                return found
        raise StoreError(f"the Idempotency-Key {key!r} is claimed and released over and over")

    def find(self, token_id: str, workflow: str, key: str) -> Claim | None:
        t = schema.idempotency_keys
        q = select(t.c.kind, t.c.body_hash, t.c.result_id).where(
            t.c.token_id == token_id, t.c.workflow == workflow, t.c.key == key
        )
        try:
            with self.engine.connect() as conn:
                row = conn.execute(q).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the Idempotency-Keys: {exc}") from exc
        return Claim(row.kind, row.body_hash, row.result_id) if row is not None else None

    def release(self, token_id: str, workflow: str, key: str) -> None:
        """Forget a claim whose submission did not happen (it failed, or the process died
        before it): the next request with the key submits afresh."""
        t = schema.idempotency_keys
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(t).where(
                        t.c.token_id == token_id, t.c.workflow == workflow, t.c.key == key
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot release the Idempotency-Key: {exc}") from exc
