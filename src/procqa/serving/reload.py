"""Hot reload: serve a new index version once CURRENT names it, or at once on SIGHUP.

A watcher thread looks at the served index's CURRENT file every second. When it names
another version than the one served (a build finished, or a rollback), the service loads
that version while requests go on being answered from the old one, then swaps it in
(`Service.reload`); requests in flight finish on the version they started with. A version
that cannot be loaded is logged and the old one stays served.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from procqa.errors import ProcqaError
from procqa.index import CURRENT
from procqa.serving.service import Service

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class Watcher:
    """Reloads a service when its index's CURRENT file names another version."""

    def __init__(self, service: Service, *, interval: float = POLL_SECONDS) -> None:
        self.service = service
        self.interval = interval
        self._seen: tuple[int, int, int] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, *, force: bool = False) -> str | None:
        """Reload if CURRENT changed (or `force`) and names a version not being served;
        returns the version now served after a reload, else None."""
        pointer = self.service.settings.index / CURRENT
        try:
            stat = pointer.stat()
            # a new CURRENT is a new file (written aside, then renamed), so its inode changes
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if seen == self._seen and not force:
                return None
            self._seen = seen
            named = pointer.read_text("utf-8").strip()
        except FileNotFoundError:
            return None
        served = self.service.version
        if named == served:
            return None
        try:
            version = self.service.reload(announce=False)
        except (ProcqaError, OSError) as error:  # the service keeps it as its last error
            logger.warning("index version %s not loaded, still serving %s: %s", named, served, error)
            return None
        logger.info("now serving index version %s (was %s)", version, served)
        return version

    def request(self) -> None:
        """Check at once rather than at the next poll; safe to call from a signal handler."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="procqa-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            forced = self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                try:
                    self.check(force=forced)
                except OSError as error:
                    logger.warning("cannot read %s: %s", self.service.settings.index / CURRENT, error)


@contextmanager
def watching(service: Service, *, interval: float | None = None) -> Iterator[Watcher | None]:
    """Watch the service's index for the duration of the block, and reload on SIGHUP.

    Only in the main thread, which is where `procqa serve` runs the app: an app run by
    TestClient or started in a thread by a test reloads only when it is asked to."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    watcher = Watcher(service, interval=POLL_SECONDS if interval is None else interval)
    watcher.start()
    hangup = getattr(signal, "SIGHUP", None)

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        watcher.request()

    previous = signal.signal(hangup, on_hangup) if hangup is not None else None
    try:
        yield watcher
    finally:
        if hangup is not None:
            signal.signal(hangup, previous)
        watcher.stop()
