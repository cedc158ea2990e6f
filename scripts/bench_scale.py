"""Benchmark procqa at scale on one machine, each number against a baseline of the same run:

  ray      a full build of the sample corpus (real model) embedding on a local Ray cluster
           of two one-CPU worker nodes, against the same build embedding in this process:
           throughput ratio, and how far the two indexes' vectors are apart
  workers  `procqa serve --workers 2` against `--workers 1` on the same index: throughput
           and p99 at concurrency 8, resident memory of each worker (RSS, PSS, private), and
           --reloads new versions pointed at (one a second, SIGHUP to the supervisor) under
           load at concurrency 8, counting failed requests and the versions that answered

    python scripts/bench_scale.py                  # both, about 4 minutes on two cores
    python scripts/bench_scale.py --only workers [--index index]

Results: a Markdown summary on stdout and JSON in reports/bench-scale.json. `make bench`
runs it after scripts/bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench import free_port, questions, throughput  # noqa: E402

from procqa.embedding import make_embedder  # noqa: E402
from procqa.index import current_version, point  # noqa: E402
from procqa.ingest import chunk, read_corpus  # noqa: E402
from procqa.ranking import build_index  # noqa: E402
from procqa.settings import Settings  # noqa: E402

HEADER = "x-procqa-index-version"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Ray


def timed_build(corpus: Path, root: Path, **options: Any) -> dict[str, Any]:
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    settings = Settings(_env_file=None)
    started = time.perf_counter()
    report = build_index(loaded.procedures, passages, make_embedder(settings), root, full=True, **options)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "passages": report.passages,
        "texts_embedded": report.embedded,
        "passages_per_s": round(report.passages / seconds, 1),
        "stages_s": {k: round(v, 2) for k, v in report.timings.items()},
    }


def bench_ray(work: Path) -> dict[str, Any]:
    """A local build and a build on a local two-node Ray cluster (started beforehand, as a
    cluster is), of the sample corpus with the real model."""
    import ray
    from ray.cluster_utils import Cluster

    from procqa.index.distributed import RayEmbedding

    corpus = ROOT / "corpus"
    log("ray: local build")
    local = timed_build(corpus, work / "local")
    node = {"num_cpus": 1, "object_store_memory": 200 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        log("ray: build on the cluster")
        factory = partial(make_embedder, Settings(_env_file=None, onnx=False))
        distributed = timed_build(corpus, work / "ray", embedding=RayEmbedding(factory, address=cluster.address))
    finally:
        ray.shutdown()
        cluster.shutdown()
    one, two = current_version(work / "local"), current_version(work / "ray")
    worst = max(float(np.abs(np.load(one / n) - np.load(two / n)).max()) for n in ("vectors.npy", "units.npy"))
    same = (one / "passages.jsonl").read_bytes() == (two / "passages.jsonl").read_bytes()
    return {
        "local": local,
        "ray_2_nodes": distributed,
        "throughput_ratio": round(distributed["passages_per_s"] / local["passages_per_s"], 3),
        "max_vector_difference": worst,
        "same_passages": same,
    }


# Workers


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in text]


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages split among the processes mapping them) and private memory, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0]) / 1024
    private = fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0)
    return {
        "rss_mb": round(fields.get("Rss", 0.0), 1),
        "pss_mb": round(fields.get("Pss", 0.0), 1),
        "private_mb": round(private, 1),
    }


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes have used, every thread counted."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def loaded(url: str, queries: list[str], pids: list[int], seconds: float) -> dict[str, Any]:
    """throughput() at concurrency 8, with the cores the server's processes and this load
    generator kept busy meanwhile: what bounds a second worker's gain on a shared machine."""
    server, client, started = cpu_seconds(pids), time.process_time(), time.perf_counter()
    row = throughput(url, queries, 8, seconds)
    elapsed = time.perf_counter() - started
    busy = cpu_seconds(pids) - server
    row["server_cores"] = round(busy / elapsed, 2)
    row["client_cores"] = round((time.process_time() - client) / elapsed, 2)
    row["server_cpu_ms_per_query"] = round(busy * 1000 / max(row["qps"] * elapsed, 1.0), 2)
    return row


def start(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "procqa.cli", "serve", "--index", str(root), "--port", str(port)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # access logs cost CPU the load needs
    process = subprocess.Popen([*command, "--workers", str(workers)], **quiet)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if client.get("/ready").status_code == 200 and len(children(process.pid)) >= workers - 1:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    time.sleep(3 if workers > 1 else 0.5)  # every worker loaded and warm
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def bench_workers(root: Path, *, seconds: float, reloads: int) -> dict[str, Any]:
    queries = questions(200)
    result: dict[str, Any] = {}
    for workers in (1, 2):
        log(f"workers: {workers}")
        process, url = start(root, workers)
        try:
            throughput(url, queries, 8, 2.0)  # warm every worker
            pids = children(process.pid) if workers > 1 else [process.pid]
            row: dict[str, Any] = {"c8": loaded(url, queries, [process.pid, *children(process.pid)], seconds)}
            row["memory"] = {str(i + 1): memory(pid) for i, pid in enumerate(pids)}
            row["supervisor"] = memory(process.pid) if workers > 1 else None
            if workers > 1:
                row["reloads"] = reloads_under_load(root, process, url, queries, reloads)
            result[str(workers)] = row
        finally:
            stop(process)
    one, two = result["1"]["c8"], result["2"]["c8"]
    result["throughput_ratio_c8"] = round(two["qps"] / one["qps"], 3)
    result["p99_ratio_c8"] = round(two["p99_ms"] / one["p99_ms"], 3)
    # the most two workers can gain here: the cores left beside the load generator, over the
    # cores one worker already keeps busy (its model calls overlap other requests' ranking)
    cores = os.cpu_count() or 1
    result["throughput_bound_c8"] = round((cores - two["client_cores"]) / one["server_cores"], 3)
    return result


def reloads_under_load(
    root: Path, process: subprocess.Popen[bytes], url: str, queries: list[str], reloads: int
) -> dict[str, Any]:
    """Load at concurrency 8 while `reloads` new versions (hard links of the served one) are
    pointed at, one a second, each followed by SIGHUP to the supervisor; then every worker
    must answer from the last one."""
    import httpx

    outcome: dict[str, Any] = {}
    versions: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = [time.perf_counter() + reloads + 2.0]

    def tally() -> None:
        # throughput() counts failures; each response's version is sampled by a second client
        outcome.update(throughput(url, queries, 8, stop_at[0] - time.perf_counter()))

    worker = threading.Thread(target=tally)
    worker.start()
    source = current_version(root)
    with httpx.Client(base_url=url, timeout=60) as client:
        for number in range(reloads):
            name = f"{source.name}-reload{number:02d}"
            shutil.copytree(source, source.parent / name, copy_function=os.link)
            point(root, name)
            process.send_signal(signal.SIGHUP)
            deadline = time.perf_counter() + 1.0
            while time.perf_counter() < deadline:
                version = client.get("/search", params={"q": queries[number], "k": 3}).headers.get(HEADER, "")
                with lock:
                    versions[version] = versions.get(version, 0) + 1
        worker.join()
        last, waited = current_version(root).name, time.perf_counter()
        while True:  # until 40 requests in a row, spread over both workers, name the last version
            after = {client.get("/search", params={"q": q, "k": 3}).headers.get(HEADER) for q in queries[:40]}
            if after == {last} or time.perf_counter() - waited > 30:
                break
        waited = time.perf_counter() - waited
    return {
        "reloads": reloads,
        "failed": outcome.get("failed"),
        "qps": outcome.get("qps"),
        "p99_ms": outcome.get("p99_ms"),
        "versions_answering": len(versions),
        "all_workers_on_last": after == {last},
        "seconds_to_last_after_load": round(waited, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("ray", "workers"))
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per measurement")
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--index", type=Path, help="serve a copy of this built index of the sample corpus (workers)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/procqa-bench-scale"))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-scale.json")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    if args.only in (None, "ray"):
        results["ray"] = bench_ray(args.work)
    if args.only in (None, "workers"):
        root = args.work / "local"
        if args.index:
            shutil.copytree(args.index, root)
        elif not (root / "CURRENT").exists():
            timed_build(ROOT / "corpus", root)
        results["workers"] = bench_workers(root, seconds=args.seconds, reloads=args.reloads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
