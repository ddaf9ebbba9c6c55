"""A fake embedder for fast unit tests: it implements our ``Embedder`` interface (so the store,
retrieval, ingest and answering code run unchanged), with deterministic vectors from hashed
character bigrams instead of a model. Use it where the real embedder's quality is not the point."""

from __future__ import annotations

import hashlib

import numpy as np

from rag.embed import Embedder, register_embedder


class HashEmbedder(Embedder):
    name = "fake-hash-bigrams"
    dim = 128

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            t = "".join(text.split())
            for a, b in zip(t, t[1:] or t):
                h = int.from_bytes(hashlib.blake2b(f"{a}{b}".encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else 1.0 / np.sqrt(self.dim)
        return out


def fake_embedder_setting() -> str:
    """The ``RAG_EMBEDDER`` value that selects a fresh HashEmbedder."""
    return register_embedder("fake", HashEmbedder())
