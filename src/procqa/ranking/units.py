"""Scoring answer units only where they can change the ranking.

A passage's best-unit similarity is one signal of its fused score, and the costliest: a
collection of long sections holds 14 units a passage, and reading every unit vector for every
query (165,000 of them for 12,000 sections) takes longer than the rest of a query together.
It is bounded without reading a unit: for a unit u of a passage whose vector is p, and a
normalised query q, u.q = p.q + (u - p).q <= p.q + |u - p|, and the passage's reach,
max |u - p| over its units, is computed once per index version. Rows are scored in the order
of that ceiling until the best `exact` exact scores all lie above every remaining ceiling;
rows left have no unit term, and none of them could have entered the best `exact`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from procqa.index import Rows

CHUNK_UNITS = 65_536  # units compared with their passage vector at a time when reaches are computed


def unit_reach(vectors: np.ndarray | Rows, units: np.ndarray | Rows, offsets: np.ndarray) -> np.ndarray | None:
    """Per passage, the farthest any of its units lies from its vector (-1 for a passage
    without units); None when the units are read from disk (then every unit is scored)."""
    if not isinstance(vectors, np.ndarray) or not isinstance(units, np.ndarray):
        return None
    lengths = np.diff(offsets)
    reach = np.full(len(lengths), -1.0, dtype=np.float32)
    owners = np.repeat(np.arange(len(lengths)), lengths)
    for start in range(0, len(owners), CHUNK_UNITS):
        mine = owners[start : start + CHUNK_UNITS]
        distances = np.linalg.norm(units[start : start + len(mine)] - vectors[mine], axis=1).astype(np.float32)
        np.maximum.at(reach, mine, distances)
    return reach


def pruned_units(
    partial: np.ndarray,
    ceiling: np.ndarray,
    best_units: Callable[[np.ndarray], np.ndarray],
    *,
    weight: float,
    exact: int,
    first: int,
) -> np.ndarray:
    """Per row, its best-unit similarity where it could matter, else 0: rows are scored
    (`best_units` of their positions) in descending `ceiling`, `first` at first and then
    twice as many each time, until the `exact` best of `partial + weight * units` so far
    beat every ceiling left. `ceiling` is the most a row's best-unit similarity can be."""
    units = np.zeros(len(partial), dtype=np.float32)
    order = np.argsort(-(partial + weight * ceiling), kind="stable")
    done, step = 0, max(first, 1)
    while done < len(order):
        picked = order[done : done + step]
        units[picked] = best_units(picked)
        done += len(picked)
        if done >= len(order):
            break
        scored = order[:done]
        full = partial[scored] + weight * units[scored]
        need = min(exact, len(full))
        left = order[done]
        if need and float(np.partition(full, -need)[-need]) > float(partial[left] + weight * ceiling[left]):
            break
        step *= 2
    return units
