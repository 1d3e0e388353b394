"""The local Messages API container with a scripted token source: request checks, wire format, and that
the adapter reads what the container writes (the grammar itself needs the real model: integration tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sagerag.adapters.messages import ChunkReader, parse_chat_completion
from sagerag.local.sagemaker.containers import ContainerError
from sagerag.local.sagemaker.messages import MessagesAPI
from sagerag.local.sagemaker.models import GeneratedToken

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "sagemaker_faq",
            "description": "Answers SageMaker questions.",
            "parameters": {"type": "object", "properties": {"question": {"type": "string"}}},
        },
    }
]


class ScriptedModel:
    """Stands in for `GGUFChatModel`: renders turns as text and plays back scripted token texts."""

    n_ctx = 4096

    def __init__(self, *scripts: list[str]):
        self.scripts = list(scripts)
        self.prompts: list[str] = []
        self.grammars: list[Any] = []
        self._lock = threading.Lock()

    def render(self, turns: list[dict[str, str]]) -> str:
        return "".join(f"<{t['role']}>{t['content']}\n" for t in turns)

    def tokenize(self, text: str) -> list[int]:
        self.prompts.append(text)
        return list(range(len(text.split())))

    def generate(
        self, tokens: list[int], max_new_tokens: int, *args: Any, grammar: Any = None
    ) -> Iterator[GeneratedToken]:
        # Like the real model: one generation at a time (a second one while the first is open would deadlock).
        if not self._lock.acquire(blocking=False):
            raise AssertionError("a generation started while another still holds the model")
        try:
            self.grammars.append(grammar)
            for count, text in enumerate(self.scripts.pop(0), start=1):
                yield GeneratedToken(count, text, 0.0, False)
                if count >= max_new_tokens:
                    return
            yield GeneratedToken(0, "", 0.0, True)
        finally:
            self._lock.release()


def _body(**fields: Any) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "Spot?"}], **fields}).encode()


def test_forced_tool_call_streams_as_deltas_the_adapter_reassembles() -> None:
    model = ScriptedModel(['{"', "question", '": "', "Spot", '?"}'])
    container = MessagesAPI(model)  # type: ignore[arg-type]
    lines = list(
        container.stream(
            _body(tools=TOOLS, tool_choice="required", stream=True, stream_options={"include_usage": True})
        )
    )
    assert lines[-1] == b"data: [DONE]\n\n"
    assert model.grammars[0] is not None and model.prompts[-1].endswith(
        '{"name": "sagemaker_faq", "arguments": '
    )
    chunks = list(ChunkReader("messages").read([{"PayloadPart": {"Bytes": line}} for line in lines]))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.tool_calls[0]["name"] == "sagemaker_faq" and full.tool_calls[0]["args"] == {
        "question": "Spot?"
    }
    assert full.response_metadata["finish_reason"] == "tool_calls"
    assert full.usage_metadata is not None and full.usage_metadata["output_tokens"] == 6


def test_text_answer_honours_stop_sequences_and_reports_usage() -> None:
    container = MessagesAPI(ScriptedModel(["Paris", " is", " nice", "END", " more"]))  # type: ignore[arg-type]
    data = json.loads(container.invoke(_body(stop=["END"])))
    message = parse_chat_completion(data, "messages")
    assert message.content == "Paris is nice"
    assert message.response_metadata["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 4


def test_auto_choice_becomes_a_call_when_the_model_writes_one() -> None:
    model = ScriptedModel(["<tool", "_call>", "\n"], ['{"question": "Spot?"}'])
    data = json.loads(MessagesAPI(model).invoke(_body(tools=TOOLS)))  # type: ignore[arg-type]
    assert "<tools>" in model.prompts[0] and "sagemaker_faq" in model.prompts[0]
    call = data["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "sagemaker_faq", "arguments": '{"question": "Spot?"}'}
    plain = json.loads(MessagesAPI(ScriptedModel(["<b>", "Hi"])).invoke(_body(tools=TOOLS)))  # type: ignore[arg-type]
    assert plain["choices"][0]["message"]["content"] == "<b>Hi"


def test_history_with_tool_calls_and_results_is_rendered_for_the_model() -> None:
    model = ScriptedModel(["Fine."])
    history = [
        {"role": "user", "content": "Spot?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "sagemaker_faq", "arguments": '{"question": "Spot?"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "All instances."}]},
    ]
    MessagesAPI(model).invoke(json.dumps({"messages": history, "tools": TOOLS}).encode())  # type: ignore[arg-type]
    assert (
        '<tool_call>\n{"name": "sagemaker_faq", "arguments": {"question": "Spot?"}}</tool_call>'
        in model.prompts[0]
    )
    assert "<tool>All instances." in model.prompts[0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": []}, "`messages` must be a non-empty list"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "weather"}}}, "'weather'"),
        ({"response_format": {"type": "xml"}}, "`response_format` must be"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "'image_url'",
        ),
        ({"max_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ],
)
def test_bad_requests_are_422_naming_the_field(fields: dict[str, Any], message: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **fields}
    with pytest.raises(ContainerError) as raised:
        MessagesAPI(ScriptedModel()).invoke(json.dumps(body).encode())  # type: ignore[arg-type]
    assert raised.value.status == 422 and message in raised.value.message
