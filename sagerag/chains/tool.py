"""The RAG chain as a LangChain tool, so an agent can consult the knowledge base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse, wrap_model_call
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from sagerag.chains.rag import RagResult  # at run time: the tool's signature is inspected

DEFAULT_DESCRIPTION = (
    "Answers questions about Amazon SageMaker from its FAQ. Input: one self-contained question. "
    'Returns the answer and the ids of the FAQ passages it is based on, or "I don\'t know" when the '
    "FAQ does not cover the question."
)


class QuestionInput(BaseModel):
    """The tool's arguments."""

    question: str = Field(description="A self-contained question in natural language.")


def format_tool_answer(result: RagResult, snippet_chars: int = 200) -> str:
    """The answer and its cited sources as plain text an agent model can read."""
    lines = [f"Answer: {result['answer']}"]
    if result["abstained"]:
        lines.append("(The knowledge base does not answer this question.)")
    elif result["sources"]:
        lines.append("Sources:")
        for source in result["sources"]:
            text = " ".join(str(source["text"]).split())
            if len(text) > snippet_chars:
                text = text[:snippet_chars].rstrip() + "..."
            score = "" if source["score"] is None else f" (score {source['score']:.2f})"
            lines.append(f"- [{source['id']}]{score} {text}")
    return "\n".join(lines)


def as_tool(
    chain: Runnable[Any, RagResult],
    name: str = "sagemaker_faq",
    description: str = DEFAULT_DESCRIPTION,
) -> StructuredTool:
    """A tool taking ``question``: the ToolMessage content is the readable answer with source ids, and its
    ``artifact`` is the chain's full output (``answer``, ``sources``, ``abstained``) for code to use."""

    def run(question: str) -> tuple[str, RagResult]:
        result = chain.invoke({"question": question})
        return format_tool_answer(result), result

    async def arun(question: str) -> tuple[str, RagResult]:
        result = await chain.ainvoke({"question": question})
        return format_tool_answer(result), result

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description,
        args_schema=QuestionInput,
        response_format="content_and_artifact",
    )


def consult_first(tool: BaseTool | str, verbatim: bool = True) -> AgentMiddleware:
    """`create_agent` middleware: the agent's first model call must call `tool`; later calls are free.

    A small model rarely decides on its own to look something up; forcing the first call (as
    `tool_choice`, which the Messages API endpoints honour under a grammar) grounds the answer in the
    knowledge base, and the model then answers from the tool's result. With `verbatim` (the default) the
    forced call asks the user's own question: a small model paraphrases it on the way ("What is the best
    way to use SageMaker?"), and retrieval is best on the user's words.
    """
    name = tool if isinstance(tool, str) else tool.name

    @wrap_model_call(name=f"consult_{name}_first")
    def force(request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        if any(isinstance(m, ToolMessage) for m in request.messages):
            return handler(request)
        response = handler(request.override(tool_choice=name))
        question = _last_question(request.messages)
        if verbatim and question:
            for message in response.result:
                for call in getattr(message, "tool_calls", None) or []:
                    if call["name"] == name and "question" in call["args"]:
                        call["args"] = {**call["args"], "question": question}
        return response

    return force


def _last_question(messages: list[Any]) -> str | None:
    """The text of the latest user message (the question the forced call should ask)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text.strip() or None
    return None
