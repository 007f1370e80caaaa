#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (the README's test command; CI runs it too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -ra "$@"
