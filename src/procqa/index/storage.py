"""The folder of versions; reading a version's large files without holding them in memory;
the digests that verify them.

A million passages as Python objects take several GB and their embeddings several more, while a
query reads a few hundred of each. So the passages are read from passages.jsonl a line at a time
(`StoredPassages`) and embedding rows with `pread` (`Rows`), and what every query needs of every
passage (its procedure, its section) is kept as small arrays beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, overload

import numpy as np

from procqa.documents import Passage
from procqa.errors import IndexMissingError
from procqa.files import write_atomic

MAX_READ = 2**30  # bytes per pread; Linux returns at most about 2 GiB from one call
HASH_BLOCK = 2**22
SAMPLED_ABOVE = 2**26  # binary arrays larger than this also get a digest of sampled blocks
SAMPLED_SUFFIXES = (".npy", ".faiss")
SAMPLE_BLOCKS = 64
SAMPLE_BYTES = 2**16
CURRENT = "CURRENT"
REBUILD_HINT = "rebuild it with `procqa index --full`"


def _open(path: Path, owner: object) -> int:
    """A read-only descriptor that is closed when `owner` is collected."""
    fd = os.open(path, os.O_RDONLY)
    weakref.finalize(owner, os.close, fd)
    return fd


def _pread_into(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done : done + MAX_READ]], offset + done)
        if got <= 0:
            raise ValueError(f"file ends {len(buffer) - done} bytes early")
        done += got


class Rows:
    """A 2-d array saved with np.save, whose rows are read with pread when indexed.

    A memory map would do the same with less code, but each page fault maps the whole folio
    around the row: on a 10k-procedure index, 100 queries made the maps of vectors.npy and
    units.npy fully resident (+570 MB), and 1.3M passages would have grown towards 7 GB.
    Reading rows costs a system call per run of consecutive rows, about a millisecond a query."""

    def __init__(self, path: Path) -> None:
        mapped = np.load(path, mmap_mode="r")  # reads and checks the header and the file size
        if mapped.ndim != 2 or not mapped.flags.c_contiguous:
            raise ValueError(f"{path.name} is not a C-ordered 2-d array")
        self.path = path
        self.shape: tuple[int, int] = mapped.shape
        self.dtype: np.dtype[Any] = mapped.dtype
        self.offset = int(mapped.offset)
        del mapped
        self.ndim = 2
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self._fd = _open(path, self)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            row = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            one: np.ndarray = self._read(row, row + 1)[0]
            return one
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._read(start, max(start, stop))
            key = np.arange(start, stop, step)
        rows = np.asarray(key, dtype=np.int64)
        if rows.ndim != 1:
            raise IndexError("rows are taken by an int, a slice or a 1-d sequence of ints")
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"a row out of range 0..{len(self) - 1}")
        return self._take(rows)

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        if stop > start:
            _pread_into(self._fd, out.data.cast("B"), self.offset + start * self.row_bytes)
        return out

    def _take(self, rows: np.ndarray) -> np.ndarray:
        increasing = rows.size < 2 or bool((rows[1:] > rows[:-1]).all())
        wanted, inverse = (rows, None) if increasing else np.unique(rows, return_inverse=True)
        out = np.empty((wanted.size, self.shape[1]), dtype=self.dtype)
        if not out.size:
            return out
        view = out.data.cast("B")
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1  # one read per run of consecutive rows
        firsts, ends = np.append(0, breaks), np.append(breaks, wanted.size)
        size, fd, preadv = self.row_bytes, self._fd, os.preadv
        offsets = (wanted[firsts] * size + self.offset).tolist()
        for start, end, offset in zip((firsts * size).tolist(), (ends * size).tolist(), offsets, strict=True):
            if preadv(fd, [view[start:end]], offset) != end - start:
                _pread_into(fd, view[start:end], offset)  # a short read: finish it, or fail at the end
        return out if inverse is None else out[inverse]


def passage_record(passage: Passage, key: str, unit_start: int) -> dict[str, Any]:
    """A line of passages.jsonl."""
    record = asdict(passage)
    record["units"] = list(passage.units)
    record.update(key=key, unit_start=unit_start)
    return record


def passage_from_record(record: dict[str, Any]) -> Passage:
    return Passage(
        id=record["id"],
        procedure_id=record["procedure_id"],
        title=record["title"],
        code=record["code"],
        code_system=record["code_system"],
        section=record["section"],
        heading=record["heading"],
        section_kind=record["section_kind"],
        text=record["text"],
        units=tuple(record["units"]),
        source=record["source"],
        line_start=record["line_start"],
        line_end=record["line_end"],
    )


class StoredPassages(Sequence[Passage]):
    """The passages of a passages.jsonl, each parsed from its line when asked for."""

    def __init__(self, path: Path, line_offsets: np.ndarray) -> None:
        self.path = path
        self.line_offsets = line_offsets  # passage i is bytes line_offsets[i]:line_offsets[i + 1]
        self._fd = _open(path, self)

    def __len__(self) -> int:
        return len(self.line_offsets) - 1

    @overload
    def __getitem__(self, key: int) -> Passage: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[Passage]: ...

    def __getitem__(self, key: int | slice) -> Passage | Sequence[Passage]:
        if isinstance(key, slice):
            return tuple(self[i] for i in range(*key.indices(len(self))))
        row = int(key) + len(self) if key < 0 else int(key)
        if not 0 <= row < len(self):
            raise IndexError(f"passage {key} of {len(self)}")
        start, end = int(self.line_offsets[row]), int(self.line_offsets[row + 1])
        return passage_from_record(json.loads(os.pread(self._fd, end - start, start)))

    def __iter__(self) -> Iterator[Passage]:
        with self.path.open("rb") as handle:
            for line in handle:
                yield passage_from_record(json.loads(line))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def line_offsets(path: Path) -> np.ndarray:
    """Byte offset of the start of each line and of the end of the file."""
    starts = [np.zeros(1, dtype=np.int64)]
    at = 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            starts.append(np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")).astype(np.int64) + at + 1)
            at += len(block)
    offsets = np.concatenate(starts)
    return offsets if offsets[-1] == at else np.append(offsets, at)


# Digests


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _sampled_sha256(path: Path) -> str:
    """The digest of the size and SAMPLE_BLOCKS blocks spread evenly, first and last included."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for offset in np.linspace(0, max(0, size - SAMPLE_BYTES), SAMPLE_BLOCKS).astype(np.int64).tolist():
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _in_parallel(function: Callable[[Path], str], paths: Sequence[Path]) -> list[str]:
    # hashlib lets go of the GIL while it hashes, so threads use every core
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        return list(pool.map(function, paths))


def digests(folder: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per file: its size, the sha256 of its contents and, for a large binary array (embeddings,
    the FAISS and BM25 indexes), a digest of sampled blocks. Text files get no sampled digest, so
    passage text is always checked in full."""
    paths = [folder / name for name in names]
    full = _in_parallel(_sha256, paths)
    large = [p for p in paths if p.suffix in SAMPLED_SUFFIXES and p.stat().st_size > SAMPLED_ABOVE]
    sampled = dict(zip(large, _in_parallel(_sampled_sha256, large), strict=True))
    out: dict[str, dict[str, Any]] = {}
    for name, path, digest in zip(names, paths, full, strict=True):
        out[name] = {"size": path.stat().st_size, "sha256": digest}
        if path in sampled:
            out[name]["sampled"] = sampled[path]
    return out


def damaged(folder: Path, expected: dict[str, dict[str, Any]], *, thorough: bool = False) -> list[str]:
    """Names of the files whose size or digest differs from `expected` (see `digests`); a file
    with a sampled digest is checked by it unless `thorough`, every other file in full."""
    present = {name: folder / name for name in expected if (folder / name).is_file()}
    bad = {n for n, path in present.items() if path.stat().st_size != expected[n].get("size", path.stat().st_size)}
    sampled = [n for n in present if n not in bad and "sampled" in expected[n] and not thorough]
    hashed = [n for n in present if n not in bad and n not in sampled]
    for name, digest in zip(sampled, _in_parallel(_sampled_sha256, [present[n] for n in sampled]), strict=True):
        if digest != expected[name]["sampled"]:
            bad.add(name)
    for name, digest in zip(hashed, _in_parallel(_sha256, [present[n] for n in hashed]), strict=True):
        if digest != expected[name].get("sha256"):
            bad.add(name)
    return sorted(bad)


# The folder of versions


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


def point(root: Path, version: str) -> None:
    """Move CURRENT to a version in one atomic rename."""
    write_atomic(root / CURRENT, version + "\n")


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
