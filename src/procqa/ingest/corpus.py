"""Read a folder of documents: every file parsed, every problem kept, nothing stops the rest."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.reading import SUFFIXES, parse_file


@dataclass(frozen=True)
class Corpus:
    """The procedures of a folder, the problems found, and a fingerprint of its contents."""

    procedures: tuple[Procedure, ...]
    problems: tuple[ParseError, ...]
    fingerprint: str
    passed_over: Counter[str] = field(default_factory=Counter)
    """Files not read, by reason: HIDDEN or OTHER_TYPE."""

    def why_empty(self) -> str:
        """Why no procedure came out of the folder, counted by reason."""
        seen = sum(self.passed_over.values()) + len({p.path for p in self.problems})
        if not seen:
            return "the folder holds no files"
        reasons = [f"{count} {reason}" for reason, count in sorted(self.passed_over.items())]
        if self.problems:
            reasons.append(f"{len({p.path for p in self.problems})} could not be read (see above)")
        return f"{seen} files seen: " + ", ".join(reasons)


HIDDEN = "hidden or under hidden folders"
OTHER_TYPE = "not " + "/".join(SUFFIXES) + " files"


def document_paths(folder: Path) -> tuple[list[Path], Counter[str]]:
    """Documents under a folder (recursively), in a stable order, and the files passed over
    by reason. Only names below the folder count as hidden: the folder is taken as given
    (relative, with '..', through a symlink or under a dot-folder)."""
    documents: list[Path] = []
    passed_over: Counter[str] = Counter()
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            passed_over[HIDDEN] += 1
        elif path.suffix.lower() not in SUFFIXES:
            passed_over[OTHER_TYPE] += 1
        else:
            documents.append(path)
    return sorted(documents), passed_over


def read_corpus(folder: Path, *, max_bytes: int = 2_000_000) -> Corpus:
    """Parse every document; duplicates of an id already seen are reported, not indexed."""
    if not folder.is_dir():
        raise ParseError(folder, 0, "corpus folder does not exist")
    digest = hashlib.sha256()
    procedures: dict[str, Procedure] = {}
    problems: list[ParseError] = []
    paths, passed_over = document_paths(folder)
    for path in paths:
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
    return Corpus(tuple(procedures.values()), tuple(problems), digest.hexdigest()[:16], passed_over)
