#!/usr/bin/env bash
# Set up, index a real repository offline, and search it.
# Usage: scripts/demo.sh [PATH] [QUERY]   (default PATH: this repository itself)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
target="${1:-.}"
query="${2:-where are embeddings reused by content hash}"
.venv/bin/coderag index "$target"
.venv/bin/coderag search "$query" --root "$target" --limit 5
