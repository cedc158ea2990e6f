"""What every query needs of every passage, and what a rebuild reuses, as arrays in columns/."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from procqa.documents import Passage

COLUMNS = "columns"
KEY = "S32"  # content keys are 32 hex digits


@dataclass(frozen=True)
class WordBags:
    """Each procedure's distinct words, as word ids: procedure p has ids[offsets[p]:offsets[p + 1]]."""

    vocabulary: tuple[str, ...]
    ids: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, bags: Iterable[Iterable[str]]) -> WordBags:
        numbers: dict[str, int] = {}
        ids: list[int] = []
        offsets = [0]
        for bag in bags:
            ids += [numbers.setdefault(word, len(numbers)) for word in sorted(bag)]
            offsets.append(len(ids))
        return cls(tuple(numbers), np.array(ids, dtype=np.int32), np.array(offsets, dtype=np.int64))

    def bag(self, procedure: int) -> list[str]:
        return [self.vocabulary[i] for i in self.ids[self.offsets[procedure] : self.offsets[procedure + 1]].tolist()]

    def texts(self, keep: Iterable[str]) -> list[str]:
        """Per procedure, its words that are in `keep`, joined by spaces."""
        wanted = set(keep)
        kept = np.array([word in wanted for word in self.vocabulary] + [False])
        found = np.flatnonzero(kept[self.ids])
        counts = np.diff(np.searchsorted(found, self.offsets)).tolist()
        words = [self.vocabulary[i] for i in self.ids[found].tolist()]
        out: list[str] = []
        at = 0
        for count in counts:
            out.append(" ".join(words[at : at + count]))
            at += count
        return out


@dataclass(frozen=True)
class Columns:
    """What every query needs of every passage, and what a rebuild reuses, as arrays."""

    passage_procedure: np.ndarray  # row in procedures.json of each passage's procedure
    passage_section: np.ndarray  # index in `sections` of each passage's section
    sections: tuple[str, ...]
    passage_heading: np.ndarray  # index in `headings` of each passage's heading and kind
    headings: tuple[tuple[str, str | None], ...]  # (heading as written, its kind or None), sorted
    line_offsets: np.ndarray  # passage i is bytes line_offsets[i]:line_offsets[i + 1] of passages.jsonl
    unit_offsets: np.ndarray  # passage i has units unit_offsets[i]:unit_offsets[i + 1]
    keys: np.ndarray  # content key of each passage (bytes)
    unit_keys: np.ndarray  # content key of each unit (bytes)
    bags: WordBags | None  # each procedure's distinct words; None: read from the folder when needed

    ARRAYS = (
        "passage_procedure",
        "passage_section",
        "passage_heading",
        "line_offsets",
        "unit_offsets",
        "keys",
        "unit_keys",
    )

    def save(self, folder: Path) -> None:
        assert self.bags is not None
        folder.mkdir()
        for name in self.ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        np.save(folder / "word_ids.npy", self.bags.ids)
        np.save(folder / "word_offsets.npy", self.bags.offsets)
        (folder / "words.json").write_text(json.dumps(list(self.bags.vocabulary)))
        (folder / "sections.json").write_text(json.dumps(list(self.sections)))
        (folder / "headings.json").write_text(json.dumps([list(pair) for pair in self.headings]))

    @classmethod
    def load(cls, folder: Path) -> Columns:
        """The arrays a query uses in memory, the content keys (for rebuilds) mapped; the word
        bags are left on disk (`load_bags`): they are read once, to build a searcher."""
        kept = ("passage_procedure", "passage_section", "passage_heading", "line_offsets", "unit_offsets")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode=None if name in kept else "r") for name in cls.ARRAYS}
        sections = tuple(json.loads((folder / "sections.json").read_text("utf-8")))
        headings = tuple((heading, kind) for heading, kind in json.loads((folder / "headings.json").read_text("utf-8")))
        return cls(**arrays, sections=sections, headings=headings, bags=None)

    @staticmethod
    def load_bags(folder: Path) -> WordBags:
        return WordBags(
            tuple(json.loads((folder / "words.json").read_text("utf-8"))),
            np.load(folder / "word_ids.npy"),
            np.load(folder / "word_offsets.npy"),
        )


def rows_of(passages: Sequence[Passage], procedure_ids: Sequence[str]) -> dict[str, Any]:
    """Each passage's procedure row, section number and heading number, the sorted section
    names and the sorted (heading, kind) pairs."""
    sections = tuple(sorted({p.section for p in passages}))
    row_of_section = {name: i for i, name in enumerate(sections)}
    headings = tuple(sorted({(p.heading, p.section_kind) for p in passages}, key=lambda h: (h[0], h[1] or "")))
    row_of_heading = {pair: i for i, pair in enumerate(headings)}
    row_of_procedure = {ident: i for i, ident in enumerate(procedure_ids)}
    return {
        "passage_procedure": np.array([row_of_procedure[p.procedure_id] for p in passages], dtype=np.int32),
        "passage_section": np.array([row_of_section[p.section] for p in passages], dtype=np.int32),
        "sections": sections,
        "passage_heading": np.array([row_of_heading[p.heading, p.section_kind] for p in passages], dtype=np.int32),
        "headings": headings,
    }
