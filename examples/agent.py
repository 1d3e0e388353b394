"""An agent that consults the SageMaker FAQ through the RAG chain, used as a tool, all on SageMaker.

    sagerag ingest evals/Amazon_SageMaker_FAQs.csv     # once: fill the (local) knowledge base
    python examples/agent.py "Which instances can I use with Managed Spot Training in SageMaker?"

The RAG chain answers from the FAQ (or says "I don't know") and the tool hands the agent the answer with
its source ids. The agent's own model is a Messages API endpoint (`kind="messages"`: TGI >= 1.4 or LMI,
with tool calling); offline it is the local `messages` endpoint. SAGERAG_AGENT_ENDPOINT names another
one. Its first call is forced to the tool (`consult_first`), which small models need.
"""

from __future__ import annotations

import os
import sys

from langchain.agents import create_agent

from sagerag.adapters import SagemakerMessagesChatModel, make_chat_model
from sagerag.chains import as_tool, build_rag_chain, consult_first
from sagerag.pipeline import from_settings

SYSTEM_PROMPT = (
    "Call the sagemaker_faq tool with the user's question, word for word, then answer with what it "
    "returns and cite its source ids."
)


def main(question: str) -> None:
    with from_settings() as pipeline:
        tool = as_tool(build_rag_chain(pipeline.llm, pipeline.store))
        model = pipeline.llm
        if not isinstance(model, SagemakerMessagesChatModel):  # the RAG model is another kind
            endpoint = os.environ.get("SAGERAG_AGENT_ENDPOINT", "messages")
            model = make_chat_model(endpoint, kind="messages", client=pipeline.llm.client)  # type: ignore[attr-defined]
        agent = create_agent(
            model, tools=[tool], middleware=[consult_first(tool)], system_prompt=SYSTEM_PROMPT
        )
        state = agent.invoke({"messages": [{"role": "user", "content": question}]})
        for message in state["messages"]:
            message.pretty_print()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Which instances can I use with Managed Spot Training in SageMaker?")
