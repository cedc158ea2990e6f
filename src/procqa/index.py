"""The index store: versioned folders of plain files, written atomically, verified on load.

index/
  CURRENT                  name of the version being served
  versions/<version>/
    manifest.json          model, dimension, counts, fingerprint, checksums
    procedures.json        procedure records (no text)
    passages.jsonl         one passage a line, with its content key
    vectors.npy            passage embeddings (float32, row = passage id)
    dense.faiss            FAISS index over vectors.npy
    units.npy              answer-unit embeddings (float32)
    intents.npy            section-intent example embeddings (float32)
    lexical/               bm25s index
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from procqa import __version__
from procqa.chunking import content_key
from procqa.documents import Passage, Procedure
from procqa.embedding import Embedder
from procqa.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from procqa.intent import intent_texts
from procqa.lexical import Lexical

FORMAT = 1
CURRENT = "CURRENT"
REBUILD_HINT = "rebuild it with `procqa index --full`"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BuildReport:
    """What a build did: counts of reused and newly embedded texts, and where it went."""

    version: str
    procedures: int
    passages: int
    added: int
    changed: int
    removed: int
    reused: int
    embedded: int
    seconds: float


@dataclass(frozen=True)
class IndexData:
    """Everything a loaded index version holds."""

    path: Path
    manifest: dict[str, Any]
    procedures: tuple[dict[str, Any], ...]
    passages: tuple[Passage, ...]
    keys: tuple[str, ...]
    vectors: np.ndarray
    dense: faiss.Index
    unit_offsets: np.ndarray
    units: np.ndarray
    intents: np.ndarray
    intent_labels: tuple[str, ...]
    lexical: Lexical

    @property
    def version(self) -> str:
        return self.path.name


def current_version(root: Path) -> Path:
    """The version folder CURRENT points at; IndexMissingError when there is none."""
    pointer = root / CURRENT
    if not pointer.exists():
        raise IndexMissingError(f"no index at {root}: run `procqa index --out {root}` first")
    version = root / "versions" / pointer.read_text("utf-8").strip()
    if not version.is_dir():
        raise IndexMissingError(f"{pointer} names a missing version folder {version.name}: {REBUILD_HINT}")
    return version


def versions(root: Path) -> list[Path]:
    """Complete version folders, oldest first."""
    folder = root / "versions"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    return {str(p.relative_to(folder)): _sha256(p) for p in files}


def _passage_record(passage: Passage, key: str, unit_start: int) -> dict[str, Any]:
    record = asdict(passage)
    record["units"] = list(passage.units)
    record.update(key=key, unit_start=unit_start)
    return record


def _previous(root: Path, model_id: str) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], str]]:
    """Embeddings of the serving version by content key, for reuse, and its passages' keys by
    (procedure, section); both empty when there is no usable previous version."""
    try:
        old = load(root, model_id=model_id, verify=False)
    except (IndexMissingError, IndexMismatchError, IndexCorruptError):
        return {}, {}
    cache: dict[str, np.ndarray] = {}
    unit_texts = [u for p in old.passages for u in p.units]
    for key, row in zip(old.keys, old.vectors, strict=True):
        cache[key] = row
    for text, row in zip(unit_texts, old.units, strict=True):
        cache[content_key(text, model_id)] = row
    for text, row in zip(old.manifest.get("intent_texts", []), old.intents, strict=False):
        cache[content_key(text, model_id)] = row
    return cache, {(p.procedure_id, p.section): k for p, k in zip(old.passages, old.keys, strict=True)}


def _embed_cached(
    texts: Sequence[str],
    embedder: Embedder,
    cache: dict[str, np.ndarray],
    batch: int,
    progress: Progress | None,
) -> tuple[np.ndarray, int]:
    """Embed only the texts whose key is not in the cache; returns vectors and count embedded."""
    keys = [content_key(t, embedder.model_id) for t in texts]
    missing = sorted({k: i for i, k in enumerate(keys) if k not in cache}.values())
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        for i, row in zip(chunk, embedder.embed([texts[i] for i in chunk]), strict=True):
            cache[keys[i]] = row
        if progress:
            progress(len(chunk))
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32), 0
    return np.stack([cache[k] for k in keys]).astype(np.float32), len(missing)


def dense_index(vectors: np.ndarray) -> faiss.Index:
    """Exact inner product: vectors are normalised, so scores are cosine similarities."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def build(
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedder: Embedder,
    root: Path,
    *,
    full: bool = False,
    batch_size: int = 64,
    keep: int = 3,
    fingerprint: str = "",
    progress: Progress | None = None,
) -> BuildReport:
    """Write a new index version and point CURRENT at it once it is complete and verified."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    model_id = embedder.model_id
    cache, before = ({}, {}) if full else _previous(root, model_id)
    keys = [content_key(p.embed_text, model_id) for p in passages]
    vectors, embedded = _embed_cached([p.embed_text for p in passages], embedder, cache, batch_size, progress)
    unit_texts = [u for p in passages for u in p.units]
    units, embedded_units = _embed_cached(unit_texts, embedder, cache, batch_size, None)
    labels, examples = intent_texts({p.section for p in passages})
    intents, _ = _embed_cached(examples, embedder, cache, batch_size, None)

    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = root / "versions" / f".tmp-{version}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        offsets = np.cumsum([0] + [len(p.units) for p in passages]).astype(np.int64)
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as handle:
            for passage, key, start in zip(passages, keys, offsets, strict=False):
                handle.write(json.dumps(_passage_record(passage, key, int(start))) + "\n")
        (tmp / "procedures.json").write_text(json.dumps([_procedure_record(p) for p in procedures]))
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "units.npy", units)
        np.save(tmp / "intents.npy", intents)
        faiss.write_index(dense_index(vectors), str(tmp / "dense.faiss"))
        Lexical.build([p.embed_text for p in passages]).save(tmp / "lexical")
        manifest = {
            "format": FORMAT,
            "procqa_version": __version__,
            "model": model_id,
            "dimension": int(embedder.dimension),
            "procedures": len(procedures),
            "passages": len(passages),
            "units": len(unit_texts),
            "intent_labels": list(labels),
            "intent_texts": list(examples),
            "corpus_fingerprint": fingerprint,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "index_type": "flat-ip",
            "files": _checksums(tmp),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        load_version(tmp, model_id=model_id, dimension=embedder.dimension)
        final = root / "versions" / version
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point(root, version)
    prune(root, keep)
    after = {(p.procedure_id, p.section): k for p, k in zip(passages, keys, strict=True)}
    return BuildReport(
        version=version,
        procedures=len(procedures),
        passages=len(passages),
        added=sum(1 for ident in after if ident not in before),
        changed=sum(1 for ident, key in after.items() if ident in before and before[ident] != key),
        removed=sum(1 for ident in before if ident not in after),
        reused=len(passages) - embedded,
        embedded=embedded + embedded_units,
        seconds=time.perf_counter() - started,
    )


def _procedure_record(procedure: Procedure) -> dict[str, Any]:
    return {
        "id": procedure.id,
        "title": procedure.title,
        "code": procedure.code,
        "code_system": procedure.code_system,
        "name": procedure.name,
        "aliases": list(procedure.aliases),
        "source": procedure.source,
        "sections": [s.name for s in procedure.sections],
    }


def point(root: Path, version: str) -> None:
    """Move CURRENT to a version in one atomic rename."""
    tmp = root / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, root / CURRENT)


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` versions, never the one being served."""
    serving = current_version(root).name
    for old in versions(root)[:-keep]:
        if old.name != serving:
            shutil.rmtree(old, ignore_errors=True)


def rollback(root: Path) -> str:
    """Point CURRENT at the version before it; returns that version's name."""
    serving = current_version(root).name
    names = [v.name for v in versions(root)]
    older = [n for n in names if n < serving]
    if not older:
        raise IndexMissingError(f"no version older than {serving} to roll back to in {root}")
    point(root, older[-1])
    return older[-1]


def load(root: Path, *, model_id: str | None = None, verify: bool = True) -> IndexData:
    """Load the version CURRENT points at."""
    return load_version(current_version(root), model_id=model_id, verify=verify)


def load_version(
    folder: Path, *, model_id: str | None = None, dimension: int | None = None, verify: bool = True
) -> IndexData:
    """Load one version folder, refusing a model mismatch or a damaged file."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise IndexCorruptError(f"{manifest_path} is unreadable ({error}): {REBUILD_HINT}") from None
    if manifest.get("format") != FORMAT:
        raise IndexMismatchError(f"{folder} has index format {manifest.get('format')}, want {FORMAT}: {REBUILD_HINT}")
    if model_id is not None and manifest.get("model") != model_id:
        raise IndexMismatchError(
            f"{folder} was built with model {manifest.get('model')}, but {model_id} is configured: {REBUILD_HINT}"
        )
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexMismatchError(
            f"{folder} has dimension {manifest.get('dimension')}, the model gives {dimension}: {REBUILD_HINT}"
        )
    if verify:
        actual = _checksums(folder)
        damaged = sorted(n for n, h in manifest.get("files", {}).items() if actual.get(n) != h)
        if damaged:
            raise IndexCorruptError(f"{folder}: checksum mismatch in {', '.join(damaged)}: {REBUILD_HINT}")
    try:
        records = [json.loads(line) for line in (folder / "passages.jsonl").read_text("utf-8").splitlines()]
        passages = tuple(_passage(r) for r in records)
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        units = np.load(folder / "units.npy", mmap_mode="r")
        intents = np.load(folder / "intents.npy")
        dense = faiss.read_index(str(folder / "dense.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        lexical = Lexical.load(folder / "lexical")
        procedures = tuple(json.loads((folder / "procedures.json").read_text("utf-8")))
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise IndexCorruptError(f"{folder} cannot be read ({error}): {REBUILD_HINT}") from None
    counts = (len(passages), vectors.shape[0], dense.ntotal, lexical.size)
    if len(set(counts)) != 1 or manifest.get("passages") != len(passages):
        raise IndexCorruptError(f"{folder}: passage counts disagree {counts}: {REBUILD_HINT}")
    offsets = np.array([r["unit_start"] for r in records] + [units.shape[0]], dtype=np.int64)
    return IndexData(
        path=folder,
        manifest=manifest,
        procedures=procedures,
        passages=passages,
        keys=tuple(r["key"] for r in records),
        vectors=vectors,
        dense=dense,
        unit_offsets=offsets,
        units=units,
        intents=intents,
        intent_labels=tuple(manifest.get("intent_labels", [])),
        lexical=lexical,
    )


def _passage(record: dict[str, Any]) -> Passage:
    return Passage(
        id=record["id"],
        procedure_id=record["procedure_id"],
        title=record["title"],
        code=record["code"],
        code_system=record["code_system"],
        section=record["section"],
        text=record["text"],
        units=tuple(record["units"]),
        source=record["source"],
        line_start=record["line_start"],
        line_end=record["line_end"],
    )
