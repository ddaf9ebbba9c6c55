"""Crashes, concurrent use and a second writer: the store stays consistent and says what is wrong."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from ingest.doctor import check_store
from ingest.pipeline import _raw_hash, ingest_paths
from rag.embed import get_embedder
from rag.qa import ask
from rag.settings import Settings
from rag.store import forget_store, get_store

from .conftest import DATA, SEEDS

pytestmark = pytest.mark.slow
ENV = dict(os.environ)


def _pages(folder, variant: int):
    """The seeds plus rewritten copies, so an ingest run has many articles and real updates."""
    folder.mkdir(exist_ok=True)
    for p in sorted(SEEDS.glob("*.txt")):
        text = p.read_text(encoding="utf-8")
        (folder / p.name).write_text(text, encoding="utf-8")
        for i in range(2):
            (folder / f"v{i}_{p.name}").write_text(text.replace("올트먼", f"올트먼{variant}{i}"), encoding="utf-8")


def _rag(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "rag", *args], env=env or ENV, capture_output=True, text=True,
                          timeout=timeout)


def _wait_for_writer_lock(store, seconds: float = 60) -> None:
    """Wait until no process holds the store's writer lock (a killed ingest's store process finishes
    the write it is in, then exits, releasing it)."""
    from filelock import FileLock

    if store.exists():
        lock = FileLock(store / ".writer.lock", timeout=seconds)
        lock.acquire()
        lock.release()


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_sigkill_during_ingest_leaves_a_store_that_heals(tmp_path, writer):
    folder, store = tmp_path / "pages", tmp_path / "store"
    env = {**ENV, "RAG_INGEST_WRITER": writer}
    rng = random.Random(20261124)
    kills = 0
    for round_ in range(3):  # bounded: three interrupted runs, each over changed files
        _pages(folder, round_)
        proc = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(folder), "--store", str(store)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(6, 25))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # the ingesting process alone: a store process finishes its write
            kills += 1
        proc.wait(timeout=30)
        _wait_for_writer_lock(store)
    assert kills >= 1
    settings = Settings(store_dir=store)
    # the doctor may find interrupted articles; repair fixes them from their files
    repaired = _rag("doctor", "--repair", "--store", str(store))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    again = _rag("doctor", "--store", str(store))
    assert again.returncode == 0 and "consistent" in again.stdout, again.stdout
    final = _rag("ingest", str(folder), "--store", str(store), env=env)
    assert final.returncode == 0, final.stderr
    report = check_store(settings)
    assert report.ok, report.problems
    # every article is entirely the current version of its file, and the keyword index agrees
    embedder = get_embedder(settings)
    st = get_store(settings, embedder)
    for p in folder.glob("*.txt"):
        state = st.article_state(p.stem)
        assert state.complete and state.raw_hash == _raw_hash(p.read_bytes(), settings, embedder), p.name
    assert set(st.keyword_index().ids) == {r.record_id for r in st.all_records()}
    forget_store(settings)


def test_ctrl_c_stops_a_store_process_ingest_cleanly(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the store process
    runs: the ingest stops it after the write in progress and exits; the next run starts at once
    (the writer lock is free) and leaves every article whole."""
    folder, store = tmp_path / "pages", tmp_path / "store"
    _pages(folder, 0)
    env = {**ENV, "RAG_INGEST_WRITER": "process"}
    # as a terminal starts it: Ctrl-C at its default even when this run inherited it ignored (a shell's
    # background job ignores SIGINT, and an ingest started so rightly goes on ignoring it)
    as_in_a_terminal = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execv(sys.executable, [sys.executable, '-m', 'rag', *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", as_in_a_terminal, "ingest", str(folder), "--store", str(store)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (store / ".writer.holder").exists() and time.time() < deadline:  # the child has the store
        time.sleep(0.2)
    time.sleep(3)
    assert proc.poll() is None, "the ingest ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "rag ingest: interrupted" in err, err
    again = _rag("ingest", str(folder), "--store", str(store), env=env)
    assert again.returncode == 0, again.stderr
    settings = Settings(store_dir=store)
    report = check_store(settings)
    assert report.ok, report.problems
    st = get_store(settings, get_embedder(settings))
    assert {a for a in st.articles()} == {p.stem for p in folder.glob("*.txt")}
    forget_store(settings)


def test_second_writer_gets_a_clear_error_at_once(tmp_path):
    store = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from rag.settings import Settings; from rag.embed import get_embedder; "
        "from rag.store import get_store; s = Settings(store_dir=__import__('pathlib').Path(sys.argv[1])); "
        "get_store(s, get_embedder(s)).acquire_writer_lock(); print('locked', flush=True); time.sleep(60)"),
        str(store)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        second = _rag("ingest", str(DATA / "battery_page.txt"), "--store", str(store))
        assert time.perf_counter() - t0 < 30  # no waiting on the other writer
        assert second.returncode == 2
        assert "being written by pid" in second.stderr and "RAG_CHROMA_URL" in second.stderr
        assert second.stderr.count("\n") == 1  # one line, no traceback
    finally:
        holder.kill()
        holder.wait()


def test_questions_are_answered_while_an_ingest_runs(tmp_path, seeded_settings):
    settings = Settings(store_dir=tmp_path / "store")
    ingest_paths([SEEDS], settings)
    pages = tmp_path / "pages"
    _pages(pages, 9)
    errors, answers = [], []
    worker = threading.Thread(target=lambda: ingest_paths([pages], settings))
    worker.start()
    while worker.is_alive() and len(answers) < 200:
        try:
            a = ask("샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", settings=settings)
            answers.append(a)
        except Exception as e:  # any failure while the writer works is the bug this test is about
            errors.append(repr(e))
    worker.join()
    assert not errors, errors[:3]
    assert len(answers) >= 3 and all("평택" in a.text for a in answers)
    assert check_store(settings).ok


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_cli_rebuild_replaces_a_store_of_another_embedder_and_a_typo_deletes_nothing(tmp_path, writer):
    """`rag ingest --rebuild` after a change of embedder, by whichever writer the ingest uses (the CLI
    no longer opens the store itself, so a large rebuild can hand it to the store process)."""
    import json
    from pathlib import Path

    folder, store = tmp_path / "pages", tmp_path / "store"
    _pages(folder, 0)
    root = Path(__file__).resolve().parents[1]
    build = ("import sys; from pathlib import Path; from tests.fakes import fake_embedder_setting; "
             "from rag.settings import Settings; from ingest.pipeline import ingest_paths; "
             "r = ingest_paths([sys.argv[1]], Settings(store_dir=Path(sys.argv[2]), embedder=fake_embedder_setting())); "
             "assert not r.failed; print(r.chunks_written)")
    old = subprocess.run([sys.executable, "-c", build, str(folder), str(store)], cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert old.returncode == 0, old.stderr
    held = int(old.stdout.split()[-1])
    env = {**ENV, "RAG_INGEST_WRITER": writer}
    plain = _rag("ingest", str(folder), "--store", str(store), env=env)
    assert plain.returncode == 2 and "--rebuild" in plain.stderr
    typo = _rag("ingest", str(folder), str(tmp_path / "pagse"), "--rebuild", "--store", str(store), env=env)
    assert typo.returncode == 2 and "nothing was deleted" in typo.stderr and "pagse" in typo.stderr
    count = ("import sys; from pathlib import Path; from rag.settings import Settings; from rag.store import ArticleStore; "
             "print(ArticleStore(Settings(store_dir=Path(sys.argv[1])), 'custom:fake', 128).count())")
    still = subprocess.run([sys.executable, "-c", count, str(store)], cwd=root, capture_output=True, text=True, timeout=120)
    assert still.returncode == 0 and int(still.stdout.split()[-1]) == held, still.stderr  # the old store is whole
    done = _rag("ingest", str(folder), "--rebuild", "--store", str(store), "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["new"] == 15 and report["failed"] == 0
    answer = _rag("ask", "올트먼이 만난 사람은 누구인가?", "--store", str(store), "--json", env=env)
    assert answer.returncode == 0 and json.loads(answer.stdout)["retrieved"], answer.stderr
    doctor = _rag("doctor", "--store", str(store), env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
