"""The Messages API chat model against recorded endpoint payloads: requests it sends, responses it reads.

The payloads are in the shape TGI's Messages API sends them through SageMaker (`data:{chunk}` SSE lines,
split across event-stream payload parts wherever the transport cuts them, then `data: [DONE]`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel, Field

from sagerag.adapters import (
    EULA_ATTRIBUTE,
    Llama2ChatContentHandler,
    SagemakerChatModel,
    SagemakerLLM,
    make_chat_model,
    make_model,
)
from sagerag.adapters.messages import SagemakerMessagesChatModel
from sagerag.config import load_settings
from sagerag.errors import ConfigurationError, EndpointOutputError
from tests.standard_models import Llama2Chat, MessagesChat
from tests.support import empty_config

ENDPOINT = "tgi-messages"
HEAD = '"id":"","object":"chat.completion.chunk","created":1732000000,"model":"meta-llama/Llama-3.1-8B-Instruct","system_fingerprint":"2.4.0-sha-0ff6ff6"'


def _sse(choices: list[dict[str, Any]] | None = None, usage: dict[str, int] | None = None) -> bytes:
    body = json.dumps({"choices": choices or [], "usage": usage})[1:]
    return f"data:{{{HEAD},{body}\n\n".encode()


def _delta(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _sse([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


ARGUMENT_PIECES = [
    '{"',
    "question",
    '":',
    ' "',
    "Which instances",
    " can I use with Managed",
    ' Spot Training?"',
    "}",
]
TOOL_CALL_STREAM = b"".join(
    [
        _delta({"role": "assistant", "content": ""}),
        _delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "sagemaker_faq", "arguments": ""},
                    }
                ]
            }
        ),
        *(_delta({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in ARGUMENT_PIECES),
        _delta({}, "tool_calls"),
        _sse(usage={"prompt_tokens": 120, "completion_tokens": 19, "total_tokens": 139}),
        b"data: [DONE]\n\n",
    ]
)
"""A recorded streamed tool call: the name first, then the arguments in eight fragments."""


def _parts(stream: bytes, size: int) -> list[dict[str, Any]]:
    """The stream as event-stream payload parts of `size` bytes, cut without regard for lines."""
    return [{"PayloadPart": {"Bytes": stream[i : i + size]}} for i in range(0, len(stream), size)]


class ScriptedClient:
    """A `sagemaker-runtime` client that records requests and answers with recorded payloads."""

    def __init__(self, body: bytes = b"", stream: bytes = b"", part_size: int = 7):
        self.body, self.stream, self.part_size = body, stream, part_size
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append({**kwargs, "Body": json.loads(kwargs["Body"])})
        return {"Body": io.BytesIO(self.body), "ContentType": "application/json"}

    def invoke_endpoint_with_response_stream(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append({**kwargs, "Body": json.loads(kwargs["Body"])})
        parts: Iterator[dict[str, Any]] = iter(_parts(self.stream, self.part_size))
        return {"Body": parts, "ContentType": "text/event-stream"}


def _completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "object": "chat.completion",
            "id": "",
            "created": 1732000000,
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "system_fingerprint": "2.4.0-sha-0ff6ff6",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34},
        }
    ).encode()


@tool
def sagemaker_faq(question: str) -> str:
    """Answers questions about Amazon SageMaker from its FAQ."""
    return "Answer: all instances."


def _model(client: ScriptedClient, **kwargs: Any) -> SagemakerMessagesChatModel:
    return SagemakerMessagesChatModel(endpoint_name=ENDPOINT, client=client, **kwargs)


@pytest.mark.parametrize("part_size", [1, 7, 64, 100_000])
def test_streamed_tool_call_split_across_payload_parts_reassembles(part_size: int) -> None:
    client = ScriptedClient(stream=TOOL_CALL_STREAM, part_size=part_size)
    chunks = list(_model(client).bind_tools([sagemaker_faq], tool_choice="any").stream("Spot instances?"))
    assert len(_parts(TOOL_CALL_STREAM, part_size)) == -(-len(TOOL_CALL_STREAM) // part_size)
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls == [
        {
            "name": "sagemaker_faq",
            "args": {"question": "Which instances can I use with Managed Spot Training?"},
            "id": "call_0",
            "type": "tool_call",
        }
    ]
    assert full.invalid_tool_calls == []
    assert full.usage_metadata == {"input_tokens": 120, "output_tokens": 19, "total_tokens": 139}
    assert full.response_metadata["finish_reason"] == "tool_calls"
    assert full.response_metadata["model_name"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert chunks[-1].chunk_position == "last"


def test_streaming_invoke_returns_the_assembled_message() -> None:
    client = ScriptedClient(stream=TOOL_CALL_STREAM)
    message = _model(client, streaming=True).invoke("Spot instances?")
    assert isinstance(message, AIMessage) and not isinstance(message, AIMessageChunk)
    assert message.tool_calls[0]["args"] == {
        "question": "Which instances can I use with Managed Spot Training?"
    }
    assert client.requests[0]["Body"]["stream"] is True


def test_request_is_an_openai_chat_completion_with_tools_and_choice() -> None:
    client = ScriptedClient(stream=TOOL_CALL_STREAM)
    model = _model(
        client, temperature=0.2, max_tokens=50, endpoint_kwargs={"CustomAttributes": EULA_ATTRIBUTE}
    )
    history = [
        SystemMessage("Use the tool."),
        HumanMessage("Spot?"),
        AIMessage("", tool_calls=[{"name": "sagemaker_faq", "args": {"question": "Spot?"}, "id": "c1"}]),
        ToolMessage("Answer: all instances.", tool_call_id="c1"),
    ]
    list(model.bind_tools([sagemaker_faq], tool_choice="sagemaker_faq").stream(history, stop=["\n\n"]))
    request = client.requests[0]
    body = request["Body"]
    assert request["EndpointName"] == ENDPOINT and request["CustomAttributes"] == EULA_ATTRIBUTE
    assert request["ContentType"] == "application/json"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    call = body["messages"][2]["tool_calls"][0]
    assert call["id"] == "c1" and json.loads(call["function"]["arguments"]) == {"question": "Spot?"}
    assert body["messages"][3] == {"role": "tool", "content": "Answer: all instances.", "tool_call_id": "c1"}
    assert body["tools"][0]["function"]["name"] == "sagemaker_faq"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["question"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "sagemaker_faq"}}
    assert body["stop"] == ["\n\n"] and body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    any_choice = _model(client).bind_tools([sagemaker_faq], tool_choice="any")
    list(any_choice.stream("Spot?"))
    assert client.requests[1]["Body"]["tool_choice"] == "required"
    with pytest.raises(ValueError, match="not one of the bound tools"):
        _model(client).bind_tools([sagemaker_faq], tool_choice="weather")


def test_completion_reads_content_tool_calls_usage_and_finish_reason() -> None:
    # TGI 2.x sends the arguments as a JSON object rather than a string: both are read.
    call = {
        "id": "0",
        "type": "function",
        "function": {"name": "sagemaker_faq", "arguments": {"question": "Spot?"}},
    }
    client = ScriptedClient(
        body=_completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
    )
    message = _model(client).invoke("Spot?")
    assert message.tool_calls == [
        {"name": "sagemaker_faq", "args": {"question": "Spot?"}, "id": "0", "type": "tool_call"}
    ]
    assert message.content == ""
    assert message.usage_metadata == {"input_tokens": 25, "output_tokens": 9, "total_tokens": 34}
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert "stream" not in client.requests[0]["Body"] and client.requests[0]["Accept"] == "application/json"
    text = ScriptedClient(body=_completion({"role": "assistant", "content": "Paris."}))
    assert _model(text).invoke("Capital of France?").content == "Paris."


MALFORMED = '{"question": "Which instances'


def test_malformed_tool_call_json_names_the_endpoint() -> None:
    call = {"id": "0", "type": "function", "function": {"name": "sagemaker_faq", "arguments": MALFORMED}}
    client = ScriptedClient(
        body=_completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
    )
    with pytest.raises(
        EndpointOutputError, match=rf"endpoint '{ENDPOINT}'.*tool 'sagemaker_faq'.*not valid JSON"
    ):
        _model(client).invoke("Spot?")


def test_malformed_streamed_tool_call_json_names_the_endpoint() -> None:
    stream = TOOL_CALL_STREAM.replace(b'"}"', b'""').replace(b'Spot Training?\\"', b"Spot Training?")
    client = ScriptedClient(stream=stream)
    with pytest.raises(
        EndpointOutputError, match=rf"endpoint '{ENDPOINT}'.*tool 'sagemaker_faq'.*not valid JSON"
    ):
        list(_model(client).stream("Spot?"))


def test_endpoint_errors_and_non_chat_bodies_are_clear() -> None:
    stream = (
        _delta({"role": "assistant", "content": "Hi"})
        + b'data:{"error":"Request failed during generation: CUDA out of memory","error_type":"generation"}\n\n'
    )
    with pytest.raises(
        EndpointOutputError, match=rf"endpoint '{ENDPOINT}' reported an error mid-stream: .*out of memory"
    ):
        list(_model(ScriptedClient(stream=stream)).stream("Hi"))
    tgi_text_api = ScriptedClient(body=b'[{"generated_text": "Paris"}]')
    with pytest.raises(
        EndpointOutputError, match=rf"endpoint '{ENDPOINT}' did not answer with a chat completion"
    ):
        _model(tgi_text_api).invoke("Hi")
    with pytest.raises(EndpointOutputError, match="not JSON"):
        _model(ScriptedClient(body=b"<html>502</html>")).invoke("Hi")


class Answer(BaseModel):
    """An answer and how sure the model is."""

    answer: str = Field(description="the answer")
    confidence: float = Field(description="0 to 1")


def test_structured_output_by_tool_call_and_by_json_schema() -> None:
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "Answer", "arguments": '{"answer": "Paris", "confidence": 0.9}'},
    }
    client = ScriptedClient(
        body=_completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
    )
    assert _model(client).with_structured_output(Answer).invoke("Capital?") == Answer(
        answer="Paris", confidence=0.9
    )
    assert client.requests[0]["Body"]["tool_choice"] == {"type": "function", "function": {"name": "Answer"}}

    content = '{"answer": "Paris", "confidence": 0.9}'
    client = ScriptedClient(body=_completion({"role": "assistant", "content": content}))
    schema = Answer.model_json_schema()
    assert _model(client).with_structured_output(schema, method="json_schema").invoke("Capital?") == {
        "answer": "Paris",
        "confidence": 0.9,
    }
    response_format = client.requests[0]["Body"]["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["schema"] == schema

    raw = _model(ScriptedClient(body=_completion({"role": "assistant", "content": "not json"})))
    result = raw.with_structured_output(Answer, method="json_mode", include_raw=True).invoke("Capital?")
    assert result["parsed"] is None and result["parsing_error"] is not None
    assert result["raw"].content == "not json"


def test_factory_builds_the_messages_kind_and_rejects_unknown_kinds() -> None:
    client = ScriptedClient()
    model = make_chat_model("m", kind="messages", client=client, model_kwargs={"max_tokens": 9})
    assert isinstance(model, SagemakerMessagesChatModel) and model.model_kwargs == {"max_tokens": 9}
    with pytest.raises(
        ValueError, match="unknown LLM kind 'vllm'; expected one of tgi, jumpstart-chat, messages"
    ):
        make_chat_model("m", kind="vllm", client=client)  # type: ignore[arg-type]


class TestMessagesChatModelUnit(MessagesChat, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": ENDPOINT, "client": ScriptedClient()}


class TestLlama2ChatModelUnit(Llama2Chat, ChatModelUnitTests):
    """The JumpStart Llama 2 chat model."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "endpoint_name": "llama2-chat",
            "client": ScriptedClient(),
            "content_handler": Llama2ChatContentHandler(),
        }


def test_llama2_chat_model_sends_max_tokens_as_max_new_tokens() -> None:
    client = ScriptedClient(body=b'[{"generation": {"role": "assistant", "content": "Paris."}}]')
    model = SagemakerChatModel(
        endpoint_name="llama2-chat", client=client, content_handler=Llama2ChatContentHandler(), max_tokens=12
    )
    assert model.invoke("Capital of France?").content == "Paris."
    assert client.requests[0]["Body"]["parameters"]["max_new_tokens"] == 12
    model.invoke("Capital of France?", max_new_tokens=3)
    assert client.requests[1]["Body"]["parameters"]["max_new_tokens"] == 3


def test_settings_and_make_model_know_the_messages_kind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(tmp_path)))
    monkeypatch.setenv("SAGERAG_LLM_KIND", "messages")
    assert load_settings().llm_kind == "messages"
    monkeypatch.setenv("SAGERAG_LLM_KIND", "vllm")
    with pytest.raises(ConfigurationError, match=r"SAGERAG_LLM_KIND.*'tgi', 'jumpstart-chat' or 'messages'"):
        load_settings()
    client = ScriptedClient(body=_completion({"role": "assistant", "content": "Paris."}))
    chat = make_model("messages", "messages", max_new_tokens=7, client=client)
    assert chat.invoke("Capital of France?").content == "Paris."
    assert client.requests[0]["Body"]["max_tokens"] == 7
    llm = make_model("llama2", "tgi", max_new_tokens=7, client=client)
    assert isinstance(llm, SagemakerLLM) and llm.model_kwargs == {"max_new_tokens": 7}
