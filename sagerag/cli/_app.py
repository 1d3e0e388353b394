"""The typer application: global options, error handling, and the command groups."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import click
import typer

from sagerag.cli import _output
from sagerag.errors import ConfigurationError, InputError, SageRagError

app = typer.Typer(
    name="sagerag",
    help="Retrieval-augmented QA over SageMaker endpoints and Pinecone, offline by default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs on errors.")] = False,
) -> None:
    """Ask questions over your documents with SageMaker endpoints and Pinecone.

    With nothing remote configured, every command uses the embedded local services (a local SageMaker
    Runtime with small real models and a local Pinecone under the data directory), offline.
    """
    _output.set_debug(debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    from sagerag.cli.commands import register as register_commands
    from sagerag.cli.deploy import register as register_deploy

    register_commands(app)
    register_deploy(app)
    _registered = True


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning errors into one line and an exit code scripts can rely on."""
    _register_commands()
    try:
        result = app(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        _output.fail("aborted", _output.EXIT_INTERRUPTED)
    except click.ClickException as exc:  # usage errors: exit 2, click's own message
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _output.fail("interrupted", _output.EXIT_INTERRUPTED)
    except SageRagError as exc:
        if _output.debug_enabled():
            raise
        bad_input = isinstance(exc, InputError | ConfigurationError)
        _output.fail(str(exc), _output.EXIT_BAD_INPUT if bad_input else _output.EXIT_FAILURE)
    except Exception as exc:  # a service error: one line unless --debug
        if _output.debug_enabled():
            raise
        _output.fail(f"{type(exc).__name__}: {exc}", _output.EXIT_FAILURE)
    sys.exit(result if isinstance(result, int) else 0)
