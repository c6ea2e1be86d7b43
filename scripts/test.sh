#!/usr/bin/env bash
# Install the pinned requirements and run the whole test suite (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q -r requirements.txt
"$PYTHON" -m pytest -q tests "$@"
