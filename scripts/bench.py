"""Benchmark procqa: build and rebuild time, query latency in-process and over HTTP, throughput,
memory and cold start, on the sample corpus and on synthetic corpora of given sizes.

    python scripts/bench.py                          # sample corpus (real model) + 1k synthetic: ~6 min
    python scripts/bench.py --sizes 1000,10000 --shipped-max 10000   # ~20 min; reports/bench.json holds this
    python scripts/bench.py --sizes 100000 --no-sample  # 1.3M passages: ~10 GB per index version, ~15 min

Each row: a corpus is written (scripts/make_synthetic_corpus.py), indexed from scratch, 1%
of its documents are edited and it is indexed again; queries (eval/questions.jsonl) are
timed in-process, then against a server subprocess on a loopback port (cold start, latency,
QPS at concurrency 1, 8 and 32 for --seconds each, resident memory from /proc).

Corpora of more than --random-vectors-above procedures (default 100: only the sample
corpus uses the model) are not embedded by the model: that takes about 10 minutes per
thousand procedures on two cores. By default (--vectors sample-derived) each synthetic
passage gets the model's embedding of the sample passage whose text it copies, plus seeded
noise for its own title, and each answer unit the embedding of the sample unit it copies
(see SampleDerivedEmbedder); texts the sample lacks (the edits, section-intent examples)
are embedded by the model. These cluster as embeddings do, so the recall of the approximate
dense index means something; --vectors uniform gives uniform random unit vectors instead,
for which no approximate index beats a scan. Queries are always embedded by the real model.
Such a row also reports what its full build would take with the model embedding every text
(from the model's rate on an even sample of them), since a rebuild's cost is measured
against a build that did not have to embed.

Recall: `dense recall@10` is index.nearest (the dense index, rescored exactly) against an
exact scan of every passage vector, for the query vectors; `ranking recall@10` is the
candidates searcher's top 10 against the same searcher scoring every passage, for the first
--recall-queries queries.

Two searchers are timed: `shipped` (procqa.ranking.searcher.Searcher as configured: it scores every
passage up to FULL_SCAN passages; skipped above --shipped-max procedures) and `candidates`,
the same Searcher scoring only its candidates at any size: FAISS top-N by the residual query
vector, BM25 top-N and every passage of the best procedures by procedure-level score. Its
overlap with the shipped top 10 is reported. Load, verification (sampled and thorough) and
Searcher construction are timed in-process; resident memory is split into anonymous memory
and mapped files.

Threads follow the service's policy (procqa.serving.service.limit_blas_threads, here and in the
server): math libraries and torch get one thread each; on two busy cores their worker
threads made a query's model call 40 times slower. One server run with default threads is
timed too, to show it. Results: a Markdown table on stdout and JSON in reports/bench.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_long_sections import write_long_corpus  # noqa: E402
from make_synthetic_corpus import read_source, write_corpus  # noqa: E402

from procqa.ranking import RankingConfig, RankingFeatures, Searcher  # noqa: E402
from procqa.settings import Settings  # noqa: E402

DIMENSION = 384
RANDOM_MODEL = "random-unit-384@1"
SAMPLE_DERIVED_MODEL = "sample-derived-384@1"
TITLE_NOISE = 0.3  # a copied passage's vector is its sample passage's plus this much noise: cosine 0.96
RELOAD_MAX = 10_000  # procedures up to which a row also reloads under load
LONG = "long"  # label of the long-section rows (scripts/make_long_sections.py), embedded by the model
LEVELS = (1, 8, 32)


# Embedders


class RandomEmbedder:
    """Unit vectors from a hash of each text (splitmix64 counters): no model, and the same text
    always gets the same vector, so incremental builds reuse them as they would embeddings."""

    model_id = RANDOM_MODEL
    dimension = DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        seeds = np.array(
            [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in texts],
            dtype=np.uint64,
        )
        z = seeds[:, None] + np.arange(1, self.dimension + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        out = (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


class SampleDerivedEmbedder:
    """Vectors that cluster as embeddings do, for synthetic corpora, without embedding them all.

    A synthetic document copies the text of its sections from sample documents, under a title
    of its own. So each synthetic passage gets the model's embedding of the sample passage it
    copies, plus seeded noise for its title (TITLE_NOISE); an answer unit, copied verbatim, gets
    the sample unit's embedding. Texts the sample corpus lacks (edits, section-intent examples)
    are embedded by the model. Uniform random vectors have no neighbourhoods, so no approximate
    index finds their nearest neighbours (recall@10 0.09 at 10k procedures): these do."""

    model_id = SAMPLE_DERIVED_MODEL
    dimension = DIMENSION

    def __init__(self, sample_index: Path) -> None:
        from procqa.embedding import SentenceTransformerEmbedder
        from procqa.index import load

        self.model = SentenceTransformerEmbedder()
        data = load(sample_index, model_id=self.model.model_id, verify=False)
        vectors, units = np.asarray(data.vectors), np.asarray(data.units)
        self.passages = {f"{p.section}: {p.text}": vectors[p.id] for p in data.passages}
        starts = data.unit_offsets
        self.units = {u: units[starts[p.id] + j] for p in data.passages for j, u in enumerate(p.units)}
        self.markers = [f". {section}: " for section in sorted({p.section for p in data.passages})]
        self.noise = RandomEmbedder()
        self.by_model = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = TITLE_NOISE * self.noise.embed(texts)
        unknown = []
        for row, text in enumerate(texts):
            if (unit := self.units.get(text)) is not None:
                out[row] = unit
            elif (passage := self._passage(text)) is not None:
                out[row] += passage
            else:
                unknown.append(row)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        if unknown:
            out[unknown] = self.model.embed([texts[row] for row in unknown])
            self.by_model += len(unknown)
        return out

    def _passage(self, text: str) -> np.ndarray | None:
        """The sample embedding of a passage's embed_text ('Title. Section: text') by its
        'Section: text'."""
        for marker in self.markers:
            at = text.find(marker)
            if at >= 0 and (found := self.passages.get(text[at + 2 :])) is not None:
                return found
        return None


class QueryModel:
    """The real model for queries, answering to the random index's model id."""

    def __init__(self, model_id: str) -> None:
        from procqa.embedding import make_embedder

        self.inner = make_embedder(Settings())
        self.model_id = model_id
        self.dimension = DIMENSION
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started


# `shipped` scores every passage up to search.FULL_SCAN; `candidates` always scores only the
# candidate union (dense top-N, BM25 top-N, the best procedures' passages), as above that size.
CONFIGS = {"shipped": RankingConfig(), "candidates": RankingConfig(full_scan=0)}


def searcher_of(name: str, data: Any, embedder: Any) -> Searcher:
    return Searcher(RankingFeatures.from_index(data, CONFIGS[name]), embedder)


# Measurements


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    values = np.array(samples) * 1000
    return {f"p{p}_ms": round(float(np.percentile(values, p)), 2) for p in (50, 95, 99)}


def rss_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, from /proc/<pid>/status; anonymous
    (the process's own) and file-backed (mapped files: libraries, model weights, index files)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {
        "rss_mb": fields.get("VmRSS", 0.0),
        "peak_rss_mb": fields.get("VmHWM", 0.0),
        "anon_mb": fields.get("RssAnon", 0.0),
        "file_mb": fields.get("RssFile", 0.0),
    }


def questions(count: int) -> list[str]:
    lines = (ROOT / "eval" / "questions.jsonl").read_text("utf-8").splitlines()
    texts = [json.loads(line)["question"] for line in lines if line.strip()]
    random.Random(0).shuffle(texts)
    return [texts[i % len(texts)] for i in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def edit_one_percent(folder: Path, *, seed: int) -> int:
    """Add a sentence to the last section of every hundredth document (at least one)."""
    paths = sorted(folder.glob("*.txt"))
    chosen = paths[::100][: max(1, len(paths) // 100)]
    for path in chosen:
        text = path.read_text("utf-8").rstrip("\n")
        path.write_text(f"{text}\n- Follow-up: A nurse calls the next day (revision {seed}).\n", "utf-8")
    return len(chosen)


def time_searches(searcher: Searcher, queries: Sequence[str], *, k: int = 10) -> tuple[list[float], list[list[int]]]:
    seconds, rankings = [], []
    for query in queries:
        started = time.perf_counter()
        hits = searcher.search(query, k=k)
        seconds.append(time.perf_counter() - started)
        rankings.append([h.passage.id for h in hits])
    return seconds, rankings


def time_model(searcher: Searcher, embedder: QueryModel, queries: Sequence[str]) -> list[float]:
    """Seconds of the bare model call each query's search makes (the texts it embeds): the
    baseline a query's latency is measured against in the same run."""
    seconds = []
    for query in queries:
        texts = searcher.query_texts(query)
        started = time.perf_counter()
        embedder.inner.embed(texts)
        seconds.append(time.perf_counter() - started)
    return seconds


def interleaved(searcher: Searcher, embedder: QueryModel, queries: Sequence[str]) -> dict[str, float]:
    """Each query's bare model call and its search timed one after the other, so that both
    meet the caches as the previous search left them: `time_model` calls the model back to
    back, where it runs warmer than the call inside a search does."""
    model, search = [], []
    for query in queries:
        texts = searcher.query_texts(query)
        started = time.perf_counter()
        embedder.inner.embed(texts)
        model.append(time.perf_counter() - started)
        started = time.perf_counter()
        searcher.search(query, k=10)
        search.append(time.perf_counter() - started)
    search_p50, model_p50 = percentiles(search)["p50_ms"], percentiles(model)["p50_ms"]
    return {"p50_ms": search_p50, "model_p50_ms": model_p50, "p50_vs_model": round(search_p50 / model_p50, 3)}


def overlap(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> dict[str, float]:
    at10 = [len(set(x) & set(y)) / max(1, len(y)) for x, y in zip(a, b, strict=True)]
    top1 = [bool(x and y and x[0] == y[0]) for x, y in zip(a, b, strict=True)]
    return {"overlap@10": round(float(np.mean(at10)), 3), "top1_agreement": round(float(np.mean(top1)), 3)}


def exact_top(vectors: Any, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k largest inner products of each query, by a scan of every row."""
    best = np.full((len(queries), 0), -1, dtype=np.int64)
    scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), 2**17):
        block = np.asarray(vectors[start : start + 2**17], dtype=np.float32)
        rows = np.broadcast_to(np.arange(start, start + len(block)), (len(queries), len(block)))
        scores = np.concatenate([scores, queries @ block.T], axis=1)
        best = np.concatenate([best, rows], axis=1)
        keep = np.argpartition(-scores, k, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
        scores, best = np.take_along_axis(scores, keep, 1), np.take_along_axis(best, keep, 1)
    return best


def recall(found: Sequence[Sequence[int]], exact: Sequence[Sequence[int]]) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)])), 3)


def dense_recall(data: Any, embedder: QueryModel, queries: Sequence[str]) -> dict[str, Any]:
    """recall@10 of index.nearest (the dense index, rescored) against an exact scan, for the
    queries' vectors; and the share of the exact top 10 among the searcher's dense candidates."""
    from procqa.index import index_type, nearest

    DENSE_CANDIDATES = RankingConfig().dense_candidates  # noqa: N806

    vectors = embedder.inner.embed(list(queries))
    exact = exact_top(data.vectors, vectors, 10)
    started = time.perf_counter()
    _, found = nearest(data.dense, data.vectors, vectors, 10)
    seconds = (time.perf_counter() - started) / len(queries)
    _, candidates = nearest(data.dense, data.vectors, vectors, DENSE_CANDIDATES)
    return {
        "index": index_type(data.dense),
        "recall@10": recall(found, exact),
        f"exact_top10_in_{DENSE_CANDIDATES}": recall(candidates, exact),
        "nearest_ms": round(seconds * 1000, 2),
    }


def ranking_recall(searcher: Searcher, queries: Sequence[str]) -> dict[str, Any]:
    """The searcher's top 10 against scoring every passage (what it gives up by scoring
    candidates only), how far below the exact top 10's scores its own fall (near zero when
    the passages it misses tie with those it finds, as copies of one sample passage under
    many synthetic titles do), and the seconds a query takes when every passage is scored."""
    scanning = Searcher(searcher.features, searcher.embedder, config=replace(searcher.config, full_scan=sys.maxsize))
    exact = []
    started = time.perf_counter()
    for query in queries:
        exact.append(scanning.search(query, k=10))
    seconds = (time.perf_counter() - started) / len(queries)
    found = [searcher.search(query, k=10) for query in queries]
    ids = [[[h.passage.id for h in hits] for hits in side] for side in (found, exact)]
    means = [[float(np.mean([h.score for h in hits])) for hits in side] for side in (found, exact)]
    shortfall = [e - f for f, e in zip(*means, strict=True)]
    return {
        "queries": len(queries),
        "recall@10": recall(*ids),
        "top1_agreement": overlap(*ids)["top1_agreement"],
        "score_shortfall@10": round(float(np.mean(shortfall)), 4),
        "mean_score@10": round(float(np.mean(means[1])), 3),
        "full_scan_s_per_query": round(seconds, 2),
    }


def in_process(
    root: Path, model_id: str, queries: Sequence[str], names: Sequence[str], recall_queries: int
) -> dict[str, Any]:
    """Load and verification time, query latency of each searcher with the index loaded in this
    process, and recall against exact search."""
    from procqa.index import load

    embedder = QueryModel(model_id)
    embedder.embed(["warm up"])
    out: dict[str, Any] = {}
    for name, thorough in (("verify_s", False), ("verify_thorough_s", True)):
        started = time.perf_counter()
        load(root, model_id=model_id, thorough=thorough)
        out[name] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    data = load(root, model_id=model_id, verify=False)
    out["load_s"] = round(time.perf_counter() - started, 2)
    out["dense_recall"] = dense_recall(data, embedder, queries)
    rankings: dict[str, list[list[int]]] = {}
    for name in names:
        started = time.perf_counter()
        searcher = searcher_of(name, data, embedder)
        construct = time.perf_counter() - started
        time_searches(searcher, queries[:5])
        embedder.seconds = 0.0
        seconds, rankings[name] = time_searches(searcher, queries)
        timed = percentiles(seconds)
        model_p50 = percentiles(time_model(searcher, embedder, queries))["p50_ms"]
        paired = interleaved(searcher, embedder, queries)
        out[name] = {
            "construct_s": round(construct, 2),
            **timed,
            "model_p50_ms": model_p50,
            "p50_vs_model": round(timed["p50_ms"] / model_p50, 3) if model_p50 else None,
            "interleaved": paired,
            "model_share": round(embedder.seconds / sum(seconds), 3),
            "model_ms_per_query": round(embedder.seconds / len(seconds) * 1000, 2),
        }
        if name == names[-1] and recall_queries and len(data.passages) > searcher.config.full_scan:
            out["ranking_recall"] = ranking_recall(searcher, queries[:recall_queries])
        del searcher
        gc.collect()
    if len(rankings) == 2:
        out["candidates_vs_shipped"] = overlap(rankings["candidates"], rankings["shipped"])
    return out


def serve(
    root: Path, model_id: str, searcher: str, *, limit_threads: bool
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start a server subprocess; returns it, its URL and the seconds until /ready answered 200."""
    import httpx

    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    command = [sys.executable, __file__, "--serve", str(root), "--port", str(port), "--model-id", model_id]
    if not limit_threads:
        command.append("--default-threads")
    started = time.perf_counter()
    process = subprocess.Popen([*command, "--searcher", searcher], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if client.get("/ready").status_code == 200:
                    return process, url, time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)


def http_latency(url: str, queries: Sequence[str]) -> dict[str, Any]:
    import httpx

    seconds, failed = [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for query in queries:
            started = time.perf_counter()
            ok = client.get("/search", params={"q": query, "k": 10}).status_code == 200
            seconds.append(time.perf_counter() - started)
            failed += not ok
    return {**percentiles(seconds), "failed": failed}


def throughput(url: str, queries: Sequence[str], concurrency: int, seconds: float) -> dict[str, Any]:
    """Searches answered per second by `concurrency` clients in a closed loop for `seconds`.

    Each client is a keep-alive `http.client` connection: the load generator shares the cores
    it measures, and the standard library's client costs it a fraction of what httpx does."""
    import http.client
    from urllib.parse import urlencode, urlsplit

    address = urlsplit(url)
    paths = [f"/search?{urlencode({'q': q, 'k': 10})}" for q in queries]
    done, failed, latencies = [0], [0], []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=120)

    def client_loop(offset: int) -> None:
        connection = connect()
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", paths[n % len(paths)])
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = connect()
            with lock:
                done[0] += ok
                failed[0] += not ok
                latencies.append(time.perf_counter() - started)
            n += concurrency
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"qps": round(done[0] / elapsed, 1), "failed": failed[0], **percentiles(latencies or [0.0])}


def reloads_under_load(
    root: Path, process: subprocess.Popen[bytes], url: str, queries: Sequence[str], seconds: float
) -> dict[str, Any]:
    """Searches at concurrency 8 for `seconds` while, every second, a new index version (the
    served one's files, hard-linked) is pointed at and the server told by SIGHUP; the versions
    /ready then reports are counted, and every failed request."""
    import signal

    import httpx

    from procqa.index import current_version, point

    load: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: load.update(throughput(url, queries, 8, seconds)))
    worker.start()
    source, swapped, served = current_version(root), 0, set()
    with httpx.Client(base_url=url, timeout=60) as client:
        while worker.is_alive():
            name = f"{source.name}-reload{swapped:03d}"
            shutil.copytree(source, source.parent / name, copy_function=os.link)
            point(root, name)
            process.send_signal(signal.SIGHUP)
            swapped += 1
            time.sleep(1.0)
            served.add(client.get("/ready").json().get("version"))
    worker.join()
    return {"reloads": swapped, "versions_served": len(served - {source.name}), **load}


def over_http(
    root: Path, model_id: str, searcher: str, queries: Sequence[str], seconds: float, *, reload: bool
) -> dict[str, Any]:
    process, url, cold = serve(root, model_id, searcher, limit_threads=True)
    try:
        result: dict[str, Any] = {"searcher": searcher, "cold_start_s": round(cold, 2), **rss_mb(process.pid)}
        http_latency(url, queries[:5])
        result["latency"] = http_latency(url, queries)
        result["qps"] = {str(c): throughput(url, queries, c, seconds) for c in LEVELS}
        result["after_load"] = rss_mb(process.pid)
        if reload:
            result["reload_under_load"] = reloads_under_load(root, process, url, queries, seconds)
        return result
    finally:
        process.terminate()
        process.wait(30)


def default_threads(root: Path, model_id: str, searcher: str, queries: Sequence[str]) -> dict[str, Any]:
    """Sequential HTTP latency of a server whose math libraries use their default threads."""
    process, url, cold = serve(root, model_id, searcher, limit_threads=False)
    try:
        http_latency(url, queries[:3])
        return {"cold_start_s": round(cold, 2), "latency": http_latency(url, queries)}
    finally:
        process.terminate()
        process.wait(30)


def bare_encode(texts: Sequence[str]) -> float:
    from procqa.embedding import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder().model
    model.encode(list(texts[:8]))
    started = time.perf_counter()
    model.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - started


def bench_corpus(label: str, corpus: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from procqa.embedding import make_embedder
    from procqa.index import load
    from procqa.ingest.chunking import chunk
    from procqa.ingest.corpus import read_corpus
    from procqa.ranking import build_index as build
    from procqa.ranking.intent import intent_texts

    started = time.perf_counter()
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    parse_s = time.perf_counter() - started
    count = len(loaded.procedures)
    long_sections = label.startswith(LONG)
    real = count <= args.random_vectors_above or long_sections
    if real:
        embedder: Any = make_embedder(Settings())
    else:
        embedder = RandomEmbedder() if args.vectors == "uniform" else SampleDerivedEmbedder(ROOT / "index")
    if real:
        # load both paths before timing: queries go to ONNX Runtime, a build's batches to torch
        embedder.embed(["warm up"])
        embedder.model.encode(["warm up"])
    root = work / "index"
    shutil.rmtree(root, ignore_errors=True)
    row: dict[str, Any] = {
        "corpus": label,
        "procedures": count,
        "passages": len(passages),
        "vectors": "model" if real else args.vectors,
        "parse_s": round(parse_s, 2),
    }
    log(f"[{label}] {count} procedures, {len(passages)} passages, {row['vectors']} vectors: full build")
    full = build(loaded.procedures, passages, embedder, root, full=True, batch_size=64 if real else 8192, keep=2)
    manifest = load(root, verify=False).manifest
    row["full_build"] = {
        "seconds": round(full.seconds, 2),
        "passages_per_s": round(len(passages) / full.seconds, 1),
        "stages_s": {k: round(v, 2) for k, v in full.timings.items()},
        "index_type": manifest["index_type"],
        "units": manifest["units"],
        "units_per_s": round(manifest["units"] / full.seconds, 1),
        "unit_vectors": manifest.get("unit_vectors"),
    }
    units = list(dict.fromkeys(u for p in passages for u in p.units))
    texts = [p.embed_text for p in passages] + units + list(intent_texts(loaded.procedures)[1])
    if long_sections:
        # the build against the bare encode of its passages alone: what embedding units costs
        log(f"[{label}] bare model.encode of its {len(passages)} passages alone")
        encode_s = bare_encode([p.embed_text for p in passages])
        row["full_build"]["encode_passages_per_s"] = round(len(passages) / encode_s, 1)
        row["full_build"]["vs_passage_encode"] = round(full.seconds / encode_s, 3)
    elif real:
        log(f"[{label}] bare model.encode of the same {len(texts)} texts")
        encode_s = bare_encode(texts)
        row["full_build"]["encode_passages_per_s"] = round(len(passages) / encode_s, 1)
        row["full_build"]["throughput_vs_encode"] = round(encode_s / full.seconds, 3)
    else:
        # what embedding every text with the model would have added to the build, from the
        # model's rate on an even sample of them
        sample = texts[:: max(1, len(texts) // 512)]
        log(f"[{label}] bare model.encode of {len(sample)} of its {len(texts)} texts")
        projected = full.seconds + bare_encode(sample) * len(texts) / len(sample)
        row["full_build"]["projected_with_model_s"] = round(projected, 1)
    edited = edit_one_percent(corpus, seed=1)
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    log(f"[{label}] rebuild after editing {edited} documents")
    again = build(loaded.procedures, passages, embedder, root, batch_size=64 if real else 8192, keep=2)
    row["rebuild_1pct"] = {
        "documents_edited": edited,
        "seconds": round(again.seconds, 2),
        "vs_full": round(again.seconds / full.seconds, 3),
        "stages_s": {k: round(v, 2) for k, v in again.timings.items()},
        "changed": again.changed,
        "embedded": again.embedded,
        "reused": again.reused,
    }
    if "projected_with_model_s" in row["full_build"]:
        row["rebuild_1pct"]["vs_projected_full"] = round(again.seconds / row["full_build"]["projected_with_model_s"], 4)
    del loaded, passages, embedder, units, texts
    gc.collect()

    model_id = manifest["model"]
    queries = questions(args.queries)
    names = ["shipped", "candidates"] if count <= args.shipped_max else ["candidates"]
    log(f"[{label}] in-process queries: {', '.join(names)}")
    row["in_process"] = in_process(root, model_id, queries, names, args.recall_queries)
    gc.collect()
    log(f"[{label}] over HTTP ({names[0]})")
    # a reload holds two versions at once: at 100k procedures that is two 1.4 GB searchers
    row["http"] = over_http(root, model_id, names[0], queries, args.seconds, reload=count <= RELOAD_MAX)
    if args.default_threads_check:
        log(f"[{label}] over HTTP with default math-library threads")
        row["http_default_threads"] = default_threads(root, model_id, names[0], queries[: max(10, args.queries // 4)])
        args.default_threads_check = False
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return row


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| corpus | procedures | passages | vectors | index | build s (passages/s) | vs encode | rebuild 1% s "
        "(vs full) | load / verify / construct s | in-process p50/p95/p99 ms | p50 vs model | model share | "
        "dense recall@10 | "
        "ranking recall@10 | HTTP p50/p95/p99 ms | QPS c=1/8/32 | RSS MB (anon + file) | cold start s | "
        "reloads under load (failed) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        inside = r["in_process"]
        name = next(n for n in ("shipped", "candidates") if n in inside)
        proc = inside[name]
        http = r["http"]
        lat = http["latency"]
        qps = "/".join(str(http["qps"][str(c)]["qps"]) for c in LEVELS)
        build = r["full_build"]
        ratio = build.get("throughput_vs_encode", "n/a")
        if "vs_passage_encode" in build:
            ratio = f"{build['vs_passage_encode']} x passages alone"
        rebuild = r["rebuild_1pct"]
        versus = f"{rebuild['vs_full']}" + (
            f"; {rebuild['vs_projected_full']} of {build['projected_with_model_s']} s with the model"
            if "vs_projected_full" in rebuild
            else ""
        )
        ranking = inside.get("ranking_recall", {}).get("recall@10", "n/a")
        memory = http["after_load"]
        reloads = http.get("reload_under_load")
        reloaded = f"{reloads['reloads']} ({reloads['failed']})" if reloads else "n/a"
        lines.append(
            f"| {r['corpus']} | {r['procedures']} | {r['passages']} | {r['vectors']} | {build['index_type']} | "
            f"{build['seconds']} ({build['passages_per_s']}) | {ratio} | {rebuild['seconds']} ({versus}) | "
            f"{inside['load_s']} / {inside['verify_s']} / {proc['construct_s']} | "
            f"{proc['p50_ms']}/{proc['p95_ms']}/{proc['p99_ms']} ({name}) | {proc.get('p50_vs_model', 'n/a')} | "
            f"{proc['model_share']} | "
            f"{inside['dense_recall']['recall@10']} | {ranking} | "
            f"{lat['p50_ms']}/{lat['p95_ms']}/{lat['p99_ms']} ({http['searcher']}) | {qps} | "
            f"{memory['rss_mb']} ({memory['anon_mb']} + {memory['file_mb']}) | {http['cold_start_s']} | {reloaded} |"
        )
    return "\n".join(lines)


def ratios(rows: Sequence[dict[str, Any]]) -> str:
    """Per corpus, the two ratios against baselines timed in the same run: query p50 against
    the bare model call of the same texts (1.0: ranking costs nothing beside the model), and
    build throughput against bare model.encode of the same texts (1.0: the build costs nothing
    beside embedding)."""
    lines = ["", "Ratios against baselines timed in this run:"]
    for r in rows:
        inside = r["in_process"]
        name = next(n for n in ("shipped", "candidates") if n in inside)
        proc, build = inside[name], r["full_build"]
        query = f"query p50 {proc['p50_ms']} ms = {proc.get('p50_vs_model', 'n/a')} x the bare model call"
        if "interleaved" in proc:
            query += f" ({proc['interleaved']['p50_vs_model']} x with the two timed in turn)"
        query += f" ({proc.get('model_p50_ms', 'n/a')} ms, {name})"
        if "throughput_vs_encode" in build:
            built = f"build throughput = {build['throughput_vs_encode']} x bare model.encode of the same texts"
        elif "vs_passage_encode" in build:
            built = f"build time = {build['vs_passage_encode']} x bare model.encode of its passages alone"
        else:
            built = f"build not model-embedded; {build.get('projected_with_model_s', 'n/a')} s projected with the model"
        lines.append(f"- {r['corpus']}: {query}; {built}")
    return "\n".join(lines)


def run_server(args: argparse.Namespace) -> int:
    """The server half: create_app under uvicorn in the main thread, as `procqa serve` runs it."""
    import uvicorn

    from procqa.api import create_app
    from procqa.serving.process import tune_process
    from procqa.settings import Settings

    if not args.default_threads:
        tune_process()
    settings = Settings(index=Path(args.serve), _env_file=None)
    embedder = QueryModel(args.model_id)
    embedder.embed(["warm up"])
    app = create_app(settings, embedder=embedder, config=CONFIGS[args.searcher])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="synthetic corpus sizes, comma-separated (default 1000)")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample corpus row")
    parser.add_argument(
        "--long-sections", type=int, default=0, help="a row of this many long sections, model-embedded (e.g. 10000)"
    )
    parser.add_argument("--random-vectors-above", type=int, default=100, help="no model embeddings above this size")
    parser.add_argument(
        "--vectors",
        choices=("sample-derived", "uniform"),
        default="sample-derived",
        help="vectors above --random-vectors-above: the sample passages' embeddings plus noise, or uniform random",
    )
    parser.add_argument("--recall-queries", type=int, default=20, help="queries scored exactly for ranking recall")
    parser.add_argument("--shipped-max", type=int, default=1000, help="time the shipped Searcher up to this size")
    parser.add_argument("--queries", type=int, default=100, help="queries timed sequentially (default 100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per QPS level (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/procqa-bench"), help="scratch folder")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench.json")
    parser.add_argument("--keep", action="store_true", help="keep the indexes in --work")
    parser.add_argument("--no-default-threads-check", dest="default_threads_check", action="store_false")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-id", help=argparse.SUPPRESS)
    parser.add_argument("--searcher", default="shipped", help=argparse.SUPPRESS)
    parser.add_argument("--default-threads", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return run_server(args)

    from procqa.embedding import make_embedder
    from procqa.serving.process import limit_blas_threads

    make_embedder(Settings()).embed(["load the model before limiting its threads"])
    limit_blas_threads()  # as the service does
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[str, Callable[[Path], None]]] = []
    if not args.no_sample:
        jobs.append(("sample", lambda folder: shutil.copytree(ROOT / "corpus", folder)))
    sources = [read_source(p) for p in sorted((ROOT / "corpus").glob("*.txt"))]
    if args.long_sections:
        n = args.long_sections
        jobs.append((f"{LONG}-{n}", lambda folder: write_long_corpus(sources, folder, n, seed=args.seed)))
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        jobs.append((f"synthetic-{size}", lambda folder, n=size: write_corpus(sources, folder, n, seed=args.seed)))
    for label, make in jobs:
        work = args.work / label
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        make(work / "corpus")
        rows.append(bench_corpus(label, work / "corpus", work, args))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))
    print(table(rows))
    print(ratios(rows))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
