"""What a model call is for, told to the providers under it without a new argument: the
inference agent sets ``request_type`` around its step's call, a router keys its records by it."""

from __future__ import annotations

from contextvars import ContextVar

#: ``(workflow, step)`` of the inference step whose model call is in flight; None outside one
#: (a router then keys its records by the request's shape)
request_type: ContextVar[tuple[str, str] | None] = ContextVar(
    "relayflow_request_type", default=None
)
