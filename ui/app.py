"""The Gradio chat page: streamed answers with [n] markers, a sources panel, filters, uploads, feedback.

Everything from an article or a user is shown as text: it is HTML-escaped (and markdown-escaped in
the chat) before it reaches the page, so markup or script inside a document is never rendered or run.
"""

import html
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

from rag.errors import ConfigError, QuestionError, RagError
from rag.settings import Settings, mask_credentials
from rag.types import Answer, FileResult, IngestReport

EXAMPLES = [
    "샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?",
    "최태원 회장과 올트먼의 회동은 얼마 동안 진행됐나?",
    "Which UAE AI company did Altman talk to about funding chip production?",
    "How much funding could the Stargate project raise at most?",
]
UPLOAD_SUFFIXES = (".txt", ".html", ".htm")
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_K = 200  # the most passages one question may ask for (RAG_K's own limit)
CSS = """
.source-card {border:1px solid #ccc; border-radius:8px; padding:8px 12px; margin:8px 0;}
.source-card:target {border-color:#2b6cb0; box-shadow:0 0 0 3px #bee3f8;}
.source-card mark {background:#fefcbf; padding:0 2px;}
.abstain {border-left:6px solid #dd6b20; background:#fffaf0; padding:8px 12px; border-radius:4px;}
.meta {color:#555; font-size:0.9em;}
"""
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


_LEAD = re.compile(r"^((?:According to the articles \(quoted in Korean\): )?)\*\*(.+?)\*\* — ")


def chat_markdown(text: str, citations=()) -> str:
    """Answer text for the chat: escaped as plain text; a "[n]" is a link to source card n only when
    it is one of ours (n names one of ``citations`` and it stands outside the quoted article text:
    a "[7]" inside an article is just text); the typed answer our extractive path puts first
    ("**9만319명** — ...") is shown in bold."""
    ours = {c.n for c in citations}
    quoted = [(i, i + len(c.quote)) for c in citations if c.quote for i in _occurrences(text, c.quote)]

    def plain(t: str, offset: int) -> str:
        out, last = [], 0
        for m in _RAW_MARK.finditer(t):
            at = offset + m.start()
            if int(m.group(1)) in ours and not any(s <= at < e for s, e in quoted):
                out.append(_escape(t[last:m.start()]) + f"[[{m.group(1)}]](#src-{m.group(1)})")
                last = m.end()
        return "".join(out) + _escape(t[last:])

    m = _LEAD.match(text)
    if m:
        return f"{plain(m.group(1), 0)}**{plain(m.group(2), m.start(2))}** — {plain(text[m.end():], m.end())}"
    return plain(text, 0)


_RAW_MARK = re.compile(r"\[(\d{1,2})\]")


def _escape(t: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", html.escape(t, quote=False))


def _occurrences(text: str, sub: str):
    i = text.find(sub)
    while i >= 0:
        yield i
        i = text.find(sub, i + 1)


def sources_html(answer: Answer | None) -> str:
    if answer is None:
        return "<p class='meta'>Sources appear here.</p>"
    esc = html.escape
    parts = [f"<p class='meta confidence'>confidence {answer.confidence:.2f} "
             f"(the probability that the quoted answer is right; {answer.mode})</p>"]
    if answer.notice:
        parts.append(f"<p class='meta'>{esc(answer.notice)}</p>")
    if answer.undated_left_out:
        parts.append(f"<p class='meta'>The date filter left out {answer.undated_left_out} stored article(s) "
                     "that state no date.</p>")
    if answer.abstained:
        parts.append(f"<div class='abstain'><b>Not found in the articles.</b> {esc(answer.text)}</div>")
        if answer.retrieved:
            parts.append("<h4>Closest passages</h4>")
        for h in answer.retrieved[:3]:
            c = h.chunk
            meta = " · ".join(esc(x) for x in (c.publisher, c.date, c.article_id) if x)
            parts.append(f"<div class='source-card'><b>{esc(c.title)}</b>{_derived(c)}<div class='meta'>{meta}</div>"
                         f"<p>{esc(c.text)}</p></div>")
        return "\n".join(parts)
    for c in answer.citations:
        rel_s, rel_e = c.start - c.passage_start, c.end - c.passage_start
        passage = c.passage
        if 0 <= rel_s < rel_e <= len(passage) and passage[rel_s:rel_e] == c.quote:
            body = f"{esc(passage[:rel_s])}<mark>{esc(c.quote)}</mark>{esc(passage[rel_e:])}"
        else:
            body = f"<mark>{esc(c.quote)}</mark>"
        meta = " · ".join(esc(x) for x in (c.publisher, c.date, c.article_id) if x)
        parts.append(f"<div class='source-card' id='src-{c.n}'><b>[{c.n}] {esc(c.title)}</b>{_derived(c)}"
                     f"<div class='meta'>{meta}</div><p>{body}</p></div>")
    return "\n".join(parts)


def _derived(item) -> str:
    """A note after a title the page did not state (made from the story's first clause)."""
    return " <span class='meta'>(no headline on the page: title from its first sentence)</span>" \
        if getattr(item, "title_derived", False) else ""


def _message_text(content) -> str:
    """A chat message's plain text (Gradio sends a string, or a list of parts with "text")."""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        content = content.get("text", "")
    text = html.unescape(str(content or ""))
    text = re.sub(r"\[\[(\d{1,2})\]\]\(#src-\d{1,2}\)", r"[\1]", text)  # our citation links
    text = re.sub(r"\\(.)", r"\1", text).replace("**Not found** · ", "")
    return text.strip()


def history_from_chat(chat) -> list[tuple[str, str]]:
    """(question, answer) pairs of a chat as the client sent it (not a session's hidden state)."""
    pairs, question = [], None
    for m in chat or []:
        role = m.get("role") if isinstance(m, dict) else None
        if role == "user":
            question = _message_text(m.get("content"))
        elif role == "assistant" and question:
            pairs.append((question, _message_text(m.get("content"))))
            question = None
    return pairs


def safe_upload_name(name: str) -> str:
    """A file name that cannot leave the upload folder (no dirs, no dots-only, safe characters),
    at most 120 characters with its extension kept."""
    base = Path(str(name).replace("\\", "/")).name
    base = re.sub(r"[^\w.\-가-힣]", "_", base).lstrip(".")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        ext = f".{ext}" if dot and len(ext) <= 10 else ""
        base = (stem if dot else base)[: 120 - len(ext)] + ext
    return base or "upload.txt"


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def plain_text(value) -> str:
    """Text from a form field or API argument: a string without lone surrogates (which no JSON
    response can carry), anything else as empty."""
    return _SURROGATE.sub("", value) if isinstance(value, str) else ""


def passages_asked(k, default: int) -> int:
    """The number of passages a request asked for (0: ``default``, the configured RAG_K), or a
    ``QuestionError``: it must be a whole number from 0 to MAX_K (not a bool, NaN or infinity)."""
    if (isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k != int(k)
            or not 0 <= k <= MAX_K):
        raise QuestionError(f"k={k!r}: the number of passages must be a whole number from 1 to {MAX_K} "
                            "(0 for the configured RAG_K)")
    return int(k) or default


def _fresh_upload_path(folder: Path, name: str, store, is_stored=None) -> Path:
    """Where an upload goes: its own name, unless a stored article or an earlier upload already has
    it (an upload never replaces an article; that is `rag ingest --replace`), then name-2, name-3...
    ``is_stored(state)``: whether a stored article is this upload's very content; such a name is
    returned as it is (the same page uploaded again is that article, not a new one)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = folder / name, 1
    while True:
        state = store.article_state(candidate.stem)
        if state is not None and is_stored is not None and is_stored(state):
            return candidate
        if state is None and not candidate.exists():
            return candidate
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"


def add_uploads(files, settings: Settings, progress=None, lock=None) -> list[tuple[str, str, str]]:
    """Add uploaded pages to the store: (file name, result, detail) per file. ``files`` are
    (uploaded file, its name on the user's machine). Each is copied into the store's upload folder
    under a name of its own and ingested; one whose content a stored article already has under its
    name (or under name-2...) is that article, and is reported unchanged. A rejected upload is not
    kept. Messages name files by their own name, never by a path on the server. ``lock``: held while
    ingesting (the page's, so two uploads never ingest at once)."""
    from ingest.pipeline import ingest_paths, is_stored_copy
    from rag.embed import get_embedder
    from rag.store import get_store

    upload_dir = settings.store_dir / "uploads"
    upload_dir.mkdir(parents=True, exist_ok=True)
    embedder = get_embedder(settings)
    store = get_store(settings, embedder)
    rows, accepted = [], []
    for src, original in files:
        src = Path(src)
        name = safe_upload_name(original or src.name)
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            rows.append((name, "failed", "only .txt / .html files are accepted"))
            continue
        if src.stat().st_size > MAX_UPLOAD_BYTES:
            rows.append((name, "failed", f"larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB"))
            continue
        data = src.read_bytes()
        dest = _fresh_upload_path(upload_dir, name, store,
                                  lambda state: is_stored_copy(data, state, settings, embedder))
        state = store.article_state(dest.stem)
        if state is not None:
            rows.append((name, "unchanged", f"already stored as {dest.stem} ({len(state.chunk_ids)} chunks)"))
            continue
        if dest.name != name:
            rows.append((name, "renamed", f"an article named {Path(name).stem} is already stored; "
                                          f"this one is added as {dest.name}"))
        shutil.copyfile(src, dest)
        accepted.append(dest)
    if accepted:
        try:
            with lock or threading.Lock():
                report = ingest_paths(accepted, settings, progress=progress)
        except RagError as e:  # e.g. another process writes a server store (its write lease)
            report = IngestReport(tuple(FileResult(str(p), p.stem, "failed", message=str(e)) for p in accepted), 0, 0.0)
        for r in report.files:
            rows.append((Path(r.path).name, r.status, _without_server_paths(r.message or f"{r.chunks} chunks",
                                                                            upload_dir, settings.store_dir)))
            if r.status == "failed":  # a rejected upload is not kept
                Path(r.path).unlink(missing_ok=True)
    return rows


def _without_server_paths(message: str, upload_dir: Path, store_dir: Path) -> str:
    """A message for the page: files in the upload folder by their name, the store by a word."""
    for folder in dict.fromkeys((upload_dir.resolve(), upload_dir.absolute(), upload_dir)):
        message = message.replace(f"{folder}{os.sep}", "")
    for folder in dict.fromkeys((store_dir.resolve(), store_dir.absolute(), store_dir)):
        message = message.replace(str(folder), "the store")
    return mask_credentials(message)


class FeedbackLog:
    """👍/👎 on answers, appended as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, liked: bool, answer: Answer) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "liked": liked, "question": answer.question,
                  "answer": answer.text, "abstained": answer.abstained,
                  "citations": [c.to_dict() for c in answer.citations]}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_app(settings: Settings):
    """The Gradio Blocks app for ``settings`` (the store is opened lazily, on first use)."""
    import gradio as gr

    from rag.embed import get_embedder
    from rag.qa import ask, ask_stream
    from rag.store import get_store

    # each store keeps its own uploads and feedback (stores sharing a parent folder share nothing)
    feedback = FeedbackLog(settings.store_dir / "feedback.jsonl")
    ingest_lock = threading.Lock()
    mode_note = (f"LLM: `{settings.llm_model}` at {mask_credentials(settings.llm_base_url)}" if settings.llm_configured
                 else "extractive (offline; no LLM configured)")

    def publishers() -> list[str]:
        try:
            arts = get_store(settings, get_embedder(settings)).articles()
        except RagError:
            return []
        return sorted({a.publisher for a in arts.values() if a.publisher})

    def respond(message, chat, answers, pubs, since, until, k, mode):
        chat = list(chat or [])
        answers = list(answers or [])
        text = plain_text(message)
        chat.append({"role": "user", "content": chat_markdown(text[:500] + ("…" if len(text) > 500 else ""))})
        yield "", chat, answers, gr.update()  # the question moves from the box into the chat at once
        history = history_from_chat(chat[:-1])[-3:]  # the conversation the request carries
        filters = {"publisher": pubs or None, "since": (since or "").strip() or None, "until": (until or "").strip() or None}
        run_settings = replace(settings, answer_mode=mode if mode != "llm" or settings.llm_configured else "extractive")
        chat.append({"role": "assistant", "content": ""})
        try:
            shown = ""
            for piece in ask_stream(text, k=passages_asked(k, settings.k), filters={k_: v for k_, v in filters.items() if v},
                                    history=history, settings=run_settings):
                if isinstance(piece, Answer):
                    answer = piece
                    break
                shown += piece
                chat[-1] = {"role": "assistant", "content": chat_markdown(shown)}
                yield "", chat, answers, gr.update()
        except RagError as e:
            said = mask_credentials(str(e))
            chat[-1] = {"role": "assistant", "content": "**Error** · " + chat_markdown(said)}
            answers.append(None)
            yield "", chat, answers, f"<div class='abstain'>{html.escape(said)}</div>"
            return
        prefix = "**Not found** · " if answer.abstained else ""
        chat[-1] = {"role": "assistant", "content": prefix + chat_markdown(answer.text, answer.citations)}
        answers.append(answer)
        yield "", chat, answers, sources_html(answer)

    def on_like(data: gr.LikeData, answers):
        assistant_turn = data.index // 2 if isinstance(data.index, int) else data.index[0] // 2
        answers = list(answers or [])
        if 0 <= assistant_turn < len(answers) and answers[assistant_turn] is not None:
            feedback.add(bool(data.liked), answers[assistant_turn])
            return "Thanks: feedback saved."
        return "Nothing to rate there."

    def add_files(files, progress=gr.Progress()):
        if not files:
            return "Choose .txt or .html files first.", gr.update()
        rows = add_uploads([(getattr(f, "name", f), getattr(f, "orig_name", None)) for f in files], settings,
                           progress=lambda p, n, t: progress(n / max(t, 1), desc=Path(p).name), lock=ingest_lock)
        table = "| file | result | detail |\n|---|---|---|\n" + "\n".join(
            f"| {html.escape(name)} | {status} | {html.escape(detail)} |" for name, status, detail in rows)
        return table, gr.update(choices=publishers())

    with gr.Blocks(title="Korean news Q&A") as demo:
        gr.Markdown("# 뉴스 기사 Q&A · Korean news Q&A\nAnswers quote the exact article sentence they rest on; "
                    f"when the articles don't hold the answer, it says so. Answer mode: **{mode_note}**.")
        answers_state = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=460, allow_tags=False, sanitize_html=True, elem_id="chat")
                msg = gr.Textbox(placeholder="질문을 입력하세요 / Ask a question", show_label=False, lines=1,
                                 max_lines=4, elem_id="question")
                gr.Examples(EXAMPLES, inputs=msg)
                feedback_note = gr.Markdown("")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="sources")
        with gr.Accordion("Filters and settings", open=False):
            with gr.Row():
                pubs = gr.Dropdown(choices=publishers(), multiselect=True, label="Publisher")
                since = gr.Textbox(label="Since (YYYY-MM-DD)")
                until = gr.Textbox(label="Until (YYYY-MM-DD)")
            with gr.Row():
                k = gr.Slider(1, 20, value=settings.k, step=1, label="Passages to retrieve")
                modes = ["extractive", "llm"] if settings.llm_configured else ["extractive"]
                mode = gr.Radio(modes, value="llm" if settings.use_llm else "extractive", label="Answer mode")
        with gr.Accordion("Add articles", open=False):
            files = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES), label="Article pages (.txt / .html)")
            add = gr.Button("Add to the store")
            ingest_result = gr.Markdown("", elem_id="ingest-result")

        def api_ask(question: str, k: int = 0) -> dict:
            """One question in, the Answer as JSON out (errors as {"error": message}); k=0: RAG_K."""
            try:
                return ask(plain_text(question), k=passages_asked(k, settings.k), settings=settings).to_dict()
            except RagError as e:
                return {"error": mask_credentials(str(e))}

        gr.api(api_ask, api_name="ask")
        # The box is locked from Enter until the answer is complete, as in Gradio's ChatInterface: a
        # submit event drops any Enter pressed while it is pending (trigger_mode "once"), and the
        # answer's output clears the box, so a question typed meanwhile would be lost without a word.
        # The lock is set in the browser, so it does not wait for a round trip to the server; it is
        # lifted after a failed answer too (.then runs either way).
        (msg.submit(None, None, [msg], js="() => [{__type__: 'update', interactive: false}]", queue=False,
                    api_visibility="private")
            .then(respond, [msg, chatbot, answers_state, pubs, since, until, k, mode],
                  [msg, chatbot, answers_state, sources])
            .then(lambda: gr.update(interactive=True), None, [msg], queue=False, api_visibility="private"))
        chatbot.like(on_like, [answers_state], [feedback_note])
        # uploads run one at a time in their own queue, so a long ingest never holds the workers
        # that answer questions
        add.click(add_files, [files], [ingest_result, pubs], concurrency_limit=1, concurrency_id="uploads")
    return demo


class LoginThrottle:
    """Back-off per client address for the page's login: after FREE_FAILURES wrong passwords, each
    further try must wait twice as long as the last (up to MAX_WAIT_S); a right one clears the count.
    ASGI middleware on the Gradio app, whose own login has no rate limit."""

    FREE_FAILURES = 3
    MAX_WAIT_S = 300.0

    def __init__(self, app) -> None:
        self.app = app
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures, earliest next try)
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        address = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        with self._lock:
            failures, not_before = self._failures.get(address, (0, 0.0))
        if now < not_before:
            wait = int(not_before - now) + 1
            body = json.dumps({"detail": f"too many failed logins from {address}; try again in {wait} s"}).encode()
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", str(wait).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        with self._lock:
            if status.get("code") == 200:
                self._failures.pop(address, None)
            elif status.get("code") in (400, 401):
                failures += 1
                wait = 0.0 if failures < self.FREE_FAILURES else min(2.0 ** (failures - self.FREE_FAILURES), self.MAX_WAIT_S)
                self._failures[address] = (failures, time.monotonic() + wait)


def check_exposure(host: str, user: str | None, password: str | None) -> tuple[str, str] | None:
    """Loopback needs nothing; any other address needs credentials (RAG_UI_USER / RAG_UI_PASSWORD)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ConfigError(f"--host {host!r} is not an IP address or 'localhost'") from None
    if loopback:
        return (user, password) if user and password else None
    if not (user and password):
        raise ConfigError(f"serving on {host} (not loopback) requires RAG_UI_USER and RAG_UI_PASSWORD to be set")
    return (user, password)


def check_port(host: str, port: int) -> None:
    """Refuse, before anything loads, a port that is not one or that another server holds."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"--port {port!r}: not a TCP port; use a number from 1 to 65535")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            s.bind((host, port))
    except OSError as e:
        raise ConfigError(f"--port {port}: cannot serve on {host}:{port} ({e.strerror or e}); another server may "
                          "be using it: stop it, or choose another --port") from None


def trusted_proxies(value: str | None) -> str:
    """``--trusted-proxy`` as uvicorn's FORWARDED_ALLOW_IPS: the addresses or networks whose
    X-Forwarded-For header names the client; none by default (the peer address is the client)."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"--trusted-proxy {item!r}: not an IP address or network (e.g. 127.0.0.1 or "
                              "10.0.0.0/8)") from None
    return ",".join(items)


def launch(settings: Settings, *, host: str = "127.0.0.1", port: int = 7860, user: str | None = None,
           password: str | None = None, announce=None, proxies: str | None = None) -> None:
    """Serve the page (blocks). Loopback by default; never a public share link. ``announce(line)`` is
    told where it serves once the server listens, not before. ``proxies``: the reverse proxies in
    front of the page (``--trusted-proxy``), whose X-Forwarded-For alone is believed; the login
    back-off counts failures per client address."""
    auth = check_exposure(host, user, password)
    check_port(host, port)
    # Gradio builds uvicorn's configuration itself, and uvicorn believes X-Forwarded-For from
    # loopback unless told otherwise: a client rotating the header would get a fresh login back-off
    # on every try. FORWARDED_ALLOW_IPS is the one way to tell it, so it is set here, before it starts.
    os.environ["FORWARDED_ALLOW_IPS"] = trusted_proxies(proxies)
    from rag.embed import get_embedder
    from rag.qa import warm_up
    from rag.store import get_store

    warm_up(settings)  # load the heavy things before the first question, not during it

    # the page can add articles, so it owns the embedded store for writing while it runs
    get_store(settings, get_embedder(settings)).acquire_writer_lock()
    demo = build_app(settings)
    from starlette.middleware import Middleware

    try:
        demo.queue(default_concurrency_limit=4).launch(
            server_name=host, server_port=port, share=False, auth=auth, css=CSS, ssr_mode=False, quiet=True,
            app_kwargs={"middleware": [Middleware(LoginThrottle)]},
            footer_links=[], max_file_size=MAX_UPLOAD_BYTES, prevent_thread_lock=True)
    except OSError:  # taken by another server while the page loaded
        raise ConfigError(f"--port {port}: cannot serve on {host}:{port} (another server took it while the page "
                          "loaded); choose another --port") from None
    if announce:
        where = mask_credentials(str(settings.chroma_url or settings.store_dir))
        announce(f"serving on http://{host}:{port} (store: {where})")
    demo.block_thread()
