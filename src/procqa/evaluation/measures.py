"""Retrieval metrics, and the runner that times rankers over a benchmark's questions.

Ranking metrics (hit@1, hit@5, MRR@k, nDCG@k) come from pytrec_eval on the top k of each
run. Three more look at the passages ranked: procedure@1 (the top passage is of the gold
procedure), section@1 (it is in a gold section, by its heading or its kind) and, for
questions naming no procedure, section_share@5 (the share of the top five in a gold section).
answer@1, for questions labelled with the page's words that answer them and a ranker that
highlights an answer (procqa), is whether the top passage's highlighted unit is the gold
answer's: it holds the gold words, or they hold it (a gold answer of two sentences, one
highlighted), whitespace and case aside.
Latency is the wall time of one ranking call, with the query's embeddings computed beforehand
in one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pytrec_eval

from procqa.documents import Passage
from procqa.evaluation.questions import SPLITS, Benchmark, Question, section_match

HIT1 = "hit@1"
HIT5 = "hit@5"
PROCEDURE1 = "procedure@1"
SECTION1 = "section@1"
SHARE5 = "section_share@5"
ANSWER1 = "answer@1"
P50 = "p50_ms"
P95 = "p95_ms"
ALL = "all"
MIN_K = 5
Progress = Callable[[int], None]
Summary = dict[str, float | int | None]
Ranked = list[tuple[int, float]]


class Ranker(Protocol):
    """Ranks the passages of one benchmark for a query: (passage id, score), best first."""

    name: str

    def rank(self, query: str, *, k: int) -> Ranked: ...


@runtime_checkable
class Highlighter(Protocol):
    """A ranker that also highlights the unit of its top passage that answers the query."""

    def highlighted(self, query: str, *, k: int) -> tuple[Ranked, str | None]: ...


def measure_names(k: int) -> tuple[str, ...]:
    """Every per-question measure, in report order."""
    return (HIT1, HIT5, f"mrr@{k}", f"ndcg@{k}", PROCEDURE1, SECTION1, SHARE5, ANSWER1)


def answer_found(highlighted: str, gold: str) -> bool:
    """Whether a highlighted unit is the gold answer's: either holds the other, whitespace
    and case aside (an empty highlight holds nothing)."""
    unit, wanted = (" ".join(t.split()).casefold() for t in (highlighted, gold))
    return bool(unit) and (wanted in unit or unit in wanted)


def ranking_measures(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], *, k: int = 10
) -> dict[str, dict[str, float]]:
    """hit@1, hit@5, mrr@k and ndcg@k of every query in qrels (relevance >= 1 counts), judged
    on the k highest-scored documents of its run; a query missing from the run scores 0.
    Ties are broken as trec_eval breaks them, by document id, descending."""
    if k < MIN_K:
        raise ValueError(f"k must be at least {MIN_K}: hit@{MIN_K} needs {MIN_K} results")
    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()},
        {"success.1,5", "recip_rank", f"ndcg_cut.{k}"},
    )
    top = {
        q: dict(
            sorted(((d, float(s)) for d, s in run.get(q, {}).items()), key=lambda x: (x[1], x[0]), reverse=True)[:k]
        )
        for q in qrels
    }
    results = evaluator.evaluate(top)
    names = {"success_1": HIT1, "success_5": HIT5, "recip_rank": f"mrr@{k}", f"ndcg_cut_{k}": f"ndcg@{k}"}
    return {q: {name: float(results.get(q, {}).get(key, 0.0)) for key, name in names.items()} for q in qrels}


def answer_measures(question: Question, ranked: Sequence[Passage], highlighted: str | None = None) -> dict[str, float]:
    """procedure@1, section@1, section_share@5 and answer@1 (given the top passage's
    highlighted unit), where they apply to the question."""
    out: dict[str, float] = {}
    if question.answer and highlighted is not None:
        out[ANSWER1] = float(bool(ranked) and answer_found(highlighted, question.answer))
    first = ranked[0] if ranked else None
    if question.procedures is not None:
        out[PROCEDURE1] = float(first is not None and first.procedure_id in question.procedures)
    if question.sections:
        out[SECTION1] = float(first is not None and section_match(first, question.sections) is not None)
    if question.any_procedure:
        out[SHARE5] = sum(section_match(p, question.sections) is not None for p in ranked[:5]) / 5
    return out


@dataclass(frozen=True)
class Outcome:
    """One system's answer to one question: its ranking, latency and measures."""

    question: Question
    ranked: tuple[tuple[int, float], ...]
    latency_ms: float
    measures: Mapping[str, float]

    def first_relevant(self) -> int | None:
        """Rank (from 1) of the first relevant passage, None when none was ranked."""
        return next((r for r, (pid, _) in enumerate(self.ranked, 1) if self.question.relevant.get(pid, 0) > 0), None)


def rank_scores(ranked: Ranked) -> dict[str, float]:
    """Scores falling with rank, so trec_eval judges the ranker's order, ties included."""
    return {str(pid): float(len(ranked) - i) for i, (pid, _) in enumerate(ranked)}


def run_ranker(
    ranker: Ranker,
    questions: Sequence[Question],
    passages: Sequence[Passage],
    *,
    k: int = 10,
    progress: Progress | None = None,
) -> tuple[Outcome, ...]:
    """Rank every question, timing each call, and measure the rankings."""
    rankings: list[Ranked] = []
    latencies: list[float] = []
    highlights: list[str | None] = []
    for question in questions:
        started = time.perf_counter()
        if isinstance(ranker, Highlighter):
            ranked, highlight = ranker.highlighted(question.text, k=k)
        else:
            ranked, highlight = ranker.rank(question.text, k=k), None
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.append(ranked[:k])
        highlights.append(highlight)
        if progress:
            progress(1)
    qrels = {q.id: {str(pid): grade for pid, grade in q.relevant.items()} for q in questions}
    measured = ranking_measures(qrels, {q.id: rank_scores(r) for q, r in zip(questions, rankings, strict=True)}, k=k)
    return tuple(
        Outcome(
            question=q,
            ranked=tuple(ranked),
            latency_ms=latency,
            measures={**measured[q.id], **answer_measures(q, [passages[pid] for pid, _ in ranked], highlight)},
        )
        for q, ranked, latency, highlight in zip(questions, rankings, latencies, highlights, strict=True)
    )


@dataclass(frozen=True)
class Evaluation:
    """Every system's outcomes on the judged questions of a benchmark."""

    benchmark: Benchmark
    k: int
    outcomes: Mapping[str, tuple[Outcome, ...]]
    seconds: Mapping[str, float]

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(self.outcomes)

    @property
    def unjudged(self) -> tuple[Question, ...]:
        """Questions no passage answers (a gold procedure or section missing from the index)."""
        return unjudged(self.benchmark.questions)


def unjudged(questions: Iterable[Question]) -> tuple[Question, ...]:
    return tuple(q for q in questions if not any(g > 0 for g in q.relevant.values()))


def evaluate(
    benchmark: Benchmark, rankers: Sequence[Ranker], *, k: int = 10, progress: Progress | None = None
) -> Evaluation:
    """Run every ranker over the benchmark's judged questions."""
    left_out = {q.id for q in unjudged(benchmark.questions)}
    questions = [q for q in benchmark.questions if q.id not in left_out]
    outcomes: dict[str, tuple[Outcome, ...]] = {}
    seconds: dict[str, float] = {}
    for ranker in rankers:
        started = time.perf_counter()
        outcomes[ranker.name] = run_ranker(ranker, questions, benchmark.passages, k=k, progress=progress)
        seconds[ranker.name] = time.perf_counter() - started
    return Evaluation(benchmark, k, outcomes, seconds)


def summarise(outcomes: Sequence[Outcome], k: int) -> Summary:
    """Mean of every measure over the outcomes it applies to (None where it applies to none),
    latency percentiles and the number of questions."""
    summary: Summary = {"questions": len(outcomes)}
    for name in measure_names(k):
        values = [o.measures[name] for o in outcomes if name in o.measures]
        summary[name] = float(np.mean(values)) if values else None
    latencies = [o.latency_ms for o in outcomes]
    summary[P50] = float(np.percentile(latencies, 50)) if latencies else None
    summary[P95] = float(np.percentile(latencies, 95)) if latencies else None
    return summary


def by_split(outcomes: Sequence[Outcome], k: int) -> dict[str, Summary]:
    """Summaries of all questions, the dev questions and the held-out questions."""
    splits = {ALL: summarise(outcomes, k)}
    for split in SPLITS:
        splits[split] = summarise([o for o in outcomes if o.question.split == split], k)
    return splits


def breakdown(
    outcomes: Sequence[Outcome], groups: Callable[[Question], Iterable[str]], measure: str = HIT1
) -> dict[str, Summary]:
    """A measure's mean per group; a question counts in every group it belongs to."""
    grouped: dict[str, list[float]] = {}
    for outcome in outcomes:
        for group in groups(outcome.question):
            grouped.setdefault(group, []).append(outcome.measures[measure])
    return {g: {"questions": len(v), measure: float(np.mean(v))} for g, v in sorted(grouped.items())}


def by_section(outcomes: Sequence[Outcome], measure: str = HIT1) -> dict[str, Summary]:
    return breakdown(outcomes, lambda q: q.sections, measure)


def by_kind(outcomes: Sequence[Outcome], measure: str = HIT1) -> dict[str, Summary]:
    return breakdown(outcomes, lambda q: (q.kind,) if q.kind else (), measure)


def misses(outcomes: Sequence[Outcome]) -> tuple[Outcome, ...]:
    """Outcomes whose top passage is not relevant."""
    return tuple(o for o in outcomes if o.measures[HIT1] < 1)
