"""Recorded outcomes of routed answers, read from the run store: for each step and each router
candidate, how many of the answers it gave were judged, and how many of those were right.

A routed step's row records the candidate that answered (``versions.answered_by``, written by
the inference agent as ``alias=version``). Its answer is the step's output field. It was right
when a label added by hand for the run (the ``feedback`` table, for that step or for the whole
run) equals it, else when a decided review of the run saw it (the reviewed record holds that
answer in the field) and the reviewer approved, or corrected the record but kept that field.
Reviews include the bench's golden reviewer's decisions.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from relayflow.errors import RelayflowError
from relayflow.scrub import get_logger
from relayflow.store import outcomes

if TYPE_CHECKING:
    from relayflow.store.database import Engine

log = get_logger(__name__)

#: ``answered_by -> (correct, judged)``; a nested router's answers also count under ``alias=*``
Tallies = Mapping[str, tuple[int, int]]
#: the decisions and labels read, newest first (older ones no longer say how a model does)
WINDOW = 10_000


def read_outcomes(
    engine: Engine, workflow: str, fields: Mapping[str, str], *, window: int = WINDOW
) -> dict[str, dict[str, tuple[int, int]]]:
    """``step -> answered_by -> (correct, judged)`` for the routed steps of ``workflow`` named
    in ``fields`` (step -> its output field), over the newest ``window`` reviews and labels."""
    reviews: dict[str, list[tuple[Any, Any, str]]] = {}
    for review in outcomes.decided_reviews(engine, workflow, window):
        reviews.setdefault(review.run_id, []).append(
            (review.output, review.decided_output, review.decision)
        )
    labels: dict[tuple[str, str | None], Any] = {}
    for found in outcomes.hand_labels(engine, workflow, window):
        if found.run_id is not None:  # the newest one wins
            labels.setdefault((found.run_id, found.step), found.label)
    run_ids = sorted({*reviews, *(run_id for run_id, _ in labels)})
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for row in outcomes.routed_answers(engine, run_ids, list(fields)):
        answered_by = row.versions.get("answered_by") if isinstance(row.versions, dict) else None
        output = row.output
        if not isinstance(answered_by, str) or not isinstance(output, dict):
            continue
        field = fields[row.step]
        if field not in output:
            continue
        correct = _judge(output[field], field, row.run_id, row.step, labels, reviews)
        if correct is not None:
            _count(out.setdefault(row.step, {}), answered_by, correct)
    return out


def _judge(
    answer: Any,
    field: str,
    run_id: str,
    step: str,
    labels: Mapping[tuple[str, str | None], Any],
    reviews: Mapping[str, list[tuple[Any, Any, str]]],
) -> bool | None:
    """Whether ``answer`` was right: by the hand label, else by the newest review that saw it;
    None when nothing judged it."""
    for key in ((run_id, step), (run_id, None)):
        if key in labels:
            label = labels[key]
            if isinstance(label, Mapping):
                label = label.get(field, label.get("label"))
            if label is not None:
                return _same(answer, label)
    for seen, decided, decision in reviews.get(run_id, ()):
        if not isinstance(seen, Mapping) or field not in seen or not _same(seen[field], answer):
            continue  # this reviewer was shown another value (a later step changed the field)
        if decision == "approve":
            return True
        if isinstance(decided, Mapping) and field in decided:
            return _same(decided[field], answer)
        return False
    return None


def _count(tallies: dict[str, tuple[int, int]], answered_by: str, correct: bool) -> None:
    keys = [answered_by]
    alias, _, version = answered_by.partition("=")
    if "=" in version:  # a router's answer (``alias=candidate=version``): count it for the alias
        keys.append(f"{alias}=*")
    for key in keys:
        right, judged = tallies.get(key, (0, 0))
        tallies[key] = (right + int(correct), judged + 1)


def _same(a: Any, b: Any) -> bool:
    """Equal as evaluation counts it: labels after ``str().strip().lower()``, else exactly."""
    if isinstance(a, str | int | float | bool) and isinstance(b, str | int | float | bool):
        from relayflow.eval.scoring import accuracy

        return accuracy([a], [b]).value == 1.0
    return bool(a == b)


class OutcomeFeed:
    """The outcomes of the routed steps watched in one store, kept in memory for the router's
    hot path and read again in a worker thread at most every ``refresh`` seconds."""

    def __init__(
        self,
        url: str,
        *,
        refresh: float,
        clock: Callable[[], float] = time.monotonic,
        window: int = WINDOW,
    ) -> None:
        self.url = url
        self.refresh = refresh
        self.window = window
        self._clock = clock
        #: workflow -> step -> output field
        self._watched: dict[str, dict[str, str]] = {}
        self._snapshot: dict[tuple[str, str], Tallies] = {}
        self._due = float("-inf")
        self._loading = threading.Lock()  # held while a read is in flight
        self._watch_lock = threading.Lock()  # ``watch`` on the loop, the copy in a read
        self._engine: Engine | None = None
        #: completed reads (for tests and for the curious)
        self.loads = 0

    def watch(self, workflow: str, step: str, field: str) -> None:
        """Read outcomes of ``step`` (answer in ``field``) from the next read on."""
        with self._watch_lock:
            self._watched.setdefault(workflow, {})[step] = field

    async def load(self) -> None:
        """Read the store now, in a worker thread (after the read in flight, if any)."""
        while not self._loading.acquire(blocking=False):  # noqa: ASYNC110 - a thread's lock: polled, since a cancelled wait must not take it later
            await asyncio.sleep(0.01)  # polled: a cancelled wait must not take the lock later
        await asyncio.to_thread(self._reload)

    def tallies(self, request_type: tuple[str, str]) -> Tallies | None:
        """The outcomes of one step as last read; starts a read in the background when the
        last one is ``refresh`` seconds old (the caller never waits for the store)."""
        # taken before a read starts: a new worker thread may run, and finish, before this
        # line would run again, and a call must not depend on that race
        tallies = self._snapshot.get(request_type)
        if self._clock() >= self._due and self._loading.acquire(blocking=False):
            self._start()
        return tallies

    def _start(self) -> None:
        try:
            asyncio.get_running_loop().run_in_executor(None, self._reload)
        except RuntimeError:  # no running loop, or its executor is shut down
            threading.Thread(target=self._reload, name="relayflow-outcomes", daemon=True).start()

    def _reload(self) -> None:
        """Read every watched step; called with ``_loading`` held, which it releases."""
        try:
            snapshot: dict[tuple[str, str], Tallies] = {}
            with self._watch_lock:
                watched = {workflow: dict(fields) for workflow, fields in self._watched.items()}
            for workflow, fields in watched.items():
                found = read_outcomes(self._open(), workflow, fields, window=self.window)
                for step, tallies in found.items():
                    snapshot[(workflow, step)] = tallies
            self._snapshot = snapshot
            self.loads += 1
        except RelayflowError as exc:
            # the last outcomes stay in use; the next read is tried after the interval
            log.warning("router outcomes: %s", exc)
        except Exception:  # a worker thread: nobody above would see it
            log.exception("router outcomes: reading %s failed", self.url)
        finally:
            self._due = self._clock() + self.refresh
            self._loading.release()

    def _open(self) -> Engine:
        if self._engine is None:
            from relayflow.store.database import open_database

            self._engine = open_database(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
