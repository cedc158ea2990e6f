"""Every tuned number of ranking in one frozen object, passed in and recorded with results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Weights:
    """How much each signal counts in the fused score."""

    dense: float = 1.5
    identity: float = 1.0
    lexical: float = 0.2
    procedure_lexical: float = 1.0
    own_word: float = 1.0
    procedure: float = 2.0
    section: float = 1.0
    section_words: float = 1.0
    unit: float = 1.5
    code: float = 2.0


# The signals Searcher.signals gives each passage, in order, each weighed by the Weights field
# of its name; the answer unit's (`unit`) is added apart, and `code` weighs codes inside
# procedure recognition.
SIGNALS = ("dense", "identity", "lexical", "procedure_lexical", "own_word", "procedure", "section", "section_words")


@dataclass(frozen=True)
class RankingConfig:
    """The numbers ranking was tuned with, on the tuning parts of the question sets in eval/.

    A searcher is given one; the index manifest and every evaluation report record the one
    they were made with."""

    weights: Weights = field(default_factory=Weights)
    # Section intent is read from the query less its procedure's name, and this share from the
    # whole query: the name can carry what is asked ("blood transfusion reactions" -> "reactions").
    whole_query_intent: float = 0.25
    bare_name: str = "what is it"  # a query that is only a name or a code asks what the procedure is
    # candidates
    # Up to this many passages (after filters) every passage is scored. Measured on two cores:
    # at the sample corpus's 1,300 passages the candidate path is as fast as the full scan
    # (11.2 against 11.3 ms p50), at 10,000 long sections it takes half the time (15 against
    # 28 ms), so the exact scan is kept only where it costs nothing.
    full_scan: int = 2_000
    dense_candidates: int = 200
    lexical_candidates: int = 200
    top_procedures: int = 20
    # answer units: up to unit_rows rows, every row's units are scored; more, only those of
    # rows that can still reach the best unit_exact scores (procqa.ranking.units)
    unit_rows: int = 256
    unit_exact: int = 100  # settings.max_k: the most results a search may ask for
    # Above this many passages a build pools answer units out of their passage's forward pass
    # (procqa.pooling: a build costs about a bare encode of the passages); up to it, each unit
    # is embedded alone, which ranked 1-2 points of hit@1 better on the eval/ collections.
    context_units_above: int = 5_000
    shortlist_above: int = 10_000  # procedures; with more, coded Summaries propose the best ones
    proposals: int = 200  # Summaries the codes propose for top_procedures
    # procedure matching
    min_ratio: float = 80.0  # fuzzy match of a misspelt word, 0..100
    closest: float = 4.0  # a misspelt word keeps only the spellings this close to its best
    evidence: float = 0.3  # a name's score: its share found in the query, and how much evidence that is
    # section intent
    neighbours: int = 3
    temperature: float = 0.05
    intent_scale: float = 10.0
    smoothing: float = 0.3  # additive smoothing of SectionWords' word counts
    written_examples: int = 100  # answer units of a collection's own heading that serve as its examples
    max_headings: int = 40  # a collection's own headings with a section intent of their own
    heading_kind: float = 0.4  # how clearly an unknown heading's text must read as a canonical section to join it

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for a manifest or a report."""
        return asdict(self)
