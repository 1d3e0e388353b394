"""What our chat models declare to LangChain's standard suites (unit and integration): one place each.

The suites skip or run tests from these capability properties, so the unit and the integration classes
of one model must declare the same ones.
"""

from __future__ import annotations

from typing import Any

from sagerag.adapters import SagemakerChatModel, SagemakerMessagesChatModel


class Llama2Chat:
    """Llama 2 endpoints on SageMaker (JumpStart or TGI): no tool calling, structured output or usage."""

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


class MessagesChat:
    """The Messages API kind: tool calling and choice, structured output (incl. JSON mode), usage."""

    @property
    def chat_model_class(self) -> type[SagemakerMessagesChatModel]:
        return SagemakerMessagesChatModel

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True
