"""Answer-unit vectors pooled from their passage's own forward pass ("late chunking",
Günther et al. 2024): a unit's vector is the mean of its tokens' embeddings, read in the
context of the whole passage, so a build runs the model once per passage, not once more per
sentence, and a sentence like "It takes about six weeks." keeps what "it" is.

A passage longer than the model's window (256 tokens for all-MiniLM-L6-v2) is read in
windows: the first is the passage as the model truncates it, whose pooled vector is exactly
the passage's `model.encode` vector; the units that do not fit whole in it are read again in
more windows, each the passage's heading tokens ('Title. Section:') followed by as many of
those units as fit. So no unit of a long section goes without a vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Span = tuple[int, int]  # a unit's characters in its passage's text: [start, end)


class ContextEmbedder(Protocol):
    """An embedder that also pools answer units out of their passage's forward pass."""

    def embed_in_context(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> tuple[np.ndarray, np.ndarray]:
        """The passages' vectors, and their units' vectors (all units, passage by passage)."""
        ...


@dataclass(frozen=True)
class Window:
    """Token ids the model reads at once, and where each unit's tokens lie among them."""

    passage: int
    ids: tuple[int, ...]
    units: tuple[tuple[int, int, int], ...]  # (unit number in the passage, first token, end token)
    first: bool  # the passage as the model truncates it: its pooled vector is the passage's


def token_ranges(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[tuple[int, int]]:
    """Per unit, the tokens [first, end) whose characters lie in its span (special tokens,
    whose offsets are (0, 0), lie in none); (0, 0) for a unit without tokens."""
    starts = np.array([s for s, e in offsets], dtype=np.int64)
    ends = np.array([e for s, e in offsets], dtype=np.int64)
    real = ends > starts
    ranges = []
    for start, end in spans:
        inside = np.flatnonzero(real & (starts >= start) & (ends <= end))
        ranges.append((int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0))
    return ranges


def windows(
    passage: int, ids: Sequence[int], ranges: Sequence[tuple[int, int]], *, head: int, size: int
) -> list[Window]:
    """The windows of one tokenized passage (`ids` from [CLS] to [SEP], `head`: tokens before
    its first unit, [CLS] included), each at most `size` tokens long."""
    cls, sep = ids[0], ids[-1]
    if len(ids) <= size:
        units = tuple((u, s, e) for u, (s, e) in enumerate(ranges) if e > s)
        return [Window(passage, tuple(ids), units, True)]
    first = (*ids[: size - 1], sep)
    fits = tuple((u, s, e) for u, (s, e) in enumerate(ranges) if e > s and e <= size - 1)
    out = [Window(passage, first, fits, True)]
    done = {u for u, _, _ in fits}
    prefix = list(ids[1:head])
    room = size - 2 - len(prefix)
    current: list[int] = []
    placed: list[tuple[int, int, int]] = []
    for u, (s, e) in enumerate(ranges):
        if u in done or e <= s:
            continue
        tokens = list(ids[s:e])[: max(room, 1)]
        if current and len(current) + len(tokens) > room:
            out.append(_window(passage, cls, sep, prefix, current, placed))
            current, placed = [], []
        offset = 1 + len(prefix) + len(current)
        placed.append((u, offset, offset + len(tokens)))
        current += tokens
    if placed:
        out.append(_window(passage, cls, sep, prefix, current, placed))
    return out


def _window(
    passage: int, cls: int, sep: int, prefix: list[int], tokens: list[int], placed: list[tuple[int, int, int]]
) -> Window:
    return Window(passage, (cls, *prefix, *tokens, sep), tuple(placed), False)


def embed_in_context(
    model: Any, texts: Sequence[str], spans: Sequence[Sequence[Span]], *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Passage vectors (as `model.encode` gives them) and unit vectors (mean of the unit's
    token embeddings, L2-normalised) of a sentence-transformers model with mean pooling."""
    size = int(model.max_seq_length)
    tokenized = model.tokenizer(list(texts), add_special_tokens=True, return_offsets_mapping=True, truncation=False)
    plan: list[Window] = []
    for i, (ids, offsets) in enumerate(zip(tokenized["input_ids"], tokenized["offset_mapping"], strict=True)):
        ranges = token_ranges(offsets, spans[i])
        head = min([s for s, e in ranges if e > s], default=len(ids) - 1)
        plan += windows(i, ids, ranges, head=head, size=size)
    dimension = int(model.get_embedding_dimension())
    passages = np.zeros((len(texts), dimension), dtype=np.float32)
    starts = np.cumsum([0] + [len(s) for s in spans])
    units = np.zeros((int(starts[-1]), dimension), dtype=np.float32)
    order = sorted(range(len(plan)), key=lambda w: -len(plan[w].ids))
    for begin in range(0, len(order), batch_size):
        batch = [plan[w] for w in order[begin : begin + batch_size]]
        tokens, pooled = _forward(model, batch)
        for row, window in enumerate(batch):
            if window.first:
                passages[window.passage] = pooled[row]
            for unit, first, end in window.units:
                units[starts[window.passage] + unit] = tokens[row, first:end].mean(axis=0)
    return passages, _normalised(units)


def _forward(model: Any, batch: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings and pooled sentence vectors of a batch of windows."""
    import torch

    longest = max(len(w.ids) for w in batch)
    ids = torch.zeros((len(batch), longest), dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, window in enumerate(batch):
        ids[row, : len(window.ids)] = torch.tensor(window.ids)
        mask[row, : len(window.ids)] = 1
    features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    with torch.inference_mode():
        out = model.forward(features)
    return out["token_embeddings"].float().numpy(), out["sentence_embedding"].float().numpy()


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def unit_spans(prefix: int, units: Sequence[str]) -> list[Span]:
    """Where each unit lies in a passage's embedded text: `prefix` characters of heading, then
    the units joined by newlines."""
    spans = []
    start = prefix
    for unit in units:
        spans.append((start, start + len(unit)))
        start += len(unit) + 1
    return spans
