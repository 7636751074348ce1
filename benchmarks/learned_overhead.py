"""What a learned label model costs (providers/text_labels.py): the time to fit it on 1,000
labelled texts, and to answer one item through the learned provider (one call per item, as a
step makes them), for each featurizer. The texts are 1,000 support tickets over ten intents
from the customer-support example's own generator (100 per intent, deterministic).

Each figure is the median of ``--processes`` fresh processes (a process loads the embedding
model once, as a worker does; loading is reported apart). Writes
``benchmarks/results/learned_overhead.json``.

    .venv/bin/python benchmarks/learned_overhead.py --processes 5
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "customer_support"
RESULTS = Path(__file__).resolve().parent / "results" / "learned_overhead.json"
LABELS = 1000
PREDICTIONS = 300


def tickets(count: int) -> tuple[list[str], list[str]]:
    """``count`` cleaned ticket texts and their intents, from the example's generator."""
    sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("make_tickets", EXAMPLE / "make_tickets.py")
    assert spec is not None and spec.loader is not None  # noqa: S101 - the file is beside us
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    make.PER_INTENT = count // 10
    from preprocess import transform

    rows = [transform(t) for t in make.make_tickets()]
    return [r["text"] for r in rows][:count], [r["expected"] for r in rows][:count]


def child(featurizer: str) -> dict[str, float]:
    from relayflow.providers.base import CompletionRequest
    from relayflow.providers.learned import LearnedProvider
    from relayflow.providers.text_labels import TextLabelModel, features_of

    texts, labels = tickets(LABELS)
    started = time.perf_counter()
    features_of(featurizer).fit(texts[:2]).transform(texts[:1])  # load the embedding model
    load = time.perf_counter() - started
    started = time.perf_counter()
    model = TextLabelModel(featurizer).fit(texts, labels)  # type: ignore[arg-type]
    fit = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.skops"
        path.write_bytes(model.to_bytes())
        provider = LearnedProvider("m", path, version="m@1")
        probe = texts[::3][:PREDICTIONS]

        async def answer_all() -> list[float]:
            await provider.complete(CompletionRequest("", text=probe[0]))  # reads the file
            seconds = []
            for text in probe:
                begun = time.perf_counter()
                await provider.complete(CompletionRequest("", labels=None, text=text))
                seconds.append(time.perf_counter() - begun)
            return seconds

        per_item = asyncio.run(answer_all())
    return {
        "load_seconds": load,
        "fit_seconds": fit,
        "predict_ms_median": statistics.median(per_item) * 1000,
        "predict_ms_p95": sorted(per_item)[int(0.95 * len(per_item))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--child", choices=["wordllama", "tfidf"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    result: dict[str, Any] = {
        "command": "python benchmarks/learned_overhead.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "labels": LABELS,
        "predictions_per_process": PREDICTIONS,
        "featurizers": {},
    }
    for featurizer in ("wordllama", "tfidf"):
        runs = []
        for _ in range(args.processes):
            out = subprocess.run(  # noqa: S603 - this script, argv without a shell
                [sys.executable, __file__, "--child", featurizer],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        medians = {key: round(statistics.median(r[key] for r in runs), 4) for key in runs[0]}
        result["featurizers"][featurizer] = {"median": medians, "runs": runs}
        print(featurizer, medians)
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
