"""One-call factories: a configured LLM, chat model or embeddings object for an endpoint name."""

from __future__ import annotations

from typing import Any, Literal

from sagerag.adapters._client import DEFAULT_TIMEOUT, make_runtime_client
from sagerag.adapters.chat import SagemakerChatModel
from sagerag.adapters.embeddings import SagemakerEmbeddings
from sagerag.adapters.llama2 import (
    EULA_ATTRIBUTE,
    Llama2ChatContentHandler,
    Llama2ContentHandler,
    Llama2TGIChatContentHandler,
)
from sagerag.adapters.llm import SagemakerLLM
from sagerag.adapters.minilm import MiniLMContentHandler
from sagerag.adapters.tei import TEI_MAX_CLIENT_BATCH_SIZE, TEIContentHandler

LLMKind = Literal["tgi", "jumpstart-chat"]
EmbeddingsKind = Literal["feature-extraction", "tei"]


def _client(
    client: Any, region_name: str | None, endpoint_url: str | None, profile: str | None, timeout: float
) -> Any:
    return client or make_runtime_client(region_name, endpoint_url, profile, timeout)


def _eula_kwargs(accept_eula: bool, endpoint_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(endpoint_kwargs or {})
    if accept_eula:
        kwargs.setdefault("CustomAttributes", EULA_ATTRIBUTE)
    return kwargs


def make_llm(
    endpoint_name: str,
    *,
    kind: LLMKind = "tgi",
    region_name: str | None = None,
    endpoint_url: str | None = None,
    credentials_profile_name: str | None = None,
    client: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    streaming: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    accept_eula: bool = True,
    endpoint_kwargs: dict[str, Any] | None = None,
) -> SagemakerLLM:
    """A text-completion `LLM` for a TGI endpoint (`kind="tgi"`).

    For a JumpStart chat endpoint use `make_chat_model(kind="jumpstart-chat")`: its API takes dialogs, not text.
    """
    if kind != "tgi":
        raise ValueError(f"make_llm supports kind='tgi'; for {kind!r} endpoints use make_chat_model")
    return SagemakerLLM(
        endpoint_name=endpoint_name,
        client=_client(client, region_name, endpoint_url, credentials_profile_name, timeout),
        region_name=region_name or "",
        content_handler=Llama2ContentHandler(),
        streaming=streaming,
        model_kwargs=model_kwargs or {},
        endpoint_kwargs=dict(endpoint_kwargs or {}),
    )


def make_chat_model(
    endpoint_name: str,
    *,
    kind: LLMKind = "jumpstart-chat",
    region_name: str | None = None,
    endpoint_url: str | None = None,
    credentials_profile_name: str | None = None,
    client: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    model_kwargs: dict[str, Any] | None = None,
    accept_eula: bool = True,
    endpoint_kwargs: dict[str, Any] | None = None,
) -> SagemakerChatModel:
    """A chat model for a JumpStart Llama-2-chat endpoint (sends `accept_eula=true` unless told not to)
    or for a Llama 2 chat model on TGI (`kind="tgi"`: messages rendered as `[INST]` markup)."""
    handler = Llama2ChatContentHandler() if kind == "jumpstart-chat" else Llama2TGIChatContentHandler()
    if kind not in ("tgi", "jumpstart-chat"):
        raise ValueError(f"unknown LLM kind {kind!r}; expected 'tgi' or 'jumpstart-chat'")
    return SagemakerChatModel(
        endpoint_name=endpoint_name,
        client=_client(client, region_name, endpoint_url, credentials_profile_name, timeout),
        region_name=region_name or "",
        content_handler=handler,
        model_kwargs=model_kwargs or {},
        endpoint_kwargs=_eula_kwargs(accept_eula and kind == "jumpstart-chat", endpoint_kwargs),
    )


def make_embeddings(
    endpoint_name: str,
    *,
    kind: EmbeddingsKind = "feature-extraction",
    region_name: str | None = None,
    endpoint_url: str | None = None,
    credentials_profile_name: str | None = None,
    client: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    tokenizer_path: str | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    max_concurrency: int = 4,
) -> SagemakerEmbeddings:
    """`SagemakerEmbeddings` for a MiniLM endpoint: `feature-extraction` (the Hugging Face inference
    toolkit; per-token output, pooled here over real tokens) or `tei` (Text Embeddings Inference; pooled
    by the container, batches capped at its 32 inputs)."""
    handler: MiniLMContentHandler | TEIContentHandler
    if kind == "tei":
        handler = TEIContentHandler(normalize=normalize)
        batch_size = min(batch_size, TEI_MAX_CLIENT_BATCH_SIZE)
    else:
        handler = MiniLMContentHandler(tokenizer_path=tokenizer_path, normalize=normalize)
    return SagemakerEmbeddings(
        endpoint_name=endpoint_name,
        client=_client(client, region_name, endpoint_url, credentials_profile_name, timeout),
        content_handler=handler,
        batch_size=batch_size,
        max_concurrency=max_concurrency,
        timeout=timeout,
    )
