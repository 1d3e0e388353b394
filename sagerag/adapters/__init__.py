"""Adapters: SageMaker content handlers and the LangChain objects built on them.

Names load on first use: the local runtime imports `adapters.client` (boto3 only) and must not pay
for LangChain and langchain-aws, which the other modules import (about a second and a half).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports

if TYPE_CHECKING:
    from sagerag.adapters.chat import SagemakerChatModel
    from sagerag.adapters.client import make_runtime_client, runtime_config
    from sagerag.adapters.embeddings import SagemakerEmbeddings
    from sagerag.adapters.factories import make_chat_model, make_embeddings, make_llm, make_model
    from sagerag.adapters.llama2 import (
        EULA_ATTRIBUTE,
        Llama2ChatContentHandler,
        Llama2ContentHandler,
        Llama2TGIChatContentHandler,
        messages_to_dialog,
        render_llama2_chat,
    )
    from sagerag.adapters.llm import SagemakerLLM
    from sagerag.adapters.messages import SagemakerMessagesChatModel
    from sagerag.adapters.minilm import MiniLMContentHandler
    from sagerag.adapters.tei import TEIContentHandler
    from sagerag.adapters.token_vectors import mean_pool

_LAZY = {
    "SagemakerChatModel": "sagerag.adapters.chat",
    "make_runtime_client": "sagerag.adapters.client",
    "runtime_config": "sagerag.adapters.client",
    "SagemakerEmbeddings": "sagerag.adapters.embeddings",
    "make_chat_model": "sagerag.adapters.factories",
    "make_embeddings": "sagerag.adapters.factories",
    "make_llm": "sagerag.adapters.factories",
    "make_model": "sagerag.adapters.factories",
    "EULA_ATTRIBUTE": "sagerag.adapters.llama2",
    "Llama2ChatContentHandler": "sagerag.adapters.llama2",
    "Llama2ContentHandler": "sagerag.adapters.llama2",
    "Llama2TGIChatContentHandler": "sagerag.adapters.llama2",
    "messages_to_dialog": "sagerag.adapters.llama2",
    "render_llama2_chat": "sagerag.adapters.llama2",
    "SagemakerLLM": "sagerag.adapters.llm",
    "SagemakerMessagesChatModel": "sagerag.adapters.messages",
    "MiniLMContentHandler": "sagerag.adapters.minilm",
    "mean_pool": "sagerag.adapters.token_vectors",
    "TEIContentHandler": "sagerag.adapters.tei",
}

__all__ = [
    "EULA_ATTRIBUTE",
    "Llama2ChatContentHandler",
    "Llama2ContentHandler",
    "Llama2TGIChatContentHandler",
    "MiniLMContentHandler",
    "SagemakerChatModel",
    "SagemakerEmbeddings",
    "SagemakerLLM",
    "SagemakerMessagesChatModel",
    "TEIContentHandler",
    "make_chat_model",
    "make_embeddings",
    "make_llm",
    "make_model",
    "make_runtime_client",
    "mean_pool",
    "messages_to_dialog",
    "render_llama2_chat",
    "runtime_config",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
