#!/usr/bin/env bash
# Create .venv and install CodeRAG with CPU-only torch and offline-safe pins (constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# `cluster`: dagster-postgres + dagster-celery for the scale-out path (docs/scale-out.md); small
# pure-Python packages plus psycopg2-binary, installed always so every environment resolves the
# same dagster version (the 0.29.27 integrations pin dagster==1.13.27).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,cluster]' \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# Bytecode for the package itself (pip compiled the dependencies): where Python does not write
# it (PYTHONDONTWRITEBYTECODE, common in containers) every `coderag` command would otherwise
# compile its ~90 modules from source, ~0.25 s of CPU per command (docs/indexing-speed.md).
.venv/bin/python -m compileall -q coderag_assets
