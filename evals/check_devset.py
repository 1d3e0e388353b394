"""Check the hand-written SageMaker FAQ dev set in evals/ (stdlib only).

    python evals/check_devset.py

Validates dev_in_scope.jsonl, dev_out_of_scope_near.jsonl and dev_out_of_scope_generic.jsonl against
Amazon_SageMaker_FAQs.csv: JSON and fields, unique ids and questions, answer_ids in range, references
drawn from the text of their answer rows, splits, minimum counts and FAQ coverage. Prints counts per
split/style/category and exits 1 if anything is wrong.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAQ = HERE / "Amazon_SageMaker_FAQs.csv"
IN_SCOPE = HERE / "dev_in_scope.jsonl"
NEAR = HERE / "dev_out_of_scope_near.jsonl"
GENERIC = HERE / "dev_out_of_scope_generic.jsonl"
OLD_GENERIC = HERE / "out_of_scope_questions.jsonl"

FAQ_ROWS = 154
MIN_IN_SCOPE, MIN_NEAR, MIN_GENERIC, MIN_FIRST_ROWS = 170, 60, 30, 120
MIN_REFERENCE_OVERLAP = 0.8  # share of the reference's content words found in its answer rows
MAX_SHARED_RUN = 5  # a question may not repeat this many consecutive words of its row's FAQ question
SPLITS = {"tune", "test"}
STYLES = {"paraphrase", "short", "lowercase", "typo", "no-prefix", "two-facts", "scenario"}
NEAR_CATEGORIES = {"aws-service", "vector-db", "model-facts", "prices", "ml-general"}
ACCEPTANCE = ("are GPU machines ok for discounted spot training runs?", 90)
STOPWORDS = set(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "use",
        "used",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("’", "'"))


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


def normalized(text: str) -> str:
    return " ".join(words(text))


def runs(text: str, n: int) -> set[tuple[str, ...]]:
    t = words(text)
    return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)}


def load_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        problem(f"{path.name}: missing")
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problem(f"{path.name}:{number}: invalid JSON ({error})")
            continue
        if not isinstance(record, dict):
            problem(f"{path.name}:{number}: not a JSON object")
            continue
        record["_where"] = f"{path.name}:{number}"
        records.append(record)
    return records


def check_common(records: list[dict], name: str, fields: set[str]) -> None:
    for r in records:
        missing = fields - r.keys()
        extra = r.keys() - fields - {"_where"}
        if missing:
            problem(f"{r['_where']}: missing fields {sorted(missing)}")
        if extra:
            problem(f"{r['_where']}: unexpected fields {sorted(extra)}")
        if not isinstance(r.get("question"), str) or not r.get("question", "").strip():
            problem(f"{r['_where']}: empty question")
        if r.get("split") not in SPLITS:
            problem(f"{r['_where']}: split {r.get('split')!r} not in {sorted(SPLITS)}")
    present = {r.get("split") for r in records}
    for split in SPLITS - present:
        problem(f"{name}: no {split!r} rows")


def report(title: str, records: list[dict], key: str) -> None:
    table = Counter((r.get(key), r.get("split")) for r in records)
    print(f"\n{title} by {key}:       tune   test  total")
    for value in sorted({k for k, _ in table}, key=str):
        tune, test = table[(value, "tune")], table[(value, "test")]
        print(f"  {value!s:18} {tune:5d}  {test:5d}  {tune + test:5d}")
    splits = Counter(r.get("split") for r in records)
    print(f"  {'all':18} {splits['tune']:5d}  {splits['test']:5d}  {len(records):5d}")


def main() -> int:
    with FAQ.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) != FAQ_ROWS or any(len(row) != 2 for row in rows):
        problem(f"{FAQ.name}: expected {FAQ_ROWS} rows of 2 columns, got {len(rows)}")
    answer_words = [set(words(row[1])) for row in rows]
    faq_questions = {normalized(row[0]) for row in rows}

    inside = load_jsonl(IN_SCOPE)
    near = load_jsonl(NEAR)
    generic = load_jsonl(GENERIC)

    check_common(inside, IN_SCOPE.name, {"id", "question", "answer_ids", "reference", "split", "style"})
    check_common(near, NEAR.name, {"id", "question", "category", "split"})
    check_common(generic, GENERIC.name, {"id", "question", "category", "split"})

    ids = Counter(r.get("id") for r in inside + near + generic)
    for value, count in ids.items():
        if not isinstance(value, str) or not value:
            problem(f"bad id {value!r}")
        elif count > 1:
            problem(f"id {value!r} used {count} times")
    questions = Counter(normalized(str(r.get("question", ""))) for r in inside + near + generic)
    for value, count in questions.items():
        if count > 1:
            problem(f"question {value!r} appears {count} times")

    first_rows, all_rows = Counter(), set()
    for r in inside:
        where, answer_ids = r["_where"], r.get("answer_ids")
        if (
            not isinstance(answer_ids, list)
            or not answer_ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in answer_ids)
        ):
            problem(f"{where}: answer_ids must be a non-empty list of ints")
            continue
        if len(set(answer_ids)) != len(answer_ids):
            problem(f"{where}: duplicate answer_ids {answer_ids}")
        if not all(0 <= i < FAQ_ROWS for i in answer_ids):
            problem(f"{where}: answer_ids {answer_ids} outside 0..{FAQ_ROWS - 1}")
            continue
        first_rows[answer_ids[0]] += 1
        all_rows.update(answer_ids)
        if r.get("style") not in STYLES:
            problem(f"{where}: style {r.get('style')!r} not in {sorted(STYLES)}")
        if r.get("style") == "two-facts" and len(answer_ids) < 2:
            problem(f"{where}: two-facts question with a single answer row")
        question = str(r.get("question", ""))
        if normalized(question) in faq_questions:
            problem(f"{where}: question copies an FAQ question verbatim")
        shared = runs(question, MAX_SHARED_RUN) & set().union(
            *(runs(rows[i][0], MAX_SHARED_RUN) for i in answer_ids)
        )
        if shared:
            problem(f"{where}: question repeats FAQ wording {[' '.join(s) for s in shared]}")
        reference = r.get("reference")
        if not isinstance(reference, str) or not reference.strip():
            problem(f"{where}: empty reference")
            continue
        ref_words = content_words(reference)
        source = set().union(*(answer_words[i] for i in answer_ids))
        overlap = sum(w in source for w in ref_words) / max(len(ref_words), 1)
        if len(ref_words) < 3 and reference.strip().rstrip(".") not in ("Yes", "No"):
            problem(f"{where}: reference too short: {reference!r}")
        if overlap < MIN_REFERENCE_OVERLAP:
            problem(f"{where}: reference shares only {overlap:.0%} of its words with rows {answer_ids}")

    text, row = ACCEPTANCE
    match = [r for r in inside if r.get("question") == text]
    if not match:
        problem(f"acceptance question missing: {text!r}")
    elif match[0].get("answer_ids", [None])[0] != row:
        problem(f"acceptance question must map first to row {row}, got {match[0].get('answer_ids')}")

    for r in near:
        if r.get("category") not in NEAR_CATEGORIES:
            problem(f"{r['_where']}: category {r.get('category')!r} not in {sorted(NEAR_CATEGORIES)}")
    old = (
        {
            normalized(json.loads(line)["question"])
            for line in OLD_GENERIC.read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
        if OLD_GENERIC.exists()
        else set()
    )
    for r in generic:
        if r.get("category") != "generic":
            problem(f"{r['_where']}: category must be 'generic'")
        if normalized(str(r.get("question", ""))) in old:
            problem(f"{r['_where']}: repeats a question of {OLD_GENERIC.name}")

    for name, records, minimum in (
        (IN_SCOPE.name, inside, MIN_IN_SCOPE),
        (NEAR.name, near, MIN_NEAR),
        (GENERIC.name, generic, MIN_GENERIC),
    ):
        if len(records) < minimum:
            problem(f"{name}: {len(records)} questions, need at least {minimum}")
    if len(first_rows) < MIN_FIRST_ROWS:
        problem(f"only {len(first_rows)} distinct first answer rows, need at least {MIN_FIRST_ROWS}")

    report(IN_SCOPE.name, inside, "style")
    report(NEAR.name, near, "category")
    report(GENERIC.name, generic, "category")
    multi = sum(len(r.get("answer_ids") or []) > 1 for r in inside)
    print(
        f"\nFAQ coverage: {len(first_rows)}/{FAQ_ROWS} rows are the first answer of some question, "
        f"{len(all_rows)}/{FAQ_ROWS} appear in some answer_ids; {multi} questions list more than one row"
    )
    missing = sorted(set(range(FAQ_ROWS)) - set(first_rows))
    if missing:
        print(f"rows never first: {missing}")

    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
