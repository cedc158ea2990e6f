"""Lint the sample corpus: layout, length and sentences repeated across documents.

Usage: python scripts/check_corpus.py [corpus_dir] [--only FILE ...]
Exits 1 when any problem is found; prints one line per problem.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

from procqa.ingest.sections import CANONICAL

HEADINGS = list(CANONICAL)
REQUIRED_LABELS = {
    "Purpose": ["Medical Condition/Problem", "Goals/Expected Outcomes"],
    "Preparation": ["Pre-procedure Instructions", "Diagnostic Tests"],
    "Procedure Description": ["Anesthesia"],
    "Risks and Complications": ["Common risks", "Rare risks"],
    "Recovery": ["Post-Procedure Care", "Recovery Time", "Follow-up"],
    "Patient Experience": ["During Procedure", "After Procedure"],
}
MIN_CHARS, MAX_CHARS = 2500, 5000
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = re.sub(r"^-\s*([A-Z][\w /-]{1,40}:)?\s*", "", line.strip())
        out += [s.strip().lower() for s in SENTENCE.split(line) if len(s.split()) >= 7]
    return out


def check_layout(path: Path, text: str) -> list[str]:
    problems = []
    lines = text.splitlines()
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        problems.append(f"{path}: {len(text)} characters, want {MIN_CHARS}..{MAX_CHARS}")
    code = path.name.split("-")[1]
    if len(lines) < 5 or lines[0] != "Search all medical codes":
        problems.append(f"{path}:1: first line must be 'Search all medical codes'")
    if not any(line.strip() in (f"CPT4 code {code}", "CPT4 code") for line in lines[:4]):
        problems.append(f"{path}:3: code line must be 'CPT4 code {code}'")
    if "Name of the Procedure:" not in lines[:5]:
        problems.append(f"{path}:4: missing 'Name of the Procedure:'")
    found = [(i, line.strip()) for i, line in enumerate(lines) if line.strip() in HEADINGS]
    names = [name for _, name in found]
    if names != HEADINGS:
        problems.append(f"{path}: headings {names} differ from {HEADINGS}")
        return problems
    bounds = [i for i, _ in found] + [len(lines)]
    for (start, name), end in zip(found, bounds[1:], strict=True):
        body = "\n".join(lines[start + 1 : end])
        for label in REQUIRED_LABELS.get(name, []):
            if f"- {label}:" not in body:
                problems.append(f"{path}:{start + 1}: section {name} lacks '- {label}:'")
        if not body.strip():
            problems.append(f"{path}:{start + 1}: section {name} is empty")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default="corpus")
    parser.add_argument("--only", nargs="*", help="report layout problems only for these files")
    args = parser.parse_args()
    paths = sorted(Path(args.corpus).glob("*.txt"))
    only = {Path(p).name for p in args.only} if args.only else None
    problems: list[str] = []
    seen: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if only is None or path.name in only:
            problems += check_layout(path, text)
        for sentence in sentences(text):
            seen[sentence].add(path.name)
    for sentence, files in seen.items():
        if len(files) > 1 and (only is None or files & only):
            problems.append(f"repeated in {sorted(files)}: {sentence!r}")
    print("\n".join(problems) or f"ok: {len(paths)} documents")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
