"""Embedding a build's new and changed texts on a Ray cluster (the optional `ray` extra).

A Ray Data pipeline over (stage, key, text) rows, mapped by a pool of actors that each build
their embedder once, from the factory the build hands over (the model path of the build's
settings): one GPU per actor where the cluster has GPUs, else one CPU per actor. Only the
embedding leaves this process: planning (content keys, reuse), FAISS and BM25, verification
and the switch of CURRENT stay with the build, and vectors are put back by key, so block order
never matters. Ray retries a map task whose actor or node died (and restarts the actor
elsewhere); what it cannot finish fails the build before a version folder exists, so the
version being served is never touched.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from procqa.embedding import Embedder
from procqa.errors import ClusterError, ProcqaError
from procqa.index.vectors import Texts, in_context

log = logging.getLogger(__name__)

LOCAL = "local"  # address meaning: start a Ray instance on this machine (or join RAY_ADDRESS)
INSTALL_HINT = 'distributed builds need Ray: pip install "procqa[ray]"'
BATCHES_PER_ACTOR = 4  # map batches per actor at least, so that every actor gets work
MOST_ROWS_PER_BATCH = 2048  # what one model call takes locally (vectors.BATCHES_PER_CALL batches)


def require_ray() -> Any:
    """The ray module, or ProcqaError saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ProcqaError(INSTALL_HINT) from None
    return ray


class _EmbedActor:
    """One actor of the pool: builds its embedder once, then embeds batch after batch."""

    def __init__(self, factory: Callable[[], Embedder]) -> None:
        self.embedder = factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        carried: list[Any] = [json.loads(str(u)) if u else None for u in batch["units"]]
        alone = [i for i, c in enumerate(carried) if c is None]
        out: list[tuple[str, Sequence[str], np.ndarray]] = []
        if alone:
            vectors = self.embedder.embed([str(batch["text"][i]) for i in alone])
            out += [(str(batch["stage"][i]), [str(batch["key"][i])], vectors[j : j + 1]) for j, i in enumerate(alone)]
        rows = [i for i, c in enumerate(carried) if c is not None]
        if rows:
            texts = Texts(
                str(batch["stage"][rows[0]]),
                tuple(str(batch["key"][i]) for i in rows),
                tuple(str(batch["text"][i]) for i in rows),
                tuple(tuple(carried[i]["keys"]) for i in rows),
                tuple(tuple((int(s), int(e)) for s, e in carried[i]["spans"]) for i in rows),
            )
            out += list(in_context(self.embedder, texts, slice(None)))
        # a row each for every text, and for every unit embedded in context
        return {
            "stage": np.array([stage for stage, keys, _ in out for _ in keys]),
            "key": np.array([key for _, keys, _ in out for key in keys]),
            "vector": np.concatenate([np.asarray(v, dtype=np.float32) for _, _, v in out]),
        }


class RayEmbedding:
    """An `Embedding` (procqa.index.vectors) that runs on a Ray cluster.

    `factory` builds an actor's embedder (it is pickled to the cluster: procqa's
    make_embedder on the build's settings, or a test's fake); `address` is a Ray address or
    LOCAL; `actors` caps the pool (default: one per GPU, else one per CPU of the cluster)."""

    def __init__(
        self,
        factory: Callable[[], Embedder],
        *,
        address: str = LOCAL,
        batch_size: int = 64,
        actors: int | None = None,
    ) -> None:
        self.factory = factory
        self.address = address
        self.batch_size = batch_size
        self.actors = actors

    def embed(self, work: Sequence[Texts]) -> Iterator[tuple[str, Sequence[str], np.ndarray]]:
        rows = _rows(work)
        if not rows:
            return
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=None if self.address == LOCAL else self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ClusterError(f"cannot reach the Ray cluster at {self.address}: {error}") from None
        try:
            yield from self._run(ray, rows)
        except ray.exceptions.RayError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ClusterError(f"the Ray cluster failed to embed ({first}); the served version is untouched") from None
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, rows: list[dict[str, str]]) -> Iterator[tuple[str, Sequence[str], np.ndarray]]:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        size = min(self.actors or (gpus or cpus), gpus or cpus)
        per_batch = max(1, min(MOST_ROWS_PER_BATCH, math.ceil(len(rows) / (size * BATCHES_PER_ACTOR))))
        log.info(
            "embedding %d texts on Ray: %d actors (%s), %d texts a batch",
            len(rows),
            size,
            "1 GPU each" if gpus else "1 CPU each",
            per_batch,
        )
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the build shows its own, by stage
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / per_batch)))
        embedded = dataset.map_batches(
            _EmbedActor,
            fn_constructor_args=(self.factory,),
            batch_size=per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=1 if gpus else None,
            num_cpus=None if gpus else 1,
        )
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            for stage in np.unique(batch["stage"]):
                mine = batch["stage"] == stage
                yield str(stage), [str(k) for k in batch["key"][mine]], np.asarray(batch["vector"][mine])


def _rows(work: Sequence[Texts]) -> list[dict[str, str]]:
    """One row per text, stage by stage, each stage's texts by length: a batch of texts of
    like length pads little, as the model's own sorting does in a local build."""
    rows = []
    for texts in work:
        order = sorted(range(len(texts.texts)), key=lambda i: len(texts.texts[i]))
        rows += [
            {"stage": texts.stage, "key": texts.keys[i], "text": texts.texts[i], "units": _units(texts, i)}
            for i in order
        ]
    return rows


def _units(texts: Texts, i: int) -> str:
    """A passage's units to embed in its context (keys and spans, as JSON); '' for none."""
    return json.dumps({"keys": texts.units[i], "spans": texts.spans[i]}) if texts.units else ""
