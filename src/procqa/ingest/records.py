"""What every format's parser shares: codes, ids, answer units and sections from spans of lines.

A span is (section name, heading as written, first line, body lines, last line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from procqa.documents import Procedure, Section, Unit
from procqa.errors import ParseError
from procqa.text import slugify

CODE_SYSTEMS = {"cpt": "CPT", "cpt4": "CPT", "cpt 4": "CPT", "hcpcs": "HCPCS", "icd 10 pcs": "ICD-10-PCS"}
FILE_CODE = re.compile(r"^(?P<system>cpt|hcpcs|icd10pcs)-(?P<code>[a-z0-9]+)-", re.I)
BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+(?P<text>.*)$")
LABEL = re.compile(r"^(?P<label>[A-Z][A-Za-z0-9/&,()' -]{0,48}?)\s*:\s+(?P<text>\S.*)$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
EMPHASIS = re.compile(r"(\*\*|__|`)")
Span = tuple[str, str, int, list[str], int]
LEAD = "Overview"
"""The heading of the text between a document's title and its first section heading (a
known variant of Summary), in every format."""
ID_CHARS = 80
"""The longest slug of a path in an id, leaving room for a line number and a '-2' (the API
takes ids of up to 100 characters)."""
WHOLE = "Text"
"""The one section of an HTML page or PDF leaflet without section headings."""


def normalise_system(system: str | None) -> str | None:
    """'CPT4', 'cpt-4' and 'CPT' are one system; unknown names pass through upper-cased."""
    if not system:
        return None
    key = re.sub(r"[^a-z0-9]+", " ", system.lower()).strip()
    return CODE_SYSTEMS.get(key, system.strip().upper())


def document_id(path: str | Path, line: int | None = None) -> str:
    """A document's id from its path (relative to its collection), slugified without the
    suffix: 'nhs/stroke.md' -> 'nhs-stroke'; a record of a file of many adds its line:
    'guide-3' for line 3 of guide.jsonl. Never from the title, which documents may share."""
    stem = Path(path).with_suffix("")
    slug = slugify("-".join(stem.parts))[:ID_CHARS].strip("-") or "untitled"
    return slug if line is None else f"{slug}-{line}"


def decode(path: str | Path, data: bytes) -> str:
    """UTF-8 text with any BOM removed; binary, undecodable or blank files raise ParseError."""
    if b"\x00" in data:
        raise ParseError(path, data[: data.index(b"\x00")].count(b"\n") + 1, "binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ParseError(path, line, "not UTF-8 text; save the file as UTF-8") from None
    # after decoding, so a lone BOM or Unicode spaces (U+3000, U+001F) count as empty too
    if not text.strip():
        raise ParseError(path, 1, "the file is empty")
    return text


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def units_of(lines: Iterable[str]) -> list[Unit]:
    """Bullets keep their 'Label:' as the unit's label; plain lines split into sentences."""
    units: list[Unit] = []
    for raw in lines:
        line = EMPHASIS.sub("", raw).strip()
        if not line:
            continue
        bullet = BULLET.match(line)
        if bullet:
            body = bullet["text"].strip()
            labelled = LABEL.match(body)
            if labelled and len(labelled["label"].split()) <= 6:
                units.append(Unit(labelled["text"].strip(), labelled["label"].strip()))
            elif body:
                units.append(Unit(body))
        else:
            units.extend(Unit(sentence) for sentence in split_sentences(line))
    return units


def sections_of(path: str | Path, spans: list[Span]) -> tuple[Section, ...]:
    """Sections from (name, heading, first line, body lines, last line); empty ones are dropped
    and repeated names are merged into their first occurrence."""
    merged: dict[str, Section] = {}
    for name, heading, start, body, end in spans:
        units = tuple(units_of(body))
        if not units:
            continue
        if name in merged:
            first = merged[name]
            merged[name] = Section(name, first.units + units, first.line_start, end, first.heading)
        else:
            merged[name] = Section(name, units, start, end, heading)
    if not merged:
        line = spans[0][2] if spans else 1
        raise ParseError(path, line, "no section has any text")
    return tuple(merged.values())


def procedure_of(
    path: str | Path,
    title: str,
    code: str | None,
    system: str | None,
    spans: list[Span],
    *,
    name: str | None = None,
    aliases: tuple[str, ...] = (),
    line: int | None = None,
) -> Procedure:
    """A procedure of a file (`line`: where its record starts in a file of many). Its id is
    from the file's name until read_corpus, which knows the collection's folder, gives the one
    from its path below it."""
    return Procedure(
        id=document_id(Path(path).name, line),
        title=title,
        code=code,
        code_system=system if code else None,
        sections=sections_of(path, spans),
        source=str(path),
        name=name,
        aliases=aliases,
        record_line=line,
    )


def code_from_name(path: str | Path) -> tuple[str | None, str | None]:
    match = FILE_CODE.match(Path(path).name)
    return (match["code"].upper(), normalise_system(match["system"])) if match else (None, None)
