"""procqa: semantic search and question answering over medical procedure documents."""

__version__ = "0.1.0"
