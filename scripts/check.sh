#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check: formatting, lint, types, import contracts, tests.
# Environment: MEDFED_TEST_DATA (the shared test data; CI sets it) and MEDFED_REQUIRE_POSTGRES=1 make a
# test that would skip for missing data or a missing PostgreSQL fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff format --check"; ruff format --check .
echo "== ruff check"; ruff check .
echo "== mypy --strict"; mypy
echo "== import contracts"; lint-imports
echo "== pytest"; pytest -p no:cacheprovider --durations=15 "$@"
