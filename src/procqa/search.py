"""Hybrid ranking: dense similarity, BM25, procedure recognition and section intent, fused.

Every passage gets one score, a weighted sum of four signals in comparable 0..1 ranges:
the cosine similarity of query and passage, BM25 scaled by the best BM25 score, how
strongly the query names the passage's procedure, and how likely the question asks for the
passage's section. The answer is the unit of the passage closest to the query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from procqa.documents import Hit, Passage
from procqa.embedding import Embedder
from procqa.errors import NotFoundError, QueryError
from procqa.index import IndexData
from procqa.intent import SectionIntent
from procqa.matching import ProcedureMatcher, everyday_names, title_names

BARE_NAME = "what is it"  # a query that is only a name or a code asks what the procedure is


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


class Searcher:
    """Answers queries from one loaded index version."""

    def __init__(self, data: IndexData, embedder: Embedder, *, weights: Weights | None = None) -> None:
        self.data = data
        self.embedder = embedder
        self.weights = weights or Weights()
        self.passages: tuple[Passage, ...] = data.passages
        self.vectors = np.asarray(data.vectors, dtype=np.float32)
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
        self.identity_rows = np.array(
            [
                next((i for i in grouped[p["id"]] if self.passages[i].section == "Summary"), grouped[p["id"]][0])
                for p in data.procedures
            ],
            dtype=np.int64,
        )
        self.intent = SectionIntent(data.intent_labels, data.intents)
        self.sections = tuple(sorted({p.section for p in self.passages}))
        section_pos = {name: i for i, name in enumerate(self.intent.names)}
        self.passage_section = np.array([section_pos.get(p.section, -1) for p in self.passages], dtype=np.int64)
        self.matcher = ProcedureMatcher(
            [self._names(p) for p in data.procedures],
            [p["code"] for p in data.procedures],
            [" ".join(self.passages[i].text for i in grouped[p["id"]]) for p in data.procedures],
        )

    def _names(self, record: dict) -> list[str]:
        names = [*title_names(record["title"]), *(record.get("aliases") or [])]
        if record.get("name"):
            names.append(record["name"])
        passages = [self.passages[i] for i in self._passages_of(record["id"])]
        summary = next((p for p in passages if p.section == "Summary"), passages[0] if passages else None)
        if summary is not None:
            names += everyday_names(summary.text)
        return names

    def _passages_of(self, procedure_id: str) -> list[int]:
        return [p.id for p in self.passages if p.procedure_id == procedure_id]

    def procedure(self, procedure_id: str) -> ProcedureInfo:
        try:
            return self.by_id[procedure_id]
        except KeyError:
            raise NotFoundError(f"no procedure with id {procedure_id!r}; GET /procedures lists them") from None

    def understand(self, query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Procedure scores, the query vector, and the vector of the query less its procedure
        name (what is left asks for a section); both vectors come from one model call."""
        named = np.asarray(self.matcher.scores(query), dtype=np.float32)
        residual = self.matcher.residual(query, named).strip() or BARE_NAME
        if residual != query:
            vector, rest = self.embedder.embed([query, residual])
        else:
            vector = rest = self.embedder.embed([query])[0]
        named[self.matcher.code_matches(query)] += self.weights.code
        return named, vector, rest

    def scores(self, query: str, named: np.ndarray, vector: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """The fused score of every passage for the query."""
        w = self.weights
        dense = self.vectors @ rest
        identity = (self.vectors[self.identity_rows] @ vector)[self.passage_procedure]
        lexical = self.data.lexical.scores(query)
        top = float(lexical.max()) if lexical.size else 0.0
        lexical = lexical / top if top > 0 else lexical
        procedure = named[self.passage_procedure]
        probabilities = self.intent.probabilities(rest)
        section = np.where(self.passage_section >= 0, probabilities[self.passage_section], 0.0)
        unit_sims = np.asarray(self.data.units) @ rest
        unit = np.maximum.reduceat(unit_sims, self.data.unit_offsets[:-1]) if unit_sims.size else 0.0
        return (
            w.dense * dense
            + w.identity * identity
            + w.lexical * lexical
            + w.procedure * procedure
            + w.section * section
            + w.unit * unit
        )

    def search(self, query: str, *, k: int = 10, code: str | None = None, section: str | None = None) -> list[Hit]:
        """The k best passages for a question, optionally within one procedure code or section."""
        if section is not None and section not in self.sections:
            raise QueryError(f"unknown section {section!r}; valid sections: {', '.join(self.sections)}")
        named, vector, rest = self.understand(query)
        scores = self.scores(query, named, vector, rest)
        mask = np.ones(len(self.passages), dtype=bool)
        if code is not None:
            wanted = {i for i, p in enumerate(self.procedures) if p.code and p.code.upper() == code.strip().upper()}
            if not wanted:
                raise QueryError(f"no procedure has code {code!r}; GET /procedures lists the codes")
            mask &= np.isin(self.passage_procedure, list(wanted))
        if section is not None:
            mask &= np.array([p.section == section for p in self.passages])
        scores = np.where(mask, scores, -np.inf)
        k = min(k, int(mask.sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self._hit(int(i), float(scores[i]), rest) for i in top]

    def _hit(self, passage_id: int, score: float, vector: np.ndarray) -> Hit:
        passage = self.passages[passage_id]
        start, end = self.data.unit_offsets[passage_id], self.data.unit_offsets[passage_id + 1]
        best = int(np.argmax(np.asarray(self.data.units[start:end]) @ vector)) if end > start else 0
        answer = passage.units[best] if passage.units else passage.text
        offset = sum(len(u) + 1 for u in passage.units[:best])
        return Hit(passage=passage, score=score, answer=answer, answer_start=offset, answer_end=offset + len(answer))
