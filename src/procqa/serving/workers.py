"""Many worker processes serving one index: a supervisor that binds the socket, forks the
workers, restarts one that dies and passes SIGHUP on to all of them.

Workers are forked before anything is loaded, then each builds its app and opens the served
version: its arrays and FAISS index are memory-mapped, so the page cache holds one copy
for every worker, and each worker adds its model and its own small state. Each worker
watches CURRENT (procqa.serving.reload); a worker told to reload by POST /admin/reload asks
the supervisor (`announce`) to send every worker SIGHUP, so all move to the new version
within the time one load takes. Every response names the version that answered it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SUPERVISOR = "PROCQA_SUPERVISOR_PID"  # set in each worker: the process to announce reloads to
STOP_SECONDS = 15.0  # a worker still running this long after SIGTERM is killed
RESPAWN_SECONDS = 1.0  # least time between two starts of a worker slot, so a crash loop idles


def announce() -> None:
    """Ask the supervisor, if this process is one of its workers, to have every worker reload."""
    if os.environ.get(SUPERVISOR) == str(os.getppid()):
        os.kill(os.getppid(), signal.SIGHUP)


def bind(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """The listening socket every worker accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _worker(make_app: Callable[[], Any], sock: socket.socket, log_level: str) -> None:
    import uvicorn

    for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)  # uvicorn and the app install their own
    os.environ[SUPERVISOR] = str(os.getppid())
    server = uvicorn.Server(uvicorn.Config(make_app(), log_level=log_level, lifespan="on"))
    server.run(sockets=[sock])


class Supervisor:
    """Runs `workers` processes of the app `make_app` builds (called in each worker) on `sock`."""

    def __init__(
        self, make_app: Callable[[], Any], sock: socket.socket, *, workers: int, log_level: str = "info"
    ) -> None:
        self.make_app = make_app
        self.sock = sock
        self.workers = workers
        self.log_level = log_level
        self.children: dict[int, float] = {}  # pid: when started
        self.stopping = False

    def spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: it must never return into the supervisor's code
            code = 1
            try:
                self.sock.set_inheritable(False)
                _worker(self.make_app, self.sock, self.log_level)
                code = 0
            finally:
                if code:
                    traceback.print_exc()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def forward(self, signum: int, frame: FrameType | None = None) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Start the workers and keep them running until SIGTERM or SIGINT; returns 0."""
        previous = {
            n: signal.signal(n, h)
            for n, h in ((signal.SIGHUP, self.forward), (signal.SIGTERM, self.stop), (signal.SIGINT, self.stop))
        }
        try:
            for _ in range(self.workers):
                self.spawn()
            logger.info("serving with %d workers: %s", self.workers, " ".join(map(str, self.children)))
            while not self.stopping:
                self._reap()
                time.sleep(0.1)
        finally:
            self._stop_all()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return 0

    def _reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            started = self.children.pop(pid, time.monotonic())
            if not self.stopping:
                logger.warning("worker %d ended (status %d); starting another", pid, status)
                time.sleep(max(0.0, RESPAWN_SECONDS - (time.monotonic() - started)))
                self.spawn()

    def _stop_all(self) -> None:
        self.forward(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.children and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        self.forward(signal.SIGKILL)
        for pid in list(self.children):
            os.waitpid(pid, 0)
        self.children.clear()
