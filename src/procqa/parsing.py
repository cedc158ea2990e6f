"""Parse procedure documents (the plain-text page layout, Markdown, JSON Lines) into records.

Every function here is pure: it takes a path (for names and messages) and the file's bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from procqa.documents import Procedure, Section, Unit
from procqa.errors import ParseError
from procqa.sections import canonical_section

SUFFIXES = (".txt", ".md", ".markdown", ".jsonl")
CHROME = frozenset({"search all medical codes"})
CODE_SYSTEMS = {"cpt": "CPT", "cpt4": "CPT", "cpt 4": "CPT", "hcpcs": "HCPCS", "icd 10 pcs": "ICD-10-PCS"}
_SYSTEM = r"(?P<system>CPT[- ]?4?|HCPCS|ICD[- ]?10[- ]?PCS)"
CODE_LINE = re.compile(rf"^{_SYSTEM}\s+code\b\s*:?\s*(?P<code>[A-Z0-9][A-Z0-9.]*)?\s*$", re.I)
FILE_CODE = re.compile(r"^(?P<system>cpt|hcpcs|icd10pcs)-(?P<code>[a-z0-9]+)-", re.I)
HEADING = re.compile(r"^\s{0,3}(?P<marks>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
NAME_LINE = re.compile(r"^name of the procedure\s*:\s*(?P<name>.*)$", re.I)
BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+(?P<text>.*)$")
LABEL = re.compile(r"^(?P<label>[A-Z][A-Za-z0-9/&,()' -]{0,48}?)\s*:\s+(?P<text>\S.*)$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
EMPHASIS = re.compile(r"(\*\*|__|`)")
SCALARS = (str, int, float, date)


def normalise_system(system: str | None) -> str | None:
    """'CPT4', 'cpt-4' and 'CPT' are one system; unknown names pass through upper-cased."""
    if not system:
        return None
    key = re.sub(r"[^a-z0-9]+", " ", system.lower()).strip()
    return CODE_SYSTEMS.get(key, system.strip().upper())


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def procedure_id(title: str, code: str | None, code_system: str | None) -> str:
    """'cpt-22849' for a coded procedure, a slug of the title otherwise."""
    if code:
        return f"{slugify(code_system or 'code')}-{code.lower()}"
    return slugify(title)[:80] or "untitled"


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


def _sections(path: str | Path, spans: list[tuple[str, str, int, list[str], int]]) -> tuple[Section, ...]:
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


def _procedure(
    path: str | Path,
    title: str,
    code: str | None,
    system: str | None,
    spans: list[tuple[str, str, int, list[str], int]],
    *,
    name: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Procedure:
    return Procedure(
        id=procedure_id(title, code, system),
        title=title,
        code=code,
        code_system=system if code else None,
        sections=_sections(path, spans),
        source=str(path),
        name=name,
        aliases=aliases,
    )


def _code_from_name(path: str | Path) -> tuple[str | None, str | None]:
    match = FILE_CODE.match(Path(path).name)
    return (match["code"].upper(), normalise_system(match["system"])) if match else (None, None)


def parse_page(path: str | Path, text: str) -> Procedure:
    """The plain-text page layout: title, code line, 'Name of the Procedure:', sections."""
    lines = text.splitlines()
    title = name = code = system = None
    expect_name = False
    spans: list[tuple[str, str, int, list[str], int]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.lower() in CHROME:
            continue
        heading = canonical_section(line) if len(line) <= 60 else None
        if heading and title is not None:
            spans.append((heading, line, number, [], number))
            expect_name = False
            continue
        if spans:
            spans[-1][3].append(line)
            spans[-1] = (*spans[-1][:4], number)
            continue
        if title is None:
            if CODE_LINE.match(line) or NAME_LINE.match(line) or heading:
                raise ParseError(path, number, "no title line before the code line or first heading")
            title = line
        elif match := CODE_LINE.match(line):
            system, code = normalise_system(match["system"]), match["code"]
        elif match := NAME_LINE.match(line):
            name = match["name"].strip() or None
            expect_name = name is None
        elif expect_name:
            name, expect_name = line, False
    if title is None:
        raise ParseError(path, 1, "no title: the file has no text")
    if not spans:
        raise ParseError(path, len(lines), "no section headings found (e.g. 'Summary', 'Recovery')")
    if not code:
        file_code, file_system = _code_from_name(path)
        code, system = file_code, system or file_system
    return _procedure(path, title, code, system, spans, name=name)


def _front_matter(path: str | Path, lines: list[str]) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            # ValueError: an integer of over 4300 digits; RecursionError: values nested too deep
            try:
                meta = yaml.safe_load("\n".join(lines[1:end])) or {}
            except (yaml.YAMLError, ValueError, RecursionError) as error:
                raise ParseError(path, 1, f"front matter is not valid YAML: {error}") from None
            if not isinstance(meta, dict):
                raise ParseError(path, 1, "front matter must be a mapping of keys to values")
            return meta, end + 1
    raise ParseError(path, 1, "front matter opened with '---' is never closed")


def _text_field(path: str | Path, meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    # YAML anchors let a few bytes name a list of millions of items; only scalars become text
    if not isinstance(value, SCALARS):
        raise ParseError(path, 1, f"front matter '{key}' must be text, not a {type(value).__name__}")
    return str(value).strip() or None


def _aliases(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, SCALARS) and str(v).strip())
    return ()


def parse_markdown(path: str | Path, text: str) -> Procedure:
    """Markdown: optional front matter (title, code, code_system, aliases), '# Title', then
    section headings (kept as written unless they are a known variant): '## Section' as a
    rule, or whatever level is the document's top one after its title."""
    lines = text.splitlines()
    meta, first = _front_matter(path, lines)
    title = _text_field(path, meta, "title")
    numbered = list(enumerate(lines[first:], start=first + 1))
    headings = {number: match for number, raw in numbered if (match := HEADING.match(raw))}
    tops = [number for number, match in headings.items() if len(match["marks"]) == 1]
    if tops and tops[0] == next(iter(headings)) and (title is None or len(tops) == 1):
        # a '# Title' line, first of all (no section precedes it, so its line is passed over);
        # with a title in front matter, several '#' headings are sections
        named = headings.pop(tops[0])["text"] or None
        title = title or named
    # sections are the top heading level after the title ('##' in most pages); deeper
    # headings label the lines under them
    level = min((len(match["marks"]) for match in headings.values()), default=2)
    spans: list[tuple[str, str, int, list[str], int]] = []
    label: str | None = None
    for number, raw in numbered:
        line = raw.strip()
        match = headings.get(number)
        if match and len(match["marks"]) == level:
            heading = match["text"].rstrip(":").strip()
            spans.append((canonical_section(heading) or heading, heading, number, [], number))
            label = None
        elif match:
            label = match["text"] or None
        elif spans and line:
            if label and not BULLET.match(line):
                line = f"- {label}: {line}"
            spans[-1][3].append(line)
            spans[-1] = (*spans[-1][:4], number)
    if title is None:
        raise ParseError(path, first + 1, "no title: add a '# Title' line or 'title:' front matter")
    if not spans:
        raise ParseError(path, first + 1, "no '## Section' headings found")
    code = _text_field(path, meta, "code")
    system = normalise_system(_text_field(path, meta, "code_system"))
    if not code:
        code, system = _code_from_name(path)
    name = _text_field(path, meta, "name")
    return _procedure(path, title, code, system or "CPT", spans, name=name, aliases=_aliases(meta.get("aliases")))


def _jsonl_record(path: str | Path, number: int, line: str) -> Procedure:
    # ValueError: an integer of over 4300 digits; RecursionError: arrays nested too deep
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ParseError(path, number, f"not valid JSON: {error.msg}") from None
    except (ValueError, RecursionError) as error:
        raise ParseError(path, number, f"not usable JSON: {error}") from None
    if not isinstance(record, dict):
        raise ParseError(path, number, "each line must be a JSON object")
    title = str(record.get("title") or "").strip()
    if not title:
        raise ParseError(path, number, "missing 'title'")
    raw_sections = record.get("sections")
    if isinstance(raw_sections, dict):
        raw_sections = [{"name": k, "text": v} for k, v in raw_sections.items()]
    if not isinstance(raw_sections, list) or not raw_sections:
        raise ParseError(path, number, "'sections' must be a non-empty list of {name, text}")
    spans = []
    for item in raw_sections:
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise ParseError(path, number, "every section needs a 'name' and a 'text'")
        heading = str(item["name"]).strip()
        body = str(item.get("text") or "").splitlines()
        spans.append((canonical_section(heading) or heading, heading, number, body, number))
    code = str(record["code"]).strip() if record.get("code") not in (None, "") else None
    system = normalise_system(str(record.get("code_system") or "")) or ("CPT" if code else None)
    name = str(record["name"]).strip() if record.get("name") else None
    return _procedure(path, title, code, system, spans, name=name, aliases=_aliases(record.get("aliases")))


def parse_jsonl(path: str | Path, text: str) -> Iterator[Procedure | ParseError]:
    """One procedure per line; a bad line yields its error and the others still parse."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield _jsonl_record(path, number, line)
            except ParseError as error:
                yield error


def parse_file(path: str | Path, data: bytes) -> tuple[list[Procedure], list[ParseError]]:
    """Every procedure in one file, and the problems found in it."""
    try:
        text = decode(path, data)
        suffix = Path(path).suffix.lower()
        if suffix == ".jsonl":
            results = list(parse_jsonl(path, text))
            return (
                [r for r in results if isinstance(r, Procedure)],
                [r for r in results if isinstance(r, ParseError)],
            )
        if suffix in (".md", ".markdown"):
            return [parse_markdown(path, text)], []
        return [parse_page(path, text)], []
    except ParseError as error:
        return [], [error]
