"""PDF leaflets (pypdf): headings found by font size, bold type or numbering in the text layer,
running headers and footers left out, one 'Text' section when the leaflet has no headings.

A section's line_start and line_end are page numbers.
"""

from __future__ import annotations

import io
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdf
from pypdf.errors import PyPdfError

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.page import code_of_line
from procqa.ingest.records import BULLET, LEAD, WHOLE, Span, code_from_name, procedure_of
from procqa.ingest.sections import canonical_section

# pypdf reads damaged files leniently and some damage surfaces as plain Python errors from
# deep inside it; these are the ones seen when fuzzing, each meaning "this file is broken".
BROKEN: tuple[type[BaseException], ...] = (PyPdfError, ValueError, TypeError, KeyError, IndexError, AttributeError)
BROKEN += (AssertionError, RecursionError, NotImplementedError, OverflowError, ZeroDivisionError, zlib.error)
PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?$|\bpage\s+\d+\s+of\s+\d+\b", re.I)
NUMBERED = re.compile(r"^(?P<number>\d{1,2}(?:\.\d{1,2})*)\.?\s+(?P<text>[A-Z].*)$")
EDGE_LINES = 3
"""Running headers and footers are looked for among this many lines at a page's top and bottom."""
MAX_HEADING_WORDS = 14


@dataclass(frozen=True)
class Line:
    """One line of a page's text layer, with the type it is set in."""

    page: int
    y: float
    x: float
    text: str
    size: float
    bold: bool


def _reader(path: str | Path, data: bytes) -> pypdf.PdfReader:
    if not data.strip():
        raise ParseError(path, 1, "the file is empty")
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise ParseError(path, 1, "not a PDF: the file does not start with '%PDF'")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise ParseError(path, 1, "the PDF is encrypted with a password; save an unprotected copy")
        reader.pages[0]  # noqa: B018 - a PDF whose page tree is broken fails here, not later
    except pypdf.errors.DependencyError as error:
        raise ParseError(path, 1, f"the PDF is encrypted and cannot be opened: {error}") from None
    except BROKEN as error:
        raise ParseError(path, 1, f"not a readable PDF: {error or type(error).__name__}") from None
    return reader


def _page_lines(number: int, page: pypdf.PageObject) -> list[Line]:
    fragments: list[tuple[float, float, str, float, bool]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if not text.strip():
            return
        scale = abs(tm[3] * cm[3]) or 1.0
        name = str(font.get("/BaseFont", "")) if isinstance(font, dict) else ""
        bold = "bold" in name.lower() or "black" in name.lower() or "heavy" in name.lower()
        y, x = round(tm[5] * cm[3] + cm[5], 1), tm[4] * cm[0] + cm[4]
        for piece in text.splitlines():
            if piece.strip():
                fragments.append((y, x, piece, float(size or 0) * scale, bold))

    page.extract_text(visitor_text=visit)
    lines: list[Line] = []
    for y, x, text, size, bold in sorted(fragments, key=lambda f: (-f[0], f[1])):
        last = lines[-1] if lines else None
        if last and abs(last.y - y) < 1.0:
            # a bullet glyph alone does not make a line plain, nor does a bold 'Label:' in front
            joined = f"{last.text} {text.strip()}" if not last.text.endswith(" ") else last.text + text.strip()
            keep_bold = last.bold and bold or (BULLET.match(last.text + " x") is not None and bold)
            lines[-1] = Line(number, last.y, last.x, joined, max(last.size, size), keep_bold)
        else:
            lines.append(Line(number, y, x, " ".join(text.split()), size, bold))
    return [Line(ln.page, ln.y, ln.x, " ".join(ln.text.split()), ln.size, ln.bold) for ln in lines]


def _running(pages: list[list[Line]]) -> set[tuple[int, int]]:
    """(page, index) of running headers and footers: lines at a page's edge written on several
    pages alike (page numbers aside), and page-number lines."""

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", line.text.lower())

    edges = [
        [(index, line) for index, line in enumerate(lines) if index < EDGE_LINES or index >= len(lines) - EDGE_LINES]
        for lines in pages
    ]
    seen = Counter(k for edge in edges for k in {key(line) for _, line in edge})
    return {
        (line.page, index)
        for edge in edges
        for index, line in edge
        if (len(pages) > 1 and seen[key(line)] > 1) or PAGE_NUMBER.search(line.text)
    }


def _is_heading_style(line: Line, body: float) -> bool:
    words = len(line.text.split())
    if words > MAX_HEADING_WORDS or BULLET.match(line.text) and not NUMBERED.match(line.text):
        return False
    return line.size >= body * 1.15 or (line.bold and line.size >= body * 0.95 and not line.text.endswith(","))


def _is_title_like(text: str) -> bool:
    return len(text.split()) <= MAX_HEADING_WORDS and text[-1] not in ".,;:"


def _title_of_name(path: str | Path) -> str:
    """'ear-wax.pdf' is titled 'Ear wax' when the leaflet gives no title of its own."""
    words = re.sub(r"[-_]+", " ", Path(path).stem).strip()
    return words[:1].upper() + words[1:] if words else "Untitled"


def _heading_name(heading: str) -> str:
    """'1. What is a gastroscopy?' is named without its number."""
    match = NUMBERED.match(heading)
    bare = match["text"] if match else heading
    return canonical_section(bare) or bare


def _read_lines(path: str | Path, data: bytes) -> tuple[list[Line], str]:
    """The leaflet's lines less running headers and footers, and the title its metadata gives."""
    reader = _reader(path, data)
    try:
        pages = [_page_lines(number, page) for number, page in enumerate(reader.pages, start=1)]
        metadata = reader.metadata
        meta_title = str(metadata.get("/Title") or "").strip() if metadata is not None else ""
    except BROKEN as error:
        raise ParseError(path, 1, f"not a readable PDF: {error or type(error).__name__}") from None
    if not any(pages):
        raise ParseError(path, 1, "no text layer: the PDF holds only images (a scan?); run it through OCR first")
    running = _running(pages)
    lines = [line for lines in pages for index, line in enumerate(lines) if (line.page, index) not in running]
    if not lines:
        raise ParseError(path, 1, "no text besides running headers and footers")
    return lines, meta_title


def _body_size(lines: list[Line]) -> float:
    """The type size most of the text is set in."""
    body: Counter[float] = Counter()
    for line in lines:
        body[round(line.size, 1)] += len(line.text)
    return body.most_common(1)[0][0]


def _styled(lines: list[Line], body_size: float) -> list[Line]:
    """Lines set as headings; with no type to go by, numbered short lines without a full stop."""
    styled = [line for line in lines if _is_heading_style(line, body_size)]
    if styled:
        return styled
    return [ln for ln in lines if NUMBERED.match(ln.text) and len(ln.text.split()) <= 10 and ln.text[-1] not in ".,;"]


def _title_line(lines: list[Line], body_size: float, meta_title: str) -> Line | None:
    """The largest line on the first page when set larger than the body, else a title-like first line."""
    first_page = [line for line in lines if line.page == lines[0].page]
    largest = max(first_page, key=lambda line: line.size)
    if largest.size >= body_size * 1.15 and not NUMBERED.match(largest.text):
        return largest
    return lines[0] if not meta_title and _is_title_like(lines[0].text) else None


def _spans(
    lines: list[Line], title_line: Line | None, headings: dict[int, tuple[float, bool]], body_size: float
) -> tuple[list[Span], tuple[str, str | None] | None]:
    """Sections under the top heading style (lesser headings label the lines below them),
    wrapped lines joined; and a code line before the first section."""
    top = max(headings.values(), default=None)
    lead = LEAD if top else WHOLE
    spans: list[Span] = [(canonical_section(lead) or lead, lead, 0, [], 0)]
    label: str | None = None
    code: tuple[str, str | None] | None = None
    before_title = title_line is not None
    previous: Line | None = None
    gaps = Counter(round(a.y - b.y) for a, b in zip(lines, lines[1:], strict=False) if a.page == b.page and a.y > b.y)
    spacing = gaps.most_common(1)[0][0] if gaps else body_size * 1.5
    for line in lines:
        if before_title:
            before_title = line is not title_line
            continue
        style = headings.get(id(line))
        name, heading, start, body_lines, end = spans[-1]
        if style is not None and style == top:
            heading = line.text.rstrip(":").strip()
            spans.append((_heading_name(heading), heading, line.page, [], line.page))
            label, previous = None, None
        elif style:
            label, previous = line.text.rstrip(":").strip(), None
        elif len(spans) == 1 and code is None and (found := code_of_line(line.text)):
            code = found
        else:
            follows = (
                previous is not None
                and body_lines
                and previous.page == line.page
                and previous.y - line.y <= spacing * 1.2
                and not BULLET.match(line.text)
            )
            if follows:
                body_lines[-1] = f"{body_lines[-1]} {line.text}"
            else:
                body_lines.append(f"- {label}: {line.text}" if label and not BULLET.match(line.text) else line.text)
            spans[-1] = (name, heading, start or line.page, body_lines, line.page)
            previous = line
    return spans, code


def parse_pdf(path: str | Path, data: bytes) -> Procedure:
    """One PDF leaflet: title, sections by heading, running headers and footers left out."""
    lines, meta_title = _read_lines(path, data)
    body_size = _body_size(lines)
    title_line = _title_line(lines, body_size, meta_title)
    title = title_line.text if title_line else meta_title or _title_of_name(path)
    headings = {
        id(line): (round(line.size, 1), line.bold) for line in _styled(lines, body_size) if line is not title_line
    }
    spans, code = _spans(lines, title_line, headings, body_size)
    if not any(body_lines for _, _, _, body_lines, _ in spans):
        raise ParseError(path, 1, "no text besides the title and headings")
    code_value, system = code if code else code_from_name(path)
    return procedure_of(path, title, code_value, system or "CPT", spans)


def parse_pdf_file(path: str | Path, data: bytes) -> list[Procedure]:
    """The procedure of one '.pdf' leaflet; a broken, encrypted or image-only file raises ParseError."""
    return [parse_pdf(path, data)]
