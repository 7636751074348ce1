"""Prometheus metrics from the event stream: runs, steps, step latency per agent, errors,
escalations, reviews, tokens and cost. A consumer like the store; nothing asks the runner.

Each instance owns its ``CollectorRegistry`` (the server's ``/metrics`` serves it), so several
apps or tests in one process never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relayflow.core import events as ev

#: step latency buckets, seconds: from an inline transform to a slow model call
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class PrometheusMetrics:
    """Consumes events into counters and histograms on ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs_started = Counter(
            "relayflow_runs_started", "Runs started or resumed.", ["workflow"], registry=r
        )
        self.runs = Counter(
            "relayflow_runs",
            "Runs that ended, by final status.",
            ["workflow", "status"],
            registry=r,
        )
        self.active = Gauge(
            "relayflow_runs_active", "Runs executing now.", ["workflow"], registry=r
        )
        self.steps = Counter(
            "relayflow_steps",
            "Steps by outcome (finished, failed, escalated, cancelled).",
            ["workflow", "agent", "status"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "relayflow_step_seconds",
            "Wall time of each finished step executed by an agent.",
            ["workflow", "agent"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "relayflow_step_errors",
            "Failed step attempts (retried or not).",
            ["workflow", "agent"],
            registry=r,
        )
        self.budget_alerts = Counter(
            "relayflow_budget_alerts",
            "Budget alerts: a soft limit crossed or a hard limit reached (once per period).",
            ["scope", "period", "kind"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "relayflow_budget_refusals",
            "Model calls refused by a hard budget limit.",
            ["workflow", "scope", "period"],
            registry=r,
        )
        self.escalations = Counter(
            "relayflow_escalations",
            "Steps escalated to a person.",
            ["workflow", "agent"],
            registry=r,
        )
        self.reviews = Counter(
            "relayflow_reviews", "Review decisions.", ["workflow", "decision"], registry=r
        )
        self.tokens = Counter(
            "relayflow_tokens",
            "Model tokens by kind (input, output).",
            ["workflow", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "relayflow_cost",
            "Model cost in the price's currency.",
            ["workflow", "model"],
            registry=r,
        )
        #: each known run's workflow (step events do not carry it), until the run ends
        self._workflow: dict[str, str] = {}
        self._active: set[str] = set()

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished):
            workflow = self._workflow.get(event.run_id, "")
            self.steps.labels(workflow, event.step, "finished").inc()
            if event.actor == "agent":
                self.step_seconds.labels(workflow, event.step).observe(
                    max(0.0, event.ended - event.started)
                )
            self._usage(workflow, event.versions.get("model"), event.usage)
        elif isinstance(event, ev.RunStarted):
            if event.run_id not in self._active:
                self._active.add(event.run_id)
                self.active.labels(event.workflow).inc()
            self._workflow[event.run_id] = event.workflow
            self.runs_started.labels(event.workflow).inc()
        elif isinstance(event, ev.RunFinished):
            workflow = self._workflow.pop(event.run_id, "")
            if event.run_id in self._active:
                self._active.discard(event.run_id)
                self.active.labels(workflow).dec()
            self.runs.labels(workflow, event.status).inc()
        elif isinstance(event, ev.StepFailed):
            workflow = self._workflow.get(event.run_id, "")
            self.errors.labels(workflow, event.step).inc()
            if not event.will_retry:
                self.steps.labels(workflow, event.step, "failed").inc()
            self._usage(workflow, None, event.usage)
        elif isinstance(event, ev.StepEscalated):
            self.escalations.labels(event.workflow, event.step).inc()
            self.steps.labels(event.workflow, event.step, "escalated").inc()
            self._usage(event.workflow, event.versions.get("model"), event.usage)
            # the run parks: it is no longer executing
            self._workflow[event.run_id] = event.workflow
            if event.run_id in self._active:
                self._active.discard(event.run_id)
                self.active.labels(event.workflow).dec()
        elif isinstance(event, ev.StepCancelled):
            workflow = self._workflow.get(event.run_id, "")
            self.steps.labels(workflow, event.step, "cancelled").inc()
        elif isinstance(event, ev.BudgetAlert):
            if event.first:
                self.budget_alerts.labels(event.scope, event.period, event.kind).inc()
            if event.kind == "hard":
                self.budget_refusals.labels(event.workflow, event.scope, event.period).inc()
        elif isinstance(event, ev.ReviewDecided):
            self._workflow[event.run_id] = event.workflow
            self.reviews.labels(event.workflow, event.decision).inc()

    def _usage(self, workflow: str, model: str | None, usage: object) -> None:
        tokens_in = getattr(usage, "input_tokens", 0)
        tokens_out = getattr(usage, "output_tokens", 0)
        cost = getattr(usage, "cost", 0.0)
        if not (tokens_in or tokens_out or cost):
            return
        model = model or "unknown"
        if tokens_in:
            self.tokens.labels(workflow, model, "input").inc(tokens_in)
        if tokens_out:
            self.tokens.labels(workflow, model, "output").inc(tokens_out)
        if cost:
            self.cost.labels(workflow, model).inc(cost)
