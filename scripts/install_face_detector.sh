#!/usr/bin/env bash
# The optional face detector for scripts/prepare_voxceleb.py: facenet-pytorch's MTCNN (weights ship
# inside the wheel). Its metadata pins an old torch, so it goes in without dependencies; requests is
# the one dependency its import needs that requirements.txt does not bring.
set -euo pipefail
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q requests==2.34.2
"$PYTHON" -m pip install -q --no-deps facenet-pytorch==2.6.0
