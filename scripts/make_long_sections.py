"""Write a corpus of long sections (150-400 words each) recombined from the sample pages.

Each page has the sample corpus's layout, a title made as in make_synthetic_corpus.py, its
Summary and two or three more sections. A section is the sample lines of its kind (bullets,
sentences, paragraphs) from its own sample page first and then from pages drawn at random,
in a random order, until it reaches a length drawn between 150 and 400 words: real text, no
section a copy of another. The same --seed gives the same files.

Usage: python scripts/make_long_sections.py OUT -n 10000 [--seed 0] [--source corpus]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic_corpus import CODE_DIGITS, Source, read_source, titles  # noqa: E402

from procqa.ingest.sections import CANONICAL  # noqa: E402
from procqa.text import slugify  # noqa: E402

WORDS = (150, 400)
OTHER_SECTIONS = (2, 3)  # sections besides the Summary on each page


def section(name: str, own: Source, pool: list[list[str]], rng: random.Random) -> list[str]:
    """Lines of one section: its own page's first, then drawn from the pool, to a drawn length."""
    target = rng.randint(*WORDS)
    lines: list[str] = []
    words = 0
    candidates = list(own.sections.get(name, []))
    while words < target:
        line = candidates.pop(0) if candidates else rng.choice(rng.choice(pool))
        if line in lines:
            continue
        lines.append(line)
        words += len(line.split())
    own_count = len(own.sections.get(name, []))
    rest = lines[own_count:]
    rng.shuffle(rest)
    return lines[:own_count] + rest


def write_long_corpus(sources: list[Source], out: Path, sections: int, *, seed: int = 0) -> list[Path]:
    """Pages holding about `sections` long sections in all, written into `out`."""
    rng = random.Random(seed)
    pools: dict[str, list[list[str]]] = defaultdict(list)
    for source in sources:
        for name, lines in source.sections.items():
            if lines:
                pools[name].append(lines)
    kinds = [name for name in CANONICAL if name != "Summary" and pools.get(name)]
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    written = 0
    pages = titles([s.title for s in sources], max(1, sections // 3), rng)
    for n, (base, title) in enumerate(pages, start=1):
        if written >= sections:
            break
        own = sources[base]
        names = ["Summary", *rng.sample(kinds, rng.randint(*OTHER_SECTIONS))]
        names = names[: sections - written]
        code = f"L{n:0{CODE_DIGITS}d}"
        lines = ["Search all medical codes", title, f"CPT4 code {code}", "Name of the Procedure:", title]
        for name in (n for n in CANONICAL if n in names):
            lines += [name, *section(name, own, pools[name], rng)]
        path = out / f"cpt-{code.lower()}-{slugify(title)[:60]}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
        written += len(names)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the documents into")
    parser.add_argument("-n", "--sections", type=int, default=10_000, help="how many sections (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--source", type=Path, default=Path("corpus"), help="sample corpus folder (default corpus)")
    args = parser.parse_args(argv)
    sources = [read_source(p) for p in sorted(args.source.glob("*.txt"))]
    if not sources:
        print(f"no .txt documents in {args.source}", file=sys.stderr)
        return 1
    paths = write_long_corpus(sources, args.out, args.sections, seed=args.seed)
    print(f"wrote {len(paths)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
