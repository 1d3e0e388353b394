"""Adapters: SageMaker content handlers and the LangChain objects built on them."""

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
from sagerag.adapters.minilm import MiniLMContentHandler, mean_pool
from sagerag.adapters.tei import TEIContentHandler

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
