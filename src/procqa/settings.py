"""The one settings object, read from the environment (prefix PROCQA_) or a .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob procqa has; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="PROCQA_", env_file=".env", extra="ignore")

    corpus: Path = Field(Path("corpus"), description="Folder of documents to index.")
    index: Path = Field(Path("index"), description="Folder the index is written to and served from.")
    model_path: str | None = Field(
        None, description="Sentence-transformers model folder; default: the bundled all-MiniLM-L6-v2."
    )
    onnx: bool = Field(True, description="Embed queries with ONNX Runtime (same vectors, about 2x faster).")
    cache: Path = Field(
        Path.home() / ".cache" / "procqa", description="Folder for files derived from the model (its ONNX export)."
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Passages embedded per batch.")
    host: str = Field("127.0.0.1", description="Address the service binds to.")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Processes serving the index, each with its own model.")
    max_query_chars: int = Field(1000, ge=1, description="Longest query accepted.")
    max_k: int = Field(100, ge=1, description="Most results one search may ask for.")
    max_file_bytes: int = Field(2_000_000, ge=1, description="Larger documents are reported, not indexed.")
    keep_versions: int = Field(3, ge=1, description="Index versions kept for rollback.")
    ray: str | None = Field(
        None, description="Ray address index builds embed on ('local': start one here); unset: embed in this process."
    )
    admin_token: SecretStr | None = Field(None, description="Token for /admin routes; unset disables them.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; empty: off.")
    log_json: bool = Field(False, description="Write logs as JSON lines.")


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
