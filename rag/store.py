"""The only module that reads and writes Chroma's article records. Everything above it sees our own
types (``rag.records``).

Collections per store: ``<name>`` holds one record per chunk (document = chunk text, metadata =
article id, title, publisher, date, offsets, sentence offsets, Kiwi morphemes, and the vectors of the
chunk's sentences, which the answer step compares with the question); the term collections of the
English-question bridge are ``rag.terms``'s. Sentences have no records of their own: a sentence
collection (schema 1) put every sentence in an HNSW index nothing searched, which was most of the
store's write time, memory and cold start; such a store is migrated when opened (``_migrate``).
Chroma is the source of truth: the BM25 keyword index (``rag.keyword``) is a cache rebuilt from the
chunk records whenever the collection's ``generation`` (bumped on every write) differs from the
cached one, so it stays consistent across restarts, other processes and server mode. The writer lock is ``rag.writer_lock``'s.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from .errors import EmbedderMismatchError, StoreError
from .keyword import KeywordCache, KeywordIndex
from .records import (ArticleRecords, ArticleState, StoredArticle, StoredRecord, StoredSentence, build_where,
                      chunk_from_record, chunk_metadata, chunk_sentence_vectors, content_id, encode_vectors,
                      holds_sentence_vectors)
from .settings import Settings
from .terms import TermCollections
from .types import Chunk
from .writer_lock import acquire_writer_lock, folder_to_open

__all__ = ["ArticleRecords", "ArticleState", "ArticleStore", "StoredArticle", "StoredRecord", "StoredSentence",
           "content_id", "forget_store", "get_store"]
log = logging.getLogger(__name__)
SCHEMA = 2  # 1: sentences in a collection of their own; 2: their vectors in the chunk records
_VECTOR_MEMO = 2048  # chunks whose sentence vectors are kept after a read (a question reads about 10)
_PAGE = 500  # records per Chroma read: the memory a read holds grows with it (5000 held ~400 MB of metadata pages)
# Waits between tries of a call to a Chroma server that does not answer (about 15 s in all); after
# that the call fails with a StoreError, and further calls fail at once for UNREACHABLE_S seconds.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
UNREACHABLE_S = 30.0


class _Retrying:
    """A Chroma client or collection whose calls are retried with backoff when the server does not
    answer, then fail with one readable StoreError instead of a transport traceback."""

    def __init__(self, target, store: "ArticleStore") -> None:
        self._target = target
        self._store = store

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            out = self._store._retry(lambda: attr(*args, **kwargs))
            return _Retrying(out, self._store) if hasattr(out, "upsert") and hasattr(out, "query") else out

        return call


class ArticleStore:
    """Chunks and sentences of articles in Chroma, plus the keyword index kept in step with them."""

    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        self.settings = settings
        self.embedder_name = embedder_name
        self.dim = dim
        self._lock = threading.RLock()
        self._client = None
        self._chunks = None
        self._vector_memo: OrderedDict[str, tuple[str, list]] = OrderedDict()
        self.terms = TermCollections(self._opened_client, settings.collection, self._lock, self.acquire_writer_lock)
        self._keywords = KeywordCache(self._keyword_dir(), self._keyword_records)
        self._writer_lock = None
        self._unreachable_until = 0.0

    def _retry(self, call):
        """``call()``, tried again with backoff while the Chroma server does not answer."""
        import time

        import httpx

        if time.monotonic() < self._unreachable_until:
            raise StoreError(f"the Chroma server at {self.settings.chroma_url} is unreachable (RAG_CHROMA_URL); "
                             "start it, or check the address")
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                return call()
            except (httpx.TransportError, ValueError) as e:
                # chromadb's client says "Could not connect to a Chroma server" as a ValueError
                if not isinstance(e, httpx.TransportError) and "connect" not in str(e).lower():
                    raise
                if delay is None:
                    self._unreachable_until = time.monotonic() + UNREACHABLE_S
                    raise StoreError(f"the Chroma server at {self.settings.chroma_url} is unreachable "
                                     f"(RAG_CHROMA_URL; {e}); start it, or check the address") from None
                if attempt == 0:
                    log.warning("the Chroma server at %s does not answer (%s); trying again for %.0f s",
                                self.settings.chroma_url, e, sum(RETRY_DELAYS))
                time.sleep(delay)

    # ---- opening -------------------------------------------------------------------------------
    def _connect(self):
        """The Chroma client, made once; it reads no collection, so it opens a store built with any
        embedder (``reset`` needs no more)."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is not None:
                return self._client
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            try:
                if self.settings.chroma_url:
                    from urllib.parse import urlparse

                    url = urlparse(self.settings.chroma_url)
                    client = _Retrying(self._retry(lambda: chromadb.HttpClient(
                        host=url.hostname, port=url.port or 8000, ssl=url.scheme == "https",
                        settings=chroma_settings)), self)
                else:  # a store this user may only read is opened from a private copy
                    client = chromadb.PersistentClient(path=str(folder_to_open(self.settings.store_dir)),
                                                       settings=chroma_settings)
            except StoreError:
                raise
            except Exception as e:
                where = self.settings.chroma_url or self.settings.store_dir
                raise StoreError(f"cannot open the store at {where}: {e}") from e
            self._client = client
            return client

    def _open(self):
        if self._chunks is not None:
            return
        client = self._connect()
        with self._lock:
            if self._chunks is not None:
                return
            meta = {"embedder": self.embedder_name, "dim": self.dim, "schema": SCHEMA}
            name = self.settings.collection
            chunks = client.get_or_create_collection(
                name, metadata={**meta, "generation": "0"}, configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None)
            stored = chunks.metadata or {}
            if stored.get("embedder") != self.embedder_name or int(stored.get("dim", -1)) != self.dim:
                raise EmbedderMismatchError(
                    f"the store at {self.location} was built with embedder {stored.get('embedder')!r} "
                    f"(dim {stored.get('dim')}), but RAG_EMBEDDER gives {self.embedder_name!r} (dim {self.dim}). "
                    "Use the embedder it was built with, re-index into a new store (rag ingest PATH --store NEW_DIR), "
                    "or rebuild this one with the new embedder (rag ingest PATH --rebuild: deletes what it holds)."
                )
            if int(stored.get("schema", SCHEMA)) < SCHEMA or _legacy_sentences(name) in _collection_names(client):
                self._migrate(client, chunks)
            self._chunks = chunks
            self.terms.forget()

    def _migrate(self, client, chunks) -> None:
        """Schema 1 → 2: copy each sentence's vector from the old sentence collection into its chunk's
        record, then drop that collection. Safe to interrupt: a chunk already holding its vectors is
        not touched again, and the collection is dropped only after every chunk was done. A sentence
        whose vector is missing leaves its chunk without vectors, which marks the article incomplete,
        so the next ingest of its file embeds it again."""
        self._writer_lock = self._writer_lock or (None if self.settings.chroma_url
                                                  else acquire_writer_lock(self.settings.store_dir))
        legacy = _legacy_sentences(self.settings.collection)
        names = _collection_names(client)
        total = chunks.count()
        log.warning("upgrading the store at %s (%d chunks) to schema %d: sentence vectors move into the chunk "
                    "records; nothing is embedded again", self.location, total, SCHEMA)
        if legacy in names:
            old = client.get_collection(legacy, embedding_function=None)
            offset = 0
            while True:
                got = chunks.get(include=["metadatas", "documents"], limit=_PAGE, offset=offset)
                if not got["ids"]:
                    break
                offset += len(got["ids"])
                todo = [(i, m, d) for i, m, d in zip(got["ids"], got["metadatas"], got["documents"])
                        if not m.get("svec")]
                wanted = {}
                for i, m, d in todo:
                    start = int(m["start"])
                    texts = [d[a - start : b - start] for a, b in json.loads(m.get("sentences") or "[]")]
                    wanted[i] = [content_id(m["article_id"], t) for t in texts]
                found = {}
                ids = sorted({sid for sids in wanted.values() for sid in sids})
                for k in range(0, len(ids), _PAGE):
                    part = old.get(ids=ids[k : k + _PAGE], include=["embeddings"])
                    found.update(zip(part["ids"], part["embeddings"]))
                update_ids, update_metas = [], []
                for i, m, _ in todo:
                    if all(sid in found for sid in wanted[i]):
                        vecs = np.asarray([found[sid] for sid in wanted[i]], dtype=np.float32).reshape(-1, self.dim)
                        update_ids.append(i)
                        update_metas.append({**m, "svec": encode_vectors(vecs)})
                if update_ids:
                    chunks.update(ids=update_ids, metadatas=update_metas)
            try:
                client.delete_collection(legacy)
            except Exception as e:  # another process upgrading the same server store got there first
                log.warning("could not delete collection %s: %s", legacy, e)
        chunks.modify(metadata={**(chunks.metadata or {}), "schema": SCHEMA, "generation": uuid.uuid4().hex})

    def _opened_client(self):
        self._open()
        return self._client

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.store_dir)

    def count(self) -> int:
        self._open()
        return self._chunks.count()

    def chunk_collection(self):
        """The Chroma collection of chunk records, for tools that measure the index itself (``rag
        bench``'s dense recall); reading and writing articles goes through this class."""
        self._open()
        return self._chunks

    # ---- reading articles ----------------------------------------------------------------------
    def article_state(self, article_id: str) -> ArticleState | None:
        return self.article_states([article_id]).get(article_id)

    def article_states(self, article_ids: list[str]) -> dict[str, ArticleState]:
        """What the store holds of each of these articles (absent: none of it), in one Chroma call.
        An article is complete when all its chunks are there, from one version of its file, each with
        its sentences' vectors."""
        if not article_ids:
            return {}
        self._open()
        ids = list(dict.fromkeys(article_ids))
        where = {"article_id": {"$in": ids}} if len(ids) > 1 else {"article_id": ids[0]}
        got = self._chunks.get(where=where, include=["metadatas"])
        by_article: dict[str, list[tuple[str, dict]]] = {}
        for i, m in zip(got["ids"], got["metadatas"]):
            by_article.setdefault(m["article_id"], []).append((i, m))
        out = {}
        for aid, recs in by_article.items():
            metas = [m for _, m in recs]
            hashes = {m.get("raw_hash") for m in metas}
            expected = {m.get("n_chunks") for m in metas}
            complete = (len(hashes) == 1 and len(expected) == 1 and expected.pop() == len(recs)
                        and all(holds_sentence_vectors(m, self.dim) for m in metas))
            out[aid] = ArticleState(raw_hash=hashes.pop() if len(hashes) == 1 else None, complete=complete,
                                    chunk_ids=tuple(i for i, _ in recs), source_path=metas[0].get("source_path"))
        return out

    def articles(self) -> dict[str, StoredArticle]:
        """Every stored article, by id."""
        seen: dict[str, dict] = {}
        counts: dict[str, int] = {}
        for _id, meta, _doc in self._scan(include=["metadatas"]):
            seen.setdefault(meta["article_id"], meta)
            counts[meta["article_id"]] = counts.get(meta["article_id"], 0) + 1
        return {aid: StoredArticle(aid, m.get("title"), m.get("publisher") or None, m.get("date") or None,
                                   m.get("source_path") or None, counts[aid]) for aid, m in seen.items()}

    def _scan(self, include):
        self._open()
        offset = 0
        while True:
            got = self._chunks.get(include=include, limit=_PAGE, offset=offset)
            ids = got["ids"]
            if not ids:
                return
            metas = got.get("metadatas") or [None] * len(ids)
            docs = got.get("documents") or [None] * len(ids)
            yield from zip(ids, metas, docs)
            offset += len(ids)

    def all_records(self) -> list[StoredRecord]:
        """Every chunk record (for ``rag doctor``)."""
        return [StoredRecord.from_chroma(i, m, d) for i, m, d in self._scan(include=["metadatas", "documents"])]

    def vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """Stored chunk vectors by id (for reuse: an unchanged chunk is never re-embedded)."""
        if not chunk_ids:
            return {}
        self._open()
        got = self._chunks.get(ids=list(chunk_ids), include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])}

    def sentence_vectors_of(self, article_id: str) -> dict[str, np.ndarray]:
        """The stored vectors of an article's sentences, by sentence text (for reuse: an unchanged
        sentence of a changed article is not embedded again)."""
        return {s.text: s.vector for s in self.sentences_of([article_id])}

    # ---- the calls an ingest makes, shared with ingest.writer.StoreProcess ------------------------
    def submit(self, name: str, *args) -> Future:
        """``name(*args)`` run now: a finished future with its answer or error (a ``StoreProcess``
        sends the call to its child instead and answers later)."""
        fut: Future = Future()
        try:
            fut.set_result(getattr(self, name)(*args))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def wait(self) -> BaseException | None:
        """Nothing to wait for: a write here has finished, or raised, when it returns (a
        ``StoreProcess`` returns the first error of the writes it confirms)."""
        return None

    # ---- writing ------------------------------------------------------------------------------
    def acquire_writer_lock(self) -> None:
        """Claim the embedded store for writing in this process, or fail at once (``rag.writer_lock``).
        A Chroma server (``RAG_CHROMA_URL``) takes any number of writers, so no lock is taken there."""
        if self.settings.chroma_url or self._writer_lock is not None:
            return
        self._writer_lock = acquire_writer_lock(self.settings.store_dir)

    def write_articles(self, batch: list["ArticleRecords"]) -> None:
        """Replace the records of several articles in a few Chroma calls (each call is a transaction
        costing tens of milliseconds, so one per article made store writes ingest's largest cost
        outside the model). New records are upserted before stale ones are deleted, so a crash leaves
        at worst extra stale records or an incomplete article, both of which ``article_state`` detects."""
        if not batch:
            return
        self._open()
        self.acquire_writer_lock()
        c_ids, c_vecs, c_docs, c_meta = [], [], [], []
        keep: dict[str, set[str]] = {}
        for rec in batch:
            base = {"article_id": rec.article_id, "raw_hash": rec.raw_hash, "source_path": rec.source_path or ""}
            row = {(s.start, s.end): i for i, s in enumerate(rec.sentences)}
            c_ids += [c.chunk_id for c in rec.chunks]
            c_vecs += list(rec.chunk_vecs)
            c_docs += [c.text for c in rec.chunks]
            c_meta += [chunk_metadata(c, base, len(rec.chunks), len(rec.sentences), m,
                                      rec.sentence_vecs[[row[(s.start, s.end)] for s in c.sentences]])
                       for c, m in zip(rec.chunks, rec.chunk_morphs)]
            keep[rec.article_id] = {c.chunk_id for c in rec.chunks}
        with self._lock:
            # Bumped before and after: a crash in between leaves a generation no cached keyword
            # index carries, so the index is rebuilt from what Chroma really holds.
            self._bump_generation()
            self._upsert(self._chunks, c_ids, c_vecs, c_docs, c_meta)
            self._delete_stale_many(self._chunks, keep)
            self._bump_generation()

    def _upsert(self, col, ids, vecs, docs, metas) -> None:
        step = max(1, min(self._client.get_max_batch_size(), 4000))
        for i in range(0, len(ids), step):
            col.upsert(ids=ids[i : i + step], embeddings=np.asarray(vecs[i : i + step], dtype=np.float32),
                       documents=docs[i : i + step], metadatas=metas[i : i + step])

    @staticmethod
    def _delete_stale_many(collection, keep: dict[str, set[str]]) -> None:
        ids = list(keep)
        where = {"article_id": {"$in": ids}} if len(ids) > 1 else {"article_id": ids[0]}
        # ids only (reading the metadata back, sentence vectors and all, cost 8% of a write): every
        # record just upserted carries its own article, so a record of these articles is stale exactly
        # when no article of the batch keeps its id
        kept = set().union(*keep.values())
        stale = [i for i in collection.get(where=where, include=[])["ids"] if i not in kept]
        if stale:
            collection.delete(ids=stale)

    def delete_article(self, article_id: str) -> int:
        self._open()
        self.acquire_writer_lock()
        with self._lock:
            self._bump_generation()
            n = self._delete_stale(self._chunks, article_id, set())
            self._bump_generation()
        return n

    def move_article(self, article_id: str, source_path: str) -> None:
        """Record that a stored article's file now lives at ``source_path`` (its text is unchanged)."""
        self._open()
        self.acquire_writer_lock()
        with self._lock:
            # ids only: Chroma's update merges the metadata given into each record's, so the chunks'
            # sentence vectors are neither read nor written again
            ids = self._chunks.get(where={"article_id": article_id}, include=[])["ids"]
            if ids:
                self._chunks.update(ids=ids, metadatas=[{"source_path": source_path}] * len(ids))

    @staticmethod
    def _delete_stale(collection, article_id: str, keep: set[str]) -> int:
        got = collection.get(where={"article_id": article_id}, include=[])
        stale = [i for i in got["ids"] if i not in keep]
        if stale:
            collection.delete(ids=stale)
        return len(stale)

    def _bump_generation(self) -> None:
        meta = dict(self._chunks.metadata or {})
        meta["generation"] = uuid.uuid4().hex
        self._chunks.modify(metadata=meta)

    def generation(self) -> str:
        """The current write generation (read fresh: another process or server client may write)."""
        self._open()
        col = self._client.get_collection(self.settings.collection, embedding_function=None)
        return str((col.metadata or {}).get("generation", "0"))

    # ---- searching -----------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, filters: dict | None = None) -> list[tuple[Chunk, float]]:
        self._open()
        # no count() first: it costs a scan at 100k chunks, and Chroma returns fewer when it has fewer
        got = self._chunks.query(query_embeddings=[np.asarray(vector, dtype=np.float32)],
                                 n_results=k, where=build_where(filters),
                                 include=["documents", "metadatas", "distances"])
        return [(chunk_from_record(i, d, m), 1.0 - float(dist)) for i, d, m, dist in
                zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])]

    def dense_ids(self, vector: np.ndarray, k: int, filters: dict | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest chunks' ids and cosine similarities, without their records."""
        self._open()
        got = self._chunks.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k,
                                 where=build_where(filters), include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0])]

    def get_chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        """Chunks by id; their sentence vectors, read with them, are kept for ``sentence_vectors_for``."""
        if not chunk_ids:
            return {}
        self._open()
        got = self._chunks.get(ids=list(chunk_ids), include=["documents", "metadatas"])
        for i, m in zip(got["ids"], got["metadatas"]):
            self._remember_vectors(i, m)
        return {i: chunk_from_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}

    def _remember_vectors(self, chunk_id: str, meta: dict) -> None:
        # A chunk id is a hash of its article, title and text, and a store has one embedder, so the
        # vectors of a chunk id never change: the memo needs no invalidation, only a bound.
        vecs = chunk_sentence_vectors(meta, self.dim)
        if vecs:
            with self._lock:
                self._vector_memo[chunk_id] = (meta["article_id"], vecs)
                self._vector_memo.move_to_end(chunk_id)
                while len(self._vector_memo) > _VECTOR_MEMO:
                    self._vector_memo.popitem(last=False)

    def sentences_of(self, article_ids: list[str]) -> list[StoredSentence]:
        """Every stored sentence (with its vector) of the given articles, in article order."""
        if not article_ids:
            return []
        self._open()
        where = {"article_id": {"$in": list(article_ids)}} if len(article_ids) > 1 else {"article_id": article_ids[0]}
        got = self._chunks.get(where=where, include=["documents", "metadatas"])
        out: dict[tuple[str, int], StoredSentence] = {}
        for d, m in zip(got["documents"], got["metadatas"]):
            start = int(m["start"])
            for a, b, vec in chunk_sentence_vectors(m, self.dim):  # a sentence two chunks share is kept once
                out.setdefault((m["article_id"], a), StoredSentence(m["article_id"], a, b, d[a - start : b - start], vec))
        return [out[k] for k in sorted(out)]

    def sentence_vectors_for(self, chunks: list[Chunk]) -> dict[tuple[str, int], np.ndarray]:
        """Vectors of the sentences of ``chunks``, keyed by (article id, start), read from the chunk
        records by id: the cost follows the passages retrieved, not the size of the store."""
        ids = list(dict.fromkeys(c.chunk_id for c in chunks))
        with self._lock:
            missing = [i for i in ids if i not in self._vector_memo]
        if missing:
            self._open()
            got = self._chunks.get(ids=missing, include=["metadatas"])
            for i, m in zip(got["ids"], got["metadatas"]):
                self._remember_vectors(i, m)
        out = {}
        with self._lock:
            for i in ids:
                article_id, vecs = self._vector_memo.get(i, ("", ()))
                for a, _b, vec in vecs:
                    out[(article_id, a)] = vec
        return out

    # ---- term vectors (rag.bridge; rag.terms keeps them) ---------------------------------------------
    def missing_terms(self, forms: list[str], encoder: str) -> list[str]:
        return self.terms.missing(forms, encoder)

    def write_terms(self, forms: list[str], vecs: np.ndarray, hubs: np.ndarray, encoder: str) -> None:
        self.terms.write(forms, vecs, hubs, encoder, self._upsert)

    def has_terms(self, encoder: str) -> bool:
        return self.terms.has(encoder)

    def nearest_terms(self, vectors: np.ndarray, n: int, encoder: str) -> list[list[tuple[str, float, float]]]:
        return self.terms.nearest(vectors, n, encoder)

    # ---- keyword index (rag.keyword keeps it in step with the generation) ----------------------------
    def keyword_search(self, tokens: list[str], k: int, filters: dict | None = None) -> list[tuple[str, float]]:
        return self.keyword_index().search(tokens, k, filters)

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index matching the store's current generation (loaded or rebuilt as needed)."""
        return self._keywords.get(self.generation())

    def _keyword_records(self):
        return ((i, m.get("morphs", "").split(), m.get("publisher") or "", int(m.get("date_int") or 0))
                for i, m, _ in self._scan(include=["metadatas"]))

    def _keyword_dir(self) -> Path:
        if self.settings.chroma_url:
            import hashlib

            key = hashlib.sha256(f"{self.settings.chroma_url}|{self.settings.collection}".encode()).hexdigest()[:16]
            return self.settings.store_dir.parent / "keyword-cache" / key
        return self.settings.store_dir / f"keyword-{self.settings.collection}"

    def reset(self) -> None:
        """Delete the collections and the keyword cache (``rag ingest --rebuild``): also of a store built
        with another embedder, which is what a rebuild is for."""
        self._connect()
        self.acquire_writer_lock()
        with self._lock:
            present = _collection_names(self._client)  # a fresh store has none, and nothing is deleted
            terms = sorted(n for n in present if n.startswith(f"{self.settings.collection}__terms"))
            legacy = _legacy_sentences(self.settings.collection)
            names = [n for n in (self.settings.collection, legacy, *terms) if n in present]
            for name in names:
                try:
                    self._client.delete_collection(name)
                except Exception as e:  # already gone is fine; anything else is reported
                    log.warning("could not delete collection %s: %s", name, e)
            self._keywords.clear()
            self._chunks = None
            self.terms.forget()
        # a store object of this process opened with another embedder holds the deleted collection: drop it,
        # so the next get_store for that embedder opens the store afresh instead of a dangling collection
        with _stores_lock:
            for key in [k for k, v in _stores.items() if v is not self and k[:3] == _location(self.settings)]:
                del _stores[key]


def _legacy_sentences(collection: str) -> str:
    """The sentence collection a schema-1 store kept beside its chunks."""
    return f"{collection}__sentences"


def _collection_names(client) -> set[str]:
    return {getattr(c, "name", c) for c in client.list_collections()}


_stores: dict[tuple, ArticleStore] = {}
_stores_lock = threading.Lock()


def _location(settings: Settings) -> tuple:
    return (str(settings.store_dir), settings.chroma_url, settings.collection)


def get_store(settings: Settings, embedder) -> ArticleStore:
    """One ``ArticleStore`` per (location, collection, embedder) per process."""
    key = (*_location(settings), embedder.name)
    with _stores_lock:
        if key not in _stores:
            _stores[key] = ArticleStore(settings, embedder.name, embedder.dim)
        return _stores[key]


def forget_store(settings: Settings) -> None:
    """Drop cached stores for a location (after ``reset`` or in tests using temporary dirs)."""
    with _stores_lock:
        for key in [k for k in _stores if k[:2] == _location(settings)[:2]]:  # every collection there
            del _stores[key]
