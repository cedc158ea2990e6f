"""Names of medical things (procedures, tests, conditions, medicines) found in a question.

A gazetteer of names people search with, from data/terms.json, lets procqa tell that a
question names something specific ("lasik", "vasectomy reversal", "tramadol") and so check
whether the collection has a page about it. Matching is word by word, tolerant of small
misspellings, and keeps only the longest names found: "vasectomy reversal", not "vasectomy".
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from rapidfuzz import fuzz, process

from procqa.text import QueryTerms, words

MIN_RATIO = 88.0  # a misspelt word of five letters or more still matches ("colonscopy")
MIN_FUZZY = 5


@dataclass(frozen=True)
class Term:
    """A name found in a question: as the gazetteer writes it, its words, and the query's words
    that matched them."""

    name: str
    words: tuple[str, ...]
    found: tuple[str, ...]
    kind: str = ""  # procedures, tests, conditions or medicines

    def as_written(self, query: str) -> str:
        """The name as the query writes it: from its first word found to its last ("LASIK")."""
        places = [[m.span() for m in re.finditer(rf"\b{re.escape(w)}\b", query, re.I)] for w in self.found]
        if not all(places):
            return self.name
        # the tightest window holding each word once: around each place of the first word
        windows = []
        for start, end in places[0]:
            spans = [(start, end)] + [min(p, key=lambda s: abs(s[0] - start)) for p in places[1:]]
            windows.append((min(s for s, _ in spans), max(e for _, e in spans)))
        first, last = min(windows, key=lambda w: w[1] - w[0])
        return query[first:last]


class Spellings:
    """A vocabulary that finds the word a query word stands for: itself, or its closest spelling."""

    def __init__(self, vocabulary: Collection[str]) -> None:
        self.vocabulary = frozenset(vocabulary)
        # a ratio of 88 allows a length difference of 1 in 17 letters: compare like lengths only
        by_length: dict[int, list[str]] = defaultdict(list)
        for word in sorted(self.vocabulary):
            by_length[len(word)].append(word)
        self.near_length = {
            n: [w for m in range(n - 2, n + 3) for w in by_length.get(m, ())]
            for n in range(MIN_FUZZY, max(by_length, default=0) + 3)
        }

    def __contains__(self, word: object) -> bool:
        return word in self.vocabulary

    def closest(self, word: str) -> str | None:
        if word in self.vocabulary:
            return word
        if len(word) < MIN_FUZZY or word.isdigit():
            return None
        choices = self.near_length.get(len(word), ())
        match = process.extractOne(word, choices, scorer=fuzz.ratio, score_cutoff=MIN_RATIO)
        return None if match is None else str(match[0])


class Terms:
    """The gazetteer, indexed by word."""

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        """`names` by kind (procedures, tests, conditions, medicines); a name of two kinds is
        of the first."""
        self.names: list[tuple[str, tuple[str, ...], str]] = []
        self.by_word: dict[str, set[int]] = defaultdict(set)
        self.by_key: dict[str, list[int]] = defaultdict(list)  # names by their rarest word
        seen: set[str] = set()
        for kind, group in names.items():
            for name in group:
                split = tuple(dict.fromkeys(words(name)))
                # "t&a" keeps only "t" once its stop word goes: a lone letter names nothing
                if any(len(w) > 1 for w in split) and name not in seen:
                    seen.add(name)
                    for word in split:
                        self.by_word[word].add(len(self.names))
                    self.names.append((name, split, kind))
        self.spellings = Spellings(self.by_word)
        for i, (_, split, _) in enumerate(self.names):
            self.by_key[min(split, key=lambda w: (len(self.by_word[w]), w))].append(i)

    @classmethod
    @cache
    def bundled(cls) -> Terms:
        """The gazetteer shipped in data/terms.json."""
        raw = json.loads(resources.files("procqa").joinpath("data/terms.json").read_text("utf-8"))
        return cls(raw)

    def find(self, query: str | QueryTerms, *, spelt: Collection[str] = ()) -> list[Term]:
        """The longest names whose every word the query holds, in the gazetteer's order. A word
        in `spelt` (a collection's own words) is taken as spelt right: no closest spelling."""
        present: dict[str, str] = {}
        for word in QueryTerms.of(query).words:
            match = word if word in self.by_word else None if word in spelt else self.spellings.closest(word)
            if match is not None:
                present.setdefault(match, word)
        found = {i for word in present for i in self.by_word[word] if all(w in present for w in self.names[i][1])}
        spans = {i: frozenset(self.names[i][1]) for i in found}
        longest = {spans[i]: i for i in sorted(found, reverse=True) if not any(spans[i] < spans[j] for j in found)}
        return [
            Term(name, split, tuple(present[w] for w in split), kind)
            for name, split, kind in (self.names[i] for i in sorted(longest.values()))
        ]
