"""The answer guards with the local generator (SmolLM2-135M) through the CLI, on a fresh data directory.

Properties, not wording: no repeated sentence, no cut-off end, every sentence of the answer supported by
its sources, the streamed answer equal to the non-streamed one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sagerag.chains.sentences import ends_mid_sentence, has_repeated_sentence, split_sentences
from tests.support import FAQ_CSV, run_cli

SPOT = "Which instances can I use with Managed Spot Training in SageMaker?"


def assert_clean(answer: str) -> None:
    assert answer.strip(), "empty answer"
    assert not has_repeated_sentence(answer), answer
    assert not ends_mid_sentence(answer) or len(split_sentences(answer)) == 1, answer


def test_ask_spot_question_gives_a_grounded_clean_answer(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "ingest", str(FAQ_CSV))
    assert code == 0, err
    code, out, err = run_cli(capsys, "ask", SPOT, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["abstained"] is False
    assert_clean(result["answer"])
    kept = [s for s in result["sentences"] if s["kept"]]
    assert kept and all(s["supported"] for s in kept)  # no appended junk sentence survives
    assert " ".join(s["text"] for s in kept) == " ".join(result["answer"].split())
    code, streamed, err = run_cli(capsys, "ask", SPOT, "--stream")
    assert code == 0, err
    assert streamed.splitlines()[0] == result["answer"].splitlines()[0]
    code, explained, err = run_cli(capsys, "ask", SPOT, "--explain")
    assert code == 0, err
    assert re.search(r"support \d\.\d\d \(lexical \d\.\d\d, semantic -?\d\.\d\d\) kept", explained)


def test_demo_answers_have_no_junk_sentence(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "demo")
    assert code == 0, err
    answers = out.split("\nQ: ")[1:]
    assert len(answers) == 3
    for block in answers[:2]:
        text = block.split("A: ", 1)[1].split("\n  [1]")[0].split("\n(")[0]
        assert "I don't know" not in text
        assert_clean(text)
        assert not re.search(r"answer is (in)?correct|App Store", text, re.IGNORECASE)
