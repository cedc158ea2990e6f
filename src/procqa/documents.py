"""Domain records: procedures, their sections, and the passages and hits built from them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Unit:
    """One answerable piece of a section: a labelled bullet, a bullet or a sentence."""

    text: str
    label: str | None = None

    def render(self) -> str:
        return f"{self.label}: {self.text}" if self.label else self.text


@dataclass(frozen=True)
class Section:
    """A section of a procedure document under its (canonical where known) name."""

    name: str
    units: tuple[Unit, ...]
    line_start: int
    line_end: int
    heading: str = ""

    @property
    def text(self) -> str:
        return "\n".join(unit.render() for unit in self.units)


@dataclass(frozen=True)
class Procedure:
    """One procedure document, whose id comes from its file (procqa.ingest.records.document_id)."""

    id: str
    title: str
    code: str | None
    code_system: str | None
    sections: tuple[Section, ...]
    source: str
    name: str | None = None
    aliases: tuple[str, ...] = field(default=())
    record_line: int | None = None  # where its record starts in a file of many (JSON Lines)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


@dataclass(frozen=True)
class Passage:
    """The unit of retrieval: one section of one procedure, with what it is embedded as.

    `heading` is the section's heading as the document wrote it, which is what users see;
    `section_kind` what procqa knows it to be a variant of ("Recovery" for "Going home"),
    None when it knows of none; `section` the label that ranking's section intent uses (the
    canonical name where known, else the heading)."""

    id: int
    procedure_id: str
    title: str
    code: str | None
    code_system: str | None
    section: str
    heading: str
    section_kind: str | None
    text: str
    units: tuple[str, ...]
    source: str
    line_start: int
    line_end: int

    @property
    def embed_text(self) -> str:
        """Section text rarely names its procedure, so the title and section go in front."""
        return f"{self.title}. {self.section}: {self.text}"


@dataclass(frozen=True)
class Hit:
    """A ranked passage with the unit that best answers the query."""

    passage: Passage
    score: float
    answer: str
    answer_start: int
    answer_end: int


@dataclass(frozen=True)
class ProcedureRecord:
    """A procedure as an index stores it: who it is and its section names, not its text."""

    id: str
    title: str
    code: str | None
    code_system: str | None
    name: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""
    sections: tuple[str, ...] = ()

    @classmethod
    def of(cls, procedure: Procedure) -> ProcedureRecord:
        return cls(
            id=procedure.id,
            title=procedure.title,
            code=procedure.code,
            code_system=procedure.code_system,
            name=procedure.name,
            aliases=procedure.aliases,
            source=procedure.source,
            sections=tuple(s.name for s in procedure.sections),
        )
