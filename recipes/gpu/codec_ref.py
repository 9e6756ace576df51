"""Point an exported model's config.json at the bundled codec file, when the export's codec is the same codec.

    python recipes/gpu/codec_ref.py EXPORT_DIR lmdm/weights/default

`lmdm train export` re-saves the codec: the same tensors, but this safetensors version may lay the file out
otherwise, so its fingerprint (the first 16 hex digits of the file's sha256) differs from the bundled
codec.safetensors'. load_model checks that fingerprint. Where every tensor (name, dtype, values) and
codec.json are equal, config.json gets the bundled file's fingerprint (the export's is kept under
"codec_fingerprint_of_export"), so the bundled codec file can stand in for the export's, which is not
sent back. Needs only numpy and safetensors (no torch import). Prints what it did; exit 1 if they differ.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def main(export: Path, bundled: Path) -> int:
    a, b = load_file(str(export / "codec.safetensors")), load_file(str(bundled / "codec.safetensors"))
    same = a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)
    same = same and json.loads((export / "codec.json").read_text()) == json.loads((bundled / "codec.json").read_text())
    doc = json.loads((export / "config.json").read_text())
    old = doc["codec"].get("fingerprint")
    new = hashlib.sha256((bundled / "codec.safetensors").read_bytes()).hexdigest()[:16]
    if same and old != new:
        doc["codec"]["fingerprint"] = new
        doc["codec_fingerprint_of_export"] = old
        (export / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"codec tensors equal to the bundled codec's: {same}; config.json codec fingerprint {old} -> {doc['codec'].get('fingerprint')}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
