"""Ranking: the tuned numbers, features built once per index version, the searcher, procedure
matching and section intent. Imports procqa.index and below, never serving or api."""

from procqa.ranking.config import RankingConfig, Weights
from procqa.ranking.features import ProcedureInfo, RankingFeatures
from procqa.ranking.indexing import build_index
from procqa.ranking.intent import intent_texts
from procqa.ranking.searcher import Query, Searcher

__all__ = [
    "build_index",
    "ProcedureInfo",
    "Query",
    "RankingConfig",
    "RankingFeatures",
    "Searcher",
    "Weights",
    "intent_texts",
]
