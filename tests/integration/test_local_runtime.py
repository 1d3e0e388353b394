"""The local SageMaker Runtime through plain boto3: container formats, streaming, errors, concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from sagerag.local.sagemaker.eventstream import model_stream_error, payload_part

SEED_CONTEXT = (
    "Managed Spot Training can be used with all instances supported in Amazon SageMaker. "
    "Managed Spot Training is supported in all AWS Regions where Amazon SageMaker is currently available."
)
SEED_PROMPT = (
    'Use the CONTEXT to answer the QUESTION. If the answer is not in the CONTEXT, say "I don\'t know".\n\n'
    f"CONTEXT:\n{SEED_CONTEXT}\n\nQUESTION: Which instances can I use with Managed Spot Training in SageMaker?"
)


def _invoke(client: Any, endpoint: str, payload: Any, **kwargs: Any) -> Any:
    response = client.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(payload), ContentType="application/json", **kwargs
    )
    assert response["ContentType"] == "application/json"
    return json.loads(response["Body"].read())


def test_eventstream_frames_decode_with_botocore() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(payload_part(b"data:hello\n") + model_stream_error("boom"))
    first, second = list(buffer)
    assert first.headers[":event-type"] == "PayloadPart" and first.payload == b"data:hello\n"
    assert second.headers[":message-type"] == "exception" and b"boom" in second.payload


def test_minilm_returns_ragged_token_vectors(runtime_client: Any) -> None:
    out = _invoke(runtime_client, "minilm", {"inputs": ["hello", "a somewhat longer sentence"]})
    shapes = [np.asarray(item).shape for item in out]
    assert shapes[0][0] == 1 and shapes[0][2] == 384
    assert shapes[0][1] < shapes[1][1]  # per-input lengths, no padding


def test_minilm_padded_pads_to_longest_with_real_outputs(runtime_client: Any) -> None:
    out = np.asarray(
        _invoke(runtime_client, "minilm-padded", {"inputs": ["hello", "a somewhat longer sentence"]})
    )
    assert out.shape[0] == 2 and out.shape[2] == 384
    assert np.abs(out[0, -1]).sum() > 0  # padding positions hold model outputs, not zeros


def test_minilm_answers_npy_when_asked_as_the_toolkit_does(runtime_client: Any) -> None:
    """Asked for NPY, the toolkit `np.save`s the pipeline's nested lists: float64 `(n, 1, tokens, dim)`
    for texts of one token count, numpy's own refusal (a 400 from the container) for texts of several,
    and JSON answers hold the same values."""
    import io

    texts = ["hello there", "hello again"]  # 4 tokens each with [CLS] and [SEP]
    response = runtime_client.invoke_endpoint(
        EndpointName="minilm",
        Body=json.dumps({"inputs": texts}),
        ContentType="application/json",
        Accept="application/x-npy",
    )
    assert response["ContentType"] == "application/x-npy"
    array = np.load(io.BytesIO(response["Body"].read()), allow_pickle=False)
    assert array.dtype == np.float64 and array.shape == (2, 1, 4, 384)
    as_json = np.asarray(_invoke(runtime_client, "minilm", {"inputs": texts}))
    assert np.allclose(array, as_json, atol=1e-6)
    with pytest.raises(ClientError, match="inhomogeneous shape") as info:
        runtime_client.invoke_endpoint(
            EndpointName="minilm",
            Body=json.dumps({"inputs": ["hello", "a somewhat longer sentence"]}),
            ContentType="application/json",
            Accept="application/x-npy",
        )
    assert info.value.response["OriginalStatusCode"] == 400
    with pytest.raises(ClientError, match="text/csv is not supported"):
        runtime_client.invoke_endpoint(
            EndpointName="minilm", Body=b'{"inputs": "hi"}', ContentType="application/json", Accept="text/csv"
        )


def test_npy_answers_are_the_bytes_np_save_writes() -> None:
    """The local container writes NPY without `np.save`'s copies, byte for byte what it writes for the
    toolkit's lists of per-text arrays (float32 made float64) and for one padded array."""
    import io

    from sagerag.local.sagemaker.containers import npy_bytes

    rng = np.random.default_rng(3)
    per_text = [rng.random((1, 5, 384), dtype=np.float32) for _ in range(3)]
    padded = rng.random((2, 5, 384))
    for value, stacked in ((per_text, np.array(per_text)), (padded, padded)):
        saved = io.BytesIO()
        np.save(saved, stacked.astype(np.float64))
        assert npy_bytes(value) == saved.getvalue()


def test_tgi_returns_generated_text_and_full_text(runtime_client: Any) -> None:
    params = {"max_new_tokens": 8, "seed": 1}
    out = _invoke(runtime_client, "llama2", {"inputs": "Say hi.", "parameters": params})
    assert isinstance(out[0]["generated_text"], str) and out[0]["generated_text"]
    full = _invoke(
        runtime_client, "llama2", {"inputs": "Say hi.", "parameters": {**params, "return_full_text": True}}
    )
    assert full[0]["generated_text"] == "Say hi." + out[0]["generated_text"]
    detailed = _invoke(
        runtime_client, "llama2", {"inputs": "Say hi.", "parameters": {**params, "details": True}}
    )
    assert detailed[0]["details"]["generated_tokens"] <= 8


def test_stream_yields_parts_that_join_to_the_plain_answer(runtime_client: Any) -> None:
    payload = {"inputs": "Name three colours.", "parameters": {"max_new_tokens": 24, "do_sample": False}}
    plain = _invoke(runtime_client, "llama2", payload)[0]["generated_text"]
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="llama2", Body=json.dumps({**payload, "stream": True}), ContentType="application/json"
    )
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    assert len(parts) > 3
    tokens = [json.loads(p.decode()[len("data:") :]) for p in parts]
    assert "".join(t["token"]["text"] for t in tokens if not t["token"]["special"]) == plain
    assert tokens[-1]["generated_text"] == plain


def test_tgi_answers_from_the_context(runtime_client: Any) -> None:
    """The generator reads the prompt: its answer repeats a sentence of the CONTEXT.

    Which of the two sentences a 135M model picks varies with the CPU's floating-point kernels, so the
    test asserts that the answer comes from the context, not which sentence.
    """
    out = _invoke(runtime_client, "llama2", {"inputs": SEED_PROMPT, "parameters": {"max_new_tokens": 48}})
    answer = out[0]["generated_text"]
    sentences = [s.strip().rstrip(".") for s in SEED_CONTEXT.split(". ")]
    assert any(sentence in answer for sentence in sentences), answer


def test_jumpstart_chat_needs_eula_and_answers_dialogs(runtime_client: Any) -> None:
    dialog = {"inputs": [[{"role": "user", "content": "Say hello."}]], "parameters": {"max_new_tokens": 8}}
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        _invoke(runtime_client, "llama2-chat", dialog)
    assert "accept_eula" in str(info.value)
    out = _invoke(runtime_client, "llama2-chat", dialog, CustomAttributes="accept_eula=true")
    assert out[0]["generation"]["role"] == "assistant" and out[0]["generation"]["content"]


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    [
        ("llama2", b"{not json", 400),
        ("llama2", json.dumps({"prompt": "wrong field"}).encode(), 422),
        ("llama2", json.dumps({"inputs": "x", "parameters": {"max_new_tokens": 0}}).encode(), 422),
        ("llama2", json.dumps({"inputs": "x", "parameters": {"temperature": -1}}).encode(), 422),
        (
            "llama2",
            json.dumps({"inputs": "word " * 5000, "parameters": {"max_new_tokens": 10}}).encode(),
            422,
        ),
        ("minilm", json.dumps({"inputs": 5}).encode(), 400),
    ],
)
def test_bad_requests_raise_model_error_with_original_status(
    runtime_client: Any, endpoint: str, body: bytes, status: int
) -> None:
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        runtime_client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json")
    assert info.value.response["OriginalStatusCode"] == status
    assert info.value.response["OriginalMessage"]
    assert endpoint in str(info.value)


def test_prompt_too_long_reports_tgi_token_limit(runtime_client: Any) -> None:
    body = json.dumps({"inputs": "word " * 5000, "parameters": {"max_new_tokens": 10}})
    with pytest.raises(runtime_client.exceptions.ModelError, match="max_new_tokens"):
        runtime_client.invoke_endpoint(EndpointName="llama2", Body=body, ContentType="application/json")


def test_unknown_endpoint_and_oversize_body_raise_validation_error(runtime_client: Any) -> None:
    with pytest.raises(runtime_client.exceptions.ValidationError, match="nope"):
        runtime_client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    big = json.dumps({"inputs": ["x" * (7 * 1024 * 1024)]})
    with pytest.raises(runtime_client.exceptions.ValidationError, match="6 MB"):
        runtime_client.invoke_endpoint(EndpointName="minilm", Body=big, ContentType="application/json")


def test_stream_validation_error_comes_before_the_stream(runtime_client: Any) -> None:
    body = json.dumps({"inputs": "x", "parameters": {"max_new_tokens": -1}, "stream": True})
    with pytest.raises(runtime_client.exceptions.ModelError):
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="llama2", Body=body, ContentType="application/json"
        )


def test_concurrent_clients_get_their_own_answers(runtime: Any) -> None:
    """8 clients x 20 mixed requests: every response is the one for its request."""
    texts = [f"sentence number {i} about topic {i % 5}" for i in range(20)]
    client = runtime.client()
    expected = {t: np.asarray(_invoke(client, "minilm", {"inputs": [t]})[0][0]).mean(axis=0) for t in texts}
    prompts = {i: f"Repeat exactly: {i}" for i in range(4)}
    answers = {
        i: _invoke(client, "llama2", {"inputs": p, "parameters": {"max_new_tokens": 4}})
        for i, p in prompts.items()
    }

    def worker(w: int) -> int:
        own = runtime.client()
        checked = 0
        for j in range(20):
            if (w + j) % 5 == 0:
                i = (w + j) % 4
                out = _invoke(own, "llama2", {"inputs": prompts[i], "parameters": {"max_new_tokens": 4}})
                assert out == answers[i]
            else:
                text = texts[(w * 7 + j) % 20]
                vec = np.asarray(_invoke(own, "minilm", {"inputs": [text]})[0][0]).mean(axis=0)
                assert np.allclose(vec, expected[text], atol=1e-5)
            checked += 1
        return checked

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 160


def test_health_answers_during_a_generation(runtime: Any) -> None:
    import urllib.request

    client = runtime.client()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            _invoke, client, "llama2", {"inputs": "Tell a story.", "parameters": {"max_new_tokens": 64}}
        )
        with urllib.request.urlopen(runtime.endpoint_url + "/ping", timeout=2) as response:
            assert json.loads(response.read())["status"] == "ok"
        assert slow.result()[0]["generated_text"]
