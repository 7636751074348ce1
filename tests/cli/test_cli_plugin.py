"""A plugin distribution (tests/resources/plugin_dist) installed into a virtualenv of its own: its
agent type and its provider, found through their entry-point groups, take part in
`relayflow validate` and `relayflow run` exactly as built-in ones do."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import relayflow

PLUGIN = Path(__file__).parents[1] / "resources" / "plugin_dist"
#: the relayflow under test (a worktree's src/ wins over the environment's editable install)
SOURCE = Path(relayflow.__file__).resolve().parents[1]

WORKFLOW = """\
models:
  parrot:
    provider: echo
    prefix: "parrot says: "
    price: {per_call: 0.25}
workflow:
  - name: ask
    type: inference
    model: parrot
    prompt: "hello {{ text }}"
  - name: stamp
    type: stamp
    stamp_file: stamp.txt
"""


@pytest.fixture(scope="session")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv that sees this environment's packages and has the
    plugin installed (once per session)."""
    root = tmp_path_factory.mktemp("plugin-venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root / "env")
    python = root / "env" / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # a virtualenv made from a virtualenv's python sees the base interpreter's packages, not
    # those of the environment running the tests: add that one as a site directory
    lines = [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    (Path(purelib) / "relayflow_test_env.pth").write_text("\n".join(lines) + "\n")
    source = shutil.copytree(PLUGIN, root / "plugin_dist")  # the build writes beside it
    if importlib.util.find_spec("hatchling") is None:  # the dev extra has it; else fetch it
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "hatchling>=1.25"],
            capture_output=True, text=True, check=True, timeout=300, env=_env(),
        )  # fmt: skip
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, check=True, timeout=300, env=_env(),
    )  # fmt: skip
    return python


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SOURCE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}


def _relayflow(python: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "relayflow", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip


def _workflow(folder: Path, stamp: str | None) -> Path:
    if stamp is not None:
        (folder / "stamp.txt").write_text(stamp, encoding="utf-8")
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    return path


def test_the_plugin_is_not_importable_here_only_in_its_own_environment() -> None:
    # the test below proves something only if the plugin comes from the install, not sys.path
    assert "relayflow_test_plugin" not in sys.modules
    from relayflow.agents.registry import known_types
    from relayflow.providers.registry import known_providers

    assert "stamp" not in known_types() and "echo" not in known_providers()


def test_a_plugin_agent_and_provider_validate_and_run_end_to_end(
    plugin_python: Path, tmp_path: Path
) -> None:
    workflow = _workflow(tmp_path, "stamp: approved\n")
    checked = _relayflow(plugin_python, "validate", workflow, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [f"ok: {workflow} (2 agents)"]

    ran = _relayflow(
        plugin_python, "run", workflow, "--input", '{"text": "world"}', "--json",
        "--store", tmp_path / "runs.db", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    [line] = [json.loads(x) for x in ran.stdout.splitlines() if x.strip()]
    assert line["status"] == "succeeded"
    assert line["output"] == {"text": "world", "output": "parrot says: hello world [approved]"}


def test_the_plugin_agent_checks_its_own_file_at_the_line_of_its_field(
    plugin_python: Path, tmp_path: Path
) -> None:
    workflow = _workflow(tmp_path, "approved\n")
    checked = _relayflow(plugin_python, "validate", workflow, cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [
        f"{workflow}:13: stamp.stamp_file: stamp.txt does not start with `stamp: <text>` — "
        "write the stamp on the file's first line, e.g. `stamp: approved`"
    ]
    assert "Traceback" not in checked.stderr


def test_the_files_a_plugin_agent_names_and_its_provider_settings_are_checked(
    plugin_python: Path, tmp_path: Path
) -> None:
    workflow = _workflow(tmp_path, None)  # no stamp.txt
    text = WORKFLOW.replace('prefix: "parrot says: "', 'prefix: ""\n    candidates: [x]')
    workflow.write_text(text, encoding="utf-8")
    checked = _relayflow(plugin_python, "validate", workflow, cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [
        f"{workflow}:4: models.parrot.prefix: string should have at least 1 character "
        "(got '') — fix the value's type or range",
        f"{workflow}:5: models.parrot.candidates: `candidates` is a router setting, but the "
        "provider is 'echo' — set provider: router (with candidates and a strategy), or "
        "remove it",
        f"{workflow}:14: stamp.stamp_file: file not found: {tmp_path / 'stamp.txt'} — create "
        "it or fix the path (relative to the YAML)",
    ]


def test_the_plugin_workflow_names_plugins_the_environment_lacks(tmp_path: Path) -> None:
    # without the plugin installed, the same file names what is missing, at its lines
    workflow = _workflow(tmp_path, "stamp: approved\n")
    result = subprocess.run(
        [sys.executable, "-m", "relayflow", "validate", workflow],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    assert problems[0].startswith(f"{workflow}:3: models.parrot.provider: 'echo' is not allowed")
    assert any(
        p.startswith(f"{workflow}:12: stamp.type: unknown agent type 'stamp'") for p in problems
    ), problems
