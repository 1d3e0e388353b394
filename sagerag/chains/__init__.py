"""Chains: the classic RetrievalQA, the LCEL RAG chain with its abstention gate, and the chain as a tool.

Chains take the LLM and the vector store (or retriever) as arguments and never build them, so any
LangChain objects work; ``sagerag.pipeline`` wires the project's own.
"""

from sagerag.chains.abstain import (
    DEFAULT_MIN_SCORE,
    DEFAULT_MIN_SCORES,
    default_min_score,
    normalize_answer,
    says_idk,
)
from sagerag.chains.rag import RagResult, StreamedAnswer, build_rag_chain, stream_answer
from sagerag.chains.retrieval_qa import BudgetedRetriever, build_retrieval_qa
from sagerag.chains.tool import as_tool, consult_first, format_tool_answer

__all__ = [
    "DEFAULT_MIN_SCORE",
    "DEFAULT_MIN_SCORES",
    "BudgetedRetriever",
    "RagResult",
    "StreamedAnswer",
    "as_tool",
    "build_rag_chain",
    "build_retrieval_qa",
    "consult_first",
    "default_min_score",
    "format_tool_answer",
    "normalize_answer",
    "says_idk",
    "stream_answer",
]
