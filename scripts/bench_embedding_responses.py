"""Embedding responses and SageMaker's 6 MB cap: token-level (inference toolkit) vs pooled (TEI) endpoints.

For the 154 FAQ answers and for 512-token texts, prints how `SagemakerEmbeddings` batches each kind of
endpoint (texts per request, requests per 1,000 texts) and what a response weighs: measured on the local
runtime (which writes float32 compactly) and as the Hugging Face inference toolkit writes the same values
(Python's `json` over float32 values as doubles), which is what a real endpoint returns. The local MiniLM
truncates at 256 tokens (sentence-transformers' max_seq_length); the inference toolkit runs up to 512, so
a real 512-token text's token-level response is twice the one measured here.

Run: python scripts/bench_embedding_responses.py   (prints tables; measures, asserts nothing)
"""

from __future__ import annotations

import json
import math

import numpy as np
from _bench_common import faq_answers, machine_lines, print_table

from sagerag.adapters import MiniLMContentHandler, SagemakerEmbeddings, TEIContentHandler
from sagerag.local import LocalRuntime

SAMPLE = 16
"""Texts per corpus actually sent to measure response bytes (the batching plan covers all 1,000)."""


def corpora(answers: list[str], tokenizer: MiniLMContentHandler) -> dict[str, list[str]]:
    """1,000 FAQ answers (the 154, cycled) and 1,000 texts of 512 tokens cut from them."""
    words = " ".join(answers).split()
    long = []
    for i in range(1000):
        start = (i * 97) % (len(words) - 600)
        long.append(" ".join(words[start : start + 520]))
    assert min(tokenizer.token_counts(long[:20])) == 512  # truncated at the container's limit
    return {"FAQ answers": [answers[i % len(answers)] for i in range(1000)], "512-token texts": long}


def hf_json_bytes(raw: bytes) -> int:
    """Size of the same values as the Hugging Face inference toolkit serialises them."""
    return len(json.dumps(np.asarray(json.loads(raw), dtype=np.float32).tolist()).encode())


def main() -> None:
    print("\n".join(machine_lines()))
    minilm = MiniLMContentHandler()
    rows = []
    with LocalRuntime() as runtime:
        client = runtime.client(timeout=300)
        for corpus, texts in corpora(faq_answers(), minilm).items():
            for endpoint, handler in (("minilm", minilm), ("minilm-tei", TEIContentHandler())):
                embeddings = SagemakerEmbeddings(
                    endpoint_name=endpoint, client=client, content_handler=handler
                )
                batches = [batch for _, batch in embeddings._plan(texts)[1]]
                sizes = [len(b) for b in batches]
                expected = max(
                    len(b) * max(handler.estimate_response_bytes(b))
                    if handler.pads_batches
                    else sum(handler.estimate_response_bytes(b))
                    for b in batches
                )
                sample = texts[:SAMPLE] if corpus.startswith("FAQ") else texts[:4]
                local = hf = 0
                for text in sample:  # one text per request: the bytes a text adds to any response
                    body = handler.transform_input([text], {})
                    raw = client.invoke_endpoint(
                        EndpointName=endpoint, Body=body, ContentType="application/json"
                    )["Body"].read()
                    local += len(raw)
                    hf += hf_json_bytes(raw)
                refused = runtime.counters.refused_requests
                kind = "token-level (inference toolkit)" if endpoint == "minilm" else "pooled (TEI)"
                rows.append(
                    [
                        corpus,
                        kind,
                        f"{sum(sizes) / len(sizes):.1f} (max {max(sizes)})",
                        str(len(batches)),
                        f"{local / len(sample) / 1024:,.1f} KB",
                        f"{hf / len(sample) / 1024:,.1f} KB",
                        f"{expected / 2**20:.2f} MB",
                        str(refused),
                    ]
                )
    print_table(
        [
            "texts",
            "endpoint",
            "texts per request",
            "requests per 1,000 texts",
            "response per text (local)",
            "response per text (HF json)",
            "largest expected response",
            "refused so far",
        ],
        rows,
    )
    per_faq = [r for r in rows if r[0].startswith("FAQ")]
    if len(per_faq) == 2:
        ratio = float(per_faq[0][5].split()[0].replace(",", "")) / float(
            per_faq[1][5].split()[0].replace(",", "")
        )
        print(
            f"\nFAQ answers: a token-level response is {ratio:.0f}x a pooled one; 6 MB holds "
            f"{math.floor(6 * 2**20 / (float(per_faq[1][5].split()[0].replace(',', '')) * 1024)):,} pooled vectors"
        )


if __name__ == "__main__":
    main()
