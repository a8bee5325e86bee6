#!/usr/bin/env bash
# Set up everything medfed needs on a fresh Debian/Ubuntu machine with Python 3.11:
# a virtual environment in .venv with medfed and its test tools, a PostgreSQL server on
# 127.0.0.1:5432 for the tests (installed from Debian's packages only when none answers there), and
# Debian's Chromium for the console's browser test (installed only when /usr/bin/chromium is missing;
# Playwright drives it, so `playwright install` is never needed).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "medfed needs Python 3.11 or newer"'

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned to 2.13.0 (CPU). Where pip would fetch a CUDA build instead, set
# PIP_EXTRA_INDEX_URL to PyTorch's CPU wheel index first (see README.md).
.venv/bin/python -m pip install --quiet -e ".[test]"

if [ "${MEDFED_SKIP_POSTGRES_SETUP:-0}" != "1" ]; then
    bash scripts/ensure-postgres.sh
fi
if [ "${MEDFED_SKIP_BROWSER_SETUP:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
    echo "chromium: /usr/bin/chromium is missing; installing Debian's chromium and chromium-driver"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "setup: done (.venv ready)"
