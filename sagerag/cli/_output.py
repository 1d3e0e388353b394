"""Terminal output shared by the commands: plain text for people, JSON for scripts, errors on stderr.

Exit codes scripts can rely on: 0 success, 1 runtime failure (service error), 2 bad input or settings
(typer/click usage errors also exit 2), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_state = {"debug": False}

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def set_debug(enabled: bool) -> None:
    _state["debug"] = enabled


def debug_enabled() -> bool:
    """True under `--debug`: show tracebacks instead of one-line errors."""
    return _state["debug"]


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 document`, `3 documents`: counts that read right."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"


def info(message: str) -> None:
    """A status line for people (stderr, so stdout stays clean for answers and JSON)."""
    err_console.print(message, markup=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    err_console.print(f"error: {message}", markup=False, style="red")
    raise SystemExit(code)
