"""Large versions: passages and embeddings read from disk, columns instead of parsed passages,
sampled verification, all giving what the in-memory load gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, FakeEmbedder, build_index

from procqa.errors import IndexCorruptError, IndexMismatchError
from procqa.index import IndexData, WordBags, current_version, load, reader, storage
from procqa.index.storage import Rows, StoredPassages
from procqa.ranking import RankingConfig, RankingFeatures, Searcher
from procqa.ranking.matching import ProcedureMatcher

QUESTIONS = [
    "how long is recovery after a knee replacement",
    "CPT 45378 risks",
    "asthma symptoms",
    "colonscopy risks",
    "who performs the reinsertion of a spinal fixation device",
    "how long does it take",
]


@pytest.fixture
def array(tmp_path: Path) -> tuple[np.ndarray, Rows]:
    values = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    np.save(tmp_path / "a.npy", values)
    return values, Rows(tmp_path / "a.npy")


@pytest.mark.parametrize(
    "key",
    [0, 39, -1, slice(None), slice(5, 9), slice(9, 5), slice(1, 30, 7), [3, 4, 5, 20], [20, 3, 3, 39, 0], []],
    ids=repr,
)
def test_rows_read_from_disk_equal_the_array(array: tuple[np.ndarray, Rows], key: object) -> None:
    values, rows = array
    expected = values[key if not isinstance(key, list) else np.array(key, dtype=np.int64)]
    np.testing.assert_array_equal(rows[key], expected)


def test_rows_behave_as_an_array(array: tuple[np.ndarray, Rows]) -> None:
    values, rows = array
    assert (rows.shape, rows.dtype, len(rows)) == (values.shape, values.dtype, 40)
    np.testing.assert_array_equal(np.asarray(rows), values)
    with pytest.raises(IndexError):
        rows[40]
    with pytest.raises(IndexError):
        rows[[0, 40]]


def test_rows_refuse_a_truncated_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((100, 8), dtype=np.float32))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-64])
    with pytest.raises(ValueError):
        Rows(tmp_path / "a.npy")


def test_word_bags_keep_only_the_words_asked_for() -> None:
    bags = WordBags.of([{"knee", "total", "recovery"}, set(), {"knee", "colon"}])
    assert bags.texts({"knee", "colon"}) == ["knee", "", "colon knee"]
    assert bags.bag(0) == ["knee", "recovery", "total"]


# A large version against the same version loaded in memory


@pytest.fixture
def root(tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    return build_index(TINY, tmp_path / "index", fake_embedder)


def on_disk(monkeypatch: pytest.MonkeyPatch, root: Path) -> IndexData:
    monkeypatch.setattr(reader, "IN_MEMORY_MAX", 0)
    return load(root)


def ranking(searcher: Searcher, question: str, **filters: str) -> list[tuple[int, float, str]]:
    return [(h.passage.id, round(h.score, 6), h.answer) for h in searcher.search(question, k=10, **filters)]


def test_a_large_version_reads_passages_and_embeddings_from_disk(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = load(root)
    disk = on_disk(monkeypatch, root)

    assert isinstance(memory.passages, tuple)
    assert isinstance(disk.passages, StoredPassages)
    assert isinstance(disk.vectors, Rows) and isinstance(disk.units, Rows)
    assert disk.passages == memory.passages
    assert list(disk.passages) == list(memory.passages)
    assert disk.passages[-1] == memory.passages[-1]
    assert disk.passages[2:5] == memory.passages[2:5]
    np.testing.assert_array_equal(np.asarray(disk.vectors), memory.vectors)
    np.testing.assert_array_equal(np.asarray(disk.units), memory.units)


@pytest.mark.parametrize("full_scan", [0, 10**9])
def test_a_large_version_ranks_as_the_version_in_memory(
    root: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: FakeEmbedder, full_scan: int
) -> None:
    config = RankingConfig(full_scan=full_scan)
    memory = Searcher(RankingFeatures.from_index(load(root), config), fake_embedder)
    disk = Searcher(RankingFeatures.from_index(on_disk(monkeypatch, root), config), fake_embedder)

    for question in QUESTIONS:
        assert ranking(disk, question) == ranking(memory, question)
    assert ranking(disk, "recovery", section="Recovery") == ranking(memory, "recovery", section="Recovery")
    assert disk.sections == memory.sections
    assert disk.procedures == memory.procedures


def test_a_version_of_an_older_format_is_refused_with_how_to_rebuild(root: Path) -> None:
    folder = current_version(root)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    (folder / "manifest.json").write_text(json.dumps(manifest | {"format": 1}))

    with pytest.raises(IndexMismatchError, match=r"index format 1, want 3: rebuild it with `procqa index --full`"):
        load(root)


def test_the_stored_word_bags_weigh_names_as_the_whole_text_does(root: Path, fake_embedder: FakeEmbedder) -> None:
    data = load(root)
    features = RankingFeatures.from_index(data)
    names = [[n for n in features.matcher.names if n.procedure == i] for i in range(len(data.procedures))]
    texts = [" ".join(data.passages[i].text for i in p.passage_ids) for p in features.procedures]

    whole = ProcedureMatcher(
        [[" ".join(n.words) for n in group] for group in names], [p.code for p in data.procedures], texts
    )

    assert features.matcher.idf == whole.idf
    for question in QUESTIONS:
        assert np.array_equal(features.matcher.scores(question), whole.scores(question))


def test_a_rebuild_reuses_the_word_bags_of_unchanged_procedures(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = Path(shutil.copytree(TINY, tmp_path / "tiny"))
    root = build_index(corpus, tmp_path / "index", fake_embedder)
    knee = corpus / "cpt-27447-total-knee-arthroplasty.txt"
    knee.write_text(knee.read_text("utf-8") + "\n- Follow-up: a physiotherapist visits weekly.\n", "utf-8")

    build_index(corpus, root, fake_embedder)
    rebuilt = load(root).word_bags()
    build_index(corpus, tmp_path / "fresh", fake_embedder)
    fresh = load(tmp_path / "fresh").word_bags()

    assert [rebuilt.bag(i) for i in range(5)] == [fresh.bag(i) for i in range(5)]
    assert "physiotherapist" in rebuilt.bag(next(i for i, p in enumerate(load(root).procedures) if "27447" in p.id))


# Verification


@pytest.fixture
def sampled(root: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: FakeEmbedder) -> Path:
    """A version whose units.npy is large enough to be checked by sampled blocks."""
    monkeypatch.setattr(storage, "SAMPLED_ABOVE", 1_000)
    monkeypatch.setattr(storage, "SAMPLE_BLOCKS", 2)
    monkeypatch.setattr(storage, "SAMPLE_BYTES", 64)
    build_index(TINY, root, fake_embedder)
    folder = current_version(root)
    assert "sampled" in json.loads((folder / "manifest.json").read_text("utf-8"))["files"]["units.npy"]
    return folder


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_sampled_block_is_found_on_load(sampled: Path) -> None:
    flip(sampled / "units.npy", -1)  # the last block is always sampled

    with pytest.raises(IndexCorruptError, match="checksum mismatch in units.npy"):
        load(sampled.parent.parent)


def test_damage_between_the_samples_is_found_only_by_a_thorough_load(sampled: Path) -> None:
    flip(sampled / "units.npy", (sampled / "units.npy").stat().st_size // 2)

    load(sampled.parent.parent)
    with pytest.raises(IndexCorruptError, match="checksum mismatch in units.npy"):
        load(sampled.parent.parent, thorough=True)


def test_passage_text_is_always_hashed_in_full(sampled: Path) -> None:
    path = sampled / "passages.jsonl"
    text = path.read_text("utf-8")
    middle = text.index('"text": "', len(text) // 2) + len('"text": "')
    while not text[middle].isalpha():
        middle += 1
    path.write_text(text[:middle] + text[middle].swapcase() + text[middle + 1 :], "utf-8")

    with pytest.raises(IndexCorruptError, match="checksum mismatch in passages.jsonl"):
        load(sampled.parent.parent)
