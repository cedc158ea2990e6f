"""What ranking derives from one index version, built once when the version is loaded.

Procedures with their passage rows, the passage that stands for each procedure (its Summary,
else its first), the section-intent models, the procedure matcher and the rows of each code
and section, for filters. Pure: it reads the loaded version and writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import faiss
import numpy as np

from procqa.arrays import plain
from procqa.documents import Passage, ProcedureRecord
from procqa.index import IndexData, Lexical, Rows
from procqa.ingest.sections import SUMMARY
from procqa.ranking.config import RankingConfig
from procqa.ranking.coverage import Vocabulary
from procqa.ranking.intent import OUTSIDE, SectionIntent, SectionWords, own_examples
from procqa.ranking.kinds import inferred_kinds, merged
from procqa.ranking.matching import ProcedureMatcher, everyday_names, title_names
from procqa.ranking.shortlist import Shortlist
from procqa.ranking.units import unit_reach
from procqa.text import code_key, words

NAMES = re.compile(r"\bnames?\b", re.I)


@dataclass(frozen=True)
class ProcedureInfo:
    """A procedure and the rows of its passages."""

    id: str
    title: str
    code: str | None
    code_system: str | None
    passage_ids: tuple[int, ...]


@dataclass(frozen=True)
class Examples:
    """The stored example questions: those of section intent, and apart from them those of
    questions pages rarely answer (labelled with intent.OUTSIDE in the index)."""

    labels: tuple[str, ...]
    texts: tuple[str, ...]
    vectors: np.ndarray
    outside: np.ndarray
    outside_kinds: tuple[str, ...]

    def intent(self, config: RankingConfig) -> SectionIntent:
        """Section intent fitted on these examples."""
        return SectionIntent(
            self.labels,
            self.vectors,
            scale=config.intent_scale,
            neighbours=config.neighbours,
            temperature=config.temperature,
        )

    def without_introductions(self) -> Examples:
        """These examples less what pages write under their introductions (the Summary, and
        headings read as it) and under their names ("Brand Names"), keeping those sections'
        own examples. Such text says which procedure or medicine a page is about, not what is
        asked of it: learnt from, it read an everyday question that describes its procedure
        ("groin bulge fixed through one cut, when can I drive") as a question for the Summary."""
        about = {label for label in set(self.labels) if label == SUMMARY or NAMES.search(label)}
        own = {label: set(own_examples(label)) for label in about}
        keep = np.array(
            [label not in about or text in own[label] for label, text in zip(self.labels, self.texts, strict=True)],
            dtype=bool,
        )
        return replace(
            self,
            labels=tuple(label for label, kept in zip(self.labels, keep, strict=True) if kept),
            texts=tuple(text for text, kept in zip(self.texts, keep, strict=True) if kept),
            vectors=self.vectors[keep],
        )

    @classmethod
    def of(cls, data: IndexData) -> Examples:
        out = np.array([label.startswith(OUTSIDE) for label in data.intent_labels], dtype=bool)
        vectors = np.asarray(data.intents, dtype=np.float32).reshape(len(out), -1)
        pairs = list(zip(data.intent_labels, data.intent_texts, strict=True))
        return cls(
            labels=tuple(label for (label, _), o in zip(pairs, out, strict=True) if not o),
            texts=tuple(text for (_, text), o in zip(pairs, out, strict=True) if not o),
            vectors=vectors[~out],
            outside=vectors[out],
            outside_kinds=tuple(label.removeprefix(OUTSIDE) for (label, _), o in zip(pairs, out, strict=True) if o),
        )


@dataclass(frozen=True)
class RankingFeatures:
    """Everything a searcher reads of one index version."""

    version: str
    manifest: dict[str, Any]
    config: RankingConfig
    passages: Sequence[Passage]
    vectors: np.ndarray | Rows
    units: np.ndarray | Rows
    unit_offsets: np.ndarray  # passage i has units unit_offsets[i]:unit_offsets[i + 1]
    dense: faiss.Index
    lexical: Lexical
    procedures: tuple[ProcedureInfo, ...]
    by_id: dict[str, ProcedureInfo]
    passage_procedure: np.ndarray  # procedure row of each passage
    identity: np.ndarray  # per procedure, the vector of the passage that introduces it
    shortlist: Shortlist | None
    intent: SectionIntent
    section_words: SectionWords
    sections: tuple[str, ...]  # what the section filter takes: every heading as written and kind, sorted
    passage_section: np.ndarray  # per passage, its section's position in intent.names (-1: none)
    section_rows: dict[str, np.ndarray]  # rows of each heading and kind (casefolded), ascending
    code_rows: dict[str, np.ndarray]  # rows of each code (by code_key), ascending
    most_passages: int  # the most passages one procedure has
    unmodelled: float  # the intent share of a heading without a model of its own
    matcher: ProcedureMatcher
    outside: np.ndarray  # vectors of questions pages like these rarely answer
    outside_kinds: tuple[str, ...]  # the kind of each
    vocabulary: Vocabulary  # what coverage knows of the collection's words and names
    unit_reach: np.ndarray | None = None  # per passage, its units' farthest distance from its vector

    @classmethod
    def from_index(cls, data: IndexData, config: RankingConfig | None = None) -> RankingFeatures:
        """The features of a loaded version (about 0.5 s on the shipped index: the intent models)."""
        config = config or RankingConfig()
        columns = data.columns
        passage_procedure = np.asarray(columns.passage_procedure, dtype=np.int64)
        grouped = _grouped(passage_procedure, len(data.procedures))
        procedures = tuple(
            ProcedureInfo(p.id, p.title, p.code, p.code_system, tuple(group))
            for p, group in zip(data.procedures, grouped, strict=True)
        )
        section_of = np.asarray(columns.passage_section, dtype=np.int64)
        introductions = _introductions(columns.sections, section_of, passage_procedure, grouped)
        identity = np.asarray(data.vectors[introductions], dtype=np.float32)
        examples = Examples.of(data)
        folded, kinds = _kinds(data, examples, config)
        fitted = folded.without_introductions()
        intent = fitted.intent(config)
        matcher = _matcher(data, introductions, config)
        positions = _positions(intent.names, [kinds.get(s, s) for s in columns.sections])
        return cls(
            version=data.version,
            manifest=data.manifest,
            config=config,
            passages=data.passages,
            vectors=plain(data.vectors),
            units=plain(data.units),
            unit_offsets=plain(data.unit_offsets),
            dense=data.dense,
            lexical=data.lexical,
            procedures=procedures,
            by_id={p.id: p for p in procedures},
            passage_procedure=passage_procedure,
            identity=identity,
            shortlist=Shortlist(identity) if len(identity) > config.shortlist_above else None,
            intent=intent,
            section_words=SectionWords(fitted.labels, fitted.texts, smoothing=config.smoothing),
            sections=_filter_names(columns.headings),
            passage_section=positions[section_of],
            section_rows=_section_rows(columns.headings, np.asarray(columns.passage_heading, dtype=np.int64)),
            code_rows=_code_rows(procedures),
            most_passages=max((len(g) for g in grouped), default=0),
            # a heading without an intent of its own (RankingConfig.max_headings) gets an even share
            unmodelled=1 / max(len(intent.names), 1),
            matcher=matcher,
            outside=examples.outside,
            outside_kinds=examples.outside_kinds,
            vocabulary=Vocabulary(
                matcher,
                data.lexical,
                passage_procedure,
                [p.passage_ids for p in procedures],
                _naming_rows(columns.sections, section_of),
                examples.texts,
                [p.code for p in data.procedures],
                spelt=data.word_bags().vocabulary,
                titles=[p.title for p in data.procedures],
            ),
            unit_reach=unit_reach(data.vectors, data.units, data.unit_offsets),
        )


def _kinds(data: IndexData, examples: Examples, config: RankingConfig) -> tuple[Examples, dict[str, str]]:
    """The examples with each unknown heading that stands for a canonical section folded into
    that section's intent (procqa.ranking.kinds), and the headings folded."""
    present = {data.columns.sections[s] for s in np.unique(data.columns.passage_section).tolist()}
    kinds = inferred_kinds(examples.labels, examples.texts, examples.vectors, present, config)
    labels, keep = merged(examples.labels, examples.texts, kinds)
    texts = tuple(examples.texts[row] for row in keep.tolist())
    return replace(examples, labels=labels, texts=texts, vectors=examples.vectors[keep]), kinds


def _positions(names: Sequence[str], sections: Sequence[str]) -> np.ndarray:
    """Per stored section number (and -1 after them), its position among the intent's names."""
    position = {name: i for i, name in enumerate(names)}
    return np.array([position.get(name, -1) for name in sections] + [-1], dtype=np.int64)


def _grouped(passage_procedure: np.ndarray, count: int) -> list[list[int]]:
    """Per procedure, its passage rows in order."""
    by_procedure = np.argsort(passage_procedure, kind="stable")
    bounds = np.searchsorted(passage_procedure[by_procedure], np.arange(count + 1)).tolist()
    rows = by_procedure.tolist()
    return [rows[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def _introductions(
    sections: Sequence[str], passage_section: np.ndarray, passage_procedure: np.ndarray, grouped: list[list[int]]
) -> np.ndarray:
    """The passage that introduces each procedure: its Summary, else its first."""
    introductions = np.array([group[0] for group in grouped], dtype=np.int64)
    summary = sections.index(SUMMARY) if SUMMARY in sections else -1
    by_procedure = np.argsort(passage_procedure, kind="stable")
    summaries = by_procedure[passage_section[by_procedure] == summary]
    with_summary, first = np.unique(passage_procedure[summaries], return_index=True)
    introductions[with_summary] = summaries[first]
    return introductions


def _naming_rows(sections: Sequence[str], passage_section: np.ndarray) -> np.ndarray:
    """The passages of sections about names ("Brand Names", "Other Names"), ascending. An
    introduction is not among them: it names its own procedure (the matcher knows those names)
    and often others beside it ("septoplasty is sometimes done with rhinoplasty")."""
    about_names = np.array([bool(NAMES.search(name)) for name in sections] + [False])
    return np.flatnonzero(about_names[passage_section])


def _filter_names(headings: Sequence[tuple[str, str | None]]) -> tuple[str, ...]:
    """Every heading as written and every kind, once each whatever its case, sorted."""
    names = {name.casefold(): name for pair in headings for name in pair if name}
    return tuple(sorted(names.values(), key=lambda name: (name.casefold(), name)))


def _section_rows(headings: Sequence[tuple[str, str | None]], passage_heading: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of each heading as written and of each kind, by casefolded name, ascending."""
    numbers: dict[str, list[int]] = {}
    for number, pair in enumerate(headings):
        for name in {name.casefold() for name in pair if name}:
            numbers.setdefault(name, []).append(number)
    return {name: np.flatnonzero(np.isin(passage_heading, found)) for name, found in numbers.items()}


def _code_rows(procedures: Sequence[ProcedureInfo]) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = {}
    for p in procedures:
        if p.code:
            rows.setdefault(code_key(p.code), []).extend(p.passage_ids)
    return {key: np.array(sorted(found), dtype=np.int64) for key, found in rows.items()}


def names_of(record: ProcedureRecord, introduction: str) -> list[str]:
    """What a procedure is called: its title and what it holds, aliases, the everyday names its
    introduction gives, and its 'Name of the Procedure'."""
    names = [*title_names(record.title), *record.aliases, *everyday_names(introduction)]
    return [*names, record.name] if record.name else names


def _matcher(data: IndexData, introductions: np.ndarray, config: RankingConfig) -> ProcedureMatcher:
    names = [names_of(p, data.passages[i].text) for p, i in zip(data.procedures, introductions.tolist(), strict=True)]
    # The matcher weighs a name's words by how many procedures' text holds them; each
    # procedure's stored distinct words that occur in some name count the same as its whole
    # text, without reading every passage (tests/test_storage.py holds them equal).
    in_names = {word for name in {name for group in names for name in group} for word in words(name)}
    return ProcedureMatcher(
        names,
        [p.code for p in data.procedures],
        data.word_bags().texts(in_names),
        min_ratio=config.min_ratio,
        closest=config.closest,
        evidence=config.evidence,
    )
