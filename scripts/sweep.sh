#!/usr/bin/env bash
# The grid runner, kept for the commands of the README: everything is scripts/sweep.py (same options, run
# directories, skip / resume / FAILED rules and exit status; also --jobs N and --cluster slurm|local).
#
#   bash scripts/sweep.sh [--entry main_CD.py] [--out runs/sweep] [--fusions "concat"] [--methods "joint"]
#                         [--mmcosine "True"] [--scalings "1 5 10 15 20 30 50"] [--seeds "0"] [--retry_failed]
#                         [--jobs N] [--cluster slurm|local ...] [-- FLAGS...]
# Then: python scripts/summarize.py runs/sweep
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/sweep.py "$@"
