"""What a workflow registered on the server may touch: a workflow file read only when it is a
regular ``.yaml`` file under a ``--workflow-root`` (bounded, never blocking), the files it names
only under its allowed folders, a bundle's paths only inside its own folder, and whether it
runs code (which needs the ``register_code`` right)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from relayflow.agents.checks import is_local, resolve_path
from relayflow.agents.registry import agent_class
from relayflow.errors import ConfigError, Problem, SpecError
from relayflow.schema.workflow import Workflow
from relayflow.spec.variants import variant_workflow

#: a workflow file read by path: at most this many bytes (the same as a posted ``yaml``)
MAX_WORKFLOW_BYTES = 1_000_000
SUFFIXES = (".yaml", ".yml")
#: a bundle's own YAML, written by the server
BUNDLE_YAML = "workflow.yaml"


def roots_of(folders: Sequence[str | Path]) -> tuple[Path, ...]:
    """The ``--workflow-root`` folders, symlinks resolved; each must be an existing folder."""
    out = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--workflow-root {folder}: not a folder — create it or fix the path")
        out.append(path)
    return tuple(out)


def inside(path: Path, folders: Sequence[Path]) -> bool:
    """Whether ``path``, with every symlink resolved, is one of ``folders`` or under one."""
    real = Path(os.path.realpath(path))
    return any(real == f or real.is_relative_to(f) for f in folders)


def _refused(shown: str, message: str, fix: str, field: str = "path") -> SpecError:
    return SpecError([Problem(shown, 0, field, message, fix)])


def read_workflow_file(path: str, roots: Sequence[Path]) -> tuple[Path, str]:
    """``(real path, text)`` of a workflow file a client names. Refused without reading when
    the server has no roots, the path is not a ``.yaml`` under one of them, or it is not a
    regular file (a FIFO would block, ``/dev/zero`` never ends); never more than
    ``MAX_WORKFLOW_BYTES`` read. Blocking: call it off the event loop."""
    if not roots:
        raise _refused(
            path,
            "registering by path is off on this server (it has no --workflow-root)",
            "send the YAML as `yaml`, with the files it names as `files`, or start the server "
            "with --workflow-root DIR",
        )
    try:
        real: Path | None = Path(os.path.realpath(Path(path).expanduser()))
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a loop of links …
        real = None
    if real is None or not inside(real, roots):
        raise _refused(
            path,
            "not under one of the server's workflow roots (symlinks resolved)",
            "name a file under a --workflow-root folder (a relative path starts at the "
            "server's folder), or send the YAML and its files as a bundle",
        )
    if real.suffix.lower() not in SUFFIXES:
        raise _refused(
            path, "not a workflow file (.yaml or .yml)", "name the workflow's YAML file itself"
        )
    return real, _read_regular(real, path)


def _read_regular(real: Path, shown: str) -> str:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise _refused(shown, "file not found", "check the path") from None
    except OSError as exc:
        raise _refused(
            shown, f"cannot open the file ({exc.strerror or 'error'})", "check the path"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise _refused(shown, f"is {what}", "name the workflow's YAML file itself")
        if info.st_size > MAX_WORKFLOW_BYTES:
            raise _refused(
                shown,
                f"larger than {MAX_WORKFLOW_BYTES} bytes",
                "a workflow file is small: keep data in the files it names",
            )
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(MAX_WORKFLOW_BYTES + 1)
    except OSError as exc:
        raise _refused(
            shown, f"cannot read the file ({exc.strerror or 'error'})", "check the path"
        ) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_WORKFLOW_BYTES:
        raise _refused(shown, f"larger than {MAX_WORKFLOW_BYTES} bytes", "keep it small")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused(shown, "not UTF-8 text", "save it as UTF-8") from None


# ---- bundles ------------------------------------------------------------------------------------


def bundle_bytes(files: Mapping[str, str | bytes]) -> dict[str, bytes]:
    """Each bundle path checked (relative, ``/``-separated, no ``..``, no empty, ``.`` or
    hidden-control parts) and its content as bytes; every problem listed at once."""
    problems: list[Problem] = []
    out: dict[str, bytes] = {}
    for name, content in files.items():
        wrong = _bad_bundle_path(name)
        if wrong is not None:
            problems.append(
                Problem(
                    "files",
                    0,
                    f"files[{name!r}]",
                    wrong,
                    "name each file by its path relative to the YAML, e.g. scripts/prep.py",
                )
            )
            continue
        if isinstance(content, str):
            out[name] = content.encode("utf-8")
        else:
            out[name] = content
    paths = set(out)
    for name in out:
        parent = name.rpartition("/")[0]
        while parent:
            if parent in paths:
                problems.append(
                    Problem(
                        "files",
                        0,
                        f"files[{name!r}]",
                        f"{parent!r} is a file, so it cannot be a folder too",
                        "rename one of them",
                    )
                )
                break
            parent = parent.rpartition("/")[0]
    if problems:
        raise SpecError(problems)
    return out


def decode_base64(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SpecError(
            [Problem("files", 0, f"files[{name!r}].base64", "not valid base64", "encode it again")]
        ) from None


def _bad_bundle_path(name: str) -> str | None:
    if not name or len(name) > 1024:
        return "a path of 1 to 1024 characters"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "an absolute path (or one with backslashes)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character in the path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "empty, `.` or `..` parts are not allowed"
    if any(len(p.encode("utf-8", "replace")) > 255 for p in parts):
        return "a part longer than 255 bytes"
    if name == BUNDLE_YAML:
        return f"{BUNDLE_YAML} is the workflow itself (sent as `yaml`)"
    return None


def write_bundle(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write the checked ``files`` under ``folder`` (a new folder of the server's); no link is
    followed, and every written file must land inside ``folder``."""
    real_folder = Path(os.path.realpath(folder))
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not inside(target.parent, [real_folder]):
            raise _refused(f"files[{name!r}]", "leaves the bundle's folder", "use a plain path")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)


def manifest_hash(text: str, files: Mapping[str, bytes]) -> str:
    """SHA-256 over the YAML text and each file (by path), order-independent."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    for name in sorted(files):
        digest.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


# ---- what a loaded workflow names ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """One file or folder a workflow names: where in the YAML, and the path it resolves to."""

    where: tuple[str | int, ...]
    field: str
    path: Path


def references(workflow: Workflow) -> Iterator[Reference]:
    """Every local file or folder the workflow (and each of its variants) names: scripts,
    templates, schemas, rulesets, retrieval sources, model files, the golden set, the base
    it ``extends``, the local folders under ``allow:``, the files its consumers write.
    Templated lookup sources are confined to those at run time (agents/confine.py)."""
    base = workflow.base_dir
    if workflow.extends is not None:
        yield Reference(("extends",), "extends", workflow.extends)
    agent_sets = [workflow.agents]
    for variant in workflow.spec.variants:
        agent_sets.append(variant_workflow(workflow, variant.name).agents)
    for agents in agent_sets:
        for index, agent in enumerate(agents):
            # the files `relayflow validate` checks, as the agent's type declares them
            for ref in agent_class(agent.type).files(agent):
                yield Reference(
                    ("workflow", index, ref.field),
                    f"{agent.name}.{ref.field}",
                    resolve_path(base, ref.path),
                )
    for alias, spec in workflow.spec.models.items():
        model = spec.model_file()
        if model:
            yield Reference(
                ("models", alias, "model"), f"models.{alias}.model", resolve_path(base, model)
            )
    for index, entry in enumerate(workflow.spec.allow):
        # a folder it may read from is a file it names: else `allow: ["/"]` widens the roots
        if is_local(entry):
            yield Reference(
                ("allow", index),
                f"allow[{index}]",
                resolve_path(base, entry.removeprefix("file://")),
            )
    if workflow.spec.evaluate is not None and workflow.spec.evaluate.golden:
        golden = workflow.spec.evaluate.golden
        yield Reference(("evaluate", "golden"), "evaluate.golden", resolve_path(base, golden))
    yield from _consumer_files(workflow)


def _consumer_files(workflow: Workflow) -> Iterator[Reference]:
    """The files that the consumers under ``consumers:`` write (a jsonl file): a registrant
    must not make the server append to a file outside the workflow's folders."""
    from relayflow.consumers.registry import consumer_class
    from relayflow.spec.validate_consumers import consumer_context

    for index, entry in enumerate(workflow.spec.consumers):
        cls = consumer_class(entry.type)  # the loader has checked the type and the settings
        settings = cls.settings.model_validate(entry.settings)
        context = consumer_context(
            workflow.name, workflow.base_dir, workflow.file, workflow.lines, index
        )
        for field, path in cls.files(settings, context):
            yield Reference(("consumers", index, field), f"consumers[{index}].{field}", path)


def confine(workflow: Workflow, allowed: Sequence[Path], shown: str) -> None:
    """SpecError listing each file the workflow names outside ``allowed`` (symlinks resolved),
    at its line of the YAML."""
    problems = [
        Problem(
            shown,
            workflow.lines.line_of(ref.where) or 0,
            ref.field,
            "names a file outside the workflow's own folder and the server's workflow roots",
            "send the file in the bundle (`files`, by relative path) or put it under a "
            "--workflow-root folder",
        )
        for ref in references(workflow)
        if not inside(ref.path, allowed)
    ]
    if problems:
        raise SpecError(problems)


def runs_code(workflow: Workflow) -> bool:
    """Whether running the workflow executes code its registrant supplies or chooses: an agent
    of a type other than the plain ones (``transform`` scripts, ``service`` calls, plugins) in
    it or any variant, or a model loaded by unpickling."""
    agent_sets = [workflow.agents]
    for variant in workflow.spec.variants:
        agent_sets.append(variant_workflow(workflow, variant.name).agents)
    if any(agent_class(a.type).runs_code for agents in agent_sets for a in agents):
        return True
    return any(spec.runs_code for spec in workflow.spec.models.values())


def referenced_hash(text: str, workflow: Workflow) -> str:
    """SHA-256 over the YAML text and the content of every regular file it names (a folder
    counts by its path): what a registration record says was registered."""
    files: dict[str, bytes] = {}
    for ref in references(workflow):
        key = str(ref.path)
        try:
            files[key] = _file_digest(ref.path) if ref.path.is_file() else b"folder"
        except OSError:
            files[key] = b"unreadable"
    return manifest_hash(text, files)


#: files larger than this count by size and time, not content (a data set is not re-read)
HASH_LIMIT = 64 << 20


def _file_digest(path: Path) -> bytes:
    info = path.stat()
    if info.st_size > HASH_LIMIT:
        return f"{info.st_size}:{info.st_mtime_ns}".encode()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()
