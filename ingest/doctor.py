"""``rag doctor``: check that the store is consistent, and repair it.

Checks: every article's chunks come from one version of its file and are all there (none missing,
none left over from an older version); every chunk holds one vector per sentence and its sentences
cover the article's count; every chunk record's offsets match its text; the keyword index holds
exactly the chunks Chroma holds; no collection is left over from an interrupted rebuild (or from the
store a rebuild replaced). An empty store is told apart from a healthy one (``empty``). Repair
re-ingests an inconsistent article from its source file when the file still exists, and otherwise
removes its records; it deletes left-over collections, and the keyword index is rebuilt.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rag.embed import get_embedder
from rag.settings import Settings
from rag.records import StoredRecord
from rag.store import get_store


@dataclass
class DoctorReport:
    articles: int = 0
    chunks: int = 0
    sentences: int = 0
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def empty(self) -> bool:
        """The store holds no article (a new store, or one whose contents were lost)."""
        return self.articles == 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "empty": self.empty, "articles": self.articles, "chunks": self.chunks,
                "sentences": self.sentences, "problems": self.problems, "repairs": self.repairs,
                "notes": self.notes}


def check_store(settings: Settings, repair: bool = False) -> DoctorReport:
    """Check (and with ``repair``, fix) the store at ``settings``; returns what was found and done."""
    store = get_store(settings, get_embedder(settings))
    chunks = store.all_records()
    report = DoctorReport(chunks=len(chunks))
    by_article: dict[str, list[StoredRecord]] = defaultdict(list)
    for rec in chunks:
        by_article[rec.article_id].append(rec)
    report.articles = len(by_article)
    built_with = store.built_with()
    if built_with and built_with != store.embedder_name:
        report.notes.append(f"built with embedder {built_with!r}, read with {store.embedder_name!r}: one model's "
                            "vectors (multilingual-e5-small; cosine 0.9999 measured), so the two mix in one store")

    broken: dict[str, str | None] = {}
    for article_id, recs in by_article.items():
        hashes = {r.raw_hash for r in recs}
        expected = {r.n_chunks for r in recs}
        sentences = {span for r in recs for span in r.sentence_spans}
        report.sentences += len(sentences)
        n_sent = recs[0].n_sentences or 0
        why = None
        if len(hashes) > 1:
            why = f"chunks from {len(hashes)} versions of the file (an interrupted update)"
        elif expected != {len(recs)}:
            why = f"{len(recs)} chunks stored, {sorted(expected)} expected"
        elif len(sentences) != n_sent:
            why = f"{len(sentences)} sentences stored, {n_sent} expected"
        elif any(r.vector_bytes != 2 * store.dim * len(r.sentence_spans) for r in recs):
            bad = sum(r.vector_bytes != 2 * store.dim * len(r.sentence_spans) for r in recs)
            why = f"{bad} of its {len(recs)} chunks do not hold one vector per sentence"
        elif any(r.end - r.start != len(r.text) for r in recs):
            why = "chunk offsets do not match chunk text"
        if why:
            report.problems.append(f"article {article_id}: {why}")
            broken[article_id] = recs[0].source_path

    index = store.keyword_index()
    if set(index.ids) != {r.record_id for r in chunks}:
        report.problems.append("the keyword index does not hold exactly the stored chunks")
    report.problems += [f"collection {name} ({n} records) is not read: left by an interrupted rebuild (or one "
                        "running now), or by the store a rebuild replaced" for name, n in store.leftovers().items()]

    if repair and report.problems:
        store.begin_writes("rag doctor --repair")  # not while another run writes
        try:
            _repair(settings, store, broken, report)
        finally:
            store.end_writes()
    return report


def _repair(settings, store, broken: dict[str, str | None], report: DoctorReport) -> None:
    from .pipeline import ingest_paths

    for name in store.drop_leftovers():
        report.repairs.append(f"collection {name}: deleted")
    for article_id, source in broken.items():
        store.delete_article(article_id)
        if source and Path(source).exists():
            result = ingest_paths([source], settings)
            status = result.files[0].status if result.files else "failed"
            report.repairs.append(f"article {article_id}: re-ingested from {source} ({status})")
        else:
            report.repairs.append(f"article {article_id}: removed (source file {source or '?'} is gone)")
    store.keyword_index()  # rebuilt for the current generation
    report.repairs.append("keyword index rebuilt from the store")
