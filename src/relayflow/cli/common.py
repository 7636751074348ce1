"""What several commands share: the ``--store`` option, opening the store, finding a run by
prefix, the workflow file a run or batch was started from, and running the event loop (with
SIGTERM handled as Ctrl-C)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from relayflow.cli.output import Terminated, UserError

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore
    from relayflow.store.records import RunRecord
    from relayflow.store.sql_store import SqlStore

T = TypeVar("T")

STORE_ENV = "RELAYFLOW_STORE"
DEFAULT_STORE = Path(".relayflow") / "runs.db"

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help=f"Run store: a path (SQLite) or a database URL. "
        f"Default: ${STORE_ENV}, else {DEFAULT_STORE} in the current directory.",
        show_default=False,
    ),
]
WorkflowOption = Annotated[
    Path | None,
    typer.Option(
        "--workflow",
        "-w",
        help="Workflow file the run was started from (needed when the store does not know it).",
        show_default=False,
    ),
]


def store_location(store: str | None) -> str:
    """The store URL or path the user asked for, or the default."""
    return store or os.environ.get(STORE_ENV) or str(DEFAULT_STORE)


def store_for_writing(store: str | None) -> str:
    """The store location, with the folder of a SQLite file created."""
    location = store_location(store)
    if "://" not in location:
        Path(location).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return str(Path(location).expanduser())
    return location


def open_store(store: str | None) -> SqlStore:
    """Open an existing store for reading; a missing SQLite file is an error, not a new file."""
    from relayflow.store.sql_store import SqlStore

    location = store_location(store)
    if "://" not in location and not Path(location).expanduser().exists():
        raise UserError(
            f"no run store at {location}: run a workflow first, "
            f"or point --store (or ${STORE_ENV}) at an existing store"
        )
    return SqlStore(str(Path(location).expanduser()) if "://" not in location else location)


def find_run(store: RunStore, run_id: str) -> RunRecord:
    """The run whose id is ``run_id`` or starts with it (the prefix must be unique)."""
    exact = store.get_run(run_id)
    if exact is not None:
        return exact
    matches = store.find_runs(run_id) if run_id else []
    if not matches:
        raise UserError(f"no run {run_id!r} in the store; see `relayflow runs list`")
    if len(matches) > 1:
        some = ", ".join(sorted(r.run_id for r in matches)[:5])
        raise UserError(
            f"{run_id!r} matches {len(matches)} runs ({some}…): give more characters of the id"
        )
    return matches[0]


def load_workflow(path: str | Path) -> Workflow:
    """Load and validate a workflow file; its path is made absolute so the store can find it
    again from any directory (problems still name the file as the user wrote it)."""
    from relayflow.spec.loader import load_spec

    workflow = load_spec(path)
    return dataclasses.replace(workflow, file=workflow.file.resolve())


def workflow_of_run(store: RunStore, run: RunRecord, given: Path | None) -> Workflow:
    """The workflow a run was started from: ``--workflow``, else its batch's recorded file."""
    from relayflow.spec.variants import workflow_for_run

    if given is not None:
        loaded = load_workflow(given)
        workflow = workflow_for_run(loaded, run.workflow) or loaded  # or the variant that ran
        if workflow.name != run.workflow:
            raise UserError(
                f"run {run.run_id} belongs to workflow {run.workflow!r}, but {given} is "
                f"workflow {workflow.name!r}: pass the file the run was started from"
            )
        return workflow
    batch = store.get_batch(run.batch_id) if run.batch_id else None
    if batch is None or not batch.workflow_file:
        raise UserError(
            f"run {run.run_id} was not started by `relayflow run`, so the store does not know "
            "its workflow file: pass --workflow FILE"
        )
    file = Path(batch.workflow_file)
    if not file.exists():
        raise UserError(
            f"the workflow file of run {run.run_id} is gone ({file}): pass --workflow FILE"
        )
    loaded = load_workflow(file)
    return workflow_for_run(loaded, run.workflow) or loaded


@dataclass(slots=True)
class Stop:
    """Which signal stopped a command: Ctrl-C (SIGINT, the default) or SIGTERM."""

    signum: int = signal.SIGINT

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process that the signal ended: 130 or 143."""
        return 128 + int(self.signum)


def run_async(main: Coroutine[Any, Any, T], stop: Stop | None = None) -> T:
    """``asyncio.run(main)``, with SIGTERM treated as Ctrl-C, then the model providers'
    connection pools opened on that loop closed before it ends (the providers stay cached for
    the next command in-process).

    The first SIGTERM cancels ``main`` as asyncio's first Ctrl-C does, so runs in flight are
    recorded as cancelled and the batch stays resumable; ``stop`` then says SIGTERM. A second
    one ends the process at once (like ``kill -9``: what was committed stays committed). If
    ``main`` lets the cancellation escape, Terminated is raised (exit status 143)."""
    stop = stop if stop is not None else Stop()

    async def with_release() -> T:
        from relayflow.providers.registry import release_clients

        remove = _cancel_on_sigterm(stop)
        try:
            return await main
        finally:
            remove()
            await release_clients()

    try:
        return asyncio.run(with_release())
    except asyncio.CancelledError:
        if stop.signum == signal.SIGTERM:
            raise Terminated from None
        raise


def _cancel_on_sigterm(stop: Stop) -> Callable[[], None]:
    """Cancel the current task on SIGTERM; return what puts the previous handler back."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm() -> None:
        if stop.signum == signal.SIGTERM:  # the second one: stop now
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        stop.signum = signal.SIGTERM
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGTERM)  # it leaves SIG_DFL: restore the previous
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return remove
