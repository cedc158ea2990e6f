"""Render the Northfield Community Clinic patient leaflets from Markdown-like sources to PDF.

Each `{slug}.md` under the source folder becomes `{slug}.pdf` under the output folder. The
source format is small and fixed:

    # {Title}
    Procedure code: CPT {code}
    Leaflet ref: NCC-{DEPT}-{NNN}

    ## 1. What is a ...?
    Paragraphs separated by blank lines.
    - plain bullet item
    - **Label:** bullet item with a bold label

The PDFs look like a clinic's printed leaflets: A4, core font Helvetica, a running header
("Northfield Community Clinic - Patient Information") and footer ("Leaflet ref ... | Review
date: March 2027 | Page N of M") on every page. That header and footer are page chrome, not
leaflet content: a PDF parser is expected to drop them.

Rendering is deterministic: a fixed creation date and no random identifiers, so rerunning
gives the same bytes for the same sources and fpdf2 version.

Needs fpdf2 (`.venv/bin/pip install fpdf2`).

Usage: python scripts/make_leaflets.py [--source eval/leaflets/source] [--out eval/leaflets/corpus] [SLUG ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

try:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos
except ImportError:  # pragma: no cover - a usage hint, not a code path
    sys.exit("make_leaflets.py needs fpdf2: .venv/bin/pip install fpdf2")

ROOT = Path(__file__).resolve().parent.parent
CLINIC = "Northfield Community Clinic"
HEADER_TEXT = f"{CLINIC} - Patient Information"
REVIEW_DATE = "March 2027"
CREATION_DATE = datetime(2026, 1, 1, tzinfo=UTC)

# Typographic characters a hand-written source may contain, mapped to what Helvetica's
# latin-1 encoding can show.
ASCII_FOR = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2022": "-",
}  # fmt: skip

BULLET = "\u2022"  # drawn from the core font's own encoding (cp1252 0x95)

# Layout, in millimetres and points.
MARGIN = 20
TITLE_PT = 20
CODE_PT = 10
HEADING_PT = 13
BODY_PT = 10.5
CHROME_PT = 8
LINE_H = 5.4
BULLET_INDENT = 4
BULLET_TEXT_INDENT = 9


@dataclass
class Block:
    kind: str  # "para" | "bullet"
    text: str
    label: str | None = None


@dataclass
class Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Leaflet:
    slug: str
    title: str
    code_line: str
    ref: str
    sections: list[Section]


LABELLED = re.compile(r"^\*\*(?P<label>[^*]+?)\*\*\s*(?P<text>.*)$")


def clean(text: str) -> str:
    for bad, good in ASCII_FOR.items():
        text = text.replace(bad, good)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"character {text[exc.start]!r} cannot be shown in Helvetica: {text!r}") from exc
    return text


def parse(path: Path) -> Leaflet:
    lines = [clean(line.rstrip()) for line in path.read_text(encoding="utf-8").splitlines()]
    title = code_line = ref = None
    sections: list[Section] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            if not sections:
                raise ValueError(f"{path}: text before the first '## ' heading")
            sections[-1].blocks.append(Block("para", " ".join(para)))
            para.clear()

    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("Procedure code:") and not sections:
            code_line = stripped
        elif line.startswith("Leaflet ref:") and not sections:
            ref = stripped.split(":", 1)[1].strip()
        elif line.startswith("## "):
            flush()
            sections.append(Section(line[3:].strip()))
        elif not stripped:
            flush()
        elif stripped.startswith("- "):
            flush()
            if not sections:
                raise ValueError(f"{path}:{n}: bullet before the first '## ' heading")
            item = stripped[2:].strip()
            m = LABELLED.match(item)
            if m:
                sections[-1].blocks.append(Block("bullet", m["text"].strip(), m["label"].strip()))
            else:
                sections[-1].blocks.append(Block("bullet", item))
        else:
            para.append(stripped)
    flush()
    missing = [name for name, value in (("# title", title), ("Procedure code:", code_line), ("Leaflet ref:", ref))
               if not value]  # fmt: skip
    if missing or not sections:
        raise ValueError(f"{path}: missing {', '.join(missing) or 'sections'}")
    return Leaflet(path.stem, title, code_line, ref, sections)  # type: ignore[arg-type]


class LeafletPDF(FPDF):
    def __init__(self, ref: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        # cp1252 (WinAnsiEncoding) rather than latin-1, for the bullet character.
        self.core_fonts_encoding = "windows-1252"
        self.ref = ref
        self.set_margins(MARGIN, MARGIN + 2, MARGIN)
        self.set_auto_page_break(auto=True, margin=MARGIN)

    def header(self) -> None:
        self.set_y(10)
        self.set_font("Helvetica", "", CHROME_PT)
        self.set_text_color(120, 120, 120)
        self.cell(0, 4, HEADER_TEXT, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(190, 190, 190)
        self.line(MARGIN, 15, self.w - MARGIN, 15)
        self.set_text_color(0, 0, 0)
        self.set_y(self.t_margin)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", "", CHROME_PT)
        self.set_text_color(90, 90, 90)
        text = f"Leaflet ref {self.ref} | Review date: {REVIEW_DATE} | Page {self.page_no()} of {{nb}}"
        self.cell(0, 4, text, align="C")
        self.set_text_color(0, 0, 0)


def render(leaflet: Leaflet) -> bytes:
    pdf = LeafletPDF(leaflet.ref)
    pdf.set_creation_date(CREATION_DATE)
    pdf.set_title(leaflet.title)
    pdf.set_author(CLINIC)
    pdf.set_subject(f"Patient information leaflet {leaflet.ref}")
    pdf.set_creator("scripts/make_leaflets.py")
    pdf.set_lang("en-GB")
    pdf.add_page()

    width = pdf.w - 2 * MARGIN
    pdf.set_font("Helvetica", "B", TITLE_PT)
    pdf.multi_cell(width, 9, leaflet.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.set_font("Helvetica", "", CODE_PT)
    pdf.cell(width, 5, leaflet.code_line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)

    for section in leaflet.sections:
        # Keep a heading with at least a few lines of its text.
        if pdf.get_y() > pdf.page_break_trigger - 25:
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", HEADING_PT)
        pdf.multi_cell(width, 7, section.heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
        previous = None
        for block in section.blocks:
            if block.kind == "para":
                if previous is not None:
                    pdf.ln(2)
                pdf.set_font("Helvetica", "", BODY_PT)
                pdf.multi_cell(width, LINE_H, block.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            else:
                if previous == "para":
                    pdf.ln(1.5)
                write_bullet(pdf, block, width)
            previous = block.kind
        pdf.ln(1)
    return bytes(pdf.output())


def write_bullet(pdf: LeafletPDF, block: Block, width: float) -> None:
    if pdf.get_y() + LINE_H > pdf.page_break_trigger:
        pdf.add_page()
    pdf.set_font("Helvetica", "", BODY_PT)
    pdf.set_x(MARGIN + BULLET_INDENT)
    pdf.cell(BULLET_TEXT_INDENT - BULLET_INDENT, LINE_H, BULLET)
    text_x = MARGIN + BULLET_TEXT_INDENT
    # write() wraps at the right margin and returns to the left margin, so move the left
    # margin to give the item a hanging indent.
    pdf.set_left_margin(text_x)
    pdf.set_x(text_x)
    if block.label:
        pdf.set_font("Helvetica", "B", BODY_PT)
        pdf.write(LINE_H, block.label + " ")
        pdf.set_font("Helvetica", "", BODY_PT)
    pdf.write(LINE_H, block.text)
    pdf.ln(LINE_H + 0.8)
    pdf.set_left_margin(MARGIN)
    pdf.set_x(MARGIN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "eval/leaflets/source")
    parser.add_argument("--out", type=Path, default=ROOT / "eval/leaflets/corpus")
    parser.add_argument("slugs", nargs="*", help="render only these leaflets (default: all)")
    args = parser.parse_args(argv)

    sources = sorted(args.source.glob("*.md"))
    if args.slugs:
        wanted = set(args.slugs)
        sources = [p for p in sources if p.stem in wanted]
        unknown = wanted - {p.stem for p in sources}
        if unknown:
            print(f"no source for: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    if not sources:
        print(f"no *.md sources in {args.source}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sources:
        try:
            leaflet = parse(path)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        data = render(leaflet)
        target = args.out / f"{leaflet.slug}.pdf"
        target.write_bytes(data)
        pages = len(re.findall(rb"/Type\s*/Page\b", data))
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {pages} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
