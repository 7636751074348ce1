"""Prompt compression: cleaning, sentence splitting, relevance, the token budget, and the
inference step that compresses its handoff before rendering the prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.agents.base import BuildContext
from relayflow.agents.inference import InferenceAgent, InferenceConfig
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.prompts.compress import (
    clean,
    compress,
    estimate_tokens,
    instruction_of,
    split_sentences,
)
from relayflow.providers.base import Provider
from tests.agents.fakes import FakeProvider, completion

pytest.importorskip("sklearn", reason="scikit-learn (extra: compress) is missing")
pytest.importorskip("snowballstemmer", reason="snowballstemmer (extra: compress) is missing")

PAPER = (
    "Machine translation of low-resource languages remains hard. "
    "The conference was held in a large hall with many chairs. "
    "We propose a new approach that pretrains a multilingual encoder on monolingual text. "
    "Lunch was served at noon and the coffee was good. "
    "Our results show a gain of 4 BLEU points over the strongest baseline. "
    "The weather in the city was sunny for most of the week. "
    "The approach also reduces training time by half."
)
QUERY = "Say what problem it addresses, what approach it proposes, and what result it reports."


def words(text: str) -> int:
    return len(text.split())


def test_estimate_counts_punctuation_and_long_words() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a cat.") == 3
    assert estimate_tokens("internationalisation") == 1 + 19 // 6
    assert estimate_tokens("x" * 12) == 2


def test_clean_normalises_whitespace_and_strips_html() -> None:
    text = "<div><p>Hello&nbsp;  there,\t friend.</p><script>alert(1)</script><p>Bye</p></div>"
    assert clean(text) == "Hello there, friend.\n\nBye"
    assert clean("a  b\n\n\n\n c ") == "a b\n\nc"


def test_clean_drops_repeated_lines_and_boilerplate() -> None:
    text = "\n".join(
        [
            "ACME Quarterly Report",
            "Revenue grew by 12% in the quarter.",
            "Page 1 of 2",
            "ACME Quarterly Report",
            "Costs fell by 3%.",
            "Sent from my iPhone",
            "This email and any attachments are confidential and intended solely for the "
            "addressee.",
            "Click here to unsubscribe.",
            "Best regards,",
            "Jane Doe",
            "Head of Finance",
        ]
    )
    assert clean(text) == (
        "ACME Quarterly Report\nRevenue grew by 12% in the quarter.\nCosts fell by 3%."
    )


def test_a_closing_word_inside_the_text_is_not_a_signature() -> None:
    lines = ["Thanks!", *[f"Line {i} of a long letter that goes on." for i in range(8)]]
    assert clean("\n".join(lines)).startswith("Thanks!\nLine 0")


def test_sentences_split_after_full_stops_but_not_abbreviations() -> None:
    text = (
        "We use BERT (Devlin et al. 2019), e.g. for tagging. It works. "
        "See Fig. 3 for J. Doe's plot!\nA list item"
    )
    assert split_sentences(text) == [
        "We use BERT (Devlin et al. 2019), e.g. for tagging.",
        "It works.",
        "See Fig. 3 for J. Doe's plot!",
        "A list item",
    ]


def test_the_budget_is_respected_and_the_order_kept() -> None:
    sentences = split_sentences(PAPER)
    for budget in (10, 25, 40, 60):
        out = compress(PAPER, max_tokens=budget, query=QUERY, count=words)
        assert out.tokens_after == words(out.text) <= budget
        kept = split_sentences(out.text)
        positions = [sentences.index(s) for s in kept]
        assert positions == sorted(positions) and kept


def test_the_most_relevant_sentences_are_kept() -> None:
    out = compress(PAPER, max_tokens=45, query=QUERY, count=words)
    assert "We propose a new approach" in out.text
    assert "Our results show a gain" in out.text
    assert "Lunch" not in out.text and "weather" not in out.text
    assert out.tokens_before == words(PAPER) and out.sentences_total == 7


def test_keep_patterns_come_first() -> None:
    out = compress(PAPER, max_tokens=15, query=QUERY, count=words, keep=[r"\blunch\b"])
    assert out.text.startswith("Lunch was served at noon")


def test_a_text_within_the_budget_is_only_cleaned() -> None:
    out = compress("  Short   text. ", max_tokens=50, query=QUERY, count=words)
    assert out.text == "Short text." and out.sentences_kept == out.sentences_total == 1


def test_when_no_sentence_fits_the_best_one_is_cut_at_a_word() -> None:
    out = compress(PAPER, max_tokens=5, query="BLEU gain results baseline", count=words)
    assert out.text == "Our results show a gain" and out.tokens_after == 5


def test_method_clean_does_not_select() -> None:
    out = compress(PAPER + "\n" + PAPER, max_tokens=5, count=words, method="clean")
    assert out.text == PAPER


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefgh xyz", min_size=1, max_size=60).map(lambda s: s.strip() + "."),
        min_size=1,
        max_size=12,
    ),
    st.integers(min_value=1, max_value=80),
)
def test_any_text_fits_its_budget_deterministically(sentences: list[str], budget: int) -> None:
    text = " ".join(s.capitalize() for s in sentences)
    first = compress(text, max_tokens=budget, query="abc", count=estimate_tokens)
    assert first.tokens_after <= budget
    assert first == compress(text, max_tokens=budget, query="abc", count=estimate_tokens)


def test_instruction_of_keeps_the_templates_own_words() -> None:
    assert instruction_of("Summarize {{ document }}{# note #}\n{% if x %}briefly{% endif %}") == (
        "Summarize briefly"
    )


# ---- the inference step ------------------------------------------------------------------


class Counting(FakeProvider):
    """A provider that counts tokens as words (as llama.cpp's counts them in its vocabulary)."""

    def count_tokens(self, text: str) -> int:
        return words(text)


def _agent(tmp_path: Path, fake: Provider, **compress: object) -> InferenceAgent:
    (tmp_path / "s.jinja").write_text(
        "Summarize the paper: say what problem, what approach, what result.\n{{ document }}",
        encoding="utf-8",
    )
    config = InferenceConfig(
        name="Summarize",
        type="inference",
        model="smol",
        prompt_template="s.jinja",
        compress=compress,  # type: ignore[arg-type]
    )
    ctx = BuildContext(base_dir=tmp_path, workflow_file=None, get_provider=lambda _a: fake)
    agent = InferenceAgent(config, ctx)
    asyncio.run(agent.prepare())
    return agent


def test_the_step_compresses_the_prompt_but_not_its_output(tmp_path: Path) -> None:
    fake = Counting([completion("a summary")])
    agent = _agent(tmp_path, fake, max_tokens=30, fields=["document"])
    result = asyncio.run(
        agent.run(Handoff(data={"document": PAPER, "id": "p1"}, run_id="r"), StepInfo("r", "S", 1))
    )
    prompt = fake.requests[0].prompt
    assert "Lunch" not in prompt and "weather" not in prompt and "Our results show" in prompt
    assert result.data["document"] == PAPER and result.data["output"] == "a summary"
    kept = prompt.split("\n", 1)[1]
    assert result.versions["compressed"] == f"document:{words(PAPER)}>{words(kept)}"
    assert words(kept) <= 30
    assert len(agent.versions()["compress"]) == 12


def test_the_compress_settings_change_the_step_version(tmp_path: Path) -> None:
    one = _agent(tmp_path, FakeProvider(), max_tokens=30).versions()["compress"]
    two = _agent(tmp_path, FakeProvider(), max_tokens=31).versions()["compress"]
    assert one != two
    assert _agent(tmp_path, FakeProvider(), max_tokens=30).versions()["compress"] == one


def test_without_fields_only_strings_over_the_budget_are_compressed(tmp_path: Path) -> None:
    fake = Counting([completion("ok")])
    agent = _agent(tmp_path, fake, max_tokens=30)
    data = {"document": PAPER, "title": "Short title", "n": 3}
    result = asyncio.run(agent.run(Handoff(data=data, run_id="r"), StepInfo("r", "S", 1)))
    assert (
        result.versions["compressed"].startswith("document:")
        and "title" not in (result.versions["compressed"])
    )


def test_without_a_token_counter_the_estimate_is_used(tmp_path: Path) -> None:
    fake = FakeProvider([completion("ok")])
    agent = _agent(tmp_path, fake, max_tokens=30, fields=["document"])
    result = asyncio.run(
        agent.run(Handoff(data={"document": PAPER}, run_id="r"), StepInfo("r", "S", 1))
    )
    before, after = result.versions["compressed"].removeprefix("document:").split(">")
    assert int(before) == estimate_tokens(PAPER) and int(after) <= 30


def test_the_compressed_example_differs_from_its_baseline_only_by_compress() -> None:
    import relayflow

    folder = Path(__file__).resolve().parents[2] / "examples" / "document_summarization"
    base = relayflow.load_workflow(folder / "workflow.yaml")
    compressed = relayflow.load_workflow(folder / "workflow_compressed.yaml")
    assert [a.model_dump(exclude={"compress"}) for a in base.agents] == [
        a.model_dump(exclude={"compress"}) for a in compressed.agents
    ]
    step = compressed.agents[2]
    assert isinstance(step, InferenceConfig) and step.compress is not None
    assert (step.compress.fields, step.compress.max_tokens) == (["document"], 160)
