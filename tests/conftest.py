"""Shared fixtures: a deterministic fake embedder and small indexes built with it."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from fastapi.testclient import TestClient

from procqa.api import create_app
from procqa.index import load
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.ranking import RankingConfig, RankingFeatures, Searcher
from procqa.ranking import build_index as index_collection
from procqa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "cpt-22849-reinsertion-of-spinal-fixation-device.txt"
TINY = Path(__file__).parent / "data" / "tiny"


class FakeEmbedder:
    """Bag of hashed word stems: texts sharing words get similar vectors, deterministically."""

    model_id = "fake-bag-of-words@1"
    dimension = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                digest = hashlib.blake2b(word[:5].encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (registered by name, where dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def searcher_of(root: Path, embedder: FakeEmbedder, config: RankingConfig | None = None) -> Searcher:
    """A searcher on the version CURRENT names in `root`."""
    return Searcher(RankingFeatures.from_index(load(root), config), embedder)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


def build_index(corpus: Path, root: Path, embedder: FakeEmbedder) -> Path:
    loaded = read_corpus(corpus)
    index_collection(loaded.procedures, chunk(loaded.procedures), embedder, root, fingerprint=loaded.fingerprint)
    return root


@pytest.fixture
def tiny_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    """An index of the tiny test corpus, built with the fake embedder."""
    return build_index(TINY, tmp_path / "index", fake_embedder)


@pytest.fixture
def settings(tiny_index: Path) -> Settings:
    return Settings(index=tiny_index, corpus=TINY, _env_file=None)


def start(settings: Settings, embedder: FakeEmbedder) -> Iterator[TestClient]:
    """A test client on an app of these settings, with its lifespan running."""
    with TestClient(create_app(settings, embedder=embedder)) as client:
        yield client


@pytest.fixture
def client(settings: Settings, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    yield from start(settings, fake_embedder)
