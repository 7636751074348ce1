"""What ``relayflow costs`` reads: the steps that spent something, and the budget alerts."""

from __future__ import annotations

from sqlalchemy import or_, select

from relayflow.store import schema
from relayflow.store.reads import StoreReads
from relayflow.store.records import BudgetAlertRecord, SpendRecord
from relayflow.store.statements import loads


class CostQueries(StoreReads):
    def spend(
        self, *, since: float | None = None, workflow: str | None = None
    ) -> list[SpendRecord]:
        """Every step that called a model or cost something, with its run's workflow and the
        model it used (from its versions), oldest first; ``since`` is when the step started."""
        s, r = schema.steps, schema.runs
        q = (
            select(
                r.c.workflow,
                s.c.run_id,
                s.c.step,
                s.c.versions,
                s.c.started,
                s.c.input_tokens,
                s.c.output_tokens,
                s.c.model_calls,
                s.c.cost,
            )
            .join(r, r.c.run_id == s.c.run_id)
            .where(or_(s.c.model_calls > 0, s.c.cost > 0))
            .order_by(s.c.started)
        )
        if since is not None:
            q = q.where(s.c.started >= since)
        if workflow:
            q = q.where(r.c.workflow == workflow)
        return [
            SpendRecord(
                workflow=row.workflow,
                run_id=row.run_id,
                step=row.step,
                model=loads(row.versions).get("model"),
                started=row.started,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                model_calls=row.model_calls,
                cost=row.cost,
            )
            for row in self._select(q)
        ]

    def budget_alerts(self, *, since: float | None = None) -> list[BudgetAlertRecord]:
        """Budget alerts (govern/budget.py), the latest first."""
        t = schema.budget_alerts
        q = select(t).order_by(t.c.last.desc())
        if since is not None:
            q = q.where(t.c.last >= since)
        return [BudgetAlertRecord(**r._mapping) for r in self._select(q)]
