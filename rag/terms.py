"""The store's term collections: one Chroma collection per word encoder of the English-to-Korean term
bridge (``rag.bridge``), one record per Korean noun seen in any article (its vector and hub penalty).
A cache of word vectors, not tied to articles: deleting an article leaves its terms, harmlessly. They
are named after the store's chunk collection, so a rebuild makes its own beside it (``rag.store``)."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .records import content_id

SCHEMA = 1
# Graph candidates a nearest-term search looks at (Chroma's default is 100). The term vectors crowd
# together (single words), and at 100 two builds of the same dev store, record for record identical,
# bridged the words of 7 of the dev split's 288 questions differently (the HNSW graph depends on
# insertion order); at 400 every question got the same terms from both, as with 1,000.
EF_SEARCH = 400


class TermCollections:
    def __init__(self, client: Callable[[], object], chunk_collection: Callable[[], str], lock: threading.RLock,
                 before_write: Callable[[], None]) -> None:
        self._client = client  # opens the store's Chroma client on first use
        self._chunk_collection = chunk_collection  # the name of the chunk collection the terms go with
        self._lock = lock
        self._before_write = before_write  # the writer lock
        self._cols: dict = {}
        self._seen: set[str] = set()  # encoders whose collection is known to be non-empty
        self._ef_checked: set[str] = set()  # encoders whose collection's search breadth was checked

    def name(self, encoder: str) -> str:
        from .bridge import TERM_VERSION

        return f"{self._chunk_collection()}__terms{TERM_VERSION}_{encoder}"

    def _col(self, encoder: str):
        col = self._cols.get(encoder)
        if col is None:
            with self._lock:
                col = self._cols.get(encoder)
                if col is None:
                    col = self._client().get_or_create_collection(
                        self.name(encoder), metadata={"encoder": encoder, "schema": SCHEMA},
                        configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
                        embedding_function=None)
                    self._cols[encoder] = col
        return col

    @staticmethod
    def search_ef(col) -> int:
        config = getattr(col, "configuration_json", None) or {}
        return int((config.get("hnsw") or {}).get("ef_search") or 0)

    @staticmethod
    def _id(form: str) -> str:
        return content_id("term", form)

    def missing(self, forms: list[str], encoder: str) -> list[str]:
        """Those of ``forms`` that the encoder's term collection does not hold (asked by every ingest
        batch, which also widens the search of a collection made before ``EF_SEARCH``)."""
        col = self._col(encoder)
        if encoder not in self._ef_checked and self.search_ef(col) < EF_SEARCH:
            # a collection made before EF_SEARCH: raised by the first ingest after (once a process).
            # Chroma keeps the setting an index was loaded with, so searches use it from the next
            # process that opens the store (measured: a modify() is not seen by the same process).
            self._ef_checked.add(encoder)
            self._before_write()
            with self._lock:
                col.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
                col = self._cols[encoder] = self._client().get_collection(self.name(encoder), embedding_function=None)
        if not forms:
            return []
        ids = {self._id(f): f for f in forms}
        have = set(col.get(ids=list(ids), include=[])["ids"])
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
        self._cols, self._seen, self._ef_checked = {}, set(), set()
