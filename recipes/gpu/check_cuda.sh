#!/usr/bin/env bash
# The CUDA figures of docs/performance.md and docs/sao.md, measured on a GPU machine (issue #21).
# Run from the repository root with a Python that has torch with CUDA and lmdm's dependencies:
#   PYTHON=python3 OUT=cuda-check bash recipes/gpu/check_cuda.sh
# Prints everything and keeps the JSON reports and a rendered file in $OUT.
# A smoke test of the script itself on a CPU (tiny sizes, a few seconds):
#   PYTHON=.venv/bin/python OUT=/tmp/cc DEVICE=cpu SIZE=tiny bash recipes/gpu/check_cuda.sh
set -u
PY=${PYTHON:-python3}
OUT=${OUT:-cuda-check}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-sao-small}   # the random model of the benches and the exactness check
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log() { echo "== $(date +%T) $*"; }
table() { $PY -c "import json, sys; from lmdm.bench import format_table; print(format_table(json.load(open(sys.argv[1]))))" "$1"; }
bench() {  # name, then lmdm bench arguments
    local name=$1; shift
    log "bench $name: $*"
    timeout 150 $PY -m lmdm.bench "$@" --json > "$OUT/bench_$name.json" && table "$OUT/bench_$name.json"
}
MODES="naive encdec block_causal block_causal_separate"

log machine
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"

log "tests (tests/test_device.py runs its CUDA tests here; tests/test_stream.py on this torch)"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_stream.py 2>&1 | tail -12

bench sao_bf16 --config $SIZE --device $DEVICE --dtype bf16 --modes $MODES --blocks 10 --warmup 2
bench sao_fp16 --config $SIZE --device $DEVICE --dtype fp16 --modes $MODES --blocks 10 --warmup 2
bench sao_fp32 --config $SIZE --device $DEVICE --dtype float32 --modes $MODES --blocks 10 --warmup 2
bench sao_bf16_cfg3 --config $SIZE --device $DEVICE --dtype bf16 --modes naive block_causal --blocks 10 --warmup 2 --cfg 3
bench default --model default --device $DEVICE --modes $MODES --blocks 20 --warmup 2 --cfg 3

log "exactness at SAO-Small size and the bundled model against the CPU"
timeout 200 $PY -m lmdm.eval.device_check --device $DEVICE --size $SIZE --blocks 3 > "$OUT/device_check.json"; cat "$OUT/device_check.json"

log "a render on CUDA with the bundled model"
timeout 100 $PY -m lmdm.render "deep house with warm chords at 120 bpm" --seconds 20 --model-device $DEVICE --quiet -o "$OUT/render.wav" \
    && $PY -c "import soundfile as sf, numpy as np; a, r = sf.read('$OUT/render.wav'); print('render.wav', a.shape, r, 'peak', float(np.abs(a).max()))"
log done
