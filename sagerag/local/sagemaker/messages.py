"""The Messages API of SageMaker's LLM containers (TGI >= 1.4, LMI): OpenAI-style chat completions.

`{"messages", "tools", "tool_choice", "response_format", "max_tokens", "stream", ...}` in, a
`chat.completion` out, or with `"stream": true` on the streaming route, `data: {chat.completion.chunk}`
lines and `data: [DONE]`. Served by the local GGUF model through llama.cpp:

- A forced tool call (`tool_choice` "required" or a named function) is generated under a llama.cpp
  grammar built from the tool's JSON schema, so its arguments are always valid JSON of that schema;
  with several tools and "required", the tool's name is chosen under a grammar of the names first.
- `response_format` (`json_object`, `json_schema`, or TGI's `{"type": "json", "value": schema}`)
  constrains the answer the same way.
- With `tool_choice` "auto" the tools are listed in the system prompt and the model may answer with
  `<tool_call>{"name": ..., "arguments": ...}</tool_call>`: once its output begins so, the call is
  finished under the grammars above. A 135M model rarely decides to call on its own.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sagerag.adapters._stream import StopWordFilter
from sagerag.local.sagemaker.containers import ContainerError, _dumps, _Generator, _json_body
from sagerag.local.sagemaker.models import GGUFChatModel

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
"""How tool calls are written in the prompt (SmolLM2 and Hermes-style function-calling models)."""

FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
"""TGI's own finish reasons as the Messages API reports them."""


@lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    """A llama.cpp grammar accepting exactly the JSON values of a schema (cached: compiling costs)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


MAX_FREE_STRING = 80
"""Characters a free-text string in constrained output may take: a small model rambles inside a string
until `max_tokens` cuts the JSON open; bounded, a forced call closes within a modest budget."""


def schema_grammar(schema: Mapping[str, Any]) -> Any:
    return _grammar(json.dumps(_bounded(schema), sort_keys=True))


def _bounded(schema: Any) -> Any:
    """The schema with `maxLength` on every string that has no length, pattern or fixed values."""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: _bounded(value) for key, value in schema.items()}
    free = not any(k in out for k in ("maxLength", "pattern", "enum", "const", "format"))
    if out.get("type") == "string" and free:
        out["maxLength"] = MAX_FREE_STRING
    return out


@dataclass
class ChatRequest:
    """A validated chat completion request."""

    turns: list[dict[str, str]]
    options: dict[str, Any]
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Function name -> parameters schema."""
    tool_choice: str | None = None
    """None (no tools, or "none"), "auto", "required", or the name of the function to call."""
    response_schema: dict[str, Any] | None = None
    stream: bool = False
    include_usage: bool = False


@dataclass
class Event:
    """One step of a generation: text, the start of a tool call, argument text, or the end."""

    kind: str
    """`text`, `call`, `arguments` or `finish`."""
    value: str = ""


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ContainerError(422, f"{where}: content of type {kind!r} is not supported by this model")
        return "".join(parts)
    raise ContainerError(422, f"{where}: content must be a string or a list of text parts")


def _render_call(call: Mapping[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):  # a malformed call is shown as it was sent
            arguments = json.loads(arguments) if arguments.strip() else {}
    body = json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}{TOOL_CALL_CLOSE}"


def _tools_prompt(tools: Mapping[str, dict[str, Any]], descriptions: Mapping[str, str]) -> str:
    lines = [
        json.dumps({"name": name, "description": descriptions.get(name, ""), "parameters": params})
        for name, params in tools.items()
    ]
    return (
        "You can call these tools:\n<tools>\n" + "\n".join(lines) + "\n</tools>\n"
        f'To call a tool, answer with {TOOL_CALL_OPEN}{{"name": <tool name>, "arguments": <arguments object>}}'
        f"{TOOL_CALL_CLOSE}; tool results come back in messages from the tool."
    )


class MessagesAPI(_Generator):
    """`/v1/chat/completions` semantics over `invoke_endpoint` and its streaming route."""

    def __init__(self, model: GGUFChatModel):
        super().__init__(model)
        self.model_name = getattr(getattr(model, "path", None), "stem", "local-model")

    # --- request -----------------------------------------------------------------------------

    def parse(self, body: bytes) -> ChatRequest:
        data = _json_body(body)
        if not isinstance(data, dict):
            raise ContainerError(422, "Input validation error: the body must be a JSON object")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ContainerError(
                422, "Input validation error: `messages` must be a non-empty list of {role, content} objects"
            )
        if int(data.get("n") or 1) != 1:
            raise ContainerError(422, "Input validation error: `n` must be 1")
        tools, descriptions = self._tools(data.get("tools"))
        choice = self._tool_choice(data.get("tool_choice"), tools)
        schema = self._response_schema(data.get("response_format"))
        if choice not in (None, "auto") and schema is not None:
            raise ContainerError(
                422, "Input validation error: use either a forced tool call or response_format"
            )
        turns = self._turns(messages)
        system = [t["content"] for t in turns if t["role"] == "system"]
        extra = []
        if tools and choice is not None:
            extra.append(_tools_prompt(tools, descriptions))
        if schema is not None:
            extra.append("Answer with a JSON object only, matching this JSON schema: " + json.dumps(schema))
        if extra:
            system.extend(extra)
        rest = [t for t in turns if t["role"] != "system"]
        turns = ([{"role": "system", "content": "\n\n".join(system)}] if system else []) + rest
        temperature = data.get("temperature")
        params = {
            "max_new_tokens": next(
                (data[k] for k in ("max_completion_tokens", "max_tokens") if data.get(k) is not None), 256
            ),
            "temperature": None if temperature == 0 else temperature,
            "top_p": data.get("top_p"),
            "seed": data.get("seed"),
            "stop": data.get("stop"),
            "repetition_penalty": data.get("repetition_penalty"),
        }
        options = self._options(params, default_max=256)
        stream_options = data.get("stream_options") or {}
        return ChatRequest(
            turns=turns,
            options=options,
            tools=tools if choice is not None else {},
            tool_choice=choice,
            response_schema=schema,
            stream=bool(data.get("stream")),
            include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        )

    @staticmethod
    def _tools(raw: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        if raw is None:
            return {}, {}
        if not isinstance(raw, list):
            raise ContainerError(422, "Input validation error: `tools` must be a list")
        tools: dict[str, dict[str, Any]] = {}
        descriptions: dict[str, str] = {}
        for tool in raw:
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(function, dict) or not isinstance(name, str) or not name:
                raise ContainerError(
                    422,
                    'Input validation error: each tool must be {"type": "function", "function": {"name", ...}}',
                )
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            tools[name] = parameters
            descriptions[name] = str(function.get("description") or "")
        return tools, descriptions

    @staticmethod
    def _tool_choice(raw: Any, tools: Mapping[str, Any]) -> str | None:
        if not tools or raw == "none":
            return None
        if raw is None or raw == "auto":
            return "auto"
        if raw in ("required", "any"):
            return "required"
        name = None
        if isinstance(raw, dict):
            name = (raw.get("function") or {}).get("name") if isinstance(raw.get("function"), dict) else None
        elif isinstance(raw, str):
            name = raw
        if name not in tools:
            raise ContainerError(422, f"Tool error: tool_choice names a tool that was not given: {name!r}")
        return str(name)

    @staticmethod
    def _response_schema(raw: Any) -> dict[str, Any] | None:
        if raw is None:
            return None
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema" and isinstance(raw.get("json_schema"), dict):
            schema = raw["json_schema"].get("schema")
            return schema if isinstance(schema, dict) else {"type": "object"}
        if kind == "json" and isinstance(raw.get("value"), dict):  # TGI's own grammar format
            return dict(raw["value"])
        raise ContainerError(
            422, "Input validation error: `response_format` must be text, json_object or json_schema"
        )

    @staticmethod
    def _turns(messages: list[Any]) -> list[dict[str, str]]:
        turns: list[dict[str, str]] = []
        for position, message in enumerate(messages):
            where = f"messages[{position}]"
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("system", "developer", "user", "assistant", "tool"):
                raise ContainerError(
                    422, f"Input validation error: {where}.role must be system, user, assistant or tool"
                )
            content = _text_of(message.get("content"), where)
            if role == "assistant":
                calls = message.get("tool_calls") or []
                content = "\n".join([content, *(_render_call(c) for c in calls)]).strip()
            turns.append({"role": "system" if role == "developer" else str(role), "content": content})
        return turns

    # --- generation --------------------------------------------------------------------------

    def _prompt(self, request: ChatRequest, prefix: str = "") -> list[int]:
        return self._tokens_of(self.model.render(request.turns) + prefix, request.options)

    def _tokens_of(self, text: str, options: dict[str, Any]) -> list[int]:
        tokens = self.model.tokenize(text)
        if len(tokens) + options["max_new_tokens"] > self.model.n_ctx:
            raise ContainerError(
                422,
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {self.model.n_ctx}. "
                f"Given: {len(tokens)} `inputs` tokens and {options['max_new_tokens']} `max_new_tokens`",
            )
        return tokens

    def _generate(
        self, tokens: list[int], options: dict[str, Any], budget: int, grammar: Any = None
    ) -> Generator[tuple[str, str], None, None]:
        """(text piece, finish reason or '') per token, as TGI names the reasons."""
        generated = self.model.generate(
            tokens,
            budget,
            options["temperature"],
            options["top_p"],
            options["top_k"],
            options["seed"],
            options["repetition_penalty"],
            grammar=grammar,
        )
        try:
            for count, token in enumerate(generated, start=1):
                if token.special:
                    yield "", "eos_token"
                    return
                yield token.text, "length" if count >= budget else ""
        finally:
            generated.close()  # releases the model's lock now, not when the generator is collected

    def events(self, request: ChatRequest, usage: dict[str, int]) -> Iterator[Event]:
        """The answer as events; `usage` is filled in as tokens are counted."""
        if request.tool_choice in (None, "auto"):
            yield from self._answer(request, usage)
        else:
            yield from self._call(request, request.tool_choice, usage)

    def _answer(self, request: ChatRequest, usage: dict[str, int]) -> Iterator[Event]:
        tokens = self._prompt(request)
        usage["prompt_tokens"] = len(tokens)
        grammar = schema_grammar(request.response_schema) if request.response_schema is not None else None
        stops = StopWordFilter(request.options["stop"])
        watch_call = request.tool_choice == "auto"
        held, finish, calling = "", "length", False
        generated = self._generate(tokens, request.options, request.options["max_new_tokens"], grammar)
        for piece, reason in generated:
            usage["completion_tokens"] += 1
            if watch_call:
                held += piece
                head = held.lstrip()
                if head.startswith(TOOL_CALL_OPEN):
                    calling = True
                    break
                if TOOL_CALL_OPEN.startswith(head) and not reason:
                    continue  # might still become a tool call: hold the text back
                watch_call, piece = False, held
            text = stops.feed(piece)
            if text:
                yield Event("text", text)
            if stops.stopped:
                finish = "stop_sequence"
                break
            if reason:
                finish = reason
                break
        generated.close()  # the model's lock is held until this generation ends
        if calling:  # the model began a tool call: finish it under the grammars
            yield from self._call(request, "required", usage)
            return
        tail = stops.flush()
        if tail:
            yield Event("text", tail)
        yield Event("finish", FINISH.get(finish, "stop"))

    def _call(self, request: ChatRequest, choice: str, usage: dict[str, int]) -> Iterator[Event]:
        """A tool call made under grammars: the name (when not given), then its arguments."""
        options = request.options
        budget = options["max_new_tokens"]
        name = choice
        if choice == "required":
            names = sorted(request.tools)
            if len(names) == 1:
                name = names[0]
            else:
                prefix = f'{TOOL_CALL_OPEN}\n{{"name": '
                tokens = self._prompt(request, prefix)
                usage["prompt_tokens"] = len(tokens)
                raw = ""
                for piece, _ in self._generate(tokens, options, budget, schema_grammar({"enum": names})):
                    usage["completion_tokens"] += 1
                    raw += piece
                name = json.loads(raw)
                budget = max(1, budget - usage["completion_tokens"])
        yield Event("call", name)
        prefix = f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": '
        tokens = self._prompt(request, prefix)
        usage["prompt_tokens"] = len(tokens)
        finish = "tool_calls"
        grammar = schema_grammar(request.tools[name])
        for piece, reason in self._generate(tokens, options, budget, grammar):
            usage["completion_tokens"] += 1
            if piece:
                yield Event("arguments", piece)
            if reason == "length":
                finish = "length"
        yield Event("finish", finish)

    # --- responses ---------------------------------------------------------------------------

    def _head(self) -> dict[str, Any]:
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": self.model_name}

    def invoke(self, body: bytes, custom_attributes: str = "") -> bytes:
        request = self.parse(body)
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        content, finish = "", "stop"
        calls: list[dict[str, Any]] = []
        for event in self.events(request, usage):
            if event.kind == "text":
                content += event.value
            elif event.kind == "call":
                calls.append(
                    {
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {"name": event.value, "arguments": ""},
                    }
                )
            elif event.kind == "arguments":
                calls[-1]["function"]["arguments"] += event.value
            else:
                finish = event.value
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else content}
        if calls:
            message["tool_calls"] = calls
        return _dumps(
            {
                **self._head(),
                "object": "chat.completion",
                "system_fingerprint": "sagerag-local",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            }
        )

    def stream(self, body: bytes, custom_attributes: str = "") -> Iterator[bytes]:
        request = self.parse(body)
        head = {**self._head(), "object": "chat.completion.chunk", "system_fingerprint": "sagerag-local"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + _dumps({**head, "choices": [choice]}) + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        calls = -1
        for event in self.events(request, usage):
            if event.kind == "text":
                yield chunk({"content": event.value})
            elif event.kind == "call":
                calls += 1
                call = {
                    "index": calls,
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": event.value, "arguments": ""},
                }
                yield chunk({"tool_calls": [call]})
            elif event.kind == "arguments":
                yield chunk({"tool_calls": [{"index": calls, "function": {"arguments": event.value}}]})
            else:
                yield chunk({}, event.value)
        if request.include_usage:
            total = usage["prompt_tokens"] + usage["completion_tokens"]
            yield (
                b"data: "
                + _dumps({**head, "choices": [], "usage": {**usage, "total_tokens": total}})
                + b"\n\n"
            )
        yield b"data: [DONE]\n\n"
