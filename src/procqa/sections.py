"""Section names: the canonical thirteen, their aliases and what each answers, kept as data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

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


@dataclass(frozen=True)
class SectionInfo:
    """What the data file says of one canonical section."""

    name: str
    description: str
    aliases: tuple[str, ...]
    examples: tuple[str, ...]


def heading_key(heading: str) -> str:
    """Fold case, '&', punctuation and spacing so heading variants compare equal."""
    key = heading.strip().rstrip(":").lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", " ", key).strip()


@cache
def section_info() -> dict[str, SectionInfo]:
    """The canonical sections with their descriptions, aliases and example questions."""
    raw = json.loads(resources.files("procqa").joinpath("data/sections.json").read_text("utf-8"))
    return {
        name: SectionInfo(
            name=name,
            description=raw[name]["description"],
            aliases=tuple(raw[name]["aliases"]),
            examples=tuple(raw[name]["examples"]),
        )
        for name in CANONICAL
    }


@cache
def _alias_table() -> dict[str, str]:
    table = {heading_key(name): name for name in CANONICAL}
    for info in section_info().values():
        table.update({heading_key(alias): info.name for alias in info.aliases})
    return table


def canonical_section(heading: str) -> str | None:
    """The canonical name of a heading, or None when it is not one of the known variants."""
    return _alias_table().get(heading_key(heading))
