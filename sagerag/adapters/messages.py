"""`SagemakerMessagesChatModel`: a chat model for SageMaker LLM containers that speak the Messages API.

TGI (from 1.4) and LMI/vLLM containers accept OpenAI-style chat completion requests (`messages`,
`tools`, `tool_choice`, `response_format`, `stream`) through `invoke_endpoint`, and stream them through
`invoke_endpoint_with_response_stream` as server-sent events (`data: {chunk}` lines, then
`data: [DONE]`) inside the event-stream payload parts. langchain-aws's SageMaker chat model has no
tool calling; this one does: `bind_tools`, `with_structured_output` (tool-based, JSON schema or JSON
mode), streamed tool-call deltas, usage metadata and finish reasons, as other LangChain chat models.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagerag.adapters._stream import iter_payload_lines
from sagerag.adapters.client import DEFAULT_TIMEOUT, invoke, make_runtime_client, runtime_config
from sagerag.errors import EndpointOutputError

StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


class SagemakerMessagesChatModel(BaseChatModel):
    """A SageMaker endpoint that accepts OpenAI-style chat completions (TGI >= 1.4, LMI/vLLM).

    See `make_chat_model(kind="messages")`. Tool calls arrive as LangChain `tool_calls` (streamed as
    `tool_call_chunks`); arguments that are not a JSON object raise `EndpointOutputError` naming the
    endpoint, so a broken endpoint is reported rather than passed on as an empty call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    endpoint_name: str
    """Name of the SageMaker endpoint."""
    client: Any = Field(default=None, exclude=True)
    """A boto3 `sagemaker-runtime` client; built from region/profile/endpoint_url when not given."""
    region_name: str | None = None
    """AWS region, when the client is built here."""
    credentials_profile_name: str | None = None
    """Named AWS profile, when the client is built here."""
    endpoint_url: str | None = None
    """SageMaker Runtime URL override (a local server, a VPC endpoint), when the client is built here."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds per call, when the client is built here."""
    max_retries: int | None = None
    """Retries per call (botocore standard mode), when the client is built here; None keeps the default 3."""
    model: str | None = Field(default=None, alias="model_name")
    """`model` field of the request; TGI ignores it, LMI/vLLM may need the served model's name."""
    temperature: float | None = None
    """Sampling temperature; None leaves it to the container (greedy on the local one)."""
    max_tokens: int | None = 256
    """Most tokens to generate."""
    top_p: float | None = None
    """Nucleus sampling probability mass."""
    seed: int | None = None
    """Sampling seed, for reproducible sampled output."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Default stop sequences, used when a call gives none."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further request fields (e.g. `frequency_penalty`), merged into every payload."""
    endpoint_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further `invoke_endpoint` arguments (e.g. `CustomAttributes`)."""
    inference_component_name: str | None = None
    """Inference component to route to, on endpoints that host several."""
    streaming: bool = False
    """Make `invoke` stream under the hood (callbacks see tokens as they come)."""
    stream_usage: bool = True
    """Ask for token usage in the last stream chunk (`stream_options.include_usage`)."""

    @model_validator(mode="after")
    def _make_client(self) -> SagemakerMessagesChatModel:
        if self.client is None:
            attempts = {} if self.max_retries is None else {"max_attempts": self.max_retries + 1}
            self.client = make_runtime_client(
                self.region_name,
                self.endpoint_url,
                self.credentials_profile_name,
                self.timeout,
                config=runtime_config(self.timeout, **attempts),
            )
        return self

    @property
    def _llm_type(self) -> str:
        return "sagemaker-messages"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"endpoint_name": self.endpoint_name, "model": self.model, **self._default_params}

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        return {**{k: v for k, v in params.items() if v is not None}, **self.model_kwargs}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "amazon_sagemaker"
        params["ls_model_name"] = kwargs.get("model") or self.model or self.endpoint_name
        return params

    # --- requests ---------------------------------------------------------------------------

    def _payload(
        self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The chat completion request: defaults, then call-time kwargs (tools, tool_choice, ...)."""
        payload: dict[str, Any] = {"messages": convert_to_openai_messages(messages), **self._default_params}
        if self.model:
            payload["model"] = self.model
        payload.update({k: v for k, v in kwargs.items() if v is not None})
        stops = stop or self.stop
        if stops:
            payload["stop"] = list(stops)
        if stream:
            payload["stream"] = True
            if self.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        return payload

    def _invoke_args(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        args: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            "ContentType": "application/json",
            **self.endpoint_kwargs,
        }
        if not stream:
            args["Accept"] = "application/json"
        if self.inference_component_name:
            args["InferenceComponentName"] = self.inference_component_name
        return args

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = list(self._stream(messages, stop, run_manager, **kwargs))
            merged = chunks[0]
            for chunk in chunks[1:]:
                merged += chunk
            message = _chunk_to_message(merged.message)
            return ChatResult(generations=[ChatGeneration(message=message)])
        payload = self._payload(messages, stop, False, kwargs)
        response = invoke(self.client, self._invoke_args(payload, False))
        raw = response["Body"].read()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EndpointOutputError(
                f"endpoint {self.endpoint_name!r} returned a body that is not JSON: {raw[:200]!r}"
            ) from None
        message = parse_chat_completion(data, self.endpoint_name, self.model)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        payload = self._payload(messages, stop, True, kwargs)
        response = invoke(self.client, self._invoke_args(payload, True), stream=True)
        reader = ChunkReader(self.endpoint_name, self.model)
        for message in reader.read(response["Body"]):
            chunk = ChatGenerationChunk(message=message)
            if run_manager and message.text:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk

    # --- tools and structured output ---------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Send `tools` (OpenAI function format) with every call.

        `tool_choice`: "auto", "none", "required" (or "any", the same), a tool's name to force that
        tool, True to force the only tool, or an OpenAI tool-choice dict.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        choice = openai_tool_choice(tool_choice, [t["function"]["name"] for t in formatted])
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredMethod = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers shaped by `schema`: through a forced tool call (`function_calling`), the
        `response_format` JSON schema (`json_schema`), or plain JSON (`json_mode`, which needs the
        schema described in the prompt)."""
        if kwargs:
            raise ValueError(f"unexpected arguments for with_structured_output: {sorted(kwargs)}")
        pydantic_schema = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method}, "schema": schema}
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema], tool_choice=name, strict=strict, ls_structured_output_format=trace
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if pydantic_schema
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                json_schema = convert_to_json_schema(schema)
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": json_schema.get("title", "output"),
                        "schema": json_schema,
                        **({"strict": strict} if strict is not None else {}),
                    },
                }
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if pydantic_schema
                else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"unknown structured output method {method!r}; use function_calling, json_schema or json_mode"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def openai_tool_choice(choice: dict[str, Any] | str | bool | None, names: list[str]) -> Any:
    """LangChain's `tool_choice` values in the OpenAI form the containers take."""
    if choice is None or choice is False:
        return None
    if choice is True:
        if len(names) != 1:
            raise ValueError("tool_choice=True needs exactly one tool; name the tool or use 'required'")
        return {"type": "function", "function": {"name": names[0]}}
    if isinstance(choice, dict):
        return choice
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    if choice not in names:
        raise ValueError(f"tool_choice {choice!r} is not one of the bound tools: {names}")
    return {"type": "function", "function": {"name": choice}}


# --- responses -------------------------------------------------------------------------------


def _usage(data: Any) -> UsageMetadata | None:
    if not isinstance(data, Mapping):
        return None
    inputs = int(data.get("prompt_tokens") or 0)
    outputs = int(data.get("completion_tokens") or 0)
    return UsageMetadata(
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=int(data.get("total_tokens") or 0) or inputs + outputs,
    )


def _arguments(raw: Any, name: str, endpoint: str) -> dict[str, Any]:
    """Tool-call arguments as a dict; TGI 2.x sends an object, the OpenAI format a JSON string."""
    if isinstance(raw, Mapping):
        return dict(raw)
    text = raw if isinstance(raw, str) else ""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise EndpointOutputError(
            f"endpoint {endpoint!r} returned a call to tool {name!r} whose arguments are not valid JSON "
            f"({exc.msg} at character {exc.pos}): {text[:200]!r}"
        ) from None
    if not isinstance(value, dict):
        raise EndpointOutputError(
            f"endpoint {endpoint!r} returned a call to tool {name!r} whose arguments are not a JSON object: "
            f"{text[:200]!r}"
        )
    return value


def _error_text(data: Any) -> str | None:
    """The error an endpoint reported in a JSON body or stream event, if it is one."""
    if not isinstance(data, Mapping) or "error" not in data or data.get("choices"):
        return None
    error = data["error"]
    if isinstance(error, Mapping):
        error = error.get("message") or json.dumps(error)
    kind = data.get("error_type") or data.get("type")
    return f"{error} ({kind})" if kind else str(error)


def parse_chat_completion(data: Any, endpoint: str, model: str | None = None) -> AIMessage:
    """An `AIMessage` from a `chat.completion` body: content, tool calls, usage, finish reason."""
    error = _error_text(data)
    if error is not None:
        raise EndpointOutputError(f"endpoint {endpoint!r} reported an error: {error}")
    choices = data.get("choices") if isinstance(data, Mapping) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise EndpointOutputError(
            f"endpoint {endpoint!r} did not answer with a chat completion (no 'choices'): {str(data)[:200]!r}; "
            "is it a Messages API container (TGI >= 1.4, LMI)?"
        )
    choice = choices[0]
    message = choice.get("message") or {}
    tool_calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        tool_calls.append(
            {
                "name": name,
                "args": _arguments(function.get("arguments"), name, endpoint),
                "id": str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                "type": "tool_call",
            }
        )
    metadata = {
        "finish_reason": choice.get("finish_reason"),
        "model_name": data.get("model") or model or endpoint,
        "id": data.get("id"),
    }
    return AIMessage(
        content=message.get("content") or "",
        tool_calls=tool_calls,
        usage_metadata=_usage(data.get("usage")),
        response_metadata={k: v for k, v in metadata.items() if v is not None},
    )


def iter_sse_events(lines: Iterable[bytes]) -> Iterator[Any]:
    """JSON events of a server-sent-event stream: `data:` lines (bare JSON lines too), up to `[DONE]`."""
    for line in lines:
        text = line.decode("utf-8").strip()
        if text.startswith("data:"):
            text = text[len("data:") :].strip()
        elif not text.startswith("{"):
            continue  # `event:`, `id:`, `retry:` and `:` comment lines
        if text == "[DONE]":
            return
        yield json.loads(text)


class ChunkReader:
    """Turns `chat.completion.chunk` events into `AIMessageChunk`s and checks the assembled tool calls.

    Tool-call deltas keep their `index`, so LangChain's chunk addition joins argument fragments; ids
    and names come on a call's first delta (an id is made up when the endpoint sends none). When the
    stream ends, every call's joined arguments must be a JSON object, else `EndpointOutputError`.
    """

    def __init__(self, endpoint: str, model: str | None = None):
        self.endpoint = endpoint
        self.model = model
        self._calls: dict[int, dict[str, str]] = {}

    def read(self, events: Iterable[Mapping[str, Any]]) -> Iterator[AIMessageChunk]:
        model_name: str | None = None
        finish: str | None = None
        for line_event in self._events(events):
            error = _error_text(line_event)
            if error is not None:
                raise EndpointOutputError(f"endpoint {self.endpoint!r} reported an error mid-stream: {error}")
            model_name = model_name or line_event.get("model")
            usage = _usage(line_event.get("usage"))
            for choice in line_event.get("choices") or []:
                finish = choice.get("finish_reason") or finish
                chunk = self._delta(choice.get("delta") or {})
                if chunk is not None:
                    yield chunk
            if usage is not None:
                yield AIMessageChunk(content="", usage_metadata=usage)
        for index, call in sorted(self._calls.items()):
            _arguments(call["args"], call["name"] or f"#{index}", self.endpoint)
        metadata = {"finish_reason": finish, "model_name": model_name or self.model or self.endpoint}
        yield AIMessageChunk(
            content="",
            response_metadata={k: v for k, v in metadata.items() if v is not None},
            chunk_position="last",
        )

    def _events(self, events: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        lines = iter_payload_lines(events)
        try:
            for event in iter_sse_events(lines):
                if isinstance(event, Mapping):
                    yield event
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EndpointOutputError(
                f"endpoint {self.endpoint!r} sent a stream event that is not JSON: {exc}"
            ) from None

    def _delta(self, delta: Mapping[str, Any]) -> AIMessageChunk | None:
        content = delta.get("content") or ""
        chunks = []
        for position, call in enumerate(delta.get("tool_calls") or []):
            index = int(call.get("index", position))
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if isinstance(arguments, Mapping):
                arguments = json.dumps(arguments)
            state = self._calls.get(index)
            if state is None:
                state = self._calls[index] = {
                    "id": str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                    "name": "",
                    "args": "",
                }
                first = True
            else:
                first = False
            if not state["name"]:
                state["name"] = str(function.get("name") or "")
            state["args"] += arguments or ""
            chunks.append(
                tool_call_chunk(
                    name=function.get("name") or None,
                    args=arguments or None,
                    id=state["id"] if first else None,
                    index=index,
                )
            )
        if not content and not chunks:
            return None
        return AIMessageChunk(content=content, tool_call_chunks=chunks)


def _chunk_to_message(chunk: BaseMessage) -> AIMessage:
    """The merged stream as a plain `AIMessage` (what `invoke` returns)."""
    assert isinstance(chunk, AIMessageChunk)
    return AIMessage(
        content=chunk.content,
        tool_calls=chunk.tool_calls,
        invalid_tool_calls=chunk.invalid_tool_calls,
        usage_metadata=chunk.usage_metadata,
        response_metadata=chunk.response_metadata,
        id=chunk.id,
    )
