"""The reviews repository: the review queue, who has claimed an item, and the feedback labels
that decisions (and people, by hand) leave."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, select, update

from relayflow.store import schema
from relayflow.store.reads import StoreReads
from relayflow.store.records import ClaimRecord, ReviewRecord
from relayflow.store.statements import loads


class ReviewQueries(StoreReads):
    def reviews(
        self,
        *,
        status: str | None = "pending",
        workflows: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[ReviewRecord]:
        """Reviews, oldest first, in one query; ``workflows`` limits them to those (empty:
        none), ``status`` None lists every status."""
        t = schema.reviews
        q = select(t).order_by(t.c.created).limit(limit)
        if status:
            q = q.where(t.c.status == status)
        if workflows is not None:
            q = q.where(t.c.workflow.in_(list(workflows)))
        return [review_record(r) for r in self._select(q)]

    def get_review(self, review_id: str) -> ReviewRecord | None:
        t = schema.reviews
        rows = self._select(select(t).where(t.c.review_id == review_id))
        return review_record(rows[0]) if rows else None

    def cancel_reviews(self, run_id: str) -> None:
        """Cancel the run's pending reviews (the run was cancelled: nobody need decide them)."""
        t = schema.reviews
        self._execute(
            update(t)
            .where(t.c.run_id == run_id, t.c.status == "pending")
            .values(status="cancelled")
        )

    # ---- claims ----------------------------------------------------------------------------

    def review_claim(self, review_id: str) -> ClaimRecord | None:
        """The claim on a review, however old (the caller decides when one has lapsed)."""
        t = schema.review_claims
        rows = self._select(select(t).where(t.c.review_id == review_id))
        return ClaimRecord(**rows[0]._mapping) if rows else None

    def claim_review(self, review_id: str, by: str, token_id: str | None, at: float) -> None:
        """Record ``by`` as holding the review from ``at`` (replacing any earlier claim)."""
        t = schema.review_claims
        self._execute(
            delete(t).where(t.c.review_id == review_id),
            t.insert().values(review_id=review_id, claimed_by=by, token_id=token_id, claimed=at),
        )

    def release_review(self, review_id: str) -> None:
        """Drop the review's claim, if any."""
        t = schema.review_claims
        self._execute(delete(t).where(t.c.review_id == review_id))

    # ---- feedback labels -------------------------------------------------------------------

    def feedback(self, workflow: str) -> list[dict[str, Any]]:
        """The workflow's labels, oldest first: each row with its ``label`` decoded."""
        t = schema.feedback
        rows = self._select(select(t).where(t.c.workflow == workflow).order_by(t.c.created))
        return [{**r._mapping, "label": loads(r.label)} for r in rows]


def review_record(r: Any) -> ReviewRecord:
    return ReviewRecord(
        review_id=r.review_id,
        run_id=r.run_id,
        step=r.step,
        workflow=r.workflow,
        status=r.status,
        reason=r.reason,
        input=loads(r.input),
        output=loads(r.output),
        confidence=r.confidence,
        decision=r.decision,
        decided_output=loads(r.decided_output),
        reviewer=r.reviewer,
        created=r.created,
        decided=r.decided,
    )
