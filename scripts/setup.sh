#!/usr/bin/env bash
# Create .venv and install CodeRAG with CPU-only torch and offline-safe pins (constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
