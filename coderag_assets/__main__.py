"""`python -m coderag_assets` runs the `coderag` CLI."""

from coderag_assets.cli import run

run()
