"""Ingestion throughput against a simulated remote GPU endpoint: the tutorial loop vs the stock LangChain
integration vs sagerag, each as a share of what the endpoint could serve.

The endpoint answers with real MiniLM token vectors (recorded once per text) and spends the time a remote
endpoint would (`sagerag.local.sagemaker.simulated.RemoteTiming`: round trip, per-request and per-token
service time, `instances` model servers with a queue). So the client side is measured, not the emulator's
CPU. Pinecone upserts go to the local Pinecone, included in every way's time.

1. tutorial loop: batches of 2, one request at a time, mean pooling, one upsert per batch
2. stock: langchain-community `SagemakerEndpointEmbeddings` (chunk 64, sequential) + sequential upserts of 100
3. sagerag: `PineconeStore.add_texts` over `SagemakerEmbeddings` (batching, concurrency, parallel upserts)

The endpoint's capacity (all instances busy with sagerag's batch size) is the physical limit of a run.
The tutorial loop is slow by design: above `--loop-cap` texts it is timed on that many and its rate used.

Run: python scripts/bench_ingest.py [--texts 2000 20000] [--rtt-ms 0 30 100] [--instances 1 4]
(prints tables; measures, asserts nothing)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from typing import Any

import numpy as np
from _bench_common import faq_answers, machine_lines, print_table

from sagerag.adapters import SagemakerEmbeddings
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.local.sagemaker.containers import FeatureExtraction
from sagerag.local.sagemaker.models import shared_registry
from sagerag.local.sagemaker.simulated import RemoteTiming, SimulatedFeatureExtraction
from sagerag.stores import PineconeStore, ensure_index

DISTINCT = 2000
"""Distinct texts recorded; larger corpora repeat them under new ids (the endpoint's work is the same)."""


def corpus(n: int) -> list[str]:
    answers = faq_answers()
    distinct = [
        answers[i % len(answers)] + (f" (copy {i // len(answers)})" if i >= len(answers) else "")
        for i in range(min(n, DISTINCT))
    ]
    return [distinct[i % len(distinct)] for i in range(n)]


def tutorial_loop(client: Any, index: Any, texts: list[str], namespace: str) -> None:
    for start in range(0, len(texts), 2):
        batch = texts[start : start + 2]
        response = client.invoke_endpoint(
            EndpointName="minilm", Body=json.dumps({"inputs": batch}), ContentType="application/json"
        )
        vectors = [np.asarray(item[0]).mean(axis=0) for item in json.loads(response["Body"].read())]
        index.upsert(
            vectors=[
                {"id": f"loop-{start + i}", "values": [float(x) for x in v], "metadata": {"text": t}}
                for i, (v, t) in enumerate(zip(vectors, batch, strict=True))
            ],
            namespace=namespace,
        )


def stock(client: Any, index: Any, texts: list[str], namespace: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.embeddings import SagemakerEndpointEmbeddings
        from langchain_community.embeddings.sagemaker_endpoint import EmbeddingsContentHandler

    class Handler(EmbeddingsContentHandler):
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, **model_kwargs}).encode()

        def transform_output(self, output: Any) -> list[list[float]]:
            return [np.asarray(item[0]).mean(axis=0).tolist() for item in json.loads(output.read())]

    embeddings = SagemakerEndpointEmbeddings(client=client, endpoint_name="minilm", content_handler=Handler())
    vectors = embeddings.embed_documents(texts, chunk_size=64)
    for start in range(0, len(texts), 100):
        index.upsert(
            vectors=[
                {"id": f"stock-{start + i}", "values": v, "metadata": {"text": t}}
                for i, (v, t) in enumerate(
                    zip(vectors[start : start + 100], texts[start : start + 100], strict=True)
                )
            ],
            namespace=namespace,
        )


def sagerag_way(client: Any, index: Any, texts: list[str], namespace: str) -> None:
    store = PineconeStore(index, SagemakerEmbeddings(endpoint_name="minilm", client=client), namespace)
    store.add_texts(texts, [{"source": f"bench#{i}"} for i in range(len(texts))])


WAYS = {"tutorial loop": tutorial_loop, "stock integration": stock, "sagerag": sagerag_way}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0, 30, 100])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--per-request-ms", type=float, default=RemoteTiming.per_request_s * 1000)
    parser.add_argument("--per-token-us", type=float, default=RemoteTiming.per_token_s * 1e6)
    parser.add_argument("--loop-cap", type=int, default=2000, help="texts the tutorial loop is timed on")
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    args = parser.parse_args()

    inner = FeatureExtraction(shared_registry().get("minilm"))
    rows = []
    # The stock row sends chunks of 64 texts, whose token-level responses SageMaker would refuse (over 6 MB);
    # the cap is lifted so the row still measures that class's throughput.
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalRuntime(max_response_bytes=2**31) as runtime,
        LocalPinecone(tmp) as pinecone,
    ):
        client = runtime.client()
        pc = pinecone.client()
        ensure_index(pc, "bench", 384)
        index = pc.Index(host=pc.describe_index("bench").host)
        everything = corpus(max(args.texts))
        recorder = SimulatedFeatureExtraction(inner, RemoteTiming())
        started = time.perf_counter()
        recorder.record(everything)
        print(f"recorded {len(set(everything))} distinct texts in {time.perf_counter() - started:.0f} s")
        mean_tokens = statistics.fmean(recorder.tokens(t) for t in set(everything))
        for n in args.texts:
            texts = everything[:n]
            for rtt in args.rtt_ms:
                for instances in args.instances:
                    timing = RemoteTiming(
                        round_trip_s=rtt / 1000,
                        per_request_s=args.per_request_ms / 1000,
                        per_token_s=args.per_token_us / 1e6,
                        instances=instances,
                    )
                    endpoint = recorder.retimed(timing)
                    runtime.install("minilm", endpoint)
                    capacity = timing.capacity(
                        mean_tokens, SagemakerEmbeddings.model_fields["batch_size"].default
                    )
                    for name in args.ways:
                        timed = texts[: args.loop_cap] if name == "tutorial loop" else texts
                        namespace = f"{name.split()[0]}-{n}-{rtt:g}-{instances}"
                        started = time.perf_counter()
                        WAYS[name](client, index, timed, namespace)
                        rate = len(timed) / (time.perf_counter() - started)
                        index.delete(delete_all=True, namespace=namespace)
                        rows.append((n, rtt, instances, name, rate, capacity, endpoint.requests))
                        print(
                            f"  {n} texts, {rtt:g} ms, {instances} instance(s), {name}: {rate:.1f} texts/s "
                            f"({rate / capacity:.1%} of capacity {capacity:.0f})",
                            flush=True,
                        )
                        endpoint.requests = 0

    print()
    for line in machine_lines(("langchain-community",)):
        print(line)
    print(
        f"\nSimulated endpoint: per request {args.per_request_ms:g} ms, per token {args.per_token_us:g} us, "
        f"mean {mean_tokens:.0f} tokens per text; capacity at sagerag's batch size. Texts/s (share of capacity):\n"
    )
    table = []
    for n in args.texts:
        for rtt in args.rtt_ms:
            for instances in args.instances:
                found = {r[3]: r for r in rows if r[:3] == (n, rtt, instances)}
                line = [str(n), f"{rtt:g}", str(instances), f"{next(iter(found.values()))[5]:.0f}"]
                line += [f"{found[w][4]:.1f} ({found[w][4] / found[w][5]:.0%})" for w in args.ways]
                table.append(line)
    print_table(["texts", "round trip ms", "instances", "capacity texts/s", *args.ways], table)
    if {"sagerag", "tutorial loop", "stock integration"} <= set(args.ways):
        print("\nsagerag vs the others\n")
        ratios = []
        for n in args.texts:
            for rtt in args.rtt_ms:
                for instances in args.instances:
                    found = {r[3]: r[4] for r in rows if r[:3] == (n, rtt, instances)}
                    ratios.append(
                        [
                            str(n),
                            f"{rtt:g}",
                            str(instances),
                            f"{found['sagerag'] / found['tutorial loop']:.1f}x",
                            f"{found['sagerag'] / found['stock integration']:.1f}x",
                        ]
                    )
        print_table(["texts", "round trip ms", "instances", "vs tutorial loop", "vs stock"], ratios)


if __name__ == "__main__":
    main()
