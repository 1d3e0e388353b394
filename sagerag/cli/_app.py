"""The typer application: global options, error handling, and the command groups."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Annotated, NoReturn

import click
import typer

from sagerag.cli import _output, _redact
from sagerag.errors import ConfigurationError, InputError, Interrupted, SageRagError

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
    _redact.install()  # botocore's debug log shows the AWS access key id in each Authorization header


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    from sagerag.cli.commands import register as register_commands
    from sagerag.cli.deploy import register as register_deploy
    from sagerag.cli.eval_cmd import register as register_eval

    register_commands(app)
    register_deploy(app)
    register_eval(app)
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
    except Exception as exc:  # ours, or a service error: one line unless --debug
        _fail(exc)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(exc: Exception) -> NoReturn:
    """One line naming what to fix (the traceback too under --debug, secrets masked); then exit."""
    from sagerag.pipeline import explain_service_error

    if not isinstance(exc, SageRagError):
        exc = explain_service_error(exc) or exc
    if isinstance(exc, Interrupted):
        _output.err_console.print(str(exc), markup=False)
        raise SystemExit(_output.EXIT_INTERRUPTED)
    if isinstance(exc, SageRagError):
        message = str(exc)
        bad_input = isinstance(exc, InputError | ConfigurationError)
        code = _output.EXIT_BAD_INPUT if bad_input else _output.EXIT_FAILURE
    else:
        message, code = f"{type(exc).__name__}: {exc}", _output.EXIT_FAILURE
    if _output.debug_enabled():
        sys.stderr.write(_redact.redact(traceback.format_exc()))
        sys.stderr.flush()
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    _output.fail(_redact.redact(one_line), code)
