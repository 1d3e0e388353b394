"""Help texts and options of every command, read from the real command tree (no model, no server)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sagerag.cli import _output
from sagerag.cli._app import _command, _debug_requested
from tests.support import run_cli

COMMANDS = sorted(_command().commands)
PYTHON_TYPES = re.compile(r"<(list\[|int|float|str|path|Path|bool|file|dir)|range>")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_no_python_types_and_shows_every_default(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, name, "-h")
    assert code == 0 and out.startswith(f"Usage: sagerag {name}")
    assert not PYTHON_TYPES.search(out), out
    command: Any = _command().commands[name]
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag and not param.hidden:
            assert param.required or param.show_default, (name, param.name)
            assert f"--{param.name.replace('_', '-')}" in out or param.opts[0] in out


def test_fixed_choices_are_listed_as_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--mode <question+answer|answer>" in run_cli(capsys, "ingest", "--help")[1]
    assert "--chain <lcel|retrievalqa>" in run_cli(capsys, "eval", "-h")[1]


def test_json_is_a_flag_on_every_command_with_results() -> None:
    for name, command in _command().commands.items():
        if name in {"serve", "demo"}:  # a server and a guided tour: nothing for a script to parse
            continue
        flags = {opt: p for p in command.params for opt in p.opts}
        assert "--json" in flags and flags["--json"].is_flag, name


def test_debug_is_taken_anywhere_before_a_double_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGERAG_DEBUG", raising=False)
    assert _debug_requested(["ask", "q", "--debug"]) == (True, ["ask", "q"])
    assert _debug_requested(["ask", "--", "--debug"]) == (False, ["ask", "--", "--debug"])
    monkeypatch.setenv("SAGERAG_DEBUG", "1")
    assert _debug_requested(["ask", "q"]) == (True, ["ask", "q"])


def test_counts_read_right() -> None:
    assert _output.plural(1, "resource") == "1 resource"
    assert _output.plural(6, "resource") == "6 resources"
    assert _output.plural(1200, "document") == "1,200 documents"


def test_the_cli_budget_default_is_the_chains_default() -> None:
    from sagerag.cli.commands import MAX_CONTEXT_CHARS
    from sagerag.prompts.context import DEFAULT_MAX_CHARS

    assert MAX_CONTEXT_CHARS == DEFAULT_MAX_CHARS  # one value; the CLI only avoids importing it for -h
