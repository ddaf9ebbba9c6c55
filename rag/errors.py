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


class ModelFileError(RagError):
    """A fitted model file (the ranker, the reader's answer model, the cleaner) is missing, unreadable
    or not a valid model."""


def validation_problems(e, limit: int = 3) -> str:
    """The first problems of a pydantic ``ValidationError`` as ``where: what (got value)``, for one line."""
    out = []
    for err in e.errors()[:limit]:
        what = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            what = ".".join(str(x) for x in err["loc"]) + ": " + what
        if err["type"] not in ("missing", "value_error") and not isinstance(err.get("input"), dict):
            got = repr(err.get("input"))
            what += f" (got {got[:40] + '...' if len(got) > 40 else got})"
        out.append(what)
    more = len(e.errors()) - limit
    return "; ".join(out) + (f"; and {more} more" if more > 0 else "")
