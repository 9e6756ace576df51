"""Load Stable Audio Open (Small) and its LMDM fine-tunes as an `LMDM`.

Two kinds of directory hold such a model:

- **stable-audio-tools' own**: `model_config.json` + `model.safetensors` (or `model.ckpt`, read
  with `torch.load(weights_only=True)`: tensors only, never arbitrary pickled objects). This is
  what Hugging Face ships for SAO-Small, and what `unwrap_model.py` writes for a fine-tune.
- **ours** (written by `lmdm convert`, or by `lmdm train lmdm` started from SAO weights): an
  lmdm checkpoint whose codec reference has kind "oobleck". Its `model.safetensors` holds the
  DiT under `dit.` and the seconds embedder under `text.`; the VAE sits next to it
  (`codec.safetensors`, weight norm already folded) or in the SAO directory it names.

`lmdm.load_model(path)` comes here for both (`is_sao_directory`). T5 is found at load time but
loaded at the first prompt (`lmdm.sao.text`): converting or benchmarking needs no T5.

Why the global token needs no option in our DiT: SAO prepends it (sequence position first) and
LMDM fine-tunes postpend it, both at RoPE position 0 with frames at 1..L; our DiT always appends
it at position 0. Self-attention without a mask does not care where a token sits in the sequence,
only at which RoPE position, so the three give the same numbers (tests/test_sao.py recomputes
SAO's prepended forward from the raw tensors and compares); with LMDM's masks, the token is last
in both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch

from lmdm.checkpoint import (CONFIG_FILE, MODEL_FILE, CheckpointError, CheckpointNotFound, check_finite, model_config, read_config,
                             read_tensors, resolve)
from lmdm.codec.oobleck import OobleckCodec, OobleckConfig
from lmdm.config_fields import check_parameters, from_fields, meta_numel
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM
from lmdm.sao.keys import Mapped, map_state_dict
from lmdm.sao.spec import OOBLECK_LIMITS, SaoSpec, TextSpec, parse_model_config, rope_base
from lmdm.sao.text import DEFAULT_SECONDS, SaoTextEncoder, T5Encoder, t5_directory
from lmdm.tensorfile import TensorFileError, load_tensors

SAO_CONFIG = "model_config.json"
SAO_WEIGHTS = ("model.safetensors", "model.ckpt")
OOBLECK_KIND = "oobleck"  # codec reference kind of our SAO checkpoints
CODEC_WEIGHTS = "codec.safetensors"
CODEC_CONFIG = "codec.json"


# ----------------------------------------------------------------------------------------------
# Recognising and reading


def _directory(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def is_stable_audio_directory(path: str | Path) -> bool:
    return (_directory(path) / SAO_CONFIG).is_file()


def is_sao_directory(path: str | Path) -> bool:
    """True for a stable-audio-tools model directory, or one of our checkpoints (or runs) of an SAO model."""
    if is_stable_audio_directory(path):
        return True
    try:
        doc = json.loads((resolve(path) / CONFIG_FILE).read_text())
    except (CheckpointError, OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("codec"), dict) and doc["codec"].get("kind") == OOBLECK_KIND


def weights_file(directory: Path) -> Path:
    """model.safetensors, else model.ckpt, else the one *.safetensors / *.ckpt file of the directory."""
    for name in SAO_WEIGHTS:
        if (directory / name).is_file():
            return directory / name
    found = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".ckpt"))
    if len(found) == 1:
        return found[0]
    listed = f" (found {', '.join(p.name for p in found)}: keep one)" if found else ""
    raise CheckpointNotFound(f"{directory} has {SAO_CONFIG} but no {' or '.join(SAO_WEIGHTS)}{listed}")


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """A flat safetensors file, or a torch checkpoint read with weights_only=True (its "state_dict" if it has one)."""
    if file.suffix == ".safetensors":
        try:
            return load_tensors(file)[0]
        except TensorFileError as e:
            raise CheckpointError(f"corrupt checkpoint file: {e}") from e
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many kinds; all mean "not a tensors-only checkpoint"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {file} with torch.load(weights_only=True): {first}") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{file} is not a state dict (a mapping of names to tensors, or one under 'state_dict')")
    return obj


def read_model_config(directory: Path) -> SaoSpec:
    file = directory / SAO_CONFIG
    try:
        doc = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"corrupt checkpoint file: {file} is not valid JSON ({e})") from e
    return parse_model_config(doc, str(file))


def assign_checked(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `tensors` into `module` (which may live on the meta device: its tensors are replaced, as float32).

    Every missing, unexpected or misshapen name is reported in one CheckpointError first.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k} {tuple(t.shape)} (expected {expected[k]})" for k, t in tensors.items() if k in expected and tuple(t.shape) != expected[k]]
    if missing or unexpected or wrong:
        problems = [f"missing {', '.join(missing[:8])}"] * bool(missing) + [f"unexpected {', '.join(unexpected[:8])}"] * bool(unexpected)
        problems += [f"wrong shape {', '.join(wrong[:4])}"] * bool(wrong)
        raise CheckpointError(f"{source} does not match its config: " + "; ".join(problems))
    check_finite(tensors, source)
    module.load_state_dict({k: t.float() for k, t in tensors.items()}, assign=True)


# ----------------------------------------------------------------------------------------------
# Building


@attrs.frozen(eq=False)
class SaoParts:
    """A stable-audio-tools checkpoint, read and mapped, before it becomes an LMDM (training starts from this)."""

    spec: SaoSpec
    config: ModelConfig  # spec.model with the checkpoint's RoPE base
    dit_state: dict[str, torch.Tensor]
    text: SaoTextEncoder
    codec: OobleckCodec
    fresh: tuple[str, ...]  # DiT keys the file lacked (to_input_add of a plain SAO), zero-filled
    directory: Path


def text_encoder(config: ModelConfig, text: TextSpec, directories: list[Path], t5: str | Path | None, seconds_total: float | None) -> SaoTextEncoder:
    where = t5_directory(text.t5_name, directories, t5)
    return SaoTextEncoder(config.cond_dim, config.cond_tokens - 1, T5Encoder(where, config.cond_tokens - 1),
                          text.seconds_min, text.seconds_max, DEFAULT_SECONDS if seconds_total is None else seconds_total)


def read_sao(path: str | Path, *, t5: str | Path | None = None, seconds_total: float | None = None) -> SaoParts:
    """Read a stable-audio-tools directory: config, state dict (every key checked), modules."""
    directory = _directory(path)
    spec = read_model_config(directory)
    file = weights_file(directory)
    tensors = read_state_dict(file)
    inv = tensors.get("model.model.transformer.rotary_pos_emb.inv_freq")
    config = spec.model if inv is None else attrs.evolve(spec.model, rope_base=rope_base(inv, spec.model.rotary_dims, str(file)))
    with torch.device("meta"):  # shapes only: the real tensors come from the file
        dit, codec = DiT(config), OobleckCodec(spec.codec)
    text = text_encoder(config, spec.text, [directory], t5, seconds_total)
    mapped: Mapped = map_state_dict(tensors, dit, text, codec, str(file))
    del tensors
    assign_checked(text, mapped.text, file)
    assign_checked(codec, mapped.codec, file)
    return SaoParts(spec, config, mapped.dit, text, codec.eval(), mapped.fresh, directory)


def build_dit(config: ModelConfig, state: dict[str, torch.Tensor], source: str | Path) -> DiT:
    with torch.device("meta"):
        dit = DiT(config)
    assign_checked(dit, state, source)
    return dit


def load_sao(path: str | Path, *, t5: str | Path | None = None, seconds_total: float | None = None) -> LMDM:
    """An SAO model directory (either kind, see the module docstring) -> LMDM in eval mode.

    `t5`: the T5 directory (default: $LMDM_T5, else <model dir>/t5-base). `seconds_total`: the
    number paired with every prompt (default 12).
    """
    if is_stable_audio_directory(path):
        parts = read_sao(path, t5=t5, seconds_total=seconds_total)
        dit = build_dit(parts.config, parts.dit_state, parts.directory)
        return LMDM(parts.config, dit, parts.text, parts.codec, name=parts.directory.name).eval()
    return load_converted(path, t5=t5, seconds_total=seconds_total)


# ----------------------------------------------------------------------------------------------
# Our format


def codec_reference(codec: OobleckCodec, path: str | Path) -> dict[str, Any]:
    """`path`: "." (codec.safetensors next to config.json) or a stable-audio-tools directory."""
    return {"kind": OOBLECK_KIND, "path": str(path), "config": codec.config.to_dict()}


def open_oobleck(reference: dict[str, Any], base: Path) -> OobleckCodec:
    """An "oobleck" codec reference -> the codec, from codec.safetensors or from a stable-audio-tools directory."""
    where = _codec_path(reference, base)
    if (where / CODEC_WEIGHTS).is_file():
        try:
            config = from_fields(OobleckConfig, reference.get("config"), OOBLECK_LIMITS)
            with torch.device("meta"):  # shapes only: counted here, filled from the file
                codec = OobleckCodec(config)
            check_parameters(sum(t.numel() for t in codec.state_dict().values()), "the codec")
            tensors = load_tensors(where / CODEC_WEIGHTS)[0]
        except ValueError as e:  # TensorFileError is a ValueError
            raise CheckpointError(f"codec of {base}: {e}") from e
        assign_checked(codec, tensors, where / CODEC_WEIGHTS)
        return codec.eval()
    if is_stable_audio_directory(where):
        return read_sao(where).codec
    raise CheckpointNotFound(f"codec of {base}: neither {where / CODEC_WEIGHTS} nor {where / SAO_CONFIG} exists")


def _codec_path(reference: Any, base: Path) -> Path:
    """The directory an "oobleck" codec reference names ("path", relative to the checkpoint directory `base`)."""
    path = reference.get("path", ".") if isinstance(reference, dict) else None
    if not isinstance(path, str) or not path or "\0" in path:
        raise CheckpointError(f"{base / CONFIG_FILE}: codec.path must be a directory name, got {path!r:.60}")
    where = Path(path)
    return where if where.is_absolute() else base / where


def _sao_section(doc: dict[str, Any], file: Path) -> dict[str, Any]:
    """The "sao" object of one of our SAO checkpoints: {"text": {...}, "t5_path": str, "seconds_total": number}, all optional."""
    sao = doc.get("sao", {})
    if not isinstance(sao, dict):
        raise CheckpointError(f"{file}: sao must be an object, got {sao!r:.60}")
    if sao.get("t5_path") is not None and not (isinstance(sao["t5_path"], str) and sao["t5_path"]):
        raise CheckpointError(f"{file}: sao.t5_path must be a directory name, got {sao['t5_path']!r:.60}")
    seconds = sao.get("seconds_total")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 1e6):
        raise CheckpointError(f"{file}: sao.seconds_total must be a number of seconds from 0 to 1e6, got {seconds!r:.60}")
    return sao


def load_converted(path: str | Path, *, t5: str | Path | None = None, seconds_total: float | None = None) -> LMDM:
    directory = resolve(path)
    doc = read_config(directory)
    config = model_config(doc, directory)
    try:
        check_parameters(meta_numel(lambda: DiT(config)), "the DiT")
    except ValueError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
    sao = _sao_section(doc, directory / CONFIG_FILE)
    reference = doc.get("codec", {})
    source = _codec_path(reference, directory)  # an SAO directory for training runs started from one
    if "text" in sao:
        spec = TextSpec.from_dict(sao["text"], str(directory / CONFIG_FILE))
    else:
        spec = read_model_config(source).text if is_stable_audio_directory(source) else TextSpec()
    text = text_encoder(config, spec, [directory, source], t5 or sao.get("t5_path"),
                        seconds_total if seconds_total is not None else sao.get("seconds_total"))
    tensors = read_tensors(directory / MODEL_FILE)
    other = sorted(k for k in tensors if not k.startswith(("dit.", "text.")))
    if other:
        raise CheckpointError(f"{directory / MODEL_FILE} does not match its config: unexpected {', '.join(other[:8])}")
    assign_checked(text, {k[5:]: v for k, v in tensors.items() if k.startswith("text.")}, directory / MODEL_FILE)
    dit = build_dit(config, {k[4:]: v for k, v in tensors.items() if k.startswith("dit.")}, directory / MODEL_FILE)
    codec = open_oobleck(reference, directory)
    try:
        return LMDM(config, dit, text, codec, name=str(doc.get("name") or directory.name)).eval()
    except ValueError as e:
        raise CheckpointError(f"{directory}: {e}") from e
