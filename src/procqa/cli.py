"""The `procqa` command: index, serve, search, eval. Exit codes: 0 ok, 1 error, 2 usage."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procqa.embedding import Embedder, make_embedder
from procqa.errors import ProcqaError
from procqa.settings import Settings, get_settings

if TYPE_CHECKING:
    from procqa.evaluation.baselines import CachingEmbedder
    from procqa.evaluation.measures import Evaluation
    from procqa.index import Embedding
    from procqa.ranking import RankingConfig

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


class StageBars:
    """Build progress by stage (procqa.index.STAGES): a named bar with rate and ETA on a
    terminal; otherwise a log line when a stage ends, and one at each tenth of a long one."""

    UNITS = {"reading": "documents", "passages": "texts", "answer units": "texts", "intent": "texts"}

    def __init__(self, *, interactive: bool | None = None) -> None:
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bars: dict[str, Any] = {}
        self.done: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        from tqdm import tqdm

        self.done[stage], self.totals[stage] = 0, total
        if self.interactive:
            unit = self.UNITS.get(stage, "passages")
            self.bars[stage] = tqdm(total=total or None, desc=f"{stage:>13}", unit=f" {unit}", unit_scale=True)

    def advance(self, stage: str, count: int) -> None:
        before, total = self.done[stage], self.totals[stage]
        self.done[stage] += count
        if stage in self.bars:
            self.bars[stage].update(count)
        elif total >= 1000 and self.done[stage] < total and before * 10 // total < self.done[stage] * 10 // total:
            log.info("%s: %d/%d", stage, self.done[stage], total)

    def finish(self, stage: str, seconds: float) -> None:
        if (bar := self.bars.pop(stage, None)) is not None:
            bar.close()
            return
        done, unit = self.done.get(stage, 0), self.UNITS.get(stage, "passages")
        rate = f", {done / seconds:,.0f} {unit}/s" if done and seconds > 0 else ""
        log.info("%s: %d %s in %.2fs%s", stage, done, unit, seconds, rate)


def _cluster(address: str, settings: Settings, embedder: Embedder | None) -> Embedding:
    """Embedding on a Ray cluster, each actor building its embedder as `settings` say (torch
    only: an export for ONNX, which answers queries, would be made on every node)."""
    from functools import partial

    from procqa.index.distributed import RayEmbedding, require_ray

    require_ray()
    factory = (
        partial(_given, embedder) if embedder else partial(make_embedder, settings.model_copy(update={"onnx": False}))
    )
    return RayEmbedding(factory, address=address, batch_size=settings.batch_size)


def _given(embedder: Embedder) -> Embedder:
    return embedder


def cmd_index(args: argparse.Namespace, settings: Settings, embedder: Embedder | None) -> int:
    from procqa.index import rollback
    from procqa.index.progress import READING
    from procqa.ingest import chunk, read_corpus
    from procqa.ranking import build_index

    root = Path(args.out or settings.index)
    if args.rollback:
        print(f"index {root} now serves version {rollback(root)}")
        return 0
    address = args.ray or settings.ray
    embedding = _cluster(address, settings, embedder) if address else None
    bars, started = StageBars(), time.perf_counter()
    bars.start(READING, 0)
    corpus = read_corpus(Path(args.corpus or settings.corpus), max_bytes=settings.max_file_bytes)
    bars.advance(READING, len(corpus.procedures))
    reading = time.perf_counter() - started
    bars.finish(READING, reading)
    for problem in corpus.problems:
        print(f"skipped {problem}", file=sys.stderr)
    for warning in corpus.warnings:
        print(f"warning {warning}", file=sys.stderr)
    if not corpus.procedures:
        raise ProcqaError(f"no procedure could be read from {args.corpus or settings.corpus}: {corpus.why_empty()}")
    passages = chunk(corpus.procedures)
    report = build_index(
        corpus.procedures,
        passages,
        embedder or make_embedder(settings),
        root,
        full=args.full,
        batch_size=settings.batch_size,
        keep=settings.keep_versions,
        fingerprint=corpus.fingerprint,
        progress=bars,
        embedding=embedding,
    )
    stages = ", ".join(f"{name} {s:.2f}s" for name, s in {READING: reading, **report.timings}.items())
    print(
        f"indexed {report.procedures} procedures, {report.passages} passages into {root} "
        f"(version {report.version}): added {report.added}, changed {report.changed}, "
        f"removed {report.removed}, reused {report.reused}; {len(corpus.problems)} file problems, "
        f"{len(corpus.warnings)} warnings; "
        f"{reading + report.seconds:.1f}s ({stages})"
    )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings, embedder: Embedder | None) -> int:
    import uvicorn

    from procqa.api import create_app
    from procqa.serving.process import tune_process

    given = {"index": args.index, "host": args.host, "port": args.port, "workers": args.workers}
    settings = settings.model_copy(update={k: v for k, v in given.items() if v})
    tune_process()
    if settings.workers > 1:
        return _serve_workers(settings, embedder)
    uvicorn.run(create_app(settings, embedder=embedder), host=settings.host, port=settings.port, log_level="info")
    return 0


def _serve_workers(settings: Settings, embedder: Embedder | None) -> int:
    """`settings.workers` processes on one socket, their metrics summed in a shared folder."""
    import os
    import shutil
    import tempfile

    from procqa.api import create_app
    from procqa.api.metrics import MULTIPROCESS, share_metrics
    from procqa.serving.workers import Supervisor, bind

    sock = bind(settings.host, settings.port)
    folder = os.environ.get(MULTIPROCESS) or tempfile.mkdtemp(prefix="procqa-metrics-")
    share_metrics(folder)
    log.info("procqa serving on http://%s:%d with %d workers", settings.host, settings.port, settings.workers)
    try:
        return Supervisor(lambda: create_app(settings, embedder=embedder), sock, workers=settings.workers).run()
    finally:
        sock.close()
        if folder.startswith(tempfile.gettempdir()) and "procqa-metrics-" in folder:
            shutil.rmtree(folder, ignore_errors=True)


def cmd_search(args: argparse.Namespace, settings: Settings, embedder: Embedder | None) -> int:
    from procqa.api.schemas import PassagePublic
    from procqa.serving import Service
    from procqa.serving.process import tune_process

    tune_process()
    service = Service.open(
        settings.model_copy(update={"index": Path(args.index)}) if args.index else settings, embedder
    )
    found = service.searcher().answer(args.question, k=args.k, code=args.code, section=args.section)
    verdict, ranked = found.verdict, list(enumerate(zip(found.hits, found.verdict.confidences, strict=True), start=1))
    if args.json:
        records = [PassagePublic.from_hit(h, rank, c).model_dump(mode="json") for rank, (h, c) in ranked]
        print(json.dumps({"covered": verdict.covered, "reason": verdict.reason, "results": records}, indent=2))
        return 0
    if not verdict.covered:
        print(f"Not covered: {verdict.reason}. Closest pages:")
    for rank, (hit, confidence) in ranked:
        p = hit.passage
        code = f"{p.code_system} {p.code}" if p.code else "no code"
        kind = f" ({p.section_kind})" if p.section_kind and p.section_kind.casefold() != p.heading.casefold() else ""
        print(f"{rank:>2}. {confidence:.0%}  {p.title} ({code}) / {p.heading}{kind}")
        print(f"    {hit.answer}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings, embedder: Embedder | None) -> int:
    from threadpoolctl import threadpool_limits

    from procqa.evaluation.baselines import CachingEmbedder

    if args.k < 5:
        raise ProcqaError(f"--k is {args.k}; it must be at least 5, as hit@5 needs five results")
    started = time.perf_counter()
    caching = CachingEmbedder(embedder or make_embedder(settings))
    log.info("embedding with %s (dimension %d)", caching.model_id, caching.dimension)  # loads the model
    # On two busy cores, spinning OpenMP and OpenBLAS workers made embedding 5x slower and
    # added 8-16 ms to sub-millisecond matrix products; one thread each keeps runs fast and
    # timings repeatable. Limits apply to libraries loaded by now, hence after the model.
    with threadpool_limits(limits=1):
        evaluation, timings = _evaluate(args, settings, caching, started)
    _report(evaluation, Path(args.out), timings, _eval_config(args))
    return 0


def _evaluate(
    args: argparse.Namespace, settings: Settings, embedder: CachingEmbedder, started: float
) -> tuple[Evaluation, dict[str, float]]:
    """Rank every question with the baselines and procqa; the evaluation and its timings."""
    from procqa.evaluation.baselines import SearcherRanker, baseline_rankers
    from procqa.evaluation.measures import Ranker, evaluate, unjudged
    from procqa.evaluation.questions import read_beir, read_questions
    from procqa.index import load

    procqa: SearcherRanker | None = None
    if args.beir:
        benchmark = read_beir(Path(args.beir))
    else:
        data = load(Path(args.index or settings.index), model_id=embedder.model_id)
        benchmark = read_questions(Path(args.questions), data.passages)
        procqa = SearcherRanker(data, embedder, config=_eval_config(args))
    timings = {"load": time.perf_counter() - started}
    mark = time.perf_counter()
    bar, update = _progress(len(benchmark.passages), "embedding passages (cached)")
    with bar:
        cache = Path(args.out) / "cache"
        rankers: list[Ranker] = baseline_rankers(benchmark.passages, embedder, cache=cache, progress=update)
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
    return evaluation, timings


def cmd_calibrate(args: argparse.Namespace, settings: Settings, embedder: Embedder | None) -> int:
    from procqa.evaluation.calibration import fit, leave_one_out
    from procqa.evaluation.collections import observe_collection, read_collections, searcher_of
    from procqa.evaluation.coverage_report import markdown, write_calibration, write_coverage_report
    from procqa.evaluation.questions import DEV

    embedder = embedder or make_embedder(settings)
    out = Path(args.out)
    observations = []
    for collection in read_collections(Path(args.collections)):
        searcher = searcher_of(collection, out / collection.name / "index", embedder, max_bytes=settings.max_file_bytes)
        found = observe_collection(collection, searcher)
        log.info("%s: %d questions observed", collection.name, len(found))
        observations += found
    results = leave_one_out(observations)
    paths = write_coverage_report(out, results)
    print(markdown(results).split("\n## ")[0])
    if args.write:
        write_calibration(Path(args.write), fit([o for o in observations if o.split == DEV]))
        paths.append(Path(args.write))
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _eval_config(args: argparse.Namespace) -> RankingConfig:
    """The ranking config an evaluation runs with: with --force-candidates, every question is
    ranked through the candidate path (full_scan 0), as a collection above full_scan is."""
    from procqa.ranking import RankingConfig

    return RankingConfig(full_scan=0) if args.force_candidates else RankingConfig()


def _report(evaluation: Evaluation, out: Path, timings: dict[str, float], config: RankingConfig) -> None:
    from procqa.evaluation.report import side_by_side, write_reports

    notes = ["Math libraries ran on one thread each."]
    if config.full_scan == 0:
        notes.append("procqa ranked every question through its candidate path (--force-candidates).")
    paths = write_reports(evaluation, out, timings=timings, notes=notes, config=config.as_dict())
    print(side_by_side(evaluation))
    systems = list(evaluation.outcomes)
    print(
        f"\n{len(evaluation.outcomes[systems[-1]])} questions, {len(systems)} systems in "
        f"{timings['total']:.1f}s; wrote {', '.join(str(p) for p in paths)}"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="procqa", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    index = sub.add_parser("index", help="build or update the index from a folder of documents")
    index.add_argument("--corpus", help="folder of documents (default: settings corpus)")
    index.add_argument("--out", help="index folder (default: settings index)")
    index.add_argument("--full", action="store_true", help="re-embed everything instead of reusing")
    index.add_argument("--rollback", action="store_true", help="serve the previous version again")
    index.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="embed on a Ray cluster at ADDRESS (alone: start one here, or join RAY_ADDRESS)",
    )
    index.set_defaults(run=cmd_index)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes serving the index (default: settings workers, 1)")
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
    evaluation.add_argument(
        "--force-candidates",
        action="store_true",
        help="rank through the candidate path whatever the collection's size (RankingConfig.full_scan 0)",
    )
    evaluation.set_defaults(run=cmd_eval)
    calibrate = sub.add_parser(
        "calibrate", help="fit and measure coverage and confidence, leaving each collection out in turn"
    )
    calibrate.add_argument("--collections", default="eval/collections.json", help="the collections to fit on")
    calibrate.add_argument("--out", default="reports/calibration", help="report and index folder")
    calibrate.add_argument("--write", help="also fit on every collection's tuning part and write the models here")
    calibrate.set_defaults(run=cmd_calibrate)
    return root


def main(argv: Sequence[str] | None = None, *, embedder: Embedder | None = None) -> int:
    """Run one command; `embedder` replaces the configured model (tests hand in a fake)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.run(args, get_settings(), embedder))
    except ProcqaError as error:
        print(f"procqa: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
