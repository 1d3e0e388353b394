"""LangChain's own standard suites for our embeddings and chat model, against the local runtime."""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests

from sagerag.adapters import (
    EULA_ATTRIBUTE,
    Llama2ChatContentHandler,
    Llama2TGIChatContentHandler,
    SagemakerChatModel,
    SagemakerEmbeddings,
)
from tests.support import shared_runtime


class TestSagemakerEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[SagemakerEmbeddings]:
        return SagemakerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "minilm", "client": shared_runtime().client()}


class _ChatBase(ChatModelIntegrationTests):
    """Chat over the local Llama 2 endpoints. No tool calling, structured output or usage metadata:
    Llama 2 endpoints on SageMaker offer none of them."""

    @property
    def chat_model_class(self) -> type[SagemakerChatModel]:
        return SagemakerChatModel

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {}  # temperature/max_tokens/timeout are model_kwargs and client settings here

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return False


class TestJumpStartChatStandard(_ChatBase):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "endpoint_name": "llama2-chat",
            "client": shared_runtime().client(),
            "content_handler": Llama2ChatContentHandler(),
            "endpoint_kwargs": {"CustomAttributes": EULA_ATTRIBUTE},
            "model_kwargs": {"max_new_tokens": 24},
        }


class TestTGIChatStandard(_ChatBase):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "endpoint_name": "llama2",
            "client": shared_runtime().client(),
            "content_handler": Llama2TGIChatContentHandler(),
            "model_kwargs": {"max_new_tokens": 24},
        }
