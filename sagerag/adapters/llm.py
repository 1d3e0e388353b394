"""`SagemakerLLM`: langchain-aws's `SagemakerEndpoint` with streaming and stop words fixed.

The stock class loops forever when a stream's last payload part has no trailing newline, and treats
stop words as a regex. This subclass streams through `iter_payload_lines` and cuts at literal stop
words (also across chunk boundaries), and names the endpoint in botocore errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_aws.llms.sagemaker_endpoint import SagemakerEndpoint
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.outputs import GenerationChunk

from sagerag.adapters._stream import StopWordFilter, cut_at_stop, iter_payload_lines
from sagerag.adapters.client import invocation_params, invoke


class SagemakerLLM(SagemakerEndpoint):
    """A text-generation endpoint as a LangChain `LLM` (see `make_llm`)."""

    stop: list[str] | None = None
    """Default stop words (literal strings), used when a call gives none."""

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        response = invoke(self.client, invocation_params(self, prompt, True, kwargs), stream=True)
        stops = StopWordFilter(stop or self.stop)
        for line in iter_payload_lines(response["Body"]):
            text = stops.feed(self.content_handler.transform_output(line))
            if text:
                chunk = GenerationChunk(text=text)
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
            if stops.stopped:
                break
        tail = stops.flush()
        if tail:
            yield GenerationChunk(text=tail)

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        if self.streaming:
            return "".join(chunk.text for chunk in self._stream(prompt, stop, run_manager, **kwargs))
        response = invoke(self.client, invocation_params(self, prompt, False, kwargs))
        return cut_at_stop(self.content_handler.transform_output(response["Body"]), stop or self.stop)
