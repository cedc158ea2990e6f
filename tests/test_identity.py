"""Identity from the file, never from the title: ids from paths, pages sharing a title or a
code all indexed and found, collisions warned about once, ids stable across rebuilds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEmbedder, build_index, searcher_of, start
from fastapi.testclient import TestClient

from procqa import cli
from procqa.ingest.corpus import read_corpus
from procqa.ingest.records import document_id
from procqa.ranking import Searcher
from procqa.settings import Settings

STROKES = ("stroke.md", "nhs/stroke.md", "clinic/stroke-care.md")
KNEES = ("cpt-27447-total-knee-arthroplasty.txt", "knee/replacement.txt")


def stroke_page(source: str) -> str:
    return f"# Stroke\n\n## Symptoms\nFace drooping and arm weakness ({source}).\n\n## Treatment\nClot-busting drugs.\n"


def knee_page(place: str) -> str:
    title = "Knee replacement" if "/" in place else "Total knee arthroplasty"
    return (
        f"{title}\nCPT4 code 27447\n\nSummary\nThe knee joint is replaced.\n\n"
        f"Recovery\nMost people walk with a frame the next day at {place}.\n"
    )


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """Three pages titled 'Stroke' and two pages with one CPT code."""
    folder = tmp_path / "shared"
    for name in STROKES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(stroke_page(name), "utf-8")
    for name in KNEES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(knee_page(name), "utf-8")
    return folder


@pytest.fixture
def searcher(shared: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Searcher:
    return searcher_of(build_index(shared, tmp_path / "index", fake_embedder), fake_embedder)


IDS = {
    "stroke",
    "nhs-stroke",
    "clinic-stroke-care",
    "cpt-27447-total-knee-arthroplasty",
    "knee-replacement",
}


@pytest.mark.parametrize(
    ("path", "line", "expected"),
    [
        (
            "cpt-22849-reinsertion-of-spinal-fixation-device.txt",
            None,
            "cpt-22849-reinsertion-of-spinal-fixation-device",
        ),
        ("nhs/stroke.md", None, "nhs-stroke"),
        ("guide.jsonl", 3, "guide-3"),
        ("Über Uns/Knee (TKA).html", None, "ber-uns-knee-tka"),
        ("___.txt", None, "untitled"),
        ("a" * 200 + ".md", None, "a" * 80),
    ],
)
def test_an_id_is_a_slug_of_the_path_without_its_suffix(path: str, line: int | None, expected: str) -> None:
    assert document_id(path, line) == expected


def test_pages_sharing_a_title_or_a_code_are_all_read_and_warned_of_once(shared: Path) -> None:
    corpus = read_corpus(shared)

    assert {p.id for p in corpus.procedures} == IDS
    assert corpus.problems == ()
    reasons = sorted(w.reason for w in corpus.warnings)
    assert len(reasons) == 2
    assert reasons[0].startswith("2 documents share the code 'CPT 27447'")
    assert reasons[1].startswith("3 documents share the title 'Stroke'")


def test_pages_sharing_a_title_or_a_code_are_all_indexed_and_searchable(searcher: Searcher) -> None:
    assert {p.id for p in searcher.procedures} == IDS
    strokes = {h.passage.procedure_id for h in searcher.search("stroke symptoms", k=10, section="Symptoms")}
    assert strokes == {"stroke", "nhs-stroke", "clinic-stroke-care"}
    knees = {h.passage.procedure_id for h in searcher.search("how long is recovery", k=10, code="27447")}
    assert knees == {"cpt-27447-total-knee-arthroplasty", "knee-replacement"}
    # a query naming the shared code may rank either page first
    assert searcher.search("CPT 27447 recovery", k=1)[0].passage.procedure_id in knees


@pytest.fixture
def client(shared: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    root = build_index(shared, tmp_path / "index", fake_embedder)
    yield from start(Settings(index=root, corpus=shared, _env_file=None), fake_embedder)


def test_every_page_is_listed_and_shown_by_its_own_id(client: TestClient) -> None:
    listed = client.get("/procedures").json()

    assert listed["count"] == 5
    assert {p["id"] for p in listed["data"]} == IDS
    assert [p["title"] for p in listed["data"] if p["id"] in ("stroke", "nhs-stroke")] == ["Stroke", "Stroke"]
    shown = client.get("/procedures/nhs-stroke").json()
    assert "(nhs/stroke.md)" in shown["sections"][0]["text"]


def test_paths_that_make_one_id_get_a_numbered_one_in_path_order(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    for name in ("a b.md", "a-b.md", "a-b-2.md"):
        (folder / name).write_text(f"# Page {name}\n\n## Symptoms\nA cough.\n", "utf-8")
    (folder / "guide.jsonl").write_text(
        "\n".join(json.dumps({"title": "Guide", "sections": {"Summary": f"Part {n}."}}) for n in (1, 2)) + "\n", "utf-8"
    )

    corpus = read_corpus(folder)

    by_file = {
        p.source.split("/")[-1] + (f":{p.record_line}" if p.record_line else ""): p.id for p in corpus.procedures
    }
    assert by_file == {
        "a b.md": "a-b",
        "a-b-2.md": "a-b-2",
        "a-b.md": "a-b-3",
        "guide.jsonl:1": "guide-1",
        "guide.jsonl:2": "guide-2",
    }
    assert [w.reason for w in corpus.warnings][:1] == [
        "its path makes the id a-b, as pages/a b.md does: indexed as a-b-3"
    ]
    assert any("share the title 'Guide'" in w.reason for w in corpus.warnings)


def test_procqa_index_warns_of_shared_titles_and_codes_and_skips_nothing(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "index"
    assert cli.main(["index", "--corpus", str(shared), "--out", str(root)], embedder=FakeEmbedder()) == 0

    captured = capsys.readouterr()
    assert "skipped" not in captured.err
    assert [line.split(": ", 1)[1][:24] for line in captured.err.splitlines() if line.startswith("warning ")] == [
        "3 documents share the ti",
        "2 documents share the co",
    ]
    assert "indexed 5 procedures" in captured.out and "0 file problems, 2 warnings" in captured.out


def test_a_rebuild_keeps_every_id_when_no_file_moves(shared: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    root = build_index(shared, tmp_path / "index", fake_embedder)
    (shared / "nhs" / "stroke.md").write_text(stroke_page("edited"), "utf-8")
    (shared / "clinic" / "new.md").write_text(stroke_page("new"), "utf-8")

    after = searcher_of(build_index(shared, root, fake_embedder), fake_embedder)

    assert {p.id for p in after.procedures} == IDS | {"clinic-new"}
    edited = after.features.passages[after.procedure("nhs-stroke").passage_ids[0]]
    assert (edited.source, "(edited)" in edited.text) == ("shared/nhs/stroke.md", True)
