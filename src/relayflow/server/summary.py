"""A workflow's figures from the store: the bench's own measures (bench/collector.py) rebuilt
from recorded runs and steps instead of live events."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select

from relayflow.bench.collector import RunMeasure, StepTime, figures, step_summaries
from relayflow.server.schemas import AgentSummary, WorkflowMetrics
from relayflow.store import schema


def workflow_metrics(
    store: Any, workflow: str, agents: list[str], *, limit: int = 1000
) -> WorkflowMetrics:
    """Figures over the workflow's ``limit`` most recent runs; ``agents`` orders the steps."""
    runs_t, steps_t, reviews_t = schema.runs, schema.steps, schema.reviews
    by_status = {
        status: n
        for status, n in store._select(
            select(runs_t.c.status, func.count())
            .where(runs_t.c.workflow == workflow)
            .group_by(runs_t.c.status)
        )
    }
    recent = (
        select(runs_t.c.run_id)
        .where(runs_t.c.workflow == workflow)
        .order_by(runs_t.c.started.desc())
        .limit(limit)
        .subquery()
    )
    runs = store._select(select(runs_t).where(runs_t.c.run_id.in_(select(recent.c.run_id))))
    steps = store._select(select(steps_t).where(steps_t.c.run_id.in_(select(recent.c.run_id))))
    escalated = Counter(
        r[0]
        for r in store._select(
            select(reviews_t.c.run_id).where(reviews_t.c.run_id.in_(select(recent.c.run_id)))
        )
    )
    by_run: dict[str, list[Any]] = {}
    for step in steps:
        by_run.setdefault(step.run_id, []).append(step)
    measures = [_measure(run, by_run.get(run.run_id, []), escalated[run.run_id]) for run in runs]
    fig = figures(measures, 0.0, 0.0)
    agents_out = [
        AgentSummary(
            agent=s.step,
            agent_type=s.agent_type,
            steps=s.n,
            by_human=s.human,
            utilization=s.agent / s.n if s.n else None,
            median_seconds=s.median,
            p95_seconds=s.p95,
        )
        for s in step_summaries(measures, agents)
    ]
    return WorkflowMetrics(
        workflow=workflow,
        runs=len(measures),
        by_status=by_status,
        ttr_median=fig.ttr_median,
        ttr_p95=fig.ttr_p95,
        cost_per_run=fig.cpw_model,
        tokens_per_run=fig.tokens_per_run,
        escalation_rate=fig.escalation_rate,
        utilization=fig.utilization,
        agents=agents_out,
    )


def _measure(run: Any, steps: list[Any], escalations: int) -> RunMeasure:
    finished = [s for s in steps if s.status == "finished" and s.started and s.ended]
    starts = [s.started for s in steps if s.started is not None]
    ends = [s.ended for s in steps if s.ended is not None]
    return RunMeasure(
        run_id=run.run_id,
        batch_id=run.batch_id,
        item_key=run.item_key,
        status=run.status,
        first_start=min(starts) if starts else None,
        last_end=max(ends) if ends else None,
        model_seconds=sum(s.model_seconds for s in steps),
        model_calls=sum(s.model_calls for s in steps),
        input_tokens=sum(s.input_tokens for s in steps),
        output_tokens=sum(s.output_tokens for s in steps),
        cost=sum(s.cost for s in steps),
        agent_steps=sum(s.actor != "human" for s in finished),
        human_steps=sum(s.actor == "human" for s in finished),
        failed_attempts=sum(s.status == "failed" for s in steps),
        escalations=escalations,
        steps=tuple(
            StepTime(s.step, s.agent_type, s.attempt, s.started, s.ended, s.actor, s.model_seconds)
            for s in finished
        ),
        output=None,
        error=run.error,
    )
