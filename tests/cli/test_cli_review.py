"""`relayflow review` and `relayflow feedback`: a `human_review` step parks the run; approve
and correct resume it; decisions and manual labels land in the feedback table."""

from __future__ import annotations

import json

import pytest

from tests.cli.cli_support import Cli


def parked_run(cli: Cli) -> str:
    wf = cli.reviewed()
    result = cli("run", wf, "--input", '{"text": "win money"}', "--json")
    assert result.exit_code == 0, result.output  # waiting for review is not a failure
    line = json.loads(result.stdout)
    assert line["status"] == "waiting_review" and line["step"] == "Review"
    return str(line["run_id"])


def test_review_list_and_show_the_escalated_step(cli: Cli) -> None:
    run_id = parked_run(cli)
    listing = cli("review", "list")
    assert listing.exit_code == 0, listing.output
    assert f"{run_id}:Review" in listing.stdout
    assert "pending" in listing.stdout and "when: true" in listing.stdout

    shown = cli("review", "show", run_id)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert f"review {run_id}:Review  pending" in out
    assert "reason: when: true" in out
    assert "instructions: Check the label" in out
    assert 'check label: "spam"' in out
    assert '"text": "win money"' in out
    same = cli("review", "show", f"{run_id}:Review")
    assert same.stdout == out


def test_approve_resumes_the_run_to_succeeded(cli: Cli) -> None:
    run_id = parked_run(cli)
    result = cli("review", "approve", run_id, "--reviewer", "ana")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"text": "win money", "label": "spam", "done": True}
    assert "approved by ana" in result.stderr
    with cli.store() as store:
        run = store.get_run(run_id)
        review = store.get_review(f"{run_id}:Review")
        labels = store.feedback("reviewed")
    assert run is not None and run.status == "succeeded"
    assert review is not None and review.status == "approved" and review.reviewer == "ana"
    assert [f["label"]["label"] for f in labels] == ["spam"]
    assert "no reviews pending" in cli("review", "list").stdout

    again = cli("review", "approve", f"{run_id}:Review")
    assert again.exit_code == 1 and "already approved" in again.stderr


def test_correct_with_set_changes_the_output_downstream(cli: Cli) -> None:
    run_id = parked_run(cli)
    result = cli(
        "review",
        "correct",
        run_id,
        "--set",
        "label=ham",
        "--set",
        "meta.score=0.5",
        "--reviewer",
        "bo",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "text": "win money",
        "label": "ham",
        "meta": {"score": 0.5},
        "done": True,
    }
    with cli.store() as store:
        review = store.get_review(f"{run_id}:Review")
        steps = {s.step: s for s in store.steps(run_id)}
    assert review is not None and review.status == "corrected"
    assert review.decided_output is not None and review.decided_output["label"] == "ham"
    assert steps["Review"].actor == "human"

    shown = cli("runs", "show", run_id)
    assert "reviewer=bo" in shown.stdout


def test_correct_with_a_whole_output(cli: Cli) -> None:
    run_id = parked_run(cli)
    result = cli("review", "correct", run_id, "--output", '{"label": "ham"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"label": "ham", "done": True}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, ""),
        (("--set", "novalue"), 1, "error: --set 'novalue' is not key=value"),
        (("--output", "[1]"), 1, "error: --output must be a JSON object, got list"),
    ],
)
def test_bad_corrections_are_refused_before_anything_runs(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    run_id = parked_run(cli)
    result = cli("review", "correct", run_id, *args)
    assert result.exit_code == code
    assert result.stderr.startswith(message)
    with cli.store() as store:
        run = store.get_run(run_id)
    assert run is not None and run.status == "waiting_review"


def test_review_of_a_run_that_is_not_waiting_is_an_error(cli: Cli) -> None:
    wf = cli.linear()
    line = json.loads(cli("run", wf, "--input", '{"n": 1}', "--json").stdout)
    result = cli("review", "show", line["run_id"])
    assert result.exit_code == 1
    assert "succeeded, not waiting for review" in result.stderr


def test_feedback_add_stores_a_label_for_the_run(cli: Cli) -> None:
    wf = cli.linear()
    line = json.loads(cli("run", wf, "--input", '{"id": 7, "n": 1}', "--json").stdout)
    result = cli(
        "feedback", "add", "numbers", "--label", '{"expected": 2}', "--run", line["run_id"]
    )
    assert result.exit_code == 0, result.output
    by_file = cli("feedback", "add", wf, "--label", '{"expected": 3}')
    assert by_file.exit_code == 0, by_file.output
    with cli.store() as store:
        labels = store.feedback("numbers")
    assert [(f["label"], f["run_id"], f["source"]) for f in labels] == [
        ({"expected": 2}, line["run_id"], "manual"),
        ({"expected": 3}, None, "manual"),
    ]
    assert labels[0]["item_key"] == line["item"]

    wrong = cli("feedback", "add", "other", "--label", "{}", "--run", line["run_id"])
    assert wrong.exit_code == 1 and "belongs to workflow 'numbers'" in wrong.stderr
