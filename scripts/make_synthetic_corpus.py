"""Write a synthetic corpus of N procedure documents for scale tests.

Each document has the sample corpus's page layout (title, `CPT4 code`, `Name of the
Procedure:`, the thirteen section headings). Its title is a sample title with a qualifier
before and after it ("Bilateral panniculectomy with graft"), its code is `X` and six digits,
its Summary and Procedure Description come from the sample document whose title it extends
(so title and summary agree), and every other section is copied from a sample document drawn
at random. The same --seed gives the same files.

Usage: python scripts/make_synthetic_corpus.py OUT -n 10000 [--seed 0] [--source corpus]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from procqa.ingest.sections import CANONICAL, canonical_section
from procqa.text import slugify

PREFIXES = (
    "", "Bilateral", "Left", "Right", "Revision", "Staged", "Minimally invasive", "Robot-assisted",
    "Laparoscopic", "Open", "Endoscopic", "Percutaneous", "Pediatric", "Emergency", "Outpatient",
    "Image-guided", "Repeat", "Complex", "Simple", "Extended", "Limited", "Primary", "Secondary",
    "Ultrasound-guided", "Navigated", "Elective",
)  # fmt: skip
SUFFIXES = (
    "", "with drain placement", "with graft", "with implant", "with biopsy", "with fluoroscopic guidance",
    "under local anesthesia", "under sedation", "first stage", "second stage", "single level", "two levels",
    "each additional level", "with mesh", "without mesh", "with reconstruction", "with removal of hardware",
    "with frozen section", "with lymph node sampling", "with stent", "with catheter placement",
    "with complex repair", "with intermediate repair", "up to 2 cm", "over 5 cm", "for recurrence",
    "for infection", "for trauma", "with navigation", "with microscope", "with intraoperative imaging",
    "through a small incision", "through multiple ports", "of the upper limb", "of the lower limb",
    "of the trunk", "of the head and neck", "in a child", "in an adult", "with anesthesia monitoring",
    "after a failed prior procedure",
)  # fmt: skip
OWN_SECTIONS = frozenset({"Summary", "Procedure Description"})  # taken from the document the title extends
CODE_DIGITS = 6


@dataclass(frozen=True)
class Source:
    """One sample document: its title and the raw lines of each canonical section."""

    title: str
    sections: dict[str, list[str]]


def read_source(path: Path) -> Source:
    """The title line and the section bodies of a sample page, as written (bullets kept)."""
    lines = [line.rstrip() for line in path.read_text("utf-8").splitlines()]
    body = [line for line in lines if line.strip() and line.strip().lower() != "search all medical codes"]
    title = body[0].strip()
    sections: dict[str, list[str]] = defaultdict(list)
    current: str | None = None
    for line in body[1:]:
        name = canonical_section(line) if len(line) <= 60 else None
        if name:
            current = name
        elif current:
            sections[current].append(line)
    return Source(title, dict(sections))


def titles(bases: list[str], count: int, rng: random.Random) -> list[tuple[int, str]]:
    """`count` distinct (base index, title) pairs; past the qualifier combinations a number
    keeps titles distinct."""
    per_base = len(PREFIXES) * len(SUFFIXES)
    total = len(bases) * per_base
    picks = rng.sample(range(total), count) if count <= total else [i % total for i in range(count)]
    out = []
    for n, pick in enumerate(picks):
        base, rest = divmod(pick, per_base)
        prefix, suffix = PREFIXES[rest // len(SUFFIXES)], SUFFIXES[rest % len(SUFFIXES)]
        title = bases[base]
        if prefix:
            title = f"{prefix} {title[0].lower()}{title[1:]}"
        if suffix:
            title = f"{title} {suffix}"
        if n >= total:
            title = f"{title}, variant {n // total + 1}"
        out.append((base, title))
    return out


def render(title: str, code: str, own: Source, donors: list[Source]) -> str:
    lines = ["Search all medical codes", title, f"CPT4 code {code}", "Name of the Procedure:", title]
    for name, donor in zip(CANONICAL, donors, strict=True):
        source = own if name in OWN_SECTIONS else donor
        body = source.sections.get(name) or own.sections.get(name)
        if body:
            lines += [name, *body]
    return "\n".join(lines) + "\n"


def write_corpus(sources: list[Source], out: Path, count: int, *, seed: int = 0) -> list[Path]:
    """Write `count` documents into `out`; returns their paths in code order."""
    if count >= 10**CODE_DIGITS:
        raise ValueError(f"at most {10**CODE_DIGITS - 1} documents, asked for {count}")
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, (base, title) in enumerate(titles([s.title for s in sources], count, rng), start=1):
        code = f"X{n:0{CODE_DIGITS}d}"
        donors = [rng.choice(sources) for _ in CANONICAL]
        path = out / f"cpt-{code.lower()}-{slugify(title)[:60]}.txt"
        path.write_text(render(title, code, sources[base], donors), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the documents into")
    parser.add_argument("-n", "--count", type=int, default=1000, help="how many documents (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--source", type=Path, default=Path("corpus"), help="sample corpus folder (default corpus)")
    args = parser.parse_args(argv)
    sources = [read_source(p) for p in sorted(args.source.glob("*.txt"))]
    if not sources:
        print(f"no .txt documents in {args.source}", file=sys.stderr)
        return 1
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty; give a new folder", file=sys.stderr)
        return 1
    paths = write_corpus(sources, args.out, args.count, seed=args.seed)
    print(f"wrote {len(paths)} documents to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
