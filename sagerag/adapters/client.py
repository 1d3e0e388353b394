"""boto3 `sagemaker-runtime` clients with timeouts and retries set, and endpoint-aware error messages."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from sagerag.aws_errors import error_code

SAGEMAKER_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""SageMaker real-time inference caps request and response bodies at 6 MB: botocore's service model gives
InvokeEndpoint's request `Body` and response `Body` the same 6,291,456-byte maximum. The client budgets
under it; the local runtime enforces it."""

DEFAULT_TIMEOUT = 60.0
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ModelNotReadyException", "ServiceUnavailable", "InternalFailure"}
)
"""Error codes worth another try: botocore retries some of these itself, not `ModelNotReadyException`."""


def runtime_config(timeout: float = DEFAULT_TIMEOUT, max_attempts: int = 4) -> Config:
    """botocore settings: connect/read timeouts and botocore's own standard retries."""
    return Config(
        connect_timeout=min(timeout, 10.0),
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
        max_pool_connections=64,  # an embeddings' 32 requests in flight, and a chain's calls beside them
    )


def make_runtime_client(
    region_name: str | None = None,
    endpoint_url: str | None = None,
    credentials_profile_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    config: Config | None = None,
    static_credentials: tuple[str, str] | None = None,
) -> Any:
    """A `sagemaker-runtime` client; `endpoint_url` points it at a local server or a VPC endpoint.

    `static_credentials` (key id, secret) is for the local server, which ignores signatures.
    """
    import boto3

    if static_credentials:
        session = boto3.Session(
            aws_access_key_id=static_credentials[0], aws_secret_access_key=static_credentials[1]
        )
    elif credentials_profile_name:
        session = boto3.Session(profile_name=credentials_profile_name)
    else:
        session = boto3.Session()
    return session.client(
        "sagemaker-runtime",
        region_name=region_name or session.region_name or "us-east-1",
        endpoint_url=endpoint_url,
        config=config or runtime_config(timeout),
    )


def invocation_params(model: Any, payload: Any, stream: bool, call_kwargs: dict[str, Any]) -> dict[str, Any]:
    """`invoke_endpoint[_with_response_stream]` arguments for a langchain-aws LLM or chat model.

    `model` carries langchain-aws's fields (endpoint_name, content_handler, model_kwargs, endpoint_kwargs,
    inference_component_name); call-time kwargs override `model_kwargs`, and `stream` asks TGI to stream.
    """
    model_kwargs = {**(model.model_kwargs or {}), **call_kwargs}
    if stream:
        model_kwargs["stream"] = True
    params: dict[str, Any] = {
        "EndpointName": model.endpoint_name,
        "Body": model.content_handler.transform_input(payload, model_kwargs),
        "ContentType": model.content_handler.content_type,
        **(model.endpoint_kwargs or {}),
    }
    if not stream:
        params["Accept"] = model.content_handler.accepts
    if model.inference_component_name:
        params["InferenceComponentName"] = model.inference_component_name
    return params


def invoke(client: Any, params: dict[str, Any], stream: bool = False) -> Any:
    """`invoke_endpoint` (or its streaming twin) with `params`; a botocore error names the endpoint."""
    call = client.invoke_endpoint_with_response_stream if stream else client.invoke_endpoint
    try:
        return call(**params)
    except Exception as exc:
        raise name_endpoint(exc, params["EndpointName"])  # noqa: B904 (same exception, with the endpoint named)


def name_endpoint(exc: BaseException, endpoint_name: str) -> BaseException:
    """Add the endpoint name to the message of a botocore error, keeping its class and fields."""
    if isinstance(exc, ClientError) and exc.args and f"endpoint {endpoint_name!r}" not in str(exc):
        exc.args = (f"{exc.args[0]} [endpoint {endpoint_name!r}]", *exc.args[1:])
    return exc


RESPONSE_TOO_LARGE_MARKER = "could not load the entire response body"
"""In SageMaker's ModelError when a container's response is over the 6 MB limit (see local.sagemaker.app)."""


def is_uneven_npy(exc: BaseException) -> bool:
    """True for the ModelError of an inference toolkit asked for NPY answers for texts of different token
    counts: its `np.save` refuses the ragged list with numpy's "inhomogeneous shape" error (numpy >= 1.24)."""
    return error_code(exc) == "ModelError" and "inhomogeneous shape" in str(exc)


def is_response_too_large(exc: BaseException) -> bool:
    """True for the ModelError SageMaker returns when the model's response exceeds the payload limit."""
    return error_code(exc) == "ModelError" and RESPONSE_TOO_LARGE_MARKER in str(exc)
