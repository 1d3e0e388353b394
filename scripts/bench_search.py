"""Query latency of LocalPinecone (through the pinecone SDK, HTTP included) vs plain numpy search.

Both sides search the same random 384-dim float32 vectors for the same queries (cosine, top_k=10). The
numpy baseline is the floor: a pre-normalised matrix, `M @ q` and argpartition. Acceptance target: the
local server's p50 within 2x of the baseline's at 100k vectors.

    python scripts/bench_search.py [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from importlib.metadata import version

import numpy as np

from sagerag.local import LocalPinecone
from sagerag.local.pinecone.validation import MAX_UPSERT_VECTORS

DIM = 384
TOP_K = 10


def numpy_search(unit: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = unit @ (q / np.linalg.norm(q))
    top = np.argpartition(-s, k - 1)[:k]
    return top[np.argsort(-s[top])]


def load(server: LocalPinecone, ids: list[str], data: np.ndarray) -> None:
    """Fill the index in-process through the service's upsert (every Pinecone limit applies), skipping
    only the HTTP and JSON round trips that would make loading 100k vectors slow."""
    for start in range(0, len(ids), MAX_UPSERT_VECTORS):
        vectors = [
            {"id": ids[i], "values": data[i].tolist()}
            for i in range(start, min(start + MAX_UPSERT_VECTORS, len(ids)))
        ]
        server.service.upsert("bench", {"vectors": vectors})


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench(size: int, queries: int, rng: np.random.Generator) -> tuple[float, float, bool]:
    data = rng.standard_normal((size, DIM), dtype=np.float32)
    qs = rng.standard_normal((queries, DIM), dtype=np.float32)
    unit = np.ascontiguousarray(data / np.linalg.norm(data, axis=1, keepdims=True))
    ids = [f"v{i:07d}" for i in range(size)]

    with tempfile.TemporaryDirectory() as tmp, LocalPinecone(tmp) as server:
        pc = server.client()
        pc.indexes.create(
            name="bench",
            schema={"fields": {"_values": {"type": "dense_vector", "dimension": DIM, "metric": "cosine"}}},
            deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        )
        load(server, ids, data)
        index = pc.Index(host=pc.indexes.describe("bench").host)
        vectors = [q.tolist() for q in qs]
        for q, v in zip(qs[:5], vectors[:5], strict=True):  # warm-up: snapshot, connection, caches
            numpy_search(unit, q, TOP_K)
            index.query(vector=v, top_k=TOP_K)
        baseline: list[float] = []
        local: list[float] = []
        agree = True
        # Interleaved, so that load from other processes on the machine hits both sides alike.
        for q, v in zip(qs, vectors, strict=True):
            start = time.perf_counter()
            expected = numpy_search(unit, q, TOP_K)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = index.query(vector=v, top_k=TOP_K)
            local.append(time.perf_counter() - start)
            agree = agree and [m.id for m in result.matches] == [ids[i] for i in expected]
    return p50_ms(baseline), p50_ms(local), agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.platform()} {platform.machine()}, cpus: {os.cpu_count()}")
    print(
        "versions: python "
        + platform.python_version()
        + ", "
        + ", ".join(f"{p} {version(p)}" for p in ("numpy", "pinecone", "starlette", "uvicorn"))
    )
    print(f"dim={DIM} top_k={TOP_K} metric=cosine queries={args.queries}\n")
    print(f"{'vectors':>8} | {'numpy p50 ms':>12} | {'local p50 ms':>12} | {'ratio':>6} | same top-k")
    print("-" * 62)
    for size in args.sizes:
        base, local, agree = bench(size, args.queries, rng)
        print(f"{size:>8} | {base:>12.3f} | {local:>12.3f} | {local / base:>6.2f} | {agree}")


if __name__ == "__main__":
    main()
