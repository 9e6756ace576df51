#!/usr/bin/env bash
# The 32 kHz sampled-instrument corpus and its codec (issue 19; docs/corpus.md, docs/codec.md).
# Resumable: re-running continues where it stopped (the corpus skips finished songs, the codec
# resumes from its last save). One worker, one torch thread: it leaves the other core to play.
#   nohup bash recipes/full_band/run.sh > runs/full_band.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
HOURS=${HOURS:-3}
STEPS=${STEPS:-6000}
export OMP_NUM_THREADS=1
mkdir -p runs
.venv/bin/lmdm corpus make --hours "$HOURS" --out data/corpus-s32 --sample-rate 32000 \
  --instruments sampled --any-tempo 0.5 --workers 1 --quiet
"$PY" -m lmdm.train.codec --data data/corpus-s32 --out runs/codec-s32 --sample-rate 32000 \
  --n-fft 1280 --synthesis-fft 640 --frame-hop 320 --stride 4 --width 192 --latent-width 384 \
  --phase-integrator --batch-size 8 --steps "$STEPS" --save-every 250 --threads 1 ${MAX_MINUTES:+--max-minutes $MAX_MINUTES}
