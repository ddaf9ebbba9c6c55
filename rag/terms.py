"""The store's term collections: one Chroma collection per word encoder of the English-to-Korean term
bridge (``rag.bridge``), one record per Korean noun seen in any article (its vector and hub penalty).
A cache of word vectors, not tied to articles: deleting an article leaves its terms, harmlessly."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .records import content_id

SCHEMA = 1


class TermCollections:
    def __init__(self, client: Callable[[], object], collection: str, lock: threading.RLock,
                 before_write: Callable[[], None]) -> None:
        self._client = client  # opens the store's Chroma client on first use
        self._collection = collection
        self._lock = lock
        self._before_write = before_write  # the writer lock
        self._cols: dict = {}
        self._seen: set[str] = set()  # encoders whose collection is known to be non-empty

    def name(self, encoder: str) -> str:
        from .bridge import TERM_VERSION

        return f"{self._collection}__terms{TERM_VERSION}_{encoder}"

    def _col(self, encoder: str):
        col = self._cols.get(encoder)
        if col is None:
            with self._lock:
                col = self._cols.get(encoder)
                if col is None:
                    col = self._client().get_or_create_collection(
                        self.name(encoder), metadata={"encoder": encoder, "schema": SCHEMA},
                        configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
                    self._cols[encoder] = col
        return col

    @staticmethod
    def _id(form: str) -> str:
        return content_id("term", form)

    def missing(self, forms: list[str], encoder: str) -> list[str]:
        """Those of ``forms`` that the encoder's term collection does not hold."""
        if not forms:
            return []
        ids = {self._id(f): f for f in forms}
        have = set(self._col(encoder).get(ids=list(ids), include=[])["ids"])
        return [f for i, f in ids.items() if i not in have]

    def write(self, forms: list[str], vecs: np.ndarray, hubs: np.ndarray, encoder: str, upsert) -> None:
        if not forms:
            return
        col = self._col(encoder)
        self._before_write()
        with self._lock:
            upsert(col, [self._id(f) for f in forms], list(vecs), list(forms),
                   [{"term": f, "hub": float(h)} for f, h in zip(forms, hubs)])

    def has(self, encoder: str) -> bool:
        """Whether the encoder's term collection holds anything (once it does, it always will, short
        of a reset: remembered, so an English question does not ask Chroma each time)."""
        if encoder in self._seen:
            return True
        if self._col(encoder).peek(limit=1)["ids"]:
            self._seen.add(encoder)
            return True
        return False

    def nearest(self, vectors: np.ndarray, n: int, encoder: str) -> list[list[tuple[str, float, float]]]:
        """For each vector, its ``n`` nearest stored terms as (form, cosine, hub penalty)."""
        if len(vectors) == 0:
            return []
        got = self._col(encoder).query(query_embeddings=np.asarray(vectors, dtype=np.float32), n_results=n,
                                       include=["metadatas", "distances"])
        return [[(m["term"], 1.0 - float(d), float(m["hub"])) for m, d in zip(metas, dists)]
                for metas, dists in zip(got["metadatas"], got["distances"])]

    def forget(self) -> None:
        self._cols, self._seen = {}, set()
