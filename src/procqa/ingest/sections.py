"""Section names: the canonical thirteen, their aliases and what each answers, and other
headings common on health pages, kept as data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from procqa.text import stems

CANONICAL: tuple[str, ...] = (
    "Summary",
    "Purpose",
    "Indications",
    "Preparation",
    "Procedure Description",
    "Duration",
    "Setting",
    "Personnel",
    "Risks and Complications",
    "Benefits",
    "Recovery",
    "Alternatives",
    "Patient Experience",
)
SUMMARY = CANONICAL[0]  # the section that introduces a procedure


@dataclass(frozen=True)
class SectionInfo:
    """What the data file says of one canonical section."""

    name: str
    description: str
    aliases: tuple[str, ...]
    examples: tuple[str, ...]
    variants: tuple[str, ...] = ()
    """Headings that are this section in other words but keep their own name and intent
    ("Going Home": Recovery): they give only the kind of section they are."""


def heading_key(heading: str) -> str:
    """Fold case, '&', punctuation and spacing so heading variants compare equal."""
    key = heading.strip().rstrip(":").lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", " ", key).strip()


def _read(file: str) -> dict[str, SectionInfo]:
    raw = json.loads(resources.files("procqa").joinpath(f"data/{file}").read_text("utf-8"))
    return {
        name: SectionInfo(
            name=name,
            description=entry["description"],
            aliases=tuple(entry["aliases"]),
            examples=tuple(entry["examples"]),
            variants=tuple(entry.get("variants", ())),
        )
        for name, entry in raw.items()
    }


@cache
def section_info() -> dict[str, SectionInfo]:
    """The canonical sections with their descriptions, aliases and example questions."""
    info = _read("sections.json")
    return {name: info[name] for name in CANONICAL}


@cache
def heading_info() -> dict[str, SectionInfo]:
    """Headings common on health pages beyond the thirteen ("Symptoms", "Diagnosis",
    "Outlook", ...), from data/headings.json. A collection's heading keeps the name it is
    written with; these only lend it example questions."""
    return _read("headings.json")


@cache
def _heading_table() -> dict[str, SectionInfo]:
    return {heading_key(name): info for info in heading_info().values() for name in (info.name, *info.aliases)}


@cache
def _heading_words() -> tuple[tuple[frozenset[str], SectionInfo], ...]:
    """Every name and variant of the common and canonical headings as its set of stemmed
    words, the longest first."""
    known = [*heading_info().values(), *section_info().values()]
    names = [(name, info) for info in known for name in (info.name, *info.aliases)]
    bags = [(frozenset(words), info) for words, (_, info) in zip(stems([n for n, _ in names]), names, strict=True)]
    return tuple(sorted((bag for bag in bags if bag[0]), key=lambda bag: -len(bag[0])))


def known_heading(heading: str) -> SectionInfo | None:
    """The common or canonical heading that this one is a variant of ("Signs and Symptoms":
    Symptoms), or that it names in at least half of its words ("Symptoms of Shingles", "How
    Is Gout Diagnosed?"); None for any other heading."""
    if found := _heading_table().get(heading_key(heading)):
        return found
    words = set(stems([heading])[0])
    for bag, info in _heading_words():
        if bag <= words and 2 * len(bag) >= len(words):
            return info
    return None


@cache
def _alias_table() -> dict[str, str]:
    table = {heading_key(name): name for name in CANONICAL}
    for info in section_info().values():
        table.update({heading_key(alias): info.name for alias in info.aliases})
    return table


def canonical_section(heading: str) -> str | None:
    """The canonical name of a heading, or None when it is not one of the known variants."""
    return _alias_table().get(heading_key(heading))


def section_kind(name: str) -> str | None:
    """What a section is a variant of, from its name (canonical where known): the canonical
    section ("Recovery" for "Going home"), else the common or canonical heading it varies or
    names most of ("Symptoms" for "Signs and Symptoms", "Risks and Complications" for "What
    are the risks?"); None for a heading procqa knows nothing of."""
    if canonical := canonical_section(name) or _variant_table().get(heading_key(name)):
        return canonical
    if found := _heading_table().get(heading_key(name)):
        return found.name
    words = set(stems([name])[0])
    fits = [(bag, info) for bag, info in _heading_words() if bag <= words and 2 * len(bag) >= len(words)]
    # of names as long, one of a thing ("risks") over one of a question word ("what is it")
    best = min(fits, key=lambda fit: (-len(fit[0]), len(fit[0] & _question_words())), default=None)
    return best[1].name if best else None


@cache
def _variant_table() -> dict[str, str]:
    return {heading_key(variant): info.name for info in section_info().values() for variant in info.variants}


@cache
def _question_words() -> frozenset[str]:
    return frozenset(stems(["what how why when who where which"])[0])
