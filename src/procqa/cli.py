"""The `procqa` command: index, serve, search, eval. Exit codes: 0 ok, 1 error, 2 usage."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from procqa.errors import ProcqaError
from procqa.settings import Settings, get_settings

log = logging.getLogger("procqa")


def _progress(total: int, label: str):  # type: ignore[no-untyped-def]
    """A tqdm bar on a terminal, plain log lines otherwise."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    bar = tqdm(total=total, desc=label, unit="text", disable=not interactive)
    state = {"done": 0, "next": 0}

    def update(n: int) -> None:
        bar.update(n)
        state["done"] += n
        if not interactive and state["done"] >= state["next"]:
            log.info("%s: %d/%d", label, state["done"], total)
            state["next"] += max(1, total // 10)

    return bar, update


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from procqa.embedding import SentenceTransformerEmbedder
    from procqa.index import build, rollback
    from procqa.ingest.chunking import chunk
    from procqa.ingest.corpus import read_corpus

    root = Path(args.out or settings.index)
    if args.rollback:
        print(f"index {root} now serves version {rollback(root)}")
        return 0
    corpus = read_corpus(Path(args.corpus or settings.corpus), max_bytes=settings.max_file_bytes)
    for problem in corpus.problems:
        print(f"skipped {problem}", file=sys.stderr)
    if not corpus.procedures:
        raise ProcqaError(f"no procedure could be read from {args.corpus or settings.corpus}: {corpus.why_empty()}")
    passages = chunk(corpus.procedures)
    embedder = SentenceTransformerEmbedder.from_settings(settings)
    bar, update = _progress(len(passages), "embedding passages")
    with bar:
        report = build(
            corpus.procedures,
            passages,
            embedder,
            root,
            full=args.full,
            batch_size=settings.batch_size,
            keep=settings.keep_versions,
            fingerprint=corpus.fingerprint,
            progress=update,
        )
    print(
        f"indexed {report.procedures} procedures, {report.passages} passages into {root} "
        f"(version {report.version}): added {report.added}, changed {report.changed}, "
        f"removed {report.removed}, reused {report.reused}; {len(corpus.problems)} file problems; "
        f"{report.seconds:.1f}s"
    )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from procqa.api import create_app

    updates = {k: v for k, v in {"index": args.index, "host": args.host, "port": args.port}.items() if v}
    settings = settings.model_copy(update=updates)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from procqa.service import Service

    service = Service.open(settings.model_copy(update={"index": Path(args.index)}) if args.index else settings)
    hits = service.searcher().search(args.question, k=args.k, code=args.code, section=args.section)
    if args.json:
        print(json.dumps([service.hit_record(h, rank) for rank, h in enumerate(hits, start=1)], indent=2))
        return 0
    for rank, hit in enumerate(hits, start=1):
        p = hit.passage
        code = f"{p.code_system} {p.code}" if p.code else "no code"
        print(f"{rank:>2}. {hit.score:.3f}  {p.title} ({code}) / {p.section}")
        print(f"    {hit.answer}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from threadpoolctl import threadpool_limits

    from procqa.baselines import CachingEmbedder, Ranker, SearcherRanker, baseline_rankers
    from procqa.benchmark import read_beir, read_questions
    from procqa.embedding import SentenceTransformerEmbedder
    from procqa.evaluation import evaluate, unjudged
    from procqa.index import load
    from procqa.report import side_by_side, write_reports

    if args.k < 5:
        raise ProcqaError(f"--k is {args.k}; it must be at least 5, as hit@5 needs five results")
    started = time.perf_counter()
    out = Path(args.out)
    embedder = CachingEmbedder(SentenceTransformerEmbedder.from_settings(settings))
    log.info("embedding with %s (dimension %d)", embedder.model_id, embedder.dimension)  # loads the model
    # On two busy cores, spinning OpenMP and OpenBLAS workers made embedding 5x slower and
    # added 8-16 ms to sub-millisecond matrix products; one thread each keeps runs fast and
    # timings repeatable. Limits apply to libraries loaded by now, hence after the model.
    with threadpool_limits(limits=1):
        procqa: SearcherRanker | None = None
        if args.beir:
            benchmark = read_beir(Path(args.beir))
        else:
            data = load(Path(args.index or settings.index), model_id=embedder.model_id)
            benchmark = read_questions(Path(args.questions), data.passages)
            procqa = SearcherRanker(data, embedder)
        timings = {"load": time.perf_counter() - started}

        mark = time.perf_counter()
        bar, update = _progress(len(benchmark.passages), "embedding passages (cached)")
        with bar:
            rankers: list[Ranker] = baseline_rankers(benchmark.passages, embedder, cache=out / "cache", progress=update)
        timings["embed_passages"] = time.perf_counter() - mark

        mark = time.perf_counter()
        queries = [q.text for q in benchmark.questions]
        texts = procqa.requested(queries) if procqa else queries
        bar, update = _progress(len(texts), "embedding questions")
        with bar:
            embedder.prime(texts, progress=update)
        timings["embed_questions"] = time.perf_counter() - mark
        if procqa:
            rankers.append(procqa)

        mark = time.perf_counter()
        judged = len(benchmark.questions) - len(unjudged(benchmark.questions))
        bar, update = _progress(judged * len(rankers), "evaluating")
        with bar:
            evaluation = evaluate(benchmark, rankers, k=args.k, progress=update)
        timings["rank"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    paths = write_reports(evaluation, out, timings=timings, notes=["Math libraries ran on one thread each."])
    print(side_by_side(evaluation))
    print(
        f"\n{len(evaluation.outcomes[rankers[-1].name])} questions, {len(rankers)} systems in "
        f"{timings['total']:.1f}s; wrote {', '.join(str(p) for p in paths)}"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="procqa", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    index = sub.add_parser("index", help="build or update the index from a folder of documents")
    index.add_argument("--corpus", help="folder of documents (default: settings corpus)")
    index.add_argument("--out", help="index folder (default: settings index)")
    index.add_argument("--full", action="store_true", help="re-embed everything instead of reusing")
    index.add_argument("--rollback", action="store_true", help="serve the previous version again")
    index.set_defaults(run=cmd_index)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--index", type=Path)  # model_copy does not validate, so convert here
    serve.set_defaults(run=cmd_serve)
    search = sub.add_parser("search", help="ask a question from the command line")
    search.add_argument("question")
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--code")
    search.add_argument("--section")
    search.add_argument("--index")
    search.add_argument("--json", action="store_true")
    search.set_defaults(run=cmd_search)
    evaluation = sub.add_parser("eval", help="measure retrieval against baselines on a question set")
    source = evaluation.add_mutually_exclusive_group(required=True)
    source.add_argument("--questions", help="JSON lines: {question, code, sections, kind} or {question, doc, section}")
    source.add_argument("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    evaluation.add_argument("--index", help="index folder (default: settings index)")
    evaluation.add_argument("--k", type=int, default=10, help="ranking depth for MRR and nDCG (default 10)")
    evaluation.add_argument("--out", default="reports", help="report folder (default: reports)")
    evaluation.set_defaults(run=cmd_eval)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.run(args, get_settings()))
    except ProcqaError as error:
        print(f"procqa: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
