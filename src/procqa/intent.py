"""Section intent: how well a question matches each section, learned from example questions.

Canonical sections are described by the example questions, description and aliases in
data/sections.json; a heading of another collection ("Symptoms") by question templates
around its own name. A section's score is the mean of its best few example similarities.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from procqa.sections import CANONICAL, section_info

TEMPLATES = ("{}", "what are the {}", "tell me about the {}", "{} information", "what about {}")
TOP = 3


def intent_texts(labels: Iterable[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(label, text) pairs, as two tuples, for the canonical sections and any other labels."""
    pairs: list[tuple[str, str]] = []
    for name, info in section_info().items():
        texts = (name, info.description, *info.aliases, *info.examples)
        pairs += [(name, text) for text in dict.fromkeys(texts)]
    for label in sorted(set(labels) - set(CANONICAL)):
        pairs += [(label, template.format(label.lower())) for template in TEMPLATES]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


class SectionIntent:
    """Scores a query vector against every section label of an index."""

    def __init__(self, labels: tuple[str, ...], vectors: np.ndarray, *, temperature: float = 0.05) -> None:
        self.names = tuple(dict.fromkeys(labels))
        self.temperature = temperature
        position = {name: i for i, name in enumerate(self.names)}
        self._label_ids = np.array([position[label] for label in labels])
        self._vectors = np.asarray(vectors, dtype=np.float32)

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Mean of the TOP best example similarities, one per label in `names` order."""
        sims = self._vectors @ query
        out = np.empty(len(self.names), dtype=np.float32)
        for i in range(len(self.names)):
            row = np.sort(sims[self._label_ids == i])
            out[i] = row[-TOP:].mean()
        return out

    def probabilities(self, query: np.ndarray) -> dict[str, float]:
        sims = self.similarities(query) / self.temperature
        weights = np.exp(sims - sims.max())
        weights /= weights.sum()
        return dict(zip(self.names, weights.tolist(), strict=True))
