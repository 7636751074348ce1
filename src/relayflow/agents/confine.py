"""Where a lookup may read: the roots a workflow allows (its folder, ``allow:``, the literal
prefix of a URL template), and the check that a rendered path or URL stays inside them."""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: where a template's fixed text ends: Jinja's expression, statement and comment openers
_OPENERS = ("{{", "{%", "{#")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: a URL, as opposed to a local path: ``scheme://`` (``file://`` is a local path)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: str) -> bool:
    return bool(_URL.match(value)) and not value.lower().startswith("file://")


def literal_prefix(template: str) -> str:
    """The template's text before its first variable, statement or comment."""
    cuts = [i for i in (template.find(o) for o in _OPENERS) if i >= 0]
    return template[: min(cuts)] if cuts else template


@dataclass(frozen=True, slots=True)
class UrlRoot:
    """A URL prefix: a scheme, an authority (user, host, port) and a path under which to read."""

    scheme: str
    authority: str
    path: str

    def covers(self, url: str) -> bool:
        parts = _split(url)
        if parts is None:
            return False
        scheme, authority, path = parts
        if (scheme, authority) != (self.scheme, self.authority):
            return False
        base = self.path.rstrip("/")
        return path == base or path.startswith(base + "/")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass(frozen=True, slots=True)
class Roots:
    """The folders (real paths) and URL prefixes a lookup may read."""

    folders: tuple[str, ...]
    urls: tuple[UrlRoot, ...]

    def __str__(self) -> str:
        return ", ".join([*self.folders, *map(str, self.urls)]) or "nothing"


def url_root(prefix: str) -> UrlRoot | None:
    """The root a URL prefix names, or None when it names no host (``https://``,
    ``https://{{ host }}/``) or is not a URL one can compare."""
    parts = _split(prefix)
    if parts is None or any(_dot_segment(v) for v in _readings(prefix)):
        return None
    scheme, authority, path = parts
    return UrlRoot(scheme, authority, path)


def roots_for(
    template: str,
    base_dir: Path,
    allow: Sequence[str],
    package_folder: Callable[[str], Path | None],
) -> Roots:
    """The roots of a lookup whose ``source`` is ``template``: the workflow's folder, every
    ``allow:`` entry (folders relative to the workflow's folder, URL prefixes), and for a URL
    template the fixed text up to its first variable, cut back to the last ``/``.
    ``package_folder`` finds the folder of a ``package://`` prefix (None: not installed)."""
    folders = [base_dir]
    urls: list[UrlRoot] = []
    prefix = literal_prefix(template)
    entries = list(allow)
    if is_url(prefix):
        entries.append(prefix[: prefix.rfind("/") + 1])
    for entry in entries:
        if entry.startswith("package://"):
            folder = package_folder(entry)
            if folder is not None:
                folders.append(folder)
        elif is_url(entry):
            root = url_root(entry)
            if root is not None:
                urls.append(root)
        else:
            path = Path(entry.removeprefix("file://"))
            try:
                path = path.expanduser()
            except RuntimeError:  # ~user unknown here: taken as written, as validate does
                pass
            folders.append(path if path.is_absolute() else base_dir / path)
    real = tuple(dict.fromkeys(os.path.realpath(f) for f in folders))
    return Roots(real, tuple(dict.fromkeys(urls)))


def text_refusal(rendered: str, template: str) -> str | None:
    """Why ``rendered`` may not even be looked up (a short reason), or None."""
    if _CONTROL.search(rendered):
        return "it holds a control character (a NUL byte, a newline …)"
    unbracketed = re.sub(r"\[[0-9A-Fa-f:.]*\]", "", rendered)  # an IPv6 host: http://[::1]/
    if "::" in unbracketed and "::" not in literal_prefix(template):
        return "it chains filesystems with '::'"
    return None


def place_refusal(rendered: str, local_path: str | None, roots: Roots) -> str | None:
    """Why ``rendered`` may not be read (a short reason), or None when it stays inside
    ``roots``. ``local_path`` is the absolute path the local filesystem will open, or None
    for a URL."""
    if local_path is not None:
        return None if file_inside(local_path, roots.folders) else "it is outside"
    if any(_dot_segment(reading) for reading in _readings(rendered)):
        return "its path has a '.' or '..' segment"
    if all(any(root.covers(r) for root in roots.urls) for r in _readings(rendered)):
        return None
    return "it is outside"


_REPR = reprlib.Repr()
_REPR.maxstring = 200


def shown(value: str) -> str:
    """A rendered value for an error message: quoted, escapes visible, at most 200 chars."""
    return _REPR.repr(value)


def file_inside(path: str, folders: Iterable[str]) -> bool:
    """Whether every reading of ``path`` resolves (symlinks too) inside one of ``folders``."""
    folders = tuple(folders)
    for reading in _readings(path):
        try:
            real = os.path.realpath(reading)
        except (ValueError, OSError):  # an embedded NUL, a loop of links
            return False
        if not any(real == f or real.startswith(f.rstrip("/") + "/") for f in folders):
            return False
    return True


def _readings(value: str) -> set[str]:
    """``value`` as written, percent-decoded until it no longer changes, and each of those
    with backslashes read as slashes. A value passes only if every reading does: some layer
    between here and the bytes read (fsspec, an HTTP client, a server) may decode or
    normalise it, and ``%252e`` is ``..`` to one that decodes twice."""
    out = {value}
    decoded = value
    for _ in range(8):
        decoded_again = unquote(decoded)
        if decoded_again == decoded:
            break
        decoded = decoded_again
        out.add(decoded)
    return out | {reading.replace("\\", "/") for reading in out}


def _split(url: str) -> tuple[str, str, str] | None:
    """(scheme, authority, path) of ``url``, normalised for comparing: scheme and host in
    lower case, the default port written out, runs of ``/`` as one; None without a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not parts.scheme or not host:
        return None
    scheme = parts.scheme.lower()
    port = port if port is not None else _DEFAULT_PORTS.get(scheme)
    user = "" if parts.username is None else f"{parts.username}:{parts.password or ''}@"
    authority = f"{user}{host}" + (f":{port}" if port is not None else "")
    path = "/" + re.sub("/+", "/", parts.path).lstrip("/")
    return scheme, authority, path


def _dot_segment(url: str) -> bool:
    # not normalised away but refused: an HTTP client resolves `..`, and an S3 client that
    # puts the bucket in the path (path-style addressing) would walk into another bucket
    try:
        path = urlsplit(url).path
    except ValueError:
        return True
    return any(segment in (".", "..") for segment in path.split("/"))
