"""multilingual-e5-small's network in plain PyTorch: XLM-RoBERTa's post-norm encoder, with
transformers' ``XLMRobertaModel`` parameter names (so its weights and ours are one state dict).

Our own ~80 lines rather than transformers' class because importing transformers takes about 2.4 s
on the 2-core machine, more than loading the whole model: ``rag ask`` would pay it at every start.
``tests/test_encoder.py`` checks that it gives transformers' hidden states.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, positions: int, types: int, eps: float, pad: int):
        super().__init__()
        # uninitialised: the weights are assigned right after (a random init of the 96M-entry table
        # costs half a second, and building on the meta device imports far more of torch)
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=pad, _weight=torch.empty(vocab, hidden))
        self.position_embeddings = nn.Embedding(positions, hidden, padding_idx=pad)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)
        self.pad = pad

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # XLM-R numbers positions from pad + 1, counting only real tokens
        mask = input_ids.ne(self.pad).int()
        positions = torch.cumsum(mask, dim=1) * mask + self.pad
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.heads = heads


class AttentionOutput(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = AttentionOutput(hidden, eps)


class Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class FeedForwardOutput(Dense):
    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.attention = Attention(hidden, heads, eps)
        self.intermediate = Dense(hidden, ff)
        self.output = FeedForwardOutput(ff, hidden, eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        att = self.attention.self
        b, n, h = x.shape
        d = h // att.heads
        q, k, v = (lin(x).view(b, n, att.heads, d).transpose(1, 2) for lin in (att.query, att.key, att.value))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.1 if self.training else 0.0)
        a = a.transpose(1, 2).reshape(b, n, h)
        out = self.attention.output
        x = out.LayerNorm(x + self.dropout(out.dense(a)))
        f = self.output.dense(F.gelu(self.intermediate.dense(x)))  # exact (erf) GELU, as XLM-R
        return self.output.LayerNorm(x + self.dropout(f))


class Stack(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.layer = nn.ModuleList(Layer(hidden, heads, ff, eps) for _ in range(layers))


class Output:
    """What transformers' model returns, the part we use."""

    def __init__(self, last_hidden_state: torch.Tensor):
        self.last_hidden_state = last_hidden_state


class E5Encoder(nn.Module):
    """The encoder: ``model(input_ids=..., attention_mask=...).last_hidden_state`` is (batch, tokens, 384)."""

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, ff: int, positions: int, types: int,
                 eps: float, pad: int):
        super().__init__()
        self.embeddings = Embeddings(vocab, hidden, positions, types, eps, pad)
        self.encoder = Stack(layers, hidden, heads, ff, eps)
        self.hidden_size = hidden
        self.num_hidden_layers = layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Output:
        x = self.embeddings(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # an additive mask: padded keys get a large negative score
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return Output(x)
