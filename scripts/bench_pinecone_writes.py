"""Local Pinecone under writes: a query right after upserting 100 vectors vs the same query before.

At 100k x 384 (cosine, top_k=10), each round times one query, upserts 100 new vectors, then times the same
query again; the ratio of the medians is the cost a write adds to the next query (the goal: <= 2x; the
stricter reading, upsert and query together against the query before, is printed too). The p50 of queries is also compared with numpy brute force on the same matrix (`M @ q` + argpartition; the
goal: within 1.5x). Both through the service in-process and through HTTP with the pinecone SDK.

`--compare-ref REF` measures the same in a subprocess running the sagerag package of git ref REF (say
`main`, taken with `git archive`, the working tree untouched), so before and after come from one run.

    python scripts/bench_pinecone_writes.py [--size 100000] [--rounds 10] [--queries 100] [--compare-ref main]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _bench_common import machine_lines, print_table, ref_package

DIM = 384
TOP_K = 10
WRITE = 100
INDEX = "bench"


def numpy_search(unit: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = unit @ (q / np.linalg.norm(q))
    top = np.argpartition(-s, k - 1)[:k]
    return top[np.argsort(-s[top])]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: int, rounds: int, queries: int) -> dict[str, float]:
    """Everything in one process with whichever sagerag is importable (this tree's or --compare-ref's)."""
    from sagerag.local import LocalPinecone

    rng = np.random.default_rng(0)
    data = rng.standard_normal((size, DIM), dtype=np.float32)
    unit = np.ascontiguousarray(data / np.linalg.norm(data, axis=1, keepdims=True))
    qs = rng.standard_normal((queries, DIM), dtype=np.float32)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, LocalPinecone(tmp) as server:
        pc = server.client()
        pc.indexes.create(
            name=INDEX,
            schema={"fields": {"_values": {"type": "dense_vector", "dimension": DIM, "metric": "cosine"}}},
            deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        )
        service = server.service
        # Bulk load straight into storage (skipping 100 validated requests): what is measured is queries.
        for start in range(0, size, 5000):
            chunk = range(start, min(start + 5000, size))
            service.storage.upsert(INDEX, "", [(f"v{i:07d}", data[i].tobytes(), None, None) for i in chunk])
        index = pc.Index(host=pc.indexes.describe(INDEX).host)

        def service_query(v: list[float]) -> Any:
            return service.query(INDEX, {"vector": v, "topK": TOP_K})

        def http_query(v: list[float]) -> Any:
            return index.query(vector=v, top_k=TOP_K)

        vectors = [q.tolist() for q in qs]
        for v in vectors[:3]:  # warm-up: the namespace loads, the connection opens
            service_query(v)
            http_query(v)
        baseline, local, remote = [], [], []
        for q, v in zip(qs, vectors, strict=True):  # interleaved: machine load hits all three alike
            baseline.append(timed(lambda q=q: numpy_search(unit, q, TOP_K)))
            local.append(timed(lambda v=v: service_query(v)))
            remote.append(timed(lambda v=v: http_query(v)))
        out.update(numpy_p50=statistics.median(baseline))
        out.update(service_p50=statistics.median(local), http_p50=statistics.median(remote))

        next_id = size
        for way, query, upsert in (
            ("service", service_query, lambda vs: service.upsert(INDEX, {"vectors": vs})),
            ("http", http_query, lambda vs: index.upsert(vectors=vs)),
        ):
            before, after, writes = [], [], []
            for r in range(rounds):
                v = vectors[r % len(vectors)]
                fresh = rng.standard_normal((WRITE, DIM), dtype=np.float32)
                batch = [{"id": f"w{next_id + j:07d}", "values": fresh[j].tolist()} for j in range(WRITE)]
                next_id += WRITE
                before.append(timed(lambda v=v, query=query: query(v)))
                writes.append(timed(lambda batch=batch, upsert=upsert: upsert(batch)))
                after.append(timed(lambda v=v, query=query: query(v)))
            out[f"{way}_before"] = statistics.median(before)
            out[f"{way}_after"] = statistics.median(after)
            out[f"{way}_upsert"] = statistics.median(writes)
    return out


def measure_ref(ref: str, size: int, rounds: int, queries: int) -> dict[str, float]:
    """`measure` in a subprocess importing the sagerag package of git ref `ref`."""
    with ref_package(ref) as tmp:
        env = {**os.environ, "PYTHONPATH": tmp}
        argv = [sys.executable, __file__, "--worker", "--size", str(size), "--rounds", str(rounds)]
        result = subprocess.run(
            [*argv, "--queries", str(queries)], env=env, check=True, capture_output=True, text=True
        )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--compare-ref", help="also measure the sagerag of this git ref (e.g. main)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.size, args.rounds, args.queries)))
        return
    print("\n".join(machine_lines(("numpy", "starlette", "uvicorn"))))
    print(
        f"{args.size} x {DIM} cosine, top_k={TOP_K}; {args.queries} queries for p50; {args.rounds} rounds "
        f"of (query, upsert {WRITE} new vectors, same query), medians\n"
    )
    runs = {"this tree": measure(args.size, args.rounds, args.queries)}
    if args.compare_ref:
        runs[args.compare_ref] = measure_ref(args.compare_ref, args.size, args.rounds, args.queries)
    rows = []
    for label, m in runs.items():
        for way in ("service", "http"):
            rows.append(
                [
                    label,
                    way,
                    f"{m[f'{way}_before'] * 1000:.2f}",
                    f"{m[f'{way}_upsert'] * 1000:.1f}",
                    f"{m[f'{way}_after'] * 1000:.2f}",
                    f"{m[f'{way}_after'] / m[f'{way}_before']:.2f}x",
                    f"{(m[f'{way}_upsert'] + m[f'{way}_after']) / m[f'{way}_before']:.2f}x",
                    f"{m[f'{way}_p50'] * 1000:.2f}",
                    f"{m['numpy_p50'] * 1000:.2f}",
                    f"{m[f'{way}_p50'] / m['numpy_p50']:.2f}x",
                ]
            )
    print_table(
        [
            "code",
            "through",
            "query before ms",
            "upsert 100 ms",
            "query after ms",
            "after/before",
            "(upsert+after)/before",
            "p50 ms",
            "numpy p50 ms",
            "p50/numpy",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
