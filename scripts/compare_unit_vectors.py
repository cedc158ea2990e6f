"""Answer units embedded alone against units pooled from their passage's forward pass.

For every collection of eval/collections.json, builds an index each way with the real model
and reports the seconds spent embedding, hit@1 (scoring every passage, and through the
candidate path) and answer@1 (how often the highlighted unit of the top passage is the gold
answer's, on the questions labelled with one):

    python scripts/compare_unit_vectors.py [--out reports/units] [--collections eval/collections.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from procqa.embedding import make_embedder
from procqa.evaluation.baselines import CachingEmbedder, SearcherRanker
from procqa.evaluation.collections import read_collections
from procqa.evaluation.measures import ANSWER1, HIT1, run_ranker, unjudged
from procqa.evaluation.questions import read_questions
from procqa.index import load
from procqa.index.progress import PASSAGES, UNITS
from procqa.index.vectors import UNIT_MODES
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.ranking import RankingConfig, build_index
from procqa.settings import Settings


def _mean(outcomes: Any, measure: str) -> float | None:
    values = [o.measures[measure] for o in outcomes if measure in o.measures]
    return float(np.mean(values)) if values else None


def measure(name: str, collection: Any, mode: str, out: Path, embedder: Any, caching: CachingEmbedder) -> list[dict]:
    corpus = read_corpus(collection.corpus)
    passages = chunk(corpus.procedures)
    root = out / name / mode
    started = time.perf_counter()
    report = build_index(corpus.procedures, passages, embedder, root, full=True, units=mode, keep=1)
    built = time.perf_counter() - started
    data = load(root, model_id=embedder.model_id)
    rows = []
    for path in collection.questions:
        benchmark = read_questions(path, data.passages)
        left_out = {q.id for q in unjudged(benchmark.questions)}
        questions = [q for q in benchmark.questions if q.id not in left_out]
        row: dict[str, Any] = {
            "collection": name,
            "questions": path.name if len(collection.questions) > 1 else "",
            "units": mode,
            "passages": len(passages),
            "unit_count": report.embedded - len(passages),
            "build_s": round(built, 1),
            "embed_s": round(report.timings.get(PASSAGES, 0) + report.timings.get(UNITS, 0), 1),
            "labelled": sum(q.answer is not None for q in questions),
        }
        for label, config in (("full", RankingConfig()), ("candidates", RankingConfig(full_scan=0))):
            ranker = SearcherRanker(data, caching, config=config)
            outcomes = run_ranker(ranker, questions, data.passages, k=10)
            row[f"hit@1 {label}"] = _mean(outcomes, HIT1)
            row[f"answer@1 {label}"] = _mean(outcomes, ANSWER1)
            hits = [o for o in outcomes if o.measures[HIT1] and ANSWER1 in o.measures]
            row[f"answer@1 given hit {label}"] = _mean(hits, ANSWER1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", type=Path, default=Path("eval/collections.json"))
    parser.add_argument("--out", type=Path, default=Path("reports/units"))
    parser.add_argument("--only", nargs="*", help="collection names (default: all)")
    args = parser.parse_args(argv)
    embedder = make_embedder(Settings(_env_file=None))
    caching = CachingEmbedder(embedder)
    rows = []
    for collection in read_collections(args.collections):
        if args.only and collection.name not in args.only:
            continue
        for mode in reversed(UNIT_MODES):
            with threadpool_limits(limits=None):
                rows += measure(collection.name, collection, mode, args.out, embedder, caching)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "units.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
