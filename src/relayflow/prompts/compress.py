"""Prompt compression: clean a long text (whitespace, HTML, boilerplate lines), then keep the
sentences most relevant to the instruction within a token budget, in their original order.

Relevance is TF-IDF cosine (scikit-learn): a sentence scores its similarity to the query (the
instruction, or ``compress.query``) plus its similarity to the whole text's centroid, so a
sentence that answers the instruction or carries the text's main content wins. Tokens are the
model's own (``count_tokens`` of the provider, e.g. llama.cpp) or `estimate_tokens`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser

TokenCounter = Callable[[str], int]

_PIECE = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A word-piece estimate for models whose tokenizer relayflow cannot call: each
    punctuation mark is one token and a word one per started 6 characters (BPE vocabularies
    keep common words whole and split rare long ones). On 20 ACLSum papers it gave 1.09-1.33x
    SmolLM2's own count: it errs on the side of a shorter text."""
    return sum(1 if not p[0].isalnum() else 1 + (len(p) - 1) // 6 for p in _PIECE.findall(text))


# ---- cleaning ------------------------------------------------------------------------------

_TAG = re.compile(r"<(?:[a-zA-Z][^<>]*|/[a-zA-Z][^<>]*|!--.*?--)>", re.DOTALL)
_BLOCK_TAGS = frozenset(
    "p div br li ul ol tr table h1 h2 h3 h4 h5 h6 section article header footer blockquote "
    "pre hr title".split()
)
_SKIP_TAGS = frozenset(("script", "style", "head", "noscript"))
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
#: lines that carry no content for a model: mail clients' and lists' boilerplate, page furniture
_BOILERPLATE = re.compile(
    r"""^(?:
        sent\ from\ my\ .{1,40}
      | get\ outlook\ for\ .{1,30}
      | (?:confidentiality\ notice|disclaimer|legal\ notice)\b.*
      | .*\bth(?:is|e)\ (?:e-?mail|message|communication)\b.*\b(?:confidential|privileged
          |intended\ (?:solely|only)\ for)\b.*
      | .*\bif\ you\ (?:have\ )?received\ this\ .{0,30}\bin\ error\b.*
      | .*\bunsubscribe\b.*
      | view\ (?:this\ (?:e-?mail|message)\ )?in\ (?:your\ )?browser.*
      | page\ \d+(?:\ of\ \d+)?
      | \[?(?:image|cid):[^\]]*\]?
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
#: a closing (``Best regards,``) or the ``-- `` delimiter starts a signature block
_SIGN_OFF = re.compile(
    r"^(?:--|(?:(?:best|kind|warm|many)\s+)?(?:regards|wishes|thanks)|thank\s+you|cheers"
    r"|sincerely(?:\s+yours)?|yours\s+(?:truly|sincerely))[,.!]?$",
    re.IGNORECASE,
)
#: a signature block is at most this many short lines after its closing
_SIGNATURE_LINES = 6


class _Text(HTMLParser):
    """The text of an HTML fragment: block elements become line breaks, scripts vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """``text`` without HTML tags (entities decoded); text with no tags comes back as it is."""
    if not _TAG.search(text):
        return text
    parser = _Text()
    parser.feed(text)
    parser.close()
    return html.unescape("".join(parser.parts))


def _without_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        rest = [x for x in lines[index + 1 :] if x]
        if _SIGN_OFF.match(line) and (
            line == "--" or (len(rest) <= _SIGNATURE_LINES and all(len(x) <= 60 for x in rest))
        ):
            return lines[:index]
    return lines


def clean(text: str) -> str:
    """Whitespace normalised (runs of spaces, blank lines), HTML tags removed, and boilerplate
    dropped: lines seen before (headers, footers, quoted repeats), mail-client and disclaimer
    lines, page numbers, and a signature block at the end."""
    text = strip_html(text).replace("\r\n", "\n").replace("\r", "\n")
    seen: set[str] = set()
    lines: list[str] = []
    for raw in text.split("\n"):
        line = _SPACES.sub(" ", raw).strip()
        if line:
            key = line.casefold()
            if key in seen or _BOILERPLATE.match(line):
                continue
            seen.add(key)
        lines.append(line)
    out = "\n".join(_without_signature(lines))
    return _BLANK_LINES.sub("\n\n", out).strip()


# ---- sentences -----------------------------------------------------------------------------

#: words after which a full stop does not end a sentence
_ABBREVIATIONS = frozenset(
    "e.g i.e et al etc vs cf fig figs eq eqs sec no nos vol pp ch dr mr mrs ms prof st jr sr "
    "inc ltd co corp approx resp".split()
)
_END = re.compile(r"[.!?…]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: each line (paragraph, list item) is split after ``. ! ?``
    followed by a capital or a digit, except after common abbreviations and initials."""
    sentences: list[str] = []
    for line in text.split("\n"):
        start = 0
        for match in _END.finditer(line):
            head = line[start : match.start()]
            word = head.rsplit(None, 1)[-1].lower().rstrip(".") if head.strip() else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return [s for s in sentences if s]


_WORD = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _analyzer() -> Callable[[str], list[str]]:
    """Lower-cased words, English stop words out, Snowball-stemmed (``results`` → ``result``)."""
    import snowballstemmer
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stem = snowballstemmer.stemmer("english").stemWord

    def analyse(text: str) -> list[str]:
        words = (w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS)
        return [str(stem(w)) for w in words]

    return analyse


def relevance(sentences: Sequence[str], query: str) -> list[float]:
    """Each sentence's TF-IDF cosine to ``query`` plus its cosine to the centroid of all the
    sentences (English stop words out, sublinear term frequency)."""
    try:
        import snowballstemmer  # noqa: F401 - checked here, used by _analyzer
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:  # pragma: no cover - the compress extra is missing
        from relayflow.errors import AgentError

        raise AgentError(
            f"compress: method extractive needs {exc.name}: pip install 'relayflow[compress]'"
        ) from exc
    if not sentences:
        return []
    vectorizer = TfidfVectorizer(analyzer=_analyzer(), sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform([*sentences, query])
    except ValueError:  # nothing but stop words: no vocabulary, so no evidence either way
        return [0.0] * len(sentences)
    rows, q = matrix[: len(sentences)], matrix[len(sentences)]
    centroid = rows.mean(axis=0).A1
    norm = math.sqrt(float((centroid**2).sum())) or 1.0
    to_query = (rows @ q.T).toarray().ravel()  # rows are L2-normalised: dot = cosine
    to_centroid = rows @ (centroid / norm)
    return [float(a) + float(b) for a, b in zip(to_query, to_centroid, strict=True)]


# ---- selection -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compressed:
    """A compressed text and its size in tokens before (as given) and after."""

    text: str
    tokens_before: int
    tokens_after: int
    sentences_kept: int
    sentences_total: int


def _truncate(text: str, budget: int, count: TokenCounter) -> str:
    """The longest word prefix of ``text`` within ``budget`` tokens."""
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if count(" ".join(words[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def select(
    sentences: Sequence[str],
    scores: Sequence[float],
    budget: int,
    count: TokenCounter,
    keep: Iterable[re.Pattern[str]] = (),
) -> list[int]:
    """Indices of the sentences to keep, ascending: those matching ``keep`` first, then by
    score (ties: the earlier one), each while the joined text stays within ``budget``."""
    patterns = tuple(keep)
    forced = [i for i, s in enumerate(sentences) if any(p.search(s) for p in patterns)]
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    first = set(forced)
    order = forced + [i for i in ranked if i not in first]
    chosen: list[int] = []
    used = 0
    for index in order:
        cost = count(sentences[index]) + (1 if chosen else 0)  # the joining space, at most
        if used + cost <= budget:
            chosen.append(index)
            used += cost
    # the sum of the sentences' counts is an estimate of the joined text's: check it
    while chosen and count(" ".join(sentences[i] for i in sorted(chosen))) > budget:
        chosen.pop()
    return sorted(chosen)


def compress(
    text: str,
    *,
    max_tokens: int | None,
    query: str = "",
    count: TokenCounter = estimate_tokens,
    keep: Sequence[str] = (),
    method: str = "extractive",
) -> Compressed:
    """``text`` cleaned, and (method ``extractive``) cut to its most relevant sentences within
    ``max_tokens``. A text already within the budget is only cleaned. Deterministic."""
    before = count(text)
    cleaned = clean(text)
    sentences = split_sentences(cleaned)
    if method != "extractive" or max_tokens is None or count(cleaned) <= max_tokens:
        return Compressed(cleaned, before, count(cleaned), len(sentences), len(sentences))
    patterns = [re.compile(p, re.IGNORECASE) for p in keep]
    chosen = select(sentences, relevance(sentences, query), max_tokens, count, patterns)
    if chosen:
        out = " ".join(sentences[i] for i in chosen)
    else:  # not even one sentence fits: the most relevant one, cut at a word boundary
        best = max(range(len(sentences)), key=relevance(sentences, query).__getitem__)
        out, chosen = _truncate(sentences[best], max_tokens, count), [best]
    return Compressed(out, before, count(out), len(chosen), len(sentences))


_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def instruction_of(source: str) -> str:
    """A template's own words (its Jinja expressions and tags removed): the default query."""
    return " ".join(_JINJA.sub(" ", source).split())
