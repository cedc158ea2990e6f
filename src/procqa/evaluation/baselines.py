"""Rankers evaluated side by side: BM25 and dense retrieval over each passage as
'title. heading: text', their reciprocal-rank fusion, and procqa's Searcher; and the
embedding cache they share.

The baselines see what a reader of the page sees (its title, the heading as written and the
text), so the comparison shows what procqa adds over retrieving sections as they are written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from procqa.arrays import ranked
from procqa.documents import Passage
from procqa.embedding import Embedder
from procqa.evaluation.measures import Ranked, Ranker
from procqa.files import replacing
from procqa.index import IndexData
from procqa.index.lexical import Lexical
from procqa.index.vectors import EmbeddingCache
from procqa.ranking import RankingConfig, RankingFeatures, Searcher

Progress = Callable[[int], None]
RRF_CONSTANT = 60


def top_k(scores: np.ndarray, k: int, *, positive: bool = False) -> Ranked:
    """The k best (id, score) pairs, ties in id order; only scores above 0 when `positive`."""
    return ranked(scores, k, positive=positive)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], *, k: int, constant: int = RRF_CONSTANT) -> Ranked:
    """Sum of 1 / (constant + rank) over the rankings an id appears in; the k best."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, start=1):
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (constant + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


class CachingEmbedder:
    """Wraps an embedder and remembers every vector, so questions embedded in one batch up
    front are not embedded again one by one while they are timed. The vectors are kept by
    text in the build's cache (procqa.index.vectors.EmbeddingCache)."""

    def __init__(self, embedder: Embedder, *, batch_size: int = 256) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.cache = EmbeddingCache()

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dimension(self) -> int:
        return int(self.embedder.dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.prime(texts)
        return self.cache.gather(texts, self.dimension)

    def prime(self, texts: Sequence[str], progress: Progress | None = None) -> None:
        """Embed, in batches, the texts not seen yet."""
        unseen = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for start in range(0, len(unseen), self.batch_size):
            chunk = unseen[start : start + self.batch_size]
            vectors = np.asarray(self.embedder.embed(chunk), dtype=np.float32)
            if len(vectors) != len(chunk):
                raise ValueError(f"{self.model_id} returned {len(vectors)} vectors for {len(chunk)} texts")
            self.cache.add(chunk, vectors)
            if progress:
                progress(len(chunk))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text)


def cached_vectors(
    texts: Sequence[str], embedder: Embedder, folder: Path, *, batch_size: int = 256, progress: Progress | None = None
) -> np.ndarray:
    """Embeddings of the texts, from `folder` when an earlier run stored them for the same
    model and the same texts, else embedded now and stored there."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    path = folder / f"dense-{_slug(embedder.model_id)}-{digest}.npy"
    if path.is_file():
        vectors: np.ndarray = np.load(path)
        if vectors.shape == (len(texts), embedder.dimension):
            if progress:
                progress(len(texts))
            return vectors
    rows = [np.zeros((0, embedder.dimension), dtype=np.float32)]
    for start in range(0, len(texts), batch_size):
        rows.append(np.asarray(embedder.embed(texts[start : start + batch_size]), dtype=np.float32))
        if progress:
            progress(len(rows[-1]))
    vectors = np.concatenate(rows)
    folder.mkdir(parents=True, exist_ok=True)
    with replacing(path) as partial, partial.open("wb") as handle:
        np.save(handle, vectors)
    return vectors


def baseline_text(passage: Passage) -> str:
    """'title. heading: text', the heading as written; a passage without a heading (a BEIR
    record, whose text begins with its title) as it is."""
    return f"{passage.title}. {passage.heading}: {passage.text}" if passage.heading else passage.text


class LexicalRanker:
    """BM25 over the baseline texts; passages sharing no word with the query are left out."""

    name = "bm25"

    def __init__(self, texts: Sequence[str]) -> None:
        self.lexical = Lexical.build(texts)

    def rank(self, query: str, *, k: int) -> Ranked:
        return top_k(self.lexical.scores(query), k, positive=True)


class DenseRanker:
    """Cosine similarity of the query with the embedded baseline texts."""

    name = "dense"

    def __init__(self, vectors: np.ndarray, embedder: Embedder) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.embedder = embedder

    def rank(self, query: str, *, k: int) -> Ranked:
        return top_k(self.vectors @ self.embedder.embed([query])[0], k)


class FusionRanker:
    """Reciprocal-rank fusion of other rankers' top `depth` passages."""

    name = "rrf"

    def __init__(self, rankers: Sequence[Ranker], *, depth: int = 100) -> None:
        self.rankers = tuple(rankers)
        self.depth = depth

    def rank(self, query: str, *, k: int) -> Ranked:
        rankings = [[pid for pid, _ in r.rank(query, k=max(k, self.depth))] for r in self.rankers]
        return reciprocal_rank_fusion(rankings, k=k)


class SearcherRanker:
    """procqa's full pipeline: the Searcher over an index, embedding through a cache."""

    name = "procqa"

    def __init__(self, data: IndexData, embedder: CachingEmbedder, *, config: RankingConfig | None = None) -> None:
        self.embedder = embedder
        self.searcher = Searcher(RankingFeatures.from_index(data, config), embedder)

    def rank(self, query: str, *, k: int) -> Ranked:
        return [(hit.passage.id, hit.score) for hit in self.searcher.search(query, k=k)]

    def highlighted(self, query: str, *, k: int) -> tuple[Ranked, str | None]:
        """The ranking, and the unit highlighted in the top passage."""
        hits = self.searcher.search(query, k=k)
        return [(hit.passage.id, hit.score) for hit in hits], hits[0].answer if hits else None

    def requested(self, queries: Sequence[str]) -> list[str]:
        """Every text the searcher embeds for these queries (the query, and the query less
        its procedure name), without embedding them."""
        return list(dict.fromkeys([*queries, *(t for q in queries for t in self.searcher.query_texts(q))]))


def baseline_rankers(
    passages: Sequence[Passage], embedder: Embedder, *, cache: Path, progress: Progress | None = None
) -> list[Ranker]:
    """BM25, dense and their fusion over 'title. heading: text' of the passages; the passage
    embeddings come from `cache` when an earlier run stored them."""
    texts = [baseline_text(p) for p in passages]
    lexical = LexicalRanker(texts)
    dense = DenseRanker(cached_vectors(texts, embedder, cache, progress=progress), embedder)
    return [lexical, dense, FusionRanker([lexical, dense])]
