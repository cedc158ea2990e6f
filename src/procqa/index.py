"""The index store: versioned folders of plain files, written atomically, verified on load.

index/
  CURRENT                  name of the version being served
  versions/<version>/
    manifest.json          model, dimension, counts, fingerprint, checksums
    procedures.json        procedure records (no text)
    passages.jsonl         one passage a line, with its content key
    vectors.npy            passage embeddings (float32, row = passage id)
    dense.faiss            FAISS index over vectors.npy
    units.npy              answer-unit embeddings (float32)
    intents.npy            section-intent example embeddings (float32)
    lexical/               bm25s index
    columns/               per passage: procedure, section, line and unit offsets, content keys;
                           per procedure: its distinct words (see WordBags)

Loading reads what every query needs of every passage from columns/; a version of more than
IN_MEMORY_MAX passages keeps passages and embeddings on disk and reads the few a query needs.
Versions written before columns/ existed still load, by parsing passages.jsonl.

Verifying a version on load checks every file's size and sha256, except that a binary array
over 64 MiB (embeddings, FAISS and BM25 arrays) is checked by a digest of 64 sampled blocks:
hashing a 1.3M-passage version in full takes 10 s of two cores at every start and reload.
Passage text is always hashed in full. `load(..., thorough=True)` hashes everything.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from procqa import __version__
from procqa.documents import Passage, Procedure
from procqa.embedding import Embedder
from procqa.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from procqa.ingest.chunking import content_key
from procqa.intent import intent_texts
from procqa.lexical import Lexical
from procqa.matching import words
from procqa.storage import (
    Rows,
    StoredPassages,
    WordBags,
    damaged,
    digests,
    line_offsets,
    passage_from_record,
    passage_record,
)

FORMAT = 1
CURRENT = "CURRENT"
REBUILD_HINT = "rebuild it with `procqa index --full`"
FLAT_MAX = 50_000  # more passages than this get an approximate dense index (see dense_index)
IVF_TRAIN_PER_LIST = 40  # k-means sample per inverted list; faiss warns below 39
IVF_TRAIN_ITERATIONS = 10
IVF_MIN_NPROBE = 16  # lists scanned per query; recall@10 stopped rising at 8-16 on clustered vectors
BATCHES_PER_CALL = 32
RERANK = 4  # approximate candidates per wanted result that `nearest` rescores exactly
IN_MEMORY_MAX = 50_000  # passages; a larger version's passages and embeddings stay on disk
COLUMNS = "columns"
KEY = "S32"  # content keys are 32 hex digits
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BuildReport:
    """What a build did: counts of reused and newly embedded texts, and where it went."""

    version: str
    procedures: int
    passages: int
    added: int
    changed: int
    removed: int
    reused: int
    embedded: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass(frozen=True)
class Columns:
    """What every query needs of every passage, and what a rebuild reuses, as arrays."""

    passage_procedure: np.ndarray  # row in procedures.json of each passage's procedure
    passage_section: np.ndarray  # index in `sections` of each passage's section
    sections: tuple[str, ...]
    line_offsets: np.ndarray  # passage i is bytes line_offsets[i]:line_offsets[i + 1] of passages.jsonl
    unit_offsets: np.ndarray  # passage i has units unit_offsets[i]:unit_offsets[i + 1]
    keys: np.ndarray  # content key of each passage (bytes)
    unit_keys: np.ndarray  # content key of each unit (bytes)
    bags: WordBags | None  # each procedure's distinct words; None: read from the folder when needed

    ARRAYS = ("passage_procedure", "passage_section", "line_offsets", "unit_offsets", "keys", "unit_keys")

    def save(self, folder: Path) -> None:
        assert self.bags is not None
        folder.mkdir()
        for name in self.ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        np.save(folder / "word_ids.npy", self.bags.ids)
        np.save(folder / "word_offsets.npy", self.bags.offsets)
        (folder / "words.json").write_text(json.dumps(list(self.bags.vocabulary)))
        (folder / "sections.json").write_text(json.dumps(list(self.sections)))

    @classmethod
    def load(cls, folder: Path) -> Columns:
        """The arrays a query uses in memory, the content keys (for rebuilds) mapped; the word
        bags are left on disk (`load_bags`): they are read once, to build a searcher."""
        kept = ("passage_procedure", "passage_section", "line_offsets", "unit_offsets")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode=None if name in kept else "r") for name in cls.ARRAYS}
        sections = tuple(json.loads((folder / "sections.json").read_text("utf-8")))
        return cls(**arrays, sections=sections, bags=None)

    @staticmethod
    def load_bags(folder: Path) -> WordBags:
        return WordBags(
            tuple(json.loads((folder / "words.json").read_text("utf-8"))),
            np.load(folder / "word_ids.npy"),
            np.load(folder / "word_offsets.npy"),
        )


@dataclass(frozen=True)
class IndexData:
    """Everything a loaded index version holds. Up to IN_MEMORY_MAX passages, `passages` is a
    tuple and the embeddings arrays; above, both are read from disk as they are indexed."""

    path: Path
    manifest: dict[str, Any]
    procedures: tuple[dict[str, Any], ...]
    passages: Sequence[Passage]
    vectors: np.ndarray | Rows
    dense: faiss.Index
    units: np.ndarray | Rows
    intents: np.ndarray
    intent_labels: tuple[str, ...]
    intent_texts: tuple[str, ...]
    lexical: Lexical
    columns: Columns

    @property
    def unit_offsets(self) -> np.ndarray:
        return self.columns.unit_offsets

    def word_bags(self) -> WordBags:
        """Each procedure's distinct words (read from disk for each call on a current version)."""
        return self.columns.bags or Columns.load_bags(self.path / COLUMNS)

    @property
    def version(self) -> str:
        return self.path.name


def current_version(root: Path) -> Path:
    """The version folder CURRENT points at; IndexMissingError when there is none."""
    pointer = root / CURRENT
    if not pointer.exists():
        raise IndexMissingError(f"no index at {root}: run `procqa index --out {root}` first")
    version = root / "versions" / pointer.read_text("utf-8").strip()
    if not version.is_dir():
        raise IndexMissingError(f"{pointer} names a missing version folder {version.name}: {REBUILD_HINT}")
    return version


def versions(root: Path) -> list[Path]:
    """Complete version folders, oldest first."""
    folder = root / "versions"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    return [str(p.relative_to(folder)) for p in files]


class _EmbeddingCache:
    """Vectors by content key, kept as (array, row) so that reuse copies rows in bulk."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.where: dict[str, tuple[int, int]] = {}

    def add(self, keys: Sequence[str], array: np.ndarray) -> None:
        slot = len(self.arrays)
        self.arrays.append(array)
        for row, key in enumerate(keys):
            self.where.setdefault(key, (slot, row))

    def __contains__(self, key: object) -> bool:
        return key in self.where

    def gather(self, keys: Sequence[str], dimension: int) -> np.ndarray:
        out = np.empty((len(keys), dimension), dtype=np.float32)
        places = np.array([self.where[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        for slot, array in enumerate(self.arrays):
            mine = np.flatnonzero(places[:, 0] == slot)
            if mine.size:
                out[mine] = array[places[mine, 1]]
        return out


def _previous(root: Path, model_id: str) -> IndexData | None:
    """The serving version, whose embeddings and dense lists a build can reuse; None when
    there is no usable one."""
    try:
        return load(root, model_id=model_id, verify=False)
    except (IndexMissingError, IndexMismatchError, IndexCorruptError):
        return None


def _reusable(old: IndexData, model_id: str) -> _EmbeddingCache:
    """Every embedding of a version by content key."""
    cache = _EmbeddingCache()
    cache.add(_strings(old.columns.keys), old.vectors)
    cache.add(_strings(old.columns.unit_keys), old.units)
    texts = old.manifest.get("intent_texts", [])
    if len(texts) == len(old.intents):
        cache.add([content_key(t, model_id) for t in texts], old.intents)
    return cache


def _strings(keys: np.ndarray) -> list[str]:
    return np.asarray(keys).astype(str).tolist()


def _embed_cached(
    texts: Sequence[str],
    keys: Sequence[str],
    embedder: Embedder,
    cache: _EmbeddingCache,
    batch: int,
    progress: Progress | None,
) -> tuple[np.ndarray, int]:
    """Embed only the texts whose key is not in the cache; returns vectors and count embedded."""
    missing = sorted({k: i for i, k in enumerate(keys) if k not in cache}.values())
    fresh: list[np.ndarray] = []
    # An embedder that batches by itself (the model: it sorts a call's texts by length, so its
    # batches pad little) gets many batches per call; one batch a call, in corpus order, made
    # builds 2.7 times slower than model.encode. Others get a call per batch.
    step = batch * BATCHES_PER_CALL if hasattr(embedder, "batch_size") else batch
    for start in range(0, len(missing), step):
        chunk = missing[start : start + step]
        fresh.append(np.asarray(embedder.embed([texts[i] for i in chunk]), dtype=np.float32))
        if progress:
            progress(len(chunk))
    if fresh:
        cache.add([keys[i] for i in missing], np.concatenate(fresh))
    return cache.gather(keys, embedder.dimension), len(missing)


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
        index = faiss.IndexFlatIP(dimension)
        index.add(vectors)
        return index
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
    for number in range(old.nlist):
        size = invlists.list_size(number)
        if size:
            ids = invlists.get_ids(number)
            try:
                by_row[faiss.rev_swig_ptr(ids, size).copy()] = number
            finally:
                invlists.release_ids(number, ids)
    row_of = {key: row for row, key in enumerate(old_keys)}
    return np.array([by_row[row_of[k]] if k in row_of else -1 for k in keys], dtype=np.int64)


def index_type(index: faiss.Index) -> str:
    """'flat-ip' for an exact index, 'ivf-sq8' for the approximate one."""
    return "ivf-sq8" if isinstance(faiss.downcast_index(index), faiss.IndexIVFScalarQuantizer) else "flat-ip"


def nearest(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows for each query by exact inner product: the index proposes RERANK times
    k candidates where it is approximate, and `vectors` rescores them. Rows are -1 past the
    end of the index."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if index_type(index) == "flat-ip":
        return index.search(queries, k)
    _, candidates = index.search(queries, k * RERANK)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
        found = np.sort(found[found >= 0])
        exact = np.asarray(vectors[found], dtype=np.float32) @ query
        best = np.argsort(-exact, kind="stable")[:k]
        scores[row, : best.size], ids[row, : best.size] = exact[best], found[best]
    return scores, ids


def build(
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedder: Embedder,
    root: Path,
    *,
    full: bool = False,
    batch_size: int = 64,
    keep: int = 3,
    fingerprint: str = "",
    progress: Progress | None = None,
) -> BuildReport:
    """Write a new index version and point CURRENT at it once it is complete and verified."""
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        timings[stage] = time.perf_counter() - started - sum(timings.values())

    root.mkdir(parents=True, exist_ok=True)
    model_id = embedder.model_id
    old = _previous(root, model_id)
    cache = _reusable(old, model_id) if old and not full else _EmbeddingCache()
    before = _identities(old) if old else {}
    lap("previous")
    keys = [content_key(p.embed_text, model_id) for p in passages]
    vectors, embedded = _embed_cached([p.embed_text for p in passages], keys, embedder, cache, batch_size, progress)
    unit_texts = [u for p in passages for u in p.units]
    unit_keys = [content_key(u, model_id) for u in unit_texts]
    units, embedded_units = _embed_cached(unit_texts, unit_keys, embedder, cache, batch_size, None)
    labels, examples = intent_texts(procedures)
    intent_keys = [content_key(t, model_id) for t in examples]
    intents, _ = _embed_cached(examples, intent_keys, embedder, cache, batch_size, None)
    del cache
    lap("embed")

    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = root / "versions" / f".tmp-{version}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        offsets = np.cumsum([0] + [len(p.units) for p in passages]).astype(np.int64)
        lines = [0]
        with (tmp / "passages.jsonl").open("wb") as handle:
            for passage, key, start in zip(passages, keys, offsets, strict=False):
                line = (json.dumps(passage_record(passage, key, int(start))) + "\n").encode()
                handle.write(line)
                lines.append(lines[-1] + len(line))
        (tmp / "procedures.json").write_text(json.dumps([_procedure_record(p) for p in procedures]))
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "units.npy", units)
        np.save(tmp / "intents.npy", intents)
        lap("write")
        previous = (old.dense, _strings(old.columns.keys)) if old and not full else None
        dense = dense_index(vectors, keys=keys, previous=previous)
        kind = index_type(dense)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        del dense, units, vectors
        lap("dense")
        Lexical.build([p.embed_text for p in passages]).save(tmp / "lexical")
        lap("lexical")
        Columns(
            **_rows(passages, [p.id for p in procedures]),
            line_offsets=np.array(lines, dtype=np.int64),
            unit_offsets=offsets,
            keys=np.array(keys, dtype=KEY).reshape(-1),
            unit_keys=np.array(unit_keys, dtype=KEY).reshape(-1),
            bags=_word_bags([p.id for p in procedures], passages, keys, None if full else old),
        ).save(tmp / COLUMNS)
        del old
        lap("columns")
        manifest = {
            "format": FORMAT,
            "procqa_version": __version__,
            "model": model_id,
            "dimension": int(embedder.dimension),
            "procedures": len(procedures),
            "passages": len(passages),
            "units": len(unit_texts),
            "intent_labels": list(labels),
            "intent_texts": list(examples),
            "corpus_fingerprint": fingerprint,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "index_type": kind,
            "files": digests(tmp, _files(tmp)),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        # the checksums were just taken from these files; loading checks that they read back
        load_version(tmp, model_id=model_id, dimension=embedder.dimension, verify=False)
        final = root / "versions" / version
        tmp.rename(final)
        lap("check")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point(root, version)
    prune(root, keep)
    after = {(p.procedure_id, p.section): k for p, k in zip(passages, keys, strict=True)}
    return BuildReport(
        version=version,
        procedures=len(procedures),
        passages=len(passages),
        added=sum(1 for ident in after if ident not in before),
        changed=sum(1 for ident, key in after.items() if ident in before and before[ident] != key),
        removed=sum(1 for ident in before if ident not in after),
        reused=len(passages) - embedded,
        embedded=embedded + embedded_units,
        seconds=time.perf_counter() - started,
        timings=timings,
    )


def _identities(data: IndexData) -> dict[tuple[str, str], str]:
    """The content key of each (procedure id, section) of a version."""
    columns = data.columns
    ids = [data.procedures[i]["id"] for i in columns.passage_procedure.tolist()]
    sections = [columns.sections[i] for i in columns.passage_section.tolist()]
    return dict(zip(zip(ids, sections, strict=True), _strings(columns.keys), strict=True))


def _word_bags(
    procedure_ids: Sequence[str], passages: Sequence[Passage], keys: Sequence[str], old: IndexData | None
) -> WordBags:
    """Each procedure's distinct words (as procqa.matching.words finds them in its passages'
    text); a procedure whose passages all kept their content keys keeps its old bag."""
    texts: dict[str, list[str]] = {i: [] for i in procedure_ids}
    signatures: dict[str, list[str]] = {i: [] for i in procedure_ids}
    for passage, key in zip(passages, keys, strict=True):
        texts[passage.procedure_id].append(passage.text)
        signatures[passage.procedure_id].append(key)
    reusable: dict[tuple[str, tuple[str, ...]], int] = {}
    old_bags = old.word_bags() if old is not None else None
    if old is not None:
        old_signatures: dict[int, list[str]] = {}
        for row, key in zip(old.columns.passage_procedure.tolist(), _strings(old.columns.keys), strict=True):
            old_signatures.setdefault(row, []).append(key)
        reusable = {(old.procedures[row]["id"], tuple(sig)): row for row, sig in old_signatures.items()}
    bags = []
    for ident in procedure_ids:
        row = reusable.get((ident, tuple(signatures[ident])))
        bags.append(old_bags.bag(row) if old_bags is not None and row is not None else words(" ".join(texts[ident])))
    return WordBags.of(set(bag) for bag in bags)


def _procedure_record(procedure: Procedure) -> dict[str, Any]:
    return {
        "id": procedure.id,
        "title": procedure.title,
        "code": procedure.code,
        "code_system": procedure.code_system,
        "name": procedure.name,
        "aliases": list(procedure.aliases),
        "source": procedure.source,
        "sections": [s.name for s in procedure.sections],
    }


def point(root: Path, version: str) -> None:
    """Move CURRENT to a version in one atomic rename."""
    tmp = root / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, root / CURRENT)


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` versions, never the one being served."""
    serving = current_version(root).name
    for old in versions(root)[:-keep]:
        if old.name != serving:
            shutil.rmtree(old, ignore_errors=True)


def rollback(root: Path) -> str:
    """Point CURRENT at the version before it; returns that version's name."""
    serving = current_version(root).name
    names = [v.name for v in versions(root)]
    older = [n for n in names if n < serving]
    if not older:
        raise IndexMissingError(f"no version older than {serving} to roll back to in {root}")
    point(root, older[-1])
    return older[-1]


def load(root: Path, *, model_id: str | None = None, verify: bool = True, thorough: bool = False) -> IndexData:
    """Load the version CURRENT points at."""
    return load_version(current_version(root), model_id=model_id, verify=verify, thorough=thorough)


def load_version(
    folder: Path,
    *,
    model_id: str | None = None,
    dimension: int | None = None,
    verify: bool = True,
    thorough: bool = False,
) -> IndexData:
    """Load one version folder, refusing a model mismatch or a damaged file. Verifying samples
    the large binary arrays (see the module docstring); `thorough` hashes every byte."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise IndexCorruptError(f"{manifest_path} is unreadable ({error}): {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise IndexCorruptError(f"{manifest_path} is not an index manifest: {REBUILD_HINT}")
    if manifest.get("format") != FORMAT:
        raise IndexMismatchError(f"{folder} has index format {manifest.get('format')}, want {FORMAT}: {REBUILD_HINT}")
    if model_id is not None and manifest.get("model") != model_id:
        raise IndexMismatchError(
            f"{folder} was built with model {manifest.get('model')}, but {model_id} is configured: {REBUILD_HINT}"
        )
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexMismatchError(
            f"{folder} has dimension {manifest.get('dimension')}, the model gives {dimension}: {REBUILD_HINT}"
        )
    if verify:
        _verify(folder, manifest, thorough=thorough)
    try:
        procedures = _read_procedures(folder / "procedures.json")
        intents = np.load(folder / "intents.npy")
        flags = faiss.IO_FLAG_MMAP_IFC if manifest.get("index_type") == "flat-ip" else faiss.IO_FLAG_MMAP
        dense = faiss.read_index(str(folder / "dense.faiss"), flags | faiss.IO_FLAG_READ_ONLY)
        lexical = Lexical.load(folder / "lexical")
        in_memory = int(manifest.get("passages", 0)) <= IN_MEMORY_MAX
        if (folder / COLUMNS).is_dir():
            columns = Columns.load(folder / COLUMNS)
            passages: Sequence[Passage] = (
                _read_passages(folder / "passages.jsonl")
                if in_memory
                else StoredPassages(folder / "passages.jsonl", np.array(columns.line_offsets))
            )
        else:  # written before columns/ existed
            passages = _read_passages(folder / "passages.jsonl")
            columns = _columns_of(folder, passages, procedures, str(manifest.get("model")))
        vectors = np.load(folder / "vectors.npy") if in_memory else Rows(folder / "vectors.npy")
        units = np.load(folder / "units.npy") if in_memory else Rows(folder / "units.npy")
    # TypeError: a line of passages.jsonl that is not an object, met when verify is off
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise IndexCorruptError(f"{folder} cannot be read ({error}): {REBUILD_HINT}") from None
    counts = (len(passages), vectors.shape[0], dense.ntotal, lexical.size, len(columns.passage_procedure))
    intent_labels = tuple(manifest.get("intent_labels", []))
    intent_texts = tuple(manifest.get("intent_texts", []))
    if not len(intent_labels) == len(intent_texts) == len(intents):
        raise IndexCorruptError(
            f"{folder}: {len(intent_labels)} section-intent labels, {len(intent_texts)} texts and "
            f"{len(intents)} vectors: {REBUILD_HINT}"
        )
    if len(set(counts)) != 1 or manifest.get("passages") != len(passages) or columns.unit_offsets[-1] != len(units):
        raise IndexCorruptError(f"{folder}: passage counts disagree {counts}: {REBUILD_HINT}")
    return IndexData(
        path=folder,
        manifest=manifest,
        procedures=procedures,
        passages=passages,
        vectors=vectors,
        dense=dense,
        units=units,
        intents=intents,
        intent_labels=intent_labels,
        intent_texts=intent_texts,
        lexical=lexical,
        columns=columns,
    )


def _verify(folder: Path, manifest: dict[str, Any], *, thorough: bool) -> None:
    # versions written before sizes and sampled digests were recorded hold a bare sha256 per file
    expected = {n: e if isinstance(e, dict) else {"sha256": e} for n, e in manifest.get("files", {}).items()}
    missing = sorted(n for n in expected if not (folder / n).is_file())
    bad = damaged(folder, expected, thorough=thorough)
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if bad:
        problems.append(f"checksum mismatch in {', '.join(bad)}")
    if problems:
        raise IndexCorruptError(f"{folder}: {'; '.join(problems)}: {REBUILD_HINT}")


def _read_procedures(path: Path) -> tuple[dict[str, Any], ...]:
    """The procedure records, their repeated strings (section names, code systems) shared: at
    100k procedures, 1.3M copies of thirteen section names took 80 MB."""
    records = json.loads(path.read_text("utf-8"))
    for record in records:
        if isinstance(record.get("code_system"), str):
            record["code_system"] = sys.intern(record["code_system"])
        if isinstance(record.get("sections"), list):
            record["sections"] = [sys.intern(s) if isinstance(s, str) else s for s in record["sections"]]
    return tuple(records)


def _read_passages(path: Path) -> tuple[Passage, ...]:
    with path.open("rb") as handle:
        return tuple(passage_from_record(json.loads(line)) for line in handle)


def _rows(passages: Sequence[Passage], procedure_ids: Sequence[str]) -> dict[str, Any]:
    """Each passage's procedure row and section number, and the sorted section names."""
    sections = tuple(sorted({p.section for p in passages}))
    row_of_section = {name: i for i, name in enumerate(sections)}
    row_of_procedure = {ident: i for i, ident in enumerate(procedure_ids)}
    return {
        "passage_procedure": np.array([row_of_procedure[p.procedure_id] for p in passages], dtype=np.int32),
        "passage_section": np.array([row_of_section[p.section] for p in passages], dtype=np.int32),
        "sections": sections,
    }


def _columns_of(
    folder: Path, passages: Sequence[Passage], procedures: Sequence[dict[str, Any]], model_id: str
) -> Columns:
    """The columns of a version written before columns/ existed, from its passages."""
    with (folder / "passages.jsonl").open("rb") as handle:
        records = [json.loads(line) for line in handle]
    keys = [r["key"] for r in records]
    units = sum(len(p.units) for p in passages)
    return Columns(
        **_rows(passages, [p["id"] for p in procedures]),
        line_offsets=line_offsets(folder / "passages.jsonl"),
        unit_offsets=np.array([r["unit_start"] for r in records] + [units], dtype=np.int64),
        keys=np.array(keys, dtype=KEY).reshape(-1),
        unit_keys=np.array([content_key(u, model_id) for p in passages for u in p.units], dtype=KEY).reshape(-1),
        bags=_word_bags([p["id"] for p in procedures], passages, keys, None),
    )
