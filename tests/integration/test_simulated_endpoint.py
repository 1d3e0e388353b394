"""The simulated remote endpoint used by the ingest benchmark: real answers, and its instances queue."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sagerag.adapters import SagemakerEmbeddings, TEIContentHandler
from sagerag.local import LocalRuntime
from sagerag.local.sagemaker.containers import FeatureExtraction
from sagerag.local.sagemaker.simulated import RemoteTiming, SimulatedFeatureExtraction

TEXTS = ["Managed Spot Training saves money.", "Studio is a web IDE.", "Canvas needs no code."]


def test_answers_match_the_real_endpoint(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    simulated = SimulatedFeatureExtraction(
        inner, RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0)
    )
    with LocalRuntime() as other:
        other.install("minilm-remote", simulated)
        client = other.client()
        remote = SagemakerEmbeddings(endpoint_name="minilm-remote", client=client).embed_documents(TEXTS)
        real = SagemakerEmbeddings(endpoint_name="minilm", client=client).embed_documents(TEXTS)
    assert np.allclose(remote, real, atol=1e-6)
    assert simulated.requests == 1


def test_pooled_answers_match_the_real_tei_endpoint(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    simulated = SimulatedFeatureExtraction(
        inner, RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0), pooled=True
    )
    with LocalRuntime() as other:
        other.install("tei-remote", simulated)
        client = other.client()
        remote = SagemakerEmbeddings(
            endpoint_name="tei-remote", client=client, content_handler=TEIContentHandler()
        ).embed_documents(TEXTS)
        real = SagemakerEmbeddings(
            endpoint_name="minilm-tei", client=client, content_handler=TEIContentHandler()
        ).embed_documents(TEXTS)
    assert np.allclose(remote, real, atol=1e-6)


def test_token_answers_are_written_as_the_toolkit_writes_them(runtime: LocalRuntime) -> None:
    # The toolkit turns float32 outputs into Python floats and writes them with `json`: a client parses
    # those ~20-byte doubles, so the benchmark's client cost depends on answering with the same bytes.
    simulated = SimulatedFeatureExtraction(
        FeatureExtraction(runtime.app.registry.get("minilm")),
        RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0),
    )
    answer = simulated.invoke(json.dumps({"inputs": TEXTS[:1]}).encode())
    tokens = runtime.app.registry.get("minilm").token_embeddings(TEXTS[:1])[0]
    assert json.loads(answer) == [tokens[None].tolist()]
    assert len(answer) > 18 * tokens.size


def test_the_response_s_writing_time_counts_towards_service() -> None:
    timing = RemoteTiming(per_request_s=0.01, per_token_s=0.0, per_response_byte_s=1e-8)
    assert timing.service_s(tokens=100, response_bytes=1_000_000) == 0.01 + 0.01


def test_requests_beyond_the_instances_queue(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    timing = RemoteTiming(round_trip_s=0, per_request_s=0.05, per_token_s=0, instances=1)
    simulated = SimulatedFeatureExtraction(inner, timing)
    simulated.record(TEXTS)
    body = json.dumps({"inputs": TEXTS[:1]}).encode()

    def call(_: Any) -> bytes:
        return simulated.invoke(body)

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(4)))
    # One instance serves one request at a time: four requests cannot finish before four service times.
    assert time.perf_counter() - started >= 4 * 0.05
    assert simulated.requests == 4 and abs(simulated.busy_s - 0.2) < 1e-9


def test_capacity_is_instances_times_batch_throughput() -> None:
    timing = RemoteTiming(per_request_s=0.01, per_token_s=0.0001, instances=4)
    assert timing.capacity(tokens_per_text=50, texts_per_request=32) == 4 * 32 / (0.01 + 0.0001 * 1600)
