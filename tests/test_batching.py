"""Concurrent queries share model calls, and each still gets its own vectors."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import FakeEmbedder

from procqa.serving.service import Batched


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, slow enough for callers to pile up, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        time.sleep(0.02)
        return super().embed(texts)


def run_concurrently(embedder: Batched, questions: list[list[str]]) -> list[np.ndarray]:
    results: list[np.ndarray] = [np.zeros(0)] * len(questions)

    def ask(i: int) -> None:
        results[i] = embedder.embed(questions[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_callers_get_their_own_vectors_from_fewer_calls() -> None:
    inner = SlowEmbedder()
    questions = [[f"knee recovery {i}", f"risk {i}"] for i in range(16)]

    results = run_concurrently(Batched(inner), questions)

    for question, vectors in zip(questions, results, strict=True):
        np.testing.assert_array_equal(vectors, FakeEmbedder().embed(question))
    assert sum(inner.calls) == 32
    assert len(inner.calls) < 16


def test_a_call_holds_at_most_the_batch_limit_unless_one_caller_asks_for_more() -> None:
    inner = SlowEmbedder()

    run_concurrently(Batched(inner, most=4), [["a", "b", "c"], ["d"], ["e", "f"], ["g"] * 6])

    assert max(inner.calls) <= 6
    assert all(size <= 4 for size in inner.calls if size != 6)


def test_a_failing_model_call_fails_every_caller_in_it_and_later_calls_still_work() -> None:
    class Failing(SlowEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            if any("boom" in t for t in texts):
                raise RuntimeError("model failed")
            return super().embed(texts)

    embedder = Batched(Failing())
    with pytest.raises(RuntimeError, match="model failed"):
        embedder.embed(["boom"])

    np.testing.assert_array_equal(embedder.embed(["fine"]), FakeEmbedder().embed(["fine"]))
    assert (embedder.model_id, embedder.dimension) == (FakeEmbedder.model_id, FakeEmbedder.dimension)


def test_the_model_thread_ends_when_idle_and_comes_back_for_the_next_call() -> None:
    embedder = Batched(FakeEmbedder(), idle_seconds=0.05)
    embedder.embed(["first"])
    worker = embedder._worker
    assert worker is not None

    worker.join(timeout=5)

    assert embedder._worker is None
    np.testing.assert_array_equal(embedder.embed(["again"]), FakeEmbedder().embed(["again"]))
