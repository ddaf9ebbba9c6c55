"""Follow-up questions: which questions lean on the conversation, and how they are made standalone
without the LLM (with one, ``rag.llm.rewrite_followup`` does it).

A question is a follow-up only when it says so: it starts with a continuation word ("그럼", "And",
"what about"), points back with a pronoun or demonstrative ("그 사람", "he"), or is too short to
stand on its own: a fragment that does not say what it asks about ("무역수지는?", "언제 방한했나?",
"How much?"). A short question that does ("올트먼은 언제 방한했나?": a predicate and its topic;
"What is Stargate?": a question word and a name) is complete, like any longer one, and is left
exactly as it is.
A follow-up borrows the previous question's names, numbers and dates (its context), never its ask,
and, when it points back at "him", "그 사람" and the like, the previous answer's typed span (who or
what was answered).
"""

from __future__ import annotations

import re

from .korean import analyze, has_hangul
from .lexicon import (ANAPHORS_EN, ANAPHORS_KO, FOLLOWUP_START_EN, FOLLOWUP_START_KO, QUESTION_OPENERS_EN,
                      QUESTION_WORDS_KO, TOPIC_PARTICLES_KO)

_CONTENT = ("NNG", "NNP", "SL", "SN", "VV", "VA", "XR", "SH")
_PREDICATE = ("VV", "VA", "VX", "VCP", "VCN", "XSV", "XSA")
_NOUN = ("NNG", "NNP", "SL", "SH", "SN")
_LEAD = re.compile(r"\*\*(.+?)\*\* — ")
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d,.]*")
_MONTHS = frozenset("january february march april may june july august september october november december".split())
_EN_STOP = frozenset("""a an the of to in on for and or is are was were be did do does what which who whom whose when
where why how many much with at by from that this it its as about into than has have had will would can could should
s""".split())


def _starts(text: str, words) -> bool:
    t = text.strip().lower()
    return any(t == w or t.startswith(w + " ") or t.startswith(w + ",") for w in words)


def is_followup(question: str) -> bool:
    """Whether ``question`` leans on the conversation (see the module docstring)."""
    if has_hangul(question):
        if _starts(question, FOLLOWUP_START_KO):
            return True
        words = question.split()
        if any(w in ANAPHORS_KO or any(w == a.split()[0] and " ".join(words[i:i + 2]) == a for a in ANAPHORS_KO)
               for i, w in enumerate(words)):
            return True
        morphs = analyze(question)
        content = [m for m in morphs if m.tag in _CONTENT]
        return len(content) <= 2 and not _states_its_topic_ko(morphs)
    if _starts(question, FOLLOWUP_START_EN):
        return True
    found = _EN_WORD.findall(question)
    words = [w.lower() for w in found]
    if any(w in ANAPHORS_EN for w in words):
        return True
    return len([w for w in words if w not in _EN_STOP]) <= 2 and not _names_its_topic_en(found)


def _states_its_topic_ko(morphs) -> bool:
    """A predicate, and a noun marked as its topic or subject that is not a question word."""
    topic = any(m.tag in _NOUN and m.form not in QUESTION_WORDS_KO and nxt.tag in ("JX", "JKS")
                and nxt.form in TOPIC_PARTICLES_KO for m, nxt in zip(morphs, morphs[1:]))
    return topic and any(m.tag in _PREDICATE for m in morphs)


def _names_its_topic_en(words: list[str]) -> bool:
    """Opened by a question word or auxiliary, with a name after it: a capitalised word, an acronym
    or a number (a lowercase word alone, "What was revenue?", may be about anything said before)."""
    return bool(words) and words[0].lower() in QUESTION_OPENERS_EN and any(
        (w[0].isupper() or w[0].isdigit()) and w.lower() not in _EN_STOP for w in words[1:])


def _numbers(morphs) -> list[tuple[str, str]]:
    out = []
    for i, m in enumerate(morphs):
        if m.tag == "SN":
            unit = morphs[i + 1].form if i + 1 < len(morphs) and morphs[i + 1].tag in ("NNB", "NNG") else ""
            out.append((m.form, unit))
    return out


def points_back(question: str) -> bool:
    """Whether a follow-up refers to what was answered ("그 사람", "he", "there")."""
    if has_hangul(question):
        return any(a in question for a in ANAPHORS_KO if len(a) > 1) or bool(re.search(r"(^|\s)그\s", question))
    return any(w.lower() in ANAPHORS_EN for w in _EN_WORD.findall(question))


def carry_over(question: str, history: list[tuple[str, str]]) -> str:
    """The follow-up with the previous turn's context in brackets; a complete question as it is."""
    if not history or not is_followup(question):
        return question
    previous_q, previous_a = history[-1]
    carried = _context(previous_q, question)
    lead = _LEAD.search(previous_a or "")
    if lead and points_back(question):
        carried.insert(0, lead.group(1).split(" (")[0])  # "**배성훈** — ..." answered "who"
    carried = [c for c in dict.fromkeys(carried) if c and c.lower() not in question.lower()]
    return f"{question} ({' '.join(carried)})" if carried else question


def _context(previous: str, question: str) -> list[str]:
    """The previous question's names, numbers and dates (with their units), not its ask; a number
    whose unit the follow-up states itself ("5월" after "4월") is replaced, not carried."""
    if has_hangul(previous):
        own_units = {u for _, u in _numbers(analyze(question))}
        out, morphs = [], analyze(previous)
        for m in morphs:
            if m.tag in ("NNP", "SL", "SH"):
                out.append(m.form)
        out += [n + u for n, u in _numbers(morphs) if not u or u not in own_units]
        return out
    words = _EN_WORD.findall(previous)
    replaced = _MONTHS if any(w.lower() in _MONTHS for w in _EN_WORD.findall(question)) else set()
    return [w for i, w in enumerate(words) if ((w[0].isupper() and i > 0 and w.lower() not in _EN_STOP) or w[0].isdigit())
            and w.lower() not in replaced]
