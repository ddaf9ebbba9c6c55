"""``ask()`` as a LangChain ``Runnable``: drop our Korean-aware answering into your own chain.

    >>> from rag.chain import answer_runnable
    >>> chain = answer_runnable() | (lambda a: a.text)
    >>> chain.invoke({"question": "삼성전자 평택 공장은 어디에 있나?", "history": []})

The input is a question, or ``{"question", "history": [(q, a), ...], "filters": {...}, "k": int}``;
the output is our ``Answer`` (text with ``[n]`` markers, citations with exact quotes and offsets,
``abstained``, ``confidence``). Streaming is ``rag.ask_stream``.
"""

from __future__ import annotations

from langchain_core.runnables import Runnable, RunnableLambda

from .errors import QuestionError
from .settings import Settings
from .types import Answer


def answer_runnable(settings: Settings | None = None) -> Runnable:
    """A ``Runnable`` that maps a question (and history) to an ``Answer``."""

    def run(value) -> Answer:
        from .qa import ask

        if isinstance(value, str):
            value = {"question": value}
        if not isinstance(value, dict) or "question" not in value:
            raise QuestionError("the input is a question, or a dict with a 'question' key "
                                "(and optionally 'history', 'filters', 'k')")
        return ask(value["question"], history=value.get("history"), filters=value.get("filters"),
                   k=value.get("k"), settings=settings or Settings.from_env())

    return RunnableLambda(run, name="korean_news_answer")
