"""Whether a collection covers a question, and how likely each result is to answer it.

A question is not covered when it names a code no page has, or names a procedure, test,
condition or medicine that no page is about ("lasik" beside laser trabeculoplasty,
"vasectomy reversal" beside vasectomy), or asks what pages of this kind rarely answer (cost,
parking, which doctor), or is not about anything the pages speak of ("best pizza near me").
The evidence for each is measured per question (`Evidence`); two logistic models fitted by
scikit-learn on questions of other collections (`procqa.evaluation.calibration`) turn it into
the chance the collection covers the question and, per result, the chance it answers it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from procqa.index import Lexical
from procqa.ranking.matching import ProcedureMatcher
from procqa.ranking.terms import Spellings, Terms
from procqa.text import QueryTerms, code_key, stems, words

# Code shapes of the common systems, so a code no page has is still seen as a code: CPT
# (47562, 0213T), ICD-10-CM (E11.9, J45909), HCPCS (G0121), ICD-10-PCS (0DTJ4ZZ), ATC (N02AX02).
CODE_SHAPES = re.compile(
    r"\b(?:\d{5}|\d{4}[A-Z]|[A-Z]\d{2}\.[0-9A-Z]{1,4}|[A-Z]\d{2}[0-9A-Z]{1,4}|[A-Z]\d{4}|"
    r"[0-9][0-9A-HJ-NP-Z]{6}|[A-Z]\d{2}[A-Z]{2}\d{2})\b",
    re.I,
)
NAMED = 0.5  # a procedure scored this high by the matcher is named by the question
LOOK_ALIKE_KINDS = frozenset({"procedures", "tests"})
# A kind of name (condition, medicine) is also the subject of a collection when this share of
# its titles name one: a conditions site lacking a page on COPD does not cover "copd symptoms".
SUBJECT_SHARE = 1 / 3
SUBJECT_SAMPLE = 500
TOPICAL = 0.2  # the similarity to a passage above which an unnamed question speaks of the pages' topics
# What a question is measured by: first the question's own, then each result's.
QUESTION_FEATURES = (
    "outside",
    "outside_rest",
    "absent",
    "look_alike",
    "unknown_code",
    "top_score",
    "margin",
    "section_margin",
    "named",
    "top_dense",
    "top_identity",
    "top_unit",
    "bm25",
    "intent",
    "unexplained",
    "unknown",
)
RESULT_FEATURES = ("score", "behind", "rank", "same_procedure", "names_it", "dense", "unit", "section")


@dataclass(frozen=True)
class Evidence:
    """What a question's words and its ranking say about whether the collection covers it."""

    question: tuple[float, ...]  # in QUESTION_FEATURES order
    results: np.ndarray  # one row per result, in RESULT_FEATURES order
    absent: str | None = None  # a name in the question that no page is about
    unknown_code: str | None = None  # a code in the question that no page has
    outside: str | None = None  # the kind of question it is, when pages like these rarely answer it


@dataclass(frozen=True)
class Logistic:
    """A logistic model over standardised features, as fitted by scikit-learn."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """The model's probability for each row (a row: features in `features` order), as
        scikit-learn's predict_proba gives it."""
        z = ((np.atleast_2d(rows) - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef) + self.intercept
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Logistic:
        numbers = ("mean", "scale", "coef")
        return cls(
            features=tuple(raw["features"]),
            intercept=float(raw["intercept"]),
            **{name: tuple(float(v) for v in raw.get(name, ())) for name in numbers},
        )


@dataclass(frozen=True)
class Calibration:
    """The fitted models: coverage (the chance a question is covered, and the threshold below
    which it is not) and confidence (the chance a result answers the question)."""

    coverage: Logistic
    threshold: float
    confidence: Logistic
    fitted_on: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Calibration:
        return cls(
            coverage=Logistic.from_dict(raw["coverage"]),
            threshold=float(raw["threshold"]),
            confidence=Logistic.from_dict(raw["confidence"]),
            fitted_on=tuple(raw.get("fitted_on", ())),
        )

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls.from_dict(json.loads(path.read_text("utf-8")))

    @classmethod
    @cache
    def bundled(cls) -> Calibration:
        """The models shipped in data/calibration.json (`procqa calibrate` writes it)."""
        return cls.from_dict(json.loads(resources.files("procqa").joinpath("data/calibration.json").read_text("utf-8")))


@dataclass(frozen=True)
class Verdict:
    """Whether the collection covers a question, why not, and each result's confidence."""

    covered: bool
    reason: str | None
    confidences: tuple[float, ...]
    probability: float  # that the collection covers the question


class Vocabulary:
    """What coverage knows of one index version: the words of each procedure's names (the
    matcher's), the passages that name a procedure (its introduction, and any section about
    its names, such as "Brand Names"; ascending rows), the BM25 postings of every word, and
    the codes."""

    def __init__(
        self,
        matcher: ProcedureMatcher,
        lexical: Lexical,
        passage_procedure: np.ndarray,
        procedure_rows: Sequence[Sequence[int]],
        naming_rows: np.ndarray,
        asking: Sequence[str],
        codes: Sequence[str | None],
        spelt: Collection[str] = (),
        terms: Terms | None = None,
        titles: Sequence[str] = (),
    ) -> None:
        """`spelt`: the collection's own words, taken as spelt right when names are looked up;
        `titles`: its pages' titles, whose kinds of name are what the collection is about."""
        self.matcher = matcher
        self.lexical = lexical
        self.passage_procedure = passage_procedure
        self.procedure_rows = procedure_rows  # per procedure, its passage rows, ascending
        self.naming_rows = naming_rows
        self.asking = frozenset(w for text in asking for w in words(text))
        self.codes = frozenset(code_key(c) for c in codes if c)
        self.terms = terms or Terms.bundled()
        self.spellings = Spellings(lexical.vocabulary)
        self.spelt = frozenset(spelt) | self.asking
        self.subjects = LOOK_ALIKE_KINDS | subject_kinds(self.terms, titles)
        held = matcher.procedure_words.tocsc()
        held.eliminate_zeros()
        self.holders = held  # per name word (column), the procedures whose names hold it

    def absent_name(self, query: str | QueryTerms, named: np.ndarray, top: int) -> tuple[str | None, int, int]:
        """The first name in the query that no page is about, how many there are in a question
        anchored on no page, and how many look-alikes of the page it is anchored on.

        A name is a page's when one procedure's names, or the passages that name it, hold all
        its words. A question anchored on a page (a procedure named, or a name a page has)
        may name other things as context ("ibuprofen" in a question about gout), except a
        procedure or test that shares a word with the anchor ("knee arthroscopy" beside knee
        replacement, "vasectomy reversal" beside vasectomy): that is a look-alike the
        collection lacks. Unanchored, every name no page has is absent, but a condition the top
        result's page speaks of ("headache" after a spinal tap). Conditions and medicines count
        as procedures do in a collection whose pages are about them (`subjects`)."""
        query = QueryTerms.of(query)
        terms = self.terms.find(query, spelt=self.spelt)
        resolved = [self._one_procedure_names(t.words) or self._named_in_passages(t.words) for t in terms]
        anchors = [frozenset(t.words) for t, found in zip(terms, resolved, strict=True) if found]
        best = int(np.argmax(named)) if named.size else -1
        if best >= 0 and named[best] >= NAMED:
            anchors.append(self._name_words(best))
        missing = [term for term, found in zip(terms, resolved, strict=True) if not found]
        top_rows = self._rows_of(top)
        if anchors:
            absent = [
                t
                for t in missing
                if t.kind in self.subjects
                and any(a.intersection(t.words) for a in anchors)
                and not self._rows_hold(top_rows, t.words)
            ]
        else:
            absent = [t for t in missing if t.kind in self.subjects or not self._rows_hold(top_rows, t.words)]
        first = absent[0].as_written(query.text) if absent else None
        return first, 0 if anchors else len(absent), len(absent) if anchors else 0

    def _rows_of(self, procedure: int) -> np.ndarray:
        rows = self.procedure_rows[procedure] if procedure >= 0 else ()
        return np.asarray(rows, dtype=np.int64)

    def _name_words(self, procedure: int) -> frozenset[str]:
        names = self.matcher.procedure_words
        columns = names.indices[names.indptr[procedure] : names.indptr[procedure + 1]]
        return frozenset(self.matcher.vocabulary[i] for i in columns.tolist())

    def _one_procedure_names(self, term: Sequence[str]) -> bool:
        """Whether one procedure's names hold every word of the term."""
        common: np.ndarray | None = None
        for word in term:
            column = self.matcher.column.get(word)
            if column is None:
                return False
            found = self.holders.indices[self.holders.indptr[column] : self.holders.indptr[column + 1]]
            common = found if common is None else np.intersect1d(common, found, assume_unique=True)
            if not common.size:
                return False
        return common is not None

    def _rows_hold(self, rows: np.ndarray, term: Sequence[str]) -> bool:
        """Whether the passages `rows` (ascending) hold every word of the term between them."""
        for stem in stems([" ".join(term)])[0]:
            held = self.lexical.postings(stem)
            if held is None or not np.isin(held, rows).any():
                return False
        return True

    def _named_in_passages(self, term: Sequence[str]) -> bool:
        """Whether one procedure's naming passages hold every word of the term."""
        procedures: set[int] | None = None
        for stem in stems([" ".join(term)])[0]:
            held = self.lexical.postings(stem)
            if held is None:
                return False
            holders = set(self.passage_procedure[held[np.isin(held, self.naming_rows)]].tolist())
            procedures = holders if procedures is None else procedures & holders
            if not procedures:
                return False
        return bool(procedures)

    def unknown_code(self, query: str) -> str | None:
        """A code-shaped word of the query that no procedure has."""
        for token in CODE_SHAPES.findall(query):
            if any(c.isdigit() for c in token) and code_key(token) not in self.codes:
                return str(token)
        return None

    def unexplained(self, query: str | QueryTerms, top: int) -> tuple[int, int]:
        """Of the query's words that do not ask about a section: how many the top result's
        procedure does not hold, and how many the collection does not hold at all."""
        subject = [w for w in QueryTerms.of(query).words if len(w) >= 3 and w not in self.asking]
        if not subject:
            return 0, 0
        rows = self._rows_of(top)
        elsewhere = unknown = 0
        for stem in stems(subject):
            spelt = self.spellings.closest(stem[0]) if stem else None
            if spelt is None:
                unknown += 1
                elsewhere += 1
                continue
            held = self.lexical.postings(spelt)
            if held is None or not np.isin(held, rows, assume_unique=True).any():
                elsewhere += 1
        return elsewhere, unknown


def subject_kinds(terms: Terms, titles: Sequence[str]) -> frozenset[str]:
    """The kinds of name (conditions, medicines, ...) that at least SUBJECT_SHARE of the
    titles name: what the collection's pages are about (read off an even sample of at most
    SUBJECT_SAMPLE titles, so that a large collection loads as fast)."""
    titles = titles[:: max(1, len(titles) // SUBJECT_SAMPLE)]
    counts: dict[str, int] = {}
    for title in titles:
        for kind in {t.kind for t in terms.find(title)}:
            counts[kind] = counts.get(kind, 0) + 1
    return frozenset(kind for kind, n in counts.items() if titles and n >= SUBJECT_SHARE * len(titles))


def judge(evidence: Evidence, calibration: Calibration) -> Verdict:
    """The verdict on a question from its evidence."""
    question = np.array(evidence.question, dtype=np.float64)
    covered_p = float(calibration.coverage.probability(question)[0])
    rows = np.hstack([np.tile(question, (len(evidence.results), 1)), evidence.results])
    confidences = calibration.confidence.probability(rows) if len(rows) else np.zeros(0)
    if evidence.unknown_code is not None and evidence.question[QUESTION_FEATURES.index("named")] < NAMED:
        return Verdict(False, f"no page has the code {evidence.unknown_code}", _rounded(confidences), covered_p)
    if covered_p >= calibration.threshold:
        return Verdict(True, None, _rounded(confidences), covered_p)
    if evidence.absent is not None:
        reason = f"no page about {evidence.absent} here"
    elif evidence.outside is not None and _medical(evidence.question):
        reason = f"the pages here do not answer questions about {evidence.outside.lower()}"
    else:
        reason = "the question is outside this collection"
    return Verdict(False, reason, _rounded(confidences), covered_p)


def _medical(question: Sequence[float]) -> bool:
    """Whether a question speaks of what the pages do (names one, or comes close to one), so
    that its kind, not the whole question, is what the collection lacks ("colonoscopy cost",
    but not "best pizza near me")."""
    named = question[QUESTION_FEATURES.index("named")]
    return named >= NAMED or question[QUESTION_FEATURES.index("top_dense")] >= TOPICAL


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)
