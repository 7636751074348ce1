"""The ``jsonl`` consumer: append every event, as one JSON object per line, to a file.

    consumers:
      - {type: jsonl, path: events.jsonl}   # relative to the YAML's folder

Each line is ``{"event": "step_finished", "run_id": …, …}`` (the fields of core/events.py,
by name). The file is opened for appending, so a resumed batch adds to it, and each line goes
out in one unbuffered write: runners of several workflow versions (a server) may share a file
without tearing each other's lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from relayflow.consumers.base import ConfiguredConsumer, ConsumerContext, Finding
from relayflow.core.events import EVENT_NAMES, event_json

if TYPE_CHECKING:
    from relayflow.core.events import Event


class JsonlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the file to append to, relative to the workflow's folder
    path: str = Field(min_length=1)


def _target(settings: JsonlSettings, context: ConsumerContext) -> Path:
    try:
        path = Path(settings.path).expanduser()
    except RuntimeError:  # an unknown ~user: left as written
        path = Path(settings.path)
    return path if path.is_absolute() else context.base_dir / path


class JsonlConsumer(ConfiguredConsumer):
    settings = JsonlSettings

    def __init__(self, settings: JsonlSettings, context: ConsumerContext) -> None:
        super().__init__(settings, context)
        self.path = _target(settings, context)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise context.error(
                "path",
                f"cannot open {self.path} for appending ({exc.strerror})",
                "fix the path (relative to the YAML) or the folder's permissions",
            ) from None

    @classmethod
    def check(cls, settings: JsonlSettings, context: ConsumerContext) -> list[Finding]:
        path = _target(settings, context)
        if path.is_dir():
            return [Finding("path", f"{path} is a folder", "name a file, e.g. events.jsonl")]
        if not path.parent.is_dir():
            return [
                Finding(
                    "path",
                    f"folder not found: {path.parent}",
                    "create it or fix the path (relative to the YAML)",
                )
            ]
        return []

    @classmethod
    def files(cls, settings: JsonlSettings, context: ConsumerContext) -> list[tuple[str, Path]]:
        return [("path", _target(settings, context))]

    def handle(self, event: Event) -> None:
        record = {"event": EVENT_NAMES[type(event)], **event_json(event)}
        # default=str: an agent's output may hold a value JSON has no type for (a date)
        line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
        os.write(self._fd, line.encode())

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
