"""Retrievers: dense (Chroma), keyword (BM25 over Kiwi morphemes) and their rank fusion.

All three are LangChain ``BaseRetriever``s, so they compose with runnables; ``search`` returns our
own ``Hit`` objects with scores and per-signal ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .korean import content_morphemes
from .types import Hit

RRF_K = 60
# BM25's weight when it searches an English question's bridged Korean nouns. Measured on the eval
# set's English questions: 0 (dense only) hit@5 0.81; 0.5: 0.89; 0.75: 0.96 with answer metrics
# unchanged; 1.0: 0.96, but answer accuracy fell by one question (more near-miss passages to rank).
BRIDGED_KEYWORD_WEIGHT = 0.75


def hits_to_documents(hits: list[Hit]) -> list[Document]:
    return [Document(page_content=h.chunk.text, id=h.chunk.chunk_id,
                     metadata={k: v for k, v in h.to_dict().items() if k != "text"}) for h in hits]


class _OurRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    store: Any
    embedder: Any
    k: int = 5
    filters: dict | None = None

    def search(self, query: str, k: int | None = None, filters: dict | None = None) -> list[Hit]:
        raise NotImplementedError

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return hits_to_documents(self.search(query, self.k, self.filters))


class DenseRetriever(_OurRetriever):
    """Cosine search over chunk vectors in Chroma (e5 ``query:`` prefix on the question)."""

    def search(self, query: str, k: int | None = None, filters: dict | None = None,
               vector: np.ndarray | None = None) -> list[Hit]:
        vec = self.embedder.embed_queries([query])[0] if vector is None else vector
        results = self.store.dense_search(vec, k or self.k, filters)
        return [Hit(chunk, score, dense_rank=i + 1) for i, (chunk, score) in enumerate(results)]


class KeywordRetriever(_OurRetriever):
    """BM25 over Kiwi content morphemes (particles and endings dropped)."""

    def search(self, query: str, k: int | None = None, filters: dict | None = None,
               known: dict | None = None, tokens: list[str] | None = None) -> list[Hit]:
        """``known``: chunks already fetched (by the dense search), so only the others are read;
        ``tokens``: search for these instead of the query's content morphemes."""
        tokens = content_morphemes(query) if tokens is None else tokens
        results = self.store.keyword_search(tokens, k or self.k, filters)
        known = known or {}
        chunks = {**known, **self.store.get_chunks([cid for cid, _ in results if cid not in known])}
        return [Hit(chunks[cid], score, keyword_rank=i + 1)
                for i, (cid, score) in enumerate(results) if cid in chunks]


class HybridRetriever(_OurRetriever):
    """Weighted reciprocal-rank fusion of dense and keyword search: a LangChain retriever.

    ``HybridRetriever.from_settings(settings, k=5).invoke("질문")`` returns ``Document``s whose
    ``page_content`` is the passage and whose ``metadata`` holds the article id, title, publisher,
    date, the passage's character offsets in the cleaned article (``start``/``end``), its fused
    score and its dense and keyword ranks. An English question's BM25 search goes through the term
    bridge, as in ``ask()``.

    The keyword signal's weight is the share of the question's content morphemes that occur in the
    index vocabulary: a Korean question keeps its full weight, while an English question over Korean
    text (whose words mostly cannot match) leans on the cross-lingual dense signal instead of being
    drowned by keyword noise. When the English question's words have been bridged to Korean nouns
    (``rag.bridge``), BM25 searches for those instead, at ``BRIDGED_KEYWORD_WEIGHT``.
    """

    use_keyword: bool = True
    candidates: int = 30

    @classmethod
    def from_settings(cls, settings=None, k: int = 5, filters: dict | None = None) -> "HybridRetriever":
        """The retriever over the configured store (``Settings.from_env()`` when none is given)."""
        from .embed import get_embedder
        from .settings import Settings
        from .store import get_store

        settings = settings or Settings.from_env()
        embedder = get_embedder(settings)
        return cls(store=get_store(settings, embedder), embedder=embedder, k=k, filters=filters)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        from .korean import has_hangul

        tokens = None
        if self.use_keyword and not has_hangul(query):  # English: BM25 over the bridged Korean nouns
            from .bridge import english_words, translate_words

            found = translate_words(english_words(query), self.embedder, self.store)
            tokens = sorted(set().union(*found)) if found else None
        return hits_to_documents(self.search(query, self.k, self.filters, keyword_tokens=tokens))

    def keyword_weight(self, query: str, tokens: list[str] | None = None) -> float:
        if not self.use_keyword:
            return 0.0
        if tokens is not None:  # bridged translations: less certain than a question's own words
            return BRIDGED_KEYWORD_WEIGHT * self.store.keyword_index().coverage(tokens)
        return self.store.keyword_index().coverage(content_morphemes(query))

    def search(self, query: str, k: int | None = None, filters: dict | None = None,
               vector: np.ndarray | None = None, keyword_tokens: list[str] | None = None) -> list[Hit]:
        """``keyword_tokens``: what BM25 searches for instead of the query's own morphemes (an
        English question's Korean translations, from ``rag.bridge``)."""
        k = k or self.k
        n = max(self.candidates, k)
        vec = self.embedder.embed_queries([query])[0] if vector is None else vector
        # fused by id; only the k passages kept are read from the store (a candidate's metadata,
        # sentence vectors included, is most of what a search would otherwise move)
        dense = self.store.dense_ids(vec, n, filters)
        w_kw = self.keyword_weight(query, keyword_tokens)
        tokens = content_morphemes(query) if keyword_tokens is None else keyword_tokens
        keyword = self.store.keyword_search(tokens, n, filters) if w_kw > 0 else []
        fused: dict[str, dict] = {}
        for rank, (cid, _score) in enumerate(dense, 1):
            fused[cid] = {"score": 1.0 / (RRF_K + rank), "dense_rank": rank, "keyword_rank": None}
        for rank, (cid, _score) in enumerate(keyword, 1):
            entry = fused.setdefault(cid, {"score": 0.0, "dense_rank": None, "keyword_rank": None})
            entry["score"] += w_kw / (RRF_K + rank)
            entry["keyword_rank"] = rank
        ranked = sorted(fused.items(), key=lambda kv: -kv[1]["score"])[:k]
        chunks = self.store.get_chunks([cid for cid, _ in ranked])
        return [Hit(chunks[cid], e["score"], e["dense_rank"], e["keyword_rank"]) for cid, e in ranked
                if cid in chunks]  # a passage deleted since the search is left out
