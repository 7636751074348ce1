"""Turn an ACLSum paper record into what the model reads (a detokenised ``document``: the
abstract plus the first introduction sentences) and the ``references`` ROUGE scores against."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: characters of document the introduction may fill up to; the abstract is always kept whole
BUDGET = 1500

#: the aspects of an ACLSum summary, in the order a reader expects them
ASPECTS = ("challenge", "approach", "outcome")

# ACLSum's sentences are PTB-style tokenised: "model 's ( MT ) , 5 % ."
_BEFORE = re.compile(r" +([.,;:!?%)\]}]|'s\b|'re\b|'ve\b|'ll\b|'d\b|'m\b|n't\b)")
_AFTER = re.compile(r"([(\[{]) +")
_PLURAL_POSSESSIVE = re.compile(r"(\w)s ' ")
_RANGE = re.compile(r"(\d) - (\d)")
_SLASH = re.compile(r"(\w) / (?=\w)")
_QUOTE = re.compile(r'"')
_SPACES = re.compile(r"\s+")
_CLOSING = frozenset(".,;:!?%)]}")


def _quotes(text: str) -> str:
    """Glue straight double quotes to what they enclose: odd ones open, even ones close."""
    parts = _QUOTE.split(text)
    if len(parts) % 2 == 0:  # an unmatched quote: leave the spacing as it is
        return text
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        if i % 2:  # the text inside quote number i
            out.append('"' + part.strip() + '"')
        else:
            out.append(part)
    return "".join(out)


def detokenise(text: str) -> str:
    """``word .`` → ``word.``, `` , `` → ``, ``, ``( x )`` → ``(x)``, ``5 %`` → ``5%`` …"""
    text = _SPACES.sub(" ", text).strip()
    text = _AFTER.sub(r"\1", text)
    text = _BEFORE.sub(r"\1", text)
    text = _PLURAL_POSSESSIVE.sub(r"\1s' ", text)
    text = _RANGE.sub(r"\1-\2", text)
    text = _SLASH.sub(r"\1/", text)
    return _quotes(text)


def _sentences(record: Mapping[str, Any], section: str) -> list[str]:
    found: list[str] = []
    for raw in (record.get("sentences") or {}).get(section) or []:
        sentence = detokenise(raw) if isinstance(raw, str) else ""
        if found and sentence[:1] in _CLOSING:  # the splitter cut before a lone "." or ")"
            found[-1] += sentence
        elif sentence:
            found.append(sentence)
    return found


def build_document(abstract: Iterable[str], introduction: Iterable[str], budget: int) -> str:
    """The abstract, then introduction sentences in order while the text stays within
    ``budget`` characters (the abstract is never cut: it is the best summary input there is)."""
    document = " ".join(abstract)
    for sentence in introduction:
        longer = f"{document} {sentence}" if document else sentence
        if len(longer) > budget:
            break
        document = longer
    return document


def references(summary: Any) -> list[str]:
    """The reference summaries: ACLSum has one annotated summary per paper, written as three
    aspect sentences; joined in the order challenge, approach, outcome it is one reference.
    A list of such summaries (several annotators) gives one reference each."""
    versions = summary if isinstance(summary, list) else [summary]
    found = []
    for version in versions:
        if isinstance(version, str):
            text = version.strip()
        elif isinstance(version, Mapping):
            text = " ".join(str(version[a]).strip() for a in ASPECTS if version.get(a))
        else:
            continue
        if text:
            found.append(text)
    return found


def transform(record: dict[str, Any]) -> dict[str, Any]:
    """One ACLSum record → ``id``, ``title``, ``document`` and ``references``."""
    paper_id = record.get("id")
    if not isinstance(paper_id, str) or not paper_id:
        raise ValueError("record has no string id — is the source an ACLSum jsonl file?")
    document = build_document(
        _sentences(record, "abstract"), _sentences(record, "introduction"), BUDGET
    )
    if not document:
        raise ValueError(f"paper {paper_id} has neither abstract nor introduction sentences")
    return {
        "id": paper_id,
        "title": str(record.get("title") or ""),
        "document": document,
        "references": references(record.get("summary")),
    }
