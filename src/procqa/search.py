"""Hybrid ranking: dense similarity, BM25, procedure recognition and section intent, fused.

Every candidate passage gets one score, a weighted sum of signals in comparable ranges:
the cosine similarity of the section-asking part of the query and the passage, the cosine
similarity of the whole query and the procedure's Summary, BM25 scaled by the best BM25
score (of the passage, and of the procedure's best passage), whether the query has a word
that only the passage's procedure holds, how strongly the query names the passage's
procedure, how likely the question asks for the passage's section (from its embedding and
from its words), and how close the passage's best answer unit comes to the query.
Small collections score every passage; large ones score the union of the dense and BM25
top hits and every passage of the best-matching procedures.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from procqa.documents import Hit, Passage
from procqa.embedding import Embedder
from procqa.errors import NotFoundError, QueryError
from procqa.index import IndexData, nearest
from procqa.intent import SectionIntent, SectionWords
from procqa.matching import ProcedureMatcher, code_key, everyday_names, title_names, words
from procqa.shortlist import Shortlist, largest

BARE_NAME = "what is it"  # a query that is only a name or a code asks what the procedure is
FULL_SCAN = 20_000  # up to this many passages, every passage is scored
DENSE_CANDIDATES = 200
LEXICAL_CANDIDATES = 200
TOP_PROCEDURES = 20
SHORTLIST_ABOVE = 10_000  # procedures; with more, coded Summaries propose the best ones (procqa.shortlist)
PROPOSALS = 200  # Summaries the codes propose for TOP_PROCEDURES
# Section intent is read from the query less its procedure's name, and a quarter from the
# whole query: the name can carry what is asked ("blood transfusion reactions" -> "reactions").
WHOLE_QUERY_INTENT = 0.25


# A query's model call runs in the background while BM25 scores every passage, and the dense
# index searches while the procedures are shortlisted: each side releases the GIL for most of
# its time, so on two cores a query over 100k procedures takes 27 ms rather than 40.
_BACKGROUND = ThreadPoolExecutor(max_workers=8, thread_name_prefix="procqa-search")


@dataclass(frozen=True)
class Weights:
    """How much each signal counts in the fused score."""

    dense: float = 1.5
    identity: float = 1.0
    lexical: float = 0.2
    procedure_lexical: float = 1.0
    own_word: float = 1.0
    procedure: float = 2.0
    section: float = 1.0
    section_words: float = 1.0
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
    residual: str  # that part's text


class Searcher:
    """Answers queries from one loaded index version."""

    def __init__(
        self, data: IndexData, embedder: Embedder, *, weights: Weights | None = None, full_scan: int = FULL_SCAN
    ) -> None:
        self.data = data
        self.full_scan = full_scan
        self.embedder = embedder
        self.weights = weights or Weights()
        # up to index.IN_MEMORY_MAX passages a tuple, above that read from disk when indexed:
        # what is needed of every passage comes from the index's columns instead
        self.passages: Sequence[Passage] = data.passages
        self.vectors = data.vectors
        columns = data.columns
        self.passage_procedure = np.asarray(columns.passage_procedure, dtype=np.int64)
        by_procedure = np.argsort(self.passage_procedure, kind="stable")
        bounds = np.searchsorted(self.passage_procedure[by_procedure], np.arange(len(data.procedures) + 1)).tolist()
        rows = by_procedure.tolist()
        grouped = [rows[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
        self.procedures = tuple(
            ProcedureInfo(p["id"], p["title"], p["code"], p["code_system"], tuple(group))
            for p, group in zip(data.procedures, grouped, strict=True)
        )
        self.by_id = {p.id: p for p in self.procedures}
        # the passage that introduces each procedure (its Summary, else its first) stands for it
        firsts = np.array([group[0] for group in grouped], dtype=np.int64)
        summary = columns.sections.index("Summary") if "Summary" in columns.sections else -1
        summaries = by_procedure[np.asarray(columns.passage_section)[by_procedure] == summary]
        introductions = firsts.copy()
        with_summary, first = np.unique(self.passage_procedure[summaries], return_index=True)
        introductions[with_summary] = summaries[first]
        self.identity = np.asarray(self.vectors[introductions], dtype=np.float32)
        self.shortlist = Shortlist(self.identity) if len(self.identity) > SHORTLIST_ABOVE else None
        self.intent = SectionIntent(data.intent_labels, data.intents)
        self.section_words = SectionWords(data.intent_labels, data.intent_texts)
        self.sections = tuple(sorted(columns.sections))
        section_pos = {name: i for i, name in enumerate(self.intent.names)}
        positions = np.array([section_pos.get(name, -1) for name in columns.sections] + [-1], dtype=np.int64)
        self.passage_section = positions[np.asarray(columns.passage_section, dtype=np.int64)]
        self.most_passages = max((len(p.passage_ids) for p in self.procedures), default=0)
        # a heading without an intent of its own (procqa.intent.MAX_HEADINGS) gets an even share
        self.unmodelled = 1 / max(len(self.intent.names), 1)
        names = [
            self._names(p, self.passages[i].text) for p, i in zip(data.procedures, introductions.tolist(), strict=True)
        ]
        # The matcher weighs a name's words by how many procedures' text holds them; each
        # procedure's stored distinct words that occur in some name count the same as its whole
        # text, without reading every passage (tests/test_storage.py holds them equal).
        in_names = {word for name in {name for group in names for name in group} for word in words(name)}
        texts = data.word_bags().texts(in_names)
        self.matcher = ProcedureMatcher(names, [p["code"] for p in data.procedures], texts)

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
        named, texts = self._recognise(query)
        return _understood(query, named, texts, self.embedder.embed(texts))

    def _recognise(self, query: str) -> tuple[np.ndarray, list[str]]:
        """How strongly the query names each procedure, and the texts to embed: the query and,
        where it names a procedure, the query less the name."""
        named = np.asarray(self.matcher.scores(query), dtype=np.float32)
        residual = self.matcher.residual(query, named).strip() or BARE_NAME
        named[self.matcher.code_matches(query)] += self.weights.code
        return named, [query] if residual == query else [query, residual]

    def candidates(self, query: Query, lexical: np.ndarray) -> np.ndarray:
        """Passage rows worth scoring, given the BM25 top hits: all rows in a small collection."""
        if len(self.passages) <= self.full_scan:
            return np.arange(len(self.passages))
        dense = _BACKGROUND.submit(nearest, self.data.dense, self.vectors, query.rest, DENSE_CANDIDATES)
        own = [i for p in self._best_procedures(query) for i in self.procedures[p].passage_ids]
        _, near = dense.result()
        found = [near[0][near[0] >= 0], lexical, np.array(own, dtype=np.int64)]
        return np.unique(np.concatenate(found))

    def _best_procedures(self, query: Query) -> np.ndarray:
        """The TOP_PROCEDURES procedures whose name and Summary best fit the query."""
        named = self.weights.procedure * query.named
        if self.shortlist is None or self.weights.procedure < 0 or (query.named < 0).any():
            return largest(named + self.weights.identity * (self.identity @ query.vector), TOP_PROCEDURES)
        return self.shortlist.top(
            query.vector, TOP_PROCEDURES, bonus=named, weight=self.weights.identity, proposals=PROPOSALS
        )

    def scores(self, query: Query, rows: np.ndarray, bm25: np.ndarray) -> np.ndarray:
        """The fused score of each passage row for the query."""
        w = self.weights
        procedures = self.passage_procedure[rows]
        top = float(bm25.max()) if bm25.size else 0.0
        lexical = bm25[rows] / top if top > 0 else bm25[rows]
        # how well the query's words fit the procedure: its best passage's BM25, which finds a
        # procedure described in everyday words ("scope to get a gallstone out of the bile duct")
        best_of = np.zeros(len(self.procedures), dtype=np.float32)
        np.maximum.at(best_of, procedures, lexical)
        owns = self._owned_words(query.text)
        intent = self.intent.probabilities
        probabilities = (1 - WHOLE_QUERY_INTENT) * intent(query.rest) + WHOLE_QUERY_INTENT * intent(query.vector)
        by_words = self.section_words.probabilities(query.residual)
        sections = self.passage_section[rows]
        return (
            w.dense * (np.asarray(self.vectors[rows], dtype=np.float32) @ query.rest)
            + w.identity * (self.identity[procedures] @ query.vector)
            + w.lexical * lexical
            + w.procedure_lexical * best_of[procedures]
            + w.own_word * owns[procedures]
            + w.procedure * query.named[procedures]
            + w.section * np.where(sections >= 0, probabilities[sections], self.unmodelled)
            + w.section_words * np.where(sections >= 0, by_words[sections], self.unmodelled)
            + w.unit * self._best_units(rows, query.rest)
        )

    def _owned_words(self, query: str) -> np.ndarray:
        """Per procedure, 1 where a word of the query is found in its text and no other
        procedure's: a brand name in a list ('Glucophage'), a rare term only it explains."""
        owns = np.zeros(len(self.procedures), dtype=np.float32)
        for passages in self.data.lexical.holders(query, most=self.most_passages):
            owners = np.unique(self.passage_procedure[passages])
            if len(owners) == 1:
                owns[owners] = 1.0
        return owns

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
        named, texts = self._recognise(query)
        vectors = _BACKGROUND.submit(self.embedder.embed, texts)
        bm25 = self.data.lexical.scores(query)
        lexical = _top_positive(bm25, LEXICAL_CANDIDATES)
        understood = _understood(query, named, texts, vectors.result())
        rows = self._rows_of_code(code) if code is not None else self.candidates(understood, lexical)
        if section is not None:
            rows = rows[[self.passages[r].section == section for r in rows]]
        scores = self.scores(understood, rows, bm25)
        best = np.argsort(-scores, kind="stable")[:k]
        return [self._hit(int(rows[i]), float(scores[i]), understood.rest) for i in best]

    def _rows_of_code(self, code: str) -> np.ndarray:
        wanted = [p for p in self.procedures if p.code and code_key(p.code) == code_key(code)]
        if not wanted:
            raise QueryError(f"no procedure has code {code!r}; GET /procedures lists the codes")
        return np.array(sorted(i for p in wanted for i in p.passage_ids), dtype=np.int64)

    def _hit(self, passage_id: int, score: float, vector: np.ndarray) -> Hit:
        passage = self.passages[passage_id]
        start, end = self.data.unit_offsets[passage_id], self.data.unit_offsets[passage_id + 1]
        best = int(np.argmax(np.asarray(self.data.units[start:end]) @ vector)) if end > start else 0
        answer = passage.units[best] if passage.units else passage.text
        offset = sum(len(u) + 1 for u in passage.units[:best])
        return Hit(passage=passage, score=score, answer=answer, answer_start=offset, answer_end=offset + len(answer))


def _understood(query: str, named: np.ndarray, texts: list[str], vectors: np.ndarray) -> Query:
    """The query with its texts' vectors: the whole query, then the query less its name."""
    return Query(query, named, vectors[0], vectors[-1], texts[-1])


def _top_positive(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest positive values (fewer when fewer are positive), in no
    particular order. BM25 is zero for most passages, so the positive ones are picked first:
    a partition of all 1.3M scores took 10 ms a query."""
    positive = np.flatnonzero(values > 0)
    if positive.size <= n:
        return positive
    return positive[np.argpartition(-values[positive], n)[:n]]
