"""One-call factories: a configured LLM, chat model or embeddings object for an endpoint name."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseLanguageModel

from sagerag.adapters.chat import SagemakerChatModel
from sagerag.adapters.client import DEFAULT_TIMEOUT, make_runtime_client
from sagerag.adapters.embeddings import SagemakerEmbeddings
from sagerag.adapters.llama2 import (
    EULA_ATTRIBUTE,
    Llama2ChatContentHandler,
    Llama2ContentHandler,
    Llama2TGIChatContentHandler,
)
from sagerag.adapters.llm import SagemakerLLM
from sagerag.adapters.messages import SagemakerMessagesChatModel
from sagerag.adapters.minilm import MiniLMContentHandler
from sagerag.adapters.tei import TEI_MAX_CLIENT_BATCH_SIZE, TEIContentHandler
from sagerag.kinds import LLM_KINDS, EmbeddingsKind, LLMKind


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
    endpoint_kwargs: dict[str, Any] | None = None,
) -> SagemakerLLM:
    """A text-completion `LLM` for a TGI endpoint (`kind="tgi"`).

    For JumpStart chat and Messages API endpoints use `make_chat_model`: their APIs take messages, not text.
    """
    _check_kind(kind)
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
) -> SagemakerChatModel | SagemakerMessagesChatModel:
    """A chat model for an endpoint of `kind`:

    - `jumpstart-chat`: JumpStart Llama-2-chat (sends `accept_eula=true` unless `accept_eula=False`);
    - `tgi`: a Llama 2 chat model on TGI's text API (messages rendered as `[INST]` markup);
    - `messages`: the Messages API (TGI >= 1.4, LMI): tool calling and structured output; here
      `model_kwargs` are request fields such as `max_tokens` or `temperature`.
    """
    _check_kind(kind)
    client = _client(client, region_name, endpoint_url, credentials_profile_name, timeout)
    if kind == "messages":
        return SagemakerMessagesChatModel(
            endpoint_name=endpoint_name,
            client=client,
            region_name=region_name,
            model_kwargs=dict(model_kwargs or {}),
            endpoint_kwargs=dict(endpoint_kwargs or {}),
        )
    handler = Llama2ChatContentHandler() if kind == "jumpstart-chat" else Llama2TGIChatContentHandler()
    return SagemakerChatModel(
        endpoint_name=endpoint_name,
        client=client,
        region_name=region_name or "",
        content_handler=handler,
        model_kwargs=model_kwargs or {},
        endpoint_kwargs=_eula_kwargs(accept_eula and kind == "jumpstart-chat", endpoint_kwargs),
    )


def make_model(
    endpoint_name: str,
    kind: LLMKind,
    *,
    max_new_tokens: int,
    client: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> BaseLanguageModel:
    """The language model a RAG chain uses for an endpoint of `kind`: an `LLM` for `tgi`, a chat model
    otherwise, each told the token budget in its own API's terms."""
    _check_kind(kind)
    if kind == "tgi":
        return make_llm(
            endpoint_name, client=client, timeout=timeout, model_kwargs={"max_new_tokens": max_new_tokens}
        )
    budget = {"max_tokens": max_new_tokens} if kind == "messages" else {"max_new_tokens": max_new_tokens}
    return make_chat_model(endpoint_name, kind=kind, client=client, timeout=timeout, model_kwargs=budget)


def _check_kind(kind: str) -> None:
    if kind not in LLM_KINDS:
        raise ValueError(f"unknown LLM kind {kind!r}; expected one of {', '.join(LLM_KINDS)}")


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
    max_concurrency: int = 32,
    binary: bool = False,
) -> SagemakerEmbeddings:
    """`SagemakerEmbeddings` for a MiniLM endpoint: `feature-extraction` (the Hugging Face inference
    toolkit; per-token output, pooled here over real tokens) or `tei` (Text Embeddings Inference; pooled
    by the container, batches capped at its 32 inputs). `binary` asks a `feature-extraction` endpoint for
    NPY answers instead of JSON (`MiniLMContentHandler`)."""
    handler: MiniLMContentHandler | TEIContentHandler
    if kind == "tei":
        handler = TEIContentHandler(normalize=normalize)
        batch_size = min(batch_size, TEI_MAX_CLIENT_BATCH_SIZE)
    else:
        handler = MiniLMContentHandler(tokenizer_path=tokenizer_path, normalize=normalize, binary=binary)
    return SagemakerEmbeddings(
        endpoint_name=endpoint_name,
        client=_client(client, region_name, endpoint_url, credentials_profile_name, timeout),
        content_handler=handler,
        batch_size=batch_size,
        max_concurrency=max_concurrency,
        timeout=timeout,
    )
