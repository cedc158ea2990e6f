"""JSON Lines: one procedure per line, {title, code, code_system, name, aliases, sections}."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.markdown import aliases_of
from procqa.ingest.records import decode, normalise_system, procedure_of
from procqa.ingest.sections import canonical_section


def _jsonl_record(path: str | Path, number: int, line: str) -> Procedure:
    # ValueError: an integer of over 4300 digits; RecursionError: arrays nested too deep
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ParseError(path, number, f"not valid JSON: {error.msg}") from None
    except (ValueError, RecursionError) as error:
        raise ParseError(path, number, f"not usable JSON: {error}") from None
    if not isinstance(record, dict):
        raise ParseError(path, number, "each line must be a JSON object")
    title = str(record.get("title") or "").strip()
    if not title:
        raise ParseError(path, number, "missing 'title'")
    raw_sections = record.get("sections")
    if isinstance(raw_sections, dict):
        raw_sections = [{"name": k, "text": v} for k, v in raw_sections.items()]
    if not isinstance(raw_sections, list) or not raw_sections:
        raise ParseError(path, number, "'sections' must be a non-empty list of {name, text}")
    spans = []
    for item in raw_sections:
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise ParseError(path, number, "every section needs a 'name' and a 'text'")
        heading = str(item["name"]).strip()
        body = str(item.get("text") or "").splitlines()
        spans.append((canonical_section(heading) or heading, heading, number, body, number))
    code = str(record["code"]).strip() if record.get("code") not in (None, "") else None
    system = normalise_system(str(record.get("code_system") or "")) or ("CPT" if code else None)
    name = str(record["name"]).strip() if record.get("name") else None
    return procedure_of(
        path, title, code, system, spans, name=name, aliases=aliases_of(record.get("aliases")), line=number
    )


def parse_jsonl(path: str | Path, text: str) -> Iterator[Procedure | ParseError]:
    """One procedure per line; a bad line yields its error and the others still parse."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield _jsonl_record(path, number, line)
            except ParseError as error:
                yield error


def parse_jsonl_file(path: str | Path, data: bytes) -> list[Procedure | ParseError]:
    return list(parse_jsonl(path, decode(path, data)))
