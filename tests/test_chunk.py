"""Chunking: whole sentences, offsets that point into the cleaned text, budget and overlap kept."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.chunk import article_sentences, chunk_article, embedding_text
from rag.types import Article

TEXT = ("한국은행이 기준금리를 연 3.5%로 동결했다. 다섯 차례 연속 동결이다. 총재는 긴축 기조를 유지하겠다고 말했다.\n\n"
        "시장은 연내 인하 가능성을 낮게 본다. 채권 금리는 소폭 올랐다. 원·달러 환율은 1320원대에서 움직였다.\n\n"
        "전문가들은 물가와 가계부채를 변수로 꼽았다. 다음 회의는 10월에 열린다.")


def _article(text=TEXT):
    return Article(article_id="a1", title="기준금리 동결", text=text, publisher="테스트신문", date="2023-08-24")


def test_sentences_have_exact_offsets():
    a = _article()
    sents = article_sentences(a)
    assert len(sents) == 8
    for s in sents:
        assert a.text[s.start:s.end] == s.text
        assert "\n" not in s.text


def test_chunks_respect_budget_and_overlap():
    a = _article()
    sents = article_sentences(a)
    chunks = chunk_article(a, sents, max_chars=90, overlap=1)
    assert len(chunks) > 2
    for c in chunks:
        assert a.text[c.start:c.end] == c.text
        assert len(c.text) <= 90 or len(c.sentences) == 1
        assert c.sentences[0].start == c.start and c.sentences[-1].end == c.end
        assert (c.article_id, c.title, c.publisher, c.date) == ("a1", "기준금리 동결", "테스트신문", "2023-08-24")
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.sentences[-1] == nxt.sentences[0]  # one sentence of overlap
    covered = {s for c in chunks for s in c.sentences}
    assert covered == set(sents)


def test_ids_are_deterministic_and_content_based():
    a = _article()
    sents = article_sentences(a)
    ids1 = [c.chunk_id for c in chunk_article(a, sents, 120, 1)]
    ids2 = [c.chunk_id for c in chunk_article(a, sents, 120, 1)]
    assert ids1 == ids2 and len(set(ids1)) == len(ids1)
    changed = _article(TEXT.replace("10월", "11월"))
    ids3 = [c.chunk_id for c in chunk_article(changed, article_sentences(changed), 120, 1)]
    assert ids3[0] == ids1[0] and ids3[-1] != ids1[-1]


def test_long_sentence_stands_alone():
    long = "가" * 300 + "다."
    a = _article(long + " 짧은 문장이다.")
    chunks = chunk_article(a, article_sentences(a), max_chars=100, overlap=1)
    assert chunks[0].text == long


def test_chunk_vectors_are_the_normalised_mean_of_their_sentences_plus_the_weighted_title():
    import numpy as np

    from ingest.chunk import chunk_model, chunk_vectors

    a = _article()
    sents = article_sentences(a)
    chunks = chunk_article(a, sents, max_chars=80, overlap=1)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(sents), 6)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    title = np.eye(6, dtype=np.float32)[0]
    got = chunk_vectors(chunks, sents, vecs, title, weight=0.5, by_length=False)
    by_length = chunk_vectors(chunks, sents, vecs, title, weight=0.5, by_length=True)
    for c, v, vl in zip(chunks, got, by_length):
        rows = [sents.index(s) for s in c.sentences]
        want = vecs[rows].mean(axis=0) + 0.5 * title
        np.testing.assert_allclose(v, want / np.linalg.norm(want), rtol=1e-5)
        share = np.array([len(s.text) for s in c.sentences], dtype=np.float32)
        want = (share / share.sum()) @ vecs[rows] + 0.5 * title
        np.testing.assert_allclose(vl, want / np.linalg.norm(want), rtol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0)
    assert not np.allclose(got, by_length)  # the chunks' sentences differ in length
    # without a title (or at weight 0) only the sentences count; the default is the fitted model
    np.testing.assert_allclose(chunk_vectors(chunks, sents, vecs, None), chunk_vectors(chunks, sents, vecs, title, 0.0))
    assert 0.0 <= chunk_model()[0] <= 2.0


def test_dense_metrics_of_the_chunk_vector_fit():
    import numpy as np

    from eval.fit import dense_metrics

    chunks = np.eye(4, dtype=np.float32)
    queries = np.array([[1, 0.5, 0, 0], [0, 0, 0.2, 1]], dtype=np.float32)  # ranks chunk 0 then 1; chunk 3 then 2
    has_ev = np.array([[False, True, False, False], [False, False, False, False]])  # q1's evidence in chunk 1
    in_source = np.array([[True, True, False, False], [False, False, True, False]])
    m = dense_metrics(chunks, queries, has_ev, in_source)
    assert m == {"hit_at_5": 1.0, "evidence_at_5": 0.5, "evidence_mrr_at_10": 0.25}


def test_a_batch_of_blocks_analysed_at_once_reads_as_each_analysed_alone(monkeypatch):
    """``parse_many`` (one threaded Kiwi call for a page's blocks) gives what analysing each block
    alone gives, and fills the memo, so the block-by-block reads that follow never call Kiwi."""
    import rag.korean as korean

    blocks = [p for p in TEXT.split("\n\n")] + ["[테스트신문=홍길동 기자] 짧은 줄", "ⓒ 테스트신문 무단전재 금지", "  "]
    korean._memo.clear()
    alone = [korean.split_analyzed(b) for b in blocks]
    korean._memo.clear()
    korean.parse_many(blocks)
    monkeypatch.setattr(korean, "get_kiwi", lambda: (_ for _ in ()).throw(AssertionError("Kiwi called again")))
    assert [korean.split_analyzed(b) for b in blocks] == alone
    assert alone[0] and alone[-1] == []


class _LateFake:
    """An embedder with per-token states in name only: a text's vector is its length, a span's its
    start and the number of the pass it came from."""

    name, dim, late_chunking = "late-fake", 4, True

    def __init__(self):
        self.passes: list[str] = []

    def embed_late(self, texts, spans):
        self.passes += texts
        return [(np.array([len(t), 0, 0, 0], np.float32),
                 np.array([[0, s, n + 1, 0] for s, _e in sp], np.float32)) for n, (t, sp) in enumerate(zip(texts, spans))]


class _Stored:
    def __init__(self, vectors, sentences):
        self._v, self._s = vectors, sentences

    def vectors(self, ids):
        return {i: self._v[i] for i in ids if i in self._v}

    def sentence_vectors_of(self, _article_id):
        return self._s


def test_late_vectors_take_each_sentence_from_its_first_chunks_pass_and_reuse_unchanged_chunks():
    from ingest.pipeline import late_vectors

    article = _article()
    sentences = article_sentences(article)
    chunks = chunk_article(article, sentences, 60, overlap=1)
    assert len(chunks) >= 3 and chunks[0].sentences[-1] == chunks[1].sentences[0]  # they share a sentence
    fake = _LateFake()
    cvecs, svecs = late_vectors(chunks, sentences, fake)
    assert fake.passes == [embedding_text(c) for c in chunks]  # one pass per chunk, title first
    for n, c in enumerate(chunks):
        assert cvecs[n][0] == len(embedding_text(c))
    shared = sentences.index(chunks[1].sentences[0])
    assert svecs[shared][2] == 1  # from the first chunk's pass, not the second's
    # each span points at its sentence inside the chunk's embedding text
    first = chunks[0]
    offset = len(embedding_text(first)) - len(first.text)
    assert svecs[0][1] == offset + first.sentences[0].start - first.start
    # a stored, unchanged chunk is not passed again; its vectors are the stored ones
    stored = _Stored({chunks[0].chunk_id: np.full(4, 9.0, np.float32)},
                     {s.text: np.full(4, 7.0, np.float32) for s in sentences})
    fake2 = _LateFake()
    cvecs2, svecs2 = late_vectors(chunks, sentences, fake2, stored)
    assert fake2.passes == [embedding_text(c) for c in chunks[1:]]
    assert (cvecs2[0] == 9.0).all() and (svecs2[0] == 7.0).all()


def test_late_chunking_needs_an_embedder_with_token_states():
    from ingest.pipeline import check_late_chunking
    from rag.errors import ConfigError
    from rag.settings import Settings

    from .fakes import HashEmbedder

    with pytest.raises(ConfigError, match="RAG_EMBEDDER=e5"):
        check_late_chunking(Settings(chunk_vectors="late"), HashEmbedder())
    check_late_chunking(Settings(chunk_vectors="late"), _LateFake())
    check_late_chunking(Settings(chunk_vectors="embedded"), HashEmbedder())
