"""The accuracy metrics against values computed by hand and the formulas they implement."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import get_args

import pytest

from relayflow.errors import RelayflowError
from relayflow.eval.scoring import (
    METRICS,
    Score,
    accuracy,
    bleu,
    exact_match,
    f1,
    pass_at_k,
    pass_at_k_from_bools,
    rouge,
    score,
)
from relayflow.schema.file import EvaluateSpec


def test_metric_names_are_those_of_the_evaluate_section() -> None:
    assert set(METRICS) == set(get_args(EvaluateSpec.model_fields["metric"].annotation))


def test_accuracy_normalises_case_and_whitespace() -> None:
    result = accuracy(
        ["Refund ", "billing", "SHIPPING", "other"], ["refund", "Billing", "x", "other"]
    )
    assert result == Score("accuracy", 0.75, 4, (1.0, 1.0, 0.0, 1.0))


def test_accuracy_matches_numbers_and_their_text() -> None:
    result = accuracy([1, 1.0, True, 2.5, None], ["1", 1, "true", "2.5", "no"])
    assert result.per_item == (1.0, 1.0, 1.0, 1.0, 0.0)


def test_macro_f1_matches_a_hand_computation() -> None:
    # a: tp 1, fp 1, fn 1 -> 0.5; b: tp 2, fp 1, fn 0 -> 0.8; c: never predicted -> 0
    result = f1(["a", "b", "b", "b", "a"], ["a", "a", "b", "b", "c"])
    assert result.value == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert dict(result.details) == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert result.per_item == (1.0, 0.0, 1.0, 1.0, 0.0)
    assert result.n == 5


def test_micro_f1_of_single_labels_is_accuracy() -> None:
    pred, ref = ["a", "b", "b", "c"], ["a", "a", "b", "c"]
    assert f1(pred, ref, average="micro").value == pytest.approx(accuracy(pred, ref).value)


def test_exact_match_ignores_case_punctuation_articles_and_spaces() -> None:
    result = exact_match(
        ["The  Eiffel Tower!", "Paris, France", "42", None],
        ["eiffel tower", "paris", ["forty-two", "42."], ""],
    )
    assert result.per_item == (1.0, 0.0, 1.0, 1.0)
    assert result.value == 0.75


def test_rouge_of_identical_text_is_one_and_of_disjoint_text_zero() -> None:
    same = rouge(["The cat sat on the mat."], ["The cat sat on the mat."])
    assert same.value == pytest.approx(1.0)
    assert dict(same.details) == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    apart = rouge(["green apples fall"], ["quantum physics lecture"])
    assert apart.value == 0.0
    assert dict(apart.details) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_stems_words() -> None:
    assert rouge(["cats running"], ["cat runs"]).value == pytest.approx(1.0)


def test_rouge_takes_the_best_reference_of_each_item() -> None:
    pred = ["the cat sat on the mat", "a dog barked loudly"]
    single = rouge(pred, ["a bird flew away", "a dog barked"])
    multi = rouge(pred, [["a bird flew away", "the cat sat on a mat"], "a dog barked"])
    assert single.per_item[0] < multi.per_item[0]
    assert multi.per_item[1] == pytest.approx(single.per_item[1])
    # "the cat sat on a mat": LCS of 5 of 6 tokens each way
    assert multi.per_item[0] == pytest.approx(5 / 6)
    assert multi.value == pytest.approx(sum(multi.per_item) / 2)


def test_an_item_without_references_is_an_error() -> None:
    with pytest.raises(RelayflowError, match="item 1 has no reference"):
        rouge(["a", "b"], ["a", []])


def test_bleu_of_identical_text_is_one() -> None:
    text = ["the quick brown fox jumps over the lazy dog", "a b c d e f"]
    result = bleu(text, text)
    assert result.value == 1.0
    assert result.per_item == (1.0, 1.0)


def test_bleu_of_disjoint_text_is_zero_and_accepts_uneven_references() -> None:
    assert bleu(["one two three four"], ["five six seven eight"]).value == 0.0
    result = bleu(
        ["the quick brown fox jumps", "hello there my good friend"],
        [["a slow red fox", "the quick brown fox jumps"], "hello there my good friend"],
    )
    assert result.value == pytest.approx(1.0)
    assert result.details["brevity_penalty"] == pytest.approx(1.0)


def _hand_pass_at_k(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("k", [1, 5])
def test_pass_at_k_matches_the_formula(k: int) -> None:
    result = pass_at_k([3], [10], k)
    assert result.value == pytest.approx(_hand_pass_at_k(10, 3, k))
    assert result.details["k"] == k


def test_pass_at_k_known_values_and_edges() -> None:
    assert pass_at_k([3], [10], 1).value == pytest.approx(0.3)
    assert pass_at_k([3], [10], 5).value == pytest.approx(1 - 21 / 252)
    assert pass_at_k([0], [10], 5).value == 0.0
    assert pass_at_k([8], [10], 5).value == 1.0  # n - c < k: every draw of 5 has a pass
    result = pass_at_k([0, 3, 10], [10, 10, 10], 2)
    assert result.per_item == pytest.approx((0.0, _hand_pass_at_k(10, 3, 2), 1.0))


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(RelayflowError, match="needs at least 5"):
        pass_at_k([0], [3], 5)
    with pytest.raises(RelayflowError, match="0..10"):
        pass_at_k([11], [10], 1)
    with pytest.raises(RelayflowError, match="2 pass counts but 1"):
        pass_at_k([1, 2], [10], 1)


def test_pass_at_1_from_bools_is_the_share_passed() -> None:
    result = pass_at_k_from_bools([True, False, True, True])
    assert (result.metric, result.value, result.per_item) == ("pass_at_k", 0.75, (1, 0, 1, 1))


def test_score_dispatches_on_the_metric_name() -> None:
    pred, ref = ["the cat sat on the mat", "b"], ["the cat sat on a mat", "b"]
    assert score("accuracy", pred, ref) == accuracy(pred, ref)
    assert score("exact_match", pred, ref) == exact_match(pred, ref)
    assert score("f1", pred, ref).value == f1(pred, ref).value
    assert score("rouge", pred, ref).value == rouge(pred, ref).value
    assert score("bleu", pred, ref).value == bleu(pred, ref).value


def test_score_of_pass_at_k_reads_booleans_or_lists_of_them() -> None:
    result = score("pass_at_k", [True, [True, False, False], [False, False, False]], None, k=1)
    assert result.per_item == pytest.approx((1.0, 1 / 3, 0.0))
    with pytest.raises(RelayflowError, match="true/false field"):
        score("pass_at_k", ["def f(): pass"], None)


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(RelayflowError, match="unknown metric 'recall'.*accuracy, f1, rouge"):
        score("recall", ["a"], ["a"])


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(RelayflowError, match="2 predictions but 3 references"):
        score("accuracy", ["a", "b"], ["a", "b", "c"])
    with pytest.raises(RelayflowError, match="needs references"):
        score("rouge", ["a"], None)


@pytest.mark.parametrize("metric", METRICS)
def test_empty_input_scores_zero(metric: str) -> None:
    result = score(metric, [], [])
    assert (result.metric, result.value, result.n, result.per_item) == (metric, 0.0, 0, ())


def test_details_are_read_only() -> None:
    result = rouge(["a b"], ["a b"])
    with pytest.raises(TypeError):
        result.details["rouge1"] = 0.0  # type: ignore[index]


def test_importing_scoring_loads_no_heavy_library() -> None:
    code = (
        "import sys, relayflow.eval.scoring, relayflow.eval.stats; "
        "print(sorted(m for m in ('numpy', 'sklearn', 'rouge_score', 'sacrebleu') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
