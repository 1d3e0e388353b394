"""Questions from users and files: cleaned, bounded, and read with line numbers for clear errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagerag.errors import InputError

MAX_QUESTION_CHARS = 2000
"""Longer questions crowd the retrieved context out of the model's window; they are refused, not cut."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_question(question: str, where: str = "question") -> str:
    """The question with control characters removed and whitespace collapsed; refuses empty or huge ones."""
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", question or ""))
    text = " ".join(text.split())
    if not text:
        raise InputError(f'{where} is empty; ask something, e.g. sagerag ask "What is Amazon SageMaker?"')
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(
            f"{where} is {len(text):,} characters; the limit is {MAX_QUESTION_CHARS:,}. Shorten it to the question itself."
        )
    return text


@dataclass
class Question:
    """One question from a file: its id and optional labels.

    The id is the file's own (a jsonl `id`, a csv `id` column); else, for .txt and .csv, one derived from the
    question's text (see `text_id`), so answers stay matched to their questions when lines are inserted,
    removed or reordered; a jsonl line without an `id` keeps its 0-based position.
    """

    id: str
    question: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class QuestionFile:
    questions: list[Question]
    errors: list[str]
    """Lines that could not be read, e.g. `questions.jsonl line 7: not valid JSON`."""


def text_id(question: str, occurrence: int = 1) -> str:
    """A stable id for a question without one: a hash of its cleaned text (`-2`, `-3` for repeats)."""
    digest = hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]
    return f"q{digest}" if occurrence == 1 else f"q{digest}-{occurrence}"


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from None


def _parse(path: Path) -> Iterator[tuple[int, Question | str]]:
    """(line or item number, Question or error text) for .jsonl, .json, .csv and plain-text files."""
    lines = _lines(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict) or not isinstance(data.get("question"), str):
                    raise ValueError("expected an object with a string 'question'")
            except ValueError as exc:
                yield number, f"{path.name} line {number}: {exc}"
                continue
            qid = str(data.get("id", number - 1))
            extra = {k: v for k, v in data.items() if k not in {"id", "question"}}
            yield number, Question(qid, data["question"], extra)
    elif suffix == ".json":  # one JSON array of strings or {"question": ...} objects
        try:
            items = json.loads("\n".join(lines))
        except ValueError as exc:
            raise InputError(
                f"{path}: not valid JSON ({exc}); a .json questions file is one array of strings or "
                'objects with "question" (or use .jsonl, one object per line)'
            ) from None
        if not isinstance(items, list):
            raise InputError(f'{path}: expected a JSON array of strings or objects with "question"')
        for number, item in enumerate(items, start=1):
            if isinstance(item, str):
                yield number, Question(str(number - 1), item)
            elif isinstance(item, dict) and isinstance(item.get("question"), str):
                extra = {k: v for k, v in item.items() if k not in {"id", "question"}}
                yield number, Question(str(item.get("id", number - 1)), item["question"], extra)
            else:
                yield (
                    number,
                    f"{path.name} item {number}: expected a string or an object with a string 'question'",
                )
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        if not reader.fieldnames or "question" not in [f.lower() for f in reader.fieldnames]:
            raise InputError(f"{path}: a questions CSV needs a 'question' column")
        column = next(f for f in reader.fieldnames if f.lower() == "question")
        for row in reader:
            yield reader.line_num, Question(str(row.get("id") or ""), row.get(column) or "")
    else:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, Question("", line)


def read_questions(path: str | Path, skip_bad_lines: bool = False) -> QuestionFile:
    """All questions in a file; a bad line stops with its line number unless `skip_bad_lines`."""
    path = Path(path)
    questions, errors, seen = [], [], set()
    repeats: dict[str, int] = {}
    for number, item in _parse(path):
        if isinstance(item, str):
            if not skip_bad_lines:
                raise InputError(f"{item}; fix it, or pass --skip-bad-lines to continue with the rest")
            errors.append(item)
            continue
        try:
            item.question = clean_question(item.question, f"{path.name} line {number}")
        except InputError as exc:
            if not skip_bad_lines:
                raise InputError(f"{exc}; or pass --skip-bad-lines") from None
            errors.append(str(exc))
            continue
        if not item.id:
            repeats[item.question] = repeats.get(item.question, 0) + 1
            item.id = text_id(item.question, repeats[item.question])
        if item.id in seen:
            raise InputError(f"{path.name} line {number}: duplicate question id {item.id!r}")
        seen.add(item.id)
        questions.append(item)
    if not questions:
        raise InputError(f"{path}: no questions found")
    return QuestionFile(questions, errors)
