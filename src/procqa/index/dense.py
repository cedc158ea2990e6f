"""The dense index: exact inner product up to FLAT_MAX vectors, an inverted file above."""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from procqa.arrays import best_first
from procqa.index.storage import Rows

FLAT_MAX = 50_000  # more passages than this get an approximate dense index (see dense_index)
IVF_TRAIN_PER_LIST = 40  # k-means sample per inverted list; faiss warns below 39
IVF_TRAIN_ITERATIONS = 10
IVF_MIN_NPROBE = 16  # lists scanned per query; recall@10 stopped rising at 8-16 on clustered vectors
RERANK = 4  # approximate candidates per wanted result that `nearest` rescores exactly


def dense_index(
    vectors: np.ndarray, *, keys: Sequence[str] = (), previous: tuple[faiss.Index, Sequence[str]] | None = None
) -> faiss.Index:
    """Inner product, so cosine similarity on normalised vectors: an exact scan up to FLAT_MAX
    vectors, an inverted file of 8-bit scalar-quantized codes above that.

    On two cores an exact scan of 130k 384-d vectors takes 15 ms a query; the inverted file
    scans about one list in 64, from a quarter of the memory, and builds in minutes where
    HNSW (M=32) took a quarter of an hour at 1.3M vectors. Its 8-bit codes cost about 1% of
    recall@10, which `nearest` wins back by rescoring a few times more candidates exactly.

    Given the content keys of `vectors` and `previous` (an inverted file and its keys), the
    previous training and the list of every vector met before are kept, so only new vectors
    are assigned to lists: a rebuild after a small change skips k-means and most assignment."""
    count, dimension = vectors.shape
    if count <= FLAT_MAX:
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        return flat
    nlist = max(1, min(round(4 * count**0.5), count // IVF_TRAIN_PER_LIST))
    lists = np.full(count, -1, dtype=np.int64)
    old = _ivf(previous[0]) if previous else None
    if (
        old is not None
        and previous
        and len(keys) == count
        and old.d == dimension
        and old.nlist / 2 <= nlist <= old.nlist * 2
    ):
        lists = _old_lists(old, previous[1], keys)
    index: faiss.IndexIVFScalarQuantizer
    if (lists >= 0).sum() * 2 < count or old is None:
        index = _trained_ivf(vectors, nlist)
        lists[:] = -1
    else:
        index = _empty_like(old)
    missing = np.flatnonzero(lists < 0)
    for start in range(0, missing.size, 2**16):
        rows = missing[start : start + 2**16]
        _, assigned = index.quantizer.search(np.ascontiguousarray(vectors[rows], dtype=np.float32), 1)
        lists[rows] = assigned[:, 0]
    for start in range(0, count, 2**16):
        chunk = np.ascontiguousarray(vectors[start : start + 2**16], dtype=np.float32)
        chunk_lists = np.ascontiguousarray(lists[start : start + 2**16])
        index.add_core(len(chunk), faiss.swig_ptr(chunk), None, faiss.swig_ptr(chunk_lists))
    index.nprobe = max(IVF_MIN_NPROBE, index.nlist // 64)
    return index


def _ivf(index: faiss.Index) -> faiss.IndexIVFScalarQuantizer | None:
    found = faiss.downcast_index(index)
    return found if isinstance(found, faiss.IndexIVFScalarQuantizer) else None


def _trained_ivf(vectors: np.ndarray, nlist: int) -> faiss.IndexIVFScalarQuantizer:
    count, dimension = vectors.shape
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = IVF_TRAIN_ITERATIONS
    sample = np.random.default_rng(0).choice(count, min(count, IVF_TRAIN_PER_LIST * nlist), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    return index


def _empty_like(old: faiss.IndexIVFScalarQuantizer) -> faiss.IndexIVFScalarQuantizer:
    """An empty inverted file with the centroids and code ranges of `old`."""
    quantizer = faiss.IndexFlatIP(old.d)
    quantizer.add(old.quantizer.reconstruct_n(0, old.nlist))
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, old.d, old.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.sq.trained = old.sq.trained
    index.is_trained = True
    return index


def _old_lists(old: faiss.IndexIVFScalarQuantizer, old_keys: Sequence[str], keys: Sequence[str]) -> np.ndarray:
    """For each key, the list its vector was in, or -1 where it is new."""
    by_row = np.full(old.ntotal, -1, dtype=np.int64)
    invlists = old.invlists
    assert invlists is not None
    for number in range(old.nlist):
        size = invlists.list_size(number)
        if size:
            ids = invlists.get_ids(number)
            try:
                by_row[faiss.rev_swig_ptr(ids, size).copy()] = number
            finally:
                invlists.release_ids(number, ids)  # type: ignore[attr-defined]  # missing from faiss's stubs
    row_of = {key: row for row, key in enumerate(old_keys)}
    return np.array([by_row[row_of[k]] if k in row_of else -1 for k in keys], dtype=np.int64)


def _scan(
    vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """What an exact index's search gives, by one matrix product over the vectors in memory:
    on two cores a query over 10,000 vectors takes 0.4 ms this way, against faiss's 1-2 ms
    (whose worker threads then keep spinning beside the query's other work)."""
    rows = np.arange(len(vectors)) if allowed is None else np.asarray(allowed, dtype=np.int64)
    if 4 * len(rows) > len(vectors):
        sims = queries @ vectors.T if allowed is None else (queries @ vectors.T)[:, rows]
    else:  # a few rows: gather them rather than score every vector
        sims = queries @ vectors[rows].T
    take = min(k, sims.shape[1])
    scores = np.full((len(queries), k), -np.finfo(np.float32).max, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for row, found in enumerate(sims):
        best = best_first(found, take)
        scores[row, :take], ids[row, :take] = found[best], rows[best]
    return scores, ids


def index_type(index: faiss.Index) -> str:
    """'flat-ip' for an exact index, 'ivf-sq8' for the approximate one."""
    return "ivf-sq8" if isinstance(faiss.downcast_index(index), faiss.IndexIVFScalarQuantizer) else "flat-ip"


def nearest(
    index: faiss.Index, vectors: np.ndarray | Rows, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows for each query by exact inner product: the index proposes RERANK times
    k candidates where it is approximate, and `vectors` rescores them. Only rows in `allowed`
    (ascending) when it is given. Rows are -1 past the end of the index."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    flat = index_type(index) == "flat-ip"
    if flat and isinstance(vectors, np.ndarray) and len(vectors) == index.ntotal:
        return _scan(vectors, queries, k, allowed)
    params = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        ivf = _ivf(index)
        if ivf is None:
            params = faiss.SearchParameters()
        else:
            params = ivf_params = faiss.SearchParametersIVF()
            ivf_params.nprobe = ivf.nprobe
        params.sel = selector
    if flat:
        return index.search(queries, k, params=params)
    _, candidates = index.search(queries, k * RERANK, params=params)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
        found = np.sort(found[found >= 0])
        exact = np.asarray(vectors[found], dtype=np.float32) @ query
        best = np.argsort(-exact, kind="stable")[:k]
        scores[row, : best.size], ids[row, : best.size] = exact[best], found[best]
    return scores, ids
