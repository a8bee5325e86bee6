#!/usr/bin/env bash
# Set up (scripts/setup.sh, without the test server) and run the demo: `medfed demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDFED_SKIP_POSTGRES_SETUP=1 bash scripts/setup.sh
exec .venv/bin/medfed demo "$@"
