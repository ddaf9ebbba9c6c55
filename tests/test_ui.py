"""The chat page in a real browser: Debian's Chromium driven by Playwright against `rag ui` on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ui.app import chat_markdown, check_exposure, safe_upload_name, sources_html
from rag.errors import ConfigError

from .conftest import DATA, ROOT, SEEDS, free_port, wait_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts" / "ui"


def _cite(n: int, quote: str):
    from rag.types import Citation

    return Citation(n, "a", "a-0", "t", None, None, quote, 0, len(quote), quote, 0)


def test_markdown_escaping_keeps_our_markers_as_links():
    out = chat_markdown("<script>alert(1)</script> **굵게** 평택 [1] [2]", (_cite(1, "평택"), _cite(2, "굵게")))
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "\\*\\*" in out
    assert "[[1]](#src-1)" in out and "[[2]](#src-2)" in out


def test_markers_inside_article_text_are_not_links():
    quote = "회의록 [7] 참조라고 적힌 문장이다."
    out = chat_markdown(f"{quote} [1]", (_cite(1, quote),))
    assert "[[1]](#src-1)" in out and "#src-7" not in out and "\\[7\\]" in out
    assert "#src-3" not in chat_markdown("본문 [3] 이다 [1]", (_cite(1, "본문 [3] 이다"),))
    assert "#src" not in chat_markdown("스트리밍 중인 글 [1]")  # no citations yet: no links


def test_upload_names_stay_in_the_folder():
    for bad in ("../../etc/passwd", "..\\..\\x.txt", "/abs/path/a.html", "....txt", ""):
        name = safe_upload_name(bad)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert safe_upload_name("기사 1.txt") == "기사_1.txt"
    long = safe_upload_name("가" * 200 + ".html")
    assert len(long) == 120 and long.endswith(".html")  # the extension survives the cut


def test_form_text_loses_lone_surrogates():
    from ui.app import plain_text

    assert plain_text("\ud800질문\udfff?") == "질문?" and plain_text(None) == ""


def test_exposure_rules():
    assert check_exposure("127.0.0.1", None, None) is None
    with pytest.raises(ConfigError, match="RAG_UI_USER"):
        check_exposure("0.0.0.0", None, None)
    assert check_exposure("0.0.0.0", "u", "p") == ("u", "p")


def test_sources_panel_escapes_article_html():
    from rag.types import Answer, Citation

    c = Citation(1, "a", "c", "<b>제목</b>", "신문", "2024-01-01", "<img src=x onerror=alert(1)>", 5, 33,
                 "앞 문장. <img src=x onerror=alert(1)> 뒤", 0)
    page = sources_html(Answer("q", "x [1]", "ko", (c,), False, ()))
    assert "<img" not in page and "&lt;img" in page and "<mark>" in page and "id='src-1'" in page


def test_the_api_takes_k_only_as_a_whole_number_in_range():
    from rag.errors import QuestionError
    from ui.app import passages_asked

    assert passages_asked(0, 10) == 10 and passages_asked(5, 10) == 5 and passages_asked(7.0, 10) == 7
    for bad in (float("nan"), float("inf"), float("-inf"), True, "5", None, 2.5, -1, 201, 10**12):
        with pytest.raises(QuestionError, match="whole number from 1 to 200"):
            passages_asked(bad, 10)


def _rag(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_a_port_that_cannot_be_served_is_one_line_before_anything_loads(tmp_path):
    import socket

    store = str(tmp_path / "store")
    impossible = _rag("ui", "--port", "99999", "--store", store)
    assert impossible.returncode == 2 and impossible.stderr.count("\n") == 1, impossible.stderr
    assert "--port 99999" in impossible.stderr and "1 to 65535" in impossible.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _rag("ui", "--port", str(port), "--store", store)
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1, taken.stderr
    assert f"--port {port}" in taken.stderr and "choose another --port" in taken.stderr
    assert "serving on" not in impossible.stdout + taken.stdout and not (tmp_path / "store").exists()


def test_trusted_proxies_must_be_addresses():
    from ui.app import trusted_proxies

    assert trusted_proxies(None) == "" and trusted_proxies("127.0.0.1, 10.0.0.0/8") == "127.0.0.1,10.0.0.0/8"
    with pytest.raises(ConfigError, match="'proxy.example'"):
        trusted_proxies("127.0.0.1,proxy.example")


@pytest.mark.slow
def test_login_back_off_keys_on_the_peer_not_on_x_forwarded_for(tmp_path):
    import urllib.error
    import urllib.parse
    import urllib.request

    port = free_port()
    log = (tmp_path / "ui.log").open("wb")
    env = {**os.environ, "RAG_UI_USER": "editor", "RAG_UI_PASSWORD": "right-password"}
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ui", "--port", str(port), "--store", str(tmp_path / "store")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, proc, tmp_path / "ui.log")
        codes = []
        for i in range(6):  # a client naming itself another address on every try
            req = urllib.request.Request(url + "login", data=urllib.parse.urlencode(
                {"username": "editor", "password": f"guess-{i}"}).encode(),
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
            try:
                codes.append(urllib.request.urlopen(req, timeout=30).status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
        assert codes[:3] == [400, 400, 400] and 429 in codes[3:], codes
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium fonts-nanum); .ci/run installs it")
    root = tmp_path_factory.mktemp("ui")
    store = root / "store"
    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(SEEDS), "--store", str(store)], check=True, env=env,
                   capture_output=True)
    port = free_port()
    log = (root / "ui.log").open("wb")  # a pipe nobody reads would fill and block the server
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ui", "--port", str(port), "--store", str(store)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, proc, root / "ui.log")
    yield {"url": url, "store": store}
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(server["url"])
    pg.wait_for_selector("textarea")
    pg.dialogs = dialogs
    yield pg
    ctx.close()


def _ask(page, question: str, wait_for: str, name: str):
    from playwright.sync_api import expect

    box = page.locator("#question textarea")
    box.fill(question)
    t0 = time.perf_counter()
    box.press("Enter")
    bot = page.locator("[data-testid='bot']").last
    expect(bot).to_contain_text(wait_for, timeout=60_000)
    elapsed = time.perf_counter() - t0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    print(f"{name}: answer visible {elapsed * 1000:.0f} ms after Enter")
    return bot


@pytest.mark.slow
def test_korean_question_shows_answer_and_source_card(page):
    from playwright.sync_api import expect

    _ask(page, "SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?", "3460억", "korean")
    expect(page.locator("[data-testid='bot']").last).to_contain_text("[1]")
    card = page.locator("#sources .source-card").first
    expect(card).to_contain_text("영업이익 3460억원")
    expect(card.locator("mark")).to_contain_text("3460억")
    page.locator("[data-testid='bot']").last.get_by_role("link", name="[1]").click()
    assert page.url.endswith("#src-1")


@pytest.mark.slow
def test_english_question(page):
    from playwright.sync_api import expect

    _ask(page, "Which UAE AI company did Altman talk to about funding chip production?", "G42", "english")
    expect(page.locator("[data-testid='bot']").last).to_contain_text("According to the articles")
    expect(page.locator("#sources .source-card").first).to_contain_text("G42")


@pytest.mark.slow
def test_unanswerable_question_abstains_visibly(page):
    from playwright.sync_api import expect

    _ask(page, "프로야구 한국시리즈 우승팀은 어디인가?", "찾을 수 없습니다", "abstain")  # in none of the pages
    expect(page.locator("#sources .abstain")).to_contain_text("Not found in the articles")
    expect(page.locator("#sources .source-card").first).to_be_visible()  # closest passages still shown


@pytest.mark.slow
def test_bad_messages_get_clear_errors(page):
    _ask(page, " ", "empty", "empty_message")
    _ask(page, "가" * 20000, "limit", "long_message")
    from playwright.sync_api import expect

    _ask(page, "<img src=x onerror=alert(1)> 평택 공장은?", "찾을 수 없습니다", "html_in_question")
    expect(page.locator("[data-testid='user']").last).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.dialogs == []  # nothing in the question ran as script
    assert page.locator("[data-testid='user'] img").count() == 0


@pytest.mark.slow
def test_a_question_typed_while_an_answer_comes_is_asked_not_dropped(page):
    """The next question typed as soon as the first shows in the chat: the box stays locked until the
    first answer is complete, so the second waits to be typed instead of being dropped by the pending
    event or wiped by its output."""
    from playwright.sync_api import expect

    box = page.locator("#question textarea")
    box.fill("SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?")
    # every change on the page, with whether the box could take typing at that moment
    page.evaluate("""() => { window.__seen = [];
        new MutationObserver(() => { const bots = document.querySelectorAll("[data-testid='bot']");
            window.__seen.push({locked: document.querySelector('#question textarea').disabled,
                                answer: bots.length ? bots[bots.length - 1].innerText.trim() : ''}); })
        .observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true}); }""")
    box.press("Enter")
    expect(page.locator("[data-testid='user']")).to_have_count(1, timeout=30_000)
    box.fill("Which UAE AI company did Altman talk to about funding chip production?")  # waits for the box
    box.press("Enter")
    bots = page.locator("[data-testid='bot']")
    expect(bots).to_have_count(2, timeout=60_000)
    expect(bots.last).to_contain_text("G42", timeout=60_000)
    expect(bots.first).to_contain_text("3460억")
    expect(page.locator("[data-testid='user']").last).to_contain_text("UAE")
    expect(box).to_be_editable()
    expect(box).to_have_value("")
    seen = page.evaluate("window.__seen")
    first_answer = next(i for i, s in enumerate(seen) if "3460" in s["answer"])
    assert all(s["locked"] for s in seen[:first_answer + 1] if s["answer"]), "box open while the answer came"


@pytest.mark.slow
def test_upload_then_ask(page, tmp_path):
    from playwright.sync_api import expect

    upload = tmp_path / "battery.txt"
    upload.write_text((DATA / "battery_page.txt").read_text(encoding="utf-8"), encoding="utf-8")
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    page.get_by_text("Add articles").click()
    page.locator("input[type='file']").set_input_files([str(upload), str(bad)])
    page.get_by_role("button", name="Add to the store").click()
    result = page.locator("#ingest-result")
    expect(result).to_contain_text("battery.txt", timeout=90_000)
    expect(result).to_contain_text("new")
    expect(result).to_contain_text("empty")
    page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True)
    _ask(page, "LG에너지솔루션 애리조나 공장의 연간 생산능력은 얼마인가?", "36기가와트시", "ask_uploaded")


@pytest.mark.slow
def test_feedback_is_appended_to_jsonl(page, server):
    from playwright.sync_api import expect

    _ask(page, "샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?", "[1]", "feedback")
    feedback = server["store"] / "feedback.jsonl"  # each store keeps its own
    before = feedback.read_text(encoding="utf-8").splitlines() if feedback.exists() else []
    page.get_by_role("button", name="Like").last.click()
    expect(page.get_by_text("feedback saved")).to_be_visible(timeout=20_000)
    lines = feedback.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(before) + 1
    record = json.loads(lines[-1])
    assert record["liked"] is True and "[1]" in record["answer"]
    assert record["question"].startswith("샘 올트먼이 방문한") and record["citations"][0]["quote"]


@pytest.mark.slow
def test_fifty_concurrent_questions_through_the_api(server):
    """Load: 50 questions at once through the running app's API (gradio_client on loopback)."""
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    cases = [("최태원 회장과 올트먼의 회동은 얼마 동안 진행됐나?", "ko"),
             ("SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?", "ko"),
             ("Which UAE AI company did Altman talk to about funding chip production?", "en"),
             ("How much funding could the Stargate project raise at most?", "en"),
             ("프로야구 한국시리즈 우승팀은 어디인가?", "ko")]
    jobs = [cases[i % len(cases)] for i in range(50)]
    client = Client(server["url"], verbose=False)
    # each question's answer asked alone first: under load every session must get exactly that
    alone = {q: client.predict(q, 5, api_name="/ask")["text"] for q, _ in cases}

    def one(case):
        t0 = time.perf_counter()
        out = client.predict(case[0], 5, api_name="/ask")
        return case, out, (time.perf_counter() - t0) * 1000

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(one, jobs, timeout=300))
    latencies = sorted(ms for _, _, ms in results)
    for (question, lang), out, _ in results:
        assert "error" not in out, out
        assert out["question"] == question  # no answers swapped between sessions
        assert out["language"] == lang and out["text"] == alone[question]
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    print(f"50 concurrent questions: p50 {p50:.0f} ms, p95 {p95:.0f} ms")


@pytest.mark.slow
def test_api_checks_k_and_survives_a_lone_surrogate(server):
    import urllib.request

    from gradio_client import Client

    client = Client(server["url"], verbose=False)
    for bad in (10**12, -1, -100, 2.5):
        out = client.predict("올트먼은 누구를 만났나?", bad, api_name="/ask")
        assert "error" in out and "whole number from 1 to 200" in out["error"], out
    for bad in ("NaN", "Infinity"):  # JSON clients refuse to send these; raw JSON carries them
        body = ('{"data": ["올트먼은 누구를 만났나?", %s]}' % bad).encode("utf-8")
        req = urllib.request.Request(server["url"] + "gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
        event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
        stream = urllib.request.urlopen(server["url"] + f"gradio_api/call/ask/{event}", timeout=120).read().decode()
        assert "event: complete" in stream and "whole number from 1 to 200" in stream, stream[:300]
    # a lone surrogate cannot even be encoded by Python clients; raw JSON ("\ud800") carries it
    body = json.dumps({"data": ["\ud800올트먼은 누구를 만났나?", 0]}).encode("ascii")
    req = urllib.request.Request(server["url"] + "gradio_api/call/ask", data=body,
                                 headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(server["url"] + f"gradio_api/call/ask/{event}", timeout=120).read().decode()
    assert "event: complete" in stream and "event: error" not in stream, stream[:300]
    data = json.loads(stream.split("data:", 1)[1].strip())[0]
    assert "error" not in data and data["question"] == "올트먼은 누구를 만났나?"
    # and through the chat's own endpoint, whose reply echoes the message back into the chat
    body = json.dumps({"data": ["\ud800올트먼은 누구를 만났나?", [], None, "", "", 5, "extractive"]}).encode("ascii")
    req = urllib.request.Request(server["url"] + "gradio_api/call/respond", data=body,
                                 headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(server["url"] + f"gradio_api/call/respond/{event}", timeout=120).read().decode()
    assert "event: complete" in stream and "event: error" not in stream, stream[-300:]
