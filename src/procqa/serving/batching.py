"""Embedding the texts of concurrent requests in one model call."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from procqa.embedding import Embedder

BATCH_TEXTS = 32  # most texts in one model call made of concurrent requests


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
