"""`python -m coderag_assets` runs the `coderag` CLI."""

import sys

from coderag_assets.cli import main

sys.exit(main())
