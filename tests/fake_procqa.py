"""`procqa` on the fake embedder, in a process of its own, for tests that kill it or serve from it.

    python tests/fake_procqa.py index --corpus DIR --out DIR
    python tests/fake_procqa.py serve --index DIR --port PORT

The environment steers it (all optional):
  PROCQA_TEST_EMBED_DELAY  seconds to sleep before embedding each batch
  PROCQA_TEST_STARTED      a file created when the first batch is embedded
  PROCQA_TEST_KILL_AT      SIGKILL this process at a point of the build:
                           'embed:N' before the Nth batch, 'verify' once the new version is
                           written but not yet moved into place, 'point' once it is moved but
                           before CURRENT names it
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from conftest import FakeEmbedder

from procqa import cli
from procqa.index import IndexData, writer


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, slowed down and killable per batch as the environment says."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.delay = float(os.environ.get("PROCQA_TEST_EMBED_DELAY", "0"))
        self.started = os.environ.get("PROCQA_TEST_STARTED")
        kill_at = os.environ.get("PROCQA_TEST_KILL_AT", "")
        self.kill_batch = int(kill_at.split(":")[1]) if kill_at.startswith("embed:") else 0
        self.batches = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches += 1
        if self.started and self.batches == 1:
            Path(self.started).touch()
        if self.batches == self.kill_batch:
            die()
        time.sleep(self.delay)
        return super().embed(texts)


def arm_kill_points() -> None:
    """Wrap the index store's steps so the build dies where PROCQA_TEST_KILL_AT says."""
    kill_at = os.environ.get("PROCQA_TEST_KILL_AT", "")
    load_version, point = writer.load_version, writer.point

    def load_then_maybe_die(folder: Path, **kwargs: Any) -> IndexData:
        data = load_version(folder, **kwargs)
        if kill_at == "verify" and folder.name.startswith(".tmp-"):
            die()
        return data

    def maybe_die_then_point(root: Path, version: str) -> None:
        if kill_at == "point":
            die()
        point(root, version)

    writer.load_version = load_then_maybe_die  # type: ignore[assignment]
    writer.point = maybe_die_then_point  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    arm_kill_points()
    return cli.main(argv, embedder=SlowEmbedder())


if __name__ == "__main__":
    sys.exit(main())
