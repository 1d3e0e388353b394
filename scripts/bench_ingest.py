"""Ingestion throughput against a simulated remote GPU endpoint: the tutorial loop vs the stock LangChain
integration vs sagerag, each as a share of what the endpoint could serve.

The endpoint answers with real MiniLM output (recorded once per text) and spends the time a remote
endpoint would (`sagerag.local.sagemaker.simulated.RemoteTiming`: round trip, per-request, per-token and
per-response-byte service time, `instances` x `--workers` model servers with a queue, one GPU per instance).
It runs in a child process with
the local Pinecone, so this process is the client alone: its CPU time, and its parsing workers' (spawned by
a sagerag ingest of 2,000 texts or more), is the client's.

Endpoints (`--endpoints`):
- toolkit: token-level `feature-extraction` (Hugging Face inference toolkit), its JSON writing timed;
- toolkit-free: the same answers with JSON writing free (the issue's model: round trip + request + token);
- tei: pooled vectors (TEI), only sagerag runs against it (`TEIContentHandler`);
- toolkit-npy, toolkit-free-npy: the toolkit endpoints, sagerag asking them for NPY answers
  (`MiniLMContentHandler(binary=True)`; the toolkit's `np.save` timed on toolkit-npy, free on the other);
  the tutorial loop and the stock class ask for JSON, as they do.

Ways:
1. tutorial loop: batches of 2, one request at a time, mean pooling, one upsert per batch
2. stock: langchain-community `SagemakerEndpointEmbeddings` (chunk 64, sequential) + sequential upserts of 100
3. sagerag: `ingest_documents` (what `sagerag ingest` runs: ledger, `PineconeStore`, `SagemakerEmbeddings`)

Each sagerag cell runs in a client process of its own (a fresh Python, as each `sagerag ingest` is), warmed
up untimed on the cell's endpoint (its counters reset after); the sequential ways run in this process. In
one process the cells' order showed in the numbers (TEI at 4 instances 0.54-0.59 after the token-level
cells, 0.78 first); `--same-process` keeps the old way.

Capacity is the endpoint's throughput at sagerag's own batches with every worker (or GPU) busy:
`RemoteTiming.capacity` at the mean tokens, bytes and texts per request the sagerag run sent. The two sequential ways' rates do not
depend on corpus size; they are timed once per endpoint setting on `--seq-cap` texts.

Run: nice -n 10 python scripts/bench_ingest.py [--texts 2000 20000] [--rtt-ms 0 30 100] [--instances 1 4]
[--workers 1 4]
(prints tables; measures, asserts nothing)
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from _bench_common import faq_answers, machine_lines, print_table, ref_package
from langchain_core.documents import Document

import sagerag.ingest
from sagerag.adapters import MiniLMContentHandler, SagemakerEmbeddings, TEIContentHandler
from sagerag.ingest import ingest_documents
from sagerag.local.sagemaker.simulated import (
    TEI_JSON_S_PER_BYTE,
    TOOLKIT_JSON_S_PER_BYTE,
    TOOLKIT_NPY_S_PER_BYTE,
    RemoteTiming,
)
from sagerag.stores import PineconeStore, ensure_index

with warnings.catch_warnings():  # imported here, not in the timed run (it takes seconds on a busy machine)
    warnings.simplefilter("ignore")
    from langchain_community.embeddings import SagemakerEndpointEmbeddings
    from langchain_community.embeddings.sagemaker_endpoint import EmbeddingsContentHandler

DISTINCT = 2000
"""Distinct texts recorded; larger corpora repeat them under new ids (the endpoint's work is the same)."""
ENDPOINTS = ("toolkit", "toolkit-free", "tei", "toolkit-npy", "toolkit-free-npy")
INGEST_BATCH = 0
"""`ingest_documents(batch_size=)` for the sagerag way (`--ingest-batch`; 0: its default)."""
EMBED_CHUNK = 0
"""Texts upserted at a time by the sagerag way, whose vectors are embedded ahead (`--embed-chunk`; 0: its
default, `sagerag.ingest.PREFETCHED_CHUNK`)."""
PARSE_PROCESSES: int | None = None
"""The sagerag way's parsing workers (`--parse-processes`; None: `ingest_documents`' default)."""
WAYS = ("tutorial loop", "stock integration", "sagerag")


def client_cpu() -> float:
    """CPU seconds of this process and of its finished children: sagerag's parsing workers, which every
    ingest joins at its end (the emulator's process is joined only at the end of the run)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def corpus(n: int) -> list[str]:
    answers = faq_answers()
    distinct = [
        answers[i % len(answers)] + (f" (copy {i // len(answers)})" if i >= len(answers) else "")
        for i in range(min(n, DISTINCT))
    ]
    return [distinct[i % len(distinct)] for i in range(n)]


def handler_for(kind: str) -> dict[str, Any]:
    """The sagerag way's content handler for an endpoint kind (the default MiniLM one: none given)."""
    if kind == "tei":
        return {"content_handler": TEIContentHandler()}
    if kind.endswith("-npy"):
        return {"content_handler": MiniLMContentHandler(binary=True)}
    return {}


def endpoint_name(kind: str, rtt_ms: float, instances: int, workers: int = 1) -> str:
    return f"{kind}-{rtt_ms:g}ms-{instances}x{workers}"


# -- the server side: a child process --------------------------------------------------------------------
def serve(
    conn: Connection,
    texts: list[str],
    specs: dict[str, tuple[bool, RemoteTiming]],
    cache: Path | None = None,
) -> None:
    """Record the answers, serve every simulated endpoint and a local Pinecone; answer counter queries."""
    from sagerag.local import LocalPinecone, LocalRuntime
    from sagerag.local.sagemaker.containers import FeatureExtraction
    from sagerag.local.sagemaker.models import shared_registry
    from sagerag.local.sagemaker.simulated import SimulatedFeatureExtraction

    recorder = SimulatedFeatureExtraction(FeatureExtraction(shared_registry().get("minilm")), RemoteTiming())
    started = time.perf_counter()
    if cache is not None and cache.exists():
        recorder.load(cache)
    known = len(recorder._answers)  # what the cache held: rewriting 1.7 GB unchanged takes a minute
    recorder.record(texts)
    if any("-npy-" in name for name in specs):
        recorder.record_npy(texts)
    if cache is not None and len(recorder._answers) != known:
        recorder.save(cache)
    recorded_s = time.perf_counter() - started
    # The stock class sends chunks of 64 texts, whose token-level responses SageMaker would refuse (over
    # 6 MB); the cap is lifted so its row still measures that class's throughput.
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalRuntime(max_response_bytes=2**31) as runtime,
        LocalPinecone(tmp) as pinecone,
    ):
        endpoints = {}
        for name, (pooled, timing) in specs.items():
            endpoints[name] = recorder.retimed(timing, pooled=pooled)
            runtime.install(name, endpoints[name])
        toolkit = recorder.retimed(RemoteTiming(), pooled=False)
        conn.send(
            {
                "runtime": runtime.url,
                "pinecone": pinecone.url,
                "api_key": pinecone.api_key,
                "recorded_s": recorded_s,
                "tokens": {t: recorder.tokens(t) for t in texts},
                "bytes": {t: toolkit.response_bytes(t) for t in texts},
            }
        )
        cpu_mark = time.process_time()
        while True:
            command, name = conn.recv()
            if command == "stop":
                return
            endpoint = endpoints[name]
            # This process's CPU since the last counters: the endpoint and Pinecone serving that run.
            cpu = time.process_time() - cpu_mark
            conn.send((endpoint.requests, endpoint.capacity(), cpu))
            endpoint.reset()
            cpu_mark = time.process_time()


# -- the client side: the three ways ----------------------------------------------------------------------
def tutorial_loop(client: Any, index: Any, endpoint: str, texts: list[str], namespace: str) -> None:
    for start in range(0, len(texts), 2):
        batch = texts[start : start + 2]
        response = client.invoke_endpoint(
            EndpointName=endpoint, Body=json.dumps({"inputs": batch}), ContentType="application/json"
        )
        vectors = [np.asarray(item[0]).mean(axis=0) for item in json.loads(response["Body"].read())]
        index.upsert(
            vectors=[
                {"id": f"loop-{start + i}", "values": [float(x) for x in v], "metadata": {"text": t}}
                for i, (v, t) in enumerate(zip(vectors, batch, strict=True))
            ],
            namespace=namespace,
        )


def stock(client: Any, index: Any, endpoint: str, texts: list[str], namespace: str) -> None:
    class Handler(EmbeddingsContentHandler):
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, **model_kwargs}).encode()

        def transform_output(self, output: Any) -> list[list[float]]:
            return [np.asarray(item[0]).mean(axis=0).tolist() for item in json.loads(output.read())]

    embeddings = SagemakerEndpointEmbeddings(client=client, endpoint_name=endpoint, content_handler=Handler())
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


def documents(texts: list[str]) -> list[Document]:
    """sagerag's input: what the other ways get as a list of texts, as LangChain documents. Built before the
    clock starts, as the other ways' texts are (2,000 pydantic documents take 8-16 ms here, 2-3% of a
    4-instance TEI run; runs before 2026-11-27 06:00 counted it)."""
    return [Document(page_content=t, metadata={"source": f"bench#{i}"}) for i, t in enumerate(texts)]


def sagerag_way(
    client: Any, index: Any, endpoint: str, docs: list[Document], namespace: str, **fields: Any
) -> None:
    """What `sagerag ingest` runs: the ledger-backed, idempotent `ingest_documents` over `PineconeStore`."""
    batching: dict[str, Any] = {"batch_size": INGEST_BATCH} if INGEST_BATCH else {}
    if PARSE_PROCESSES is not None:
        batching["parse_processes"] = PARSE_PROCESSES
    if EMBED_CHUNK:
        sagerag.ingest.PREFETCHED_CHUNK = EMBED_CHUNK
    store = PineconeStore(
        index, SagemakerEmbeddings(endpoint_name=endpoint, client=client, **fields), namespace
    )
    with tempfile.TemporaryDirectory() as tmp:
        ingest_documents(docs, store, Path(tmp) / "records.db", namespace, **batching)


def run_cell(fields: dict[str, Any]) -> None:
    """One sagerag cell in this (fresh) process, driven by `isolated` over stdin and stdout: warm up untimed
    on the cell's endpoint, say `READY`, wait for `GO` (the parent resets the endpoint's counters between),
    time one ingest, print `CELL {json}`. The cell comes on stdin, not in argv, where the local Pinecone's
    key would show in `ps`."""
    from pinecone import Pinecone

    from sagerag.local.sagemaker.server import local_runtime_client

    cell = json.loads(sys.stdin.readline())
    client = local_runtime_client(cell["runtime"])
    pc = Pinecone(api_key=cell["api_key"], host=cell["pinecone"])
    index = pc.Index(host=pc.describe_index("bench").host)
    fields = {**fields, **handler_for(cell["kind"])}
    texts = corpus(cell["texts"])
    # imports (LangChain's indexing, the ledger), connections and first buffers, untimed
    sagerag_way(client, index, cell["endpoint"], documents(texts[:64]), "warm-up", **fields)
    index.delete(delete_all=True, namespace="warm-up")
    docs = documents(texts)
    print("READY", flush=True)
    sys.stdin.readline()
    cpu, started = client_cpu(), time.perf_counter()
    sagerag_way(client, index, cell["endpoint"], docs, cell["namespace"], **fields)
    wall = time.perf_counter() - started
    print("CELL " + json.dumps({"wall": wall, "cpu": client_cpu() - cpu}), flush=True)


def isolated(
    info: dict[str, Any], endpoint: str, kind: str, texts: int, namespace: str, ready: Callable[[], object]
) -> tuple[float, float]:
    """Run one sagerag cell in a client process of its own (`run_cell`), calling `ready` when it has warmed
    up: the cell's wall seconds and client CPU seconds."""
    cell = {
        "runtime": info["runtime"],
        "pinecone": info["pinecone"],
        "api_key": info["api_key"],
        "endpoint": endpoint,
        "kind": kind,
        "texts": texts,
        "namespace": namespace,
    }
    with subprocess.Popen(
        [sys.executable, __file__, *sys.argv[1:], "--cell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(cell) + "\n")
        child.stdin.flush()
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("READY"):
                ready()
                child.stdin.write("GO\n")
                child.stdin.flush()
            elif line.startswith("CELL "):
                timed = json.loads(line[5:])
                return timed["wall"], timed["cpu"]
    raise RuntimeError(f"the client process of {endpoint} ended with {child.returncode}:\n{''.join(lines)}")


@dataclass
class Row:
    texts: int
    rtt_ms: float
    instances: int
    workers: int
    endpoint: str
    way: str
    rate: float
    """Texts per second, end to end (embedding and upserts)."""
    cpu: float
    """Client CPU seconds per wall second (1.0 = one core busy)."""
    requests: int
    timed: int
    capacity: float = 0.0
    server_cpu: float = 0.0
    """The emulator process's CPU seconds per wall second (endpoint and local Pinecone)."""


def compare(ref: str, rounds: int, argv: list[str]) -> None:
    """This script's measurement on `ref`'s sagerag and on this tree's, alternating, each in its own process
    (the client and the child serving the endpoint and Pinecone both run the code under test)."""
    here = str(Path(__file__).resolve().parents[1])
    table = []
    with ref_package(ref) as old:
        for round_ in range(1, rounds + 1):
            for label, path in ((ref, old), ("this tree", here)):
                result = subprocess.run(
                    [sys.executable, __file__, *argv, "--rows-json"],
                    env={**os.environ, "PYTHONPATH": path},
                    check=True,
                    capture_output=True,
                    text=True,
                )
                load = os.getloadavg()[0]
                found = [line for line in result.stdout.splitlines() if line.startswith("ROWS ")]
                for r in (Row(**row) for row in json.loads(found[-1][5:])):
                    if r.way != "sagerag":
                        continue
                    line = [
                        label,
                        str(round_),
                        str(r.texts),
                        r.endpoint,
                        f"{r.rtt_ms:g}",
                        str(r.instances),
                        f"{r.capacity:.0f}",
                        f"{r.rate:.1f}",
                        f"{r.rate / r.capacity:.2f}",
                        f"{r.cpu / r.rate * 1e6:.0f}",
                        f"{load:.1f}",
                    ]
                    print("  " + ", ".join(line), flush=True)
                    table.append(line)
    print()
    for line in machine_lines(("langchain-community",)):
        print(line)
    print(f"\nsagerag on {ref} and on this tree, alternating ({' '.join(argv)}):\n")
    print_table(
        [
            "code",
            "round",
            "texts",
            "endpoint",
            "round trip ms",
            "instances",
            "capacity texts/s",
            "texts/s",
            "share of capacity",
            "client CPU us/text",
            "load average",
        ],
        table,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0, 30, 100])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="model-server workers per instance of the token-level endpoints (1: the toolkit's default on a "
        "one-GPU instance; 4: what sagerag deploy sets on ml.g5.xlarge, its vCPUs); TEI always 1",
    )
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    parser.add_argument("--per-request-ms", type=float, default=RemoteTiming.per_request_s * 1000)
    parser.add_argument("--per-token-us", type=float, default=RemoteTiming.per_token_s * 1e6)
    parser.add_argument("--toolkit-ns-per-byte", type=float, default=TOOLKIT_JSON_S_PER_BYTE * 1e9)
    parser.add_argument(
        "--cache", type=Path, default=None, help="file keeping the recorded answers between runs (a pickle)"
    )
    parser.add_argument("--seq-cap", type=int, default=512, help="texts the two sequential ways are timed on")
    parser.add_argument("--big-only", nargs="*", default=None, help="endpoints run above 2,000 texts")
    parser.add_argument(
        "--max-concurrency", type=int, default=None, help="sagerag requests in flight (default: its own)"
    )
    parser.add_argument(
        "--ingest-batch", type=int, default=0, help="ingest_documents batch_size (0: default)"
    )
    parser.add_argument(
        "--embed-chunk",
        type=int,
        default=0,
        help="sagerag's upsert chunk, vectors embedded ahead (0: default)",
    )
    parser.add_argument(
        "--parse-processes",
        type=int,
        default=None,
        help="sagerag's workers parsing token-level answers (default: ingest_documents' own)",
    )
    parser.add_argument(
        "--compare-ref",
        help="also run the sagerag package of this git ref (e.g. main), each run in its own process",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="with --compare-ref: runs of each code, alternating"
    )
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run the sagerag cells in this process, one after another, instead of each in its own",
    )
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare_ref:
        argv = sys.argv[1:]
        at = argv.index("--compare-ref")
        compare(args.compare_ref, args.rounds, argv[:at] + argv[at + 2 :])
        return
    global INGEST_BATCH, EMBED_CHUNK, PARSE_PROCESSES
    INGEST_BATCH, EMBED_CHUNK, PARSE_PROCESSES = args.ingest_batch, args.embed_chunk, args.parse_processes
    fields: dict[str, Any] = {}
    if args.max_concurrency:
        fields["max_concurrency"] = args.max_concurrency
    if args.cell:
        run_cell(fields)
        return

    def timing(kind: str, rtt: float, instances: int, workers: int) -> tuple[bool, RemoteTiming]:
        container = kind.removesuffix("-npy")  # the same endpoint; the client asks it for NPY
        per_byte = {
            "toolkit": args.toolkit_ns_per_byte / 1e9,
            "toolkit-free": 0.0,
            "tei": TEI_JSON_S_PER_BYTE,
        }
        return kind == "tei", RemoteTiming(
            round_trip_s=rtt / 1000,
            per_request_s=args.per_request_ms / 1000,
            per_token_s=args.per_token_us / 1e6,
            instances=instances,
            per_response_byte_s=per_byte[container],
            per_npy_byte_s=TOOLKIT_NPY_S_PER_BYTE if container == "toolkit" else 0.0,
            workers=workers,
        )

    def workers_of(kind: str) -> list[int]:
        return [1] if kind == "tei" else args.workers

    specs = {
        endpoint_name(k, r, i, w): timing(k, r, i, w)
        for k in args.endpoints
        for r in args.rtt_ms
        for i in args.instances
        for w in workers_of(k)
    }
    everything = corpus(max(args.texts))
    # The stock class sends each text with its newlines replaced by spaces (langchain-community's
    # SagemakerEndpointEmbeddings does): record those too, or the first stock run pays for their forward
    # passes in the emulator (it made the first stock cell of a run half as fast as the others).
    distinct = list(dict.fromkeys(everything + [t.replace("\n", " ") for t in everything]))
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve, args=(theirs, distinct, specs, args.cache), daemon=True)
    child.start()
    info = ours.recv()

    def counters(name: str) -> tuple[int, float, float]:
        """Endpoint `name`'s requests and capacity and the emulator's CPU seconds since the last call."""
        ours.send(("counters", name))
        requests, capacity, server_cpu = ours.recv()
        return requests, capacity, server_cpu

    print(f"recorded {len(distinct)} distinct texts in {info['recorded_s']:.0f} s (server process)")
    mean_tokens = statistics.fmean(info["tokens"][t] for t in everything)
    mean_bytes = statistics.fmean(info["bytes"][t] for t in everything)

    from pinecone import Pinecone

    from sagerag.local.sagemaker.server import local_runtime_client

    client = local_runtime_client(info["runtime"])
    pc = Pinecone(api_key=info["api_key"], host=info["pinecone"])
    ensure_index(pc, "bench", 384)
    index = pc.Index(host=pc.describe_index("bench").host)

    # Warm-up, untimed: the first large responses of a process pay for growing its buffers (the first
    # stock run, 55 MB answers, took 10x longer than the same run later).
    token_level = [k for k in args.endpoints if k != "tei"]
    if token_level and set(args.ways) - {"sagerag"}:
        first = endpoint_name(
            token_level[0], args.rtt_ms[0], args.instances[-1], workers_of(token_level[0])[0]
        )
        stock(client, index, first, everything[:64], "warm-up")
        tutorial_loop(client, index, first, everything[:4], "warm-up")
        index.delete(delete_all=True, namespace="warm-up")
        counters(first)

    # imports (LangChain's indexing, the ledger) and connections, untimed (`run_cell` does its own)
    if "sagerag" in args.ways and args.same_process:
        kind = args.endpoints[0]
        first = endpoint_name(kind, args.rtt_ms[0], args.instances[-1], workers_of(kind)[0])
        handler = handler_for(kind)
        sagerag_way(client, index, first, documents(everything[:64]), "warm-up", **handler, **fields)
        index.delete(delete_all=True, namespace="warm-up")
        counters(first)

    rows: list[Row] = []
    sequential: dict[tuple[float, int, int, str, str], Row] = {}
    for n in args.texts:
        texts = everything[:n]
        for kind in args.endpoints:
            if n > DISTINCT and args.big_only is not None and kind not in args.big_only:
                continue
            for rtt, instances, workers in itertools.product(args.rtt_ms, args.instances, workers_of(kind)):
                name = endpoint_name(kind, rtt, instances, workers)
                ways = ["sagerag"] if kind == "tei" else args.ways
                for way in ways:
                    key = (rtt, instances, workers, kind.removesuffix("-npy"), way)
                    if way != "sagerag" and key in sequential:
                        rows.append(Row(**{**sequential[key].__dict__, "texts": n, "endpoint": kind}))
                        continue
                    timed = texts if way == "sagerag" else texts[: args.seq_cap]
                    namespace = f"{way.split()[0]}-{n}-{name}"
                    docs = documents(timed) if way == "sagerag" and args.same_process else []
                    if way == "sagerag" and not args.same_process:
                        wall, cpu_s = isolated(info, name, kind, n, namespace, partial(counters, name))
                    else:
                        cpu_s, started = client_cpu(), time.perf_counter()
                        if way == "tutorial loop":
                            tutorial_loop(client, index, name, timed, namespace)
                        elif way == "stock integration":
                            stock(client, index, name, timed, namespace)
                        else:
                            handler = handler_for(kind)
                            sagerag_way(client, index, name, docs, namespace, **handler, **fields)
                        wall = time.perf_counter() - started
                        cpu_s = client_cpu() - cpu_s
                    cpu = cpu_s / wall
                    index.delete(delete_all=True, namespace=namespace)
                    requests, capacity, server_cpu = counters(name)
                    row = Row(
                        n, rtt, instances, workers, kind, way, len(timed) / wall, cpu, requests, len(timed)
                    )
                    row.server_cpu = server_cpu / wall
                    if way == "sagerag":
                        row.capacity = capacity
                    else:
                        sequential[key] = row
                    rows.append(row)
                    print(
                        f"  {n} texts, {kind}, {rtt:g} ms, {instances} instance(s) x {workers} worker(s), "
                        f"{way}: "
                        f"{row.rate:.1f} texts/s on {len(timed)}, {requests} requests, "
                        f"client CPU {cpu:.0%} of a core, emulator {row.server_cpu:.0%}"
                        + (f", capacity {row.capacity:.0f}/s" if row.capacity else ""),
                        flush=True,
                    )
    ours.send(("stop", ""))
    child.join(30)
    if args.rows_json:
        print("ROWS " + json.dumps([r.__dict__ for r in rows]))
        return

    print()
    for line in machine_lines(("langchain-community",)):
        print(line)
    print(
        f"\nSimulated endpoint: per request {args.per_request_ms:g} ms, per token {args.per_token_us:g} us, "
        f"toolkit JSON {args.toolkit_ns_per_byte:g} ns/byte, TEI JSON {TEI_JSON_S_PER_BYTE * 1e9:g} ns/byte; "
        f"mean {mean_tokens:.0f} tokens and {mean_bytes / 1e6:.2f} MB of token-level answer per text.\n"
        "Texts/s (share of the endpoint's capacity at sagerag's batches; client CPU, 100% = one core):\n"
    )
    table = []
    for n in args.texts:
        for kind in args.endpoints:
            for rtt, instances, workers in itertools.product(args.rtt_ms, args.instances, workers_of(kind)):
                found = {
                    r.way: r
                    for r in rows
                    if (r.texts, r.endpoint, r.rtt_ms, r.instances, r.workers)
                    == (n, kind, rtt, instances, workers)
                }
                if "sagerag" not in found:
                    continue
                capacity = found["sagerag"].capacity
                line = [str(n), kind, f"{rtt:g}", str(instances), str(workers), f"{capacity:.0f}"]
                for way in args.ways:
                    r = found.get(way)
                    line.append(f"{r.rate:.1f} ({r.rate / capacity:.0%}; {r.cpu:.0%})" if r else "-")
                s = found["sagerag"]
                line += [f"{s.server_cpu:.0%}", f"{s.timed / s.requests:.1f}"]
                line += [
                    f"{s.rate / found[w].rate:.1f}x" if w in found else "-"
                    for w in ("tutorial loop", "stock integration")
                ]
                table.append(line)
    print_table(
        [
            "texts",
            "endpoint",
            "round trip ms",
            "instances",
            "workers",
            "capacity texts/s",
            *args.ways,
            "emulator CPU (sagerag run)",
            "sagerag texts/request",
            "sagerag / loop",
            "sagerag / stock",
        ],
        table,
    )


if __name__ == "__main__":
    main()
