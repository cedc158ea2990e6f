"""HTML pages: the main content only (trafilatura), the title from '<h1>' or '<title>', the top
heading level after the title as sections, lists and '<dt>'/'<strong>Label:</strong>' as units.

trafilatura was chosen over readability-lxml and selectolax on saved hospital pages
(scripts/compare_html_extractors.py): it leaks the least site chrome and keeps headings,
lists and bold labels as structure. Site chrome it keeps anyway (share bars, "was this page
helpful?") is pruned first by class, id and role names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import lxml.html  # type: ignore[import-untyped]
import trafilatura
from lxml import etree
from trafilatura.settings import use_config

from procqa.documents import Procedure
from procqa.errors import ParseError
from procqa.ingest.page import code_of_line
from procqa.ingest.records import LEAD, WHOLE, Span, code_from_name, normalise_system, procedure_of
from procqa.ingest.sections import canonical_section

# Class, id and role words of site chrome that sits inside the article, where trafilatura keeps it.
CHROME_WORDS = frozenset(
    "breadcrumb breadcrumbs consent cookie cookies feedback gdpr helpful newsletter print rating share sharing social"
    " sidebar related toolbar banner navigation".split()
)
KEPT_TAGS = frozenset({"html", "body", "main", "article"})
CODE_META = ("procedure-code", "procedure_code", "code")
TITLE_SITE = re.compile(r"\s+[|\u2013\u2014-]\s+.*$")
WORD_SPLIT = re.compile(r"[^a-z0-9]+")
MAX_JSON_DEPTH = 20

Block = tuple[str, int, str, str | None]
"""(kind, heading level or 0, text, label): kind is 'heading', 'text' or 'item'."""


@cache
def _config() -> Any:
    config = use_config()
    # short procedure pages are whole documents, not fragments to skip
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    return config


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


CONTROL = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _tree(path: str | Path, data: bytes) -> lxml.html.HtmlElement:
    if not data.strip():
        raise ParseError(path, 1, "the file is empty")
    if b"\x00" in data:
        raise ParseError(path, data[: data.index(b"\x00")].count(b"\n") + 1, "binary file")
    # a stray control character is no text to anyone, and lxml refuses to move text holding one
    data = CONTROL.sub(b" ", data)
    try:
        data.decode("utf-8")
        parser = lxml.html.HTMLParser(encoding="utf-8")
    except UnicodeDecodeError:
        parser = lxml.html.HTMLParser()  # libxml2 reads the page's own '<meta charset>'
    try:
        tree = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError) as error:
        raise ParseError(path, 1, f"not readable as HTML: {error}") from None
    if tree is None or not isinstance(tree.tag, str):
        raise ParseError(path, 1, "not readable as HTML: no document element")
    return tree


def _is_chrome(element: lxml.html.HtmlElement) -> bool:
    if element.tag in KEPT_TAGS or element.find(".//h1") is not None:
        return False
    names = " ".join(element.get(key, "") for key in ("class", "id", "role", "aria-label")).lower()
    return not CHROME_WORDS.isdisjoint(WORD_SPLIT.split(names))


def _prune(tree: lxml.html.HtmlElement) -> None:
    for element in list(tree.iter(tag=etree.Element)):
        if element.getparent() is not None and _is_chrome(element):
            element.drop_tree()


def _json_ld_codes(value: Any, depth: int = 0) -> Iterator[tuple[str, str | None]]:
    """(code, system) of every schema.org MedicalCode in a JSON-LD value."""
    if depth > MAX_JSON_DEPTH:
        return
    if isinstance(value, dict):
        if value.get("codeValue") not in (None, ""):
            yield str(value["codeValue"]).strip(), str(value.get("codingSystem") or "").strip() or None
        for child in value.values():
            yield from _json_ld_codes(child, depth + 1)
    elif isinstance(value, list):
        for child in value:
            yield from _json_ld_codes(child, depth + 1)


def _head_code(tree: lxml.html.HtmlElement) -> tuple[str, str | None] | None:
    """A code from '<meta name="procedure-code" content="CPT 27447">' or JSON-LD."""
    for meta in tree.iterfind(".//meta[@name]"):
        if meta.get("name", "").lower() in CODE_META and (found := code_of_line(_clean(meta.get("content")))):
            return found
    for script in tree.iterfind(".//script[@type]"):
        if script.get("type", "").lower() != "application/ld+json":
            continue
        # ValueError: malformed JSON or an integer of over 4300 digits; RecursionError: nested too deep
        try:
            value = json.loads(script.text or "")
        except (ValueError, RecursionError):
            continue
        for code, system in _json_ld_codes(value):
            return code, normalise_system(system)
    return None


def _file_code(path: str | Path) -> tuple[str, str | None] | None:
    code, system = code_from_name(path)
    return (code, system) if code else None


def _source_lines(tree: lxml.html.HtmlElement) -> dict[str, int]:
    """The first source line of each heading's and block's text, to place what trafilatura returns."""
    lines: dict[str, int] = {}
    for element in tree.iter("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "dt", "dd", "td", "blockquote", "pre"):
        if element.sourceline:
            lines.setdefault(_clean(element.text_content()), element.sourceline)
    return lines


def _label_and_text(element: etree._Element) -> tuple[str | None, str]:
    """A leading bold 'Label:' split from the text after it."""
    text = _clean("".join(element.itertext()))
    first = element[0] if len(element) else None
    if first is not None and first.tag == "hi" and not _clean(element.text) and "b" in first.get("rend", ""):
        label = _clean("".join(first.itertext()))
        if label.endswith(":") and len(label) > 1 and text.startswith(label):
            return label[:-1].strip(), text[len(label) :].strip()
    return None, text


def _blocks(body: etree._Element) -> Iterator[Block]:
    for element in body:
        if element.tag == "head":
            level = int(element.get("rend", "h2")[1:] or 2) if re.fullmatch(r"h[1-6]", element.get("rend", "")) else 2
            yield "heading", level, _clean("".join(element.itertext())), None
        elif element.tag == "list":
            term: str | None = None
            for item in element.iter("item"):
                rend = item.get("rend", "")
                if rend.startswith("dt"):
                    term = _clean("".join(item.itertext())).rstrip(":") or None
                    continue
                label, text = _label_and_text(item)
                if text:
                    yield "item", 0, text, label or (term if rend.startswith("dd") else None)
        elif element.tag == "table":
            for row in element.iter("row"):
                cells = [_clean("".join(cell.itertext())) for cell in row.iter("cell")]
                if any(cells):
                    yield "item", 0, " ".join(c for c in cells if c), None
        else:
            label, text = _label_and_text(element)
            if text:
                yield ("item" if label else "text"), 0, text, label


def _title(tree: lxml.html.HtmlElement) -> str | None:
    """The first '<h1>', else the '<title>' without its site name ('Colonoscopy | Lakeside')."""
    for element in tree.iter("h1"):
        if heading := _clean(element.text_content()):
            return heading
    title = tree.find(".//title")
    return (TITLE_SITE.sub("", _clean(title.text_content())) or None) if title is not None else None


def parse_html(path: str | Path, data: bytes) -> Procedure:
    """One HTML page: its main content, with navigation, footers, banners and scripts left out."""
    tree = _tree(path, data)
    lines = _source_lines(tree)
    head_code = _head_code(tree)
    title = _title(tree)
    _prune(tree)
    # trafilatura's own errors on odd markup surface as these
    try:
        document = trafilatura.bare_extraction(
            tree, include_formatting=True, include_comments=False, include_tables=True, config=_config()
        )
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError) as error:
        raise ParseError(path, 1, f"the main content could not be extracted: {error}") from None
    body = getattr(document, "body", None)
    blocks = list(_blocks(body)) if body is not None else []
    if not blocks:
        raise ParseError(path, 1, "no main content: the page has no article text outside navigation and footers")
    if blocks[0][0] == "heading" and blocks[0][1] == 1:
        title = title or blocks[0][2]
        blocks = blocks[1:]
    if not title:
        raise ParseError(path, 1, "no title: add an '<h1>' or a '<title>'")
    code = head_code or _file_code(path)
    levels = [level for kind, level, _, _ in blocks if kind == "heading"]
    top = min(levels, default=2)
    # text before the first section heading is the lead; a page without any is one section
    lead = LEAD if levels else WHOLE
    spans: list[Span] = [(canonical_section(lead) or lead, lead, 0, [], 0)]
    label: str | None = None
    for kind, level, text, item_label in blocks:
        number = lines.get(text, spans[-1][4])
        if kind == "heading" and level <= top:
            heading = text.rstrip(":").strip()
            if heading:
                spans.append((canonical_section(heading) or heading, heading, number, [], number))
            label = None
        elif kind == "heading":
            label = text.rstrip(":").strip() or None
        elif len(spans) == 1 and code is None and (found := code_of_line(text)):
            code = found
        else:
            if kind == "item":
                line = f"- {item_label}: {text}" if item_label else f"- {text}"
            else:
                line = f"- {label}: {text}" if label else text
            name, heading, start, body, end = spans[-1]
            start = start or number  # the lead starts at its first line
            spans[-1] = (name, heading, start, [*body, line], max(end, number, start))
    if not any(body for _, _, _, body, _ in spans):
        raise ParseError(path, 1, "no main content: the page has no article text outside navigation and footers")
    code_value, system = code if code else (None, None)
    return procedure_of(path, title, code_value, system or "CPT", spans)


def parse_html_file(path: str | Path, data: bytes) -> list[Procedure]:
    """The procedure of one '.html'/'.htm' file; a file that cannot be read raises ParseError."""
    return [parse_html(path, data)]
