"""Markdown pages: optional front matter, '# Title', then section headings."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.page import code_of_line
from procqa.ingest.records import BULLET, LEAD, Span, code_from_name, decode, normalise_system, procedure_of
from procqa.ingest.sections import canonical_section

HEADING = re.compile(r"^\s{0,3}(?P<marks>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
SCALARS = (str, int, float, date)


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


def aliases_of(value: Any) -> tuple[str, ...]:
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
    title_line = 0
    if tops and tops[0] == next(iter(headings)) and (title is None or len(tops) == 1):
        # a '# Title' line, first of all (no section precedes it, so its line is passed over);
        # with a title in front matter, several '#' headings are sections
        title_line = tops[0]
        named = headings.pop(title_line)["text"] or None
        title = title or named
    # sections are the top heading level after the title ('##' in most pages); deeper
    # headings label the lines under them
    level = min((len(match["marks"]) for match in headings.values()), default=2)
    lead: list[str] = []
    lead_lines: list[int] = []
    spans: list[Span] = []
    label: str | None = None
    for number, raw in numbered:
        line = raw.strip()
        match = headings.get(number)
        if not spans and not match:
            if line and number != title_line:
                lead.append(line)
                lead_lines.append(number)
        elif match and len(match["marks"]) == level:
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
    if not code and (found := next(filter(None, map(code_of_line, lead)), None)):
        code, system = found
    if not code:
        code, system = code_from_name(path)
    # the text between the title and the first heading is a section of its own, less any code line
    kept = [(number, line) for number, line in zip(lead_lines, lead, strict=True) if not code_of_line(line)]
    if kept:
        lead_name = canonical_section(LEAD) or LEAD
        spans.insert(0, (lead_name, LEAD, kept[0][0], [line for _, line in kept], kept[-1][0]))
    name = _text_field(path, meta, "name")
    return procedure_of(path, title, code, system or "CPT", spans, name=name, aliases=aliases_of(meta.get("aliases")))


def parse_markdown_file(path: str | Path, data: bytes) -> list[Procedure]:
    return [parse_markdown(path, decode(path, data))]
