"""Re-grade a `sagerag eval --grounding flag` log with the grounding check at other thresholds.

    python scripts/regrade_grounding.py tune_flag.jsonl [--min-support 0.4 0.5] [--floor 0.2 0.25]

A flag run keeps every sentence and records its context passages, so the drop-mode answer for any
threshold is the kept sentences that the check supports (generation does not depend on the check).
Prints, per threshold pair: answer token F1 against the reference (an abstention scores 0), grounding
abstentions among the gate-passed questions, how many of those had an answer with token F1 >= --right
before the drop (the automatic proxy for a wrong abstention) and sentences dropped. Uses the chain's
own `Grounder` and the embedded MiniLM, so the scores are the chain's. For tuning only: run it on the
tuning split, never to choose on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from sagerag.chains import grounding
from sagerag.chains.grounding import Grounder
from sagerag.evaluation.metrics import token_f1
from sagerag.questions import read_questions


class CachedEmbeddings(Embeddings):
    """Embeds each distinct text once: the threshold grid re-scores the same sentences many times."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.cache: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self.cache[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@contextmanager
def local_embeddings() -> Iterator[Embeddings]:
    from sagerag.pipeline import from_settings

    with tempfile.TemporaryDirectory() as data, from_settings(data_dir=Path(data)) as pipeline:
        yield CachedEmbeddings(pipeline.store.embeddings)


def regrade(
    records: list[dict[str, Any]],
    references: dict[str, str],
    embeddings: Embeddings,
    min_support: float,
    right: float,
    show: bool = False,
) -> dict[str, Any]:
    f1: list[float] = []
    passed = abstained = wrong = dropped = 0
    for record in records:
        reference = references[record["question_id"]]
        said = [s["text"] for s in record.get("sentences") or [] if s["kept"]]
        if not said or "passages" not in record:  # gated or the model's own "I don't know"
            f1.append(token_f1(str(record["answer"]), reference))
            continue
        passed += 1
        grounder = Grounder(
            record["passages"], embeddings, question=record["question"], min_support=min_support
        )
        kept = [v["text"] for v in grounder.judge(said) if v["supported"]]
        dropped += len(said) - len(kept)
        if kept:
            f1.append(token_f1(" ".join(kept), reference))
        else:
            abstained += 1
            wrong += token_f1(" ".join(said), reference) >= right
            if show:  # for judging by reading whether the dropped answer was right in substance
                print(f"  abstained {record['question_id']}: {' '.join(said)[:200]}", file=sys.stderr)
            f1.append(0.0)
    return {
        "token_f1": round(sum(f1) / len(f1), 4),
        "questions": len(f1),
        "gate_passed": passed,
        "grounding_abstained": abstained,
        f"of_them_f1>={right}": wrong,
        "sentences_dropped": dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+", help="eval --results logs of --grounding flag runs")
    parser.add_argument("--questions", type=Path, default=Path("evals/dev_in_scope.jsonl"))
    parser.add_argument("--min-support", type=float, nargs="+", default=[0.4, 0.45, 0.5])
    parser.add_argument("--floor", type=float, nargs="+", default=[grounding.BOTH_FLOOR])
    parser.add_argument("--right", type=float, default=0.2, help="F1 proxy for a right answer")
    parser.add_argument("--show", action="store_true", help="print the answers the check abstained on")
    args = parser.parse_args()
    references = {
        q.id: str(q.extra.get("answer", q.extra.get("reference")))
        for q in read_questions(args.questions).questions
        if q.extra.get("answer", q.extra.get("reference"))
    }
    records = [
        json.loads(line)
        for path in args.results
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    records = [r for r in records if r.get("scope") == "in" and r["question_id"] in references]
    with local_embeddings() as embeddings:
        for floor in args.floor:
            grounding.BOTH_FLOOR = floor  # the module constant the Grounder reads
            for min_support in args.min_support:
                row = regrade(records, references, embeddings, min_support, args.right, args.show)
                print(json.dumps({"min_support": min_support, "floor": floor, **row}))


if __name__ == "__main__":
    main()
