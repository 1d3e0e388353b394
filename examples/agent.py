"""An agent that consults the SageMaker FAQ through the RAG chain, used as a tool.

    python examples/agent.py "How do I keep endpoint costs down?"

The RAG chain answers from the FAQ (or says "I don't know") and the tool hands the agent the answer
with its source ids. The agent's own model must support tool calling, which Llama 2 endpoints do not:
set SAGERAG_AGENT_MODEL to an `init_chat_model` id (e.g. "bedrock_converse:anthropic.claude-3-5-haiku-
20241022-v1:0"). Without it, the script calls the tool directly, as the agent would.
"""

from __future__ import annotations

import os
import sys

from langchain.agents import create_agent

from sagerag.chains import as_tool, build_rag_chain
from sagerag.pipeline import from_settings


def main(question: str) -> None:
    with from_settings() as pipeline:
        tool = as_tool(build_rag_chain(pipeline.llm, pipeline.store))
        model = os.environ.get("SAGERAG_AGENT_MODEL")
        if not model:
            print("SAGERAG_AGENT_MODEL is not set; calling the tool directly:\n")
            print(tool.invoke({"question": question}))
            return
        agent = create_agent(
            model,
            tools=[tool],
            system_prompt="Answer questions about Amazon SageMaker with the sagemaker_faq tool; cite source ids.",
        )
        state = agent.invoke({"messages": [{"role": "user", "content": question}]})
        for message in state["messages"]:
            message.pretty_print()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "What is Amazon SageMaker?")
