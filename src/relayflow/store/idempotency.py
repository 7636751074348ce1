"""The ``Idempotency-Key`` repository (table ``idempotency_keys``, per token and workflow): the
first request claims a key for the id it will create; a later one reads that claim back."""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import schema
from relayflow.store.database import reason
from relayflow.store.reads import StoreReads
from relayflow.store.records import KeyClaim


class IdempotencyQueries(StoreReads):
    def claim_key(
        self, token_id: str, workflow: str, key: str, kind: str, digest: str, result_id: str
    ) -> KeyClaim | None:
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
                raise StoreError(f"cannot record the Idempotency-Key: {reason(exc)}") from exc
            found = self.find_key(token_id, workflow, key)
            if found is not None:
                return found
        raise StoreError(f"the Idempotency-Key {key!r} is claimed and released over and over")

    def find_key(self, token_id: str, workflow: str, key: str) -> KeyClaim | None:
        t = schema.idempotency_keys
        q = select(t.c.kind, t.c.body_hash, t.c.result_id).where(
            t.c.token_id == token_id, t.c.workflow == workflow, t.c.key == key
        )
        rows = self.select_committed(q)
        return KeyClaim(rows[0].kind, rows[0].body_hash, rows[0].result_id) if rows else None

    def release_key(self, token_id: str, workflow: str, key: str) -> None:
        """Forget a claim whose submission did not happen (it failed, or the process died
        before it): the next request with the key submits afresh."""
        t = schema.idempotency_keys
        with self._transaction("the Idempotency-Key's release") as conn:
            conn.execute(
                delete(t).where(t.c.token_id == token_id, t.c.workflow == workflow, t.c.key == key)
            )
