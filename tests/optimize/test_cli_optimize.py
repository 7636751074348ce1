"""`relayflow optimize` from the command line: the front, the files it writes, and one-line
errors for a bad section (exit status 1, no traceback)."""

from __future__ import annotations

import json

from tests.cli.cli_support import Cli
from tests.optimize.quiz import quiz


def test_optimize_prints_the_front_and_writes_its_files(cli: Cli) -> None:
    path = quiz(cli.folder, "optimize: {objectives: [agent_metric, utilization]}", items=40)
    result = cli("optimize", path, "--trials", 4, "--limit", 10, "--out", "out")
    assert result.exit_code == 0, result.output
    assert "Pareto front on 10 dev items" in result.stdout
    assert "estimate:" in result.output
    data = json.loads((cli.folder / "out" / "optimize.json").read_text())
    assert data["front"] and data["points"][0]["number"] == 0
    assert data["estimate"]["trials"] == 3
    html = (cli.folder / "out" / "report.html").read_text()
    assert "Pareto front" in html and "data:image/png;base64," in html
    if data["chosen"] is not None:
        assert (cli.folder / "out" / "optimized.yaml").is_file()
        assert cli("validate", cli.folder / "out" / "optimized.yaml").exit_code == 0


def test_a_bad_section_is_one_line_and_exit_1(cli: Cli) -> None:
    path = quiz(cli.folder, "optimize:\n  trials: 3\n  serach: {}")
    result = cli("optimize", path)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"{path}:13: optimize.serach: unknown field — did you mean `search`?" in lines[0]
    assert "Traceback" not in result.output
