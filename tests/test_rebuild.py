"""`rag ingest --rebuild` never loses the store: a rebuild is built beside the live store and swapped
in only when it holds an article, a kill at any step leaves the old store or the new one, and the
doctor tells an empty store from a healthy one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.doctor import check_store
from ingest.pipeline import ingest_paths
from rag.embed import get_embedder
from rag.errors import DocumentError
from rag.qa import ask
from rag.settings import Settings
from rag.store import forget_store, get_store

from .conftest import ROOT, SEEDS
from .fakes import fake_embedder_setting
from .test_pipeline_fast import PAGES

ENV = dict(os.environ)


@pytest.fixture()
def stored(tmp_path):
    """A store holding two articles (fake embedder), and their ids."""
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, text in PAGES.items():
        (pages / name).write_text(text, encoding="utf-8")
    settings = Settings(store_dir=tmp_path / "store", embedder=fake_embedder_setting())
    assert ingest_paths([pages], settings).count("new") == 2
    yield settings, {"library", "ferry"}
    forget_store(settings)


def _holds(settings: Settings) -> tuple[set[str], int]:
    store = get_store(settings, get_embedder(settings))
    return set(store.articles()), store.count()


@pytest.mark.parametrize("page", ["empty.txt", "binary.txt", "furniture.html"])
def test_a_rebuild_from_pages_that_all_fail_keeps_the_store(stored, tmp_path, page):
    settings, ids = stored
    held = _holds(settings)
    bad = tmp_path / page
    bad.write_bytes({"empty.txt": b"", "binary.txt": bytes(range(256)) * 8,
                     "furniture.html": "<html><body><nav>홈 | 로그인 | 구독</nav></body></html>".encode()}[page])
    with pytest.raises(DocumentError, match=r"no page could be ingested \(1 failed.*nothing was replaced"):
        ingest_paths([bad], settings, rebuild=True)
    assert _holds(settings) == held and held[0] == ids
    store = get_store(settings, get_embedder(settings))
    assert store.leftovers() == {}  # the unfinished rebuild was dropped
    report = check_store(settings)
    assert report.ok and not report.empty


def test_the_cli_says_in_one_line_that_a_failed_rebuild_kept_the_store(tmp_path):
    pages, store = tmp_path / "pages", tmp_path / "store"
    pages.mkdir()
    for name, text in PAGES.items():
        (pages / name).write_text(text, encoding="utf-8")
    made = _ingest_killed(pages, store, rebuild=False)  # by another process: the CLI takes the writer lock
    assert made.returncode == 0 and made.stdout.split()[-1] == "2", made.stderr
    (tmp_path / "empty.txt").write_bytes(b"")
    out = _rag("ingest", str(tmp_path / "empty.txt"), "--rebuild", "--store", str(store))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("rag ingest: --rebuild: no page could be ingested") and out.stderr.count("\n") == 1
    assert "empty.txt: file is empty" in out.stderr and "the store is as it was" in out.stderr
    settings = Settings(store_dir=store, embedder=fake_embedder_setting())
    try:
        assert _holds(settings)[0] == {"library", "ferry"}
    finally:
        forget_store(settings)


class _FailingEmbeddingServer:
    """An /v1/embeddings server that answers its first request (the client's dimension probe) and
    fails every later one with a 500."""

    def __init__(self) -> None:
        seen = [0]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen[0] += 1
                if seen[0] == 1:
                    code, obj = 200, {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1},
                                      "data": [{"object": "embedding", "index": i, "embedding": [1.0, 0.5, 0.25, 0.0]}
                                               for i in range(len(body["input"]))]}
                else:
                    code, obj = 500, {"error": {"message": "the model crashed", "type": "server_error"}}
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


def test_a_rebuild_whose_embedding_server_fails_keeps_the_store(stored):
    settings, ids = stored
    held = _holds(settings)
    server = _FailingEmbeddingServer()
    try:
        other = settings.with_(embedder=f"openai:{server.url}#crashing-model", embed_retries=0)
        with pytest.raises(DocumentError, match=r"no page could be ingested \(2 failed.*500.*nothing was replaced"):
            ingest_paths([settings.store_dir.parent / "pages"], other, rebuild=True)
    finally:
        server.close()
    assert _holds(settings) == held and held[0] == ids
    assert get_store(settings, get_embedder(settings)).leftovers() == {}


def test_the_doctor_tells_an_empty_store_from_a_healthy_one(stored, tmp_path):
    settings, _ = stored
    empty = _rag("doctor", "--store", str(tmp_path / "new-store"))
    assert empty.returncode == 0, empty.stdout + empty.stderr  # a new store is not an error, and is never "healthy"
    assert empty.stdout.splitlines()[-1] == ("consistent, but EMPTY: the store holds no article "
                                             "(add pages with rag ingest PATH)"), empty.stdout
    as_json = json.loads(_rag("doctor", "--store", str(tmp_path / "new-store"), "--json").stdout)
    assert as_json["ok"] and as_json["empty"] and as_json["articles"] == 0
    healthy = check_store(settings)
    assert healthy.ok and not healthy.empty and healthy.to_dict()["empty"] is False and healthy.articles == 2


def _rag(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rag", *args], env=ENV, capture_output=True, text=True, timeout=timeout)


# ---- SIGKILL at every step of a rebuild ----------------------------------------------------------------
# The rebuild runs in a process of its own that kills itself (SIGKILL: no clean-up of any kind) at a
# chosen step: when the ingest reports a file (``progress``), or when the store logs a step of the
# rebuild; it observes the run, it changes nothing in it.
_KILLED_REBUILD = r"""
import logging, os, signal, sys
from pathlib import Path
from tests.fakes import fake_embedder_setting
from rag.settings import Settings
from ingest.pipeline import ingest_paths

folder, store, rebuild, step, nth = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])
seen = [0]

def reached(text):
    if step and step in text:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

class KillAt(logging.Handler):
    def emit(self, record):
        reached("log " + record.getMessage())

logging.getLogger("rag.store").addHandler(KillAt())
logging.getLogger("rag.store").setLevel(logging.DEBUG)
report = ingest_paths([folder], Settings(store_dir=Path(store), embedder=fake_embedder_setting()), rebuild=rebuild,
                      progress=lambda path, n, total: reached(f"progress file {n}"))
print(report.count("new"))
"""

OLD = ["001_acf416a9aabe9968", "002_e7dc05e2f6e8b941"]
NEW = ["003_a5253bb998f2131f", "004_cf5fbeec96a7a50c"]


def _ingest_killed(folder: Path, store: Path, rebuild: bool, step: str = "", nth: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _KILLED_REBUILD, str(folder), str(store), "1" if rebuild else "0",
                           step, str(nth)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def _store_is_whole(store: Path, expected: dict[str, set[str]]) -> str:
    """Which of ``expected`` the store is (every article complete, the keyword index of exactly its
    chunks, a question answered from it); the doctor repairs what a kill left over, then finds it consistent."""
    settings = Settings(store_dir=store, embedder=fake_embedder_setting())
    try:
        st = get_store(settings, get_embedder(settings))
        ids = set(st.articles())
        which = [name for name, want in expected.items() if ids == want]
        assert which, f"the store holds {sorted(ids)}: neither the old store nor the new one"
        assert all(st.article_state(a).complete for a in ids)
        assert set(st.keyword_index().ids) == {r.record_id for r in st.all_records()}
        report = check_store(settings)
        assert all("is not read" in p for p in report.problems), report.problems  # only what a kill left over
        if report.problems:
            assert check_store(settings, repair=True).repairs
            report = check_store(settings)
        assert report.ok and not report.empty and report.articles == len(ids), report.problems
        a = ask("회동은 얼마 동안 진행됐나?", settings=settings)
        assert a.retrieved and {h.chunk.article_id for h in a.retrieved} <= ids
        return which[0]
    finally:
        forget_store(settings)


@pytest.mark.slow
def test_sigkill_at_every_step_of_a_rebuild_leaves_the_old_store_or_the_new_one(tmp_path):
    import shutil

    old, new = tmp_path / "old", tmp_path / "new"
    for folder, names in ((old, OLD), (new, NEW)):
        folder.mkdir()
        for n in names:
            shutil.copy(SEEDS / f"{n}.txt", folder / f"{n}.txt")
    base = tmp_path / "base"
    made = _ingest_killed(old, base, rebuild=False)
    assert made.returncode == 0 and made.stdout.split()[-1] == "2", made.stderr
    expected = {"old": set(OLD), "new": set(NEW)}
    # (step, nth occurrence, what the store must be afterwards)
    steps = [("progress file 2", 1, "old"),  # between two files, before any write
             ("log rebuild: building", 1, "old"),  # the new collection made, empty
             ("log wrote ", 1, "old"),  # every article written into it, not yet swapped in
             (" is live at ", 1, "new"),  # swapped in, nothing of the old store deleted yet
             ("log rebuild: deleted", 1, "new"),  # in the middle of deleting the old store's collections
             ("", 0, "new")]  # not killed
    for i, (step, nth, want) in enumerate(steps):
        store = tmp_path / f"store-{i}"
        shutil.copytree(base, store)
        run = _ingest_killed(new, store, rebuild=True, step=step, nth=nth)
        if step:
            assert run.returncode == -signal.SIGKILL, (step, run.returncode, run.stderr[-2000:])
        else:
            assert run.returncode == 0 and run.stdout.split()[-1] == "2", run.stderr[-2000:]
        assert _store_is_whole(store, expected) == want, step
    # a rebuild of a store that was itself rebuilt (its pointer already names a collection): the same
    rebuilt = tmp_path / f"store-{len(steps) - 1}"
    for i, (step, nth, want) in enumerate([("log wrote ", 1, "new"), (" is live at ", 1, "old")]):
        store = tmp_path / f"again-{i}"
        shutil.copytree(rebuilt, store)
        run = _ingest_killed(old, store, rebuild=True, step=step, nth=nth)
        assert run.returncode == -signal.SIGKILL, (step, run.stderr[-2000:])
        assert _store_is_whole(store, expected) == want, step
