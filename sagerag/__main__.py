"""`python -m sagerag` runs the CLI."""

from sagerag.cli import main

main()
