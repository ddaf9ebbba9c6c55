"""Chroma server mode (RAG_CHROMA_URL): a real `chroma run` on a loopback port, with ingest, ask(),
two UI worker processes and a concurrent ingest all against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.embed import get_embedder
from rag.errors import DocumentError
from rag.qa import ask
from rag.settings import Settings
from rag.store import get_store

from .conftest import DATA, SEEDS, free_port, wait_http

pytestmark = pytest.mark.slow
ENV = dict(os.environ)
SEED_Q = ("샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", "평택")
NEW_Q = ("LG에너지솔루션이 원통형 배터리 공장을 짓기 시작한 곳은 어디인가?", "애리조나")


def start_chroma(root: Path) -> tuple[subprocess.Popen, str]:
    """A real `chroma run` server on a free loopback port, answering its heartbeat."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the chroma command (installed with chromadb) is missing"
    port = free_port()
    log = root / "chroma.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([chroma, "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
                                env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/v2/heartbeat", proc, log)
    return proc, url


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    proc, url = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_ingest_and_ask_through_a_chroma_server(chroma_server, tmp_path):
    s = Settings(store_dir=tmp_path / "local" / "store", chroma_url=chroma_server, collection="srv_one")
    report = ingest_paths([SEEDS], s)
    assert not report.failed and report.count("new") == 5 and report.chunks_written > 20
    a = ask("샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", settings=s)
    assert not a.abstained and "평택" in a.citations[0].quote
    store = get_store(s, get_embedder(s))
    assert set(store.keyword_index().ids) == {r.record_id for r in store.all_records()}
    # the records live in the server: no embedded store (and no writer lock) was created locally
    assert not (s.store_dir / "chroma.sqlite3").exists() and not (s.store_dir / ".writer.lock").exists()
    again = ingest_paths([SEEDS], s)
    assert again.count("unchanged") == 5 and again.chunks_written == 0


def _ask_ui(url: str, question: str) -> dict:
    from gradio_client import Client

    return Client(url, verbose=False).predict(question, 5, api_name="/ask")


def test_ui_workers_and_a_concurrent_ingest_share_one_server(chroma_server, tmp_path):
    env = {**ENV, "RAG_CHROMA_URL": chroma_server, "RAG_COLLECTION": "srv_two", "RAG_STORE": str(tmp_path / "store")}
    first = subprocess.run([sys.executable, "-m", "rag", "ingest", str(SEEDS)], env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    workers = []
    try:
        for i in range(2):  # two UI worker processes, each with its own process-local keyword index
            port = free_port()
            log = tmp_path / f"ui{i}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "rag", "ui", "--port", str(port)], env=env,
                                        stdout=fh, stderr=subprocess.STDOUT)
            workers.append((f"http://127.0.0.1:{port}/", proc, log))
        for url, proc, log in workers:
            wait_http(url, proc, log)
        for url, _, _ in workers:
            assert NEW_Q[1] not in _ask_ui(url, NEW_Q[0])["text"]  # not ingested yet

        new = tmp_path / "new"
        new.mkdir()
        shutil.copy(DATA / "battery_page.txt", new / "battery_page.txt")
        for p in sorted(SEEDS.glob("*.txt"))[:2]:  # changed copies: more to write, more generations
            (new / f"copy_{p.name}").write_text(p.read_text(encoding="utf-8").replace("올트먼", "알트만"), encoding="utf-8")
        ingest = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(new)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        during, errors = [], []

        def keep_asking(url):
            while ingest.poll() is None:
                try:
                    during.append(_ask_ui(url, SEED_Q[0]))
                except Exception as e:  # any failure while the other process writes is a bug
                    errors.append(repr(e))

        threads = [threading.Thread(target=keep_asking, args=(url,)) for url, _, _ in workers]
        for t in threads:
            t.start()
        out, err = ingest.communicate(timeout=300)
        for t in threads:
            t.join(timeout=60)
        assert ingest.returncode == 0, err
        assert not errors, errors[:3]
        assert during and all(SEED_Q[1] in d["text"] for d in during), [d["text"] for d in during if SEED_Q[1] not in d["text"]][:2]

        for url, _, _ in workers:  # each worker sees the other process's writes
            got = _ask_ui(url, NEW_Q[0])
            assert NEW_Q[1] in got["text"], got
            assert any(c["article_id"] == "battery_page" for c in got["citations"])
        cache = tmp_path / "keyword-cache"
        assert cache.exists() and not list(cache.rglob(".tmp-*"))
    finally:
        for _, proc, _ in workers:
            proc.terminate()
        for _, proc, _ in workers:
            proc.wait(timeout=30)


def test_a_chroma_server_outage_fails_each_file_in_one_line_with_the_summary(tmp_path):
    """The server dies mid-way: ingest retries for a while, then every file fails with one line, the
    usual summary is printed, and no traceback reaches the user."""
    proc, url = start_chroma(tmp_path)
    env = {**ENV, "RAG_CHROMA_URL": url, "RAG_STORE": str(tmp_path / "local")}
    pages = tmp_path / "pages"
    shutil.copytree(SEEDS, pages)
    first = subprocess.run([sys.executable, "-m", "rag", "ingest", str(pages / "003_a5253bb998f2131f.txt")], env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    proc.terminate()
    proc.wait(timeout=20)
    out = subprocess.run([sys.executable, "-m", "rag", "ingest", str(pages)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) <= 8, out.stderr
    failed = [line for line in out.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 5 and all("unreachable" in line and "RAG_CHROMA_URL" in line for line in failed)
    assert "documents: 0 new, 0 changed, 0 unchanged, 5 failed" in out.stdout


def test_parallel_ingest_over_two_workers_matches_a_serial_one(chroma_server, tmp_path):
    from ingest.parallel import ingest_parallel

    serial = Settings(store_dir=tmp_path / "a" / "store", chroma_url=chroma_server, collection="srv_serial")
    par = Settings(store_dir=tmp_path / "b" / "store", chroma_url=chroma_server, collection="srv_parallel")
    pages = tmp_path / "pages"
    shutil.copytree(SEEDS, pages)
    shutil.copy(DATA / "battery_page.txt", pages / "battery_page.txt")
    shutil.copy(pages / "battery_page.txt", pages / "nested_dup.txt")
    (pages / "sub").mkdir()
    shutil.copy(DATA / "battery_page.txt", pages / "sub" / "battery_page.txt")  # same article id: the later one fails
    one = ingest_paths([pages], serial)
    seen = []
    two = ingest_parallel([pages], par, 2, progress=lambda path, n, total: seen.append((n, total)))
    assert [(f.path, f.status, f.chunks) for f in two.files] == [(f.path, f.status, f.chunks) for f in one.files]
    assert two.count("new") == 7 and two.count("failed") == 1 and "also used by" in two.files[-1].message
    assert sorted(seen) == [(n, 7) for n in range(1, 8)]
    s_store, p_store = get_store(serial, get_embedder(serial)), get_store(par, get_embedder(par))
    assert ({r.record_id for r in p_store.all_records()} == {r.record_id for r in s_store.all_records()}
            == set(p_store.keyword_index().ids))
    a = ask(NEW_Q[0], settings=par)
    assert not a.abstained and NEW_Q[1] in a.citations[0].quote
    again = ingest_parallel([pages], par, 2)
    assert again.count("unchanged") == 7 and again.chunks_written == 0
    with pytest.raises(DocumentError, match="nothing was deleted"):  # a typo deletes nothing
        ingest_parallel([pages, tmp_path / "pagse"], par, 2, rebuild=True)
    assert p_store.count() == s_store.count()
    rebuilt = ingest_parallel([pages], par, 2, rebuild=True)  # deleted first, then every page is new again
    assert rebuilt.count("new") == 7 and rebuilt.chunks_written == one.chunks_written
    assert {r.record_id for r in p_store.all_records()} == {r.record_id for r in s_store.all_records()}


def test_readers_follow_a_rebuild_of_a_server_store_without_a_restart(chroma_server, tmp_path):
    """A process with the store open (as `rag ui` has) asks while another rebuilds the server store:
    the old store answers until the swap, the new one after it, and no question fails."""
    s = Settings(store_dir=tmp_path / "local" / "store", chroma_url=chroma_server, collection="srv_swap")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    shutil.copy(SEEDS / "004_cf5fbeec96a7a50c.txt", old)
    shutil.copy(DATA / "battery_page.txt", new)
    assert ingest_paths([old], s).count("new") == 1
    seed = "004_cf5fbeec96a7a50c"

    def asked() -> set[str]:  # the articles a question's passages came from
        return {h.chunk.article_id for h in ask(SEED_Q[0], settings=s).retrieved}

    assert asked() == {seed}
    env = {**ENV, "RAG_CHROMA_URL": chroma_server, "RAG_COLLECTION": "srv_swap", "RAG_STORE": str(tmp_path / "cli")}
    rebuild = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(new), "--rebuild"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    during, errors = [], []
    while rebuild.poll() is None:
        try:
            during.append(asked())
        except Exception as e:  # any failure while the store is rebuilt is the bug this test is about
            errors.append(repr(e))
    out, err = rebuild.communicate(timeout=300)
    assert rebuild.returncode == 0 and "1 new" in out, err
    assert not errors, errors[:3]
    assert during and during[0] == {seed}  # the old store answered while the new one was built
    assert asked() == {"battery_page"}  # the same process, not restarted, reads the new store
    assert set(get_store(s, get_embedder(s)).articles()) == {"battery_page"}


def _collections(url: str) -> set[str]:
    import chromadb
    from urllib.parse import urlparse

    u = urlparse(url)
    return {c.name for c in chromadb.HttpClient(host=u.hostname, port=u.port).list_collections()}


def test_a_server_store_takes_one_writing_run_at_a_time(chroma_server, tmp_path):
    """A rebuild while a `--workers 2` ingest runs is refused in one line, naming the run that writes;
    the ingest finishes whole, gives its lease up, and the rebuild then runs."""
    import time

    env = {**ENV, "RAG_CHROMA_URL": chroma_server, "RAG_COLLECTION": "srv_lease", "RAG_STORE": str(tmp_path / "cli")}
    pages, other = tmp_path / "pages", tmp_path / "other"
    shutil.copytree(SEEDS, pages)
    other.mkdir()
    shutil.copy(DATA / "battery_page.txt", other)
    first = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(pages), "--workers", "2"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while "srv_lease" not in _collections(chroma_server) and time.time() < deadline:  # the ingest has begun
        assert first.poll() is None, first.communicate()[1]
        time.sleep(0.2)
    second = subprocess.run([sys.executable, "-m", "rag", "ingest", str(other), "--rebuild"], env=env,
                            capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=600)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"being written by rag ingest (pid {first.pid} " in second.stderr and "Wait for it" in second.stderr
    assert first.returncode == 0 and "5 new" in out and "Traceback" not in err, err
    assert "srv_lease__lease" not in _collections(chroma_server)  # given up at the end
    s = Settings(store_dir=tmp_path / "local" / "store", chroma_url=chroma_server, collection="srv_lease")
    assert len(get_store(s, get_embedder(s)).articles()) == 5
    again = subprocess.run([sys.executable, "-m", "rag", "ingest", str(other), "--rebuild"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert set(get_store(s, get_embedder(s)).articles()) == {"battery_page"}


def test_a_killed_writers_lease_expires(chroma_server, tmp_path):
    import time

    from rag.errors import StoreBusyError
    from rag.writer_lock import ServerLease

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, chromadb; from rag.writer_lock import ServerLease; "
        "from urllib.parse import urlparse; u = urlparse(sys.argv[1]); "
        "c = chromadb.HttpClient(host=u.hostname, port=u.port); "
        "ServerLease.take(c, 'srv_dead__lease', 'a writer killed later', 'srv_dead', ttl=4); "
        "print('held', flush=True); time.sleep(120)"), chroma_server], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()  # SIGKILL: the lease is neither renewed nor given up
        holder.wait()
    import chromadb
    from urllib.parse import urlparse

    u = urlparse(chroma_server)
    client = chromadb.HttpClient(host=u.hostname, port=u.port)
    with pytest.raises(StoreBusyError, match="being written by a writer killed later"):
        ServerLease.take(client, "srv_dead__lease", "the next writer", "srv_dead")
    time.sleep(4.5)
    lease = ServerLease.take(client, "srv_dead__lease", "the next writer", "srv_dead")
    held = client.get_collection("srv_dead__lease").metadata
    assert held["owner"].startswith("the next writer") and held["token"] == lease.token
    lease.release()
    assert "srv_dead__lease" not in {c.name for c in client.list_collections()}


def test_an_upload_while_another_run_writes_the_server_store_fails_in_one_line(chroma_server, tmp_path):
    import chromadb
    from urllib.parse import urlparse

    from gradio_client import Client, handle_file

    from rag.writer_lock import ServerLease

    env = {**ENV, "RAG_CHROMA_URL": chroma_server, "RAG_COLLECTION": "srv_ui_lease", "RAG_STORE": str(tmp_path / "store")}
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rag", "ui", "--port", str(port)], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, proc, log)
        u = urlparse(chroma_server)
        lease = ServerLease.take(chromadb.HttpClient(host=u.hostname, port=u.port), "srv_ui_lease__lease",
                                 "a rebuild elsewhere", "srv_ui_lease")
        upload = tmp_path / "battery.txt"
        shutil.copy(DATA / "battery_page.txt", upload)
        client = Client(url, verbose=False)
        table = client.predict([handle_file(str(upload))], api_name="/add_files")[0]
        assert "| battery.txt | failed |" in table and "being written by a rebuild elsewhere" in table, table
        assert not list((tmp_path / "store" / "uploads").glob("*"))  # a rejected upload is not kept
        lease.release()
        table = client.predict([handle_file(str(upload))], api_name="/add_files")[0]
        assert "| battery.txt | new |" in table, table
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_chroma_password_is_never_printed_while_the_server_is_retried(tmp_path, caplog, monkeypatch):
    import logging

    import rag.store
    from rag.errors import StoreError
    from rag.store import forget_store

    from .fakes import HashEmbedder

    monkeypatch.setattr(rag.store, "RETRY_DELAYS", (0.01, 0.01))
    settings = Settings(store_dir=tmp_path / "local", chroma_url=f"http://reader:s3cret-pw@127.0.0.1:{free_port()}")
    caplog.set_level(logging.WARNING)
    with pytest.raises(StoreError) as err:
        get_store(settings, HashEmbedder()).articles()
    forget_store(settings)
    assert "does not answer" in caplog.text and "unreachable" in str(err.value)
    assert "s3cret-pw" not in caplog.text + str(err.value) and "***@127.0.0.1" in caplog.text
