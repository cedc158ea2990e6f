"""Section intent: how well a question matches each section, learned from example questions.

Canonical sections are described by the example questions, description and aliases in
data/sections.json. Any other heading of a collection ("Symptoms") is described by question
templates around its name, by the example questions of the common heading it is a variant of
(data/headings.json), and by what the collection writes under it. Two models learn
P(section | query) from the same examples: a softmax regression over their embeddings, and
naive Bayes over their stemmed words.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np

from procqa.documents import Procedure
from procqa.ingest.sections import CANONICAL, known_heading, section_info
from procqa.ranking.config import RankingConfig
from procqa.text import stems

TEMPLATES = ("{}", "what are the {}", "tell me about the {}", "{} information", "what about {}")
# Questions pages like these rarely answer (cost, parking, which doctor), from data/outside.json,
# are stored with the intent examples under this prefix: coverage compares a question with
# them, section intent leaves them out.
OUTSIDE = "outside: "


def intent_texts(
    procedures: Iterable[Procedure] = (), config: RankingConfig | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(label, text) pairs, as two tuples: the canonical sections, then the `max_headings` other
    headings of the collection written most often."""
    config = config or RankingConfig()
    written: dict[str, list[str]] = {}
    uses: Counter[str] = Counter()
    for section in (section for procedure in procedures for section in procedure.sections):
        # A collection that words a canonical heading its own way ("Side Effects" of a medicine,
        # "Complications" of a disease) means something the procedure examples do not cover.
        if section.name not in CANONICAL or section.heading not in ("", section.name):
            written.setdefault(section.name, []).extend(unit.render() for unit in section.units)
        if section.name not in CANONICAL:
            uses[section.name] += 1
    pairs: list[tuple[str, str]] = []
    for name in section_info():
        pairs += _examples(name, own_examples(name), written.get(name, []), config.written_examples)
    # A heading written once or twice says little about what questions it answers, and each
    # label modelled costs the intent regression a column at every load.
    most = sorted(uses, key=lambda label: (-uses[label], label))[: config.max_headings]
    for label in sorted(most):
        pairs += _examples(label, own_examples(label), written[label], config.written_examples)
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def own_examples(label: str) -> tuple[str, ...]:
    """A label's examples apart from what a collection writes under it: a canonical section's
    name, description, aliases and example questions; another heading's name in question
    templates, and the description and examples of the common heading it is a variant of."""
    info = section_info().get(label)
    if info is not None:
        return (label, info.description, *info.aliases, *info.examples)
    known = known_heading(label)
    return (
        *(template.format(label.lower()) for template in TEMPLATES),
        *((known.description, *known.examples) if known else ()),
    )


def outside_texts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(label, text) pairs of the questions pages rarely answer, labels prefixed by OUTSIDE."""
    raw = json.loads(resources.files("procqa").joinpath("data/outside.json").read_text("utf-8"))
    pairs = [(f"{OUTSIDE}{kind}", text) for kind, entry in raw.items() for text in entry["examples"]]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def index_examples(
    procedures: Iterable[Procedure] = (), config: RankingConfig | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What an index stores to embed: the intent examples, then the questions pages rarely answer."""
    labels, texts = intent_texts(procedures, config)
    outside_labels, outside = outside_texts()
    return labels + outside_labels, texts + outside


def _examples(label: str, own: Sequence[str], written: Sequence[str], most: int) -> list[tuple[str, str]]:
    """A label's distinct examples: its own, then an even spread of what is written under it."""
    return [(label, text) for text in dict.fromkeys([*own, *spread(written, most)])]


def spread(items: Sequence[str], n: int) -> list[str]:
    """Up to n distinct items, evenly spaced from first to last, so that they come from the
    whole collection rather than its first documents."""
    distinct = list(dict.fromkeys(items))
    if len(distinct) <= n:
        return distinct
    return [distinct[i] for i in np.linspace(0, len(distinct) - 1, n).round().astype(int)]


class SectionIntent:
    """A softmax regression from query vectors to section labels, fitted on the example
    embeddings when an index is loaded (0.2 s for the thirteen sections, about 1.5 s with 40
    headings of a collection's own)."""

    def __init__(
        self,
        labels: tuple[str, ...],
        vectors: np.ndarray,
        *,
        scale: float = 10.0,
        neighbours: int = 3,
        temperature: float = 0.05,
    ) -> None:
        self.names = tuple(dict.fromkeys(labels))
        self.scale = scale
        self.count = neighbours
        self.temperature = temperature
        position = {name: i for i, name in enumerate(self.names)}
        self.label_ids = np.array([position[label] for label in labels], dtype=np.int64)
        self.groups = [np.flatnonzero(self.label_ids == label) for label in range(len(self.names))]
        self.examples = np.asarray(vectors, dtype=np.float32)
        targets = np.eye(len(self.names), dtype=np.float32)[self.label_ids]
        self.weights, self.bias = _fit(self.examples, targets, scale)

    def logits(self, query: np.ndarray) -> np.ndarray:
        logits: np.ndarray = self.scale * (query @ self.weights) + self.bias
        return logits

    def neighbours(self, query: np.ndarray) -> np.ndarray:
        """Per label, the mean similarity of its `neighbours` closest examples."""
        sims = self.examples @ query
        out = np.zeros(len(self.names), dtype=np.float32)
        for label, rows in enumerate(self.groups):
            out[label] = np.sort(sims[rows])[-self.count :].mean()
        return out

    def probabilities(self, query: np.ndarray) -> np.ndarray:
        """P(label | query), in `names` order: the regression averaged with nearest examples,
        which keeps a short question close to its obvious examples ('preparation')."""
        both: np.ndarray = _softmax(self.logits(query)) + _softmax(self.neighbours(query) / self.temperature)
        return both / 2

    def mean_probabilities(self, queries: np.ndarray) -> np.ndarray:
        """The mean of `probabilities` over the rows of `queries`, computed for all rows at once."""
        sims = queries @ self.examples.T
        near = np.stack([np.sort(sims[:, rows], axis=1)[:, -self.count :].mean(axis=1) for rows in self.groups], axis=1)
        both = _softmax(self.logits(queries), axis=1) + _softmax(near / self.temperature, axis=1)
        mean: np.ndarray = (both / 2).mean(axis=0)
        return mean


class SectionWords:
    """Multinomial naive Bayes over stemmed words, each counted once per example.

    A short question often carries its intent in one word ("arm *restrictions*", "adult circ
    *prep*", "transfusion *reactions*") that a sentence embedding of two or three words blurs;
    counting which sections' examples use that word keeps it."""

    def __init__(self, labels: tuple[str, ...], texts: tuple[str, ...], *, smoothing: float = 0.3) -> None:
        self.names = tuple(dict.fromkeys(labels))
        position = {name: i for i, name in enumerate(self.names)}
        bags = zip(labels, stems(texts), strict=True)
        examples = [(position[label], word) for label, bag in bags for word in set(bag)]
        self.vocabulary = {word: i for i, word in enumerate(sorted({word for _, word in examples}))}
        counts = np.zeros((len(self.names), len(self.vocabulary)), dtype=np.float64)
        for label, word in examples:
            counts[label, self.vocabulary[word]] += 1
        totals = counts.sum(axis=1, keepdims=True) + smoothing * len(self.vocabulary)
        self.log_likelihood = np.log((counts + smoothing) / np.maximum(totals, smoothing))

    def probabilities(self, text: str) -> np.ndarray:
        """P(label | the question's words), in `names` order; uniform when no word is known."""
        known = [self.vocabulary[w] for w in stems([text])[0] if w in self.vocabulary]
        if not known:
            return np.full(len(self.names), 1 / max(len(self.names), 1), dtype=np.float32)
        return _softmax(self.log_likelihood[:, known].sum(axis=1)).astype(np.float32)


def _softmax(logits: np.ndarray, axis: int | None = None) -> np.ndarray:
    weights = np.exp(logits - logits.max(axis=axis, keepdims=axis is not None))
    shares: np.ndarray = weights / weights.sum(axis=axis, keepdims=axis is not None)
    return shares


def _fit(
    x: np.ndarray, y: np.ndarray, scale: float, *, steps: int = 300, l2: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on the L2-regularised softmax loss; deterministic."""
    weights = np.zeros((x.shape[1], y.shape[1]), dtype=np.float32)
    bias = np.zeros(y.shape[1], dtype=np.float32)
    if not len(x):
        return weights, bias
    for _ in range(steps):
        logits = scale * (x @ weights) + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        error = (p - y) / len(x)
        weights -= scale * (x.T @ error) + weights / (l2 * len(x))
        bias -= error.sum(axis=0)
    return weights, bias
