"""Shared fixtures: the real Kiwi, the real bundled embedder and real Chroma stores in temp dirs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from rag.settings import Settings  # importing rag sets the offline and no-telemetry defaults

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def embedder():
    from rag.embed import get_embedder

    return get_embedder(Settings())


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(store_dir=tmp_path / "store")


@pytest.fixture(scope="session")
def seeded_settings(tmp_path_factory) -> Settings:
    """A store with the five seed articles ingested once for the whole session."""
    from ingest.pipeline import ingest_paths

    s = Settings(store_dir=tmp_path_factory.mktemp("seeded") / "store")
    report = ingest_paths([SEEDS], s)
    assert not report.failed, report.to_dict()
    return s


@pytest.fixture
def seed_copy(tmp_path) -> Path:
    folder = tmp_path / "pages"
    shutil.copytree(SEEDS, folder)
    return folder


def free_port() -> int:
    """A TCP port free on loopback right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Wait until ``url`` answers; fail with the server's log if it exits or never answers."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: the server exited: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{url} did not answer in {seconds} s: {log.read_text(errors='replace')[-2000:]}")
