"""Scale: the dense index type follows the collection size, the approximate one keeps recall,
and the synthetic corpus generator writes documents the parser reads back."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import ROOT, FakeEmbedder, load_script

from procqa.index import dense as store
from procqa.index import dense_index, index_type, load, nearest
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.ranking import build_index as build


def clustered(count: int, *, centres: int, seed: int, dimension: int = 384) -> np.ndarray:
    """Random unit vectors scattered around random centres: related texts embed close together,
    unlike vectors drawn uniformly, for which no approximate index beats a scan."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dimension), dtype=np.float32)
    points = middle[rng.integers(0, centres, count)] + 1.2 * rng.standard_normal((count, dimension), dtype=np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]))


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(store, "FLAT_MAX", 2_000)
    return 2_000


def test_a_small_collection_gets_an_exact_index(small_threshold: int) -> None:
    index = dense_index(clustered(small_threshold, centres=20, seed=1))

    assert index_type(index) == "flat-ip"
    assert isinstance(index, faiss.IndexFlatIP)


def test_a_large_collection_gets_an_inverted_file_of_8_bit_codes(small_threshold: int) -> None:
    vectors = clustered(small_threshold + 1, centres=20, seed=1)

    index = dense_index(vectors)

    assert index_type(index) == "ivf-sq8"
    assert index.ntotal == len(vectors)
    assert faiss.downcast_index(index).nprobe >= store.IVF_MIN_NPROBE


def test_the_manifest_records_the_index_type(
    small_threshold: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loaded = read_corpus(ROOT / "corpus")
    passages = chunk(loaded.procedures)
    monkeypatch.setattr(store, "FLAT_MAX", len(passages) - 1)

    build(loaded.procedures, passages, FakeEmbedder(), tmp_path / "index")

    data = load(tmp_path / "index")
    assert data.manifest["index_type"] == "ivf-sq8"
    assert index_type(data.dense) == "ivf-sq8"
    query = FakeEmbedder().embed(["how long is recovery after a knee replacement"])
    scores, ids = nearest(data.dense, data.vectors, query, 5)
    brute = np.asarray(data.vectors) @ query[0]
    np.testing.assert_allclose(scores[0], np.sort(brute)[::-1][:5], rtol=1e-5)


def test_the_approximate_index_finds_the_exact_top_10(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "FLAT_MAX", 1_000)
    vectors = clustered(20_000, centres=200, seed=2)
    queries = clustered(200, centres=200, seed=2)  # same centres, other points
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, 10)

    index = dense_index(vectors)
    _, approximate = index.search(queries, 10)
    _, rescored = nearest(index, vectors, queries, 10)

    assert index_type(index) == "ivf-sq8"
    assert recall_at_10(approximate, truth) >= 0.98
    assert recall_at_10(rescored, truth) >= 0.99


@pytest.mark.parametrize("allowed", [None, "most", "some", "fewer than k"])
def test_an_exact_index_in_memory_answers_as_faiss_does(allowed: str | None) -> None:
    vectors = clustered(3_000, centres=50, seed=3, dimension=32)
    queries = clustered(20, centres=50, seed=4, dimension=32)
    rows = {
        None: None,
        "most": np.arange(0, 3_000, 2),
        "some": np.arange(0, 3_000, 7),
        "fewer than k": np.array([5, 17, 2_999]),
    }[allowed]
    index = faiss.IndexFlatIP(32)
    index.add(vectors)
    params = None
    if rows is not None:
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(rows)

    scores, ids = nearest(index, vectors, queries, 50, allowed=rows)
    faiss_scores, faiss_ids = index.search(queries, 50, params=params)

    np.testing.assert_array_equal(ids, faiss_ids)  # -1 past the allowed rows, as faiss
    np.testing.assert_allclose(scores, faiss_scores, rtol=1e-5, atol=1e-6)


def test_the_synthetic_corpus_parses_into_distinct_procedures(tmp_path: Path) -> None:
    generator = load_script("make_synthetic_corpus")

    assert generator.main([str(tmp_path / "synthetic"), "-n", "300", "--seed", "7"]) == 0

    corpus = read_corpus(tmp_path / "synthetic")
    assert corpus.problems == ()
    assert len(corpus.procedures) == 300
    assert len({p.code for p in corpus.procedures}) == 300
    assert len({p.title for p in corpus.procedures}) == 300
    assert all(len(p.sections) == 13 for p in corpus.procedures)


def test_the_synthetic_corpus_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    generator = load_script("make_synthetic_corpus")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generator.main([str(tmp_path / name), "-n", "20", "--seed", str(seed)])

    def contents(name: str) -> list[tuple[str, str]]:
        return [(p.name, p.read_text("utf-8")) for p in sorted((tmp_path / name).iterdir())]

    assert contents("a") == contents("b")
    assert contents("a") != contents("c")


def test_a_rebuild_keeps_the_training_and_lists_of_unchanged_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "FLAT_MAX", 1_000)
    vectors = clustered(20_000, centres=200, seed=2)
    keys = [f"old-{i}" for i in range(len(vectors))]
    first = dense_index(vectors, keys=keys)
    changed, new_keys = vectors.copy(), list(keys)
    changed[::100] = clustered(200, centres=200, seed=5)  # 1% of the vectors, around other centres
    new_keys[::100] = [f"new-{i}" for i in range(200)]

    second = dense_index(changed, keys=new_keys, previous=(first, keys))

    np.testing.assert_array_equal(
        second.quantizer.reconstruct_n(0, second.nlist), first.quantizer.reconstruct_n(0, first.nlist)
    )
    assert second.ntotal == len(changed)
    queries = clustered(200, centres=200, seed=2)
    exact = faiss.IndexFlatIP(changed.shape[1])
    exact.add(changed)
    _, truth = exact.search(queries, 10)
    assert recall_at_10(nearest(second, changed, queries, 10)[1], truth) >= 0.99
