"""BM25 over Kiwi content morphemes (bm25s), with publisher/date masks for filtered search, and its
on-disk cache: one folder per store generation, published atomically, rebuilt from the store's
records whenever the generation changes."""

from __future__ import annotations

import json
from array import array
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .records import date_int as _date_int

log = logging.getLogger(__name__)


class KeywordIndex:
    """A bm25s index over chunk morphemes, saved beside the store and tagged with its generation."""

    def __init__(self, generation: str, ids: list[str], publishers: list[str], dates: list[int], bm25) -> None:
        self.generation = generation
        self.ids = ids
        self.publishers = list(publishers)
        codes: dict[str, int] = {}
        self._pub_codes = np.fromiter((codes.setdefault(p, len(codes)) for p in publishers), dtype=np.int32,
                                      count=len(publishers))
        self._pub_index = codes
        self.dates = np.asarray(dates, dtype=np.int64)
        self.bm25 = bm25
        self.vocab = set(bm25.vocab_dict) if bm25 is not None else set()

    @classmethod
    def build(cls, records: Iterable[tuple[str, list[str], str, int]], generation: str) -> "KeywordIndex":
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on itself at import
        # Streamed into compact token-id arrays (4 bytes a token) with the vocabulary built on the
        # way: a list of string lists for every chunk was most of ingest's peak memory at 100k chunks.
        ids, token_ids, pubs, dates = [], [], [], []
        vocab: dict[str, int] = {}
        for chunk_id, toks, pub, date in records:
            ids.append(chunk_id)
            token_ids.append(array("i", [vocab.setdefault(t, len(vocab)) for t in toks or [""]]))
            pubs.append(pub)
            dates.append(date)
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index((token_ids, vocab), show_progress=False)
        return cls(generation, ids, pubs, dates, bm25)

    def save(self, folder: Path) -> None:
        """Write the index into ``folder`` atomically: it is built in a private temporary folder and
        renamed into place, so several processes (UI workers on one Chroma server) never see, or
        write into, each other's half-written files. A folder already there is the same generation's
        index, written by someone else first, and is left as it is."""
        import shutil
        import uuid

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            if self.bm25 is not None:
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
            (tmp / "meta.json").write_text(json.dumps({"generation": self.generation, "ids": self.ids,
                                                       "publishers": self.publishers, "dates": self.dates.tolist()}),
                                           encoding="utf-8")
            try:
                tmp.rename(folder)
            except OSError:  # another process published this generation first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, generation: str) -> "KeywordIndex | None":
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("generation") != generation:
            return None
        bm25 = None
        if meta["ids"]:
            import bm25s

            try:
                # memory-mapped: a cold start reads the pages its queries touch, not the whole index
                bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
            except Exception:  # a damaged cache is rebuilt from Chroma, the source of truth
                return None
        return cls(generation, meta["ids"], meta["publishers"], meta["dates"], bm25)

    def coverage(self, tokens: list[str]) -> float:
        """Share of query tokens the index knows (0 for an English question over Korean text)."""
        if not tokens:
            return 0.0
        return sum(1 for t in tokens if t in self.vocab) / len(tokens)

    def passage_share(self, token: str) -> float:
        """Share of indexed passages that contain ``token`` (its document frequency over N)."""
        if self.bm25 is None or not self.ids:
            return 0.0
        i = self.bm25.vocab_dict.get(token)
        if i is None:
            return 0.0
        indptr = self.bm25.scores["indptr"]
        return float(indptr[i + 1] - indptr[i]) / len(self.ids)

    def search(self, tokens: list[str], k: int, filters: dict | None = None) -> list[tuple[str, float]]:
        known = [t for t in tokens if t in self.vocab]
        if self.bm25 is None or not known:
            return []
        mask = self._mask(filters)
        if mask is not None and not mask.any():
            return []
        k = min(k, len(self.ids))
        docs, scores = self.bm25.retrieve([known], k=k, show_progress=False, n_threads=1,
                                          weight_mask=mask)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def _mask(self, filters: dict | None) -> np.ndarray | None:
        if not filters:
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        pub = filters.get("publisher")
        if pub:
            pubs = {pub} if isinstance(pub, str) else set(pub)
            mask &= np.isin(self._pub_codes, [self._pub_index[p] for p in pubs if p in self._pub_index])
        if filters.get("since") or filters.get("until"):  # an undated passage (0) is in no date range
            mask &= self.dates >= (_date_int(filters["since"]) if filters.get("since") else 1)
        if filters.get("until"):
            mask &= self.dates <= _date_int(filters["until"])
        return mask.astype(np.float32) if mask is not None else None


class KeywordCache:
    """The keyword index of one store, kept in step with its write generation: in memory, on disk in
    ``folder/<generation>`` (shared by every process reading the store), or rebuilt from ``records``
    (chunk id, morphemes, publisher, date) when neither matches."""

    def __init__(self, folder: Path, records: Callable[[], Iterable[tuple[str, list[str], str, int]]]) -> None:
        self.folder = folder
        self.records = records
        self._lock = threading.Lock()
        self._current: tuple[str, KeywordIndex] | None = None

    def get(self, generation: str) -> KeywordIndex:
        with self._lock:
            if self._current is not None and self._current[0] == generation:
                return self._current[1]
            target = self.folder / generation  # one folder per generation, published atomically
            index = KeywordIndex.load(target, generation)
            if index is None:
                index = KeywordIndex.build(self.records(), generation)
                try:
                    index.save(target)
                    prune_generations(self.folder, keep=generation)
                except OSError as e:  # a store this user may only read: the index lives in memory
                    log.warning("keyword index kept in memory only: cannot write %s (%s)", self.folder,
                                e.strerror or e)
            self._current = (generation, index)
            return index

    def clear(self) -> None:
        with self._lock:
            self._current = None
            shutil.rmtree(self.folder, ignore_errors=True)


def prune_generations(base: Path, keep: str, grace_s: float = 60.0) -> None:
    """Remove other generations' index folders once they are a minute old (another process may be
    loading one it has just found)."""
    now = time.time()
    for d in base.iterdir() if base.exists() else ():
        if d.is_file():  # the layout before per-generation folders
            d.unlink(missing_ok=True)
        elif d.name != keep and not d.name.startswith(".tmp-") and now - d.stat().st_mtime > grace_s:
            shutil.rmtree(d, ignore_errors=True)
        elif d.name.startswith(".tmp-") and now - d.stat().st_mtime > 3600:
            shutil.rmtree(d, ignore_errors=True)  # left by a killed process
