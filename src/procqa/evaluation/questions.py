"""Question sets to evaluate on: procqa's questions file, a generic {question, doc, section}
file, or a BEIR folder; each question knows which passages answer it, and its split.

Relevance is on (procedure, section) pairs for question files: a passage answers when its
procedure is the gold one (or any procedure, when the question names none) and it is in a
gold section: its heading as written is one, or else its kind is ("Recovery" for "Going
home"), in any case. Each question records which of the two it was judged by. In a BEIR
folder every record is one passage and relevance is per record.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from procqa.documents import Passage
from procqa.errors import ParseError
from procqa.ingest.sections import canonical_section
from procqa.text import code_key

DEV = "dev"
HELDOUT = "heldout"
SPLITS = (DEV, HELDOUT)
SECTION_LEVEL = "section"
DOCUMENT_LEVEL = "document"
BY_HEADING = "heading"
BY_KIND = "kind"
MATCHED_BY = (BY_HEADING, BY_KIND)


def split_of(question: str) -> str:
    """A fixed 30% of questions, chosen by a hash of their text, are held out from tuning."""
    return HELDOUT if int(hashlib.sha256(question.encode("utf-8")).hexdigest(), 16) % 10 < 3 else DEV


@dataclass(frozen=True)
class Question:
    """A question and the passages that answer it (passage id -> graded relevance)."""

    id: str
    text: str
    relevant: Mapping[int, int]
    procedures: frozenset[str] | None = None
    sections: tuple[str, ...] = ()
    kind: str = ""
    gold: str | None = None
    matched_by: str = ""  # BY_HEADING or BY_KIND: how its gold sections found their passages
    answer: str | None = None  # the words of the page that answer it, where labelled

    @property
    def split(self) -> str:
        return split_of(self.text)

    @property
    def names_procedure(self) -> bool:
        """Whether the question asks about one procedure (procedure@1 applies)."""
        return self.procedures is not None

    @property
    def any_procedure(self) -> bool:
        """A section question about no procedure in particular (the top-5 section share applies)."""
        return self.procedures is None and bool(self.sections)


@dataclass(frozen=True)
class Benchmark:
    """The passages searched and the questions asked of them."""

    name: str
    passages: tuple[Passage, ...]
    questions: tuple[Question, ...]
    level: str = SECTION_LEVEL


@cache
def _gold_keys(sections: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """The gold sections as headings and as kinds, casefolded; a known variant ('Aftercare')
    also stands for its canonical kind ('Recovery')."""
    headings = frozenset(s.strip().casefold() for s in sections)
    canonical = (canonical_section(s) for s in sections)
    return headings, headings | frozenset(c.casefold() for c in canonical if c)


def section_match(passage: Passage, sections: Sequence[str]) -> str | None:
    """BY_HEADING when the passage's heading as written is a gold section, else BY_KIND when
    its kind is one, else None (case-insensitively)."""
    headings, kinds = _gold_keys(tuple(sections))
    if passage.heading.casefold() in headings:
        return BY_HEADING
    if passage.section_kind is not None and passage.section_kind.casefold() in kinds:
        return BY_KIND
    return None


def relevant_passages(
    passages: Iterable[Passage], procedures: frozenset[str] | None, sections: Sequence[str]
) -> dict[int, str]:
    """Passages of a gold procedure (any, when None) in a gold section, each with how its
    section matched (BY_HEADING or BY_KIND)."""
    found = {}
    for p in passages:
        if procedures is None or p.procedure_id in procedures:
            if how := section_match(p, sections):
                found[p.id] = how
    return found


def _procedures_by_code(passages: Sequence[Passage], code: str) -> frozenset[str]:
    key = code_key(code)
    return frozenset(p.procedure_id for p in passages if p.code and code_key(p.code) == key)


def _procedures_by_doc(passages: Sequence[Passage], doc: str) -> frozenset[str]:
    """Every procedure with this id or title: pages sharing a title all answer."""
    key = doc.strip().casefold()
    return frozenset(p.procedure_id for p in passages if key in (p.procedure_id.casefold(), p.title.casefold()))


def _sections(record: Mapping[str, Any]) -> tuple[str, ...]:
    """The gold sections as the questions file writes them: headings as the documents write
    them ("6. Afterwards", "Overview") or kinds of section ("Recovery")."""
    value = record.get("sections", record.get("section"))
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("needs `sections` (a list of names) or `section` (a name)")


def parse_question(record: Mapping[str, Any], passages: Sequence[Passage], qid: str) -> Question:
    """One line of a questions file: procqa's {question, code, sections, kind} or the generic
    {question, doc, section}, where doc is a procedure id or title (null: any procedure)."""
    text = record.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("needs a non-empty `question`")
    sections = _sections(record)
    if "doc" in record:
        gold = record["doc"]
        procedures = None if gold is None else _procedures_by_doc(passages, str(gold))
        if procedures is not None and not procedures:
            raise ValueError(f"no procedure has the id or title {gold!r}")
    else:
        gold = record.get("code")
        procedures = None if gold is None else _procedures_by_code(passages, str(gold))
    found = relevant_passages(passages, procedures, sections)
    return Question(
        id=qid,
        text=text.strip(),
        relevant=dict.fromkeys(found, 1),
        procedures=procedures,
        sections=sections,
        kind=str(record.get("kind") or ""),
        gold=None if gold is None else str(gold),
        matched_by=BY_HEADING if BY_HEADING in found.values() else BY_KIND if found else "",
        answer=record["answer"].strip() or None if isinstance(record.get("answer"), str) else None,
    )


def parse_questions(lines: Iterable[str], passages: Sequence[Passage], *, source: str) -> tuple[Question, ...]:
    """Questions from JSON lines; blank lines are skipped, a bad line is a ParseError."""
    questions: list[Question] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("is not a JSON object")
            questions.append(parse_question(record, passages, f"q{number:04d}"))
        except ValueError as error:
            raise ParseError(source, number, str(error)) from None
    return tuple(questions)


def read_questions(path: Path, passages: Sequence[Passage]) -> Benchmark:
    """A questions file (procqa or generic lines) over the passages of an index."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as error:
        raise ParseError(path, 0, f"cannot read the questions file ({error.strerror})") from None
    return Benchmark(path.stem, tuple(passages), parse_questions(lines, passages, source=str(path)))


def jsonl_records(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, each with the required keys; a bad line is a ParseError."""
    records = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ParseError(path, number, f"not JSON ({error.msg})") from None
        if not isinstance(record, dict) or any(key not in record for key in required):
            raise ParseError(path, number, f"want a JSON object with {', '.join(required)}")
        records.append(record)
    return records


def read_beir(folder: Path, *, split: str = "test") -> Benchmark:
    """A BEIR folder: corpus.jsonl {_id, title, text}, queries.jsonl {_id, text} and
    qrels/<split>.tsv (query-id, corpus-id, score); each corpus record becomes one passage,
    whose text is its title and text, as BEIR's own baselines read it."""
    files = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ParseError(folder, 0, f"not a BEIR folder: missing {', '.join(missing)}")
    passages = tuple(
        Passage(
            id=i,
            procedure_id=str(r["_id"]),
            title=str(r.get("title") or ""),
            code=None,
            code_system=None,
            section="",
            heading="",
            section_kind=None,
            text=" ".join(t for t in (r.get("title"), r.get("text")) if t),
            units=(),
            source=str(files[0]),
            line_start=i + 1,
            line_end=i + 1,
        )
        for i, r in enumerate(jsonl_records(files[0], ("_id", "text")))
    )
    position = {p.procedure_id: p.id for p in passages}
    texts = {str(r["_id"]): str(r["text"]) for r in jsonl_records(files[1], ("_id", "text"))}
    qrels: dict[str, dict[int, int]] = {}
    with files[2].open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and row and row[0] == "query-id":
                continue
            if len(row) != 3:
                raise ParseError(files[2], number, "want three tab-separated columns: query-id, corpus-id, score")
            if row[1] in position and row[0] in texts:
                qrels.setdefault(row[0], {})[position[row[1]]] = int(float(row[2]))
    questions = tuple(Question(id=q, text=texts[q], relevant=rel) for q, rel in qrels.items())
    return Benchmark(folder.name, passages, questions, DOCUMENT_LEVEL)
