#!/usr/bin/env bash
# Install the pinned requirements (and the optional face detector, so its tests run too), then run
# the whole test suite (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q -r requirements.txt
PYTHON="$PYTHON" bash scripts/install_face_detector.sh
"$PYTHON" -m pytest -q tests "$@"
