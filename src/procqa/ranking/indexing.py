"""Building an index of a collection with what ranking wants stored in it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procqa.documents import Passage, Procedure
from procqa.embedding import Embedder
from procqa.index import BuildReport, IntentExamples, build
from procqa.index.vectors import ALONE
from procqa.ranking.config import RankingConfig
from procqa.ranking.intent import index_examples


def build_index(
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedder: Embedder,
    root: Path,
    *,
    config: RankingConfig | None = None,
    **options: Any,
) -> BuildReport:
    """procqa.index.build, given the section-intent examples of these procedures; the ranking
    config goes into the manifest. `options` are build's (full, batch_size, keep, units, ...);
    answer units are embedded alone up to `config.context_units_above` passages, unless
    `units` says otherwise."""
    config = config or RankingConfig()
    if len(passages) <= config.context_units_above:
        options.setdefault("units", ALONE)
    labels, texts = index_examples(procedures, config)
    intents = IntentExamples(labels, texts)
    return build(procedures, passages, embedder, root, intents=intents, extra={"ranking": config.as_dict()}, **options)
