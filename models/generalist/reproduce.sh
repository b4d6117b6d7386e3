#!/usr/bin/env bash
# Reproduce the shipped generalists (models/generalist/) from scratch on a 2-core CPU machine.
# Wall times measured here are in CARD.md. Every step resumes if interrupted (re-run the same line).
set -euo pipefail
cd "$(dirname "$0")/../.."
OMNI=.venv/bin/omnipianist
mkdir -p runs/data runs/gen

# 1. The 250 training pieces: a seeded shuffle of the corpus train split (619 clips), first 250.
.venv/bin/python - <<'PY'
import random
from sim_training.music.corpus import load_manifest
ids = [p.id for p in load_manifest().pieces("train")]  # manifest order
random.Random(0).shuffle(ids)
open("runs/data/train250.txt", "w").write(" ".join(ids[:250]))
open("runs/gen/p25.txt", "w").write(",".join(ids[:25]))
open("runs/gen/p100.txt", "w").write(",".join(ids[:100]))
PY

# 2. Dataset: the OT/IK prior labels every piece, rollouts without and with action noise 0.1 (RP1M),
#    on 2 local Ray workers (127.0.0.1 only). ~6 min; 500 episodes, 259,270 steps, 175 MB.
$OMNI collect models/experts prior --out runs/data/shadow250 --pieces $(cat runs/data/train250.txt) \
    --noise-std 0.0 0.1 --ray --workers 2

# 3. Generalists, one torch thread each (two run side by side on 2 cores).
$OMNI train-policy runs/data/shadow250 --out runs/gen/fmt250 --minutes 35 --threads 1 --no-show-progress &
$OMNI train-policy runs/data/shadow250 --out runs/gen/bc250 --model bc --minutes 35 --threads 1 --no-show-progress &
wait
STEPS=$(.venv/bin/python -c "import json; print(json.load(open('runs/gen/fmt250/result.json'))['step'])")
# F1 vs number of training pieces: the same number of optimiser steps as fmt250.
$OMNI train-policy runs/data/shadow250 --out runs/gen/fmt25 --train-pieces "$(cat runs/gen/p25.txt)" \
    --max-steps "$STEPS" --minutes 600 --threads 1 --no-show-progress &
$OMNI train-policy runs/data/shadow250 --out runs/gen/fmt100 --train-pieces "$(cat runs/gen/p100.txt)" \
    --max-steps "$STEPS" --minutes 600 --threads 1 --no-show-progress &
# The residual-on-prior FMT (input obs + prior action, target action - prior action).
$OMNI train-policy runs/data/shadow250 --out runs/gen/fmtres250 --residual-on-prior --minutes 10 --threads 1 \
    --no-show-progress
wait

# 4. Export (with the parity check against torch) and the seen/unseen benchmark.
$OMNI export runs/gen/fmt250 --out models/generalist/fmt_shadow.onnx --verify
$OMNI export runs/gen/fmtres250 --out models/generalist/fmt_residual_shadow.onnx --verify
$OMNI bench generalist --policy fmt=runs/gen/fmt250 --policy bc=runs/gen/bc250 --policy fmt_residual=runs/gen/fmtres250 \
    --policy fmt_p25=runs/gen/fmt25 --policy fmt_p100=runs/gen/fmt100 --out runs/gen/bench_generalist.json
