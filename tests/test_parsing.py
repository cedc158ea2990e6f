"""Parsing: the page layout, Markdown and JSON Lines, malformed files, and the sample corpus."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, SEED

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest import parse_file
from procqa.ingest.corpus import read_corpus
from procqa.ingest.records import normalise_system
from procqa.ingest.sections import CANONICAL

CORPUS = ROOT / "corpus"
QUESTIONS = ROOT / "eval" / "questions.jsonl"
# A copy of the shared corpus manifest, so the suite runs where the shared folder is absent.
MANIFEST = Path(__file__).parent / "data" / "corpus-manifest.tsv"


def parse_one(name: str, text: str | bytes) -> Procedure:
    """The single procedure of a file, failing the test on any reported problem."""
    data = text.encode() if isinstance(text, str) else text
    procedures, errors = parse_file(name, data)
    assert errors == []
    assert len(procedures) == 1
    return procedures[0]


def problem_of(name: str, data: bytes) -> ParseError:
    """The single problem of a file that must not parse."""
    procedures, errors = parse_file(name, data)
    assert procedures == []
    assert len(errors) == 1
    return errors[0]


def page(*sections: str, title: str = "Knee replacement", code_line: str = "CPT4 code 27447") -> str:
    """A page-layout document with the given heading/body blocks."""
    return "\n".join(["Search all medical codes", title, code_line, *sections]) + "\n"


@pytest.fixture(scope="module")
def seed() -> Procedure:
    return parse_one(f"corpus/{SEED.name}", SEED.read_bytes())


# The seed document


def test_seed_has_the_thirteen_canonical_sections_in_order(seed: Procedure) -> None:
    assert [s.name for s in seed.sections] == list(CANONICAL)
    assert [s.heading for s in seed.sections] == list(CANONICAL)


def test_seed_title_name_and_code(seed: Procedure) -> None:
    assert seed.title == "Reinsertion of spinal fixation device"
    assert seed.name == "Reinsertion of Spinal Fixation Device"
    assert (seed.id, seed.code, seed.code_system) == ("cpt-22849-reinsertion-of-spinal-fixation-device", "22849", "CPT")
    assert seed.source == f"corpus/{SEED.name}"


def test_seed_sections_know_their_lines(seed: Procedure) -> None:
    summary, recovery = seed.section("Summary"), seed.section("Recovery")
    assert summary is not None and recovery is not None

    assert (summary.line_start, summary.line_end) == (6, 7)
    assert (recovery.line_start, recovery.line_end) == (38, 41)
    lines = SEED.read_text("utf-8").splitlines()
    assert lines[recovery.line_start - 1] == "Recovery"
    assert lines[recovery.line_end - 1].startswith("- Follow-up:")


def test_seed_labelled_bullets_keep_their_labels(seed: Procedure) -> None:
    recovery = seed.section("Recovery")
    assert recovery is not None

    assert [u.label for u in recovery.units] == ["Post-Procedure Care", "Recovery Time", "Follow-up"]
    assert recovery.units[1].text.startswith("Typically ranges from a few weeks to several months")
    assert "Recovery Time: Typically ranges" in recovery.text


def test_seed_procedure_description_keeps_its_labels_and_the_tools_line(seed: Procedure) -> None:
    description = seed.section("Procedure Description")
    assert description is not None

    labels = [u.label for u in description.units]
    assert labels[:5] == ["Anesthesia", "Incision", "Removal of Old Hardware", "Reinsertion", "Closure"]
    assert description.units[0].text == "General anesthesia is typically administered."
    plain = [u.text for u in description.units if u.label is None]
    assert plain[0].startswith("Tools include spinal fixation devices like screws, rods, plates")
    assert plain[1].startswith("Imaging technology such as fluoroscopy")


def test_seed_personnel_bullets_have_no_labels(seed: Procedure) -> None:
    personnel = seed.section("Personnel")
    assert personnel is not None

    assert [u.label for u in personnel.units] == [None] * 4
    assert personnel.units[0].text.startswith("Surgeon (particularly an orthopedic")
    assert personnel.units[2].text == "Anesthesiologist"


def test_seed_chrome_line_is_not_the_title(seed: Procedure) -> None:
    assert all("Search all medical codes" not in s.text for s in seed.sections)


# The page layout: codes, systems and heading variants


def test_code_comes_from_the_file_name_when_the_code_line_has_none() -> None:
    text = page("Summary", "A knee is replaced.", code_line="CPT4 code")

    procedure = parse_one("cpt-27447-total-knee-arthroplasty.txt", text)

    assert (procedure.id, procedure.code, procedure.code_system) == (
        "cpt-27447-total-knee-arthroplasty",
        "27447",
        "CPT",
    )


def test_code_line_wins_over_the_file_name() -> None:
    procedure = parse_one("cpt-11111-something.txt", page("Summary", "A knee is replaced."))

    assert procedure.code == "27447"


def test_the_id_is_a_slug_of_the_file_name_never_of_the_title() -> None:
    procedure = parse_one("Notes 2.txt", page("Summary", "A knee.", title="Knee: Total Replacement!", code_line=""))

    assert (procedure.id, procedure.code, procedure.code_system) == ("notes-2", None, None)


@pytest.mark.parametrize("system", ["CPT4", "cpt4", "CPT-4", "CPT 4", "CPT"])
def test_cpt4_spellings_are_normalised_to_cpt(system: str) -> None:
    assert normalise_system(system) == "CPT"
    assert parse_one("x.txt", page("Summary", "Text.", code_line=f"{system} code 27447")).code_system == "CPT"


@pytest.mark.parametrize(
    ("heading", "canonical"),
    [
        ("Risks", "Risks and Complications"),
        ("Risks & Complications", "Risks and Complications"),
        ("RISKS AND COMPLICATIONS:", "Risks and Complications"),
        ("recovery and aftercare", "Recovery"),
        ("Recovery and Aftercare:", "Recovery"),
        ("recovery", "Recovery"),
        ("  Summary:  ", "Summary"),
        ("PROCEDURE DESCRIPTION", "Procedure Description"),
    ],
)
def test_heading_variants_map_to_canonical_names(heading: str, canonical: str) -> None:
    procedure = parse_one("x.txt", page("Setting", "In hospital.", heading, "Some text."))

    assert procedure.sections[-1].name == canonical
    assert procedure.sections[-1].heading == heading.strip()


def test_repeated_sections_are_merged_and_empty_ones_dropped() -> None:
    text = page("Summary", "First part.", "Recovery", "Setting", "In hospital.", "Summary", "Second part.")

    procedure = parse_one("x.txt", text)

    assert [s.name for s in procedure.sections] == ["Summary", "Setting"]
    summary = procedure.sections[0]
    assert [u.text for u in summary.units] == ["First part.", "Second part."]
    assert (summary.line_start, summary.line_end) == (4, 10)


# Markdown


ASTHMA = """---
title: Asthma attack care
code: J45
code_system: icd-10-pcs
aliases: [wheeze, reactive airway]
---
# Ignored because the front matter has a title

## Symptoms
- Wheezing: A whistling sound when breathing out.
Coughing is often worse at night.

## Treatment:
Inhaled corticosteroids reduce swelling.

## Risks & Complications
Severe attacks need emergency care.
"""


def test_markdown_keeps_custom_headings_and_maps_known_variants() -> None:
    procedure = parse_one("asthma.md", ASTHMA)

    assert procedure.title == "Asthma attack care"
    assert [s.name for s in procedure.sections] == ["Symptoms", "Treatment", "Risks and Complications"]
    symptoms = procedure.sections[0]
    assert [(u.label, u.text) for u in symptoms.units] == [
        ("Wheezing", "A whistling sound when breathing out."),
        (None, "Coughing is often worse at night."),
    ]
    assert symptoms.line_start == 9


def test_markdown_front_matter_sets_code_system_and_aliases() -> None:
    procedure = parse_one("asthma.md", ASTHMA)

    assert (procedure.id, procedure.code, procedure.code_system) == ("asthma", "J45", "ICD-10-PCS")
    assert procedure.aliases == ("wheeze", "reactive airway")


def test_markdown_title_can_come_from_a_heading() -> None:
    procedure = parse_one("cpt-27447-knee.md", "# Total knee replacement\n\n## Recovery\nSix weeks.\n")

    assert (procedure.title, procedure.code, procedure.code_system) == ("Total knee replacement", "27447", "CPT")


@pytest.mark.parametrize(
    "text",
    [
        "---\ntitle: Gout\n---\n# Symptoms\nA hot toe.\n# Treatment\nRest.\n",
        "---\ntitle: Gout\n---\n# Gout\n## Symptoms\nA hot toe.\n## Treatment\nRest.\n",
        "# Gout\n# Symptoms\nA hot toe.\n# Treatment\nRest.\n",
        "# Gout\n### Symptoms\nA hot toe.\n### Treatment ###\nRest.\n",
    ],
)
def test_markdown_sections_are_the_top_heading_level_after_the_title(text: str) -> None:
    procedure = parse_one("gout.md", text)

    assert procedure.title == "Gout"
    assert [(s.name, s.text) for s in procedure.sections] == [("Symptoms", "A hot toe."), ("Treatment", "Rest.")]


def test_markdown_text_before_the_first_heading_is_an_overview_section_less_its_code_line() -> None:
    text = "# Gastroscopy\nProcedure code: CPT 43235\nA camera test.\n\n## Risks\nA sore throat.\n"

    procedure = parse_one("gastroscopy.md", text)

    assert (procedure.id, procedure.code, procedure.code_system) == ("gastroscopy", "43235", "CPT")
    assert [(s.name, s.heading, s.text, s.line_start) for s in procedure.sections] == [
        ("Summary", "Overview", "A camera test.", 3),
        ("Risks and Complications", "Risks", "A sore throat.", 5),
    ]


def test_markdown_subheadings_become_labels() -> None:
    procedure = parse_one("x.md", "# Knee\n## Recovery\n### Recovery Time\nSix weeks.\n")

    assert [(u.label, u.text) for u in procedure.sections[0].units] == [("Recovery Time", "Six weeks.")]


# JSON Lines


def jsonl(*records: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


def test_jsonl_holds_several_procedures_and_reports_a_bad_line() -> None:
    data = jsonl(
        {"title": "Carpal tunnel release", "code": "64721", "sections": [{"name": "Summary", "text": "Cuts."}]},
        '{"title": "broken", ',
        {"title": "Asthma", "sections": {"Symptoms": "Wheezing.", "Aftercare": "- Follow-up: In a week."}},
    )

    procedures, errors = parse_file("more.jsonl", data)

    assert [(p.id, p.code_system) for p in procedures] == [("more-1", "CPT"), ("more-3", None)]
    assert [s.name for s in procedures[1].sections] == ["Symptoms", "Recovery"]
    assert procedures[1].sections[1].units[0].label == "Follow-up"
    assert [(e.path, e.line) for e in errors] == [("more.jsonl", 2)]
    assert "not valid JSON" in errors[0].reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("[1, 2]", "each line must be a JSON object"),
        ('{"sections": [{"name": "Summary", "text": "x"}]}', "missing 'title'"),
        ('{"title": "T"}', "'sections' must be a non-empty list"),
        ('{"title": "T", "sections": []}', "'sections' must be a non-empty list"),
        ('{"title": "T", "sections": [{"text": "x"}]}', "every section needs a 'name'"),
        ('{"title": "T", "sections": [{"name": "Summary", "text": ""}]}', "no section has any text"),
    ],
)
def test_jsonl_record_problems_name_the_line(record: str, reason: str) -> None:
    good = {"title": "Good", "sections": [{"name": "Summary", "text": "Fine."}]}

    procedures, errors = parse_file("x.jsonl", jsonl(good, record))

    assert [p.title for p in procedures] == ["Good"]
    assert [(e.path, e.line) for e in errors] == [("x.jsonl", 2)]
    assert reason in errors[0].reason


# Malformed files: a ParseError naming the file and line, never an exception


@pytest.mark.parametrize(
    ("name", "data", "line", "reason"),
    [
        ("no-title.txt", b"Summary\nText.\n", 1, "no title line"),
        ("code-first.txt", b"CPT4 code 27447\nKnee\nSummary\nText.\n", 1, "no title line"),
        ("no-sections.txt", b"Knee\nCPT4 code 27447\nJust text.\nMore text.\n", 4, "no section headings"),
        ("empty-sections.txt", b"Knee\nSummary\n\nRecovery\n", 2, "no section has any text"),
        ("binary.txt", b"Knee\nSummary\n\x00\x01\x02", 3, "binary file"),
        ("latin1.txt", b"Knee\nSummary\nCaf\xe9 au lait.\n", 3, "not UTF-8"),
        ("empty.txt", b"", 1, "empty"),
        ("blank.txt", b" \n\n\t\n", 1, "empty"),
        ("bom-only.txt", b"\xef\xbb\xbf", 1, "empty"),
        ("unicode-spaces.jsonl", "\x1f\n\u3000\n".encode(), 1, "empty"),
        ("no-title.md", b"## Summary\nText.\n", 1, "no title"),
        ("no-sections.md", b"# Knee\nText.\n", 1, "no '## Section' headings"),
        ("open-front-matter.md", b"---\ntitle: Knee\n# Knee\n", 1, "never closed"),
        ("bad-yaml.md", b"---\ntitle: [unclosed\n---\n# Knee\n## Summary\nx\n", 1, "not valid YAML"),
        ("list-front-matter.md", b"---\n- a\n---\n# Knee\n## Summary\nx\n", 1, "must be a mapping"),
    ],
)
def test_malformed_files_give_a_parse_error_with_file_and_line(name: str, data: bytes, line: int, reason: str) -> None:
    error = problem_of(name, data)

    assert (error.path, error.line) == (name, line)
    assert reason in error.reason
    assert str(error).startswith(f"{name}:{line}: ")


def test_a_title_that_is_not_text_is_refused_without_expanding_it() -> None:
    # Nine levels of YAML aliases name 9**9 strings in a few hundred bytes.
    lines = ["---", "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines += ["title: *l8", "---", "## Summary", "Text."]

    error = problem_of("laughs.md", "\n".join(lines).encode())

    assert "'title' must be text" in error.reason


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("digits.jsonl", b'{"title": ' + b"1" * 5000 + b"}"),
        ("deep.jsonl", b"[" * 100_000),
        ("digits.md", b"---\ntitle: " + b"1" * 5000 + b"\n---\n## Summary\nx\n"),
        ("deep.md", b"---\ntitle: " + b"[" * 1_000 + b"\n---\n## Summary\nx\n"),
    ],
)
def test_values_the_decoders_cannot_hold_are_parse_errors(name: str, data: bytes) -> None:
    error = problem_of(name, data)

    assert error.line == 1
    assert error.path == name


# Reading a folder


def test_read_corpus_reports_a_malformed_file_and_reads_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / SEED.name).write_bytes(SEED.read_bytes())
    (folder / "broken.txt").write_bytes(b"Knee\nCaf\xe9\n")
    (folder / "more.jsonl").write_bytes(jsonl({"title": "Asthma", "sections": {"Symptoms": "Wheezing."}}, "nope"))
    (folder / "notes.csv").write_text("ignored,because,of,suffix")

    corpus = read_corpus(folder)

    assert sorted(p.id for p in corpus.procedures) == ["cpt-22849-reinsertion-of-spinal-fixation-device", "more-1"]
    assert sorted(str(e) for e in corpus.problems) == [
        "docs/broken.txt:2: not UTF-8 text; save the file as UTF-8",
        "docs/more.jsonl:2: not valid JSON: Expecting value",
    ]


def test_read_corpus_indexes_documents_sharing_a_code_and_warns_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(SEED.read_bytes().replace(b"CPT4 code\n", b"CPT4 code 22849\n"))
    (tmp_path / SEED.name).write_bytes(SEED.read_bytes())

    corpus = read_corpus(tmp_path)

    assert [(p.id, p.source) for p in corpus.procedures] == [
        ("a", f"{tmp_path.name}/a.txt"),
        ("cpt-22849-reinsertion-of-spinal-fixation-device", f"{tmp_path.name}/{SEED.name}"),
    ]
    assert corpus.problems == ()
    assert [(w.path, w.reason) for w in corpus.warnings] == [
        (
            f"{tmp_path.name}/a.txt",
            "2 documents share the title 'Reinsertion of spinal fixation device' "
            f"(also {tmp_path.name}/{SEED.name}); all are indexed",
        ),
        (
            f"{tmp_path.name}/a.txt",
            f"2 documents share the code 'CPT 22849' (also {tmp_path.name}/{SEED.name}); all are indexed",
        ),
    ]


def test_read_corpus_reports_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / SEED.name).write_bytes(SEED.read_bytes())
    (tmp_path / "locked.txt").write_bytes(b"whatever")
    read_bytes = Path.read_bytes

    def refuse_locked(path: Path) -> bytes:
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse_locked)

    corpus = read_corpus(tmp_path)

    assert [p.id for p in corpus.procedures] == ["cpt-22849-reinsertion-of-spinal-fixation-device"]
    assert [str(e) for e in corpus.problems] == [f"{tmp_path.name}/locked.txt:0: cannot be read: Permission denied"]


def _seed_collection(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / SEED.name).write_bytes(SEED.read_bytes())
    return folder


def test_read_corpus_takes_a_folder_given_with_dot_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_collection(tmp_path / "pages")
    (tmp_path / "scripts").mkdir()
    monkeypatch.chdir(tmp_path / "scripts")

    corpus = read_corpus(Path("../pages"))

    assert [p.id for p in corpus.procedures] == ["cpt-22849-reinsertion-of-spinal-fixation-device"]
    assert corpus.problems == ()


def test_read_corpus_takes_a_folder_under_a_hidden_folder(tmp_path: Path) -> None:
    folder = _seed_collection(tmp_path / ".local" / "share" / "pages")

    assert [p.id for p in read_corpus(folder).procedures] == ["cpt-22849-reinsertion-of-spinal-fixation-device"]
    assert [p.id for p in read_corpus(tmp_path / ".local" / ".." / ".local" / "share" / "pages").procedures] == [
        "cpt-22849-reinsertion-of-spinal-fixation-device"
    ]


def test_read_corpus_takes_a_symlinked_folder(tmp_path: Path) -> None:
    _seed_collection(tmp_path / "real")
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)

    assert [p.id for p in read_corpus(tmp_path / "linked").procedures] == [
        "cpt-22849-reinsertion-of-spinal-fixation-device"
    ]


def test_read_corpus_skips_hidden_files_and_folders_inside_the_collection(tmp_path: Path) -> None:
    folder = _seed_collection(tmp_path / "pages")
    (folder / ".draft.txt").write_bytes(SEED.read_bytes().replace(b"22849", b"22850"))
    (folder / ".git").mkdir()
    (folder / ".git" / "old.txt").write_bytes(SEED.read_bytes().replace(b"22849", b"22851"))

    corpus = read_corpus(folder)

    assert [p.id for p in corpus.procedures] == ["cpt-22849-reinsertion-of-spinal-fixation-device"]
    assert corpus.passed_over == Counter({"hidden or under hidden folders": 2})


def test_an_empty_collection_says_what_was_seen_and_why_it_was_passed_over(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    (folder / ".hidden").mkdir(parents=True)
    (folder / ".hidden" / "a.txt").write_bytes(SEED.read_bytes())
    (folder / "notes.csv").write_text("a,b")
    (folder / "broken.txt").write_bytes(b"\xff\xfe")

    corpus = read_corpus(folder)

    assert corpus.procedures == ()
    assert corpus.why_empty() == (
        "3 files seen: 1 hidden or under hidden folders, "
        "1 not .txt/.md/.markdown/.jsonl/.html/.htm/.pdf files, 1 could not be read (see above)"
    )
    assert read_corpus(tmp_path / "pages" / ".hidden" / "..").why_empty().startswith("3 files seen")


def test_read_corpus_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="does not exist"):
        read_corpus(tmp_path / "nowhere")


# The sample corpus


@pytest.fixture(scope="module")
def corpus() -> list[Procedure]:
    loaded = read_corpus(CORPUS)
    assert loaded.problems == ()
    return list(loaded.procedures)


def test_seed_in_the_corpus_is_the_original_seed() -> None:
    digest = hashlib.sha256(SEED.read_bytes()).hexdigest()

    assert digest == "a2c55faf17dcf2a75ce3c47800422000069f7fdfb1f8d32f5e9ce387a16c5e59"


def test_every_corpus_document_has_the_thirteen_canonical_sections(corpus: list[Procedure]) -> None:
    files = sorted(p.name for p in CORPUS.glob("*.txt"))

    assert len(corpus) == len(files) == 100
    for procedure in corpus:
        assert [s.name for s in procedure.sections] == list(CANONICAL), procedure.source
        assert all(s.units for s in procedure.sections), procedure.source
        assert procedure.code_system == "CPT"
        assert Path(procedure.source).name.startswith(f"cpt-{procedure.code}-")


def manifest_rows() -> list[dict[str, str]]:
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_corpus_covers_every_manifest_row(corpus: list[Procedure]) -> None:
    by_code = {p.code: p for p in corpus}
    rows = manifest_rows()

    assert len(rows) == 100
    for row in rows:
        procedure = by_code.get(row["code"])
        assert procedure is not None, f"no corpus file for {row['code_system']} {row['code']} {row['title']}"
        assert procedure.code_system == row["code_system"]
        assert procedure.title.casefold() == row["title"].casefold()
        assert Path(procedure.source).name.startswith(f"{row['code_system'].lower()}-{row['code']}-")


@pytest.mark.parametrize(("path", "least"), [(QUESTIONS, 300), (QUESTIONS.with_name("questions-2.jsonl"), 150)])
def test_questions_ask_about_procedures_in_the_corpus(corpus: list[Procedure], path: Path, least: int) -> None:
    questions = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    codes = {p.code for p in corpus}

    assert len(questions) >= least
    assert {q["code"] for q in questions if q["code"]} <= codes
    sections = Counter(s for q in questions for s in q["sections"])
    assert set(sections) == set(CANONICAL)
