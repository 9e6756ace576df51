#!/usr/bin/env bash
# Rebuild a model directory from what recipes/gpu/retrain_default.sh left in $OUT:
#   bash recipes/gpu/reassemble.sh OUTDIR DEST      (run from the repo root; DEST is created)
# The weights' parts are joined in name order, config.json and vocab.json copied, and the codec (the bundled
# one, unchanged by training) copied from lmdm/weights/default. Checks the sha256 values of MANIFEST.txt and
# the codec fingerprint in config.json. Then: python -c "import lmdm; m = lmdm.load_model('DEST')".
set -u
SRC=${1:?usage: reassemble.sh OUTDIR DEST}
DEST=${2:?usage: reassemble.sh OUTDIR DEST}
CODEC_DIR=${CODEC_DIR:-lmdm/weights/default}
PY=${PY:-python3}
fail() { echo "reassemble: $*" >&2; exit 1; }

ls "$SRC"/model.safetensors.part-* >/dev/null 2>&1 || fail "no model.safetensors.part-* in $SRC"
[ -f "$SRC/config.json" ] || fail "no config.json in $SRC"
[ -f "$CODEC_DIR/codec.safetensors" ] || fail "no codec in $CODEC_DIR (run from the repo root, or set CODEC_DIR)"
mkdir -p "$DEST"
cat $(ls "$SRC"/model.safetensors.part-* | sort) > "$DEST/model.safetensors"
cp "$SRC/config.json" "$DEST/"
[ -f "$SRC/vocab.json" ] && cp "$SRC/vocab.json" "$DEST/"
cp "$CODEC_DIR/codec.json" "$CODEC_DIR/codec.safetensors" "$DEST/"

if [ -f "$SRC/MANIFEST.txt" ]; then
    want=$(sed -n 's/^model.safetensors [0-9]* bytes sha256 \([0-9a-f]*\)$/\1/p' "$SRC/MANIFEST.txt")
    got=$(sha256sum "$DEST/model.safetensors" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$want" != "$got" ] && fail "model.safetensors sha256 $got, MANIFEST.txt says $want"
    [ -n "$want" ] && echo "model.safetensors: sha256 matches MANIFEST.txt"
fi
# the fingerprint load_model checks: the first 16 hex digits of the codec file's sha256
"$PY" - "$DEST" <<'EOF' || fail "codec fingerprint check failed"
import hashlib, json, sys
from pathlib import Path
d = Path(sys.argv[1])
want = json.loads((d / "config.json").read_text())["codec"].get("fingerprint")
got = hashlib.sha256((d / "codec.safetensors").read_bytes()).hexdigest()[:16]
if want and want != got:
    sys.exit(f"config.json wants codec fingerprint {want}, {d / 'codec.safetensors'} has {got}")
print(f"codec fingerprint {got}: matches config.json")
EOF
echo "reassemble: $DEST is a model directory"
