"""Reading documents into procedures and passages: one parser per format, heading variants,
chunking and reading a collection. Imports nothing above procqa.documents and procqa.text."""

from procqa.ingest.chunking import chunk, content_key
from procqa.ingest.corpus import Corpus, read_corpus
from procqa.ingest.reading import PARSERS, SUFFIXES, parse_file

__all__ = ["PARSERS", "SUFFIXES", "Corpus", "chunk", "content_key", "parse_file", "read_corpus"]
