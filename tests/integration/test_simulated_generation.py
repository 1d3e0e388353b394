"""The simulated remote Llama 2 (TGI) endpoint used by the query benchmark: the local model's real answers
on both routes, recorded once, served on a modelled schedule whose instances queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sagerag.adapters import make_embeddings, make_llm
from sagerag.local import LocalRuntime
from sagerag.local.sagemaker.simulated import RemoteTiming
from sagerag.local.sagemaker.simulated_generation import GenerationTiming

PROMPT = "[INST] Name one AWS service for training models. [/INST]"
INSTANT = GenerationTiming(round_trip_s=0, per_request_s=0, prefill_per_token_s=0, per_output_token_s=0)
MAX_NEW = {"max_new_tokens": 12}


@pytest.fixture(scope="module")
def remote(runtime: LocalRuntime) -> Iterator[LocalRuntime]:
    """A second runtime (the session's models, shared) whose `minilm` and `llama2` are simulated."""
    with LocalRuntime() as other:
        yield other


def _body(**parameters: object) -> bytes:
    return json.dumps({"inputs": PROMPT, "parameters": {**MAX_NEW, **parameters}}).encode()


def test_both_routes_answer_what_the_local_model_answers(runtime: LocalRuntime, remote: LocalRuntime) -> None:
    simulated = remote.simulate_remote(generation=INSTANT).generation
    real = make_llm("llama2", client=runtime.client(), model_kwargs=MAX_NEW).invoke(PROMPT)
    llm = make_llm("llama2", client=remote.client(), model_kwargs=MAX_NEW)
    assert llm.invoke(PROMPT) == real
    assert "".join(llm.stream(PROMPT)) == real
    # generated once by the model, replayed for the second and the streamed request
    assert simulated.recorded == 1 and simulated.requests == 2


def test_stream_lines_are_tgis(remote: LocalRuntime) -> None:
    simulated = remote.simulate_remote(generation=INSTANT).generation
    response = remote.client().invoke_endpoint_with_response_stream(
        EndpointName="llama2", Body=json.dumps({"inputs": PROMPT, "parameters": MAX_NEW, "stream": True})
    )
    payload = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event)
    lines = [json.loads(line[len(b"data:") :]) for line in payload.split(b"\n\n") if line]
    assert all(line["token"]["text"] is not None for line in lines)
    assert lines[-1]["generated_text"] == "".join(line["token"]["text"] for line in lines)
    assert lines[-1]["details"]["generated_tokens"] == len(lines) == simulated.output_tokens


def test_bad_parameters_are_refused_as_tgi_does(remote: LocalRuntime) -> None:
    remote.simulate_remote(generation=INSTANT)
    client = remote.client()
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="llama2", Body=_body(max_new_tokens=0))
    assert "max_new_tokens" in str(info.value)


def test_recorded_ahead_requests_do_not_generate(remote: LocalRuntime) -> None:
    simulated = remote.simulate_remote(generation=INSTANT).generation
    tokens = simulated.record_body(_body())
    assert simulated.recorded == 1
    make_llm("llama2", client=remote.client(), model_kwargs=MAX_NEW).invoke(PROMPT)
    assert simulated.recorded == 1 and simulated.output_tokens == tokens
    assert simulated.retimed(GenerationTiming()).record_body(_body()) == tokens  # recordings are shared


def test_requests_beyond_the_instances_queue(remote: LocalRuntime) -> None:
    timing = GenerationTiming(round_trip_s=0, per_request_s=0.05, prefill_per_token_s=0, per_output_token_s=0)
    simulated = remote.simulate_remote(generation=timing).generation
    simulated.record_body(_body())

    def call(_: int) -> bytes:
        return simulated.invoke(_body())

    started = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(call, range(3)))
    # One instance generates for one request at a time: three cannot finish before three service times.
    assert time.perf_counter() - started >= 3 * 0.05
    assert len(set(answers)) == 1 and simulated.requests == 3


def test_a_client_that_closes_the_stream_frees_the_instance(remote: LocalRuntime) -> None:
    timing = GenerationTiming(round_trip_s=0, per_request_s=0, prefill_per_token_s=0, per_output_token_s=0.02)
    simulated = remote.simulate_remote(generation=timing).generation
    tokens = simulated.record_body(_body())
    stream = simulated.stream(_body())
    next(stream)
    stream.close()  # what the server does when the client goes away
    assert simulated.requests == 1 and simulated.output_tokens == 1 < tokens
    assert simulated.invoke(_body())  # the one instance serves the next request


def test_the_embeddings_endpoint_is_simulated_too(remote: LocalRuntime) -> None:
    simulated = remote.simulate_remote(
        embeddings=RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0), generation=INSTANT
    ).embeddings
    vector = make_embeddings("minilm", client=remote.client()).embed_query("What is SageMaker?")
    assert len(vector) == 384 and simulated.requests == 1


def test_timing_model_adds_up() -> None:
    timing = GenerationTiming(round_trip_s=0.03, per_request_s=0.001, prefill_per_token_s=0.0002)
    assert timing.service_s(500, 10) == pytest.approx(0.001 + 0.1 + 0.31)
    assert timing.first_token_s(500) == pytest.approx(0.03 + 0.001 + 0.1 + 0.031)
    assert timing.total_s(500, 10) == pytest.approx(0.03 + 0.411)
