"""BM25 over passage text (bm25s), with English stop words and Snowball stemming."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from procqa.arrays import plain
from procqa.text import QueryTerms, tokenize


class Lexical:
    """A BM25 index whose document ids are passage ids."""

    def __init__(self, retriever: bm25s.BM25) -> None:
        self.retriever = retriever

    @classmethod
    def build(cls, texts: Sequence[str]) -> Lexical:
        retriever = bm25s.BM25()
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        retriever = bm25s.BM25.load(str(folder), mmap=True)
        retriever.scores = {name: plain(value) for name, value in retriever.scores.items()}
        return cls(retriever)

    def scores(self, query: str | QueryTerms) -> np.ndarray:
        """BM25 score of every passage for the query (zeros when no word is known)."""
        ids = self.query_ids(query)
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(ids), dtype=np.float32)

    def query_ids(self, query: str | QueryTerms) -> list[int]:
        known = self.retriever.vocab_dict
        return [known[w] for w in QueryTerms.of(query).stems if w in known]

    def holders(self, query: str | QueryTerms, *, most: int) -> list[np.ndarray]:
        """For each known word of the query that at most `most` passages hold, those passages."""
        postings = self.retriever.scores
        indptr, indices = postings["indptr"], postings["indices"]
        held = []
        for word in set(self.query_ids(query)):
            start, end = int(indptr[word]), int(indptr[word + 1])
            if end - start <= most:
                held.append(np.asarray(indices[start:end], dtype=np.int64))
        return held

    def postings(self, stem: str) -> np.ndarray | None:
        """The passages (ascending) that hold a stemmed word; None for a word none holds."""
        word = self.retriever.vocab_dict.get(stem)
        if word is None:
            return None
        postings = self.retriever.scores
        start, end = int(postings["indptr"][word]), int(postings["indptr"][word + 1])
        return np.sort(np.asarray(postings["indices"][start:end], dtype=np.int64))

    @property
    def vocabulary(self) -> list[str]:
        """Every stemmed word some passage holds."""
        return list(self.retriever.vocab_dict)

    @property
    def size(self) -> int:
        return int(self.retriever.scores["num_docs"])
