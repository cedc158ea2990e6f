"""Text handling shared by every layer: words, stems, stop words, code keys, slugs, and the
terms of a query."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import bm25s
import Stemmer

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.]*[A-Za-z0-9])?")  # a word that may be a code: 47562, E11.9, 0DTJ4ZZ
# Two lists of stop words, both defined here. Names and questions (`words`) drop the small
# words of a question ("how long after", "what do I"); BM25 and section intent (`stems`) drop
# NLTK's English list as bm25s ships it ("en"), which keeps "how", "when", "after" that say
# which section is wanted and drops "not", "no", "if". Every index's BM25 vocabulary and the
# fitted intent models were built with the second list, so making them one would change rankings.
STOPWORDS = frozenset(
    "a an the of and or with for to in on at by from into is are be it its this that what how "
    "do does did i my me you your can will should when why who where which was were after before "
    "during about long much many".split()
)
BM25_STOPWORDS = tuple(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> bm25s.tokenization.Tokenized:
    """bm25s tokens of the texts: BM25_STOPWORDS left out, Snowball stems."""
    return bm25s.tokenize(list(texts), stopwords=list(BM25_STOPWORDS), stemmer=_stemmer(), show_progress=False)


TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) token pattern
_BM25_STOPWORDS = frozenset(BM25_STOPWORDS)


def stems(texts: Sequence[str]) -> list[list[str]]:
    """Each text's stemmed words, BM25_STOPWORDS left out: the stems `tokenize` gives, split
    and stemmed here directly, as a query's few words are too few to pay for bm25s's batch."""
    stem = _stemmer().stemWords
    return [stem([t for t in TOKEN.findall(text.lower()) if t not in _BM25_STOPWORDS]) for text in texts]


def slugify(text: str) -> str:
    """Lower-case letters and digits joined by hyphens: 'Knee (TKA)' -> 'knee-tka'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def words(text: str) -> list[str]:
    """Lower-case words and numbers, the small words (STOPWORDS) left out: what names match on."""
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def code_key(code: str) -> str:
    """Codes compare without case or dots: 'e11.9', 'E119' and 'E11.9' are one code."""
    return code.upper().replace(".", "").strip()


@dataclass(frozen=True)
class QueryTerms:
    """A query split once, for every part of a search that reads its words: its words (as
    names match on), its stems (as BM25 scores) and the tokens that may be codes."""

    text: str
    words: tuple[str, ...]
    stems: tuple[str, ...]
    codes: tuple[str, ...]

    @classmethod
    def of(cls, query: str | QueryTerms) -> QueryTerms:
        """The terms of a query (the same object when given terms already)."""
        if isinstance(query, QueryTerms):
            return query
        return cls(query, tuple(words(query)), tuple(stems([query])[0]), tuple(CODE.findall(query)))
