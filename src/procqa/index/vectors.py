"""The vectors of a build: which texts lack one (planned by content key), who embeds them
(here, or a cluster: an `Embedding`), and putting the answers back by key.

Planning stays with the build, whatever embeds: the texts sent out are exactly those whose
content key no earlier version holds, and what comes back is placed by key, in whatever
order and chunks it arrives, so a distributed build writes the same index as a local one.

Answer units are embedded in context where the embedder can (procqa.pooling): their vectors
come out of their passage's forward pass, so a passage to embed carries its units' keys and
character spans, and its units are no texts of their own."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from procqa.embedding import Embedder
from procqa.errors import ProcqaError
from procqa.index.progress import UNITS, Stages
from procqa.index.storage import Rows
from procqa.pooling import Span

BATCHES_PER_CALL = 32
IN_CONTEXT = "context"  # answer units pooled from their passage's forward pass (procqa.pooling)
ALONE = "alone"  # each answer unit embedded as a text of its own
UNIT_MODES = (IN_CONTEXT, ALONE)


@dataclass(frozen=True)
class Texts:
    """Texts of one stage of a build (passages, answer units, intent) that need embedding,
    each with its content key; no key appears twice in a build's work."""

    stage: str
    keys: tuple[str, ...]
    texts: tuple[str, ...]
    # in context: per text, its answer units' keys and spans, whose vectors come with its own
    units: tuple[tuple[str, ...], ...] = ()
    spans: tuple[tuple[Span, ...], ...] = ()

    def unit_keys(self) -> list[str]:
        return [key for keys in self.units for key in keys]


class Embedding(Protocol):
    """How a build embeds the texts it has no vector for."""

    def embed(self, work: Sequence[Texts]) -> Iterator[tuple[str, Sequence[str], np.ndarray]]:
        """(stage, keys, vectors) for every text of `work`, in chunks, in any order."""
        ...


class LocalEmbedding:
    """Embeds in this process, a stage at a time, in corpus order."""

    def __init__(self, embedder: Embedder, *, batch_size: int = 64) -> None:
        self.embedder = embedder
        # An embedder that batches by itself (the model: it sorts a call's texts by length, so
        # its batches pad little) gets many batches per call; one batch a call, in corpus
        # order, made builds 2.7 times slower than model.encode. Others get a call per batch.
        self.step = batch_size * BATCHES_PER_CALL if hasattr(embedder, "batch_size") else batch_size

    def embed(self, work: Sequence[Texts]) -> Iterator[tuple[str, Sequence[str], np.ndarray]]:
        for texts in work:
            for start in range(0, len(texts.keys), self.step):
                chunk = slice(start, start + self.step)
                if texts.units:
                    yield from in_context(self.embedder, texts, chunk)
                    continue
                vectors = np.asarray(self.embedder.embed(list(texts.texts[chunk])), dtype=np.float32)
                yield texts.stage, texts.keys[chunk], vectors


def in_context(embedder: Embedder, texts: Texts, chunk: slice) -> Iterator[tuple[str, Sequence[str], np.ndarray]]:
    """The vectors of a chunk of passages that carry their units, and then of those units."""
    pooled, units = embedder.embed_in_context(list(texts.texts[chunk]), texts.spans[chunk])  # type: ignore[attr-defined]
    yield texts.stage, texts.keys[chunk], np.asarray(pooled, dtype=np.float32)
    yield UNITS, [key for keys in texts.units[chunk] for key in keys], np.asarray(units, dtype=np.float32)


def unit_mode(embedder: Embedder, units: str | None) -> str:
    """How a build embeds answer units: as asked, else IN_CONTEXT where the embedder can."""
    if units is None:
        return IN_CONTEXT if hasattr(embedder, "embed_in_context") else ALONE
    if units not in UNIT_MODES:
        raise ProcqaError(f"unknown way of embedding answer units {units!r}; valid: {', '.join(UNIT_MODES)}")
    if units == IN_CONTEXT and not hasattr(embedder, "embed_in_context"):
        raise ProcqaError(f"{embedder.model_id} cannot embed answer units in context; use {ALONE!r}")
    return units


def unit_keys_in_context(passage_key: str, count: int) -> list[str]:
    """Keys of a passage's units embedded in its context: of the passage's key (its text and
    the model) and their place in it, never equal to a text's key."""
    return [hashlib.sha256(f"{passage_key}\x00unit {i}".encode()).hexdigest()[:32] for i in range(count)]


class EmbeddingCache:
    """Vectors by key (a build's content keys, an evaluation's texts), kept as (array, row) so
    that reuse copies rows in bulk."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray | Rows] = []
        self.where: dict[str, tuple[int, int]] = {}

    def add(self, keys: Sequence[str], array: np.ndarray | Rows) -> None:
        slot = len(self.arrays)
        self.arrays.append(array)
        for row, key in enumerate(keys):
            self.where.setdefault(key, (slot, row))

    def __contains__(self, key: object) -> bool:
        return key in self.where

    @property
    def dimension(self) -> int | None:
        """The width of the vectors held; None while there are none."""
        return next((int(a.shape[1]) for a in self.arrays if len(a)), None)

    def gather(self, keys: Sequence[str], dimension: int) -> np.ndarray:
        out = np.empty((len(keys), dimension), dtype=np.float32)
        places = np.array([self.where[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        for slot in np.unique(places[:, 0]).tolist():  # only the arrays that hold some key
            mine = np.flatnonzero(places[:, 0] == slot)
            out[mine] = self.arrays[slot][places[mine, 1]]
        return out


def plan(stages: Sequence[tuple[str, Sequence[str], Sequence[str]]], cache: EmbeddingCache) -> list[Texts]:
    """For each (stage, texts, keys), the texts whose key neither the cache nor an earlier
    text holds, in corpus order."""
    seen: set[str] = set()
    work = []
    for stage, texts, keys in stages:
        first = {k: i for i, k in reversed(list(enumerate(keys))) if k not in cache and k not in seen}
        rows = sorted(first.values())
        seen.update(first)
        work.append(Texts(stage, tuple(keys[i] for i in rows), tuple(texts[i] for i in rows)))
    return work


def plan_in_context(
    stage: str,
    texts: Sequence[str],
    keys: Sequence[str],
    units: Sequence[Sequence[str]],
    spans: Sequence[Sequence[Span]],
    cache: EmbeddingCache,
) -> Texts:
    """The passages to embed with their units: those whose key, or one of whose units' keys,
    the cache lacks (a version whose units were embedded alone holds none), once per key."""
    rows = {}
    for i, key in enumerate(keys):
        if key not in rows and (key not in cache or any(u not in cache for u in units[i])):
            rows[key] = i
    picked = sorted(rows.values())
    return Texts(
        stage,
        tuple(keys[i] for i in picked),
        tuple(texts[i] for i in picked),
        tuple(tuple(units[i]) for i in picked),
        tuple(tuple(spans[i]) for i in picked),
    )


def fill(cache: EmbeddingCache, work: Sequence[Texts], embedding: Embedding, stages: Stages) -> None:
    """Embed `work` with `embedding` into the cache, each stage reported as its vectors arrive;
    raises when a text comes back without its vector or with a vector of another width."""
    left = {texts.stage: set(texts.keys) for texts in work}
    for texts in work:
        if texts.units:
            left.setdefault(UNITS, set()).update(texts.unit_keys())
    for stage, wanted in left.items():
        stages.start(stage, len(wanted))
    for stage, wanted in left.items():
        if not wanted:
            stages.finish(stage)
    for stage, keys, vectors in embedding.embed(work):
        known = cache.dimension
        if vectors.ndim != 2 or len(vectors) != len(keys) or (known is not None and vectors.shape[1] != known):
            raise ProcqaError(f"{len(keys)} {stage} texts came back with vectors of shape {vectors.shape}")
        cache.add(keys, np.ascontiguousarray(vectors, dtype=np.float32))
        before = len(left[stage])
        left[stage].difference_update(keys)
        stages.advance(stage, before - len(left[stage]))
        if before and not left[stage]:
            stages.finish(stage)
    missing = ", ".join(f"{len(keys)} {stage}" for stage, keys in left.items() if keys)
    if missing:
        raise ProcqaError(f"embedding ended without the vectors of {missing} texts")
