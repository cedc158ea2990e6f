"""The serving state: one embedder, the searcher of the version being served, and reloads."""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from procqa.documents import Hit
from procqa.embedding import Embedder, SentenceTransformerEmbedder
from procqa.errors import IndexMissingError
from procqa.index import current_version, load_version
from procqa.search import Searcher
from procqa.settings import Settings

BATCH_TEXTS = 32  # most texts in one model call made of concurrent requests
MMAP_THRESHOLD = 2**20  # bytes; larger allocations are mapped from the OS and returned when freed
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def limit_blas_threads() -> None:
    """Numpy's BLAS threads fight torch's for the same cores: queries slow from ~10 ms to
    ~250 ms on two cores (scripts/bench.py). The scoring products are small, one thread is best.
    Torch gets one too: two made a lone query's model call faster in-process (7.7 ms, not
    11.7) but HTTP answers slower (21 ms at the median, not 15): their spinning worker took
    the core the server needed."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def return_large_allocations(threshold: int = MMAP_THRESHOLD) -> None:
    """glibc serves an allocation over its threshold with a fresh mapping and unmaps it when
    it is freed, but raises the threshold to the size of each such block freed (up to 32 MB),
    after which blocks of that size come from per-thread heaps that keep what is freed: request
    threads building 5-10 MB arrays per query held +450 MB more after a load test at 1.3M
    passages. A fixed threshold keeps per-query arrays returned to the OS (at the cost of page
    faults, about 1 ms a query there). A no-op where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, threshold)


@dataclass
class _Call:
    texts: list[str]
    ready: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None


class Batched:
    """An embedder that embeds the texts of concurrent callers in one model call.

    One thread makes every model call: it takes all the calls waiting (up to `most` texts)
    and embeds their texts together. On two cores one call of 16 short texts takes 56 ms where
    eight calls of 2 take 108 ms, so under load the model answers about twice as many queries;
    a lone caller only hands its texts over. One thread also keeps torch's working memory in
    one malloc arena: model calls made from many request threads grew one each, +400 MB."""

    def __init__(self, inner: Embedder, *, most: int = BATCH_TEXTS, idle_seconds: float = 10.0) -> None:
        self.inner = inner
        self.most = most
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        call = _Call(list(texts))
        with self._lock:
            self._queue.put(call)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="procqa-embed", daemon=True)
                self._worker.start()
        call.ready.wait()
        if call.error is not None:
            raise call.error
        assert call.vectors is not None
        return call.vectors

    def _work(self) -> None:
        """Embed batches of waiting calls; end after idle_seconds without one."""
        held: _Call | None = None
        while True:
            if held is None:
                try:
                    held = self._queue.get(timeout=self.idle_seconds)
                except queue.Empty:
                    with self._lock:  # callers put under this lock, so none is missed
                        if self._queue.empty():
                            self._worker = None
                            return
                    continue
            batch, size, held = [held], len(held.texts), None
            while size < self.most:
                try:
                    call = self._queue.get_nowait()
                except queue.Empty:
                    break
                if size + len(call.texts) > self.most:
                    held = call  # first in the next batch
                    break
                batch.append(call)
                size += len(call.texts)
            self._embed(batch)

    def _embed(self, batch: list[_Call]) -> None:
        try:
            vectors = self.inner.embed([text for call in batch for text in call.texts])
            start = 0
            for call in batch:
                call.vectors = vectors[start : start + len(call.texts)]
                start += len(call.texts)
        except BaseException as error:  # handed to each caller, who raises it
            for call in batch:
                call.error = error
        for call in batch:
            call.ready.set()


@dataclass
class Service:
    """Holds the searcher being served; a reload swaps it in one assignment, so requests in
    flight finish on the version they started with."""

    settings: Settings
    embedder: Embedder
    _searcher: Searcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    last_error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.embedder, Batched):
            self.embedder = Batched(self.embedder)

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> Service:
        """A service on the configured index; raises when no index can be loaded."""
        limit_blas_threads()
        return_large_allocations()
        service = cls(settings, embedder or SentenceTransformerEmbedder.from_settings(settings))
        service.reload()
        service.embedder.embed(["warm up"])  # the first query then finds every model loaded
        return service

    def reload(self) -> str:
        """Load the version CURRENT points at and serve it; the old one serves until then."""
        with self._lock:
            folder = current_version(self.settings.index)
            if self._searcher is not None and self._searcher.data.path == folder:
                return folder.name
            data = load_version(folder, model_id=self.embedder.model_id, dimension=self.embedder.dimension)
            self._searcher = Searcher(data, self.embedder)
            self.last_error = None
            return folder.name

    def searcher(self) -> Searcher:
        searcher = self._searcher
        if searcher is None:
            raise IndexMissingError(
                f"no index loaded from {self.settings.index}: run `procqa index --out {self.settings.index}`"
            )
        return searcher

    @property
    def ready(self) -> bool:
        return self._searcher is not None

    @staticmethod
    def hit_record(hit: Hit, rank: int) -> dict[str, Any]:
        p = hit.passage
        return {
            "rank": rank,
            "score": round(hit.score, 4),
            "procedure": {"id": p.procedure_id, "title": p.title, "code": p.code, "code_system": p.code_system},
            "section": p.section,
            "text": p.text,
            "answer": hit.answer,
            "answer_start": hit.answer_start,
            "answer_end": hit.answer_end,
            "source": p.source,
            "lines": [p.line_start, p.line_end],
        }
