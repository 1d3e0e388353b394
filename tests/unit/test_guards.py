"""The answer guards with scripted fake LLMs: loop guard, clean ends, grounding, streamed == invoked."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import LLM
from langchain_core.outputs import GenerationChunk
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import Field

from sagerag.chains import build_rag_chain
from sagerag.chains.grounding import Grounder, lexical_support
from sagerag.chains.guards import AnswerGuard, repeats_run
from sagerag.chains.sentences import ends_mid_sentence, has_repeated_sentence, split_sentences, tokens
from sagerag.config import load_settings
from sagerag.errors import ConfigurationError
from sagerag.prompts import IDK
from tests.support import empty_config

PASSAGE = (
    "Managed Spot Training can be used with all instances supported in Amazon SageMaker. "
    "It is available in all AWS Regions where Amazon SageMaker is available."
)
QUESTION = "Which instances can I use with Managed Spot Training?"


class WordEmbeddings(Embeddings):
    """Bag-of-words vectors over a fixed vocabulary: cosine tracks shared words, as a real model roughly does."""

    vocabulary: list[str] = sorted(set(tokens(PASSAGE + " " + QUESTION + " app store download incorrect")))

    def _vector(self, text: str) -> list[float]:
        words = tokens(text)
        return [float(words.count(w)) for w in self.vocabulary] + [0.01]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class ScriptedLLM(LLM):
    """Streams a script token by token (a word and its space) and counts the tokens actually pulled."""

    script: str
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    pulled: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _tokens(self) -> list[str]:
        budget = self.model_kwargs.get("max_new_tokens")
        parts = [p for p in self.script.replace(" ", " \0").split("\0") if p]
        return parts[:budget] if budget else parts

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any) -> str:
        return "".join(self._tokens())

    def _stream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[GenerationChunk]:
        for token in self._tokens():
            self.pulled += 1
            yield GenerationChunk(text=token)

    async def _astream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[GenerationChunk]:
        for token in self._tokens():
            self.pulled += 1
            yield GenerationChunk(text=token)


@pytest.fixture
def store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(WordEmbeddings())
    store.add_documents([Document(PASSAGE, id="faq-90")])
    return store


def ask(llm: ScriptedLLM, store: InMemoryVectorStore, **options: Any) -> tuple[dict[str, Any], Any]:
    """The invoked result and the streamed chunks added up, for the same script."""
    chain = build_rag_chain(llm, store, min_score=None, **options)
    invoked = dict(chain.invoke(QUESTION))
    chunks = list(chain.stream(QUESTION))
    total: Any = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return invoked, total


LOOP = "Managed Spot Training can be used with all instances supported in Amazon SageMaker. " * 6


def test_loop_guard_stops_the_stream_and_keeps_one_copy(store: InMemoryVectorStore) -> None:
    llm = ScriptedLLM(script=LOOP)
    invoked, streamed = ask(llm, store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == LOOP.split(". ")[0] + "."
    assert invoked["repeated"] is True and invoked["truncated"] is False
    # Each run pulled only a little past the first copy: the model's stream was closed, not drained.
    assert llm.pulled < 2 * 2 * len(LOOP.split()) / 6 + 2 * 12


def test_loop_inside_one_sentence_is_cut_at_the_last_sentence() -> None:
    looping = "Spot training is cheap. It works on " + "gpu and cpu instances and " * 10
    llm = ScriptedLLM(script=looping)
    store = InMemoryVectorStore(WordEmbeddings())
    store.add_documents([Document("Spot training is cheap. It works on gpu and cpu instances.", id="p")])
    invoked, streamed = ask(llm, store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == "Spot training is cheap." and invoked["repeated"] is True


def test_loop_guard_off_keeps_the_repetition(store: InMemoryVectorStore) -> None:
    invoked, _ = ask(ScriptedLLM(script=LOOP), store, loop_guard=False, grounding="off")
    assert has_repeated_sentence(invoked["answer"]) and invoked["repeated"] is False


def test_truncated_answer_ends_at_its_last_complete_sentence(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training works with all instances. It is available in all AWS Regions where"
    llm = ScriptedLLM(script=said + " Amazon SageMaker is available.", model_kwargs={"max_new_tokens": 14})
    invoked, streamed = ask(llm, store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == "Managed Spot Training works with all instances."
    assert invoked["truncated"] is True and not ends_mid_sentence(invoked["answer"])


def test_answer_within_budget_is_not_truncated(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training works with all instances."
    invoked, _ = ask(ScriptedLLM(script=said, model_kwargs={"max_new_tokens": 50}), store)
    assert invoked["answer"] == said and invoked["truncated"] is False


def test_grounding_drops_an_appended_junk_sentence(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training can be used with all instances. This answer is incorrect."
    invoked, streamed = ask(ScriptedLLM(script=said), store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == "Managed Spot Training can be used with all instances."
    assert invoked["dropped"] == 1 and invoked["abstained"] is False
    kept, junk = invoked["sentences"]
    assert kept["kept"] and kept["supported"] and not junk["kept"] and not junk["supported"]
    assert kept["support"] > junk["support"] and junk["semantic"] is not None


def test_grounding_flag_mode_keeps_and_marks(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training can be used with all instances. Download it from the App Store."
    invoked, _ = ask(ScriptedLLM(script=said), store, grounding="flag")
    assert invoked["answer"] == said and invoked["dropped"] == 0
    assert [s["supported"] for s in invoked["sentences"]] == [True, False]


def test_grounding_abstains_when_nothing_is_supported(store: InMemoryVectorStore) -> None:
    invoked, streamed = ask(ScriptedLLM(script="Download Amazon SageMaker from the App Store."), store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == IDK and invoked["abstained"] is True
    assert invoked["grounding_abstained"] is True and invoked["dropped"] == 1


def test_model_abstention_is_not_a_grounding_abstention(store: InMemoryVectorStore) -> None:
    invoked, _ = ask(ScriptedLLM(script="I don't know. Spot is cheap."), store)
    assert invoked["answer"] == IDK and invoked["grounding_abstained"] is False


async def test_async_path_applies_the_same_guards(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training can be used with all instances. This answer is incorrect. " + LOOP
    chain = build_rag_chain(ScriptedLLM(script=said), store, min_score=None)
    chunks = [c async for c in chain.astream(QUESTION)]
    total: Any = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert dict(total) == dict(await chain.ainvoke(QUESTION)) == dict(chain.invoke(QUESTION))
    once = LOOP.split(". ")[0] + "."
    assert total["answer"] == "Managed Spot Training can be used with all instances. " + once
    assert total["repeated"] is True and total["dropped"] == 1


def test_semantic_grounding_needs_embeddings() -> None:
    with pytest.raises(ConfigurationError, match="needs embeddings"):
        Grounder([PASSAGE], None, method="semantic")
    with pytest.raises(ConfigurationError, match="grounding must be"):
        build_rag_chain(ScriptedLLM(script="x"), InMemoryVectorStore(WordEmbeddings()), grounding="maybe")  # type: ignore[arg-type]


def test_a_lone_lead_in_is_not_an_answer(store: InMemoryVectorStore) -> None:
    """ "... including:" whose list was cut or dropped ends mid-sentence: the answer is "I don't know"."""
    said = "Managed Spot Training can be used with all instances, including:\nDownload the App Store"
    invoked, streamed = ask(ScriptedLLM(script=said), store)
    assert invoked == dict(streamed)
    assert invoked["answer"] == IDK and invoked["abstained"] is True
    lone, _ = ask(ScriptedLLM(script="Managed Spot Training works with all instances"), store)
    assert lone["answer"] == "Managed Spot Training works with all instances"


def test_a_code_fence_whose_code_was_dropped_is_not_an_answer() -> None:
    """ "... the following code:" then "```python" with the code lines dropped: an empty block's opener."""
    said = "You can start a job with the following code:\n```python\nimport boto3\nboto3.client('sagemaker')\n```"

    def answer(keep_code: bool) -> str:
        guard = AnswerGuard(loop_guard=False)
        pending = [sentence for token in said for sentence in guard.feed(token)] + guard.finish()
        out = "".join(
            guard.accept(sep, text, keep_code or not text.startswith(("import", "boto3")))
            for sep, text in pending
        )
        return out + guard.close()

    assert answer(keep_code=False) == IDK
    assert answer(keep_code=True).startswith(
        "You can start a job with the following code:\n```python\nimport"
    )


def test_yes_no_answer_is_scored_with_its_question() -> None:
    """A bare "No, you do not ..." takes its content from the question; other sentences get no such help."""
    question = "Do I pay twice for Managed Spot Training?"
    polar, plain = (
        "No, you do not pay twice for Managed Spot Training.",
        "You pay twice for Managed Spot Training.",
    )
    alone = Grounder([PASSAGE], None, method="lexical").judge([polar])[0]
    asked = Grounder([PASSAGE], None, question=question, method="lexical").judge([polar, plain])
    assert not alone["supported"] and asked[0]["supported"]
    assert asked[0]["lexical"] > alone["lexical"]
    assert not asked[1]["supported"]


def test_short_sentence_is_scored_against_the_passage_sentence_it_matches() -> None:
    """A long passage dilutes a short sentence's cosine: the passage's own sentences count as units too."""
    sentence = "It is available in all AWS Regions where Amazon SageMaker is available."
    embeddings = WordEmbeddings()
    whole = Grounder([PASSAGE], embeddings).judge([sentence])[0]
    assert whole["semantic"] == pytest.approx(1.0)
    vectors = embeddings.embed_documents([sentence, PASSAGE])
    dot = sum(a * b for a, b in zip(*vectors, strict=True))
    norms = [sum(x * x for x in v) ** 0.5 for v in vectors]
    assert dot / (norms[0] * norms[1]) < 0.9  # what the whole passage alone would have given


def test_sentences_and_repeats() -> None:
    text = "It costs 1.5 dollars, e.g. per hour. Steps:\n1. Open Studio.\n2. Run it! Done"
    assert split_sentences(text) == [
        "It costs 1.5 dollars, e.g. per hour.",
        "Steps:",
        "1. Open Studio.",
        "2. Run it!",
        "Done",
    ]
    assert has_repeated_sentence("It is managed. The answer: yes. it is managed!")
    assert not has_repeated_sentence("It is managed. It is fast.")
    assert repeats_run(list("abcdabcd"), 4) and not repeats_run(list("abcdef"), 4)
    assert ends_mid_sentence("It is available in") and not ends_mid_sentence("It is (see above).")
    assert lexical_support("Spot works on all instances.", [PASSAGE]) == pytest.approx(3 / 5)


_PIECES = ["Spot is cheap.", " ", "Spot is cheap.", " It works", " everywhere.", "\n", "I don't know", "x"]


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=8), cuts=st.lists(st.integers(0, 80), max_size=6))
def test_any_tokenisation_gives_the_same_answer(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})

    def run(chunks: list[str]) -> tuple[str, bool, bool]:
        guard = AnswerGuard()
        for chunk in chunks:
            for separator, sentence in guard.feed(chunk):
                guard.accept(separator, sentence, True)
            if guard.stopped:
                break
        for separator, sentence in guard.finish():
            guard.accept(separator, sentence, True)
        guard.close()
        return guard.answer, guard.abstained, has_repeated_sentence(guard.answer)

    whole = run([text])
    assert run([text[a:b] for a, b in itertools.pairwise(bounds)]) == whole
    assert whole[2] is False  # never a repeated sentence in what the guard lets through


def test_guard_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(tmp_path)))
    monkeypatch.setenv("SAGERAG_LOOP_GUARD", "0")
    monkeypatch.setenv("SAGERAG_GROUNDING", "flag")
    settings = load_settings()
    assert settings.loop_guard is False and settings.grounding == "flag"
    assert settings.local_prompt == "local-brief"
    monkeypatch.setenv("SAGERAG_GROUNDING", "sometimes")
    with pytest.raises(ConfigurationError, match=r"SAGERAG_GROUNDING.*'drop', 'flag' or 'off'"):
        load_settings()


def test_unfinished_tail_after_complete_sentences_is_dropped(store: InMemoryVectorStore) -> None:
    said = "Managed Spot Training works with all instances. You can use it with * EC2 * Amazon EC2"
    invoked, streamed = ask(ScriptedLLM(script=said), store, grounding="off")
    assert invoked == dict(streamed)
    assert invoked["answer"] == "Managed Spot Training works with all instances."
    assert invoked["truncated"] is False
    alone, _ = ask(ScriptedLLM(script="Managed Spot Training"), store, grounding="off")
    assert alone["answer"] == "Managed Spot Training"  # a lone fragment is the whole answer


def test_answer_does_not_end_on_an_unpunctuated_list(store: InMemoryVectorStore) -> None:
    said = "Spot works with all instances.\nFor example:\n* EC2 Spot instances\n* Amazon S3 instances\nSee"
    invoked, streamed = ask(ScriptedLLM(script=said), store, grounding="flag")
    assert invoked == dict(streamed)
    assert invoked["answer"] == "Spot works with all instances."
    assert [s["kept"] for s in invoked["sentences"]] == [True, False, False, False]
    listed = "Spot works with all instances.\nFor example:\n* EC2 Spot instances\n* all the others."
    invoked, _ = ask(ScriptedLLM(script=listed), store, grounding="off")
    assert invoked["answer"] == listed  # held lines are released with the punctuated line after them
