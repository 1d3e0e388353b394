"""`sagerag config`: every effective setting, its value and where it came from (like `gh config list`)."""

from __future__ import annotations

from typing import Annotated

import typer

from sagerag.cli import _output


def cmd_config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Show each setting's value and source: option, variable (which), file (which key) or default.

    Secrets are masked. Precedence, highest first: options, SAGERAG_* variables, standard AWS and
    Pinecone variables (AWS_REGION, AWS_PROFILE, PINECONE_API_KEY), the config file, defaults."""
    from sagerag.config import config_path, describe_settings, load_settings

    rows = describe_settings()
    mode = "local" if load_settings().is_local else "remote"
    if as_json:
        _output.print_json({"config_file": str(config_path()), "mode": mode, "settings": rows})
        return
    from rich.table import Table

    table = Table(title=f"config file: {config_path()}", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        value = "-" if row["value"] is None else str(row["value"]) or '""'
        source = row["source"] + (f" ({row['from']})" if row["from"] else "")
        table.add_row(row["name"], value, source)
    _output.console.print(table)
    where = "embedded local services" if mode == "local" else "remote SageMaker and Pinecone"
    _output.console.print(f"mode: {mode} ({where})", markup=False)


def register(app: typer.Typer) -> None:
    app.command("config")(cmd_config)
