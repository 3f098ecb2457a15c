"""`python -m coderag_assets.cli` runs the `coderag` command."""

from coderag_assets.cli import run

run()
