"""Local runtime figures for the README: model load times, generation tokens/s, embedding texts/s.

Run: python scripts/bench_runtime.py   (prints a table; measures, asserts nothing)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

from sagerag.local import LocalRuntime
from sagerag.local.sagemaker.models import shared_registry


def main() -> None:
    registry = shared_registry()
    with LocalRuntime(registry=registry) as runtime:
        client = runtime.client()
        started = time.perf_counter()
        client.invoke_endpoint(
            EndpointName="minilm", Body=json.dumps({"inputs": ["warm up"]}), ContentType="application/json"
        )
        first_embed = time.perf_counter() - started
        texts = [
            f"Sentence number {i} about training machine learning models on managed infrastructure."
            for i in range(32)
        ]
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            client.invoke_endpoint(
                EndpointName="minilm", Body=json.dumps({"inputs": texts}), ContentType="application/json"
            )
            timings.append(time.perf_counter() - t)
        started = time.perf_counter()
        client.invoke_endpoint(
            EndpointName="llama2",
            Body=json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 1}}),
            ContentType="application/json",
        )
        first_generate = time.perf_counter() - started
        rates = []
        for seed in range(3):
            body = {
                "inputs": "Write a long story about a robot.",
                "parameters": {"max_new_tokens": 128, "seed": seed, "details": True},
            }
            t = time.perf_counter()
            out = json.loads(
                client.invoke_endpoint(
                    EndpointName="llama2", Body=json.dumps(body), ContentType="application/json"
                )["Body"].read()
            )
            rates.append(out[0]["details"]["generated_tokens"] / (time.perf_counter() - t))
    loaded = registry.loaded()
    print(f"machine: {platform.platform()}, cpus: {os.cpu_count()}")
    print(f"{'figure':44} value")
    print(f"{'MiniLM load (s)':44} {loaded.get('minilm', 0):.2f}")
    print(f"{'MiniLM first request incl. load (s)':44} {first_embed:.2f}")
    print(f"{'MiniLM texts/s (batch 32, via HTTP)':44} {32 / statistics.median(timings):.0f}")
    print(f"{'SmolLM2 load (s)':44} {loaded.get('smollm2', 0):.2f}")
    print(f"{'SmolLM2 first request incl. load (s)':44} {first_generate:.2f}")
    print(f"{'SmolLM2 tokens/s (128 new tokens, median)':44} {statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
