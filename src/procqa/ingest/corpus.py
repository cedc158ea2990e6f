"""Read a folder of documents: every file parsed, every problem kept, nothing stops the rest."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.reading import SUFFIXES, parse_file
from procqa.ingest.records import document_id
from procqa.text import code_key


@dataclass(frozen=True)
class Corpus:
    """The procedures of a folder, the problems found, and a fingerprint of its contents."""

    procedures: tuple[Procedure, ...]
    problems: tuple[ParseError, ...]
    fingerprint: str
    passed_over: Counter[str] = field(default_factory=Counter)
    """Files not read, by reason: HIDDEN or OTHER_TYPE."""
    warnings: tuple[ParseError, ...] = ()
    """What is indexed but worth knowing: documents sharing a title or a code, paths that
    make the same id."""

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
    """Parse every document, each under an id from its path below `folder`. Documents that
    share a title or a code are all indexed, and reported once as a warning."""
    if not folder.is_dir():
        raise ParseError(folder, 0, "corpus folder does not exist")
    digest = hashlib.sha256()
    procedures: list[Procedure] = []
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
        rel = path.relative_to(folder)
        procedures += [replace(p, id=document_id(rel, p.record_line)) for p in parsed]
    unique, renamed = unique_ids(procedures)
    warnings = [*renamed, *_shared(unique, "title", lambda p: p.title.casefold())]
    warnings += _shared(unique, "code", lambda p: code_key(p.code) if p.code else None)
    return Corpus(tuple(unique), tuple(problems), digest.hexdigest()[:16], passed_over, tuple(warnings))


def unique_ids(procedures: Sequence[Procedure]) -> tuple[list[Procedure], list[ParseError]]:
    """The procedures with ids made unique in their order: a later document whose path makes
    an id already taken ('a b.txt', 'a-b.md') gets the first free '-2', '-3', ...; a warning
    for each."""
    wanted = {p.id for p in procedures}
    first: dict[str, Procedure] = {}
    out: list[Procedure] = []
    warnings: list[ParseError] = []
    for procedure in procedures:
        ident = procedure.id
        if ident in first:
            ident = next(f"{ident}-{n}" for n in range(2, len(procedures) + 2) if f"{ident}-{n}" not in wanted)
            wanted.add(ident)
            other = first[procedure.id].source
            reason = f"its path makes the id {procedure.id}, as {other} does: indexed as {ident}"
            warnings.append(_warning(procedure, reason))
        first.setdefault(ident, procedure)
        out.append(replace(procedure, id=ident))
    return out, warnings


def _shared(procedures: Sequence[Procedure], what: str, key: Callable[[Procedure], str | None]) -> list[ParseError]:
    """One warning per title (or code) that several documents share; all of them are indexed."""
    groups: dict[str, list[Procedure]] = {}
    for procedure in procedures:
        if (found := key(procedure)) is not None:
            groups.setdefault(found, []).append(procedure)
    warnings = []
    for group in groups.values():
        if len(group) > 1:
            value = group[0].title if what == "title" else f"{group[0].code_system or ''} {group[0].code}".strip()
            others = ", ".join(p.source for p in group[1:])
            reason = f"{len(group)} documents share the {what} {value!r} (also {others}); all are indexed"
            warnings.append(_warning(group[0], reason))
    return warnings


def _warning(procedure: Procedure, reason: str) -> ParseError:
    return ParseError(procedure.source, procedure.record_line or 1, reason)
