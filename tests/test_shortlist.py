"""The shortlist's top k equals numpy's over every row, whether the codes decide or not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, searcher_of
from test_scale import clustered

from procqa.ranking import RankingConfig
from procqa.ranking.shortlist import Shortlist


def brute_force(rows: np.ndarray, query: np.ndarray, k: int, bonus: np.ndarray, weight: float) -> set[int]:
    return set(np.argsort(-(bonus + weight * (rows @ query)), kind="stable")[:k].tolist())


@pytest.mark.parametrize("proposals", [25, 200, 3000])
@pytest.mark.parametrize("named", [0, 40, 2000])
def test_the_shortlist_finds_the_exact_top_k(proposals: int, named: int) -> None:
    rows = clustered(3000, centres=30, seed=3)
    queries = clustered(20, centres=30, seed=4)
    rng = np.random.default_rng(5)
    shortlist = Shortlist(rows)

    for query in queries:
        bonus = np.zeros(len(rows), dtype=np.float32)
        bonus[rng.choice(len(rows), named, replace=False)] = rng.random(named, dtype=np.float32)
        found = shortlist.top(query, 20, bonus=bonus, weight=1.0, proposals=proposals)
        assert set(found.tolist()) == brute_force(rows, query, 20, bonus, 1.0)


def test_the_codes_stay_within_their_error_bound() -> None:
    rows = clustered(2000, centres=10, seed=6)
    shortlist = Shortlist(rows)
    for query in clustered(10, centres=10, seed=7):
        coded, found = shortlist.coded(query, len(rows))
        error = rows[found] @ query - coded
        assert np.abs(error).max() <= shortlist.error(query)
        assert error.max() > shortlist.error(query) / 20  # and the bound is not loose


@pytest.mark.parametrize("question", ["how long is recovery after a knee replacement", "CPT 45378 risks", "asthma"])
def test_candidates_proposed_by_coded_summaries_rank_as_the_full_scan(
    tiny_index: Path, fake_embedder: FakeEmbedder, question: str
) -> None:
    config = RankingConfig(shortlist_above=0, proposals=2, top_procedures=2)
    full = searcher_of(tiny_index, fake_embedder, config).search(question, k=3)
    candidates = searcher_of(tiny_index, fake_embedder, replace(config, full_scan=0))

    assert candidates.features.shortlist is not None
    hits = candidates.search(question, k=3)
    assert [(h.passage.id, round(h.score, 5)) for h in hits] == [(h.passage.id, round(h.score, 5)) for h in full]
