"""Errors that carry messages meant for users; only the CLI and the API translate them."""

from __future__ import annotations

from pathlib import Path


class ProcqaError(Exception):
    """Base of every error procqa raises on purpose."""


class ParseError(ProcqaError):
    """A document that cannot be read as a procedure."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


class IndexMissingError(ProcqaError):
    """No index has been built at the configured location."""


class IndexMismatchError(ProcqaError):
    """The index was built with another model or dimension than the one configured."""


class IndexCorruptError(ProcqaError):
    """An index file is damaged: a checksum or count does not match its manifest."""


class QueryError(ProcqaError):
    """A query that cannot be answered as asked (bad section, unknown code, ...)."""


class NotFoundError(ProcqaError):
    """A procedure id that is not in the index."""


class ClusterError(ProcqaError):
    """A cluster that could not be reached, or could not finish its part of a build."""
