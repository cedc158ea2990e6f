"""Distributed builds: embedding on a local two-node Ray cluster writes the same index as a
local build, a changed document sends only its texts, and a node lost mid-build either is
retried or fails the build with the served version untouched."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from conftest import TINY, FakeEmbedder
from ray.cluster_utils import Cluster

from procqa import cli
from procqa.errors import ClusterError
from procqa.index import current_version, load
from procqa.index.distributed import RayEmbedding
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.ranking import build_index

NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
VOLATILE = ("built_at",)  # the only manifest field a second build of the same corpus changes


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, a little slow per batch, so that a node can be lost mid-build."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.3)
        return super().embed(texts)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two nodes of one CPU each, a small object store each, no dashboard."""
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    # the fakes live in test modules, which the cluster's workers cannot import
    for module in (sys.modules[FakeEmbedder.__module__], sys.modules[__name__]):
        ray.cloudpickle.register_pickle_by_value(module)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TINY, tmp_path / "corpus"))


def index(corpus: Path, root: Path, **options: Any) -> None:
    loaded = read_corpus(corpus)
    build_index(
        loaded.procedures, chunk(loaded.procedures), FakeEmbedder(), root, fingerprint=loaded.fingerprint, **options
    )


def assert_same_index(local: Path, distributed: Path) -> None:
    """Same ids, order and manifest; vectors within 1e-5."""
    one, two = current_version(local), current_version(distributed)
    manifests = [json.loads((v / "manifest.json").read_text()) for v in (one, two)]
    for manifest in manifests:
        for field in VOLATILE:
            manifest.pop(field)
    for name in ("vectors.npy", "units.npy", "intents.npy"):
        np.testing.assert_allclose(np.load(one / name), np.load(two / name), atol=1e-5, rtol=0)
        for manifest in manifests:
            manifest["files"].pop(name)
    assert manifests[0] == manifests[1]
    assert (one / "passages.jsonl").read_bytes() == (two / "passages.jsonl").read_bytes()
    assert [p.id for p in load(local).passages] == [p.id for p in load(distributed).passages]


def test_a_build_on_ray_equals_a_local_build(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    index(corpus, tmp_path / "local")
    address = cluster.address

    status = cli.main(
        ["index", "--corpus", str(corpus), "--out", str(tmp_path / "ray"), "--ray", address], embedder=FakeEmbedder()
    )

    assert status == 0
    assert_same_index(tmp_path / "local", tmp_path / "ray")
    # a changed document: only its new texts go to the cluster, and the indexes still agree
    knee = corpus / "cpt-27447-total-knee-arthroplasty.txt"
    knee.write_text(knee.read_text().replace("Recovery Time:", "Recovery Time: About six weeks."))
    index(corpus, tmp_path / "local")
    sent: list[int] = []
    embedding = RayEmbedding(FakeEmbedder, address=address)
    counting = Counting(embedding, sent)
    index(corpus, tmp_path / "ray", embedding=counting)
    assert 0 < sum(sent) < 10
    assert_same_index(tmp_path / "local", tmp_path / "ray")


class InContextEmbedder(FakeEmbedder):
    """The fake embedder, pooling each unit in context as its unit and its passage's first word."""

    def embed_in_context(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        units = [f"{t.split()[0]} {t[s:e]}" for t, group in zip(texts, spans, strict=True) for s, e in group]
        return self.embed(texts), self.embed(units)


def test_units_embedded_in_context_on_ray_equal_a_local_build(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    loaded = read_corpus(corpus)
    passages = chunk(loaded.procedures)
    build_index(loaded.procedures, passages, InContextEmbedder(), tmp_path / "local", units="context")
    embedding = RayEmbedding(InContextEmbedder, address=cluster.address)
    build_index(
        loaded.procedures, passages, InContextEmbedder(), tmp_path / "ray", embedding=embedding, units="context"
    )
    assert load(tmp_path / "ray").manifest["unit_vectors"] == "context"
    assert_same_index(tmp_path / "local", tmp_path / "ray")


class Counting:
    """An Embedding that counts the texts its inner one is sent."""

    def __init__(self, inner: RayEmbedding, sent: list[int]) -> None:
        self.inner, self.sent = inner, sent

    def embed(self, work: Sequence[Any]) -> Iterator[Any]:
        self.sent.append(sum(len(texts.keys) for texts in work))
        return self.inner.embed(work)


class LosingANode:
    """An Embedding that takes a node out of the cluster (no graceful shutdown) as soon as the
    first vectors come back, while the rest are still being embedded."""

    def __init__(self, inner: RayEmbedding, cluster: Cluster, node: Any) -> None:
        self.inner, self.cluster, self.node = inner, cluster, node

    def embed(self, work: Sequence[Any]) -> Iterator[Any]:
        chunks = self.inner.embed(work)
        yield next(chunks)
        self.cluster.remove_node(self.node, allow_graceful=False)
        yield from chunks


def test_a_node_lost_mid_build_is_retried_or_fails_cleanly(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    index(corpus, tmp_path / "local")
    root = tmp_path / "ray"
    index(corpus, root)
    served = current_version(root)
    node = cluster.add_node(**NODE)  # the node to lose, so the cluster keeps two
    cluster.wait_for_nodes()
    embedding = LosingANode(RayEmbedding(SlowEmbedder, address=cluster.address, actors=3), cluster, node)

    try:
        index(corpus, root, full=True, embedding=embedding)
    except ClusterError:
        assert current_version(root) == served
        assert sorted(p.name for p in (root / "versions").iterdir()) == [served.name]
    else:
        assert current_version(root) != served
        assert_same_index(tmp_path / "local", root)
