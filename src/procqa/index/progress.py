"""The named stages of a build, and how a build tells its caller where it is in them.

The build only reports; the command line draws the bars (a terminal) or writes log lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

READING = "reading"
PASSAGES = "passages"
UNITS = "answer units"
INTENT = "intent"
DENSE = "dense index"
LEXICAL = "lexical index"
VERIFY = "verify"
STAGES = (READING, PASSAGES, UNITS, INTENT, DENSE, LEXICAL, VERIFY)
EMBEDDING_STAGES = (PASSAGES, UNITS, INTENT)


class Progress(Protocol):
    """Told when a stage starts (with how many items it has), as items are done, and when it ends."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, count: int) -> None: ...

    def finish(self, stage: str, seconds: float) -> None: ...


class Silent:
    """A Progress that shows nothing."""

    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, count: int) -> None:
        pass

    def finish(self, stage: str, seconds: float) -> None:
        pass


class Stages:
    """Times a build's steps into `timings` (seconds by name) and tells `progress` of its named
    stages; a stage's items not reported done by its end are reported then."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress: Progress = progress or Silent()
        self.timings: dict[str, float] = {}
        self.started = self._mark = time.perf_counter()
        self._left: dict[str, int] = {}

    def lap(self, step: str) -> float:
        """Record the time since the last lap as `step`'s."""
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - self._mark
        self._mark = now
        return self.timings[step]

    def start(self, name: str, total: int) -> None:
        self._left[name] = total
        self.progress.start(name, total)

    def advance(self, name: str, count: int) -> None:
        self._left[name] -= count
        self.progress.advance(name, count)

    def finish(self, name: str) -> None:
        """End a stage: its time is everything since the last lap."""
        if self._left.get(name, 0) > 0:
            self.progress.advance(name, self._left[name])
        self._left[name] = 0
        self.progress.finish(name, self.lap(name))

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[None]:
        """A named stage of `total` items, all done when the block ends."""
        self.start(name, total)
        yield
        self.finish(name)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
