"""The library's own exceptions: one small hierarchy, each message naming the bad value."""


class RagError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(RagError):
    """A setting is missing or has a value outside what is accepted."""


class DocumentError(RagError):
    """An input file cannot be turned into an article (empty, binary, unreadable, too big...)."""


class StoreError(RagError):
    """The store cannot be opened or written as asked."""


class StoreBusyError(StoreError):
    """Another process is writing the store (its writer lock or its server write lease is held)."""


class EmbedderMismatchError(StoreError):
    """The store was built with another embedder than the one configured."""


class EmbedderError(RagError):
    """The embedding server failed, could not be reached, or returned vectors of the wrong shape."""


class QuestionError(RagError):
    """A question that cannot be asked (empty, too long, no text)."""


class LLMError(RagError):
    """The configured LLM server failed, timed out or answered garbage."""
