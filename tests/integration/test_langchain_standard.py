"""LangChain's own standard suites for our embeddings and chat model, against the local runtime."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests

from sagerag.adapters import (
    EULA_ATTRIBUTE,
    Llama2ChatContentHandler,
    Llama2TGIChatContentHandler,
    SagemakerEmbeddings,
)
from tests.standard_models import Llama2Chat, MessagesChat
from tests.support import shared_runtime


class TestSagemakerEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[SagemakerEmbeddings]:
        return SagemakerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "minilm", "client": shared_runtime().client()}


class TestJumpStartChatStandard(Llama2Chat, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "endpoint_name": "llama2-chat",
            "client": shared_runtime().client(),
            "content_handler": Llama2ChatContentHandler(),
            "endpoint_kwargs": {"CustomAttributes": EULA_ATTRIBUTE},
            "model_kwargs": {"max_new_tokens": 24},
        }


class TestTGIChatStandard(Llama2Chat, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "endpoint_name": "llama2",
            "client": shared_runtime().client(),
            "content_handler": Llama2TGIChatContentHandler(),
            "model_kwargs": {"max_new_tokens": 24},
        }


class TestMessagesChatStandard(MessagesChat, ChatModelIntegrationTests):
    """The Messages API kind on the local `messages` endpoint: tool calling (forced calls under a JSON
    grammar), tool choice, structured output (tool-based, JSON schema, JSON mode) and usage metadata."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # One attempt, a long read timeout: a grammar-constrained answer on a busy 2-core machine can take
        # minutes, and a retried request would queue a second generation behind the first.
        client = shared_runtime().client(timeout=900, max_attempts=1)
        return {"endpoint_name": "messages", "client": client, "max_tokens": 48}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": 48, "timeout": 60, "stop": [], "max_retries": 2}

    @pytest.mark.xfail(
        reason="quality: with tool_choice='auto' SmolLM2-135M answers in text instead of calling "
        "the tool; the wire path is covered by test_auto_choice_becomes_a_call_when_the_model_writes_one"
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(
        reason="quality: json_object mode guarantees a JSON object, not the keys the prompt asks "
        "for; SmolLM2-135M nests them. json_schema mode (grammar from the schema) is the reliable one"
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)
