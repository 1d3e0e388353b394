"""A simulated remote Llama 2 text-generation endpoint (TGI), for benchmarks: real text, modelled timing.

The local SmolLM2 runs on the same two cores as the client, so a query benchmark against it measures the
emulator's CPU, not what a user waits for on a GPU endpoint. This container speaks TGI's format on both
routes (`invoke_endpoint` and `invoke_endpoint_with_response_stream`) and answers with real text: the
local model's greedy answer to the same request, generated once and recorded. It spends the time a
remote Llama-2-7b on TGI would (`GenerationTiming`): half a round trip out, a queue for one of
`instances` model servers, prefill per prompt token, one decode step per output token, half a round trip
back. Tokens are released on an absolute schedule from the request's start, so the client being busy
(or the server's own CPU work) does not stretch the modelled generation, as on a real endpoint, which
keeps generating while the client reads.

Like `simulated.SimulatedFeatureExtraction` (same round-trip default, same counters), an answer first
seen in a request is generated then, before its modelled clock starts; `record_body` does it ahead.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sagerag.local.sagemaker.containers import TextGenerationInference
from sagerag.local.sagemaker.llama2_markup import parse_llama2_chat
from sagerag.local.sagemaker.models import GeneratedToken, GGUFChatModel
from sagerag.local.sagemaker.simulated import RemoteTiming


@dataclass(frozen=True)
class GenerationTiming:
    """Service-time model of Llama-2-7b-chat on TGI, one ml.g5.2xlarge per instance (docs/benchmarks.md,
    "Query latency and chain overhead", gives the sources)."""

    round_trip_s: float = RemoteTiming.round_trip_s
    """Network round trip between client and endpoint (the embeddings model's default)."""
    per_request_s: float = 0.000_5
    """TGI's own work per request outside the model (validation, tokenising, queue): its request latency
    minus its inference latency, 0.45 ms median, in the Hugging Face SageMaker benchmark's raw data."""
    prefill_per_token_s: float = 0.000_2
    """Prefill per prompt token: 2 x 6.7e9 FLOPs per token at the A10G's ~70 fp16 tensor TFLOPS (prefill is
    compute-bound); at peak, so the modelled endpoint is if anything fast."""
    per_output_token_s: float = 0.031
    """One decode step: 30.96 ms/token median for Llama-2-7b on ml.g5.2xlarge (TGI 1.0.3, one user)."""
    instances: int = 1
    """Model servers behind the endpoint; each generates for one request at a time, the rest queue. (TGI
    batches concurrent requests on one GPU at ~1.6 ms/token more per extra request; not modelled.)"""

    def service_s(self, prompt_tokens: int, output_tokens: int) -> float:
        """Seconds one request holds an instance."""
        return (
            self.per_request_s
            + self.prefill_per_token_s * prompt_tokens
            + self.per_output_token_s * output_tokens
        )

    def first_token_s(self, prompt_tokens: int) -> float:
        """Time to first token seen by the client of an idle endpoint."""
        return self.round_trip_s + self.service_s(prompt_tokens, 1)

    def total_s(self, prompt_tokens: int, output_tokens: int) -> float:
        """Time to the last token seen by the client of an idle endpoint."""
        return self.round_trip_s + self.service_s(prompt_tokens, output_tokens)


Recorded = list[tuple[GeneratedToken, str]]
"""An answer as `_Generator.run` yields it: each token with its finish reason ('' until the last)."""


def _key(turns: list[dict[str, str]], options: dict[str, Any]) -> str:
    return json.dumps([turns, options], sort_keys=True)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class SimulatedTextGeneration(TextGenerationInference):
    """TGI's formats (inherited), answers from recordings, each token released on a `GenerationTiming`.

    Counters say how the endpoint was used: `requests`, `busy_s` (instance time), `prompt_tokens`,
    `output_tokens` (tokens sent, fewer when a client closes the stream early) and `recorded` (answers
    the real model generated during a request, outside the modelled time).
    """

    def __init__(self, model: GGUFChatModel, timing: GenerationTiming):
        super().__init__(model)
        self.timing = timing
        self._prompts: dict[str, list[int]] = {}
        self._answers: dict[str, Recorded] = {}
        self._instances = threading.BoundedSemaphore(timing.instances)
        self._lock = threading.Lock()
        self.requests = 0
        self.busy_s = 0.0
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.recorded = 0

    @property
    def answers(self) -> int:
        """Distinct answers recorded so far (shared with `retimed` copies)."""
        return len(self._answers)

    def retimed(self, timing: GenerationTiming) -> SimulatedTextGeneration:
        """The same recordings behind another timing model (fresh counters)."""
        other = SimulatedTextGeneration(self.model, timing)
        other._prompts, other._answers = self._prompts, self._answers
        return other

    def record_body(self, body: bytes) -> int:
        """Generate and keep the answer to a TGI request body now; returns its output tokens."""
        inputs, options, _ = self._request(body)
        return len(self._record(parse_llama2_chat(inputs), options))

    def _tokens(self, turns: list[dict[str, str]], options: dict[str, Any]) -> list[int]:
        key = _key(turns, options)
        if key not in self._prompts:
            self._prompts[key] = super()._tokens(turns, options)  # validates, as TGI does
        return self._prompts[key]

    def _record(self, turns: list[dict[str, str]], options: dict[str, Any]) -> Recorded:
        key = _key(turns, options)
        if key not in self._answers:
            self._answers[key] = list(super().run(turns, options))
            with self._lock:
                self.recorded += 1
        return self._answers[key]

    def run(
        self, turns: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[tuple[GeneratedToken, str]]:
        answer = self._record(turns, options)
        prompt = len(self._tokens(turns, options))
        timing = self.timing
        _sleep_until(time.monotonic() + timing.round_trip_s / 2)
        self._instances.acquire()
        start = time.monotonic()
        first = start + timing.per_request_s + timing.prefill_per_token_s * prompt
        end = start + timing.service_s(prompt, len(answer))
        held, sent = True, 0

        def wait(deadline: float) -> None:
            nonlocal held
            if held and deadline >= end:  # the instance is free once the last token is generated
                _sleep_until(end)
                self._instances.release()
                held = False
            _sleep_until(deadline)

        try:
            for index, item in enumerate(answer):
                # Token `index` leaves the GPU after its decode step and reaches the client half a
                # round trip later.
                wait(first + timing.per_output_token_s * (index + 1) + timing.round_trip_s / 2)
                sent += 1
                yield item
        finally:  # also on close: TGI stops generating for a client that went away
            if held:
                self._instances.release()
            with self._lock:
                self.requests += 1
                self.busy_s += min(time.monotonic(), end) - start
                self.prompt_tokens += prompt
                self.output_tokens += sent
