"""The grounding check's context-unit vectors are fetched while the model prefills, not after its first sentence."""

from __future__ import annotations

import asyncio
import threading

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from sagerag.chains import build_rag_chain
from sagerag.chains.grounding import context_units
from tests.unit.test_guards import PASSAGE, QUESTION, ScriptedLLM, WordEmbeddings

UNITS = context_units([PASSAGE])
SAID = "Managed Spot Training can be used with all instances. This answer is incorrect."


class RecordingEmbeddings(WordEmbeddings):
    """Notes which thread embedded which texts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append((threading.current_thread().name, list(texts)))
        return super().embed_documents(texts)


def _chain(embeddings: RecordingEmbeddings) -> object:
    store = InMemoryVectorStore(WordEmbeddings())
    store.add_documents([Document(PASSAGE, id="faq-90")])
    return build_rag_chain(ScriptedLLM(script=SAID), store, min_score=None, embeddings=embeddings)


def test_passages_are_embedded_once_ahead_and_verdicts_are_unchanged() -> None:
    embeddings = RecordingEmbeddings()
    result = _chain(embeddings).invoke(QUESTION)  # type: ignore[attr-defined]
    assert (
        result["answer"] == "Managed Spot Training can be used with all instances." and result["dropped"] == 1
    )
    [thread] = [thread for thread, texts in embeddings.calls if texts == UNITS]
    assert thread.startswith("sagerag-prefetch")
    sentences = [texts for thread, texts in embeddings.calls if texts != UNITS]
    assert sentences and all(PASSAGE not in texts for texts in sentences)


def test_async_chain_uses_the_prefetched_vectors_too() -> None:
    embeddings = RecordingEmbeddings()
    chain = _chain(embeddings)
    result = asyncio.run(chain.ainvoke(QUESTION))  # type: ignore[attr-defined]
    assert result["dropped"] == 1 and result["sentences"][0]["semantic"] is not None
    [thread] = [thread for thread, texts in embeddings.calls if texts == UNITS]
    assert thread.startswith("sagerag-prefetch")
