"""The SageMaker Runtime API on loopback: routes, SageMaker-shaped errors, event-stream responses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sagerag.adapters.client import SAGEMAKER_MAX_PAYLOAD_BYTES
from sagerag.local.sagemaker.containers import (
    JSON,
    ContainerError,
    FeatureExtraction,
    JumpStartLlama2Chat,
    TextEmbeddingsInference,
    TextGenerationInference,
    check_accept,
)
from sagerag.local.sagemaker.eventstream import model_stream_error, payload_part
from sagerag.local.sagemaker.faults import FaultConfig, RuntimeCounters
from sagerag.local.sagemaker.messages import MessagesAPI
from sagerag.local.sagemaker.models import ModelRegistry

MAX_REQUEST_BYTES = MAX_RESPONSE_BYTES = SAGEMAKER_MAX_PAYLOAD_BYTES
ACCOUNT = "000000000000"


@dataclass(frozen=True)
class LocalEndpoint:
    """Which container format a local endpoint speaks, and which local model serves it."""

    container: str
    """`feature-extraction`, `feature-extraction-padded`, `tei`, `tgi`, `jumpstart-chat` or `messages`."""
    model: str
    """Name of a model in the registry (`minilm`, `smollm2`, or one the user registered)."""


DEFAULT_ENDPOINTS: dict[str, LocalEndpoint] = {
    "minilm": LocalEndpoint("feature-extraction", "minilm"),
    "minilm-padded": LocalEndpoint("feature-extraction-padded", "minilm"),
    "minilm-tei": LocalEndpoint("tei", "minilm"),
    "llama2": LocalEndpoint("tgi", "smollm2"),
    "llama2-chat": LocalEndpoint("jumpstart-chat", "smollm2"),
    "messages": LocalEndpoint("messages", "smollm2"),
}

_CONTAINERS: dict[str, Callable[[Any], Any]] = {
    "feature-extraction": lambda model: FeatureExtraction(model, padded=False),
    "feature-extraction-padded": lambda model: FeatureExtraction(model, padded=True),
    "tei": TextEmbeddingsInference,
    "tgi": TextGenerationInference,
    "jumpstart-chat": JumpStartLlama2Chat,
    "messages": MessagesAPI,
}


def _error(status: int, code: str, message: str, **fields: Any) -> Response:
    body = {"__type": code, "message": message, "Message": message, **fields}
    return JSONResponse(body, status_code=status, headers={"x-amzn-ErrorType": code})


def _response_too_large(endpoint: str, size: int, limit: int) -> Response:
    """What SageMaker answers when a container's response is over the limit: a 424 ModelError saying a
    500 came from the container and the body could not be loaded. The wording is SageMaker's as users
    report it (aws/amazon-sagemaker-examples issue #4324, "Received server error (500) from primary and
    could not load the entire response body"; the container's own server, MMS/TorchServe, refuses
    responses over its `max_response_size` with "Message size exceed limit", see aws/sagemaker-python-sdk
    issue #1096). No AWS document states this error for oversized responses; that user report is the
    closest evidence found. The real service says nothing about the size; we add it after its text."""
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return _error(
        424,
        "ModelError",
        "Received server error (500) from primary and could not load the entire response body. "
        f"See the log group {log_group} in account {ACCOUNT} for more information. "
        f"(sagerag local runtime: the response was {size} bytes, over the {limit}-byte limit)",
        OriginalStatusCode=500,
        LogStreamArn=f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{log_group}",
    )


def _model_error(endpoint: str, exc: ContainerError) -> Response:
    original = json.dumps({"code": exc.status, "type": "InternalServerException", "message": exc.message})
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return _error(
        424,
        "ModelError",
        f'Received client error ({exc.status}) from primary with message "{original}". '
        f"See the log group {log_group} in account {ACCOUNT} for more information.",
        OriginalStatusCode=exc.status,
        OriginalMessage=original,
        LogStreamArn=f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{log_group}",
    )


class RuntimeApp:
    """Builds the Starlette app; containers are created on first use, models from the shared registry."""

    def __init__(
        self,
        registry: ModelRegistry,
        endpoints: dict[str, LocalEndpoint] | None = None,
        faults: FaultConfig | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self.registry = registry
        self.endpoints = dict(DEFAULT_ENDPOINTS if endpoints is None else endpoints)
        for name, spec in self.endpoints.items():
            if spec.container not in _CONTAINERS:
                raise ValueError(
                    f"endpoint {name!r}: unknown container {spec.container!r}; known: {sorted(_CONTAINERS)}"
                )
        self.faults = faults or FaultConfig()
        self.max_response_bytes = max_response_bytes
        self.counters = RuntimeCounters()
        self._containers: dict[str, Any] = {}
        self.app = Starlette(
            routes=[
                Route("/endpoints/{name}/invocations", self.invoke, methods=["POST"]),
                Route("/endpoints/{name}/invocations-response-stream", self.invoke_stream, methods=["POST"]),
                Route("/ping", self.health, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    def install(self, name: str, container: Any) -> None:
        """Serve endpoint `name` with a ready container object (a benchmark's simulated remote endpoint)."""
        self.endpoints[name] = LocalEndpoint("installed", type(container).__name__)
        self._containers[name] = container

    def container(self, name: str) -> Any:
        if name not in self._containers:
            spec = self.endpoints[name]
            self._containers[name] = _CONTAINERS[spec.container](self.registry.get(spec.model))
        return self._containers[name]

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "endpoints": sorted(self.endpoints),
                "models_loaded": self.registry.loaded(),
                "counters": self.counters.snapshot(),
            }
        )

    async def _precheck(self, request: Request) -> tuple[str, bytes, str] | Response:
        """Common checks: endpoint exists, body size, injected latency and faults."""
        name = request.path_params["name"]
        if name not in self.endpoints:
            return _error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        self.counters.count("invocation")
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            self.counters.count("refused", "request-too-large")
            return _error(
                400,
                "ValidationError",
                f"Request payload of {len(body)} bytes for endpoint {name} exceeds the maximum of "
                f"{MAX_REQUEST_BYTES} bytes (6 MB) for real-time inference.",
            )
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        fault = self.faults.draw()
        if fault:
            self.counters.count("fault", fault[1])
            return _error(*fault)
        return name, body, request.headers.get("x-amzn-sagemaker-custom-attributes", "")

    async def invoke(self, request: Request) -> Response:
        checked = await self._precheck(request)
        if isinstance(checked, Response):
            return checked
        name, body, attributes = checked
        media_type = JSON
        try:
            container = await run_in_threadpool(self.container, name)
            if getattr(container, "reads_accept", False):  # the inference toolkit's: JSON or NPY
                media_type = check_accept(request.headers.get("accept", ""))
                output = await run_in_threadpool(container.invoke, body, attributes, media_type)
            else:
                output = await run_in_threadpool(container.invoke, body, attributes)
        except ContainerError as exc:
            return _model_error(name, exc)
        except Exception as exc:  # a model that crashed: SageMaker reports a 500 from the container
            return _model_error(name, ContainerError(500, f"{type(exc).__name__}: {exc}"))
        if len(output) > self.max_response_bytes:
            self.counters.count("refused", "response-too-large")
            return _response_too_large(name, len(output), self.max_response_bytes)
        return Response(
            output,
            media_type=media_type,
            headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )

    async def invoke_stream(self, request: Request) -> Response:
        checked = await self._precheck(request)
        if isinstance(checked, Response):
            return checked
        name, body, attributes = checked
        try:
            container = await run_in_threadpool(self.container, name)
        except Exception as exc:
            return _model_error(name, ContainerError(500, f"{type(exc).__name__}: {exc}"))
        if not hasattr(container, "stream"):
            return _error(400, "ValidationError", f"Endpoint {name} does not support response streaming.")
        lines = container.stream(body, attributes)
        try:  # validation errors surface before the first byte, as a normal ModelError
            first = await run_in_threadpool(next, lines, None)
        except ContainerError as exc:
            return _model_error(name, exc)
        return StreamingResponse(
            _frames(lines, first),
            media_type="application/vnd.amazon.eventstream",
            headers={
                "X-Amzn-SageMaker-Content-Type": "text/event-stream",
                "x-Amzn-Invoked-Production-Variant": "AllTraffic",
            },
        )


async def _frames(lines: Any, first: bytes | None) -> AsyncIterator[bytes]:
    """Event-stream frames, one per line as it is generated; the generator is closed on disconnect."""
    try:
        line = first
        while line is not None:
            yield payload_part(line)
            line = await run_in_threadpool(next, lines, None)
    except Exception as exc:
        yield model_stream_error(f"{type(exc).__name__}: {exc}")
    finally:
        await run_in_threadpool(lines.close)
