"""Fit the fused-score weights leave one collection out, and score each collection with the
weights fitted without it, beside the shipped weights, in the same run.

Below `RankingConfig.full_scan` passages every passage is scored, and a passage's fused score
is a weighted sum of nine signals (procqa.ranking.config.SIGNALS and the answer unit's, each
weighed by the Weights field of its name). Each question's signals are computed once per passage; a
weight vector then ranks every question with one matrix product. For each collection of
eval/collections.json, the weights are fitted by coordinate search (each weight in turn
scaled by 0, 0.5, 0.75, 1.25, 1.5 or 2 while the mean hit@1 of the other collections' tuning
parts improves) on the other collections only, then that collection's questions are ranked
with them.

    python scripts/fit_weights.py                  # about a minute with the indexes built
    python scripts/fit_weights.py --out reports/weights.json

Indexes are built (or brought up to date) under --work/<collection>/index.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent

from procqa.embedding import make_embedder  # noqa: E402
from procqa.evaluation.baselines import CachingEmbedder  # noqa: E402
from procqa.evaluation.collections import read_collections, searcher_of  # noqa: E402
from procqa.evaluation.questions import DEV, HELDOUT, read_questions  # noqa: E402
from procqa.ranking import RankingConfig, Searcher  # noqa: E402
from procqa.ranking.config import SIGNALS as WEIGHED  # noqa: E402
from procqa.settings import Settings  # noqa: E402

SIGNALS = (*WEIGHED, "unit")
SCALES = (0.0, 0.5, 0.75, 1.25, 1.5, 2.0)


@dataclass(frozen=True)
class Asked:
    """One question: its signals per passage (rows x SIGNALS), and which rows answer it."""

    collection: str
    split: str
    signals: np.ndarray
    right: np.ndarray  # bool per row


def signals(searcher: Searcher, question: str) -> np.ndarray:
    """Every passage's signals for the question, in SIGNALS order, as Searcher.scores weighs them."""
    ranked = searcher._ranked(question, code=None, section=None)
    rows, query = ranked.rows, ranked.query
    found = [*searcher.signals(query, rows, ranked.bm25, ranked.intent), searcher._best_units(rows, query.rest)]
    out = np.zeros((int(rows.max(initial=-1)) + 1, len(SIGNALS)), dtype=np.float32)
    out[rows] = np.column_stack(found)
    return out


def hit1(asked: list[Asked], weights: np.ndarray) -> float:
    return float(np.mean([a.right[int(np.argmax(a.signals @ weights))] for a in asked])) if asked else float("nan")


def objective(asked: list[Asked], weights: np.ndarray) -> float:
    """Mean over collections of hit@1, so that no collection counts for its size."""
    names = sorted({a.collection for a in asked})
    return float(np.mean([hit1([a for a in asked if a.collection == n], weights) for n in names]))


def fit(asked: list[Asked], start: np.ndarray, *, passes: int = 4) -> np.ndarray:
    """Coordinate search from `start`: each weight scaled in turn while the objective improves."""
    best, score = start.copy(), objective(asked, start)
    for _ in range(passes):
        improved = False
        for i in range(len(best)):
            for scale in SCALES:
                trial = best.copy()
                trial[i] = start[i] * scale if best[i] == 0 else best[i] * scale
                value = objective(asked, trial)
                if value > score + 1e-9:
                    best, score, improved = trial, value, True
        if not improved:
            break
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", type=Path, default=ROOT / "eval" / "collections.json")
    parser.add_argument("--work", type=Path, default=ROOT / "reports" / "weights")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "weights.json")
    args = parser.parse_args()
    settings = Settings(_env_file=None)
    embedder = CachingEmbedder(make_embedder(settings))
    asked: list[Asked] = []
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        for collection in read_collections(args.collections):
            root = args.work / collection.name / "index"
            searcher = searcher_of(collection, root, embedder, max_bytes=settings.max_file_bytes)
            passages = searcher.features.passages
            for path in collection.questions:
                questions = [q for q in read_questions(path, passages).questions if q.relevant]
                embedder.prime([t for q in questions for t in searcher.query_texts(q.text)])
                for q in questions:
                    found = signals(searcher, q.text)
                    right = np.array([q.relevant.get(row, 0) > 0 for row in range(len(found))], dtype=bool)
                    asked.append(Asked(collection.name, q.split, found, right))
            count = sum(a.collection == collection.name for a in asked)
            print(f"{collection.name}: {count} questions", file=sys.stderr)
    shipped = np.array([getattr(RankingConfig().weights, name) for name in SIGNALS], dtype=np.float64)
    rows, fitted = [], {}
    for name in dict.fromkeys(a.collection for a in asked):
        tuning = [a for a in asked if a.collection != name and a.split == DEV]
        mine = [a for a in asked if a.collection == name]
        weights = fit(tuning, shipped)
        fitted[name] = dict(zip(SIGNALS, weights.round(4).tolist(), strict=True))
        held = [a for a in mine if a.split == HELDOUT]
        rows.append(
            {
                "collection": name,
                "questions": len(mine),
                "shipped": [hit1(mine, shipped), hit1(held, shipped)],
                "left_out": [hit1(mine, weights), hit1(held, weights)],
            }
        )
    print("| collection | questions | hit@1 shipped weights, all / held out | fitted without it, all / held out |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['collection']} | {r['questions']} | {r['shipped'][0]:.3f} / {r['shipped'][1]:.3f} "
            f"| {r['left_out'][0]:.3f} / {r['left_out'][1]:.3f} |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s; weights fitted without each collection in {args.out}")
    shipped_weights = asdict(RankingConfig().weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"shipped": shipped_weights, "rows": rows, "fitted": fitted}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
