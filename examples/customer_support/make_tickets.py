"""Write the customer-support example's labelled tickets and golden set, deterministically.

Run ``python examples/customer_support/make_tickets.py`` to rewrite ``data/`` byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

SEED = 20250301
PER_INTENT = 40
HOLDOUT_PER_INTENT = 12
START = datetime(2025, 3, 3, 7, 30, tzinfo=UTC)
HERE = Path(__file__).resolve().parent


def _phrases() -> ModuleType:
    """The phrase bank beside this script (loaded by path: examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("ticket_phrases", HERE / "ticket_phrases.py")
    assert spec is not None and spec.loader is not None  # noqa: S101 - invariant: the file is beside this script
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _phrases()


def _slots(rng: random.Random, first: str, last: str) -> dict[str, str]:
    plan_index = rng.randrange(len(P.PLANS) - 1)
    order = rng.choice(["#NW-{n}", "NW{n}", "{n}", "#{n}"]).format(n=rng.randint(10000, 99999))
    local = rng.choice([f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"])
    local = unicodedata.normalize("NFKD", local.lower()).replace("'", "")
    local = "".join(c for c in local if c.isascii() and (c.isalnum() or c == "."))
    return {
        "order": order,
        "product": rng.choice(P.PRODUCTS),
        "amount": f"${rng.randint(9, 349)}.{rng.choice(['00', '49', '95', '99'])}",
        "plan": P.PLANS[plan_index],
        "new_plan": rng.choice(P.PLANS[plan_index + 1 :]),
        "date": f"{rng.choice(P.MONTHS)} {rng.randint(1, 28)}",
        "days": str(rng.randint(3, 21)),
        "weeks": str(rng.randint(2, 6)),
        "months": str(rng.randint(2, 30)),
        "last4": f"{rng.randint(0, 9999):04d}",
        "email": f"{local}@{rng.choice(P.EMAIL_DOMAINS)}",
        "address": f"{rng.randint(2, 240)} {rng.choice(P.STREETS)}"
        + rng.choice(["", "", f", Apt {rng.randint(1, 30)}{rng.choice('ABC')}"]),
        "city": rng.choice(P.CITIES),
        "country": rng.choice(P.COUNTRIES),
        "seats": str(rng.randint(2, 25)),
        "first": first,
        "name": f"{first} {last}",
        "phone": f"{rng.randint(0, 99):02d}",
        "custno": str(rng.randint(100000, 999999)),
        "weekday": rng.choice(P.WEEKDAYS),
        "month": rng.choice(P.MONTHS),
        "day": str(rng.randint(1, 28)),
        "hour": str(rng.randint(8, 17)),
        "minute": f"{rng.randint(0, 59):02d}",
        "ref": str(rng.randint(100000, 999999)),
    }


def _typos(rng: random.Random, text: str) -> str:
    """Swap, drop or double a letter in one to three words, as hurried typing does."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    for i in rng.sample(candidates, min(len(candidates), rng.randint(1, 3))):
        w = words[i]
        j = rng.randrange(1, len(w) - 1)
        kind = rng.choice(["swap", "drop", "double"])
        if kind == "swap":
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif kind == "drop":
            w = w[:j] + w[j + 1 :]
        else:
            w = w[:j] + w[j] + w[j:]
        words[i] = w
    return " ".join(words)


def _compose(
    rng: random.Random, intent: str, channel: str, tone: str, slots: dict[str, str]
) -> tuple[str, str]:
    """A subject and body for one ticket of ``intent``, shaped by channel and tone."""
    bank = P.INTENTS[intent]
    sentences = [rng.choice(bank["openers"])]
    extra = {"chat": (0, 1), "web": (0, 2), "email": (0, 3)}[channel]
    details = list(bank["details"])
    rng.shuffle(details)
    sentences += details[: rng.randint(*extra)]
    if channel == "email" and rng.random() < 0.12:  # a long, rambling message
        sentences = sentences[:1] + details
        fillers = rng.sample(P.FILLERS, 3)
    else:
        fillers = rng.sample(P.FILLERS, 1) if channel != "chat" and rng.random() < 0.2 else []
    for filler in fillers:
        sentences.insert(rng.randint(0, len(sentences)), filler)
    if tone == "angry":
        if rng.random() < 0.5:
            sentences.insert(0, rng.choice(P.ANGRY_OPEN))
        sentences.append(rng.choice(P.ANGRY_CLOSE))
    elif tone == "polite":
        sentences.append(rng.choice(P.POLITE))
    elif rng.random() < 0.5:
        sentences.append(rng.choice(P.NEUTRAL))
    body = " ".join(sentences).format_map(slots)
    if rng.random() < 0.18:
        body = _typos(rng, body)
    if channel == "chat" and rng.random() < 0.35:
        body = body.lower().rstrip(".")
    if tone == "angry" and rng.random() < 0.3:
        body = body.replace("!", "!!").replace("?", "???")

    subject = "" if channel == "chat" else rng.choice(bank["subjects"]).format_map(slots)
    if tone == "angry" and subject and rng.random() < 0.4:
        subject = subject.upper() + "!!!"
    if channel == "email":
        if rng.random() < 0.7:
            body = f"{rng.choice(P.GREETINGS)}\n\n{body}"
        if rng.random() < 0.75:
            body += "\n\n" + rng.choice(P.SIGNATURES).format_map(slots)
        if rng.random() < 0.25:
            body += "\n\n" + rng.choice(P.QUOTES).format_map(slots)
            subject = f"Re: {subject}"
    elif channel == "web" and rng.random() < 0.3:
        body = f"{rng.choice(P.GREETINGS)} {body}"
    return subject, body


def make_tickets() -> list[dict[str, Any]]:
    """All tickets, in the order they are written; each carries its ``intent`` label."""
    rng = random.Random(SEED)  # noqa: S311 - seeded, repeatable example data
    jobs: list[tuple[str, int | None]] = [(amb[0], k) for k, amb in enumerate(P.AMBIGUOUS)]
    for intent in P.INTENTS:
        taken = sum(1 for label, _ in jobs if label == intent)
        jobs += [(intent, None)] * (PER_INTENT - taken)
    rng.shuffle(jobs)

    tickets: list[dict[str, Any]] = []
    bodies: set[str] = set()
    when = START
    for n, (intent, ambiguous) in enumerate(jobs, start=1):
        when += timedelta(minutes=rng.randint(2, 140))
        first, last = rng.choice(P.FIRST_NAMES), rng.choice(P.LAST_NAMES)
        channel = rng.choices(["email", "chat", "web"], weights=[5, 3, 2])[0]
        while True:
            slots = _slots(rng, first, last)
            if ambiguous is not None:
                _, subject, body = P.AMBIGUOUS[ambiguous]
                subject = subject.format_map(slots) if channel != "chat" else ""
                body = body.format_map(slots)
            else:
                angry = 0 if intent == "general_question" else 2
                tone = rng.choices(["polite", "neutral", "angry"], weights=[5, 3, angry])[0]
                subject, body = _compose(rng, intent, channel, tone, slots)
            if body not in bodies:
                break
        bodies.add(body)
        tickets.append(
            {
                "id": f"T-{n:04d}",
                "channel": channel,
                "customer": f"{first} {last}",
                "subject": subject,
                "body": body,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "intent": intent,
            }
        )
    return tickets


def make_golden(tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ticket's expected intent; 12 per intent are marked ``holdout``, the rest ``dev``."""
    rng = random.Random(SEED + 1)  # noqa: S311 - seeded, repeatable example data
    holdout: set[str] = set()
    for intent in P.INTENTS:
        ids = [t["id"] for t in tickets if t["intent"] == intent]
        holdout.update(rng.sample(ids, HOLDOUT_PER_INTENT))
    return [
        {"id": t["id"], "intent": t["intent"], "split": "holdout" if t["id"] in holdout else "dev"}
        for t in tickets
    ]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_tickets(folder: Path) -> tuple[Path, Path]:
    """Write ``tickets.jsonl`` and ``golden.jsonl`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    tickets = make_tickets()
    paths = (folder / "tickets.jsonl", folder / "golden.jsonl")
    _write_jsonl(paths[0], tickets)
    _write_jsonl(paths[1], make_golden(tickets))
    return paths


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else HERE / "data"
    for path in write_tickets(folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
