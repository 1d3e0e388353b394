"""An agent (LangChain 1.x ``create_agent``) calls the RAG tool; a scripted fake chat model drives it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import Field

from sagerag.chains import as_tool, build_rag_chain, consult_first

PASSAGE = "SageMaker Serverless Inference scales endpoints to zero when idle."


class ScriptedToolModel(GenericFakeChatModel):
    """Plays back scripted messages; tools are accepted and ignored, as the script already knows them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:  # type: ignore[override]
        return self


def test_agent_reads_answer_and_sources_from_tool() -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents([Document(PASSAGE, id="faq-42"), Document("Pinecone stores vectors.", id="faq-7")])
    # Hash embeddings have meaningless cosines: ground the answer lexically.
    chain = build_rag_chain(
        FakeListLLM(responses=["It scales to zero when idle."]), store, k=2, grounding_method="lexical"
    )
    tool = as_tool(chain)

    script = iter(
        [
            AIMessage(
                content="",
                tool_calls=[{"name": "sagemaker_faq", "args": {"question": PASSAGE}, "id": "call-1"}],
            ),
            AIMessage("Serverless Inference scales to zero when idle [faq-42]."),
        ]
    )
    agent = create_agent(ScriptedToolModel(messages=script), tools=[tool])
    state = agent.invoke({"messages": [HumanMessage("Does serverless inference scale to zero?")]})

    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1
    reply = tool_messages[0]
    assert reply.tool_call_id == "call-1" and reply.name == "sagemaker_faq"
    assert "Answer: It scales to zero when idle." in reply.text
    assert "[faq-42]" in reply.text
    assert reply.artifact["sources"][0]["id"] == "faq-42" and reply.artifact["abstained"] is False
    assert state["messages"][-1].text.endswith("[faq-42].")


class ChoiceRecordingModel(ScriptedToolModel):
    """Records the `tool_choice` the agent binds for each model call."""

    choices: list[Any] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:  # type: ignore[override]
        self.choices.append(kwargs.get("tool_choice"))
        return self


def test_consult_first_forces_only_the_first_model_call_to_the_tool() -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents([Document(PASSAGE, id="faq-42")])
    tool = as_tool(build_rag_chain(FakeListLLM(responses=["It scales to zero."]), store, k=1))
    script = iter(
        [
            AIMessage("", tool_calls=[{"name": "sagemaker_faq", "args": {"question": "Zero?"}, "id": "c1"}]),
            AIMessage("It scales to zero [faq-42]."),
        ]
    )
    model = ChoiceRecordingModel(messages=script, choices=[])
    agent = create_agent(model, tools=[tool], middleware=[consult_first(tool)])
    state = agent.invoke({"messages": [HumanMessage("Does serverless inference scale to zero?")]})
    assert model.choices == ["sagemaker_faq", None]
    assert state["messages"][-1].text == "It scales to zero [faq-42]."
