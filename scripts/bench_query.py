"""`ask` end to end against simulated remote endpoints: where the time goes, and sagerag's own overhead.

The SageMaker endpoints are simulated remote GPU endpoints (`LocalRuntime.simulate_remote`): MiniLM
embeddings and Llama-2-7b on TGI, answering with the local models' real output (recorded in a warm-up
pass) on a modelled schedule (round trip, prefill per prompt token, one decode step per output token;
`sagerag.local.sagemaker.simulated_generation.GenerationTiming`). Pinecone is the local Pinecone with the
SageMaker FAQ ingested. The question runs through the pipeline the CLI builds in remote mode
(`pipeline.from_settings` -> `Pipeline.rag_chain` -> `stream_answer`, as `sagerag ask --stream`).

Each step is timed from the client side (botocore hooks and wrappers installed by this script):
query embedding, retrieval (Pinecone query, BM25 encoding), gate and prompt, time to first token, last
token, the guards after it (the grounding check embeds the answer's sentences: another endpoint call).
Two overhead measures, per question and round, medians reported:

- own work: total minus the time the client was blocked on the endpoints and Pinecone;
- paired: total minus a minimal client's, which makes the same wire calls with raw boto3 and pinecone
  (embed the question, query Pinecone, send the chain's own TGI request and read as many tokens).

Run: nice -n 10 python scripts/bench_query.py [--questions N] [--rounds R] [--rtt-ms MS]
(prints tables; measures, asserts nothing)
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _bench_common import FAQ_CSV, faq_questions, machine_lines, print_table
from langchain_core.prompts import PromptTemplate

from sagerag.chains import stream_answer
from sagerag.config import load_settings
from sagerag.ingest import load_path
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.local.sagemaker.simulated import RemoteTiming
from sagerag.local.sagemaker.simulated_generation import GenerationTiming
from sagerag.pipeline import Pipeline, from_settings
from sagerag.stores import PineconeStore

API_KEY = "bench-query-key"
STREAM = "InvokeEndpointWithResponseStream"


class Probe:
    """Timestamps of one `ask`, collected by wrappers around the network calls."""

    def __init__(self) -> None:
        self.ports: dict[int, str] = {}
        """Which service listens on which port (set once the servers run)."""
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, str, float, float]] = []
        """(service, path, start, end) of each HTTP request until its response headers arrived."""
        self.retrieval: tuple[float, float] | None = None
        self.prompt = 0.0
        self.token_at: list[float] = []
        self.stream_blocked = 0.0
        self.body: bytes | None = None

    def durations(self, service: str, path: str = "") -> list[float]:
        return [end - start for s, p, start, end in self.calls if s == service and path in p]


PROBE = Probe()


def instrument(client: Any) -> None:
    """Time every HTTP request at the transport (urllib3 for botocore, httpx for pinecone), each event of
    the TGI response stream, and the retrieval step; keep the TGI request body for the minimal client."""
    import urllib3.connectionpool

    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    @functools.wraps(urlopen)
    def timed_urlopen(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return urlopen(pool, method, url, *args, **kwargs)
        finally:
            if pool.port in PROBE.ports and threading.current_thread() is threading.main_thread():
                PROBE.calls.append((PROBE.ports[pool.port], url, started, time.perf_counter()))

    urllib3.connectionpool.HTTPConnectionPool.urlopen = timed_urlopen  # type: ignore[method-assign]

    handle = httpx.HTTPTransport.handle_request

    @functools.wraps(handle)
    def timed_handle(transport: Any, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            return handle(transport, request)
        finally:
            if request.url.port in PROBE.ports and threading.current_thread() is threading.main_thread():
                PROBE.calls.append(
                    (PROBE.ports[request.url.port], request.url.path, started, time.perf_counter())
                )

    httpx.HTTPTransport.handle_request = timed_handle  # type: ignore[method-assign]

    search = PineconeStore.similarity_search_with_score

    @functools.wraps(search)
    def timed_search(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            PROBE.retrieval = (started, time.perf_counter())

    PineconeStore.similarity_search_with_score = timed_search  # type: ignore[method-assign]

    render = PromptTemplate.invoke

    @functools.wraps(render)
    def timed_render(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return render(*args, **kwargs)
        finally:
            PROBE.prompt += time.perf_counter() - started

    PromptTemplate.invoke = timed_render  # type: ignore[method-assign]

    def before(params: dict[str, Any], **_: Any) -> None:
        PROBE.body = params["body"]

    def after(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Body"] = TimedEvents(parsed["Body"])

    client.meta.events.register(f"before-call.sagemaker-runtime.{STREAM}", before)
    client.meta.events.register(f"after-call.sagemaker-runtime.{STREAM}", after)


class TimedEvents:
    """The response stream, timing each event's arrival and the time spent blocked waiting for it."""

    def __init__(self, events: Any):
        self._events = events

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self._events)
        while True:
            started = time.perf_counter()
            try:
                event = next(iterator)
            except StopIteration:
                PROBE.stream_blocked += time.perf_counter() - started
                return
            now = time.perf_counter()
            PROBE.stream_blocked += now - started
            if "PayloadPart" in event:
                PROBE.token_at.append(now)
            yield event

    def close(self) -> None:
        self._events.close()


def ask(chain: Any, question: str) -> dict[str, float]:
    """One `sagerag ask --stream`: the step times of this question."""
    PROBE.reset()
    cpu = time.thread_time()
    started = time.perf_counter()
    shown: float | None = None
    streamed = stream_answer(chain, question)
    for _ in streamed:
        shown = shown or time.perf_counter()
    ended = time.perf_counter()
    cpu = time.thread_time() - cpu
    result = streamed.result
    assert PROBE.retrieval is not None
    embeds = PROBE.durations("sagemaker", "/endpoints/minilm/")
    pinecone = sum(PROBE.durations("pinecone"))
    step = {
        "total": ended - started,
        "query embedding": embeds[0],
        "Pinecone query": pinecone,
        "retrieval, own work (BM25 query, documents)": PROBE.retrieval[1]
        - PROBE.retrieval[0]
        - embeds[0]
        - pinecone,
        "grounding embeddings (calls during and after generation)": sum(embeds[1:]),
        "grounding embedding calls": len(embeds) - 1,
        "first answer text shown": (shown or ended) - started,
        "tokens": len(PROBE.token_at),
        "abstained": float(result["abstained"]),
        "client CPU (asking thread)": cpu,
    }
    waited = sum(embeds) + pinecone
    if not PROBE.token_at:  # the score gate answered: no generation
        step["gate, context, chain steps"] = ended - PROBE.retrieval[1]
    else:
        request = next(start for service, path, start, _ in PROBE.calls if "/endpoints/llama2/" in path)
        first, last = PROBE.token_at[0], PROBE.token_at[-1]
        step |= {
            "gate, context, chain steps": request - PROBE.retrieval[1] - PROBE.prompt,
            "prompt build": PROBE.prompt,
            "time to first token (request to token)": first - request,
            "first to last token": last - first,
            "after the last token (guards, grounding)": ended - last,
        }
        waited += sum(PROBE.durations("sagemaker", "/endpoints/llama2/")) + PROBE.stream_blocked
    step["waiting on endpoints and Pinecone"] = waited
    step["own work"] = step["total"] - waited
    return step


def direct(client: Any, index: Any, namespace: str, question: str, body: bytes | None, tokens: int) -> float:
    """The minimal client: the same wire calls with raw boto3 and pinecone, no LangChain, no guards."""
    started = time.perf_counter()
    response = client.invoke_endpoint(
        EndpointName="minilm", Body=json.dumps({"inputs": [question]}), ContentType="application/json"
    )
    vector = np.asarray(json.loads(response["Body"].read())[0][0]).mean(axis=0)
    vector = vector / np.linalg.norm(vector)
    index.query(vector=[float(x) for x in vector], top_k=5, namespace=namespace, include_metadata=True)
    if body is not None:
        stream = client.invoke_endpoint_with_response_stream(
            EndpointName="llama2", Body=body, ContentType="application/json"
        )["Body"]
        seen = 0
        for event in stream:
            seen += "PayloadPart" in event
            if seen >= tokens:
                break
        stream.close()
    return time.perf_counter() - started


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def pipeline_for(runtime: LocalRuntime, pinecone: LocalPinecone, data_dir: str, **overrides: Any) -> Pipeline:
    """What `sagerag` builds when pointed at these endpoints and this Pinecone (remote mode)."""
    config = Path(data_dir) / "sagerag.toml"  # an empty config file: only these settings and defaults
    config.touch()
    settings = load_settings(
        config,
        remote=True,
        endpoint_url=runtime.url,
        pinecone_host=pinecone.host,
        pinecone_api_key=API_KEY,
        data_dir=data_dir,
        **overrides,
    )
    return from_settings(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rtt-ms", type=float, nargs="+", default=[0, GenerationTiming.round_trip_s * 1000, 100]
    )
    parser.add_argument(
        "--per-output-token-ms", type=float, default=GenerationTiming.per_output_token_s * 1000
    )
    parser.add_argument(
        "--prefill-per-token-us", type=float, default=GenerationTiming.prefill_per_token_s * 1e6
    )
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the timed asks of the first variant (client CPU)"
    )
    args = parser.parse_args()
    # boto3 signs every request; the simulated endpoints ignore the signature (no real credentials used)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

    def timings(rtt_ms: float) -> tuple[RemoteTiming, GenerationTiming]:
        return RemoteTiming(round_trip_s=rtt_ms / 1000), GenerationTiming(
            round_trip_s=rtt_ms / 1000,
            per_output_token_s=args.per_output_token_ms / 1000,
            prefill_per_token_s=args.prefill_per_token_us / 1e6,
        )

    embedding = timings(0)[0]
    every = faq_questions()
    questions = [str(every[i * len(every) // args.questions]["question"]) for i in range(args.questions)]
    variants = {"sagerag ask (defaults)": {}, "guards off": {"loop_guard": False, "grounding": "off"}}
    runs = [f"{name}, {rtt:g} ms" for rtt in args.rtt_ms for name in variants]
    steps: dict[str, list[dict[str, float]]] = {run: [] for run in runs}
    paired: dict[str, list[float]] = {run: [] for run in runs}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalRuntime() as runtime,
        LocalPinecone(f"{tmp}/pinecone", api_key=API_KEY) as pinecone,
    ):
        simulated = runtime.simulate_remote(*timings(0))
        with pipeline_for(runtime, pinecone, tmp) as writer:
            docs = load_path(FAQ_CSV, mode=writer.settings.index_text)
            writer.ingest(docs)
        pipeline = pipeline_for(runtime, pinecone, tmp, max_new_tokens=args.max_new_tokens)
        chains = {
            name: pipeline.rag_chain(k=5, max_context_chars=1000, **overrides)
            for name, overrides in variants.items()
        }
        raw = runtime.client()
        index = pinecone.client().Index(
            host=pinecone.client().describe_index(pipeline.settings.pinecone_index).host
        )
        PROBE.ports = {_port(runtime.url): "sagemaker", _port(pinecone.host): "pinecone"}
        instrument(pipeline.embeddings.client)
        started = time.perf_counter()
        for question in questions:  # warm-up: the models' answers are recorded here, outside any timing
            for chain in chains.values():
                ask(chain, question)
        print(f"recorded {simulated.generation.recorded} answers in {time.perf_counter() - started:.0f} s")
        recorded = (simulated.generation.answers, len(simulated.embeddings._answers))
        profiler = cProfile.Profile() if args.profile else None
        for rtt in args.rtt_ms:
            embeddings_timing, generation_timing = timings(rtt)
            runtime.install("minilm", simulated.embeddings.retimed(embeddings_timing))
            runtime.install("llama2", simulated.generation.retimed(generation_timing))
            for _ in range(args.rounds):
                for question in questions:
                    for name, chain in chains.items():
                        run = f"{name}, {rtt:g} ms"
                        if profiler is not None and run == runs[0]:
                            step = profiler.runcall(ask, chain, question)
                        else:
                            step = ask(chain, question)
                        body, tokens = PROBE.body, int(step["tokens"])
                        baseline = direct(
                            raw, index, pipeline.settings.pinecone_namespace, question, body, tokens
                        )
                        steps[run].append(step)
                        paired[run].append(step["total"] - baseline)
                        print(
                            f"  {run}: {question[:50]!r} {step['total']:.3f} s, {tokens} tokens, "
                            f"own {step['own work']:.3f} s, vs direct {step['total'] - baseline:+.3f} s",
                            flush=True,
                        )
        new_recordings = (simulated.generation.answers, len(simulated.embeddings._answers))
        pipeline.close()

    print()
    for line in machine_lines(("langchain-core", "langchain-aws")):
        print(line)
    print(
        f"\n{len(questions)} FAQ questions x {args.rounds} rounds through `Pipeline.rag_chain` (remote mode, hybrid "
        f"retrieval, k=5, 1,000-character context, max_new_tokens={args.max_new_tokens}), `stream_answer`.\n"
        f"Simulated endpoints: round trip {', '.join(f'{r:g}' for r in args.rtt_ms)} ms; Llama 2: prefill {args.prefill_per_token_us:g} us "
        f"per prompt token, {args.per_output_token_ms:g} ms per output token; MiniLM: "
        f"{embedding.per_request_s * 1000:g} ms per request + {embedding.per_token_s * 1e6:g} us per token.\n"
        f"Recordings made during timed runs: {new_recordings[0] - recorded[0]} answers, "
        f"{new_recordings[1] - recorded[1]} embedded texts (0 means everything timed was modelled).\n"
        "Median seconds over questions and rounds; shares of the median total.\n"
    )
    rows_order = [
        "query embedding",
        "Pinecone query",
        "retrieval, own work (BM25 query, documents)",
        "gate, context, chain steps",
        "prompt build",
        "time to first token (request to token)",
        "first to last token",
        "after the last token (guards, grounding)",
        "total",
        "first answer text shown",
        "grounding embeddings (calls during and after generation)",
        "grounding embedding calls",
        "tokens",
        "waiting on endpoints and Pinecone",
        "own work",
        "client CPU (asking thread)",
    ]
    names = runs
    table = []
    for row in rows_order:
        line = [row]
        for name in names:
            values = [s[row] for s in steps[name] if row in s]
            total = statistics.median(s["total"] for s in steps[name])
            if not values:
                line.append("-")
            elif row in ("tokens", "grounding embedding calls"):
                line.append(f"{statistics.median(values):g}")
            else:
                med = statistics.median(values)
                line.append(f"{med:.3f} ({med / total:.1%})")
        table.append(line)
    for name in names:
        ratios = [s["own work"] / s["total"] for s in steps[name]]
        cpu = [s["client CPU (asking thread)"] / s["total"] for s in steps[name]]
        pairs = [p / s["total"] for p, s in zip(paired[name], steps[name], strict=True)]
        print(
            f"{name}: own work {statistics.median(ratios):.1%} of the total (median of per-ask shares, max "
            f"{max(ratios):.1%}); client CPU {statistics.median(cpu):.1%}; vs the minimal client {statistics.median(pairs):+.1%} (median, max "
            f"{max(pairs):+.1%}); target < 5%"
        )
    print()
    print_table(["step", *names], table)
    if profiler is not None:
        print(f"\nWhere the asking thread's CPU goes ({names[0]}, all timed asks; own time):\n")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
