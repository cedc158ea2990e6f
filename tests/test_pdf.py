"""PDF leaflets: headings by type or numbering, running headers and footers, and what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from procqa.ingest import chunk, parse_file, read_corpus

LEAFLETS = Path(__file__).resolve().parent.parent / "eval" / "leaflets" / "corpus"
FUZZ = settings(max_examples=100, deadline=None)
HEADER = "Northfield Community Clinic - Patient Information"


class Leaflet(FPDF):
    """A clinic leaflet with a running header and a 'Page N of M' footer."""

    def header(self) -> None:
        self.set_font("Helvetica", size=8)
        self.cell(0, 6, HEADER, new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.cell(0, 6, f"Leaflet ref NCC-GAST-001 | Review date: March 2027 | Page {self.page_no()} of {{nb}}")


def write(pdf: FPDF, text: str, *, style: str = "", size: float = 10.5) -> None:
    pdf.set_font("Helvetica", style, size)
    pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")


def leaflet(*, numbered_only: bool = False) -> bytes:
    pdf = Leaflet()
    pdf.add_page()
    if not numbered_only:
        write(pdf, "Gastroscopy", style="B", size=20)
    write(pdf, "Procedure code: CPT 43235")
    write(pdf, "This leaflet explains the test. Please read it before you come in.")
    sections = [
        ("What is a gastroscopy?", ["A camera test that looks at your gullet and stomach. " * 6]),
        ("Getting ready", ["- Eating: Do not eat for six hours before the test.", "- Bring a list of your medicines."]),
        ("What are the risks?", ["A sore throat is common. " * 40]),
        ("Afterwards", ["Someone must take you home if you had sedation. " * 60]),
    ]
    for number, (heading, lines) in enumerate(sections, start=1):
        write(pdf, f"{number}. {heading}", style="" if numbered_only else "B", size=10.5 if numbered_only else 13)
        for line in lines:
            write(pdf, line)
        pdf.ln(4)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def gastroscopy():
    procedures, errors = parse_file("leaflets/gastroscopy.pdf", leaflet())
    assert errors == []
    return procedures[0]


def test_a_generated_leaflet_has_its_title_code_and_numbered_headings(gastroscopy) -> None:
    assert (gastroscopy.id, gastroscopy.title, gastroscopy.code) == ("gastroscopy", "Gastroscopy", "43235")
    assert [(s.name, s.heading) for s in gastroscopy.sections] == [
        ("Summary", "Overview"),
        ("What is a gastroscopy?", "1. What is a gastroscopy?"),
        ("Preparation", "2. Getting ready"),
        ("What are the risks?", "3. What are the risks?"),
        ("Afterwards", "4. Afterwards"),
    ]
    assert gastroscopy.sections[0].text == "This leaflet explains the test.\nPlease read it before you come in."


def test_sections_span_pages_and_wrapped_lines_join_into_sentences(gastroscopy) -> None:
    pages = [(s.line_start, s.line_end) for s in gastroscopy.sections]

    assert pages[0] == (1, 1) and pages[-1][1] == 2
    risks = gastroscopy.sections[3]
    assert {u.text for u in risks.units} == {"A sore throat is common."}
    assert len(risks.units) == 40


def test_bullets_keep_their_labels(gastroscopy) -> None:
    assert [(u.label, u.text) for u in gastroscopy.section("Preparation").units] == [
        ("Eating", "Do not eat for six hours before the test."),
        (None, "Bring a list of your medicines."),
    ]


def test_running_headers_and_footers_reach_no_passage(gastroscopy) -> None:
    for passage in chunk([gastroscopy]):
        assert HEADER not in passage.text
        assert "Page" not in passage.text and "Review date" not in passage.text


def test_numbered_lines_are_headings_when_the_type_does_not_tell() -> None:
    procedures, errors = parse_file("leaflets/plain.pdf", leaflet(numbered_only=True))

    assert errors == []
    assert [s.heading for s in procedures[0].sections][1:] == [
        "1. What is a gastroscopy?",
        "2. Getting ready",
        "3. What are the risks?",
        "4. Afterwards",
    ]


def test_a_leaflet_without_headings_is_one_text_section() -> None:
    pdf = FPDF()
    pdf.add_page()
    write(pdf, "Ear wax softens with olive oil drops. Use them twice a day for a week.")

    procedures, errors = parse_file("leaflets/ear.pdf", bytes(pdf.output()))

    assert errors == []
    assert [(s.name, s.text) for s in procedures[0].sections] == [
        ("Text", "Ear wax softens with olive oil drops.\nUse them twice a day for a week.")
    ]
    assert procedures[0].title == "Ear"


@pytest.mark.skipif(not LEAFLETS.is_dir(), reason="the leaflet collection is not in this checkout")
def test_the_clinic_leaflets_parse_with_their_numbered_sections_and_no_running_text() -> None:
    corpus = read_corpus(LEAFLETS)

    assert corpus.problems == ()
    assert len(corpus.procedures) == len(list(LEAFLETS.glob("*.pdf")))
    for procedure in corpus.procedures:
        assert procedure.code and len(procedure.sections) >= 6
        assert all(s.heading[0].isdigit() for s in procedure.sections if s.heading != "Overview")
        for section in procedure.sections:
            assert "Northfield Community Clinic" not in section.text
            assert "Review date" not in section.text


# What cannot be read


def image_only() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.image(Image.new("RGB", (40, 20), "grey"), x=10, y=10, w=80)
    return bytes(pdf.output())


def encrypted() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    write(pdf, "Secret leaflet")
    pdf.set_encryption(owner_password="owner", user_password="user")
    return bytes(pdf.output())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"Just some text, saved as .pdf", "not a PDF"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF", "not a readable PDF"),
        (image_only(), "no text layer"),
        (encrypted(), "the PDF is encrypted"),
    ],
    ids=["empty", "not-pdf", "broken", "image-only", "encrypted"],
)
def test_unreadable_leaflets_are_reported_with_a_reason(data: bytes, reason: str) -> None:
    procedures, errors = parse_file("leaflets/bad.pdf", data)

    assert procedures == []
    assert [(e.path, e.line) for e in errors] == [("leaflets/bad.pdf", 1)]
    assert errors[0].reason.startswith(reason), errors[0].reason


def test_a_broken_leaflet_does_not_stop_the_rest_of_the_collection(tmp_path: Path) -> None:
    (tmp_path / "gastroscopy.pdf").write_bytes(leaflet())
    (tmp_path / "scan.pdf").write_bytes(image_only())

    corpus = read_corpus(tmp_path)

    assert [p.id for p in corpus.procedures] == ["gastroscopy"]
    assert [e.path.split("/")[-1] for e in corpus.problems] == ["scan.pdf"]


# Fuzzing

SEED = leaflet()


def check(name: str, data: bytes) -> None:
    procedures, errors = parse_file(name, data)
    assert procedures or errors
    for error in errors:
        assert error.path == name and error.reason and error.line >= 0
    for procedure in procedures:
        assert procedure.title.strip() and procedure.sections
        assert all(section.units for section in procedure.sections)
        assert len({s.name for s in procedure.sections}) == len(procedure.sections)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_pdf_parser(data: bytes) -> None:
    check("leaflets/fuzzed.pdf", b"%PDF-1.4\n" + data)


@FUZZ
@given(cut=st.integers(0, len(SEED)))
def test_a_truncated_leaflet_parses_or_is_reported(cut: int) -> None:
    check("leaflets/cut.pdf", SEED[:cut])


@FUZZ
@given(at=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.binary(min_size=1, max_size=8)), max_size=6))
def test_a_leaflet_with_damaged_bytes_parses_or_is_reported(at: list[tuple[int, bytes]]) -> None:
    data = bytearray(SEED)
    for start, junk in at:
        data[start : start + len(junk)] = junk
    check("leaflets/damaged.pdf", bytes(data))
