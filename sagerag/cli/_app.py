"""The typer application: global options, error handling, and the command groups.

Every command's errors go through `main`: usage errors (typer raises its own click exception classes)
exit 2 with the option's name and a usage hint; sagerag's and the services' errors are one redacted line
(`--debug` adds the redacted traceback) with the same exit code either way.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_errors

from sagerag import __version__
from sagerag.cli import _output, _redact
from sagerag.errors import ConfigurationError, InputError, Interrupted, SageRagError

PROG = "sagerag"
DEBUG_ENV = "SAGERAG_DEBUG"

app = typer.Typer(
    name=PROG,
    help="Retrieval-augmented QA over SageMaker endpoints and Pinecone, offline by default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        _output.console.print(f"{PROG} {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks and debug logs on errors (anywhere on the line, or SAGERAG_DEBUG=1).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Ask questions over your documents with SageMaker endpoints and Pinecone.

    With nothing remote configured, every command uses the embedded local services (a local SageMaker
    Runtime with small real models and a local Pinecone under the data directory), offline.
    """


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    from sagerag.cli.commands import register as register_commands
    from sagerag.cli.config_cmd import register as register_config
    from sagerag.cli.deploy import register as register_deploy
    from sagerag.cli.eval_cmd import register as register_eval

    register_commands(app)
    register_deploy(app)
    register_eval(app)
    register_config(app)
    _registered = True


def _plain_help(command: Any) -> None:
    """Help without Python type names: `PATH`, `N`, `TEXT` instead of `<list[Path]>`, `<int range>`; and a
    default shown for every option (`none` where unset means "from the settings" or "not used")."""
    for param in getattr(command, "params", []):
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "is_flag", False):
            continue
        if isinstance(param, typer.core.TyperArgument):
            param.metavar = param.metavar or param.name.upper()
            vars(param)["display_type_rich"] = lambda ctx: None  # no `<list[Path]>` after the name
            continue
        if param.metavar is None and not desc.is_choice:
            element = desc.annotation
            args = getattr(element, "__args__", None)
            if desc.is_list and args:
                element = args[0]
            if desc.is_path:
                label = "PATH"
            elif element is int:
                label = "N"
            elif element is float:
                label = "NUMBER"
            else:
                label = "TEXT"
            param.metavar = label
        if param.default is None and param.show_default is True and not param.required:
            param.show_default = "none"
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _command() -> Any:
    _register_commands()
    command = typer.main.get_command(app)
    _plain_help(command)
    return command


def _debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """`--debug` anywhere before `--` (removed from argv), or SAGERAG_DEBUG set to a true value."""
    end = argv.index("--") if "--" in argv else len(argv)
    flagged = "--debug" in argv[:end]
    rest = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    env = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return flagged or env, rest


def _quiet_libraries(debug: bool) -> None:
    """No library noise on stderr: transformers' `Loading weights` bar, hub progress bars, warnings."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        warnings.simplefilter("ignore")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning errors into one line and an exit code scripts can rely on."""
    debug, args = _debug_requested(list(sys.argv[1:] if argv is None else argv))
    _output.set_debug(debug)
    _quiet_libraries(debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    _redact.install()  # botocore's debug log shows the AWS access key id in each Authorization header
    try:
        result = _command().main(args=args, prog_name=PROG, standalone_mode=False)
    except click_errors.UsageError as exc:
        _usage_error(exc)
    except typer.Abort:
        _output.fail("aborted", _output.EXIT_INTERRUPTED)
    except click_errors.ClickException as exc:
        _output.fail(_redact.redact(exc.format_message()), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _output.fail("interrupted", _output.EXIT_INTERRUPTED)
    except Exception as exc:  # ours, or a service error: one line unless --debug
        fail_with(exc)
    sys.exit(result if isinstance(result, int) else 0)


def _usage_error(exc: click_errors.UsageError) -> NoReturn:
    """`error: <what, naming the option>` and a usage line with the help hint; exit 2."""
    message = _redact.redact(exc.format_message())
    if exc.ctx is not None:
        usage = exc.ctx.get_usage().removeprefix("Usage: ")
        message += f"\nusage: {usage}\nTry '{exc.ctx.command_path} -h' for help."
    _output.fail(message, _output.EXIT_BAD_INPUT)


def fail_with(exc: BaseException) -> NoReturn:
    """One line naming what to fix (the traceback too under --debug, secrets masked); then exit.

    The one error path of every command: the exit code depends on the error, never on `--debug`."""
    from sagerag.cli._errors import explain_service_error

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
