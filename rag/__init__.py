"""Korean news Q&A with checked citations. ``from rag import ask``."""

from .errors import RagError
from .settings import Settings
from .types import Answer, Article, Chunk, Citation, Hit

__all__ = ["ask", "ask_stream", "Answer", "Article", "Chunk", "Citation", "Hit", "RagError", "Settings"]


def __getattr__(name):  # heavy modules load on first use, not at import
    if name in ("ask", "ask_stream"):
        import importlib

        return getattr(importlib.import_module(".qa", __name__), name)
    raise AttributeError(name)
