"""The front door for models: `load_model` and `open_codec` for every format lmdm reads.

    load_model(None)            the bundled default model (lmdm/weights/default)
    load_model("runs/x")        our checkpoint format (lmdm.checkpoint), or a training run's latest step
    load_model("models/sao")    a Stable Audio Open directory or its LMDM fine-tune (lmdm.sao.load)

`open_codec` turns a checkpoint's codec reference into a codec: the placeholder, our ConvCodec
(lmdm.codec.checkpoint) or the Stable Audio Open VAE (lmdm.sao.load.open_oobleck). This module sits
above both formats; neither imports it. Every failure is a `CheckpointError` with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmdm.checkpoint import (CONFIG_FILE, MODEL_FILE, CheckpointError, CheckpointNotFound, check_finite, check_size,
                             guidance, guide_inputs, load_weights, model_config, new_modules, read_config, read_tensors, resolve, sampler_steps,
                             short_repr, text_buckets)
from lmdm.codec.base import Codec
from lmdm.codec.checkpoint import load_codec, weights_fingerprint
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM
from lmdm.sao.load import OOBLECK_KIND, is_sao_directory, load_sao, open_oobleck
from lmdm.tensorfile import TensorFileError


DEFAULT_DIR = Path(__file__).parent / "weights" / "default"  # the bundled default model (lmdm train export --half)
PLACEHOLDER_FIELDS = ("sample_rate", "hop", "latent_dim", "channels")


def open_codec(reference: str | dict[str, Any], base: Path, config: ModelConfig | None = None) -> Codec:
    """Codec reference -> codec. Relative paths are relative to `base` (the checkpoint directory)."""
    file = base / CONFIG_FILE
    if reference == "placeholder":
        if config is None:
            raise CheckpointError('codec "placeholder" needs the model config to size it')
        return PlaceholderCodec(config.sample_rate, config.hop, config.latent_dim, config.channels)
    if not isinstance(reference, dict) or not isinstance(reference.get("kind"), str):
        raise CheckpointError(f'{file}: codec must be "placeholder" or an object with a "kind", got {short_repr(reference)}')
    if reference["kind"] == "placeholder":
        values = {k: reference.get(k) for k in PLACEHOLDER_FIELDS}
        if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 384_000 for v in values.values()):
            raise CheckpointError(f"{file}: codec {', '.join(PLACEHOLDER_FIELDS)} must be whole numbers from 1 to 384000, got {short_repr(values, 120)}")
        wanted = None if config is None else {k: getattr(config, k) for k in PLACEHOLDER_FIELDS}
        if wanted is not None and values != wanted:  # sized by the model (checked), never by the reference alone
            raise CheckpointError(f"{file}: the placeholder codec reference {values} does not match the model config {wanted}")
        if values["latent_dim"] > 4096 or values["channels"] > 16:
            raise CheckpointError(f"{file}: a placeholder codec has at most 4096 latent channels and 16 audio channels, got {values}")
        return PlaceholderCodec(*values.values())
    if reference["kind"] == "ConvCodec":
        path = _codec_path(reference, base)
        expected = reference.get("fingerprint")
        if expected is not None and not isinstance(expected, str):
            raise CheckpointError(f"{file}: codec.fingerprint must be a string of 16 hex digits, got {short_repr(expected)}")
        try:
            if expected is not None and (found := weights_fingerprint(path)) != expected:
                raise CheckpointError(
                    f"codec of {base}: the weights in {path} are not the ones it was made with (fingerprint {found}, "
                    f"expected {expected}); the codec was retrained or overwritten since: point config.json's codec path at the original"
                )
            codec = load_codec(path)
        except TensorFileError as e:
            raise CheckpointError(f"codec of {base}: {e}") from e
        check_finite(codec.state_dict(), path)
        return codec
    if reference["kind"] == OOBLECK_KIND:  # the Stable Audio Open VAE (docs/sao.md)
        return open_oobleck(reference, base)
    raise CheckpointError(f"{base / CONFIG_FILE}: unknown codec kind {reference['kind']!r} (placeholder, ConvCodec or {OOBLECK_KIND})")


def _codec_path(reference: dict[str, Any], base: Path) -> Path:
    """The directory a codec reference names ("path"; relative to the checkpoint directory `base`)."""
    path = reference.get("path", ".")
    if not isinstance(path, str) or not path or "\0" in path:
        raise CheckpointError(f"{base / CONFIG_FILE}: codec.path must be a directory name, got {short_repr(path)}")
    where = Path(path)
    return where if where.is_absolute() else base / where


def load_model(path: str | Path | None = None) -> LMDM:
    """Load a checkpoint directory (or a training run: its latest checkpoint) into an `LMDM`, in eval mode.

    `path=None` loads the bundled default model from lmdm/weights/. Raises `CheckpointError`
    (a ValueError; `CheckpointNotFound` is also a FileNotFoundError) with a one-line message.
    """
    if path is None:
        if not (DEFAULT_DIR / CONFIG_FILE).is_file():
            raise CheckpointNotFound(
                f"no bundled default model yet: {DEFAULT_DIR} is empty (it ships after the training run, see docs/training.md); "
                "pass a checkpoint directory, e.g. lmdm.load_model('runs/lmdm-block-causal')"
            )
        path = DEFAULT_DIR
    if is_sao_directory(path):  # Stable Audio Open models and their fine-tunes (docs/sao.md)
        return load_sao(path)
    directory = resolve(path)
    doc = read_config(directory)
    config = model_config(doc, directory)
    buckets = text_buckets(doc, directory)
    check_size(config, buckets, directory)
    dit, text = new_modules(config, buckets)
    load_weights(dit, text, read_tensors(directory / MODEL_FILE), directory / MODEL_FILE)
    codec = open_codec(doc.get("codec", "placeholder"), directory, config)
    try:
        return LMDM(config, dit, text, codec, name=str(doc.get("name") or directory.name), guidance=guidance(doc, directory),
                    steps=sampler_steps(doc, directory), guide_inputs=guide_inputs(doc, directory)).eval()
    except ValueError as e:
        raise CheckpointError(f"{directory}: {e}") from e
