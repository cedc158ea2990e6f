"""Many workers, one index: `procqa serve --workers 2` answers from both workers, names the
version that answered each request, moves every worker to a new version on SIGHUP without a
failed request, and sums its metrics over the workers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TINY, FakeEmbedder, build_index

from procqa.index import current_version

HELPER = Path(__file__).parent / "fake_procqa.py"
HEADER = "x-procqa-index-version"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TINY, tmp_path / "corpus"))


@pytest.fixture
def served(corpus: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A supervisor of two workers on the tiny index; yields it, its URL and the index folder."""
    root = build_index(corpus, tmp_path / "index", FakeEmbedder())
    port = free_port()
    env = {**os.environ, "PROCQA_ADMIN_TOKEN": "t"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, str(HELPER), "serve", "--index", str(root), "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:  # a worker accepts once it serves the index, so one ready answer will do
                assert process.poll() is None and time.monotonic() < deadline, "the workers did not start"
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield process, url, root
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_two_workers_serve_one_version_and_move_together(
    served: tuple[subprocess.Popen[bytes], str, Path], corpus: Path
) -> None:
    process, url, root = served
    workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(workers) == 2
    first = current_version(root).name
    answers: Counter[tuple[int, str]] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                response = client.get("/search", params={"q": "knee recovery", "k": 3})
                answers[(response.status_code, response.headers.get(HEADER, ""))] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    (corpus / "extra.md").write_text("# Quokka release\n\n## Recovery\n\nThe quokka tendon heals in two weeks.\n")
    build_index(corpus, root, FakeEmbedder())
    second = current_version(root).name
    process.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    with httpx.Client(base_url=url, timeout=30) as client:
        after = {client.get("/search", params={"q": "quokka", "k": 1}).headers[HEADER] for _ in range(20)}
    stop.set()
    for thread in threads:
        thread.join()

    assert after == {second}
    assert {status for status, _ in answers} == {200}
    assert {version for _, version in answers} <= {first, second}
    with httpx.Client(base_url=url, timeout=30) as client:
        metrics = client.get("/metrics").text
    total = sum(
        float(value)
        for value in re.findall(r'procqa_http_requests_total\{[^}]*route="/search"[^}]*status="200"\} (\S+)', metrics)
    )
    assert total == sum(answers.values()) + 20
