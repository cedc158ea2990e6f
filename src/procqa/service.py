"""The serving state: one embedder, the searcher of the version being served, and reloads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from procqa.documents import Hit
from procqa.embedding import Embedder, SentenceTransformerEmbedder
from procqa.errors import IndexMissingError
from procqa.index import current_version, load_version
from procqa.search import Searcher
from procqa.settings import Settings


def limit_blas_threads() -> None:
    """Numpy's BLAS threads fight torch's for the same cores: queries slow from ~10 ms to
    ~250 ms on two cores (scripts/bench.py). The scoring products are small, one thread is best."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


@dataclass
class Service:
    """Holds the searcher being served; a reload swaps it in one assignment, so requests in
    flight finish on the version they started with."""

    settings: Settings
    embedder: Embedder
    _searcher: Searcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    last_error: str | None = None

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> Service:
        """A service on the configured index; raises when no index can be loaded."""
        limit_blas_threads()
        service = cls(settings, embedder or SentenceTransformerEmbedder(settings.model_path))
        service.reload()
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
