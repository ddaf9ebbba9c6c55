"""The records of an evaluation corpus's files, one pydantic model each: a gold question
(``gold.jsonl``) and a page's cleaning labels (``labels.jsonl``). ``read_records`` validates a whole
JSON-lines file before any work starts (no ingest runs on a file that would fail later), naming the
line of every bad record and what is wrong in it."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal, Optional, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from rag.errors import RagError, validation_problems

SPLITS = ("dev", "test")
# why a gold question has no answer in the pages (the corpus's kinds, and "impossible" for SQuAD 2.0's)
UNANSWERABLE = ("not_stated", "furniture", "outside", "adversarial", "impossible")
BLOCK_ROLES = ("title", "deck", "byline", "article", "caption", "furniture")
MAX_ERRORS = 20  # problems listed for one file; the rest are counted

Text = Annotated[str, StringConstraints(min_length=1)]


def _matches_something(text: str) -> str:
    # answers and evidence are compared as substrings of normalised text: an empty one is in every text
    if not re.sub(r"[\s,]+", "", unicodedata.normalize("NFKC", text)):
        raise ValueError("an empty answer or evidence string would match any text")
    return text


Phrase = Annotated[str, AfterValidator(_matches_something)]


class Record(BaseModel):
    """Strict: a string is not a list of its characters, a number is not an id, and an unknown key
    (a misspelt ``answer_parts``) is an error rather than silently ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


class GoldItem(Record):
    """One gold question, as ``rag eval`` scores it."""

    id: Text
    question: Text
    answers: list[Phrase]
    sources: list[Text]  # page ids (file stems) that hold the answer
    evidence: list[Phrase]  # text each of which occurs in a source page
    answerable: bool
    answer_parts: Optional[list[list[Phrase]]] = None
    qtype: Optional[Text] = None
    kind: Optional[Text] = None
    lang: Optional[Literal["ko", "en"]] = None
    split: Optional[Literal[SPLITS]] = None
    unanswerable: Optional[Literal[UNANSWERABLE]] = None
    adversarial: Optional[Text] = None
    plausible: Optional[Text] = None

    @model_validator(mode="after")
    def _consistent(self) -> "GoldItem":
        if self.answerable and self.unanswerable is not None:
            raise ValueError(f"answerable is true but unanswerable is {self.unanswerable!r}")
        if any(not part for part in self.answer_parts or []):
            raise ValueError("an answer part lists at least one alias")
        return self


class LabelBlock(Record):
    role: Literal[BLOCK_ROLES]
    text: str


class LabelRecord(Record):
    """One page's labels: its split and section, true metadata, and every block with its role."""

    id: Text  # the page's file stem
    page: Optional[Text] = None
    split: Optional[Literal[SPLITS]] = None
    section: Optional[Text] = None
    layouts: list[Text] = []
    format: Optional[Text] = None
    encoding: Optional[Text] = None
    title: Optional[str] = None
    publisher: Optional[str] = None
    reporter: Optional[str] = None
    date: Optional[Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]] = None
    blocks: list[LabelBlock] = []


R = TypeVar("R", bound=Record)


def read_records(path: Path, model: type[R], what: str) -> tuple[list[tuple[int, R]], list[str]]:
    """Every record of a JSON-lines file as ``(line number, record)``, and a problem per bad line
    (``line N: ...``). A file that cannot be read or is not UTF-8 is a ``RagError`` at once."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RagError(f"{path}: cannot read the {what} file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RagError(f"{path}: line {line} is not UTF-8 (byte {data[e.start]:#04x}); a {what} file is UTF-8 "
                       "JSON lines") from None
    records, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:
            problems.append(f"line {n}: not JSON ({e})" if isinstance(e, ValueError) else f"line {n}: nested too deeply")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: a {what} record is a JSON object, not {json.dumps(obj)[:30]}")
            continue
        try:
            records.append((n, model.model_validate(obj)))
        except ValidationError as e:
            named = f" ({obj['id']})" if isinstance(obj.get("id"), str) else ""
            keys = ""
            if any(err["type"] == "extra_forbidden" for err in e.errors()):
                keys = f"; a {what} record's keys are {', '.join(model.model_fields)}"
            problems.append(f"line {n}{named}: {validation_problems(e)}{keys}")
    return records, problems


def problems_error(path: Path, what: str, problems: list[str]) -> RagError:
    """One error listing a file's problems (the first ``MAX_ERRORS`` of them)."""
    def line(problem: str) -> int:
        m = re.match(r"line (\d+)", problem)
        return int(m.group(1)) if m else 0

    problems = sorted(problems, key=line)
    shown = problems[:MAX_ERRORS] + ([f"and {len(problems) - MAX_ERRORS} more"] if len(problems) > MAX_ERRORS else [])
    return RagError(f"{path}: invalid {what} file:\n  " + "\n  ".join(shown))
