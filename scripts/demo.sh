#!/usr/bin/env bash
# Set up (scripts/setup.sh, without the test database and browser) and run the demo: `medfed demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDFED_SKIP_POSTGRES_SETUP=1 MEDFED_SKIP_BROWSER_SETUP=1 bash scripts/setup.sh
exec .venv/bin/medfed demo "$@"
