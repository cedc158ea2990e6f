"""Text handling shared by every layer: stemmed words, slugs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import bm25s
import Stemmer


@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> bm25s.tokenization.Tokenized:
    """bm25s tokens of the texts: English stop words left out, Snowball stems."""
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)


def stems(texts: Sequence[str]) -> list[list[str]]:
    """Each text's stemmed words, stop words left out."""
    tokens = tokenize(texts)
    vocab = {v: k for k, v in tokens.vocab.items()}
    return [[vocab[i] for i in ids] for ids in tokens.ids]


def slugify(text: str) -> str:
    """Lower-case letters and digits joined by hyphens: 'Knee (TKA)' -> 'knee-tka'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
