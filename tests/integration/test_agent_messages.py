"""A LangChain agent on the local `messages` endpoint consults the RAG chain as a tool, fully offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from sagerag.adapters import SagemakerEmbeddings, make_chat_model
from sagerag.chains import as_tool, build_rag_chain, consult_first
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.stores import PineconeStore, ensure_index
from tests.support import API_KEY, SEED_QUESTION, faq_answers

pytestmark = pytest.mark.models

SYSTEM_PROMPT = (
    "Call the sagemaker_faq tool with the user's question, word for word, then answer with what it returns."
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


@pytest.fixture(scope="module")
def faq_store(runtime: LocalRuntime, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The FAQ rows about Spot training plus a dozen others (retrieval has to pick the right ones)."""
    documents = [
        Document(answer, metadata={"source": f"faq#{row}"})
        for row, answer in enumerate(faq_answers())
        if "Spot" in answer or row < 12
    ]
    with LocalPinecone(Path(tmp_path_factory.mktemp("agent")), api_key=API_KEY) as pinecone:
        pc = pinecone.client()
        ensure_index(pc, "faq", 384)
        embeddings = SagemakerEmbeddings(endpoint_name="minilm", client=runtime.client())
        store = PineconeStore.from_index_name(pc, "faq", embeddings)
        store.add_documents(documents)
        yield store


def test_agent_calls_the_rag_tool_first_and_answers_from_its_result(
    runtime: LocalRuntime, faq_store: Any
) -> None:
    chat = make_chat_model(
        "messages", kind="messages", client=runtime.client(), model_kwargs={"max_tokens": 96}
    )
    tool = as_tool(build_rag_chain(chat, faq_store, k=3))
    agent = create_agent(chat, tools=[tool], middleware=[consult_first(tool)], system_prompt=SYSTEM_PROMPT)

    state = agent.invoke({"messages": [HumanMessage(SEED_QUESTION)]})
    messages = state["messages"]

    first = messages[1]
    assert isinstance(first, AIMessage) and len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call["name"] == "sagemaker_faq"
    assert call["args"] == {"question": SEED_QUESTION}  # generated under the grammar, asked verbatim
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert results and results[0].tool_call_id == call["id"]
    answer = results[0].artifact["answer"]
    assert answer.strip()

    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    expected = _words(answer)
    found = expected & _words(final.text)
    assert len(found) >= 0.6 * len(expected), (
        f"final answer {final.text!r} leaves out the tool's answer {answer!r}"
    )
