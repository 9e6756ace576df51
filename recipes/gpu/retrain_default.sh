#!/usr/bin/env bash
# Retrain the bundled default model's DiT from scratch on one GPU, in a fixed wall-time budget.
#
#   corpus (numpy synth, 16 kHz, --any-tempo 0.5) -> encode (bundled codec, --stems 3) ->
#   base (recipes/gpu/base.toml) -> LMDM block_causal with the tempo features (recipes/gpu/lmdm.toml) ->
#   export --half --guidance 3 --steps 8 -> $OUT (weights split under 15 MiB, config, vocab, logs, MANIFEST.txt)
#
# On the GPU machine, from the repo root, after the wheel install:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash recipes/gpu/retrain_default.sh
# Here, on the CPU, end to end at a tiny scale:
#   SCALE=tiny PY=.venv/bin/python OUT=/tmp/out bash recipes/gpu/retrain_default.sh
# Back here: bash recipes/gpu/reassemble.sh OUTDIR DEST   (DEST is then a model directory for lmdm.load_model)
#
# Every stage runs under `timeout` against one deadline (TOTAL_S after the start); a failed or cut stage never
# stops the script. Base and LMDM write checkpoints every few hundred steps and stop cleanly at their
# train.max_minutes; the export takes the newest complete checkpoint, so a killed LMDM stage still exports.
# Knobs (environment): SCALE=full|tiny, OUT, PY, WORK, DEVICE, TOTAL_S, HOURS, WORKERS, BATCH_BASE, BATCH_LMDM,
# EST_BASE_MS, LMDM_RATIO, BASE_SHARE, BASE_STEPS_MAX, LMDM_STEPS_MAX, CLOCK=1 (add the ("clock", 6) input);
# for tests of the failure paths: BASE_TIMEOUT_S, LMDM_TIMEOUT_S, LMDM_MAX_MIN.
set -u

SCALE=${SCALE:-full}
PY=${PY:-python3}
OUT=${OUT:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)   # the repo root (python -m lmdm... runs from there)
cd "$REPO" || exit 2
if [ -z "$OUT" ]; then echo "set OUT to the directory whose files come back" >&2; exit 2; fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
LOG="$OUT/retrain.log"
: > "$LOG"

if [ "$SCALE" = tiny ]; then                  # the CPU check: same code path, small numbers
    WORK=${WORK:-/tmp/lmdm-gpu-tiny}
    DEVICE=${DEVICE:-cpu}
    TOTAL_S=${TOTAL_S:-1200}
    HOURS=${HOURS:-0.02}
    WORKERS=${WORKERS:-2}
    BATCH_BASE=${BATCH_BASE:-4}
    BATCH_LMDM=${BATCH_LMDM:-4}
    THREADS=${THREADS:-1}
    IO_THREADS=${IO_THREADS:-1}
    EST_BASE_MS=${EST_BASE_MS:-300}
    BASE_STEPS_MAX=${BASE_STEPS_MAX:-30}
    LMDM_STEPS_MAX=${LMDM_STEPS_MAX:-40}
    STEPS_MIN=${STEPS_MIN:-10}
    SAVE_MIN=${SAVE_MIN:-10}
    LOG_EVERY=${LOG_EVERY:-5}
    WARMUP_BASE=${WARMUP_BASE:-5}
    WARMUP_LMDM=${WARMUP_LMDM:-5}
else
    WORK=${WORK:-/tmp/lmdm-gpu}
    DEVICE=${DEVICE:-cuda}
    TOTAL_S=${TOTAL_S:-390}                   # the whole script, corpus to $OUT
    HOURS=${HOURS:-14}                        # ~20 s to make on 16 cores; the encode takes what fits its timeout
    WORKERS=${WORKERS:-16}
    BATCH_BASE=${BATCH_BASE:-64}
    BATCH_LMDM=${BATCH_LMDM:-96}
    THREADS=${THREADS:-4}
    IO_THREADS=${IO_THREADS:-4}
    EST_BASE_MS=${EST_BASE_MS:-45}            # assumed ms/step of the base at batch 64 (host-bound; see the report)
    BASE_STEPS_MAX=${BASE_STEPS_MAX:-4000}
    LMDM_STEPS_MAX=${LMDM_STEPS_MAX:-6000}
    STEPS_MIN=${STEPS_MIN:-300}
    SAVE_MIN=${SAVE_MIN:-100}
    LOG_EVERY=${LOG_EVERY:-25}
    WARMUP_BASE=${WARMUP_BASE:-100}
    WARMUP_LMDM=${WARMUP_LMDM:-100}
fi
LMDM_RATIO=${LMDM_RATIO:-130}                 # LMDM s/step / base s/step in % (batch 96 vs 64: the text encoder runs per caption)
BASE_SHARE=${BASE_SHARE:-40}                  # % of the training time left after corpus + encode
CORPUS_TIMEOUT=${CORPUS_TIMEOUT:-50}          # a cut corpus or encode is still used: both index each finished example
ENCODE_TIMEOUT=${ENCODE_TIMEOUT:-50}
EXPORT_RESERVE=${EXPORT_RESERVE:-35}          # export + split + pack, held back from the training stages
STARTUP_S=${STARTUP_S:-25}                    # a training process before its first step (imports, latents, CUDA)
NAME=${NAME:-lmdm-default-gpu}
CLOCK=${CLOCK:-0}
DEADLINE=$((SECONDS + TOTAL_S))

declare -A WALL RC
ts() { printf '%(%H:%M:%S)T' -1; }
log() { printf '%s %s\n' "$(ts)" "$*" | tee -a "$LOG"; }
prefix() { while IFS= read -r line; do printf '%s   | %s\n' "$(ts)" "$line"; done | tee -a "$LOG"; }
left() { echo $((DEADLINE - SECONDS)); }
clamp() { local v=$1 lo=$2 hi=$3; [ "$v" -lt "$lo" ] && v=$lo; [ "$v" -gt "$hi" ] && v=$hi; echo "$v"; }
minutes() { awk -v s="$1" 'BEGIN { printf "%.3f", (s > 6 ? s : 6) / 60 }'; }

# stage NAME TIMEOUT_S COMMAND...: run it under timeout (SIGTERM, SIGKILL 10 s later), output timestamped into the log
stage() {
    local name=$1 limit=$2; shift 2
    [ "$limit" -lt 5 ] && limit=5
    log "== $name: start (timeout ${limit}s, $(left)s to the deadline): $*"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" 2>&1 | prefix
    local rc=${PIPESTATUS[0]}
    WALL[$name]=$((SECONDS - t0)); RC[$name]=$rc
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then log "== $name: CUT by timeout after ${WALL[$name]}s (rc $rc)"
    else log "== $name: done in ${WALL[$name]}s, rc $rc"; fi
    return 0
}

# facts from a run's log.jsonl: "steps last_loss median_ms_per_step" (median over the intervals after the first)
run_facts() {
    "$PY" - "$1" <<'EOF' 2>/dev/null || echo "0 nan 0"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/log.jsonl") if l.strip()]
per = [r["s_per_step"] for r in rows[1:]] or [r["s_per_step"] for r in rows]
print(rows[-1]["step"], rows[-1]["loss"], int(1000 * statistics.median(per)) if per else 0)
EOF
}
has_checkpoint() { ls -d "$1"/step-[0-9]*[0-9] >/dev/null 2>&1; }

log "retrain_default.sh: SCALE=$SCALE DEVICE=$DEVICE TOTAL_S=$TOTAL_S HOURS=$HOURS WORKERS=$WORKERS batch $BATCH_BASE/$BATCH_LMDM CLOCK=$CLOCK"
log "repo $REPO, work $WORK, out $OUT, python $PY"
case "$WORK" in
    /tmp/?*) rm -rf "$WORK" ;;                   # a fresh start every time (runs refuse to overwrite checkpoints)
    *) if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then log "WORK=$WORK is not empty (only /tmp/... is cleared): stop"; exit 2; fi ;;
esac
mkdir -p "$WORK/runs"
rm -f "$OUT"/model.safetensors.part-* "$OUT/config.json" "$OUT/vocab.json" "$OUT/MANIFEST.txt" "$OUT/extras.tar.gz"
# environment facts, in the background while the corpus is made (this also warms the torch import)
( nvidia-smi 2>&1 | head -20; OMP_NUM_THREADS=1 "$PY" -c "import torch, sys; import numpy, safetensors; print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'safetensors', safetensors.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')" 2>&1; echo cores $(nproc --all); free -g 2>&1 | head -2 ) > "$WORK/env.txt" 2>&1 &
ENV_PID=$!

# 1. corpus --------------------------------------------------------------------------------------------------------
stage corpus "$CORPUS_TIMEOUT" env OMP_NUM_THREADS=1 "$PY" -m lmdm.corpus make --hours "$HOURS" --out "$WORK/corpus" \
    --workers "$WORKERS" --any-tempo 0.5 --quiet
CORPUS_N=$(cat "$WORK/corpus/index.jsonl" 2>/dev/null | wc -l)
log "corpus: $CORPUS_N examples of 40 s"

# 2. encode (NVIDIA_TF32_OVERRIDE=0: the codec convolutions in true float32 on the GPU, as on the CPU) -----------------
stage encode "$ENCODE_TIMEOUT" env OMP_NUM_THREADS="$IO_THREADS" NVIDIA_TF32_OVERRIDE=0 "$PY" -m lmdm.train encode --corpus "$WORK/corpus" \
    --codec "$REPO/lmdm/weights/default" --out "$WORK/latents" --device "$DEVICE" --stems 3 --quiet
LATENTS_N=$(cat "$WORK/latents/index.jsonl" 2>/dev/null | wc -l)
log "latents: $LATENTS_N examples encoded"
wait "$ENV_PID" 2>/dev/null; sed 's/^/    env: /' "$WORK/env.txt" | tee -a "$LOG"

COMMON=(--set "data.latents=\"$WORK/latents\"" --device "$DEVICE" --set "train.threads=$THREADS" --set "log.every=$LOG_EVERY")
MODEL_SETS=()
if [ "$CLOCK" = 1 ]; then
    MODEL_SETS=(--set 'model.extra_add_inputs=[["melody", 13], ["rhythm", 2], ["loudness", 2], ["accomp", 33], ["clock", 6]]')
fi

# 3a. base ---------------------------------------------------------------------------------------------------------
avail=$(( $(left) - EXPORT_RESERVE - 2 * STARTUP_S ))
base_loop=$(( avail * BASE_SHARE / 100 ))
[ "$base_loop" -lt 10 ] && base_loop=10
base_steps=$(clamp $(( base_loop * 1000 / EST_BASE_MS )) "$STEPS_MIN" "$BASE_STEPS_MAX")
base_save=$(clamp $(( base_steps / 3 )) "$SAVE_MIN" 100000)
log "base plan: ${base_loop}s of steps at an assumed ${EST_BASE_MS} ms/step -> $base_steps steps, checkpoint every $base_save"
stage base "${BASE_TIMEOUT_S:-$(( base_loop + STARTUP_S + 15 ))}" env OMP_NUM_THREADS="$THREADS" "$PY" -m lmdm.train base --recipe "$REPO/recipes/gpu/base.toml" \
    "${COMMON[@]}" "${MODEL_SETS[@]}" --out "$WORK/runs/base" --steps "$base_steps" --max-minutes "$(minutes "$base_loop")" \
    --set "train.batch_size=$BATCH_BASE" --set "train.warmup_steps=$WARMUP_BASE" --set "log.save_every=$base_save"
read -r BASE_DONE BASE_LOSS BASE_MS <<<"$(run_facts "$WORK/runs/base")"
log "base: $BASE_DONE steps, loss $BASE_LOSS, $BASE_MS ms/step (median)"

# 3b. LMDM (block_causal, tempo features) -------------------------------------------------------------------------
if has_checkpoint "$WORK/runs/base"; then
    INIT=(--set "train.init=\"$WORK/runs/base\"")
else  # no base: the LMDM stage from random weights, same shape (worse, but a model comes back)
    log "base left no checkpoint: the LMDM stage starts from random weights"
    INIT=(--set 'train.init=""' --set 'model.preset="small"' --set model.width=256 --set model.depth=8 --set model.heads=4
          --set model.block_frames=25 --set model.context_blocks=4
          --set 'model.extra_add_inputs=[["melody", 13], ["rhythm", 2], ["loudness", 2], ["accomp", 33]]' "${MODEL_SETS[@]}")
fi
lmdm_timeout=${LMDM_TIMEOUT_S:-$(( $(left) - EXPORT_RESERVE ))}
lmdm_loop=$(( lmdm_timeout - STARTUP_S - 10 ))
[ "$lmdm_loop" -lt 10 ] && lmdm_loop=10
if [ "$BASE_MS" -gt 0 ]; then lmdm_ms=$(( BASE_MS * LMDM_RATIO / 100 )); else lmdm_ms=$(( EST_BASE_MS * LMDM_RATIO / 100 )); fi
[ "$lmdm_ms" -lt 1 ] && lmdm_ms=1
lmdm_steps=$(clamp $(( lmdm_loop * 1000 / lmdm_ms )) "$STEPS_MIN" "$LMDM_STEPS_MAX")
lmdm_save=$(clamp $(( lmdm_steps / 5 )) "$SAVE_MIN" 100000)
lmdm_min=${LMDM_MAX_MIN:-$(minutes "$lmdm_loop")}
log "lmdm plan: ${lmdm_loop}s of steps at ~${lmdm_ms} ms/step -> $lmdm_steps steps, checkpoint every $lmdm_save, timeout ${lmdm_timeout}s"
stage lmdm "$lmdm_timeout" env OMP_NUM_THREADS="$THREADS" "$PY" -m lmdm.train lmdm --recipe "$REPO/recipes/gpu/lmdm.toml" \
    "${COMMON[@]}" "${INIT[@]}" --out "$WORK/runs/lmdm" --steps "$lmdm_steps" --max-minutes "$lmdm_min" \
    --set "train.batch_size=$BATCH_LMDM" --set "train.warmup_steps=$WARMUP_LMDM" --set "log.save_every=$lmdm_save"
read -r LMDM_DONE LMDM_LOSS LMDM_MS <<<"$(run_facts "$WORK/runs/lmdm")"
log "lmdm: $LMDM_DONE steps logged, loss $LMDM_LOSS, $LMDM_MS ms/step (median)"

# 4. export and pack -----------------------------------------------------------------------------------------------
EXPORT="$WORK/export"
SOURCE="$WORK/runs/lmdm"; KIND=lmdm
if ! has_checkpoint "$SOURCE"; then SOURCE="$WORK/runs/base"; KIND=base-only; log "no LMDM checkpoint: exporting the BASE (not a live model) so that something comes back"; fi
if has_checkpoint "$SOURCE"; then
    CKPT=$(ls -d "$SOURCE"/step-[0-9]*[0-9] | sort | tail -1)
    log "export: $CKPT"
    export_limit=$(( $(left) - 8 )); [ "$export_limit" -lt 25 ] && export_limit=25; [ "$export_limit" -gt 90 ] && export_limit=90
    stage export "$export_limit" env OMP_NUM_THREADS="$IO_THREADS" "$PY" -m lmdm.train export "$SOURCE" --out "$EXPORT" --half --guidance 3 --steps 8 --name "$NAME"
    # the export's codec is the bundled one re-saved (other file layout, other fingerprint): point config.json at
    # the bundled file, which reassemble.sh copies in (recipes/gpu/codec_ref.py)
    [ -f "$EXPORT/config.json" ] && timeout 30 "$PY" "$REPO/recipes/gpu/codec_ref.py" "$EXPORT" "$REPO/lmdm/weights/default" 2>&1 | prefix
else
    CKPT=none; log "export: no checkpoint at all"
fi

PACK="$WORK/pack"; mkdir -p "$PACK"
for run in base lmdm; do
    [ -f "$WORK/runs/$run/log.jsonl" ] && cp "$WORK/runs/$run/log.jsonl" "$PACK/${run}_log.jsonl"
    last=$(ls -d "$WORK/runs/$run"/step-[0-9]*[0-9] 2>/dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last/config.json" "$PACK/${run}_checkpoint_config.json"
done
cp "$WORK/env.txt" "$PACK/" 2>/dev/null
cp "$WORK/latents/latents.json" "$PACK/" 2>/dev/null
cp "$WORK/corpus/corpus.json" "$PACK/" 2>/dev/null
[ -f "$EXPORT/codec.json" ] && cp "$EXPORT/codec.json" "$PACK/export_codec.json"

if [ -f "$EXPORT/model.safetensors" ]; then
    cp "$EXPORT/config.json" "$OUT/config.json"
    [ -f "$EXPORT/vocab.json" ] && cp "$EXPORT/vocab.json" "$OUT/vocab.json"
    size=$(stat -c %s "$EXPORT/model.safetensors")
    if [ "$size" -gt $((15 * 1024 * 1024)) ]; then
        split -b 15M -a 2 "$EXPORT/model.safetensors" "$OUT/model.safetensors.part-"
    else
        cp "$EXPORT/model.safetensors" "$OUT/model.safetensors.part-aa"
    fi
    MODEL_SHA=$(sha256sum "$EXPORT/model.safetensors" | cut -d' ' -f1)
    CODEC_SHA=$(sha256sum "$EXPORT/codec.safetensors" 2>/dev/null | cut -d' ' -f1)
    BUNDLED_SHA=$(sha256sum "$REPO/lmdm/weights/default/codec.safetensors" | cut -d' ' -f1)
    {
        echo "lmdm GPU retrain ($KIND), exported from $CKPT as '$NAME' (--half --guidance 3 --steps 8)"
        echo
        echo "Reassemble (from the repo root): bash recipes/gpu/reassemble.sh OUTDIR DEST"
        echo "  which does: cat OUTDIR/model.safetensors.part-* > DEST/model.safetensors (the parts in name order),"
        echo "  cp OUTDIR/config.json OUTDIR/vocab.json DEST/, cp lmdm/weights/default/codec.json lmdm/weights/default/codec.safetensors DEST/"
        echo "  (the export's codec is the bundled one: not sent back), then checks the sha256 values below."
        echo
        echo "model.safetensors $size bytes sha256 $MODEL_SHA"
        echo "codec.safetensors (export) sha256 $CODEC_SHA"
        echo "codec.safetensors (bundled) sha256 $BUNDLED_SHA (file $([ "$CODEC_SHA" = "$BUNDLED_SHA" ] && echo identical || echo "differs: same tensors, see codec_ref.py in retrain.log"))"
        echo "config.json codec $(grep -o '"fingerprint": "[0-9a-f]*"' "$OUT/config.json" | head -1) (must be the first 16 hex digits of the bundled codec's sha256)"
        for f in "$OUT"/model.safetensors.part-*; do echo "part $(basename "$f") $(stat -c %s "$f") bytes sha256 $(sha256sum "$f" | cut -d' ' -f1)"; done
        echo
        echo "extras.tar.gz: base/lmdm log.jsonl (loss per ${LOG_EVERY} steps), the checkpoints' config.json (resolved recipes),"
        echo "latents.json, corpus.json, env.txt (GPU, torch), export_codec.json."
    } > "$OUT/MANIFEST.txt"
else
    echo "no exported model (see retrain.log)" > "$OUT/MANIFEST.txt"
fi
tar -czf "$OUT/extras.tar.gz" -C "$PACK" . 2>/dev/null

# 5. summary -------------------------------------------------------------------------------------------------------
{
    echo "== summary ($SCALE, $DEVICE, ${SECONDS}s in all, deadline ${TOTAL_S}s)"
    echo "corpus: $CORPUS_N examples (${HOURS} h asked), ${WALL[corpus]:-?}s rc ${RC[corpus]:-?}"
    echo "encode: $LATENTS_N examples, ${WALL[encode]:-?}s rc ${RC[encode]:-?}"
    echo "base:   $BASE_DONE / $base_steps steps, batch $BATCH_BASE, final loss $BASE_LOSS, $BASE_MS ms/step, ${WALL[base]:-?}s rc ${RC[base]:-?}"
    echo "lmdm:   $LMDM_DONE / $lmdm_steps steps, batch $BATCH_LMDM, final loss $LMDM_LOSS, $LMDM_MS ms/step, ${WALL[lmdm]:-?}s rc ${RC[lmdm]:-?}"
    echo "export: $KIND from $CKPT, ${WALL[export]:-?}s rc ${RC[export]:-?}"
    echo "files in OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
} | tee -a "$LOG" | tee -a "$OUT/MANIFEST.txt"
exit 0
