#!/usr/bin/env bash
# Refresh the Dagster UI screenshots in docs/images/ (README, "Dagster UI"): runs the browser
# smoke test (tests/test_ui_browser.py: `coderag ui` on the fixture repository, Debian's
# headless Chromium) with CODERAG_SCREENSHOTS pointing there. Needs the Debian packages
# `chromium chromium-driver` (.ci/run installs them) and the dev extra (selenium).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
CODERAG_SCREENSHOTS="$PWD/docs/images" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_ui_browser.py
ls -l docs/images/dagster-*.png
