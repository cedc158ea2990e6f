"""The evaluation collections (eval/collections.json) and their questions, searched once.

Each collection names its documents, its question files and a file of questions it does not
answer ({question, kind}). Observing a collection searches every question and keeps what
coverage and confidence are fitted and measured on (`procqa.evaluation.calibration`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from procqa.embedding import Embedder
from procqa.errors import ParseError
from procqa.evaluation.calibration import RESULTS, Observation
from procqa.evaluation.questions import Benchmark, jsonl_records, read_questions, split_of
from procqa.ranking import Searcher


@dataclass(frozen=True)
class Collection:
    """One evaluation collection: where its documents and questions are."""

    name: str
    corpus: Path
    questions: tuple[Path, ...]
    unanswerable: Path | None


@dataclass(frozen=True)
class Unanswerable:
    """A question the collection does not answer, and what kind of question it is."""

    text: str
    kind: str


def read_collections(path: Path) -> tuple[Collection, ...]:
    """The collections of a manifest; paths are relative to the folder above eval/ (the
    manifest's parent's parent), as the repository lays them out."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ParseError(path, 0, f"cannot read the collections file: {error}") from None
    root = path.resolve().parent.parent
    return tuple(
        Collection(
            name=name,
            corpus=root / entry["corpus"],
            questions=tuple(root / q for q in entry["questions"]),
            unanswerable=root / entry["unanswerable"] if entry.get("unanswerable") else None,
        )
        for name, entry in raw.items()
    )


def read_unanswerable(path: Path) -> tuple[Unanswerable, ...]:
    """Questions from JSON lines {question, kind}; a bad line is a ParseError."""
    return tuple(
        Unanswerable(str(r["question"]).strip(), str(r.get("kind") or "")) for r in jsonl_records(path, ("question",))
    )


def observe(
    searcher: Searcher,
    collection: str,
    benchmarks: Sequence[Benchmark],
    unanswerable: Sequence[Unanswerable],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[Observation]:
    """Every question searched once: its evidence, and whether each of its results answers it."""
    observations = []
    for benchmark in benchmarks:
        for question in benchmark.questions:
            if not question.relevant:
                continue
            hits, evidence = searcher.examine(question.text, k=RESULTS)
            relevant = tuple(question.relevant.get(h.passage.id, 0) > 0 for h in hits)
            observations.append(
                Observation(collection, question.text, question.kind, question.split, True, evidence, relevant)
            )
            if progress:
                progress(1)
    for item in unanswerable:
        hits, evidence = searcher.examine(item.text, k=RESULTS)
        observations.append(
            Observation(collection, item.text, item.kind, split_of(item.text), False, evidence, (False,) * len(hits))
        )
        if progress:
            progress(1)
    return observations


def searcher_of(collection: Collection, root: Path, embedder: Embedder, *, max_bytes: int) -> Searcher:
    """A searcher over the collection's index in `root` (built, or brought up to date, first)."""
    from procqa.index import load
    from procqa.ingest import chunk, read_corpus
    from procqa.ranking import RankingFeatures, build_index

    corpus = read_corpus(collection.corpus, max_bytes=max_bytes)
    if not corpus.procedures:
        raise ParseError(collection.corpus, 0, f"no procedure could be read: {corpus.why_empty()}")
    build_index(corpus.procedures, chunk(corpus.procedures), embedder, root, fingerprint=corpus.fingerprint)
    return Searcher(RankingFeatures.from_index(load(root, model_id=embedder.model_id)), embedder)


def observe_collection(
    collection: Collection, searcher: Searcher, *, progress: Callable[[int], None] | None = None
) -> list[Observation]:
    """Every question of the collection, answerable or not, observed."""
    passages = searcher.features.passages
    benchmarks = [read_questions(path, passages) for path in collection.questions]
    unanswerable = read_unanswerable(collection.unanswerable) if collection.unanswerable else ()
    return observe(searcher, collection.name, benchmarks, unanswerable, progress=progress)
