"""Turn procedures into passages: one passage per section, with its answer units."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from procqa.documents import Passage, Procedure
from procqa.ingest.sections import section_kind


def chunk(procedures: Iterable[Procedure]) -> list[Passage]:
    """One passage per section, numbered in corpus order."""
    passages: list[Passage] = []
    for procedure in procedures:
        for section in procedure.sections:
            passages.append(
                Passage(
                    id=len(passages),
                    procedure_id=procedure.id,
                    title=procedure.title,
                    code=procedure.code,
                    code_system=procedure.code_system,
                    section=section.name,
                    heading=section.heading or section.name,
                    section_kind=section_kind(section.name),
                    text=section.text,
                    units=tuple(unit.render() for unit in section.units),
                    source=procedure.source,
                    line_start=section.line_start,
                    line_end=section.line_end,
                )
            )
    return passages


def content_key(text: str, model: str) -> str:
    """Key of an embedding: the text and the model that embeds it."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()[:32]
