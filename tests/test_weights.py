"""scripts/fit_weights.py: each question's signals, weighted, are the searcher's fused scores,
so weights fitted on them rank as the searcher would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import FakeEmbedder, load_script, searcher_of

from procqa.ranking import RankingConfig

fit_weights = load_script("fit_weights")
QUESTIONS = ("how long is recovery", "knee replacement risks", "CPT 47562 preparation", "what is a colonoscopy")


def test_weighted_signals_are_the_fused_scores(tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    searcher = searcher_of(tiny_index, fake_embedder)
    weights = np.array([getattr(RankingConfig().weights, name) for name in fit_weights.SIGNALS])
    for question in QUESTIONS:
        ranked = searcher._ranked(question, code=None, section=None)
        fused = fit_weights.signals(searcher, question)[ranked.rows] @ weights
        np.testing.assert_allclose(fused, ranked.scores, rtol=1e-5, atol=1e-5)


def test_coordinate_search_finds_the_signal_that_ranks_right_answers_first() -> None:
    rng = np.random.default_rng(0)
    asked = []
    for i in range(40):
        signals = rng.normal(size=(5, len(fit_weights.SIGNALS))).astype(np.float32)
        signals[i % 5, 0] += 3.0  # the first signal marks the right row; the others are noise
        right = np.arange(5) == i % 5
        asked.append(fit_weights.Asked("c", "dev", signals, right))
    start = np.full(len(fit_weights.SIGNALS), 1.0)
    assert fit_weights.objective(asked, fit_weights.fit(asked, start)) > fit_weights.objective(asked, start)
