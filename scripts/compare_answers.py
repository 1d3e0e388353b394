"""Compare the answer quality of `sagerag eval --results` logs on the questions they all hold.

    python scripts/compare_answers.py base.jsonl guarded.jsonl [--examples 5]

Prints, per configuration found in the logs, the `sagerag eval` summary restricted to the common
questions (so an interrupted run is compared fairly), and with --examples, answers from which the
grounding check dropped sentences, before (all generated sentences) and after.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sagerag.evaluation.runner import summarize

KEYS = (
    "token_f1",
    "in_scope_refused",
    "repeated_sentence",
    "ends_mid_sentence",
    "truncated",
    "grounding_refused",
)


def load(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    by_config: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                by_config.setdefault(f"{path.name}: {record['config']}", []).append(record)
    return by_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--examples", type=int, default=0)
    args = parser.parse_args()
    by_config = load(args.logs)
    common = set.intersection(*({r["question_id"] for r in rs} for rs in by_config.values()))
    print(f"{len(common)} questions in every log")
    for name, records in by_config.items():
        subset = [r for r in records if r["question_id"] in common]
        summary = summarize(subset)
        counts = summary["counts"]
        cells = ", ".join(f"{k}={'-' if summary[k] is None else format(summary[k], '.3f')}" for k in KEYS)
        print(f"{name}\n  {cells}\n  counts: {counts}")
        shown = 0
        for record in subset:
            if shown >= args.examples or not record.get("dropped"):
                continue
            shown += 1
            before = " ".join(s["text"] for s in record["sentences"])
            print(f"  [{record['question_id']}] {record['question']}\n    before: {before}")
            print(f"    after:  {record['answer']}")
            for s in record["sentences"]:
                if not s["kept"]:
                    print(f"    dropped (lexical {s['lexical']}, semantic {s['semantic']}): {s['text']}")


if __name__ == "__main__":
    main()
