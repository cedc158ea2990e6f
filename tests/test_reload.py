"""Hot reload: a running service switches to new index versions under load without failing a
request, by the admin route, by polling CURRENT, and on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from conftest import TINY, FakeEmbedder, build_index

from procqa.api import create_app
from procqa.index import CURRENT, current_version, rollback
from procqa.serving.reload import Watcher, watching
from procqa.serving.service import Service
from procqa.settings import Settings

TOKEN = "reload-test-token"
WORDS = ("quokka", "axolotl", "pangolin", "narwhal")
HAMMERS = 6


def new_document(corpus: Path, number: int) -> str:
    """Add a procedure named by a word no other document has; returns that word."""
    word = WORDS[number]
    (corpus / f"cpt-9990{number}-{word}-release.txt").write_text(
        f"Search all medical codes\n{word.title()} release\nCPT4 code 9990{number}\n"
        f"Name of the Procedure:\n{word.title()} release\nSummary\n"
        f"{word.title()} release frees the {word} tendon of the wrist.\n"
        f"Recovery\n- Recovery Time: The {word} tendon heals in two weeks.\n",
        encoding="utf-8",
    )
    return word


def wait_for(condition: Callable[[], bool], *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TINY, tmp_path / "corpus"))


@pytest.fixture
def root(corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    return build_index(corpus, tmp_path / "index", fake_embedder)


@pytest.fixture
def settings(root: Path, corpus: Path) -> Settings:
    return Settings(index=root, corpus=corpus, admin_token=TOKEN, keep_versions=10, _env_file=None)


class Server:
    """The app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, embedder: FakeEmbedder) -> None:
        self.app = create_app(settings, embedder=embedder)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def service(self) -> Service:
        return self.app.state.service

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for(lambda: self.server.started)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


class Hammer:
    """Threads sending searches until stopped, counting every answer and every failure."""

    def __init__(self, url: str, query: str) -> None:
        self.url, self.query = url, query
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(HAMMERS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get("/search", params={"q": self.query, "k": 3})
                    status = response.status_code
                    error = None if status == 200 and response.json()["results"] else response.text
                except httpx.HTTPError as failure:
                    status, error = -1, repr(failure)
                with self.lock:
                    self.statuses[status] += 1
                    if error:
                        self.failures.append(error)

    @property
    def answered(self) -> int:
        with self.lock:
            return sum(self.statuses.values())

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)


def top_title(client: httpx.Client, query: str) -> str:
    response = client.get("/search", params={"q": query, "k": 1})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["procedure"]["title"]


def test_new_versions_are_served_under_load_without_a_failed_request(
    settings: Settings, corpus: Path, root: Path, fake_embedder: FakeEmbedder
) -> None:
    with (
        Server(settings, fake_embedder) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        Hammer(server.url, "How long is recovery after a knee replacement?") as hammer,
    ):
        wait_for(lambda: hammer.answered > 20)
        during: list[int] = []
        for number in range(3):  # reloads asked for on the admin route
            word = new_document(corpus, number)
            before = hammer.answered
            build_index(corpus, root, fake_embedder)
            reloaded = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["changed"] is True
            assert reloaded.json()["version"] == current_version(root).name
            assert top_title(client, f"what is {word} release") == f"{word.title()} release"
            during.append(hammer.answered - before)

        watcher = Watcher(server.service, interval=0.05)  # `procqa serve` starts one; a thread does not
        watcher.start()
        try:
            word = new_document(corpus, 3)
            build_index(corpus, root, fake_embedder)
            wait_for(lambda: client.get("/ready").json()["version"] == current_version(root).name)
            assert top_title(client, f"what is {word} release") == f"{word.title()} release"

            rollback(root)
            wait_for(lambda: client.get("/ready").json()["version"] == current_version(root).name)
            assert top_title(client, f"what is {word} release") != f"{word.title()} release"
        finally:
            watcher.stop()

    assert hammer.failures == []
    assert set(hammer.statuses) == {200}
    assert all(count > 0 for count in during), during  # searches were answered while each version was built


def test_the_watcher_keeps_serving_when_current_names_a_missing_version(settings: Settings, root: Path) -> None:
    service = Service.open(settings, FakeEmbedder())
    served = service.version
    (root / CURRENT).write_text("19700101T000000000000Z\n", encoding="utf-8")

    assert Watcher(service).check() is None

    assert service.version == served
    assert service.last_error and "19700101T000000000000Z" in service.last_error


def test_the_watcher_does_nothing_while_current_is_unchanged(settings: Settings) -> None:
    service = Service.open(settings, FakeEmbedder())
    watcher = Watcher(service)

    assert watcher.check() is None
    assert watcher.check(force=True) is None


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_at_once(settings: Settings, corpus: Path, root: Path, fake_embedder: FakeEmbedder) -> None:
    service = Service.open(settings, fake_embedder)
    before = signal.getsignal(signal.SIGHUP)
    with watching(service, interval=3600) as watcher:  # polls once an hour: only the signal can be quick
        assert watcher is not None
        new_document(corpus, 0)
        build_index(corpus, root, fake_embedder)
        assert service.version != current_version(root).name

        os.kill(os.getpid(), signal.SIGHUP)

        wait_for(lambda: service.version == current_version(root).name)
    assert signal.getsignal(signal.SIGHUP) == before


def test_outside_the_main_thread_nothing_is_watched(settings: Settings) -> None:
    service = Service.open(settings, FakeEmbedder())
    seen: list[object] = []

    def enter() -> None:
        with watching(service) as watcher:
            seen.append(watcher)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()

    assert seen == [None]


def test_procqa_serve_reloads_a_new_build_by_itself(
    settings: Settings, corpus: Path, root: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the main thread, as under `procqa serve`, the app polls CURRENT without being asked."""
    app = create_app(settings, embedder=fake_embedder)
    monkeypatch.setattr("procqa.serving.reload.POLL_SECONDS", 0.05)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            service: Service = app.state.service
            new_document(corpus, 1)
            build_index(corpus, root, fake_embedder)
            deadline = time.monotonic() + 10
            while service.version != current_version(root).name:
                assert time.monotonic() < deadline, "not reloaded"
                await asyncio.sleep(0.02)

    asyncio.run(run())
