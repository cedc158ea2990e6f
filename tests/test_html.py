"""HTML pages: main content only, title, sections, labelled units, codes, and what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procqa.ingest import chunk, parse_file, read_corpus

PAGES = Path(__file__).parent / "data" / "html"
HOSPITAL = Path(__file__).resolve().parent.parent / "eval" / "hospital" / "corpus"
FUZZ = settings(max_examples=150, deadline=None)
# Text of the site chrome around the articles in tests/data/html.
CHROME = [
    "cookies",
    "Find a Doctor",
    "Pay Your Bill",
    "Search our site",
    "Orthopedic Services",
    "Share",
    "Print",
    "Request an appointment",
    "555-0100",
    "Was this page helpful",
    "Related procedures",
    "Hip Replacement",
    "All rights reserved",
    "Privacy Policy",
    "dataLayer",
    "font-family",
    "Opening hours",
    "Departments",
    "Registered charity",
]


def parse_page(name: str):
    procedures, errors = parse_file(f"pages/{name}", (PAGES / name).read_bytes())
    assert errors == []
    return procedures[0]


def test_no_chrome_text_reaches_a_passage() -> None:
    corpus = read_corpus(PAGES)

    assert corpus.problems == ()
    passages = chunk(corpus.procedures)
    assert {p.procedure_id for p in passages} == {"colonoscopy", "knee-replacement"}
    for passage in passages:
        for chrome in CHROME:
            assert chrome.lower() not in passage.text.lower(), (passage.section, chrome)


def test_no_chrome_text_reaches_a_passage_of_the_hospital_pages() -> None:
    corpus = read_corpus(HOSPITAL)

    assert corpus.problems == ()
    assert len(corpus.procedures) == len(list(HOSPITAL.glob("*.html")))
    for passage in chunk(corpus.procedures):
        for chrome in ["We use cookies", "Patient Portal", "Request an appointment", "Share · Print", "Was this page"]:
            assert chrome not in passage.text, (passage.source, chrome)


def test_title_code_sections_and_lead_of_a_page() -> None:
    procedure = parse_page("knee-replacement.html")

    assert (procedure.id, procedure.title, procedure.code, procedure.code_system) == (
        "knee-replacement",
        "Total Knee Replacement",
        "27447",
        "CPT",
    )
    assert [(s.name, s.heading) for s in procedure.sections] == [
        ("Summary", "Overview"),
        ("Purpose", "Why it's done"),
        ("Preparation", "How to prepare"),
        ("What happens during the procedure", "What happens during the procedure"),
        ("Risks and Complications", "Risks"),
        ("Recovery", "Recovery"),
    ]
    lead = procedure.sections[0]
    assert [u.text for u in lead.units] == [
        "Total knee replacement resurfaces a knee damaged by arthritis with metal and plastic parts.",
        "Most patients walk with support on the day after surgery.",
    ]


def test_headings_keep_their_source_lines() -> None:
    procedure = parse_page("knee-replacement.html")
    lines = (PAGES / "knee-replacement.html").read_text().splitlines()

    for section in procedure.sections[1:]:
        assert f"<h2>{section.heading}</h2>" in lines[section.line_start - 1]
    assert all(s.line_start <= s.line_end for s in procedure.sections)


def test_bold_labels_definition_terms_and_subheadings_label_units() -> None:
    procedure = parse_page("knee-replacement.html")

    preparation = procedure.section("Preparation")
    assert [(u.label, u.text[:22]) for u in preparation.units] == [
        ("Medicines", "Stop taking blood thin"),
        ("Fasting", "Do not eat or drink af"),
        (None, "Arrange for someone to"),
    ]
    risks = procedure.section("Risks and Complications")
    assert [u.label for u in risks.units] == ["Blood clots", "Infection"]
    during = procedure.section("What happens during the procedure")
    assert during.units[-1].render() == "How long it takes: The operation usually takes one to two hours."
    recovery = procedure.section("Recovery")
    assert recovery.units[-1].text == "Keep the wound dry until the stitches are removed."


def test_a_page_with_only_h3_headings_and_no_h1_takes_its_title_and_code_from_its_head() -> None:
    procedure = parse_page("colonoscopy.htm")

    assert (procedure.id, procedure.title) == ("colonoscopy", "Colonoscopy")
    assert [(s.name, s.heading) for s in procedure.sections] == [
        ("Summary", "Overview"),
        ("Preparation", "Getting ready"),
        ("On the day", "On the day"),
        ("Afterwards", "Afterwards"),
    ]


def test_a_page_without_section_headings_is_one_text_section() -> None:
    html = b"<html><head><title>Ear syringing | Clinic</title></head><body><p>Warm water clears wax.</p></body></html>"

    procedures, errors = parse_file("ear.html", html)

    assert errors == []
    assert [(s.name, s.text) for s in procedures[0].sections] == [("Text", "Warm water clears wax.")]
    assert procedures[0].title == "Ear syringing"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"  \n ", "the file is empty"),
        (b"<html>\x00</html>", "binary file"),
        (b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "no main content"),
        (b"<html><body><p>Some text with no title.</p></body></html>", "no title"),
    ],
)
def test_unreadable_pages_are_reported_with_a_reason(data: bytes, reason: str) -> None:
    procedures, errors = parse_file("docs/page.html", data)

    assert procedures == []
    assert [e.path for e in errors] == ["docs/page.html"]
    assert errors[0].reason.startswith(reason)


def test_a_control_character_in_a_page_is_read_as_a_space() -> None:
    # right after the cookie banner, which is dropped: its tail text moves to its parent
    page = SEED.replace(b"</div>", b"</div>\x01", 1)

    procedures, errors = parse_file("knee.html", page)

    assert errors == []
    assert procedures[0].title == "Total Knee Replacement"


def test_a_broken_page_does_not_stop_the_rest_of_the_collection(tmp_path: Path) -> None:
    (tmp_path / "knee.html").write_bytes((PAGES / "knee-replacement.html").read_bytes())
    (tmp_path / "broken.html").write_bytes(b"<html><body><footer>Privacy Policy</footer></body></html>")

    corpus = read_corpus(tmp_path)

    assert [p.id for p in corpus.procedures] == ["knee"]
    assert [(e.path.split("/")[-1], e.line) for e in corpus.problems] == [("broken.html", 1)]


# Fuzzing

SEED = (PAGES / "knee-replacement.html").read_bytes()
TAGS = ["<h1>", "</h1>", "<h2>", "</h2>", "<h3>", "<ul>", "<li>", "<dl>", "<dt>", "<dd>", "<strong>", "</strong>"]
TAGS += ["<nav>", "</nav>", "<footer>", "<script>", "<p>", "Label:", "Procedure code: CPT 27447", "<title>", "</"]


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
def test_arbitrary_bytes_never_crash_the_html_parser(data: bytes) -> None:
    check("docs/fuzzed.html", data)


@FUZZ
@given(pieces=st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=30)), max_size=60))
def test_shuffled_tags_and_text_never_crash_the_html_parser(pieces: list[str]) -> None:
    check("docs/fuzzed.htm", "".join(pieces).encode("utf-8", "surrogatepass"))


@FUZZ
@given(cut=st.integers(0, len(SEED)), start=st.integers(0, len(SEED)), junk=st.binary(max_size=40))
def test_a_damaged_page_parses_or_is_reported(cut: int, start: int, junk: bytes) -> None:
    check("docs/knee.html", SEED[:start] + junk + SEED[start:cut])
