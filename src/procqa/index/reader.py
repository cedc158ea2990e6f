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
    columns/               per passage: procedure, section, heading, line and unit offsets, content keys;
                           per procedure: its distinct words (see WordBags)

Loading reads what every query needs of every passage from columns/; a version of more than
IN_MEMORY_MAX passages keeps passages and embeddings on disk and reads the few a query needs.
A version written in another format (FORMAT) is refused with a message saying to rebuild.

Verifying a version on load checks every file's size and sha256, except that a binary array
over 64 MiB (embeddings, FAISS and BM25 arrays) is checked by a digest of 64 sampled blocks:
hashing a 1.3M-passage version in full takes 10 s of two cores at every start and reload.
Passage text is always hashed in full. `load(..., thorough=True)` hashes everything.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from procqa.documents import Passage, ProcedureRecord
from procqa.errors import IndexCorruptError, IndexMismatchError
from procqa.index.columns import COLUMNS, Columns, WordBags
from procqa.index.lexical import Lexical
from procqa.index.storage import REBUILD_HINT, Rows, StoredPassages, current_version, damaged, passage_from_record

FORMAT = 3  # 2: columns/ always written, sizes and digests per file, typed procedure records;
# 3: each passage's heading as written and its kind
IN_MEMORY_MAX = 50_000  # passages; a larger version's passages and embeddings stay on disk


@dataclass(frozen=True)
class IndexData:
    """Everything a loaded index version holds. Up to IN_MEMORY_MAX passages, `passages` is a
    tuple and the embeddings arrays; above, both are read from disk as they are indexed."""

    path: Path
    manifest: dict[str, Any]
    procedures: tuple[ProcedureRecord, ...]
    passages: Sequence[Passage]
    vectors: np.ndarray | Rows
    dense: faiss.Index
    units: np.ndarray | Rows
    intents: np.ndarray
    intent_labels: tuple[str, ...]
    intent_texts: tuple[str, ...]
    lexical: Lexical
    columns: Columns

    @property
    def unit_offsets(self) -> np.ndarray:
        return self.columns.unit_offsets

    def word_bags(self) -> WordBags:
        """Each procedure's distinct words (read from disk for each call on a current version)."""
        return self.columns.bags or Columns.load_bags(self.path / COLUMNS)

    @property
    def version(self) -> str:
        return self.path.name


def load(root: Path, *, model_id: str | None = None, verify: bool = True, thorough: bool = False) -> IndexData:
    """Load the version CURRENT points at."""
    return load_version(current_version(root), model_id=model_id, verify=verify, thorough=thorough)


def load_version(
    folder: Path,
    *,
    model_id: str | None = None,
    dimension: int | None = None,
    verify: bool = True,
    thorough: bool = False,
) -> IndexData:
    """Load one version folder, refusing a model mismatch or a damaged file. Verifying samples
    the large binary arrays (see the module docstring); `thorough` hashes every byte."""
    manifest = read_manifest(folder, model_id=model_id, dimension=dimension)
    if verify:
        _verify(folder, manifest, thorough=thorough)
    try:
        data = _read(folder, manifest)
    # TypeError: a line of passages.jsonl that is not an object, met when verify is off
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise IndexCorruptError(f"{folder} cannot be read ({error}): {REBUILD_HINT}") from None
    _check_counts(data)
    return data


def read_manifest(folder: Path, *, model_id: str | None = None, dimension: int | None = None) -> dict[str, Any]:
    """A version's manifest, refused when unreadable, of another format, model or dimension."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise IndexCorruptError(f"{manifest_path} is unreadable ({error}): {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise IndexCorruptError(f"{manifest_path} is not an index manifest: {REBUILD_HINT}")
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
    return manifest


def _read(folder: Path, manifest: dict[str, Any]) -> IndexData:
    flags = faiss.IO_FLAG_MMAP_IFC if manifest.get("index_type") == "flat-ip" else faiss.IO_FLAG_MMAP
    in_memory = int(manifest.get("passages", 0)) <= IN_MEMORY_MAX
    columns = Columns.load(folder / COLUMNS)
    passages: Sequence[Passage] = (
        _read_passages(folder / "passages.jsonl")
        if in_memory
        else StoredPassages(folder / "passages.jsonl", np.array(columns.line_offsets))
    )
    return IndexData(
        path=folder,
        manifest=manifest,
        procedures=_read_procedures(folder / "procedures.json"),
        passages=passages,
        # mapped, not read: the page cache holds one copy for every worker serving this version
        vectors=np.load(folder / "vectors.npy", mmap_mode="r") if in_memory else Rows(folder / "vectors.npy"),
        dense=faiss.read_index(str(folder / "dense.faiss"), flags | faiss.IO_FLAG_READ_ONLY),
        units=np.load(folder / "units.npy", mmap_mode="r") if in_memory else Rows(folder / "units.npy"),
        intents=np.load(folder / "intents.npy"),
        intent_labels=tuple(manifest.get("intent_labels", [])),
        intent_texts=tuple(manifest.get("intent_texts", [])),
        lexical=Lexical.load(folder / "lexical"),
        columns=columns,
    )


def _check_counts(data: IndexData) -> None:
    folder, manifest, passages, columns = data.path, data.manifest, data.passages, data.columns
    counts = (
        len(passages),
        data.vectors.shape[0],
        data.dense.ntotal,
        data.lexical.size,
        len(columns.passage_procedure),
    )
    labels, texts, intents = data.intent_labels, data.intent_texts, data.intents
    if not len(labels) == len(texts) == len(intents):
        raise IndexCorruptError(
            f"{folder}: {len(labels)} section-intent labels, {len(texts)} texts and "
            f"{len(intents)} vectors: {REBUILD_HINT}"
        )
    if (
        len(set(counts)) != 1
        or manifest.get("passages") != len(passages)
        or columns.unit_offsets[-1] != len(data.units)
    ):
        raise IndexCorruptError(f"{folder}: passage counts disagree {counts}: {REBUILD_HINT}")


def _verify(folder: Path, manifest: dict[str, Any], *, thorough: bool) -> None:
    expected = {n: e if isinstance(e, dict) else {} for n, e in manifest.get("files", {}).items()}
    missing = sorted(n for n in expected if not (folder / n).is_file())
    bad = damaged(folder, expected, thorough=thorough)
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if bad:
        problems.append(f"checksum mismatch in {', '.join(bad)}")
    if problems:
        raise IndexCorruptError(f"{folder}: {'; '.join(problems)}: {REBUILD_HINT}")


def _read_procedures(path: Path) -> tuple[ProcedureRecord, ...]:
    """The procedure records, their repeated strings (section names, code systems) shared: at
    100k procedures, 1.3M copies of thirteen section names took 80 MB."""
    records = json.loads(path.read_text("utf-8"))
    return tuple(
        ProcedureRecord(
            id=r["id"],
            title=r["title"],
            code=r["code"],
            code_system=sys.intern(r["code_system"]) if isinstance(r["code_system"], str) else None,
            name=r.get("name"),
            aliases=tuple(r.get("aliases") or ()),
            source=r.get("source", ""),
            sections=tuple(sys.intern(s) for s in r.get("sections") or ()),
        )
        for r in records
    )


def _read_passages(path: Path) -> tuple[Passage, ...]:
    with path.open("rb") as handle:
        return tuple(passage_from_record(json.loads(line)) for line in handle)
