#!/usr/bin/env bash
# Grid of runs over fusion x method x MMCosine x scaling x seed, each in its own directory.
# Finished runs are skipped and interrupted ones resumed, so the same command continues a sweep.
#
#   bash scripts/sweep.sh [--entry main_CD.py] [--out runs/sweep] [--fusions "concat"] [--methods "joint"]
#                         [--mmcosine "True"] [--scalings "1 5 10 15 20 30 50"] [--seeds "0"] [--retry_failed]
#                         [-- FLAGS...]
# A point that fails (bad input, a diverging loss, a crash) is recorded in <its dir>/FAILED and the
# sweep goes on; a rerun skips recorded failures unless --retry_failed is given. The exit status is
# 1 when any point of the grid has failed, 0 otherwise.
# Examples:
#   bash scripts/sweep.sh --out runs/scaling --scalings "1 5 10 15 20 30 50" -- --data_root /data/CREMA-D
#   bash scripts/sweep.sh --out runs/fusion --fusions "sum concat film gated" --mmcosine "False True" -- --data_root ...
#   bash scripts/sweep.sh --out runs/methods --methods "joint ogm_ge mslr" --mmcosine "False True" --seeds "0 1 2" -- ...
# Then: python scripts/summarize.py runs/scaling
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ENTRY=main_CD.py OUT=runs/sweep FUSIONS=concat METHODS=joint MMCOSINE=True SCALINGS=10 SEEDS=0 RETRY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --retry_failed) RETRY=1; shift ;;
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
failed=()
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
          if [[ -f $dir/FAILED ]]; then
            if [[ $RETRY == 0 ]]; then
              echo "== $dir: failed before ($(head -n 1 "$dir/FAILED")); skipped (--retry_failed runs it again) =="
              failed+=("$dir")
              continue
            fi
            rm "$dir/FAILED"
            [[ -f $dir/last.pt ]] || rm -rf "$dir"  # nothing to resume: start it afresh
          fi
          if [[ -f $dir/last.pt ]]; then
            echo "== $dir: resuming (a finished run just reports its last epoch) =="
            cmd=("$PYTHON" "$ENTRY" --resume "$dir" --no_progress)
          else
            echo "== $dir =="
            scale_flags=()
            [[ $scaling != none ]] && scale_flags=(--scaling "$scaling")
            cmd=("$PYTHON" "$ENTRY" --train --fusion_method "$fusion" --method "$method" --mmcosine "$mm"
                 "${scale_flags[@]}" --random_seed "$seed" --run_dir "$dir" --no_progress "$@")
          fi
          errors=$(mktemp)
          if "${cmd[@]}" 2>"$errors"; then
            cat "$errors" >&2
          else
            code=$?
            cat "$errors" >&2
            mkdir -p "$dir"
            { echo "exit $code: $(grep -v '^\s*$' "$errors" | tail -n 1)"; printf '%q ' "${cmd[@]}"; echo; } > "$dir/FAILED"
            echo "== $dir: failed (exit $code), recorded in $dir/FAILED; the sweep goes on =="
            failed+=("$dir")
          fi
          rm -f "$errors"
        done
      done
    done
  done
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "${#failed[@]} point(s) of the grid failed (see FAILED in each): ${failed[*]}" >&2
  exit 1
fi
