"""`python -m coderag_assets.cli` runs the `coderag` command."""

import sys

from coderag_assets.cli import main

sys.exit(main())
