"""sagerag: retrieval-augmented QA over Amazon SageMaker endpoints and Pinecone, with LangChain.

The public API is importable from here (`from sagerag import build_rag_chain, make_llm`). Everything but
the exceptions loads on first use, so `import sagerag` (and every CLI command) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports
from sagerag.errors import (
    ConfigurationError,
    DocumentTooLargeError,
    IndexMismatchError,
    InputError,
    ModelUnavailableError,
    SageRagError,
)

if TYPE_CHECKING:
    from sagerag.adapters import (
        SagemakerChatModel,
        SagemakerEmbeddings,
        SagemakerLLM,
        make_chat_model,
        make_embeddings,
        make_llm,
    )
    from sagerag.chains import RagResult, as_tool, build_rag_chain, build_retrieval_qa
    from sagerag.config import Settings, load_settings
    from sagerag.ingest import ingest_documents, load_path
    from sagerag.pipeline import Pipeline, from_settings
    from sagerag.stores import PineconeStore, ensure_index

__version__ = "0.1.0"

_LAZY = {
    "SagemakerChatModel": "sagerag.adapters",
    "SagemakerEmbeddings": "sagerag.adapters",
    "SagemakerLLM": "sagerag.adapters",
    "make_chat_model": "sagerag.adapters",
    "make_embeddings": "sagerag.adapters",
    "make_llm": "sagerag.adapters",
    "RagResult": "sagerag.chains",
    "as_tool": "sagerag.chains",
    "build_rag_chain": "sagerag.chains",
    "build_retrieval_qa": "sagerag.chains",
    "Settings": "sagerag.config",
    "load_settings": "sagerag.config",
    "ingest_documents": "sagerag.ingest",
    "load_path": "sagerag.ingest",
    "Pipeline": "sagerag.pipeline",
    "from_settings": "sagerag.pipeline",
    "PineconeStore": "sagerag.stores",
    "ensure_index": "sagerag.stores",
}

__all__ = [
    "ConfigurationError",
    "DocumentTooLargeError",
    "IndexMismatchError",
    "InputError",
    "ModelUnavailableError",
    "PineconeStore",
    "Pipeline",
    "RagResult",
    "SageRagError",
    "SagemakerChatModel",
    "SagemakerEmbeddings",
    "SagemakerLLM",
    "Settings",
    "__version__",
    "as_tool",
    "build_rag_chain",
    "build_retrieval_qa",
    "ensure_index",
    "from_settings",
    "ingest_documents",
    "load_path",
    "load_settings",
    "make_chat_model",
    "make_embeddings",
    "make_llm",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
