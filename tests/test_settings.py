"""Settings: every RAG_* variable's default, a good value and a bad one (read with pydantic-settings)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import Settings, default_store_dir

# variable: (default, a good value as text, what it becomes, a bad value as text)
CASES = {
    "RAG_STORE": (default_store_dir({}), "/tmp/rag-store", Path("/tmp/rag-store"), None),
    "RAG_CHROMA_URL": (None, "http://127.0.0.1:8000", "http://127.0.0.1:8000", "localhost:8000"),
    "RAG_COLLECTION": ("articles", "news_2026", "news_2026", "x"),
    "RAG_EMBEDDER": ("e5", "sentence-transformers:/models/m", "sentence-transformers:/models/m", "openai"),
    "RAG_EMBED_BATCH": (16, "32", 32, "0"),
    "RAG_EMBED_QUERY_PREFIX": ("", "query: ", "query: ", None),
    "RAG_EMBED_PASSAGE_PREFIX": ("", "passage: ", "passage: ", None),
    "RAG_EMBED_INPUT_TYPE": (None, "query,passage", "query,passage", "query"),
    "RAG_EMBED_CONCURRENCY": (4, "8", 8, "0"),
    "RAG_EMBED_API_KEY": (None, "secret", "secret", None),
    "RAG_EMBED_TIMEOUT": (60.0, "10", 10.0, "-1"),
    "RAG_EMBED_RETRIES": (4, "0", 0, "many"),
    "RAG_CHUNK_CHARS": (450, "600", 600, "10"),
    "RAG_CHUNK_OVERLAP": (1, "0", 0, "9"),
    "RAG_CHUNK_VECTORS": ("embedded", "late", "late", "mean"),
    "RAG_INGEST_WRITER": ("auto", "inline", "inline", "thread"),
    "RAG_K": (10, "20", 20, "99999999999999999999"),
    "RAG_MAX_FILE_BYTES": (10 * 1024 * 1024, "1000", 1000, "-5"),
    "RAG_MAX_QUESTION_CHARS": (2000, "500", 500, "3"),
    "RAG_MAX_PAGE_CHARS": (300_000, "50000", 50000, "10"),
    "RAG_ABSTAIN_THRESHOLD": (None, "0.4", 0.4, "1.5"),
    "RAG_RANKER_MODEL": (None, str(Path(__file__).parents[1] / "rag" / "reader" / "ranker_model.json"),
                         Path(__file__).parents[1] / "rag" / "reader" / "ranker_model.json", None),  # checked at load (test_qa)
    "RAG_READER": ("neural", "features", "features", "llm"),
    "RAG_READER_MODEL": (None, "/models/reader.safetensors", Path("/models/reader.safetensors"), None),  # checked at load
    "RAG_ANSWER_MODE": ("auto", "extractive", "extractive", "generative"),
    "RAG_LLM_BASE_URL": (None, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", None),
    "RAG_LLM_MODEL": (None, "local", "local", None),
    "RAG_LLM_API_KEY": (None, "secret", "secret", None),
    "RAG_LLM_TIMEOUT": (60.0, "5", 5.0, "soon"),
    "RAG_LLM_MAX_TOKENS": (512, "64", 64, "0"),
}


def _field(var: str) -> str:
    return "store_dir" if var == "RAG_STORE" else var.removeprefix("RAG_").lower()


def test_every_setting_has_a_case():
    assert {_field(v) for v in CASES} == {f.name for f in fields(Settings)}


@pytest.mark.parametrize("var", sorted(CASES))
def test_default_good_and_bad_value(var):
    default, good, parsed, bad = CASES[var]
    name = _field(var)
    base = Settings.from_env({"XDG_DATA_HOME": str(Path.home() / ".local" / "share")})
    assert getattr(base, name) == default
    assert getattr(Settings.from_env({var: good}), name) == parsed
    if bad is not None:
        with pytest.raises(ConfigError) as e:
            Settings.from_env({var: bad})
        assert var in str(e.value) and repr(bad) in str(e.value)


@pytest.mark.parametrize("value", ["openai:http://127.0.0.1:8000/v1#e5", "openai:http://a/v1, https://b/v1#bge-m3"])
def test_an_openai_embedder_names_its_servers_and_model(value):
    assert Settings.from_env({"RAG_EMBEDDER": value}).embedder == value


@pytest.mark.parametrize("value", ["openai:http://127.0.0.1:8000/v1", "openai:127.0.0.1:8000#e5", "openai:#e5",
                                   "openai:http://a/v1#"])
def test_a_malformed_openai_embedder_says_the_shape(value):
    with pytest.raises(ConfigError, match="RAG_EMBEDDER.*openai:<base_url>#<model>"):
        Settings.from_env({"RAG_EMBEDDER": value})


def test_empty_variables_are_unset_and_xdg_moves_the_default_store():
    assert Settings.from_env({"RAG_K": ""}).k == 10
    assert Settings.from_env({"XDG_DATA_HOME": "/data"}).store_dir == Path("/data/korean-news-rag/store")


def test_accepted_values_are_named():
    with pytest.raises(ConfigError, match="auto, extractive, llm"):
        Settings.from_env({"RAG_ANSWER_MODE": "fast"})
    with pytest.raises(ConfigError, match="RAG_LLM_BASE_URL and RAG_LLM_MODEL"):
        Settings.from_env({"RAG_ANSWER_MODE": "llm"})


def test_copies_are_validated_and_library_code_reads_no_environment(monkeypatch):
    s = Settings(store_dir="~/somewhere")
    assert s.store_dir == Path("~/somewhere").expanduser()
    assert replace(s, k=3).k == 3 and s.with_(k=None).k == 10
    with pytest.raises(ConfigError, match="RAG_K"):
        s.with_(k=0)
    monkeypatch.setenv("RAG_K", "7")
    assert Settings().k == 10  # only from_env reads RAG_* variables
    assert Settings.from_env().k == 7
