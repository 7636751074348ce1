"""Scrubbing credentials (API keys, tokens, passwords) out of every text relayflow stores, shows
or logs. Not ``server/redact.py``, which hides sensitive agents' *data* from some viewers.

Two passes: the secret values relayflow was configured with (a model's API key, a service's
auth header, storage credentials, the store URL's password; see ``spec/secrets.py``), and the
common shapes of a credential that nobody declared (``sk-…``, ``Bearer …``, ``user:pw@`` in a
URL, ``password=…``), since an error may quote a key from elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
#: shorter configured values are not masked by value: masking "admin" or "1234" everywhere
#: would blank ordinary words and numbers. They are still masked where a shape shows them
#: (a URL's password, ``password=…``, ``Bearer …``).
MIN_SECRET_LENGTH = 8

#: names of settings, query parameters and headers whose value is a credential
CREDENTIAL_NAME = re.compile(
    r"pass(word|wd|phrase)|^pass$|pwd|secret|token|api[-_]?key|apikey|credential|"
    r"authorization|cookie|signature|(^|[-_])(auth|sig|session)([-_]|$)|(^|[-_])key$",
    re.IGNORECASE,
)

_NAMES = (
    r"api[_-]?key|apikey|x-api-key|access[_-]?token|auth[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|client[_-]?secret|secret[_-]?key|secret|password|passwd|pwd|token|sig|"
    r"signature|x-amz-signature|x-amz-credential|x-amz-security-token|authorization|"
    r"proxy-authorization"
)
#: credential shapes; each alternative keeps what names the credential and masks the value
_SHAPES = re.compile(
    # user:password@ in a URL
    r"(?P<url>[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#@]+(?=@)"
    # Authorization: Basic …, "password": "…", api_key=…
    rf"|(?P<named>(?<![\w-])(?i:{_NAMES})[\"']?\s*[=:]\s*[\"']?(?:(?i:bearer|basic|token)\s+)?)"
    r"[^\s\"'&,;}]+"
    # a bearer token on its own
    r"|(?P<bearer>\b(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    # OpenAI/Anthropic-style keys, relayflow server tokens, AWS key ids, GitHub tokens, JWTs
    r"|\bsk-[A-Za-z0-9][A-Za-z0-9_-]{10,}"
    r"|\brf_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"
)


def _keep_name(match: re.Match[str]) -> str:
    return (match.group("url") or match.group("named") or match.group("bearer") or "") + MASK


def mask_credentials(text: str) -> str:
    """``text`` with every credential-shaped substring masked (no configured values needed)."""
    return _SHAPES.sub(_keep_name, text) if text else text


def url_secrets(url: str | None) -> set[str]:
    """The credentials written into a URL: its password and credential-named query values."""
    if not url or "://" not in url:
        return set()
    try:
        parts = urlsplit(url)
        found = {parts.password} if parts.password else set()
        query = parse_qsl(parts.query)
    except ValueError:
        return set()
    found.update(value for name, value in query if value and CREDENTIAL_NAME.search(name))
    return found


class SecretScrubber:
    """Masks the given secret values (and, in ``text``, credential shapes). Built once per
    plan; with no secret long enough, value masking costs one test of ``self``."""

    __slots__ = ("_pattern", "secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str):
                continue
            secret = secret.strip()  # a key read from a file may end with a newline
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            # as written, as it appears in a URL, and inside a JSON string
            values.update((secret, quote(secret, safe=""), json.dumps(secret)[1:-1]))
        self.secrets = frozenset(values)
        # longest first, so that a secret containing another is found whole
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def values(self, text: str) -> str:
        """``text`` with each configured secret masked; the same object when none occurs."""
        pattern = self._pattern
        if pattern is None or not text or pattern.search(text) is None:
            return text
        # the union of every occurrence of every secret: two secrets that overlap in the text
        # are masked together, not the first and then the rest of the second left showing
        spans: list[tuple[int, int]] = []
        for secret in self.secrets:
            start = text.find(secret)
            while start >= 0:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
        merged: list[list[int]] = []
        for start, stop in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        out: list[str] = []
        at = 0
        for start, stop in merged:
            out += (text[at:start], MASK)
            at = stop
        out.append(text[at:])
        return "".join(out)

    def text(self, text: str) -> str:
        """An error or log line: configured secrets and credential shapes masked."""
        return mask_credentials(self.values(text))

    def data(self, value: Any) -> Any:
        """A JSON-like value with configured secrets masked in its strings (keys included); the
        same object when none occurs. Shapes are left alone: data may rightly hold them."""
        if self._pattern is None:
            return value
        return self._data(value)

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.values(value)
        if isinstance(value, Mapping):
            changed = False
            out: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = self._data(key)
                new_item = self._data(item)
                changed = changed or new_key is not key or new_item is not item
                out[new_key] = new_item
            return out if changed else value
        if isinstance(value, list | tuple):
            items = [self._data(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value


# ---- the process's secrets: every workflow loaded here, for logs and front doors ----------

_lock = threading.Lock()
_known: set[str] = set()
_process = SecretScrubber()
_factory_installed = False


def credential_values(value: Any, named: bool = False) -> set[str]:
    """The strings under credential-named keys (``secret``, ``token``, ``password``, ``key`` …)
    anywhere in a settings mapping, and the passwords of URLs in it (``storage_options``)."""
    found: set[str] = set()
    if isinstance(value, str):
        found |= url_secrets(value)
        if named:
            found |= with_token(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= credential_values(item, named or bool(CREDENTIAL_NAME.search(str(key))))
    elif isinstance(value, list | tuple):
        for item in value:
            found |= credential_values(item, named)
    return found


def with_token(value: str) -> set[str]:
    """A credential value, and its last word on its own (``Bearer X``: an error may quote X)."""
    words = value.split()
    return {value, words[-1]} if len(words) > 1 else {value}


def remember(secrets: Iterable[str | None]) -> SecretScrubber:
    """Add ``secrets`` to what this process masks in its logs, CLI errors and server answers;
    returns a scrubber of ``secrets`` alone (a runner's own)."""
    global _process
    mine = SecretScrubber(secrets)
    with _lock:
        if not mine.secrets <= _known:
            _known.update(mine.secrets)
            _process = SecretScrubber(_known)
            _install_record_factory()
    return mine


def forget_all() -> None:
    """Forget every secret :func:`remember` was given (for tests: one test's workflow must not
    mask another test's output; a real process keeps what it learnt for its whole life)."""
    global _process
    with _lock:
        _known.clear()
        _process = SecretScrubber()


def scrub(text: str) -> str:
    """``text`` with every secret this process knows, and every credential shape, masked."""
    return _process.text(text)


def scrub_data(value: Any) -> Any:
    """A JSON-like value with every secret this process knows masked in its strings."""
    return _process.data(value)


def _clean_record(record: logging.LogRecord, clean: Callable[[str], str]) -> None:
    """Apply ``clean`` to a record's message, traceback and stack, before any handler."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it
        return
    cleaned = clean(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = clean(record.exc_text)
    if record.stack_info:
        record.stack_info = clean(record.stack_info)


def _install_record_factory() -> None:
    """Once a secret is configured, mask configured values in every log record of the process:
    the libraries relayflow drives log what it handed them (httpx logs a request's URL, user
    and password included). Credential shapes are left to relayflow's own loggers."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrubber = _process
        if scrubber:
            _clean_record(record, scrubber.values)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class ScrubFilter(logging.Filter):
    """Masks secrets and credential shapes in a log record of relayflow's own before any
    handler formats it. A filter on a logger applies to records logged there, not to its
    children's, so every relayflow module takes its logger from ``get_logger``."""

    def filter(self, record: logging.LogRecord) -> bool:
        _clean_record(record, scrub)
        return True


_FILTER = ScrubFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the secret filter on it."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
