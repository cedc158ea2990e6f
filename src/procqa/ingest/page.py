"""The plain-text page layout: a title line, a code line, 'Name of the Procedure:', sections."""

from __future__ import annotations

import re
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.records import Span, code_from_name, decode, normalise_system, procedure_of
from procqa.ingest.sections import canonical_section

CHROME = frozenset({"search all medical codes"})
_SYSTEM = r"(?P<system>CPT(?:[- ]?4(?!\d))?|HCPCS|ICD[- ]?10[- ]?PCS)"
# 'CPT4 code 27447', 'HCPCS code: G0105' and, as leaflets and web pages write it, 'Procedure code: CPT 27447'
CODE_LINE = re.compile(
    rf"^(?P<named>procedure\s+code\s*:?\s*)?{_SYSTEM}(?(named)|\s+code\b)\s*:?\s*(?P<code>[A-Z0-9][A-Z0-9.]*)?\s*$",
    re.I,
)


def code_of_line(line: str) -> tuple[str, str | None] | None:
    """(code, system) of a code line that gives a number: 'CPT4 code 27447', 'Procedure code: CPT 27447'."""
    match = CODE_LINE.match(line.strip())
    return (match["code"], normalise_system(match["system"])) if match and match["code"] else None


NAME_LINE = re.compile(r"^name of the procedure\s*:\s*(?P<name>.*)$", re.I)


def parse_page(path: str | Path, text: str) -> Procedure:
    """The plain-text page layout: title, code line, 'Name of the Procedure:', sections."""
    lines = text.splitlines()
    title = name = code = system = None
    expect_name = False
    spans: list[Span] = []
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
        file_code, file_system = code_from_name(path)
        code, system = file_code, system or file_system
    return procedure_of(path, title, code, system, spans, name=name)


def parse_pages(path: str | Path, data: bytes) -> list[Procedure]:
    return [parse_page(path, decode(path, data))]
