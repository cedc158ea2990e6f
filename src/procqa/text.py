"""Text handling shared by every layer: words, stems, stop words, code keys, slugs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import bm25s
import Stemmer

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.]*[A-Za-z0-9])?")  # a word that may be a code: 47562, E11.9, 0DTJ4ZZ
# the small words of names and questions; BM25 and section intent use bm25s's English list (`stems`)
STOPWORDS = frozenset(
    "a an the of and or with for to in on at by from into is are be it its this that what how "
    "do does did i my me you your can will should when why who where which was were after before "
    "during about long much many".split()
)


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


def words(text: str) -> list[str]:
    """Lower-case words and numbers, the small words (STOPWORDS) left out: what names match on."""
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def code_key(code: str) -> str:
    """Codes compare without case or dots: 'e11.9', 'E119' and 'E11.9' are one code."""
    return code.upper().replace(".", "").strip()
