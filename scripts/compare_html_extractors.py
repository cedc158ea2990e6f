"""Compare main-content extractors on a folder of saved HTML pages.

For each library: mean milliseconds per page, chrome leak rate (share of pages where a known
site-chrome string reaches the output) and article recall (share of the sentences of the
page's <article>, or <main>, that the output keeps).

    .venv/bin/python scripts/compare_html_extractors.py eval/hospital/corpus tests/data/html [-v]

-v also names the chrome strings each library let through and a few sentences it lost.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lxml.html
import trafilatura
from readability import Document
from selectolax.lexbor import LexborHTMLParser

from procqa.ingest.html import parse_html
from procqa.ingest.page import code_of_line

# Text that site chrome carries on the sample pages: banners, navigation, breadcrumbs,
# in-article calls to action and share bars, sidebars, footers.
CHROME = (
    "We use cookies",
    "Accept all",
    "Find a Doctor",
    "Patient Portal",
    "Search Riverside",
    "Tests & Procedures",
    "Request an appointment",
    "Share · Print · Email",
    "Related procedures",
    "Was this page helpful",
    "Privacy Policy",
    "All rights reserved",
    "Sign up for our health newsletter",
    "Locations and Directions",
    "Pay Your Bill",
    "Opening hours",
    "Registered charity",
)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
CHROME_BLOCKS = "script, style, nav, header, footer, aside, form, noscript"


def trafilatura_text(html: str) -> str:
    return trafilatura.extract(html, include_comments=False, include_tables=True) or ""


def readability_text(html: str) -> str:
    summary = Document(html).summary(html_partial=True)
    return lxml.html.fromstring(summary).text_content() if summary.strip() else ""


def selectolax_text(html: str) -> str:
    """selectolax has no content extraction of its own: <main>/<article>, less the usual chrome tags."""
    tree = LexborHTMLParser(html)
    for node in tree.css(CHROME_BLOCKS):
        node.decompose()
    root = tree.css_first("article") or tree.css_first("main") or tree.body
    return root.text(separator=" ") if root is not None else ""


def procqa_text(html: str) -> str:
    procedure = parse_html("page.html", html.encode())
    return "\n".join([procedure.title, *(section.text for section in procedure.sections)])


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "trafilatura": trafilatura_text,
    "readability-lxml": readability_text,
    "selectolax (article/main less chrome tags)": selectolax_text,
    "procqa parse_html (trafilatura + pruning)": procqa_text,
}


def norm(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split()).lower()


def article_sentences(html: str) -> list[str]:
    """Sentences of the page's own text: <article> (or <main>), less chrome-classed blocks."""
    tree = lxml.html.fromstring(html)
    roots = tree.xpath("//article") or tree.xpath("//main")
    if not roots:
        return []
    root = roots[0]
    for node in root.xpath(".//*[self::script or self::style or self::aside or self::nav or self::button]"):
        node.drop_tree()
    for node in root.xpath(
        ".//*[contains(@class,'share') or contains(@class,'feedback') or contains(@class,'callout')]"
    ):
        node.drop_tree()
    sentences = []
    for block in root.xpath(".//p | .//li | .//dd"):
        # a code line is metadata, which procqa keeps as the procedure's code, not as text
        sentences += [
            norm(s) for s in SENTENCE.split(block.text_content()) if len(s.split()) >= 4 and not code_of_line(s)
        ]
    return sentences


def main(folders: list[str], flags: set[str]) -> None:
    pages = sorted(p for folder in folders for p in Path(folder).glob("*.htm*"))
    if not pages:
        sys.exit("no .html/.htm pages in " + ", ".join(folders))
    texts = [page.read_text("utf-8") for page in pages]
    print(f"{len(pages)} pages from {', '.join(folders)}\n")
    print(f"{'library':46} {'ms/page':>8} {'chrome leak':>12} {'article recall':>15}")
    for name, extract in EXTRACTORS.items():
        extract(texts[0])  # warm-up: imports and caches
        leaks = kept = total = 0
        leaked: set[str] = set()
        lost: list[str] = []
        elapsed = 0.0
        for html in texts:
            start = time.perf_counter()
            output = norm(extract(html))
            elapsed += time.perf_counter() - start
            page_text = norm(lxml.html.fromstring(html).text_content())
            present = [c for c in CHROME if norm(c) in page_text]
            leaks += any(norm(c) in output for c in present)
            leaked.update(c for c in present if norm(c) in output)
            sentences = article_sentences(html)
            kept += sum(s in output for s in sentences)
            lost += [s for s in sentences if s not in output]
            total += len(sentences)
        recall = kept / total if total else float("nan")
        if "-v" in flags:
            print(f"  {name}: leaked {sorted(leaked)}; lost {lost[:3]}")
        print(f"{name:46} {1000 * elapsed / len(pages):8.2f} {leaks / len(pages):12.1%} {recall:15.1%}")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("-")]
    main(arguments or ["eval/hospital/corpus", "tests/data/html"], {a for a in sys.argv[1:] if a.startswith("-")})
