"""`sagerag demo` (the README's first set-up command): offline, answers with sources, abstains on the off-topic question."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagerag.cli import main
from tests.support import empty_config


def test_demo_answers_with_sources_and_abstains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAGERAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(tmp_path)))
    monkeypatch.setenv("SAGERAG_REMOTE", "1")  # the demo is offline whatever is configured
    for run in range(2):
        with pytest.raises(SystemExit) as exited:
            main(["demo"])
        out, err = capsys.readouterr()
        assert exited.value.code == 0, err
        assert ("12 added" if run == 0 else "12 already stored") in err
    answers = out.split("\nQ: ")[1:]
    assert len(answers) == 3
    for in_scope in answers[:2]:
        assert "(abstained" not in in_scope and "I don't know" not in in_scope
        assert "  [1] 0." in in_scope  # a source with its score
    assert "Pinecone" in answers[0] and "SQLite" in answers[0]
    assert "A: I don't know\n(abstained" in answers[2]
