"""The canonical section an unknown heading stands for, read when an index version loads.

A heading procqa knows nothing of ("Going home", "Afterwards") is read by the canonical
sections' own example questions (data/sections.json), applied to what the collection writes
under it and to its name. It answers under the section its text reads as most, with its own
examples added, when that reading is clear (`RankingConfig.heading_kind`: the text gives the
section at least that share, or the name does and reads as the same section first), the
name does not read as less than an even share of it, and the collection has no passage of
that section. Only procqa's data decides this, never a collection's questions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from procqa.ingest.sections import CANONICAL, section_kind
from procqa.ranking.config import RankingConfig
from procqa.ranking.intent import TEMPLATES, SectionIntent, own_examples


def inferred_kinds(
    labels: Sequence[str], texts: Sequence[str], vectors: np.ndarray, present: Collection[str], config: RankingConfig
) -> dict[str, str]:
    """Per intent label of an unknown heading, the canonical section it stands for, where it
    clearly stands for one that no passage in `present` is filed under."""
    unknown = sorted(label for label in set(labels) if label not in CANONICAL and not section_kind(label))
    if not unknown:
        return {}
    own = {(name, text) for name in CANONICAL for text in own_examples(name)}
    mine = np.array([pair in own for pair in zip(labels, texts, strict=True)], dtype=bool)
    if not mine.any():
        return {}
    model = SectionIntent(
        tuple(label for label, keep in zip(labels, mine, strict=True) if keep),
        vectors[mine],
        scale=config.intent_scale,
        neighbours=config.neighbours,
        temperature=config.temperature,
    )
    even = 1 / len(model.names)
    out: dict[str, str] = {}
    for label in unknown:
        names = {template.format(label.lower()) for template in TEMPLATES}
        rows = [i for i, found in enumerate(labels) if found == label]
        name = [i for i in rows if texts[i] in names]
        written = [i for i in rows if texts[i] not in names]
        if not name or not written:
            continue
        read, called = model.mean_probabilities(vectors[written]), model.mean_probabilities(vectors[name])
        best = int(read.argmax())
        kind = model.names[best]
        clear = read[best] >= config.heading_kind or (called[best] >= config.heading_kind and called.argmax() == best)
        if clear and called[best] >= even and kind not in present:
            out[label] = kind
    return out


def merged(labels: Sequence[str], texts: Sequence[str], kinds: dict[str, str]) -> tuple[tuple[str, ...], np.ndarray]:
    """The labels with each heading in `kinds` folded into its section's, and the rows to keep:
    each (label, text) pair once."""
    folded = [kinds.get(label, label) for label in labels]
    seen: set[tuple[str, str]] = set()
    keep = []
    for row, pair in enumerate(zip(folded, texts, strict=True)):
        if pair not in seen:
            seen.add(pair)
            keep.append(row)
    return tuple(folded[row] for row in keep), np.array(keep, dtype=np.int64)
