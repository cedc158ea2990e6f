"""One dispatch from a file's suffix to the parser of its format."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.html import parse_html_file
from procqa.ingest.jsonl import parse_jsonl_file
from procqa.ingest.markdown import parse_markdown_file
from procqa.ingest.page import parse_pages
from procqa.ingest.pdf import parse_pdf_file

Parser = Callable[[str | Path, bytes], Iterable[Procedure | ParseError]]
"""A file's procedures from its name (for messages) and bytes; a problem with the whole file
raises ParseError, a problem with one record of many (JSON Lines) is yielded among them."""

# Formats register here: one parser per lower-case suffix.
PARSERS: dict[str, Parser] = {
    ".txt": parse_pages,
    ".md": parse_markdown_file,
    ".markdown": parse_markdown_file,
    ".jsonl": parse_jsonl_file,
    ".html": parse_html_file,
    ".htm": parse_html_file,
    ".pdf": parse_pdf_file,
}
SUFFIXES = tuple(PARSERS)


def parse_file(path: str | Path, data: bytes) -> tuple[list[Procedure], list[ParseError]]:
    """Every procedure in one file, and the problems found in it."""
    suffix = Path(path).suffix.lower()
    try:
        results = list(PARSERS.get(suffix, parse_pages)(path, data))
    except ParseError as error:
        return [], [error]
    return [r for r in results if isinstance(r, Procedure)], [r for r in results if isinstance(r, ParseError)]
