"""The index store: round trips, FAISS against numpy, incremental builds, versions and `procqa index`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, FakeEmbedder

from procqa import cli
from procqa.errors import IndexMissingError
from procqa.index import BuildReport, current_version, load, prune, rollback, versions
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.ranking import build_index as build
from procqa.settings import get_settings

KNEE = "cpt-27447-total-knee-arthroplasty.txt"
KNEE_RECOVERY_TIME = "- Recovery Time:"


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return super().embed(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the tiny corpus."""
    return Path(shutil.copytree(TINY, tmp_path / "tiny"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "index"


def index_corpus(corpus: Path, root: Path, embedder: FakeEmbedder, *, full: bool = False, keep: int = 3) -> BuildReport:
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    return build(loaded.procedures, passages, embedder, root, full=full, keep=keep, fingerprint=loaded.fingerprint)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


# Round trip and the dense index


def test_a_built_index_loads_back_the_same_passages_and_vectors(corpus: Path, root: Path) -> None:
    embedder = FakeEmbedder()
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    report = build(loaded.procedures, passages, embedder, root, fingerprint=loaded.fingerprint)

    data = load(root, model_id=embedder.model_id)

    assert data.version == report.version == current_version(root).name
    assert data.passages == tuple(passages)
    np.testing.assert_array_equal(data.vectors, embedder.embed([p.embed_text for p in passages]))
    unit_texts = [u for p in passages for u in p.units]
    np.testing.assert_array_equal(data.units, embedder.embed(unit_texts))
    assert [p.id for p in data.procedures] == [p.id for p in loaded.procedures]
    assert data.manifest["model"] == embedder.model_id
    assert data.manifest["dimension"] == embedder.dimension
    assert data.manifest["corpus_fingerprint"] == loaded.fingerprint
    assert (data.manifest["procedures"], data.manifest["passages"]) == (5, len(passages))


@pytest.mark.parametrize(
    "query",
    ["how long is recovery after a knee replacement", "colonoscopy bowel preparation", "wheezing", "xyzzy", "the"],
)
@pytest.mark.parametrize("k", [1, 5, 44])
def test_faiss_top_k_equals_brute_force_numpy(corpus: Path, root: Path, query: str, k: int) -> None:
    embedder = FakeEmbedder()
    index_corpus(corpus, root, embedder)
    data = load(root, model_id=embedder.model_id)
    vector = embedder.embed([query])[0]

    scores, ids = data.dense.search(vector[None, :], k)

    brute = np.asarray(data.vectors) @ vector
    expected = np.argsort(-brute, kind="stable")[:k]
    np.testing.assert_allclose(scores[0], brute[expected], rtol=1e-5, atol=1e-6)
    # where scores tie the order between them is arbitrary, so compare ids within each score
    assert _grouped(ids[0], brute) == _grouped(expected, brute)


def _grouped(ids: np.ndarray, scores: np.ndarray) -> list[frozenset[int]]:
    groups: dict[float, set[int]] = {}
    for i in ids:
        groups.setdefault(round(float(scores[i]), 5), set()).add(int(i))
    return [frozenset(groups[s]) for s in sorted(groups, reverse=True)]


# Incremental builds


def test_first_build_embeds_everything(corpus: Path, root: Path) -> None:
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    distinct_units = {u for p in chunk(read_corpus(corpus).procedures) for u in p.units}
    assert (report.procedures, report.passages) == (5, 44)
    assert (report.added, report.changed, report.removed, report.reused) == (44, 0, 0, 0)
    assert report.embedded == 44 + len(distinct_units)  # a text met twice is embedded once


def test_rebuilding_an_unchanged_corpus_reuses_every_passage(corpus: Path, root: Path) -> None:
    index_corpus(corpus, root, FakeEmbedder())
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    assert (report.added, report.changed, report.removed) == (0, 0, 0)
    assert report.reused == report.passages == 44
    assert report.embedded == 0
    assert embedder.texts == []


def test_changing_one_section_re_embeds_only_that_passage_and_its_new_units(corpus: Path, root: Path) -> None:
    index_corpus(corpus, root, FakeEmbedder())
    edit(corpus / KNEE, KNEE_RECOVERY_TIME, "- Recovery Time: About three months, longer for some.\n- Old Time:")
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    knee_recovery = next(
        p
        for p in load(root).passages
        if (p.procedure_id, p.section) == ("cpt-27447-total-knee-arthroplasty", "Recovery")
    )
    assert (report.added, report.changed, report.removed) == (0, 1, 0)
    assert report.reused == 43
    assert embedder.texts == [
        knee_recovery.embed_text,
        "Recovery Time: About three months, longer for some.",
        next(u for u in knee_recovery.units if u.startswith("Old Time:")),
    ]
    assert report.embedded == 3


def test_changing_two_sections_of_a_document_counts_two_changes(corpus: Path, root: Path) -> None:
    index_corpus(corpus, root, FakeEmbedder())
    edit(corpus / KNEE, KNEE_RECOVERY_TIME, "- Recovery Time: Twelve weeks.\n- Old Time:")
    edit(corpus / KNEE, "\nSetting\n", "\nSetting\nA specialised orthopaedic hospital.\n")
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    assert (report.changed, report.reused) == (2, 42)
    changed = {t.split(":")[0] for t in embedder.texts[:2]}
    assert changed == {"Total knee arthroplasty. Recovery", "Total knee arthroplasty. Setting"}


def test_removing_a_document_reports_its_sections_removed(corpus: Path, root: Path) -> None:
    index_corpus(corpus, root, FakeEmbedder())
    (corpus / KNEE).unlink()
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    assert (report.procedures, report.passages) == (4, 31)
    assert (report.added, report.changed, report.removed, report.embedded) == (0, 0, 13, 0)
    assert "cpt-27447-total-knee-arthroplasty" not in {p.procedure_id for p in load(root).passages}


def test_adding_a_document_embeds_only_its_sections(corpus: Path, root: Path) -> None:
    index_corpus(corpus, root, FakeEmbedder())
    (corpus / "gout.md").write_text("# Gout\n## Symptoms\nA hot, swollen big toe.\n## Treatment\nRest and ice.\n")
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder)

    assert (report.added, report.changed, report.removed, report.reused) == (2, 0, 0, 44)
    assert embedder.texts[:2] == ["Gout. Symptoms: A hot, swollen big toe.", "Gout. Treatment: Rest and ice."]


def test_a_full_build_re_embeds_everything(corpus: Path, root: Path) -> None:
    first = index_corpus(corpus, root, FakeEmbedder())
    embedder = CountingEmbedder()

    report = index_corpus(corpus, root, embedder, full=True)

    assert report.reused == 0
    assert report.embedded == first.embedded
    assert len(embedder.texts) > report.embedded  # the section-intent examples as well


# Versions


def test_a_new_build_moves_current_and_rollback_returns_to_the_previous(corpus: Path, root: Path) -> None:
    first = index_corpus(corpus, root, FakeEmbedder()).version
    second = index_corpus(corpus, root, FakeEmbedder()).version

    assert first < second
    assert current_version(root).name == second
    assert rollback(root) == first
    assert current_version(root).name == first
    assert load(root).version == first


def test_rollback_without_an_older_version_is_refused(corpus: Path, root: Path) -> None:
    only = index_corpus(corpus, root, FakeEmbedder()).version

    with pytest.raises(IndexMissingError, match="no version older than"):
        rollback(root)
    assert current_version(root).name == only


def test_builds_keep_only_the_newest_versions(corpus: Path, root: Path) -> None:
    built = [index_corpus(corpus, root, FakeEmbedder(), keep=2).version for _ in range(4)]

    assert [v.name for v in versions(root)] == built[-2:]
    assert current_version(root).name == built[-1]


def test_prune_never_deletes_the_served_version(corpus: Path, root: Path) -> None:
    built = [index_corpus(corpus, root, FakeEmbedder()).version for _ in range(3)]
    rollback(root)

    prune(root, 1)

    assert [v.name for v in versions(root)] == built[1:]
    assert current_version(root).name == built[1]


def test_without_an_index_load_says_how_to_build_one(root: Path) -> None:
    with pytest.raises(IndexMissingError, match="run `procqa index --out"):
        load(root)


# `procqa index`


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`procqa index` runs under default settings (the fake embedder is handed to it)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fake_model")
def test_procqa_index_builds_and_reports(corpus: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["index", "--corpus", str(corpus), "--out", str(root)], embedder=FakeEmbedder())

    out, err = capsys.readouterr()
    assert status == 0
    assert out.startswith(f"indexed 5 procedures, 44 passages into {root} (version {current_version(root).name})")
    assert "added 44, changed 0, removed 0, reused 0; 0 file problems" in out
    assert err == ""


@pytest.mark.usefixtures("fake_model")
def test_procqa_index_skips_bad_files_and_says_so(corpus: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "broken.txt").write_bytes(b"\xff\xfe binary-ish")

    status = cli.main(["index", "--corpus", str(corpus), "--out", str(root)], embedder=FakeEmbedder())

    out, err = capsys.readouterr()
    assert status == 0
    assert "1 file problems" in out
    assert err == "skipped tiny/broken.txt:1: not UTF-8 text; save the file as UTF-8\n"


@pytest.mark.usefixtures("fake_model")
def test_procqa_index_full_and_rollback(corpus: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", "--corpus", str(corpus), "--out", str(root)], embedder=FakeEmbedder()) == 0
    first = current_version(root).name
    assert cli.main(["index", "--corpus", str(corpus), "--out", str(root), "--full"], embedder=FakeEmbedder()) == 0
    assert "reused 0" in capsys.readouterr().out

    assert cli.main(["index", "--out", str(root), "--rollback"], embedder=FakeEmbedder()) == 0
    assert capsys.readouterr().out == f"index {root} now serves version {first}\n"


@pytest.mark.usefixtures("fake_model")
@pytest.mark.parametrize("content", [None, b"", b"no headings at all\n"])
def test_procqa_index_fails_with_one_line_on_an_empty_or_unreadable_corpus(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    if content is not None:
        (folder / "only.txt").write_bytes(content)

    status = cli.main(["index", "--corpus", str(folder), "--out", str(root)], embedder=FakeEmbedder())

    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    why = "the folder holds no files" if content is None else "1 files seen: 1 could not be read (see above)"
    assert err.splitlines()[-1] == f"procqa: no procedure could be read from {folder}: {why}"
    assert len(err.splitlines()) == (1 if content is None else 2)
    assert not root.exists() or not versions(root)


@pytest.mark.usefixtures("fake_model")
def test_procqa_index_fails_with_one_line_on_a_missing_corpus(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["index", "--corpus", str(tmp_path / "nowhere"), "--out", str(root)], embedder=FakeEmbedder())

    assert status == 1
    assert capsys.readouterr().err == f"procqa: {tmp_path / 'nowhere'}:0: corpus folder does not exist\n"


@pytest.mark.usefixtures("fake_model")
def test_procqa_index_rollback_without_an_index_fails(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", "--out", str(root), "--rollback"], embedder=FakeEmbedder()) == 1
    assert capsys.readouterr().err.startswith(f"procqa: no index at {root}")


@pytest.mark.parametrize("argv", [["index", "--bogus"], ["index", "--corpus"], [], ["reindex"]])
def test_procqa_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv, embedder=FakeEmbedder())

    assert exit_info.value.code == 2
    assert "usage: procqa" in capsys.readouterr().err
