#!/usr/bin/env bash
# Reproduce the shipped knob-head generalists (models/generalist/shadow.onnx, leap.onnx) on a 2-core CPU
# machine. The planner experts they learn from are committed (models/experts/plans/<embodiment>/); the
# first command re-plans or extends them (resumable: clips with an expert.json are skipped; ~0.7 CPU-min
# per 30-s clip). Wall times measured here are in CARD.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
OMNI=.venv/bin/omnipianist
mkdir -p runs/knob runs/gen

# 0. (optional) more planner experts: the corpus train split in manifest order, Ray on 2 local CPUs
# $OMNI train-experts sim_training/music/corpus_data/manifest.json --split train --method planner --budget 24 \
#     --embodiment shadow --num-cpus 2 --out models/experts/plans/shadow

for EMB in shadow leap; do
  # 1. samples: every plan replayed in the simulator (bit-exact), each step's observation with its
  #    window's knob choice (~1 s per plan); 2. the knob head (defaults of KnobTrainConfig, ~5 s)
  $OMNI train-knob-head models/experts/plans/$EMB --out runs/gen/knob_$EMB --samples runs/knob/${EMB}_samples.npz
  # 3. export with the parity check (ORT vs torch: knob coordinates and F1 on a piece)
  $OMNI export runs/gen/knob_$EMB --out models/generalist/$EMB.onnx --verify --piece c_major_scale
  mkdir -p models/generalist/knob_$EMB && cp runs/gen/knob_$EMB/{knobhead.pt,result.json,loss.png} models/generalist/knob_$EMB/
done

# 4. the benchmark: Shadow on all 77 test clips + 40 seen, LEAP on 30 + 30; the planner rows come from the plans
$OMNI bench generalist --policy knobs=models/generalist/shadow.onnx --unseen-pieces 0 --seen-pieces 40 \
    --plans models/experts/plans/shadow --out models/generalist/bench_shadow.json || true
$OMNI bench generalist --policy knobs=models/generalist/leap.onnx --unseen-pieces 30 --seen-pieces 30 \
    --plans models/experts/plans/leap --out models/generalist/bench_leap.json || true

# 5. side by side on the same planner data (issue 14 item 2): the residual on the prior's action, FMT and
#    BC-MLP, against the knob head. The store (plans replayed noise-free, 99 episodes, 43,829 steps, ~5 min)
#    stays out of git; these lines rebuild it. FMT 30 min, BC 1,500 steps (its held-out MSE is lowest
#    there and rises after), both on one core each; the benchmark ~10 min.
$OMNI collect models/experts/plans/shadow --out runs/store_plans_shadow --noise-std 0
$OMNI train-policy runs/store_plans_shadow --out runs/gen/fmtres_plans --residual-on-prior --minutes 30 --threads 1 &
$OMNI train-policy runs/store_plans_shadow --out runs/gen/bcres1500 --model bc --residual-on-prior --max-steps 1500 \
    --minutes 30 --threads 1 &
wait
$OMNI bench generalist --policy knobs=models/generalist/shadow.onnx --policy fmtres=runs/gen/fmtres_plans \
    --policy bcres=runs/gen/bcres1500 --unseen-pieces 20 --seen-pieces 20 --plans models/experts/plans/shadow \
    --out models/generalist/bench_side_by_side.json || true

# 6. F1 vs number of planned clips (Shadow): the head on the first N planned clips of the train split in
#    manifest order (a folder of links per N), exported, 20 unseen test clips and 10 of its own clips
for N in 10 30 60 99 233; do
  rm -rf runs/curve/plans_$N && mkdir -p runs/curve/plans_$N
  .venv/bin/python - "$N" <<'PY'
import sys
from pathlib import Path
from sim_training.experts.fanout import resolve_pieces
n = int(sys.argv[1])
plans = Path("models/experts/plans/shadow")
done = [j.id for j in resolve_pieces("sim_training/music/corpus_data/manifest.json", "train")
        if (plans / j.id / "plan.json").is_file()][:n]
for piece in done:
    (Path(f"runs/curve/plans_{n}") / piece).symlink_to((plans / piece).resolve())
PY
  $OMNI train-knob-head runs/curve/plans_$N --out runs/curve/knob_$N --samples runs/knob/shadow_samples.npz
  $OMNI export runs/curve/knob_$N --out runs/curve/knob_$N.onnx
  $OMNI bench generalist --policy knobs=runs/curve/knob_$N.onnx --unseen-pieces 20 --seen-pieces 10 \
      --out runs/curve/bench_$N.json || true
done
