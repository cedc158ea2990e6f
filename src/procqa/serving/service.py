"""The serving state: one embedder, the searcher of the version being served, and reloads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from procqa.embedding import Embedder, make_embedder
from procqa.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, ProcqaError
from procqa.index import current_version, load_version
from procqa.ranking import RankingConfig, RankingFeatures, Searcher
from procqa.serving.batching import Batched
from procqa.serving.workers import announce as _announce
from procqa.settings import Settings

INDEX_ERRORS = (IndexMissingError, IndexMismatchError, IndexCorruptError)


@dataclass(frozen=True)
class ServiceStatus:
    """What the service serves, or why it serves nothing."""

    ready: bool
    version: str | None = None
    procedures: int = 0
    passages: int = 0
    sections: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Service:
    """Holds the searcher being served; a reload swaps it in one assignment, so requests in
    flight finish on the version they started with."""

    settings: Settings
    embedder: Embedder
    config: RankingConfig = field(default_factory=RankingConfig)
    _searcher: Searcher | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.embedder, Batched):
            self.embedder = Batched(self.embedder)

    @classmethod
    def open(
        cls, settings: Settings, embedder: Embedder | None = None, *, config: RankingConfig | None = None
    ) -> Service:
        """A service on the configured index; raises when no index can be loaded."""
        service = cls(settings, embedder or make_embedder(settings), config or RankingConfig())
        service.reload(announce=False)
        service.embedder.embed(["warm up"])  # the first query then finds every model loaded
        return service

    @classmethod
    def serving_nothing(cls, settings: Settings, embedder: Embedder, error: str) -> Service:
        """A service with no index, that says why."""
        return cls(settings, embedder, _error=error)

    def reload(self, *, announce: bool = True) -> str:
        """Load the version CURRENT points at and serve it; the old one serves until then. A
        version that cannot be loaded is remembered as the last error and raised. Under
        `procqa serve --workers`, a reload that changes the version served is announced to the
        other workers unless `announce` is false (the watcher's: they watch CURRENT too)."""
        with self._lock:
            try:
                folder = current_version(self.settings.index)
                if self._searcher is not None and self._searcher.version == folder.name:
                    return folder.name
                data = load_version(folder, model_id=self.embedder.model_id, dimension=self.embedder.dimension)
                features = RankingFeatures.from_index(data, self.config)
            except (ProcqaError, OSError) as error:
                self._error = str(error)
                raise
            self._searcher = Searcher(features, self.embedder, config=self.config)
            self._error = None
        if announce:
            _announce()
        return folder.name

    def searcher(self) -> Searcher:
        """The searcher being served, or IndexMissingError saying why there is none."""
        searcher = self._searcher
        if searcher is None:
            raise IndexMissingError(
                f"no index is being served ({self._error}); build one with `procqa index`, "
                "then restart the service or POST /admin/reload"
            )
        return searcher

    @property
    def ready(self) -> bool:
        return self._searcher is not None

    @property
    def last_error(self) -> str | None:
        """Why the last load failed; None once a load succeeds."""
        return self._error

    @property
    def version(self) -> str | None:
        searcher = self._searcher
        return searcher.version if searcher is not None else None

    def status(self) -> ServiceStatus:
        """What /ready reports: the version served and its counts, or the last error."""
        searcher = self._searcher
        if searcher is None:
            return ServiceStatus(ready=False, error=self._error)
        features = searcher.features
        return ServiceStatus(
            ready=True,
            version=features.version,
            procedures=len(features.procedures),
            passages=len(features.passages),
            sections=features.sections,
            manifest=features.manifest,
            error=self._error,
        )
