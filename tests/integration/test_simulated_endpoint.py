"""The simulated remote endpoint used by the ingest benchmark: real answers, and its instances queue."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sagerag.adapters import SagemakerEmbeddings
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
