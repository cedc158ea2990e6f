"""Writing an index version: embed what changed, write plain files, verify, then switch."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from procqa import __version__
from procqa.documents import Passage, Procedure, ProcedureRecord
from procqa.embedding import Embedder
from procqa.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from procqa.index.columns import COLUMNS, KEY, Columns, WordBags, rows_of
from procqa.index.dense import dense_index, index_type
from procqa.index.lexical import Lexical
from procqa.index.progress import DENSE, INTENT, LEXICAL, PASSAGES, UNITS, VERIFY, Progress, Stages
from procqa.index.reader import FORMAT, IndexData, load, load_version
from procqa.index.storage import digests, passage_record, point, prune
from procqa.index.vectors import (
    IN_CONTEXT,
    Embedding,
    EmbeddingCache,
    LocalEmbedding,
    fill,
    plan,
    plan_in_context,
    unit_keys_in_context,
    unit_mode,
)
from procqa.ingest.chunking import content_key
from procqa.pooling import unit_spans
from procqa.text import words


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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def _files(folder: Path) -> list[str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    return [str(p.relative_to(folder)) for p in files]


def _previous(root: Path, model_id: str) -> IndexData | None:
    """The serving version, whose embeddings and dense lists a build can reuse; None when
    there is no usable one."""
    try:
        return load(root, model_id=model_id, verify=False)
    except (IndexMissingError, IndexMismatchError, IndexCorruptError):
        return None


def _reusable(old: IndexData, model_id: str) -> EmbeddingCache:
    """Every embedding of a version by content key."""
    cache = EmbeddingCache()
    cache.add(_strings(old.columns.keys), old.vectors)
    cache.add(_strings(old.columns.unit_keys), old.units)
    texts = old.manifest.get("intent_texts", [])
    if len(texts) == len(old.intents):
        cache.add([content_key(t, model_id) for t in texts], old.intents)
    return cache


def _strings(keys: np.ndarray) -> list[str]:
    strings: list[str] = np.asarray(keys).astype(str).tolist()
    return strings


@dataclass(frozen=True)
class IntentExamples:
    """The example questions of section intent, by label: embedded with the passages and
    stored, so that ranking fits its models without the model at load time."""

    labels: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()


@dataclass
class _Embedded:
    keys: list[str]
    vectors: np.ndarray
    unit_keys: list[str]
    units: np.ndarray
    intents: np.ndarray
    embedded: int  # passages embedded anew
    embedded_units: int
    dimension: int


def build(
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedder: Embedder,
    root: Path,
    *,
    intents: IntentExamples = IntentExamples(),
    extra: Mapping[str, Any] | None = None,
    full: bool = False,
    batch_size: int = 64,
    keep: int = 3,
    fingerprint: str = "",
    progress: Progress | None = None,
    embedding: Embedding | None = None,
    units: str | None = None,
) -> BuildReport:
    """Write a new index version and point CURRENT at it once it is complete and verified.
    `intents` are embedded and stored with it; `extra` goes into its manifest as it is.
    `embedding` embeds what no earlier version holds (default: `embedder`, in this process);
    the embedder names the model and, when nothing is embedded, its dimension. `progress` is
    told of each stage (procqa.index.progress.STAGES). `units` is how answer units are embedded
    (UNIT_MODES; default: IN_CONTEXT where the embedder can, else ALONE)."""
    units = unit_mode(embedder, units)
    stages = Stages(progress)
    root.mkdir(parents=True, exist_ok=True)
    old = _previous(root, embedder.model_id)
    before = _identities(old) if old else {}
    cache = _reusable(old, embedder.model_id) if old and not full else EmbeddingCache()
    stages.lap("previous")
    embedded = _embed(
        passages, intents, embedder, cache, embedding or LocalEmbedding(embedder, batch_size=batch_size), stages, units
    )
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = root / "versions" / f".tmp-{version}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        manifest = _write(tmp, procedures, passages, embedded, None if full else old, stages)
        del old
        with stages.stage(VERIFY, len(passages)):
            manifest.update(
                model=embedder.model_id,
                dimension=embedded.dimension,
                intent_labels=list(intents.labels),
                intent_texts=list(intents.texts),
                unit_vectors=units,
                corpus_fingerprint=fingerprint,
                **dict(extra or {}),
            )
            _seal(tmp, manifest)
            # the checksums were just taken from these files; loading checks that they read back
            load_version(tmp, model_id=embedder.model_id, dimension=embedded.dimension, verify=False)
            tmp.rename(root / "versions" / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point(root, version)
    prune(root, keep)
    return _report(version, procedures, passages, embedded, before, stages.seconds, stages.timings)


def _embed(
    passages: Sequence[Passage],
    intents: IntentExamples,
    embedder: Embedder,
    cache: EmbeddingCache,
    embedding: Embedding,
    stages: Stages,
    units: str,
) -> _Embedded:
    """Every vector the version holds, embedding (with `embedding`) only what `cache` lacks;
    answer units in their passage's context (IN_CONTEXT) or each alone (ALONE)."""
    model_id = embedder.model_id
    texts = [p.embed_text for p in passages]
    keys = [content_key(t, model_id) for t in texts]
    intent_keys = [content_key(t, model_id) for t in intents.texts]
    if units == IN_CONTEXT:
        by_passage = [unit_keys_in_context(key, len(p.units)) for p, key in zip(passages, keys, strict=True)]
        spans = [unit_spans(len(p.embed_text) - len(p.text), p.units) for p in passages]
        unit_keys = [key for group in by_passage for key in group]
        work = [
            plan_in_context(PASSAGES, texts, keys, by_passage, spans, cache),
            *plan([(UNITS, [], []), (INTENT, intents.texts, intent_keys)], cache),
        ]
    else:
        unit_texts = [u for p in passages for u in p.units]
        unit_keys = [content_key(u, model_id) for u in unit_texts]
        alone = [(PASSAGES, texts, keys), (UNITS, unit_texts, unit_keys), (INTENT, intents.texts, intent_keys)]
        work = plan(alone, cache)
    fill(cache, work, embedding, stages)
    dimension = cache.dimension or embedder.dimension
    return _Embedded(
        keys,
        cache.gather(keys, dimension),
        unit_keys,
        cache.gather(unit_keys, dimension),
        cache.gather(intent_keys, dimension),
        embedded=len(work[0].keys),
        embedded_units=len(work[0].unit_keys()) + len(work[1].keys),
        dimension=dimension,
    )


def _write(
    tmp: Path,
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedded: _Embedded,
    old: IndexData | None,
    stages: Stages,
) -> dict[str, Any]:
    """Write a version's files into `tmp`; returns the manifest's counts."""
    offsets = np.cumsum([0] + [len(p.units) for p in passages]).astype(np.int64)
    lines = [0]
    with (tmp / "passages.jsonl").open("wb") as handle:
        for passage, key, start in zip(passages, embedded.keys, offsets, strict=False):
            line = (json.dumps(passage_record(passage, key, int(start))) + "\n").encode()
            handle.write(line)
            lines.append(lines[-1] + len(line))
    records = [asdict(ProcedureRecord.of(p)) for p in procedures]
    (tmp / "procedures.json").write_text(json.dumps(records))
    np.save(tmp / "vectors.npy", embedded.vectors)
    np.save(tmp / "units.npy", embedded.units)
    np.save(tmp / "intents.npy", embedded.intents)
    stages.lap("write")
    with stages.stage(DENSE, len(passages)):
        previous = (old.dense, _strings(old.columns.keys)) if old else None
        dense = dense_index(embedded.vectors, keys=embedded.keys, previous=previous)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
    with stages.stage(LEXICAL, len(passages)):
        Lexical.build([p.embed_text for p in passages]).save(tmp / "lexical")
    Columns(
        **rows_of(passages, [p.id for p in procedures]),
        line_offsets=np.array(lines, dtype=np.int64),
        unit_offsets=offsets,
        keys=np.array(embedded.keys, dtype=KEY).reshape(-1),
        unit_keys=np.array(embedded.unit_keys, dtype=KEY).reshape(-1),
        bags=_word_bags([p.id for p in procedures], passages, embedded.keys, old),
    ).save(tmp / COLUMNS)
    stages.lap("columns")
    return {
        "format": FORMAT,
        "procqa_version": __version__,
        "procedures": len(procedures),
        "passages": len(passages),
        "units": len(embedded.unit_keys),
        "index_type": index_type(dense),
    }


def _seal(tmp: Path, manifest: dict[str, Any]) -> None:
    """Record when the version was built and every file's digest, in manifest.json."""
    manifest.update(built_at=datetime.now(UTC).isoformat(timespec="seconds"), files=digests(tmp, _files(tmp)))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _report(
    version: str,
    procedures: Sequence[Procedure],
    passages: Sequence[Passage],
    embedded: _Embedded,
    before: dict[tuple[str, str], str],
    seconds: float,
    timings: dict[str, float],
) -> BuildReport:
    after = {(p.procedure_id, p.section): k for p, k in zip(passages, embedded.keys, strict=True)}
    return BuildReport(
        version=version,
        procedures=len(procedures),
        passages=len(passages),
        added=sum(1 for ident in after if ident not in before),
        changed=sum(1 for ident, key in after.items() if ident in before and before[ident] != key),
        removed=sum(1 for ident in before if ident not in after),
        reused=len(passages) - embedded.embedded,
        embedded=embedded.embedded + embedded.embedded_units,
        seconds=seconds,
        timings=timings,
    )


def _identities(data: IndexData) -> dict[tuple[str, str], str]:
    """The content key of each (procedure id, section) of a version."""
    columns = data.columns
    ids = [data.procedures[i].id for i in columns.passage_procedure.tolist()]
    sections = [columns.sections[i] for i in columns.passage_section.tolist()]
    return dict(zip(zip(ids, sections, strict=True), _strings(columns.keys), strict=True))


def _word_bags(
    procedure_ids: Sequence[str], passages: Sequence[Passage], keys: Sequence[str], old: IndexData | None
) -> WordBags:
    """Each procedure's distinct words (as procqa.text.words finds them in its passages'
    text); a procedure whose passages all kept their content keys keeps its old bag."""
    texts: dict[str, list[str]] = {i: [] for i in procedure_ids}
    signatures: dict[str, list[str]] = {i: [] for i in procedure_ids}
    for passage, key in zip(passages, keys, strict=True):
        texts[passage.procedure_id].append(passage.text)
        signatures[passage.procedure_id].append(key)
    reusable: dict[tuple[str, tuple[str, ...]], int] = {}
    old_bags = old.word_bags() if old is not None else None
    if old is not None:
        old_signatures: dict[int, list[str]] = {}
        for row, key in zip(old.columns.passage_procedure.tolist(), _strings(old.columns.keys), strict=True):
            old_signatures.setdefault(row, []).append(key)
        reusable = {(old.procedures[row].id, tuple(sig)): row for row, sig in old_signatures.items()}
    bags = []
    for ident in procedure_ids:
        row = reusable.get((ident, tuple(signatures[ident])))
        bags.append(old_bags.bag(row) if old_bags is not None and row is not None else words(" ".join(texts[ident])))
    return WordBags.of(set(bag) for bag in bags)
