"""Turn a HumanEval problem into what the workflow needs: its id, the function's signature and
docstring (``prompt``), its tests and entry point, and the instruction the model is given.

The reference solution (``canonical_solution``) is dropped here, so that no later step, prompt
or log can show it to the model.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, "
    "including its signature, in one ```python code block."
)


def transform(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["task_id"],
        "prompt": record["prompt"],
        "test": record["test"],
        "entry_point": record["entry_point"],
        "instruction": INSTRUCTION,
    }
