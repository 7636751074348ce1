"""A workflow's figures from the store: the bench's own measures (bench/collector.py) rebuilt
from recorded runs and steps instead of live events."""

from __future__ import annotations

from collections.abc import Sequence

from relayflow.bench.collector import RunMeasure, StepTime, figures, step_summaries
from relayflow.server.schemas import AgentSummary, WorkflowMetrics
from relayflow.store.protocol import RunReads
from relayflow.store.records import RunRecord, StepRecord


def workflow_metrics(
    store: RunReads, workflow: str, agents: list[str], *, limit: int = 1000
) -> WorkflowMetrics:
    """Figures over the workflow's ``limit`` most recent runs; ``agents`` orders the steps."""
    history = store.workflow_history(workflow, limit=limit)
    by_status = dict(history.by_status)
    measures = [
        _measure(run, history.steps.get(run.run_id, ()), history.escalations.get(run.run_id, 0))
        for run in history.runs
    ]
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


def _measure(run: RunRecord, steps: Sequence[StepRecord], escalations: int) -> RunMeasure:
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
            StepTime(s.step, s.agent_type, s.attempt, started, ended, s.actor, s.model_seconds)
            for s in finished
            if (started := s.started) is not None and (ended := s.ended) is not None
        ),
        output=None,
        error=run.error,
    )
