"""Hybrid ranking: dense similarity, BM25, procedure recognition and section intent, fused.

Every candidate passage gets one score, a weighted sum of signals in comparable ranges:
the cosine similarity of the section-asking part of the query and the passage, the cosine
similarity of the whole query and the procedure's Summary, BM25 scaled by the best BM25
score, how strongly the query names the passage's procedure, how likely the question asks
for the passage's section, and how close the passage's best answer unit comes to the query.
Small collections score every passage; large ones score the union of the dense and BM25
top hits and every passage of the best-matching procedures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from procqa.documents import Hit, Passage
from procqa.embedding import Embedder
from procqa.errors import NotFoundError, QueryError
from procqa.index import IndexData, nearest
from procqa.intent import SectionIntent
from procqa.matching import ProcedureMatcher, everyday_names, title_names

BARE_NAME = "what is it"  # a query that is only a name or a code asks what the procedure is
FULL_SCAN = 20_000  # up to this many passages, every passage is scored
DENSE_CANDIDATES = 200
LEXICAL_CANDIDATES = 200
TOP_PROCEDURES = 20


@dataclass(frozen=True)
class Weights:
    """How much each signal counts in the fused score."""

    dense: float = 1.0
    identity: float = 1.0
    lexical: float = 0.2
    procedure: float = 2.0
    section: float = 1.5
    unit: float = 1.5
    code: float = 2.0


@dataclass(frozen=True)
class ProcedureInfo:
    id: str
    title: str
    code: str | None
    code_system: str | None
    passage_ids: tuple[int, ...]


@dataclass(frozen=True)
class Query:
    """What the searcher understood of a query before ranking."""

    text: str
    named: np.ndarray  # per procedure: how strongly the query names it (codes add Weights.code)
    vector: np.ndarray  # the whole query
    rest: np.ndarray  # the query less the procedure's name: what it asks of a section


class Searcher:
    """Answers queries from one loaded index version."""

    def __init__(
        self, data: IndexData, embedder: Embedder, *, weights: Weights | None = None, full_scan: int = FULL_SCAN
    ) -> None:
        self.data = data
        self.full_scan = full_scan
        self.embedder = embedder
        self.weights = weights or Weights()
        self.passages: tuple[Passage, ...] = data.passages
        self.vectors = data.vectors
        order = {p["id"]: i for i, p in enumerate(data.procedures)}
        grouped: dict[str, list[int]] = {p["id"]: [] for p in data.procedures}
        for passage in self.passages:
            grouped[passage.procedure_id].append(passage.id)
        self.procedures = tuple(
            ProcedureInfo(p["id"], p["title"], p["code"], p["code_system"], tuple(grouped[p["id"]]))
            for p in data.procedures
        )
        self.by_id = {p.id: p for p in self.procedures}
        self.passage_procedure = np.array([order[p.procedure_id] for p in self.passages], dtype=np.int64)
        # the passage that introduces each procedure (its Summary, else its first) stands for it
        introductions = [self._introduction(grouped[p["id"]]) for p in data.procedures]
        self.identity = np.asarray(self.vectors[introductions], dtype=np.float32)
        self.intent = SectionIntent(data.intent_labels, data.intents)
        self.sections = tuple(sorted({p.section for p in self.passages}))
        section_pos = {name: i for i, name in enumerate(self.intent.names)}
        self.passage_section = np.array([section_pos.get(p.section, -1) for p in self.passages], dtype=np.int64)
        self.matcher = ProcedureMatcher(
            [self._names(p, self.passages[i].text) for p, i in zip(data.procedures, introductions, strict=True)],
            [p["code"] for p in data.procedures],
            [" ".join(self.passages[i].text for i in grouped[p["id"]]) for p in data.procedures],
        )

    def _introduction(self, rows: list[int]) -> int:
        return next((i for i in rows if self.passages[i].section == "Summary"), rows[0])

    @staticmethod
    def _names(record: dict[str, Any], introduction: str) -> list[str]:
        names = [*title_names(record["title"]), *(record.get("aliases") or []), *everyday_names(introduction)]
        return [*names, record["name"]] if record.get("name") else names

    def procedure(self, procedure_id: str) -> ProcedureInfo:
        try:
            return self.by_id[procedure_id]
        except KeyError:
            raise NotFoundError(f"no procedure with id {procedure_id!r}; GET /procedures lists them") from None

    def understand(self, query: str) -> Query:
        """Procedure scores and the two query vectors, embedded in one model call."""
        named = np.asarray(self.matcher.scores(query), dtype=np.float32)
        residual = self.matcher.residual(query, named).strip() or BARE_NAME
        if residual != query:
            vector, rest = self.embedder.embed([query, residual])
        else:
            vector = rest = self.embedder.embed([query])[0]
        named[self.matcher.code_matches(query)] += self.weights.code
        return Query(query, named, vector, rest)

    def candidates(self, query: Query, bm25: np.ndarray) -> np.ndarray:
        """Passage rows worth scoring: all of them in a small collection."""
        if len(self.passages) <= self.full_scan:
            return np.arange(len(self.passages))
        _, dense = nearest(self.data.dense, self.vectors, query.rest, DENSE_CANDIDATES)
        lexical = _top(bm25, LEXICAL_CANDIDATES)
        fit = self.weights.procedure * query.named + self.weights.identity * (self.identity @ query.vector)
        own = [i for p in _top(fit, TOP_PROCEDURES) for i in self.procedures[p].passage_ids]
        found = [dense[0][dense[0] >= 0], lexical[bm25[lexical] > 0], np.array(own, dtype=np.int64)]
        return np.unique(np.concatenate(found))

    def scores(self, query: Query, rows: np.ndarray, bm25: np.ndarray) -> np.ndarray:
        """The fused score of each passage row for the query."""
        w = self.weights
        procedures = self.passage_procedure[rows]
        top = float(bm25.max()) if bm25.size else 0.0
        lexical = bm25[rows] / top if top > 0 else bm25[rows]
        probabilities = self.intent.probabilities(query.rest)
        sections = self.passage_section[rows]
        return (
            w.dense * (np.asarray(self.vectors[rows], dtype=np.float32) @ query.rest)
            + w.identity * (self.identity[procedures] @ query.vector)
            + w.lexical * lexical
            + w.procedure * query.named[procedures]
            + w.section * np.where(sections >= 0, probabilities[sections], 0.0)
            + w.unit * self._best_units(rows, query.rest)
        )

    def _best_units(self, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Per row, the similarity of its closest answer unit (0 for a passage without units)."""
        offsets = self.data.unit_offsets
        starts, ends = offsets[rows], offsets[rows + 1]
        if not (ends > starts).any():
            return np.zeros(len(rows), dtype=np.float32)
        lengths = ends - starts
        firsts = np.cumsum(lengths) - lengths  # where each row's units begin among the picked
        picked = np.repeat(starts - firsts, lengths) + np.arange(lengths.sum())
        sims = np.asarray(self.data.units[picked], dtype=np.float32) @ vector
        best = np.maximum.reduceat(sims, np.minimum(firsts, len(sims) - 1))
        return np.where(lengths > 0, best, 0.0).astype(np.float32)

    def search(self, query: str, *, k: int = 10, code: str | None = None, section: str | None = None) -> list[Hit]:
        """The k best passages for a question, optionally within one procedure code or section."""
        if section is not None and section not in self.sections:
            raise QueryError(f"unknown section {section!r}; valid sections: {', '.join(self.sections)}")
        understood = self.understand(query)
        bm25 = self.data.lexical.scores(query)
        if code is not None:
            wanted = [p for p in self.procedures if p.code and p.code.upper() == code.strip().upper()]
            if not wanted:
                raise QueryError(f"no procedure has code {code!r}; GET /procedures lists the codes")
            rows = np.array(sorted(i for p in wanted for i in p.passage_ids), dtype=np.int64)
        else:
            rows = self.candidates(understood, bm25)
        if section is not None:
            rows = rows[[self.passages[r].section == section for r in rows]]
        scores = self.scores(understood, rows, bm25)
        best = np.argsort(-scores, kind="stable")[:k]
        return [self._hit(int(rows[i]), float(scores[i]), understood.rest) for i in best]

    def _hit(self, passage_id: int, score: float, vector: np.ndarray) -> Hit:
        passage = self.passages[passage_id]
        start, end = self.data.unit_offsets[passage_id], self.data.unit_offsets[passage_id + 1]
        best = int(np.argmax(np.asarray(self.data.units[start:end]) @ vector)) if end > start else 0
        answer = passage.units[best] if passage.units else passage.text
        offset = sum(len(u) + 1 for u in passage.units[:best])
        return Hit(passage=passage, score=score, answer=answer, answer_start=offset, answer_end=offset + len(answer))


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest values, in no particular order (all of them when fewer)."""
    return np.argpartition(-values, n)[:n] if values.size > n else np.arange(values.size)
