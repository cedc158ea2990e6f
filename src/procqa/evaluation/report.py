"""Evaluation reports: a Markdown report, a JSON record of every number and miss, and a
bar chart of hit@1 per section. Formatting is pure; `write_reports` alone touches disk."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from procqa.documents import Passage
from procqa.evaluation.measures import (
    ALL,
    HIT1,
    P50,
    P95,
    Evaluation,
    Outcome,
    Summary,
    by_kind,
    by_section,
    by_split,
    measure_names,
    misses,
)
from procqa.evaluation.questions import MATCHED_BY, SPLITS, Question
from procqa.files import write_atomic

MARKDOWN = "eval.md"
JSON = "eval.json"
CHART = "hit1_by_section.png"
DESCRIPTIONS = {
    "bm25": "BM25 (bm25s, stemmed, stop words removed) over 'title. heading: text'",
    "dense": "cosine similarity of embedded 'title. heading: text', same model as procqa",
    "rrf": "reciprocal-rank fusion (constant 60) of the bm25 and dense top 100",
    "procqa": "procqa's Searcher: dense + BM25 + procedure recognition + section intent",
}


def primary(evaluation: Evaluation) -> str:
    """The system the report is about: procqa where it ran, else the last one."""
    return "procqa" if "procqa" in evaluation.systems else evaluation.systems[-1]


def _cell(value: float | int | str | None, column: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str | int):
        return str(value)
    return f"{value:.1f}" if column.endswith("_ms") else f"{value:.3f}"


def table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str], *, label: str) -> str:
    """A Markdown table, one row per key of `rows`."""
    lines = [
        "| " + " | ".join([label, *columns]) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|",
    ]
    for name, row in rows.items():
        lines.append("| " + " | ".join([name, *(_cell(row.get(c), c) for c in columns)]) + " |")
    return "\n".join(lines)


def _columns(summaries: Sequence[Summary], k: int) -> list[str]:
    used = [m for m in measure_names(k) if any(s.get(m) is not None for s in summaries)]
    return ["questions", *used, P50, P95]


def side_by_side(evaluation: Evaluation) -> str:
    """Every system's measures on all judged questions, one row per system."""
    rows = {name: by_split(outcomes, evaluation.k)[ALL] for name, outcomes in evaluation.outcomes.items()}
    return table(rows, _columns(list(rows.values()), evaluation.k), label="system")


def _grid(evaluation: Evaluation, breakdowns: Mapping[str, Mapping[str, Summary]]) -> str:
    groups = sorted({g for b in breakdowns.values() for g in b})
    rows = {
        g: {"questions": next(b[g]["questions"] for b in breakdowns.values() if g in b)}
        | {s: breakdowns[s].get(g, {}).get(HIT1) for s in evaluation.systems}
        for g in groups
    }
    return table(rows, ["questions", *evaluation.systems], label="")


def _procedure(passage: Passage, score: float) -> dict[str, Any]:
    return {
        "procedure_id": passage.procedure_id,
        "title": passage.title,
        "code": passage.code,
        "section": passage.heading,
        "section_kind": passage.section_kind,
        "score": round(score, 4),
    }


def judged(evaluation: Evaluation) -> list[Question]:
    left_out = {q.id for q in evaluation.unjudged}
    return [q for q in evaluation.benchmark.questions if q.id not in left_out]


def matched_by(questions: Sequence[Question]) -> dict[str, int]:
    """How many questions' gold sections found their passages by heading as written, and
    how many only by kind; empty for questions judged per document (BEIR)."""
    counts = {how: sum(q.matched_by == how for q in questions) for how in MATCHED_BY}
    return counts if any(counts.values()) else {}


def _matched_note(questions: Sequence[Question]) -> str:
    counts = matched_by(questions)
    if not counts:
        return ""
    return (
        f" Gold sections matched {counts['heading']} questions by the heading as written and "
        f"{counts['kind']} by its kind only."
    )


def miss_record(outcome: Outcome, passages: Sequence[Passage]) -> dict[str, Any]:
    """A question whose top passage is wrong: the gold, what came first, and where gold came."""
    q = outcome.question
    top = outcome.ranked[0] if outcome.ranked else None
    return {
        "id": q.id,
        "question": q.text,
        "kind": q.kind,
        "split": q.split,
        "gold": {
            "code": q.gold,
            "procedures": None if q.procedures is None else sorted(q.procedures),
            "sections": list(q.sections),
            "matched_by": q.matched_by,
        },
        "top": None if top is None else _procedure(passages[top[0]], top[1]),
        "first_relevant_rank": outcome.first_relevant(),
    }


def record(
    evaluation: Evaluation, timings: Mapping[str, float], config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every number of the evaluation and every miss, as JSON-ready data, with the ranking
    config the main system ran with."""
    bench = evaluation.benchmark
    passages = bench.passages
    return {
        "benchmark": bench.name,
        "level": bench.level,
        "k": evaluation.k,
        "passages": len(passages),
        "questions": len(bench.questions) - len(evaluation.unjudged),
        "gold_sections_matched_by": matched_by(judged(evaluation)),
        "unjudged": [
            {"id": q.id, "question": q.text, "gold": q.gold, "sections": list(q.sections)} for q in evaluation.unjudged
        ],
        "systems": {
            name: {
                "description": DESCRIPTIONS.get(name, ""),
                "splits": by_split(outcomes, evaluation.k),
                "hit@1_by_section": by_section(outcomes),
                "hit@1_by_kind": by_kind(outcomes),
                "seconds": round(evaluation.seconds[name], 3),
            }
            for name, outcomes in evaluation.outcomes.items()
        },
        "timings_s": {name: round(value, 3) for name, value in timings.items()},
        "ranking_config": dict(config or {}),
        "misses": {
            name: [miss_record(o, passages) for o in misses(outcomes)] for name, outcomes in evaluation.outcomes.items()
        },
    }


def markdown(
    evaluation: Evaluation,
    timings: Mapping[str, float],
    notes: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> str:
    """The report: systems side by side, the main system by split, hit@1 by section and kind."""
    bench, k, main = evaluation.benchmark, evaluation.k, primary(evaluation)
    outcomes = evaluation.outcomes[main]
    counts = {s: sum(o.question.split == s for o in outcomes) for s in SPLITS}
    relevance = "(procedure, section) pairs" if bench.level == "section" else "documents (qrels)"
    parts = [
        f"# Retrieval evaluation: {bench.name}",
        f"{len(outcomes)} questions ({counts['dev']} dev, {counts['heldout']} held out) over {len(bench.passages)} "
        f"passages; relevance by {relevance}; rankings cut at k = {k}.{_matched_note(judged(evaluation))} "
        "Latency is one ranking call with the query embedded beforehand in a batch."
        + "".join(f" {note}" for note in notes),
        "## Systems, all questions",
        side_by_side(evaluation),
        "\n".join(f"- **{name}**: {DESCRIPTIONS.get(name, name)}" for name in evaluation.systems),
        f"## {main} by split",
        "Held-out questions (30%, chosen by a hash of their text) are not to be looked at while tuning.",
    ]
    splits = by_split(outcomes, k)
    parts.append(table(splits, _columns(list(splits.values()), k), label="split"))
    sections = {name: by_section(o) for name, o in evaluation.outcomes.items()}
    if any(sections.values()):
        parts += ["## hit@1 by gold section", "A question with two gold sections counts under both."]
        parts.append(_grid(evaluation, sections))
    kinds = {name: by_kind(o) for name, o in evaluation.outcomes.items()}
    if any(kinds.values()):
        parts += ["## hit@1 by question kind", _grid(evaluation, kinds)]
    parts += ["## Misses (top passage not relevant)"]
    parts.append(
        ", ".join(f"{name}: {len(misses(o))}" for name, o in evaluation.outcomes.items()) + "; all in eval.json."
    )
    if evaluation.unjudged:
        parts += ["## Left out", f"{len(evaluation.unjudged)} questions have no relevant passage in the index:"]
        parts.append(
            "\n".join(f"- {q.id}: {q.text} (gold {q.gold}, {', '.join(q.sections)})" for q in evaluation.unjudged)
        )
    phases = {name: {"seconds": value} for name, value in timings.items()}
    phases |= {f"rank with {name}": {"seconds": value} for name, value in evaluation.seconds.items()}
    parts += ["## Time", table(phases, ["seconds"], label="phase")]
    if config:
        parts += ["## Ranking config", "```json\n" + json.dumps(config, indent=1) + "\n```"]
    return "\n\n".join(parts) + "\n"


def chart(evaluation: Evaluation, path: Path) -> None:
    """Grouped bars of hit@1 per gold section, one bar per system."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas for files

    sections = {name: by_section(o) for name, o in evaluation.outcomes.items()}
    groups = sorted({g for b in sections.values() for g in b})
    if not groups:
        groups, sections = [ALL], {n: {ALL: by_split(o, evaluation.k)[ALL]} for n, o in evaluation.outcomes.items()}
    figure = Figure(figsize=(max(6.0, 0.9 * len(groups) + 2), 4.5), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(evaluation.systems)
    for i, name in enumerate(evaluation.systems):
        values = [sections[name].get(g, {}).get(HIT1) or 0.0 for g in groups]
        positions = [x - 0.4 + width * (i + 0.5) for x in range(len(groups))]
        axes.bar(positions, values, width, label=name)
    axes.set_xticks(range(len(groups)), groups, rotation=35, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("hit@1")
    axes.set_title(f"hit@1 by gold section: {evaluation.benchmark.name}")
    figure.legend(loc="outside right upper", fontsize="small")
    figure.savefig(path, dpi=120)


def write_reports(
    evaluation: Evaluation,
    out: Path,
    *,
    timings: Mapping[str, float],
    notes: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write eval.md, eval.json and the section chart into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / MARKDOWN, markdown(evaluation, timings, notes, config))
    write_atomic(out / JSON, json.dumps(record(evaluation, timings, config), indent=2) + "\n")
    chart(evaluation, out / CHART)
    return [out / MARKDOWN, out / JSON, out / CHART]
