"""Service errors explained for people: the setting to change, or whether the local services are running.

The library keeps botocore's and the pinecone SDK's exception types, so code catches what the SDKs
document; only the CLI turns the known configuration mistakes into one line naming what to fix.
"""

from __future__ import annotations

import json
from typing import Any

from sagerag.aws_errors import error_code, error_message
from sagerag.config import Settings, load_settings
from sagerag.errors import ConfigurationError, DataFileError, DiskFullError, SageRagError


def explain_service_error(exc: BaseException, settings: Settings | None = None) -> SageRagError | None:
    """A one-line error naming the setting to change, for a service error caused by configuration.

    The library keeps botocore's and the pinecone SDK's exception types (callers catch what the SDKs
    document); this is for the CLI, which shows people what to fix. Returns None when `exc` is not one
    of the known cases. `ConfigurationError` means "change a setting" (exit 2); a plain `SageRagError`
    is a service that cannot be reached right now (exit 1).
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        InvalidRegionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectTimeoutError as BotoConnectTimeout
    from pinecone.errors.exceptions import (
        ForbiddenError,
        PineconeConnectionError,
        PineconeTimeoutError,
        UnauthorizedError,
    )
    from pinecone.exceptions import PineconeApiException

    if settings is None:
        try:
            settings = load_settings()
        except Exception:
            settings = Settings()
    pinecone_at = "the local Pinecone" if settings.is_local else (settings.pinecone_host or "Pinecone")
    if isinstance(exc, UnauthorizedError):
        return ConfigurationError(f"{pinecone_at} rejected the API key (401); check PINECONE_API_KEY")
    if isinstance(exc, ForbiddenError):
        return ConfigurationError(
            f"{pinecone_at} refused access (403); check that PINECONE_API_KEY belongs to the project that "
            "owns this index"
        )
    if isinstance(exc, PineconeApiException):
        return _data_file_error(exc)
    where = "the local SageMaker Runtime" if settings.is_local else "the SageMaker Runtime"
    local_hint = (
        "is `sagerag serve` still running? Start it again, or stop it and re-run this command "
        "(it then starts its own local services); an interrupted ingest resumes where it stopped"
    )
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigurationError(
            f"{exc}: configure AWS credentials and a region (`sagerag deploy --dry-run` needs neither)"
        )
    if isinstance(exc, InvalidRegionError):
        return ConfigurationError(
            f"AWS region {settings.region!r} is not a valid region name; set SAGERAG_REGION (or AWS_REGION, "
            "or [sagemaker] region in sagerag.toml) to one such as us-east-1"
        )
    if isinstance(exc, ClientError):
        message, code = error_message(exc), error_code(exc)
        if code == "ValidationError" and "not found" in message.lower():
            for name, env, key in (
                (settings.llm_endpoint, "SAGERAG_LLM_ENDPOINT", "llm_endpoint"),
                (settings.embeddings_endpoint, "SAGERAG_EMBEDDINGS_ENDPOINT", "embeddings_endpoint"),
            ):
                if f"Endpoint {name} " in message or f"endpoint {name!r}" in str(exc):
                    return ConfigurationError(
                        f"SageMaker endpoint {name!r} was not found in region {settings.region}; set {env} "
                        f"(or [sagemaker] {key} in sagerag.toml) to the name of a deployed endpoint"
                    )
        return None
    timeout_hint = f"(timeout {settings.timeout:g}s, SAGERAG_TIMEOUT)"
    if isinstance(exc, EndpointConnectionError | BotoConnectTimeout | ConnectionClosedError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url") or settings.endpoint_url or "AWS"
        if settings.is_local:
            return SageRagError(f"cannot reach {where} at {url} {timeout_hint}; {local_hint}")
        setting = "SAGERAG_ENDPOINT_URL" if settings.endpoint_url else "SAGERAG_REGION"
        return SageRagError(
            f"cannot reach {where} at {url} {timeout_hint}; check that it is running and that "
            f"{setting} is right"
        )
    if isinstance(exc, ReadTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url") or "the endpoint"
        return SageRagError(
            f"{where} did not answer in time at {url} {timeout_hint}; raise SAGERAG_TIMEOUT or check the endpoint"
        )
    if isinstance(exc, PineconeConnectionError | PineconeTimeoutError):
        what = "did not answer in time" if isinstance(exc, PineconeTimeoutError) else "cannot be reached"
        if settings.is_local:
            return SageRagError(f"the local Pinecone {what} ({exc}) {timeout_hint}; {local_hint}")
        setting = "SAGERAG_PINECONE_HOST" if settings.pinecone_host else "your network"
        return SageRagError(f"Pinecone {what} ({exc}) {timeout_hint}; check that it is running and {setting}")
    return None


def _data_file_error(exc: Any) -> SageRagError | None:
    """The local Pinecone's own one-line account of a full disk or a damaged store file, if that is it."""
    body = getattr(exc, "body", None) or {}
    try:
        error = (json.loads(body) if isinstance(body, str | bytes) else body).get("error", {})
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    kinds: dict[str, type[SageRagError]] = {"DISK_FULL": DiskFullError, "DATA_FILE": DataFileError}
    kind = kinds.get(str(error.get("code")))
    return kind(str(error.get("message"))) if kind else None
