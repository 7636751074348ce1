"""What each event writes to the store, and how soon it must be durable."""

from __future__ import annotations

from typing import Any, Literal

from relayflow.core import events as ev
from relayflow.store.statements import Statement, Statements, dumps

Write = tuple[Statement, dict[str, Any]]
#: ``now``: durable before the caller goes on (the step's dependents wait for it);
#: ``soon``: committed within moments, nobody waits; ``none``: nothing to write.
Urgency = Literal["now", "soon", "none"]

NOTHING: tuple[list[Write], Urgency] = ([], "none")

#: a bad record's reason is kept up to this many characters (an error may quote a huge line)
MAX_REASON = 1000


def writes_for(event: ev.Event, st: Statements) -> tuple[list[Write], Urgency]:
    """The rows ``event`` writes, and how soon they must be durable."""
    kind = type(event)
    if kind is ev.StepFinished:
        assert isinstance(event, ev.StepFinished)  # noqa: S101 - narrows the type for mypy: kind is checked above
        return [(st.step_upsert, finished_step_row(event))], "now"
    if kind is ev.RunStarted:
        assert isinstance(event, ev.RunStarted)  # noqa: S101 - narrows the type for mypy: kind is checked above
        # committed with the run's first durable step: a run with no finished step is started
        # again from the top on resume anyway
        return [(st.run_started, run_started_row(event))], "none"
    if kind is ev.RunFinished:
        assert isinstance(event, ev.RunFinished)  # noqa: S101 - narrows the type for mypy: kind is checked above
        # a run whose steps are all durable is finished again, without running anything,
        # if the process dies before this row lands
        return [(st.run_update, run_finished_row(event))], "soon"
    if kind is ev.StepStarted:
        return NOTHING
    return _rare_writes(event, st)


def _rare_writes(event: ev.Event, st: Statements) -> tuple[list[Write], Urgency]:
    if isinstance(event, ev.StepFailed):
        row = plain_step_row(
            event.run_id, event.step, "failed", event.attempt, event.error, event.ts
        )
        return [(st.step_upsert, row)], "soon" if event.will_retry else "now"
    if isinstance(event, ev.StepCancelled):
        row = plain_step_row(event.run_id, event.step, "cancelled", 0, "cancelled", event.ts)
        return [(st.step_upsert, row)], "soon"
    if isinstance(event, ev.StepEscalated):
        return escalation_writes(event, st), "now"
    if isinstance(event, ev.ReviewDecided):
        return decision_writes(event, st), "now"
    if isinstance(event, ev.BatchStarted):
        return [(st.batch_upsert, batch_started_row(event))], "now"
    if isinstance(event, ev.RecordRejected):
        row = {
            "batch_id": event.batch_id,
            "item_key": event.item_key,
            "location": event.location,
            "reason": event.reason[:MAX_REASON],
            "excerpt": event.excerpt,
            "created": event.ts,
        }
        return [(st.bad_record_upsert, row)], "now"
    if isinstance(event, ev.BatchFinished):
        row = {
            "b_batch_id": event.batch_id,
            "b_status": event.status,
            "b_runs": event.runs,
            "b_ts": event.ts,
        }
        return [(st.batch_update, row)], "now"
    return NOTHING


def run_started_row(e: ev.RunStarted) -> dict[str, Any]:
    return {
        "run_id": e.run_id,
        "workflow": e.workflow,
        "workflow_version": e.workflow_version,
        "batch_id": e.batch_id,
        "item_key": e.item_key,
        "status": "running",
        "input": dumps(e.input),
        "output": None,
        "error": None,
        "waiting_step": None,
        "started": e.ts,
        "ended": None,
        "updated": e.ts,
    }


def run_finished_row(e: ev.RunFinished) -> dict[str, Any]:
    return {
        "b_run_id": e.run_id,
        "b_status": e.status,
        "b_output": None if e.output is None else dumps(e.output),
        "b_error": e.error,
        "b_ended": e.ts,
        "b_waiting": None,
        "b_updated": e.ts,
    }


def finished_step_row(e: ev.StepFinished) -> dict[str, Any]:
    u = e.usage
    return {
        "run_id": e.run_id,
        "step": e.step,
        "agent_type": e.agent_type,
        "status": "finished",
        "attempt": e.attempt,
        "actor": e.actor,
        "output": dumps(e.output),
        "confidence": e.confidence,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "model_calls": u.model_calls,
        "model_seconds": u.model_seconds,
        "cost": u.cost,
        "versions": dumps(e.versions),
        "flags": dumps(e.flags),
        "error": None,
        "started": e.started,
        "ended": e.ended,
    }


def plain_step_row(
    run_id: str, step: str, status: str, attempt: int, error: str, ts: float
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": step,
        "agent_type": "",
        "status": status,
        "attempt": attempt,
        "actor": "agent",
        "output": None,
        "confidence": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "model_calls": 0,
        "model_seconds": 0.0,
        "cost": 0.0,
        "versions": "{}",
        "flags": "[]",
        "error": error,
        "started": None,
        "ended": ts,
    }


def batch_started_row(e: ev.BatchStarted) -> dict[str, Any]:
    return {
        "batch_id": e.batch_id,
        "workflow": e.workflow,
        "workflow_file": e.workflow_file,
        "inputs": e.inputs,
        "concurrency": e.concurrency,
        "status": "running",
        "runs": 0,
        "created": e.ts,
        "updated": e.ts,
    }


def escalation_writes(e: ev.StepEscalated, st: Statements) -> list[Write]:
    """The escalated step (its output kept for the reviewer), the review item, the parked run."""
    u = e.usage
    step = {
        "run_id": e.run_id,
        "step": e.step,
        "agent_type": e.agent_type,
        "status": "escalated",
        "attempt": 1,
        "actor": "agent",
        "output": dumps(e.output),
        "confidence": e.confidence,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "model_calls": u.model_calls,
        "model_seconds": u.model_seconds,
        "cost": u.cost,
        "versions": dumps(e.versions),
        "flags": "[]",
        "error": None,
        "started": e.ts,
        "ended": None,
    }
    review = {
        "review_id": f"{e.run_id}:{e.step}",
        "run_id": e.run_id,
        "step": e.step,
        "workflow": e.workflow,
        "status": "pending",
        "reason": e.reason,
        "input": dumps(e.input),
        "output": dumps(e.output),
        "confidence": e.confidence,
        "decision": None,
        "decided_output": None,
        "reviewer": None,
        "created": e.ts,
        "decided": None,
    }
    run = {
        "b_run_id": e.run_id,
        "b_status": "waiting_review",
        "b_output": None,
        "b_error": None,
        "b_ended": None,
        "b_waiting": e.step,
        "b_updated": e.ts,
    }
    return [(st.step_upsert, step), (st.review_insert, review), (st.run_update, run)]


def decision_writes(e: ev.ReviewDecided, st: Statements) -> list[Write]:
    """The review's decision, and the decision kept as a feedback label."""
    decision = {
        "b_run_id": e.run_id,
        "b_step": e.step,
        "b_status": "approved" if e.decision == "approve" else "corrected",
        "b_decision": e.decision,
        "b_output": dumps(e.output),
        "b_reviewer": e.reviewer,
        "b_ts": e.ts,
    }
    label = {
        "feedback_id": f"review:{e.run_id}:{e.step}"[:80],
        "workflow": e.workflow,
        "run_id": e.run_id,
        "step": e.step,
        "item_key": e.item_key,
        "label": dumps(e.output),
        "source": "review",
        "created": e.ts,
    }
    return [(st.review_decide, decision), (st.feedback_insert, label)]
