#!/usr/bin/env bash
# Grid of runs over fusion x method x MMCosine x scaling x seed, each in its own directory.
# Finished runs are skipped and interrupted ones resumed, so the same command continues a sweep.
#
#   bash scripts/sweep.sh [--entry main_CD.py] [--out runs/sweep] [--fusions "concat"] [--methods "joint"]
#                         [--mmcosine "True"] [--scalings "1 5 10 15 20 30 50"] [--seeds "0"] [-- FLAGS...]
# Examples:
#   bash scripts/sweep.sh --out runs/scaling --scalings "1 5 10 15 20 30 50" -- --data_root /data/CREMA-D
#   bash scripts/sweep.sh --out runs/fusion --fusions "sum concat film gated" --mmcosine "False True" -- --data_root ...
#   bash scripts/sweep.sh --out runs/methods --methods "joint ogm_ge mslr" --mmcosine "False True" --seeds "0 1 2" -- ...
# Then: python scripts/summarize.py runs/scaling
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ENTRY=main_CD.py OUT=runs/sweep FUSIONS=concat METHODS=joint MMCOSINE=True SCALINGS=10 SEEDS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --entry) ENTRY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --fusions) FUSIONS=$2; shift 2 ;;
    --methods) METHODS=$2; shift 2 ;;
    --mmcosine) MMCOSINE=$2; shift 2 ;;
    --scalings) SCALINGS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "error: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
for fusion in $FUSIONS; do
  for method in $METHODS; do
    for mm in $MMCOSINE; do
      # Without MMCosine the scale plays no part: one run per seed.
      scalings=$SCALINGS
      case "${mm,,}" in false|0|no|n|f) scalings=none ;; esac
      for scaling in $scalings; do
        for seed in $SEEDS; do
          name="$fusion-$method-mmcosine$mm"
          [[ $scaling != none ]] && name="$name-s$scaling"
          dir="$OUT/$name-seed$seed"
          if [[ -f $dir/last.pt ]]; then
            echo "== $dir: resuming (a finished run just reports its last epoch) =="
            "$PYTHON" "$ENTRY" --resume "$dir" --no_progress
            continue
          fi
          echo "== $dir =="
          scale_flags=()
          [[ $scaling != none ]] && scale_flags=(--scaling "$scaling")
          "$PYTHON" "$ENTRY" --train --fusion_method "$fusion" --method "$method" --mmcosine "$mm" \
            "${scale_flags[@]}" --random_seed "$seed" --run_dir "$dir" --no_progress "$@"
        done
      done
    done
  done
done
