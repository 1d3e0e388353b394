"""`SagemakerChatModel`: langchain-aws's `ChatSagemakerEndpoint` with our handlers and fixes.

Messages go to the content handler as LangChain messages (the stock conversion rejects some message
sequences), stop words are literal, and endpoints that cannot stream (JumpStart's Llama 2 chat) still
work with `.stream()`, as one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_aws.chat_models.sagemaker_endpoint import ChatSagemakerEndpoint
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from sagerag.adapters._stream import StopWordFilter, cut_at_stop, iter_payload_lines
from sagerag.adapters.client import invocation_params, invoke
from sagerag.adapters.llama2 import Llama2TGIChatContentHandler


class SagemakerChatModel(ChatSagemakerEndpoint):
    """A Llama 2 chat endpoint (JumpStart or TGI) as a LangChain chat model (see `make_chat_model`)."""

    stop: list[str] | None = None
    """Default stop words (literal strings), used when a call gives none."""
    max_tokens: int | None = None
    """LangChain's standard token limit; sent as the endpoint's `max_new_tokens` unless a call sets that."""

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Traces name the endpoint as the model (a call-time `model` wins), as LangChain's tracing expects."""
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "amazon_sagemaker"
        params["ls_model_name"] = kwargs.get("model") or self.endpoint_name
        return params

    @property
    def _can_stream(self) -> bool:
        return isinstance(self.content_handler, Llama2TGIChatContentHandler)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.max_tokens is not None:
            kwargs.setdefault("max_new_tokens", self.max_tokens)
        response = invoke(self.client, invocation_params(self, messages, False, kwargs))
        message = self.content_handler.transform_output(response["Body"])
        text = cut_at_stop(str(message.text), stop or self.stop)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if not self._can_stream:
            text = str(self._generate(messages, stop, run_manager, **kwargs).generations[0].message.text)
            yield self._chunk(text, run_manager, last=True)
            return
        if self.max_tokens is not None:
            kwargs.setdefault("max_new_tokens", self.max_tokens)
        response = invoke(self.client, invocation_params(self, messages, True, kwargs), stream=True)
        stops = StopWordFilter(stop or self.stop)
        for line in iter_payload_lines(response["Body"]):
            text = stops.feed(str(self.content_handler.transform_output(line).text))
            if text:
                yield self._chunk(text, run_manager)
            if stops.stopped:
                break
        yield self._chunk(stops.flush(), run_manager, last=True)

    @staticmethod
    def _chunk(
        text: str, run_manager: CallbackManagerForLLMRun | None, last: bool = False
    ) -> ChatGenerationChunk:
        message = (
            AIMessageChunk(content=text, chunk_position="last") if last else AIMessageChunk(content=text)
        )
        chunk = ChatGenerationChunk(message=message)
        if run_manager and text:
            run_manager.on_llm_new_token(text, chunk=chunk)
        return chunk
