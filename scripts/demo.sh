#!/usr/bin/env bash
# Quick start on any machine (CPU is fine): install the pinned requirements, write the demo
# data in the CREMA-D layout, train concat fusion without and with MMCosine on it, then draw
# the balance figures of both runs. Extra flags go to both runs, e.g.  bash scripts/demo.sh --epochs 20
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q -r requirements.txt
"$PYTHON" -m dataset.demo --out demo_data/CREMA-D
# Small frames and 1 s of audio keep an epoch to seconds on 2 CPU cores; the code path is the real one.
DEMO_FLAGS=(--data_root demo_data/CREMA-D --fusion_method concat --epochs 10 --batch_size 16
            --learning_rate 0.01 --lr_decay_step 8 --image_size 64 --audio_seconds 1 --save_features True)
OUT="runs/demo-$(date +%Y%m%d-%H%M%S)"
for mmcosine in False True; do
  echo "== concat fusion, --mmcosine $mmcosine =="
  "$PYTHON" main_CD.py --train "${DEMO_FLAGS[@]}" --mmcosine "$mmcosine" --scaling 10 \
    --run_dir "$OUT/concat-mmcosine-$mmcosine" "$@"
done
"$PYTHON" scripts/plot_run.py "$OUT/concat-mmcosine-False" "$OUT/concat-mmcosine-True" --out "$OUT/plots" > /dev/null
echo "Figures: $OUT/plots/   Curves: tensorboard --logdir $OUT"
