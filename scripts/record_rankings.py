"""Record the top-10 (procedure id, section) of a fixed set of questions on the real model.

    python scripts/record_rankings.py [--out tests/data/rankings.json]

Forty-odd questions from each question set in eval/: the shipped corpus is searched through
the shipped index/, the other collections through indexes built in a temporary folder.
tests/test_rankings.py searches the same questions and compares, so a change that means to
keep rankings as they are can show it does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPTH = 10
# question file, the corpus its index is built from (None: the shipped index), questions taken
SETS = (
    ("eval/questions.jsonl", None, 45),
    ("eval/questions-2.jsonl", None, 35),
    ("eval/conditions/questions.jsonl", "eval/conditions/corpus", 35),
    ("eval/medicines/questions.jsonl", "eval/medicines/corpus", 35),
    ("eval/hospital/questions.jsonl", "eval/hospital/corpus", 35),
    ("eval/leaflets/questions.jsonl", "eval/leaflets/corpus", 35),
)


def sample(path: Path, count: int) -> list[str]:
    """`count` questions spread evenly over the file, in file order."""
    questions = [json.loads(line)["question"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    step = max(1, len(questions) // count)
    return questions[::step][:count]


def searchers(folder: Path) -> Iterator[tuple[str, list[str], Any]]:
    """Per question set: its name, its sampled questions and a searcher over its index."""
    from procqa.embedding import make_embedder
    from procqa.index import load
    from procqa.ingest import chunk, read_corpus
    from procqa.ranking import RankingConfig, RankingFeatures, Searcher, build_index
    from procqa.settings import Settings

    embedder = make_embedder(Settings(_env_file=None))
    config = RankingConfig()
    for questions, corpus, count in SETS:
        root = ROOT / "index"
        if corpus is not None:
            root = folder / Path(corpus).parent.name
            read = read_corpus(ROOT / corpus)
            build_index(read.procedures, chunk(read.procedures), embedder, root, fingerprint=read.fingerprint)
        features = RankingFeatures.from_index(load(root, model_id=embedder.model_id), config)
        yield questions, sample(ROOT / questions, count), Searcher(features, embedder)


def record(folder: Path) -> dict[str, dict[str, list[list[str]]]]:
    """Question set -> question -> its top DEPTH as [procedure id, section] pairs."""
    out: dict[str, dict[str, list[list[str]]]] = {}
    for name, questions, searcher in searchers(folder):
        out[name] = {
            q: [[h.passage.procedure_id, h.passage.section] for h in searcher.search(q, k=DEPTH)] for q in questions
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "rankings.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rankings = record(Path(folder))
    args.out.write_text(json.dumps(rankings, indent=1) + "\n", "utf-8")
    print(f"wrote {sum(len(v) for v in rankings.values())} questions' top {DEPTH} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
