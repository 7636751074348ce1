"""Who is acting: the principal (an API token's name or team) a run was submitted by.

The server sets it around the runs it executes on a token's behalf; budgets and quotas read it to
charge spend per team or token. A context variable, so concurrent runs each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple


class Principal(NamedTuple):
    """The acting identity: a token's id and name, and the team it belongs to (if any)."""

    token_id: str
    name: str
    team: str | None = None


current_principal: ContextVar[Principal | None] = ContextVar("relayflow_principal", default=None)
