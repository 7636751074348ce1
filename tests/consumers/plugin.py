"""A tiny installed distribution that adds a consumer type through the ``relayflow.consumers``
entry-point group: a package and its ``.dist-info`` in a folder that goes on ``sys.path`` (or
on a child process's PYTHONPATH), found by importlib.metadata as pip would leave it."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "relayflow_tally"

SOURCE = '''"""The ``tally`` consumer: one line per finished run, its id and status."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from relayflow.consumers.base import ConfiguredConsumer
from relayflow.core.events import RunFinished


class TallySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str


class Tally(ConfiguredConsumer):
    settings = TallySettings

    def __init__(self, settings, context):
        super().__init__(settings, context)
        self.path = context.base_dir / settings.path

    @classmethod
    def files(cls, settings, context):
        return [("path", context.base_dir / settings.path)]

    def handle(self, event):
        if isinstance(event, RunFinished):
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(f"{event.run_id} {event.status}\\n")
'''


def install_tally(folder: Path) -> Path:
    """Write the distribution under ``folder``; returns the folder to put on the path."""
    (folder / PACKAGE).mkdir(parents=True)
    (folder / PACKAGE / "__init__.py").write_text(SOURCE, encoding="utf-8")
    info = folder / f"{PACKAGE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[relayflow.consumers]\ntally = {PACKAGE}:Tally\n", encoding="utf-8"
    )
    return folder
