"""Read a folder of documents: every file parsed, every problem kept, nothing stops the rest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.parsing import SUFFIXES, parse_file


@dataclass(frozen=True)
class Corpus:
    """The procedures of a folder, the problems found, and a fingerprint of its contents."""

    procedures: tuple[Procedure, ...]
    problems: tuple[ParseError, ...]
    fingerprint: str


def document_paths(folder: Path) -> list[Path]:
    """Documents under a folder (recursively), in a stable order; hidden files are skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not any(part.startswith(".") for part in p.parts)
    )


def read_corpus(folder: Path, *, max_bytes: int = 2_000_000) -> Corpus:
    """Parse every document; duplicates of an id already seen are reported, not indexed."""
    if not folder.is_dir():
        raise ParseError(folder, 0, "corpus folder does not exist")
    digest = hashlib.sha256()
    procedures: dict[str, Procedure] = {}
    problems: list[ParseError] = []
    for path in document_paths(folder):
        shown = path.relative_to(folder.parent) if folder.parent != Path() else path
        try:
            size = path.stat().st_size
            if size > max_bytes:
                problems.append(ParseError(shown, 1, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit"))
                continue
            data = path.read_bytes()
        except OSError as error:  # unreadable, or removed since it was listed
            problems.append(ParseError(shown, 0, f"cannot be read: {error.strerror or error}"))
            continue
        digest.update(str(shown).encode() + b"\0" + hashlib.sha256(data).digest())
        parsed, errors = parse_file(shown, data)
        problems += errors
        for procedure in parsed:
            if procedure.id in procedures:
                first = procedures[procedure.id].source
                problems.append(ParseError(shown, 1, f"procedure id {procedure.id} already defined in {first}"))
            else:
                procedures[procedure.id] = procedure
    return Corpus(tuple(procedures.values()), tuple(problems), digest.hexdigest()[:16])
