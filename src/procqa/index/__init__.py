"""The index store: versioned folders of plain files, written atomically, verified on load.
Imports procqa.ingest and below, never ranking: a build is given what ranking wants stored."""

from procqa.index.columns import COLUMNS, Columns, WordBags
from procqa.index.dense import dense_index, index_type, nearest
from procqa.index.lexical import Lexical
from procqa.index.progress import STAGES, Progress
from procqa.index.reader import FORMAT, IN_MEMORY_MAX, IndexData, load, load_version
from procqa.index.storage import (
    CURRENT,
    REBUILD_HINT,
    Rows,
    StoredPassages,
    current_version,
    point,
    prune,
    rollback,
    versions,
)
from procqa.index.vectors import Embedding, LocalEmbedding, Texts
from procqa.index.writer import BuildReport, IntentExamples, build

__all__ = [
    "COLUMNS",
    "CURRENT",
    "FORMAT",
    "IN_MEMORY_MAX",
    "REBUILD_HINT",
    "STAGES",
    "BuildReport",
    "Columns",
    "Embedding",
    "IndexData",
    "IntentExamples",
    "Lexical",
    "LocalEmbedding",
    "Progress",
    "Rows",
    "StoredPassages",
    "Texts",
    "WordBags",
    "build",
    "current_version",
    "dense_index",
    "index_type",
    "load",
    "load_version",
    "nearest",
    "point",
    "prune",
    "rollback",
    "versions",
]
