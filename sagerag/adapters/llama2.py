"""Content handlers for Llama 2 on SageMaker: the Hugging Face LLM container (TGI) and JumpStart chat.

TGI takes `{"inputs": str, "parameters": {...}}` and answers `[{"generated_text": str}]`, or, on the
streaming route with `"stream": true`, lines `data:{"token": {...}, "generated_text": ...}`. JumpStart's
`meta-textgeneration-llama-2-*-f` takes a list of dialogs and answers `[{"generation": {...}}]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_aws.chat_models.sagemaker_endpoint import ChatModelContentHandler
from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from sagerag.errors import EndpointOutputError

EULA_ATTRIBUTE = "accept_eula=true"
"""JumpStart's Llama 2 endpoints refuse calls without this custom attribute (a 424 ModelError)."""

TGI_DEFAULT_PARAMETERS: dict[str, Any] = {
    "max_new_tokens": 256,
    "do_sample": False,
    "return_full_text": False,
}
"""Greedy decoding by default: RAG answers should be reproducible and stay close to the context."""

JUMPSTART_DEFAULT_PARAMETERS: dict[str, Any] = {"max_new_tokens": 256, "top_p": 0.9, "temperature": 0.1}

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


def _read_json(output: Any) -> Any:
    raw = output.read() if hasattr(output, "read") else output
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EndpointOutputError(f"endpoint returned a body that is not JSON: {str(raw)[:200]!r}") from exc


def _split_parameters(
    defaults: Mapping[str, Any], model_kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    parameters = {**defaults, **model_kwargs}
    stream = bool(parameters.pop("stream", False))
    return parameters, stream


class Llama2ContentHandler(LLMContentHandler):
    """Prompt text in, generated text out, for a TGI endpoint; also reads TGI's streaming lines."""

    content_type = "application/json"
    accepts = "application/json"

    def __init__(self, default_parameters: Mapping[str, Any] | None = None):
        self.default_parameters = dict(
            TGI_DEFAULT_PARAMETERS if default_parameters is None else default_parameters
        )

    def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
        parameters, stream = _split_parameters(self.default_parameters, model_kwargs)
        body: dict[str, Any] = {"inputs": prompt, "parameters": parameters}
        if stream:
            body["stream"] = True
        return json.dumps(body).encode("utf-8")

    def transform_output(self, output: Any) -> str:
        if isinstance(output, bytes | bytearray):
            return parse_tgi_stream_line(bytes(output))
        return parse_tgi_response(_read_json(output))


def parse_tgi_response(data: Any) -> str:
    """`generated_text` of a TGI answer (a one-element list, or a bare object)."""
    item = data[0] if isinstance(data, list) and data else data
    if isinstance(item, dict) and isinstance(item.get("generated_text"), str):
        return str(item["generated_text"])
    if isinstance(item, dict) and "error" in item:
        raise EndpointOutputError(f"endpoint reported an error: {item['error']}")
    raise EndpointOutputError(
        f"expected [{{'generated_text': ...}}] from a TGI endpoint, got {str(data)[:200]!r}"
    )


def parse_tgi_stream_line(line: bytes) -> str:
    """Token text of one TGI server-sent-event line; '' for special tokens and non-data lines.

    The final line carries the whole `generated_text` as well as its last token: only the token is
    returned, so joining the chunks gives the answer exactly once.
    """
    text = line.decode("utf-8").strip()
    if not text.startswith("data:"):
        return ""
    payload = json.loads(text[len("data:") :])
    if "error" in payload and payload.get("token") is None:
        raise EndpointOutputError(f"endpoint reported an error mid-stream: {payload['error']}")
    token = payload.get("token") or {}
    if token.get("special"):
        return ""
    return str(token.get("text") or "")


def messages_to_dialog(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> list[dict[str, str]]:
    """LangChain messages (or role/content dicts) as a Llama 2 dialog: system first, then turns."""
    dialog: list[dict[str, str]] = []
    for message in messages:
        if isinstance(message, BaseMessage):
            role = {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")
            content = str(message.text)
        else:
            role, content = str(message["role"]), message["content"]
            if not isinstance(content, str):
                content = " ".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)
        if dialog and dialog[-1]["role"] == role:
            dialog[-1]["content"] += "\n" + content
        elif role == "system" and dialog:
            dialog.insert(0, {"role": "system", "content": content})
        else:
            dialog.append({"role": role, "content": content})
    return dialog


def render_llama2_chat(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> str:
    """Render messages in Llama 2 chat markup (`<s>[INST] <<SYS>> ... <</SYS>> ... [/INST]`), as TGI expects."""
    dialog = messages_to_dialog(messages)
    system = ""
    if dialog and dialog[0]["role"] == "system":
        system = B_SYS + dialog.pop(0)["content"].strip() + E_SYS
    out: list[str] = []
    for turn in dialog:
        if turn["role"] == "user":
            out.append(f"<s>{B_INST} {system}{turn['content'].strip()} {E_INST}")
            system = ""
        else:
            out.append(f" {turn['content'].strip()} </s>")
    if system:  # a system prompt with no user turn still needs a turn to live in
        out.append(f"<s>{B_INST} {system.rstrip()} {E_INST}")
    return "".join(out)


class Llama2ChatContentHandler(ChatModelContentHandler):
    """Dialog in, `AIMessage` out, for JumpStart `meta-textgeneration-llama-2-*-f` endpoints."""

    content_type = "application/json"
    accepts = "application/json"

    def __init__(self, default_parameters: Mapping[str, Any] | None = None):
        self.default_parameters = dict(
            JUMPSTART_DEFAULT_PARAMETERS if default_parameters is None else default_parameters
        )

    def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
        messages = [HumanMessage(prompt)] if isinstance(prompt, str) else prompt
        parameters, _ = _split_parameters(self.default_parameters, model_kwargs)
        body = {"inputs": [messages_to_dialog(messages)], "parameters": parameters}
        return json.dumps(body).encode("utf-8")

    def transform_output(self, output: Any) -> BaseMessage:
        data = _read_json(output)
        item = data[0] if isinstance(data, list) and data else data
        generation = item.get("generation") if isinstance(item, dict) else None
        if isinstance(generation, dict) and isinstance(generation.get("content"), str):
            return AIMessage(content=generation["content"])
        if isinstance(generation, str):
            return AIMessage(content=generation)
        raise EndpointOutputError(
            f"expected [{{'generation': {{'role', 'content'}}}}] from a JumpStart chat endpoint, got {str(data)[:200]!r}"
        )


class Llama2TGIChatContentHandler(ChatModelContentHandler):
    """Chat messages rendered as Llama 2 markup for a TGI endpoint; `AIMessage` out (also per stream line)."""

    content_type = "application/json"
    accepts = "application/json"

    def __init__(self, default_parameters: Mapping[str, Any] | None = None):
        self._text = Llama2ContentHandler(default_parameters)

    def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
        rendered = prompt if isinstance(prompt, str) else render_llama2_chat(prompt)
        return self._text.transform_input(rendered, model_kwargs)

    def transform_output(self, output: Any) -> BaseMessage:
        return AIMessage(content=self._text.transform_output(output))
