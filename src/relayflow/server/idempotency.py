"""``Idempotency-Key`` on run and batch submissions: the header, what a key may be, and the hash
of a request's body. The keys are kept by the store (store/idempotency.py) per token and
workflow: the first request claims the key for the id it will create; a retry with the same
body gets that id back, another body under the same key is a conflict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

#: what a key may be: printable ASCII without spaces, as long as a UUID or a hash and then some
KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
HEADER = "Idempotency-Key"
HEADER_HELP = (
    "Makes a retry safe: the same key with the same body answers 200 with the run (or batch) "
    "the first request created, instead of creating another; the same key with another body "
    "is refused with 409. Keys are scoped to the token and the workflow and kept in the store."
)

Kind = Literal["run", "batch"]


def body_hash(body: Mapping[str, Any]) -> str:
    """The request body's hash: keys sorted, so a retry that orders them otherwise matches."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
