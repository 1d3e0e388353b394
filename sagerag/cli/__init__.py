"""The `sagerag` command-line tool: thin commands over `sagerag.pipeline`."""

from sagerag.cli._app import app, main

__all__ = ["app", "main"]
