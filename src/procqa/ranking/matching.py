"""Procedure recognition: which procedure a query names, by code, name or everyday name.

Names come from the title, the 'Name of the Procedure' line, aliases given in front matter,
parenthesised abbreviations in the title, and the everyday names a Summary introduces
("often called gallbladder removal", "known as a knee scope"). Matching is fuzzy word by
word, so small misspellings still match, and rare words weigh more than common ones.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process
from scipy import sparse

from procqa.text import STOPWORDS, WORD, QueryTerms, code_key, words

CUES = re.compile(
    r"\b(?:called|known as|call it|know it as|refer to it as|referred to as|describe it as|"
    r"shortened to|nicknamed|hear it called|abbreviated)\s+(?P<rest>[^.;:]+)",
    re.I,
)
STOPS = re.compile(
    r",\s*(?:and|which|so|but|because|where|when|while)\b|\s+(?:and it|because|which|that|when|where|"
    r"while|to fix|for short)\b",
    re.I,
)
LEADING = re.compile(r"^(?:(?:a|an|the|simply|just|usually|often|also|getting|having|its|their|your|my)\s+)+", re.I)
# what a query naming a code may say of it: 'CPT code', 'ICD-10-CM', 'icd 10', 'diagnosis code'
CODE_PHRASES = re.compile(
    r"\b(?:(?:diagnosis|diagnostic|procedure|billing|medical)\s+codes?|"
    r"(?:icd|cpt|hcpcs)(?:[- ]?(?:10|9|4))?(?:[- ]?(?:cm|pcs))?(?:\s+codes?)?|codes?)\b",
    re.I,
)
NOT_NAME_START = STOPWORDS | {"pronounced", "along", "removes", "moves", "places", "uses", "takes"}


def everyday_names(summary: str) -> list[str]:
    """Names a Summary introduces with cue words like 'often called' or 'known as'.

    A list of names ends with its 'or' item: in "known as A, B or C, permanently prevents ..."
    what follows C is the sentence going on."""
    names: list[str] = []
    for match in CUES.finditer(summary):
        for chunk in STOPS.split(match["rest"])[0].split(","):
            for piece in re.split(r"\bor\b|\(|\)", chunk):
                name = LEADING.sub("", piece.strip(" \"'")).strip(" \"'")
                first = name.split()[0].lower() if name else ""
                if name and len(name.split()) <= 6 and first not in NOT_NAME_START:
                    names.append(name)
            if re.search(r"\bor\b", chunk):
                break
    return names


def title_names(title: str) -> list[str]:
    """The title, the title without its parentheses, and what the parentheses hold."""
    inner = re.findall(r"\(([^)]+)\)", title)
    bare = re.sub(r"\s*\([^)]*\)", "", title).strip()
    return [title, bare, *inner]


@dataclass(frozen=True)
class Name:
    procedure: int
    words: tuple[str, ...]


SPELLINGS_KEPT = 8192  # query words whose closest name spellings a matcher remembers


class ProcedureMatcher:
    """Scores how strongly a query names each procedure, 0 (not at all) to 1 (by name or code)."""

    def __init__(
        self,
        names: Sequence[Sequence[str]],
        codes: Sequence[str | None],
        texts: Sequence[str] | None = None,
        *,
        min_ratio: float = 80.0,
        closest: float = 4.0,
        evidence: float = 0.3,
    ) -> None:
        """`names` and `codes` per procedure; `texts` (each procedure's whole text) weigh words by
        how rare they are in the collection, so 'procedure' or 'surgery' in a name counts little.
        A misspelt word matches at `min_ratio` (0..100) and keeps the spellings within `closest`
        of its best; `evidence` is the share of a name's score that counts how rare its found words are."""
        self.min_ratio, self.closest, self.evidence = min_ratio, closest, evidence
        self.size = len(names)
        self.names = [Name(i, tuple(words(n))) for i, group in enumerate(names) for n in group if words(n)]
        bags = [set(words(t)) for t in texts] if texts is not None else [set() for _ in names]
        for name in self.names:
            bags[name.procedure].update(name.words)
        df = Counter(w for bag in bags for w in bag)
        self.idf = {w: math.log(1 + self.size / df[w]) for n in self.names for w in n.words}
        self.vocabulary = sorted(self.idf)
        self.enough = 1.5 * math.log(1 + self.size)  # evidence of about one and a half rare words
        # names x vocabulary, each word's idf where a name holds it: a query's evidence for
        # every name is one product with the columns of the words it matched
        column = {w: i for i, w in enumerate(self.vocabulary)}
        rows = np.repeat(np.arange(len(self.names)), [len(name.words) for name in self.names])
        cols = np.array([column[w] for name in self.names for w in name.words], dtype=np.int64)
        weights = np.array([self.idf[w] for name in self.names for w in name.words], dtype=np.float64)
        self.name_words = sparse.csc_matrix((weights, (rows, cols)), shape=(len(self.names), len(self.vocabulary)))
        self.column = column
        self.name_procedure = np.array([name.procedure for name in self.names], dtype=np.int64)
        self.totals = np.asarray(self.name_words.sum(axis=1)).ravel()
        # procedures x vocabulary: the words of all of a procedure's names
        self.procedure_words = sparse.csr_matrix(
            (np.ones(len(cols)), (self.name_procedure[rows], cols)), shape=(self.size, len(self.vocabulary))
        )
        # Queries bring the same few words again and again ("recovery", "after"), each of which a
        # fuzzy scan of every name word would look up anew.
        self._spellings = lru_cache(maxsize=SPELLINGS_KEPT)(self._closest_spellings)
        self.codes: dict[str, list[int]] = defaultdict(list)
        for i, code in enumerate(codes):
            if code:
                self.codes[code_key(code)].append(i)

    def code_matches(self, query: str | QueryTerms) -> list[int]:
        """Procedures whose code appears in the query as a word of its own."""
        return [i for token in QueryTerms.of(query).codes for i in self.codes.get(code_key(token), [])]

    def _word_matches(self, query_words: Iterable[str]) -> dict[str, float]:
        """For each vocabulary word, how well some query word matches it (0..1)."""
        best: dict[str, float] = {}
        for word in set(query_words):
            if word in self.idf:
                best[word] = 1.0
                continue
            if len(word) < 4:
                continue
            for candidate, score in self._spellings(word):
                best[candidate] = max(best.get(candidate, 0.0), score)
        return best

    def _closest_spellings(self, word: str) -> tuple[tuple[str, float], ...]:
        """The name words a word not among them may be a misspelling of, with how close (0..1).
        A misspelt word means one word: only the closest spellings count ('masectomy' is
        mastectomy, not vasectomy)."""
        found = process.extract(word, self.vocabulary, scorer=fuzz.ratio, score_cutoff=self.min_ratio, limit=5)
        top = max((score for _, score, _ in found), default=0.0)
        return tuple((candidate, score / 100) for candidate, score, _ in found if score >= top - self.closest)

    def residual(self, query: str | QueryTerms, scores: Sequence[float] | np.ndarray, *, threshold: float = 0.5) -> str:
        """The query without the words that name the best recognised procedure(s) or a code:
        what is left says which section is wanted."""
        terms = QueryTerms.of(query)
        scores = np.asarray(scores, dtype=np.float64)
        cut = max(threshold, 0.9 * float(scores.max(initial=0.0)))
        best = np.flatnonzero(scores >= cut)
        named = {self.vocabulary[c] for c in np.unique(self.procedure_words[best].indices).tolist()}
        codes = {key for key in map(code_key, terms.codes) if key in self.codes}
        tokens = (CODE_PHRASES.sub(" ", terms.text) if codes else terms.text).split()
        naming = [_names(token, named, codes, self.min_ratio) for token in tokens]
        # a small word between two naming words is part of the name: colonoscopy *with* biopsy
        joining = [
            0 < i < len(tokens) - 1 and naming[i - 1] and naming[i + 1] and token.lower() in STOPWORDS
            for i, token in enumerate(tokens)
        ]
        return " ".join(t for t, name, join in zip(tokens, naming, joining, strict=True) if not (name or join))

    def scores(self, query: str | QueryTerms) -> np.ndarray:
        """Per procedure: the best idf-weighted share of one of its names found in the query."""
        matched = self._word_matches(QueryTerms.of(query).words)
        out = np.zeros(self.size, dtype=np.float64)
        if not matched:
            return out
        columns = [self.column[w] for w in matched]
        got = self.name_words[:, columns] @ np.fromiter(matched.values(), dtype=np.float64, count=len(matched))
        found = np.flatnonzero(got)
        if not found.size:
            return out
        got = got[found]
        score = (1 - self.evidence) * got / self.totals[found] + self.evidence * np.minimum(1.0, got / self.enough)
        # names are numbered procedure by procedure: each procedure gets the best of its run
        procedures = self.name_procedure[found]
        starts = np.flatnonzero(np.diff(procedures, prepend=-1))
        out[procedures[starts]] = np.maximum.reduceat(score, starts)
        return out


def _names(token: str, named: set[str], codes: set[str], min_ratio: float) -> bool:
    """Whether a query token is a code or a word of a recognised procedure's name."""
    if codes and code_key(token.strip(".,?!:;()")) in codes:
        return True
    bare = WORD.findall(token.lower())
    return bool(bare) and all(_close(b, named, min_ratio) for b in bare)


def _close(word: str, vocabulary: set[str], min_ratio: float) -> bool:
    if word in vocabulary:
        return True
    if len(word) < 4:
        return False
    return process.extractOne(word, vocabulary, scorer=fuzz.ratio, score_cutoff=min_ratio) is not None
