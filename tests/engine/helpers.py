"""Write small workflows of real transform scripts into a folder for engine tests."""

from __future__ import annotations

from pathlib import Path

import relayflow


def write_workflow(folder: Path, yaml_text: str, scripts: dict[str, str]) -> relayflow.Workflow:
    for name, source in scripts.items():
        (folder / name).write_text(source)
    path = folder / "workflow.yaml"
    path.write_text(yaml_text)
    return relayflow.load_workflow(path)


INCREMENT = """
def transform(record):
    return {**record, "n": record.get("n", 0) + 1}
"""
