"""Hybrid ranking: dense similarity, BM25, procedure recognition and section intent, fused.

Every candidate passage gets one score, a weighted sum of signals in comparable ranges:
the cosine similarity of the section-asking part of the query and the passage, the cosine
similarity of the whole query and the procedure's Summary, BM25 scaled by the best BM25
score (of the passage, and of the procedure's best passage), whether the query has a word
that only the passage's procedure holds, how strongly the query names the passage's
procedure, how likely the question asks for the passage's section (from its embedding and
from its words), and how close the passage's best answer unit comes to the query.
Filters (a code, a section) choose the rows first; up to `full_scan` rows are all scored,
more are narrowed to the dense and BM25 top hits and every passage of the best-matching
procedures, among the rows the filters allow.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from procqa.arrays import top_k_rows
from procqa.documents import Hit
from procqa.embedding import Embedder
from procqa.errors import NotFoundError, QueryError
from procqa.index import nearest
from procqa.ranking.config import SIGNALS, RankingConfig
from procqa.ranking.coverage import Calibration, Evidence, Verdict, judge
from procqa.ranking.features import ProcedureInfo, RankingFeatures
from procqa.ranking.units import pruned_units
from procqa.text import QueryTerms, code_key

# A query's model call runs in the background while BM25 scores every passage, and the dense
# index searches while the procedures are shortlisted: each side releases the GIL for most of
# its time, so on two cores a query over 100k procedures takes 27 ms rather than 40.
MARGIN = 5.0  # the score margin of a question whose results are all of one procedure
# Unit vectors are gathered this many bytes at a time: under the service's threshold for
# allocations mapped fresh from the OS (serving.process), so each block reuses heap memory.
# Gathering 6-9 MB at once cost a query over 10,000 long sections 2.5 ms of page faults.
BLOCK_BYTES = 2**19
_BACKGROUND = ThreadPoolExecutor(max_workers=8, thread_name_prefix="procqa-search")


@dataclass(frozen=True)
class Query:
    """What the searcher understood of a query before ranking."""

    terms: QueryTerms  # the query's words, stems and codes, split once
    named: np.ndarray  # per procedure: how strongly the query names it (codes add weights.code)
    vector: np.ndarray  # the whole query
    rest: np.ndarray  # the query less the procedure's name: what it asks of a section
    residual: str  # that part's text

    @property
    def text(self) -> str:
        return self.terms.text


class Searcher:
    """Ranks passages of one index version for queries; its features are built apart, once."""

    def __init__(
        self,
        features: RankingFeatures,
        embedder: Embedder,
        *,
        config: RankingConfig | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.features = features
        self.embedder = embedder
        self.calibration = calibration  # None: the bundled one, read when first needed
        self.config = config or features.config
        self.weights = self.config.weights

    @property
    def version(self) -> str:
        return self.features.version

    @property
    def procedures(self) -> tuple[ProcedureInfo, ...]:
        return self.features.procedures

    @property
    def sections(self) -> tuple[str, ...]:
        return self.features.sections

    def procedure(self, procedure_id: str) -> ProcedureInfo:
        try:
            return self.features.by_id[procedure_id]
        except KeyError:
            raise NotFoundError(f"no procedure with id {procedure_id!r}; GET /procedures lists them") from None

    def query_texts(self, query: str) -> list[str]:
        """The texts a search embeds for this query: the query and, where it names a procedure,
        the query less the name."""
        return self._recognise(QueryTerms.of(query))[1]

    def understand(self, query: str) -> Query:
        """Procedure scores and the two query vectors, embedded in one model call."""
        terms = QueryTerms.of(query)
        named, texts = self._recognise(terms)
        return _understood(terms, named, texts, self.embedder.embed(texts))

    def _recognise(self, terms: QueryTerms) -> tuple[np.ndarray, list[str]]:
        matcher, query = self.features.matcher, terms.text
        named = np.asarray(matcher.scores(terms), dtype=np.float32)
        residual = matcher.residual(terms, named).strip() or self.config.bare_name
        named[matcher.code_matches(terms)] += self.weights.code
        return named, [query] if residual == query else [query, residual]

    def allowed(self, *, code: str | None = None, section: str | None = None) -> np.ndarray | None:
        """Ascending rows within the filters; None without filters. A section is a heading as
        written or the kind of one, in any case."""
        f = self.features
        section_rows = None if section is None else f.section_rows.get(section.strip().casefold())
        if section is not None and section_rows is None:
            valid = ", ".join(f.sections)
            raise QueryError(f"unknown section {section!r}; valid sections: {valid} (a heading or its kind, any case)")
        rows = None
        if code is not None:
            rows = f.code_rows.get(code_key(code))
            if rows is None:
                raise QueryError(f"no procedure has code {code!r}; GET /procedures lists the codes")
        if section_rows is not None:
            rows = section_rows if rows is None else np.intersect1d(rows, section_rows)
        return rows

    def candidates(self, query: Query, bm25: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
        """Rows worth scoring among those allowed: all of them up to `full_scan`."""
        count = len(self.features.passages) if allowed is None else len(allowed)
        if count <= self.config.full_scan:
            return np.arange(count) if allowed is None else allowed
        f, c = self.features, self.config
        dense = _BACKGROUND.submit(nearest, f.dense, f.vectors, query.rest, c.dense_candidates, allowed=allowed)
        lexical = (
            top_k_rows(bm25, c.lexical_candidates, positive=True)
            if allowed is None
            else allowed[top_k_rows(bm25[allowed], c.lexical_candidates, positive=True)]
        )
        own = np.array([i for p in self._best_procedures(query) for i in f.procedures[p].passage_ids], dtype=np.int64)
        if allowed is not None:
            own = own[np.isin(own, allowed)]
        _, near = dense.result()
        return np.unique(np.concatenate([near[0][near[0] >= 0], lexical, own]))

    def _best_procedures(self, query: Query) -> np.ndarray:
        """The `top_procedures` procedures whose name and Summary best fit the query."""
        f, c, w = self.features, self.config, self.weights
        named = w.procedure * query.named
        if f.shortlist is None or w.procedure < 0 or (query.named < 0).any():
            return top_k_rows(named + w.identity * (f.identity @ query.vector), c.top_procedures)
        return f.shortlist.top(query.vector, c.top_procedures, bonus=named, weight=w.identity, proposals=c.proposals)

    def intent(self, query: Query) -> np.ndarray:
        """P(section | query) over the intent's names: mostly read from the query less its
        procedure's name, a share from the whole query."""
        f, whole = self.features, self.config.whole_query_intent
        return (1 - whole) * f.intent.probabilities(query.rest) + whole * f.intent.probabilities(query.vector)

    def signals(
        self, query: Query, rows: np.ndarray, bm25: np.ndarray, intent: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Each row's signals before weighting, in SIGNALS order (the answer unit's apart: it is
        computed only where it can still change the best scores)."""
        f = self.features
        procedures = f.passage_procedure[rows]
        top = float(bm25.max()) if bm25.size else 0.0
        lexical = bm25[rows] / top if top > 0 else bm25[rows]
        # how well the query's words fit the procedure: its best passage's BM25, which finds a
        # procedure described in everyday words ("scope to get a gallstone out of the bile duct")
        best_of = np.zeros(len(f.procedures), dtype=np.float32)
        np.maximum.at(best_of, procedures, lexical)
        probabilities = self.intent(query) if intent is None else intent
        by_words = f.section_words.probabilities(query.residual)
        sections = f.passage_section[rows]
        return [
            np.asarray(f.vectors[rows], dtype=np.float32) @ query.rest,
            f.identity[procedures] @ query.vector,
            lexical,
            best_of[procedures],
            self._owned_words(query.terms)[procedures],
            query.named[procedures],
            np.where(sections >= 0, probabilities[sections], f.unmodelled),
            np.where(sections >= 0, by_words[sections], f.unmodelled),
        ]

    def scores(self, query: Query, rows: np.ndarray, bm25: np.ndarray, intent: np.ndarray | None = None) -> np.ndarray:
        """The fused score of each passage row for the query (`intent`: `self.intent(query)`)."""
        signals = self.signals(query, rows, bm25, intent)
        fused: np.ndarray = getattr(self.weights, SIGNALS[0]) * signals[0]
        for name, signal in zip(SIGNALS[1:], signals[1:], strict=True):
            fused = fused + getattr(self.weights, name) * signal
        return fused + self.weights.unit * self._unit_term(rows, query.rest, fused, signals[0])

    def _unit_term(self, rows: np.ndarray, vector: np.ndarray, partial: np.ndarray, dense: np.ndarray) -> np.ndarray:
        """Per row, its best unit's similarity: every row's up to `unit_rows` rows, else only
        where it can change the best `unit_exact` scores (procqa.ranking.units)."""
        f, c, w = self.features, self.config, self.weights
        if f.unit_reach is None or len(rows) <= c.unit_rows or w.unit <= 0:
            return self._best_units(rows, vector)
        reach = f.unit_reach[rows]
        ceiling = np.where(reach >= 0, np.minimum(dense + reach, 1.0), 0.0).astype(np.float32)
        return pruned_units(
            partial,
            ceiling,
            lambda picked: self._best_units(rows[picked], vector),
            weight=w.unit,
            exact=c.unit_exact,
            first=c.unit_rows,
        )

    def _owned_words(self, terms: QueryTerms) -> np.ndarray:
        """Per procedure, 1 where a word of the query is found in its text and no other
        procedure's: a brand name in a list ('Glucophage'), a rare term only it explains."""
        f = self.features
        owns = np.zeros(len(f.procedures), dtype=np.float32)
        for passages in f.lexical.holders(terms, most=f.most_passages):
            owners = np.unique(f.passage_procedure[passages])
            if len(owners) == 1:
                owns[owners] = 1.0
        return owns

    def _best_units(self, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Per row, the similarity of its closest answer unit (0 for a passage without units)."""
        offsets = self.features.unit_offsets
        starts, ends = offsets[rows], offsets[rows + 1]
        if not (ends > starts).any():
            return np.zeros(len(rows), dtype=np.float32)
        lengths = ends - starts
        firsts = np.cumsum(lengths) - lengths  # where each row's units begin among the picked
        picked = np.repeat(starts - firsts, lengths) + np.arange(lengths.sum())
        units = self.features.units
        block = max(1, BLOCK_BYTES // (4 * units.shape[1]))
        sims = np.empty(len(picked), dtype=np.float32)
        for start in range(0, len(picked), block):
            some = picked[start : start + block]
            sims[start : start + len(some)] = np.asarray(units[some], dtype=np.float32) @ vector
        best = np.maximum.reduceat(sims, np.minimum(firsts, len(sims) - 1))
        return np.where(lengths > 0, best, 0.0).astype(np.float32)

    def search(self, query: str, *, k: int = 10, code: str | None = None, section: str | None = None) -> list[Hit]:
        """The k best passages for a question, optionally within one procedure code or section."""
        return self._ranked(query, code=code, section=section).hits(self, k)

    def examine(
        self, query: str, *, k: int = 10, code: str | None = None, section: str | None = None
    ) -> tuple[list[Hit], Evidence]:
        """The k best passages, and what speaks for and against the collection covering the question."""
        ranked = self._ranked(query, code=code, section=section)
        return ranked.hits(self, k), self._evidence(ranked, k)

    def answer(self, query: str, *, k: int = 10, code: str | None = None, section: str | None = None) -> Answer:
        """The k best passages, each with its confidence, and whether the collection covers the question."""
        hits, evidence = self.examine(query, k=k, code=code, section=section)
        return Answer(tuple(hits), judge(evidence, self.calibration or Calibration.bundled()))

    def _ranked(self, query: str, *, code: str | None, section: str | None) -> Ranked:
        allowed = self.allowed(code=code, section=section)
        terms = QueryTerms.of(query)
        named, texts = self._recognise(terms)
        vectors = _BACKGROUND.submit(self.embedder.embed, texts)
        bm25 = self.features.lexical.scores(terms)
        understood = _understood(terms, named, texts, vectors.result())
        rows = self.candidates(understood, bm25, allowed)
        intent = self.intent(understood)
        return Ranked(understood, rows, self.scores(understood, rows, bm25, intent), bm25, intent)

    def _evidence(self, ranked: Ranked, k: int) -> Evidence:
        """The question's evidence and each of its k best results'."""
        f, u = self.features, ranked.query
        best = ranked.best(k)
        rows, scores = ranked.rows[best], ranked.scores[best]
        top = int(f.passage_procedure[rows[0]]) if len(rows) else -1
        procedures = f.passage_procedure[rows]
        dense = np.asarray(f.vectors[rows], dtype=np.float32) @ u.rest
        units = self._best_units(rows, u.rest)
        sections = f.passage_section[rows]
        section = np.where(sections >= 0, ranked.intent[np.maximum(sections, 0)], f.unmodelled)
        of_top = f.passage_procedure[ranked.rows] == top
        others, mine = ranked.scores[~of_top], np.sort(ranked.scores[of_top])
        top_score = float(scores[0]) if len(rows) else 0.0
        outside_gap, kind = self._outside(u.vector)
        outside_rest, _ = self._outside(u.rest)
        absent, unanchored, look_alikes = f.vocabulary.absent_name(u.terms, u.named, top)
        unknown_code = f.vocabulary.unknown_code(u.text)
        elsewhere, unknown = f.vocabulary.unexplained(u.terms, top)
        question = (
            outside_gap,
            outside_rest,
            float(unanchored),
            float(look_alikes),
            float(unknown_code is not None),
            top_score,
            min(top_score - float(others.max()), MARGIN) if others.size else MARGIN,
            # to the next passage of the same procedure: how sure the section is
            min(top_score - float(mine[-2]), MARGIN) if mine.size > 1 else MARGIN,
            float(u.named.max(initial=0.0)),
            float(dense[0]) if len(rows) else 0.0,
            float(f.identity[top] @ u.vector) if top >= 0 else 0.0,
            float(units[0]) if len(rows) else 0.0,
            float(ranked.bm25.max(initial=0.0)),
            float(ranked.intent.max(initial=0.0)),
            float(elsewhere),
            float(unknown),
        )
        results = np.column_stack(
            [
                scores,
                top_score - scores,
                np.log1p(np.arange(len(rows))),
                (procedures == top).astype(np.float32),
                u.named[procedures],
                dense,
                units,
                section,
            ]
        ).astype(np.float64)
        return Evidence(question, results, absent, unknown_code, kind)

    def _outside(self, vector: np.ndarray) -> tuple[float, str | None]:
        """How much closer a question (or what it asks less the procedure it names: "which
        surgeon is best for" hip replacement) comes to questions pages rarely answer than to
        any question about a section, and the kind of the closest such question when closer."""
        f = self.features
        if not len(f.outside) or not len(f.intent.examples):
            return 0.0, None
        sims = f.outside @ vector
        gap = float(sims.max() - (f.intent.examples @ vector).max())
        return gap, f.outside_kinds[int(np.argmax(sims))] if gap > 0 else None

    def _hit(self, passage_id: int, score: float, vector: np.ndarray) -> Hit:
        f = self.features
        passage = f.passages[passage_id]
        start, end = f.unit_offsets[passage_id], f.unit_offsets[passage_id + 1]
        best = int(np.argmax(np.asarray(f.units[start:end]) @ vector)) if end > start else 0
        answer = passage.units[best] if passage.units else passage.text
        offset = sum(len(u) + 1 for u in passage.units[:best])
        return Hit(passage=passage, score=score, answer=answer, answer_start=offset, answer_end=offset + len(answer))


@dataclass(frozen=True)
class Ranked:
    """A query's scored rows."""

    query: Query
    rows: np.ndarray
    scores: np.ndarray
    bm25: np.ndarray
    intent: np.ndarray

    def best(self, k: int) -> np.ndarray:
        """Positions of the k best scores, best first (ties in row order)."""
        return np.argsort(-self.scores, kind="stable")[:k]

    def hits(self, searcher: Searcher, k: int) -> list[Hit]:
        return [searcher._hit(int(self.rows[i]), float(self.scores[i]), self.query.rest) for i in self.best(k)]


@dataclass(frozen=True)
class Answer:
    """The best passages for a question, and the verdict on whether the collection covers it
    (with each passage's confidence)."""

    hits: tuple[Hit, ...]
    verdict: Verdict


def _understood(terms: QueryTerms, named: np.ndarray, texts: list[str], vectors: np.ndarray) -> Query:
    """The query with its texts' vectors: the whole query, then the query less its name."""
    return Query(terms, named, vectors[0], vectors[-1], texts[-1])
