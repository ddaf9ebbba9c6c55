"""Features of a page's blocks for the cleaning classifier: one function per pass, every value a
property any Korean news page has (shape, grammar, symbols, position, markup, neighbours), never a
particular string of a particular site.

Pass 1 looks at each block alone (and at its place in the page); pass 2 adds what pass 1 thought of
its neighbours and how far the block shares the vocabulary of what pass 1 took for the article, which
is what tells an embedded unrelated story or a teaser list from the story itself.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

import numpy as np

from rag.korean import parse_many, split_analyzed
from rag.lexicon import DATE_PATTERN, JOURNALIST_TITLES, PUBLISHED_WORDS

from .blocks import Page

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_JAMO = re.compile(r"[\u3131-\u318e]{2,}")  # ㅋㅋ, ㅠㅠ
_EMOJI = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u2B06\u2934\u2935]")
_URL = re.compile(r"https?://|www\.|\.(?:com|co\.kr|kr|net|org)\b", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE = re.compile(r"\b0\d{1,2}[-.)\s]\d{3,4}[-.\s]\d{4}\b|\b1\d{3}-\d{4}\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
_KEY_VALUE = re.compile(r"^[^:：|]{1,14}\s*[:：]\s*\S")
_HASHTAG = re.compile(r"(?:^|\s)#[^\s#]+")
_COPYRIGHT = re.compile(r"ⓒ|©|\(c\)|copyright|저작권", re.I)
_BRACKET_TAG = re.compile(r"^[\[【<(〔][^\]】>)〕]{1,12}[\]】>)〕]")
_QUOTES = "\"'“”‘’「」『』"
_PUBLISHED = re.compile("|".join(re.escape(w) for w in PUBLISHED_WORDS), re.I)
_JOURNALIST = re.compile(r"[가-힣]{2,4}\s?(?:" + "|".join(JOURNALIST_TITLES) + r")(?![가-힣])")
_NOUN_TAGS = ("NNG", "NNP", "SL", "SN", "SH")

PASS1 = (
    "log_len", "log_sentences", "hangul", "digits", "latin", "punct", "spaces",
    "ends_final", "ends_da", "ends_nida", "ends_yo", "ends_punct", "ends_quote", "ends_ellipsis",
    "ellipsis_inside", "quotes_inside", "particles", "verbs", "nouns", "proper_nouns",
    "key_value", "pipes", "hashtag", "url", "email", "phone", "date", "time", "published_word", "journalist",
    "copyright", "bracket_tag", "emoji", "jamo", "bullet", "position", "first_block", "last_block",
    "repeated", "final_sentences",
    "html", "h_p", "h_li", "h_heading_major", "h_heading_minor", "h_td", "h_figcaption", "h_control", "h_other",
    "h_chrome", "h_article_tag", "h_layout_class", "h_article_class", "h_list", "h_figure", "h_table",
    "h_link_share", "h_main", "h_meta_title",
)
NEIGHBOUR = ("nb_prev", "nb_next", "nb_prev2", "nb_next2", "nb_window", "nb_inside_core", "nb_before_core",
             "nb_after_core", "core_overlap", "core_proper_overlap", "title_overlap", "title_prob_prev",
             "core_similarity_z")
# Blocks whose pass-1 article probability reaches this are embedded for the similarity feature (the
# rest are page furniture by any measure, and embedding them would cost time for nothing).
EMBED_CANDIDATE = 0.1


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).casefold()


def _share(pattern: re.Pattern, text: str) -> float:
    return len(pattern.findall(text)) / max(1, len(text))


MAX_LENGTH = 80


def _has_final(morphs) -> bool:
    content = [m for m in morphs if not m.tag.startswith("S")]
    return bool(content) and content[-1].tag == "EF"


class _Analysis:
    """Kiwi's view of one block: sentences, morphemes, content nouns."""

    @staticmethod
    def sample(text: str) -> str:
        """What is analysed: very long blocks in part, as the shape of their start and end is what counts."""
        return text if len(text) <= 3000 else text[:1500] + "\n" + text[-1500:]

    def __init__(self, text: str) -> None:
        analysed = split_analyzed(self.sample(text))
        self.sentences = len(analysed)
        morphs = [m for _, ms in analysed for m in ms]
        self.morphs = morphs
        tags = Counter(m.tag[:2] if m.tag[0] in "JEV" else m.tag for m in morphs)
        n = max(1, len(morphs))
        self.particles = sum(v for t, v in tags.items() if t.startswith("J")) / n
        self.verbs = sum(v for t, v in tags.items() if t in ("VV", "VA", "VX", "VC")) / n
        self.nouns = sum(v for t, v in tags.items() if t in ("NNG", "NNP", "NNB", "NR", "NP")) / n
        self.proper = tags.get("NNP", 0) / n
        last = analysed[-1][1] if analysed else ()
        self.final_sentences = sum(_has_final(ms) for _, ms in analysed) / max(1, len(analysed))
        content = [m for m in last if not m.tag.startswith("S")]
        self.final = bool(content) and content[-1].tag == "EF"
        self.final_form = content[-1].form if self.final else ""
        self.noun_set = {m.form for m in morphs if m.tag in _NOUN_TAGS and len(m.form) > 1}
        self.proper_set = {m.form for m in morphs if m.tag in ("NNP", "SL", "SH") and len(m.form) > 1}


def pass1_features(page: Page) -> tuple[np.ndarray, list[_Analysis]]:
    """Pass-1 features of every block, and the Kiwi analyses pass 2 reuses."""
    blocks = page.blocks
    n = len(blocks)
    keys = Counter(_key(b.text) for b in blocks)
    meta_title = _key(page.meta.title or "")
    parse_many(_Analysis.sample(b.text) for b in blocks)  # the page's blocks in one multi-threaded Kiwi call
    analyses = [_Analysis(b.text) for b in blocks]
    rows = []
    for i, (b, a) in enumerate(zip(blocks, analyses)):
        t = b.text
        length = max(1, len(t))
        pos = i / (n - 1) if n > 1 else 0.0
        h = b.html
        tag = h.tag if h else ""
        k = _key(t)
        row = [
            # length counts up to a sentence's worth: beyond that, grammar decides, not size
            math.log1p(min(len(t), MAX_LENGTH)), math.log1p(a.sentences), _share(_HANGUL, t), sum(c.isdigit() for c in t) / length,
            sum("a" <= c.lower() <= "z" for c in t) / length,
            sum(not c.isalnum() and not c.isspace() for c in t) / length, t.count(" ") / length,
            float(a.final), float(a.final_form.endswith("다") and not a.final_form.endswith("니다")),
            float(a.final_form.endswith("니다") or a.final_form.endswith("니까")), float(a.final_form.endswith("요")),
            float(t[-1] in ".?!。"), float(t[-1] in _QUOTES), float(t.endswith(("…", "..."))),
            float("…" in t[:-1] or "..." in t[:-3]), float(any(q in t for q in _QUOTES)),
            a.particles, a.verbs, a.nouns, a.proper,
            float(bool(_KEY_VALUE.match(t))), math.log1p(t.count("|") + t.count("│")), float(bool(_HASHTAG.search(t))),
            float(bool(_URL.search(t))), float(bool(_EMAIL.search(t))), float(bool(_PHONE.search(t))),
            float(bool(DATE_PATTERN.search(t))), float(bool(_TIME.search(t))), float(bool(_PUBLISHED.search(t[:40]))),
            float(bool(_JOURNALIST.search(t)) and len(t) < 80), float(bool(_COPYRIGHT.search(t))),
            float(bool(_BRACKET_TAG.match(t))), float(bool(_EMOJI.search(t))), float(bool(_JAMO.search(t))),
            float(b.bullet), pos, float(i == 0), float(i == n - 1),
            float(keys[k] > 1 and len(k) > 3), a.final_sentences,
            float(h is not None), float(tag == "p"), float(tag == "li"), float(h is not None and 1 <= h.heading <= 3),
            float(h is not None and h.heading >= 4), float(tag in ("td", "th")), float(tag == "figcaption"),
            float(tag in ("button", "a", "label", "option")),
            float(h is not None and tag not in ("p", "li", "td", "th", "figcaption", "button", "a", "label", "option")
                  and not h.heading),
            float(bool(h and h.in_chrome)), float(bool(h and h.in_article)), float(bool(h and h.layout_class)),
            float(bool(h and h.article_class)), float(bool(h and h.in_list)), float(bool(h and h.in_figure)),
            float(bool(h and h.in_table)), h.link_share if h else 0.0, float(bool(h and h.in_main)),
            float(bool(meta_title) and len(k) >= 6 and (k in meta_title or meta_title in k)),
        ]
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(n, len(PASS1)), analyses


def block_vectors(page: Page, p_article: np.ndarray, embed) -> dict[int, np.ndarray]:
    """Vectors of the blocks pass 1 finds article-like: the normalised mean of their sentences'
    vectors (each sentence embedded once: ingest reuses these vectors for the stored sentences)."""
    from rag.korean import split_sentences

    todo = [(i, [s.text for s in split_sentences(page.blocks[i].text)] or [page.blocks[i].text])
            for i in np.flatnonzero(p_article >= EMBED_CANDIDATE)]
    texts = [t for _, sents in todo for t in sents]
    if not texts:
        return {}
    vecs = embed(texts)
    out, k = {}, 0
    for i, sents in todo:
        v = vecs[k:k + len(sents)].mean(axis=0)
        k += len(sents)
        out[int(i)] = v / (np.linalg.norm(v) or 1.0)
    return out


def _similarity_z(p_article: np.ndarray, vectors: dict[int, np.ndarray]) -> np.ndarray:
    """How far each embedded block sits from the rest of the article's core, as a robust z-score within
    the page (so the scale of a particular embedder does not matter): the core is every embedded block
    weighted by its article probability, without the block itself and its direct neighbours."""
    z = np.zeros(len(p_article))
    idx = sorted(vectors)
    if len(idx) < 4:
        return z
    V = np.stack([vectors[i] for i in idx])
    w = p_article[idx]
    sims = []
    for a, i in enumerate(idx):
        mask = np.array([abs(j - i) > 1 for j in idx])
        if not mask.any():
            sims.append(0.0)
            continue
        c = (V[mask] * w[mask, None]).sum(axis=0)
        sims.append(float(V[a] @ c / (np.linalg.norm(c) or 1.0)))
    sims = np.array(sims)
    med = float(np.median(sims))
    spread = max(1.4826 * float(np.median(np.abs(sims - med))), 0.005)
    z[idx] = np.clip((sims - med) / spread, -10, 10)
    return z


def neighbour_features(p_article: np.ndarray, p_title: np.ndarray, analyses: list[_Analysis],
                       vectors: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Pass-2 features from pass 1's probabilities: the neighbours' article probability, where the
    block sits relative to the article's core, its share of the core's and title's vocabulary, and
    (with ``vectors``) its embedding similarity to the core."""
    n = len(p_article)
    if n == 0:
        return np.zeros((0, len(NEIGHBOUR)))
    core = np.flatnonzero(p_article >= 0.5)
    first, last = (int(core[0]), int(core[-1])) if len(core) else (n, -1)
    t_idx = int(np.argmax(p_title)) if n else -1
    title_nouns = analyses[t_idx].noun_set if t_idx >= 0 and p_title[t_idx] >= 0.3 else set()
    weights: Counter = Counter()
    proper: Counter = Counter()
    for i in core:
        for w in analyses[i].noun_set:
            weights[w] += 1
        for w in analyses[i].proper_set:
            proper[w] += 1
    sim_z = _similarity_z(p_article, vectors or {})
    rows = []
    pad = np.concatenate([[0.0, 0.0], p_article, [0.0, 0.0]])
    for i, a in enumerate(analyses):
        own = a.noun_set
        # the core's vocabulary without this block and its direct neighbours (an embedded story's
        # headline sits next to it, and a block trivially shares its own words)
        near = Counter()
        for j in (i - 1, i, i + 1):
            if 0 <= j < n and p_article[j] >= 0.5:
                near.update(analyses[j].noun_set)
        overlap = sum(1 for w in own if weights[w] - near[w] > 0) / len(own) if own else 0.0
        near_p = Counter()
        for j in (i - 1, i, i + 1):
            if 0 <= j < n and p_article[j] >= 0.5:
                near_p.update(analyses[j].proper_set)
        props = a.proper_set
        p_overlap = sum(1 for w in props if proper[w] - near_p[w] > 0) / len(props) if props else 0.5
        rows.append([
            pad[i + 1], pad[i + 3], pad[i], pad[i + 4], float(pad[i:i + 5].mean()),
            float(first <= i <= last), float(i < first), float(i > last), overlap, p_overlap,
            len(own & title_nouns) / len(own) if own else 0.0, float(p_title[i - 1]) if i > 0 else 0.0,
            sim_z[i],
        ])
    return np.asarray(rows, dtype=np.float64)
