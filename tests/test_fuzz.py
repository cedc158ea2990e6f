"""Fuzzing the parsers: whatever the bytes, a file gives procedures and located problems, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import SEED
from hypothesis import given, settings
from hypothesis import strategies as st

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest import SUFFIXES, parse_file
from procqa.ingest.corpus import read_corpus
from procqa.ingest.sections import CANONICAL, canonical_section

FUZZ = settings(max_examples=200, deadline=None)
SEED_BYTES = SEED.read_bytes()
SEED_LINES = SEED_BYTES.decode().splitlines()
SEED_NAME = f"corpus/{SEED.name}"
NAMES = [f"docs/cpt-12345-fuzzed{suffix}" for suffix in SUFFIXES] + ["docs/plain.txt"]

# Lines that steer the parsers into their interesting branches when shuffled together.
FRAGMENTS = [
    "Search all medical codes",
    "Knee replacement",
    "CPT4 code",
    "CPT4 code 27447",
    "HCPCS code: G0105",
    "Name of the Procedure:",
    "Name of the Procedure: Total knee arthroplasty",
    *CANONICAL,
    "Risks & Complications:",
    "recovery and aftercare",
    "- Recovery Time: Six weeks.",
    "- Surgical nurses",
    "1. First step: Cut.",
    "* **Bold**: text",
    "Plain sentence one. Plain sentence two!",
    "---",
    "...",
    "title: Knee",
    "aliases: [a, b]",
    "title: &x [*x]",
    "# Knee",
    "## Symptoms",
    "### Recovery Time",
    '{"title": "Knee", "sections": [{"name": "Summary", "text": "x"}]}',
    '{"title": "Knee", "sections": {"Recovery": "- Follow-up: a week"}}',
    '{"title": ',
    "[1, 2, 3]",
    "",
    "   ",
    "\t",
]


def check_outcome(path: str, data: bytes) -> tuple[list[Procedure], list[ParseError]]:
    """parse_file's result, checked for the shape every input must give."""
    procedures, errors = parse_file(path, data)

    assert isinstance(procedures, list) and isinstance(errors, list)
    assert procedures or errors
    for error in errors:
        assert isinstance(error, ParseError)
        assert error.path == path
        assert error.line >= 0
        assert error.reason
    for procedure in procedures:
        assert procedure.title.strip()
        assert procedure.sections
        assert len({s.name for s in procedure.sections}) == len(procedure.sections)
        assert all(section.units for section in procedure.sections)
        assert procedure.source == path
    return procedures, errors


# Arbitrary input


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(name: str, data: bytes) -> None:
    check_outcome(name, data)


@FUZZ
@given(name=st.sampled_from(NAMES), text=st.text(max_size=2000))
def test_arbitrary_text_never_crashes_the_parser(name: str, text: str) -> None:
    check_outcome(name, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(
    name=st.sampled_from(NAMES),
    lines=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40)), max_size=40),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_shuffled_document_lines_never_crash_the_parser(name: str, lines: list[str], ending: str) -> None:
    check_outcome(name, ending.join(lines).encode("utf-8", "surrogatepass"))


# The seed document, damaged


def seed_procedure() -> Procedure:
    procedures, errors = parse_file(SEED_NAME, SEED_BYTES)
    assert errors == []
    return procedures[0]


def test_every_prefix_of_the_seed_parses_or_is_reported() -> None:
    full = seed_procedure()

    for length in range(len(SEED_BYTES) + 1):
        procedures, _ = check_outcome(SEED_NAME, SEED_BYTES[:length])
        if procedures:
            sections = procedures[0].sections
            names = [s.name for s in sections]
            assert names == list(CANONICAL[: len(names)]), length
            # only the section the cut falls in may differ from the whole document
            assert sections[:-1] == full.sections[: len(sections) - 1], length


@FUZZ
@given(endings=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(SEED_LINES), max_size=len(SEED_LINES)))
def test_mixed_line_endings_parse_like_the_seed(endings: list[str]) -> None:
    text = "".join(line + ending for line, ending in zip(SEED_LINES, endings, strict=True))

    procedures, _ = check_outcome(SEED_NAME, text.encode())

    assert procedures == [seed_procedure()]


def test_a_byte_order_mark_is_ignored() -> None:
    procedures, _ = check_outcome(SEED_NAME, b"\xef\xbb\xbf" + SEED_BYTES)

    assert procedures == [seed_procedure()]


@FUZZ
@given(drop=st.sets(st.integers(0, len(SEED_LINES) - 1), max_size=20))
def test_seed_with_lines_removed_never_crashes(drop: set[int]) -> None:
    kept = [line for number, line in enumerate(SEED_LINES) if number not in drop]

    check_outcome(SEED_NAME, "\n".join(kept).encode())


HEADINGS = st.sampled_from([*CANONICAL, "Risks", "RECOVERY:", "Risks & Complications", "recovery and aftercare"])
BODIES = st.lists(st.sampled_from(["Some text.", "- Label: A bullet.", "- A plain bullet.", ""]), max_size=3)


@FUZZ
@given(blocks=st.lists(st.tuples(HEADINGS, BODIES), min_size=1, max_size=20))
def test_duplicate_and_empty_sections_merge_in_first_seen_order(blocks: list[tuple[str, list[str]]]) -> None:
    lines = ["Knee replacement", "CPT4 code 27447"]
    for heading, body in blocks:
        lines += [heading, *body]
    units_by_name: dict[str, int] = {}
    for heading, body in blocks:
        if units := sum(1 for line in body if line):
            name = canonical_section(heading)
            units_by_name[name or heading] = units_by_name.get(name or heading, 0) + units

    procedures, errors = check_outcome("knee.txt", "\n".join(lines).encode())

    if not units_by_name:
        assert [e.reason for e in errors] == ["no section has any text"]
    else:
        sections = procedures[0].sections
        assert [s.name for s in sections] == list(units_by_name)
        assert [len(s.units) for s in sections] == list(units_by_name.values())


# Folders


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from(SUFFIXES), st.binary(max_size=300)), max_size=6))
def test_read_corpus_accounts_for_every_file(files: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        names = set()
        for number, (suffix, data) in enumerate(files):
            (folder / f"doc-{number}{suffix}").write_bytes(data)
            names.add(f"docs/doc-{number}{suffix}")

        corpus = read_corpus(folder)

    seen = {p.source for p in corpus.procedures} | {e.path for e in corpus.problems}
    assert seen == names
    assert all(e.line >= 0 for e in corpus.problems)


@pytest.mark.parametrize("excess", [1, 10_000])
def test_read_corpus_reports_files_over_the_size_limit(tmp_path: Path, excess: int) -> None:
    limit = len(SEED_BYTES)
    (tmp_path / "cpt-22849-at-the-limit.txt").write_bytes(SEED_BYTES)
    (tmp_path / "huge.txt").write_bytes(SEED_BYTES + b"x" * excess)

    corpus = read_corpus(tmp_path, max_bytes=limit)

    assert [p.id for p in corpus.procedures] == ["cpt-22849-at-the-limit"]
    size = limit + excess
    assert [str(e) for e in corpus.problems] == [
        f"{tmp_path.name}/huge.txt:1: file is {size:,} bytes, over the {limit:,}-byte limit"
    ]
