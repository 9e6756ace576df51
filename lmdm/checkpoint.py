"""Our checkpoint format: writing and reading a model directory (lmdm.loading.load_model opens it).

A checkpoint is a directory:

    config.json              {"format": "lmdm-checkpoint", "format_version": 1, "model": ModelConfig.to_dict(),
                              "text": {"buckets": ...}, "codec": <codec reference>, "stage", "regime",
                              "step", "recipe", "name"}
    model.safetensors        the DiT's state dict under "dit.", the text encoder's under "text."
    train_state.safetensors  (training checkpoints only) optimizer moments, step, RNG states
    codec.json + codec.safetensors   (exported, self-contained models only) the codec, see below

A *codec reference* says which codec turns the model's latents into audio:

    {"kind": "placeholder", "sample_rate": 16000, "hop": 640, "latent_dim": 32, "channels": 1}
    {"kind": "ConvCodec", "path": "/abs/dir" or "." (relative to the checkpoint), "config": {...},
     "fingerprint": "<16 hex digits>"}   (optional: the SHA-256 of codec.safetensors, checked on load)

The string "placeholder" is accepted too (a PlaceholderCodec fitted to the model's config).
Everything is safetensors + JSON: no file is ever unpickled, and pickle files are refused.

A checkpoint is outside input. Every field of config.json is checked for its type and range when
it is read (`read_config`, `model_config`, `text_buckets`, and `lmdm.loading.open_codec`), the model's size is
counted from the config before anything is allocated (`check_size`), and weights must be finite:
anything else is a `CheckpointError` with a one-line message naming the file and the field.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmdm.codec.base import Codec
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.config_fields import check_parameters, meta_numel
from lmdm.tensorfile import TensorFileError, load_tensors, save_tensors
from lmdm.conditioning.text import BUCKETS, MAX_BUCKETS, HashedTextEncoder
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM

FORMAT = "lmdm-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.safetensors"
STEP_PREFIX = "step-"  # training runs keep their checkpoints in <run>/step-0001234/
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, refused or does not fit its config. The message is one line."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    pass


# ----------------------------------------------------------------------------------------------
# Codec references


def codec_reference(codec: Codec, path: str | Path | None = None, fingerprint: str | None = None) -> dict[str, Any]:
    """The JSON reference of a codec: placeholder settings, or a ConvCodec's directory and config.

    `fingerprint` (lmdm.codec.checkpoint.weights_fingerprint of the directory) is checked by
    `open_codec`, so a codec directory overwritten since cannot silently stand in for this one.
    """
    if isinstance(codec, PlaceholderCodec):
        return {"kind": "placeholder", "sample_rate": codec.sample_rate, "hop": codec.hop,
                "latent_dim": codec.latent_dim, "channels": codec.channels}
    config = getattr(codec, "config", None)
    if path is None or config is None:
        raise CheckpointError(f"cannot reference codec {type(codec).__name__}: give the directory it was loaded from")
    reference = {"kind": type(codec).__name__, "path": str(path), "config": config.to_dict()}
    if fingerprint is not None:
        reference["fingerprint"] = fingerprint
    return reference


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters for a one-line error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Weights


def model_tensors(dit: DiT, text: nn.Module) -> dict[str, torch.Tensor]:
    """One flat state dict: the DiT's entries under "dit.", the text encoder's under "text."."""
    tensors = {f"dit.{k}": v.detach().float().cpu() for k, v in dit.state_dict().items()}
    tensors.update({f"text.{k}": v.detach().float().cpu() for k, v in text.state_dict().items()})
    return tensors


def half_precision(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight matrices and conv kernels (2-D and up) as float16 for a smaller file; vectors (norms,
    biases, statistics) stay float32. Loading converts back to float32."""
    return {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in tensors.items()}


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_weights(dit: DiT, text: nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load model.safetensors' tensors; every missing, unexpected or misshapen name is reported."""
    expected = model_tensors(dit, text)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k} {tuple(tensors[k].shape)} (config wants {tuple(v.shape)})" for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        problems = ([f"missing {_names(missing)}"] if missing else []) + ([f"unexpected {_names(unexpected)}"] if unexpected else [])
        problems += [f"wrong shape {_names(wrong, 3)}"] if wrong else []
        raise CheckpointError(f"{source} does not match its config: " + "; ".join(problems))
    check_finite(tensors, source)
    dit.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("dit.")})
    text.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("text.")})


def check_finite(tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights holding NaN or Inf (a corrupt or diverged file): they would only ever play silence or noise."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and v.device.type != "meta" and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"corrupt checkpoint file: {source} holds NaN or Inf in {_names(sorted(bad), 3)}")


def is_pickle(path: Path) -> bool:
    """True for pickle (and torch.save zip) files, judged by their first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if head[:4] == b"PK\x03\x04":  # torch.save's zip container holds a pickle
        return True
    # pickle protocol 2..5 starts with PROTO (0x80) + version; a safetensors file has '{' at byte 8
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[8:9] != b"{"


def _refuse_pickle(path: Path) -> None:
    raise CheckpointError(f"refusing to load {path}: it is a pickle file (lmdm loads only safetensors + JSON, never pickle)")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointNotFound(f"{path} is missing")
    if is_pickle(path):
        _refuse_pickle(path)
    try:
        return load_tensors(path)[0]
    except TensorFileError as e:
        raise CheckpointError(f"corrupt checkpoint file: {e}") from e


# ----------------------------------------------------------------------------------------------
# Directories


def step_dirs(run: Path) -> list[Path]:
    """Complete checkpoints <run>/step-NNNNNNN/ (half-written .tmp ones excluded), oldest first."""
    if not run.is_dir():
        return []
    found = [p for p in run.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX) and p.name[len(STEP_PREFIX):].isdigit()]
    return sorted((p for p in found if (p / CONFIG_FILE).is_file() and (p / MODEL_FILE).is_file()), key=lambda p: int(p.name[len(STEP_PREFIX):]))


def resolve(path: str | Path) -> Path:
    """A checkpoint directory, a file inside one, or a training run (-> its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFound(f"no checkpoint at {path}: it does not exist")
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES or is_pickle(path):
            _refuse_pickle(path)
        if path.name in (CONFIG_FILE, MODEL_FILE):
            return path.parent
        raise CheckpointError(f"{path} is not a checkpoint: pass its directory (with {CONFIG_FILE} and {MODEL_FILE})")
    if (path / CONFIG_FILE).exists() or (path / MODEL_FILE).exists():
        return path
    steps = step_dirs(path)
    if steps:
        return steps[-1]
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        _refuse_pickle(path / pickles[0])
    raise CheckpointNotFound(f"{path} holds no checkpoint (no {CONFIG_FILE} + {MODEL_FILE}, no {STEP_PREFIX}* directories)")


# the top-level fields of config.json: (key, types, what it must be); guidance, sampler_steps and guide_inputs have their own readers
DOCUMENT_FIELDS = (
    ("model", dict, "an object (the model config)"), ("text", dict, 'an object such as {"buckets": 8192}'),
    ("codec", (str, dict), '"placeholder" or an object (the codec reference)'), ("name", str, "a string"),
    ("stage", str, "a string"), ("regime", str, "a string"), ("step", int, "a whole number"), ("recipe", dict, "an object"),
)
OPTIONAL = ("name", "stage", "regime")  # may be null


def read_config(directory: Path) -> dict[str, Any]:
    file = directory / CONFIG_FILE
    if not file.is_file():
        raise CheckpointNotFound(f"{file} is missing")
    try:
        doc = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"corrupt checkpoint file: {file} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not an lmdm checkpoint config (\"format\" is not {FORMAT!r})")
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"{file}: format_version must be a whole number, got {short_repr(version)}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{file} has format_version {version}; this lmdm reads up to {FORMAT_VERSION}: upgrade lmdm")
    for key, types, what in DOCUMENT_FIELDS:
        if key in doc and not (isinstance(doc[key], types) and not isinstance(doc[key], bool) or doc[key] is None and key in OPTIONAL):
            raise CheckpointError(f"{file}: {key} must be {what}, got {short_repr(doc[key])}")
    if "step" in doc and doc["step"] < 0:
        raise CheckpointError(f"{file}: step must be a whole number >= 0, got {doc['step']}")
    return doc


def model_config(doc: dict[str, Any], directory: Path) -> ModelConfig:
    """The "model" object of config.json, every field's type and range checked (lmdm.config_fields)."""
    if "model" not in doc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: the model config (\"model\") is missing")
    try:
        return ModelConfig.from_dict(doc["model"])
    except ValueError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad model config: {e}") from e


def text_buckets(doc: dict[str, Any], directory: Path) -> int:
    """The hash buckets of the text encoder ("text": {"buckets": ...}; 8192 if absent)."""
    text = doc.get("text", {})
    unknown = sorted(map(str, set(text) - {"buckets"}))
    if unknown:
        raise CheckpointError(f"{directory / CONFIG_FILE}: unknown text fields: {', '.join(unknown)}")
    value = text.get("buckets", BUCKETS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUCKETS:
        raise CheckpointError(f"{directory / CONFIG_FILE}: text.buckets must be a whole number from 1 to {MAX_BUCKETS}, got {short_repr(value)}")
    return value


def check_size(config: ModelConfig, buckets: int, directory: Path) -> None:
    """Refuse a config whose DiT and text encoder would be beyond reason, before either exists."""
    try:
        check_parameters(meta_numel(lambda: (DiT(config), HashedTextEncoder(config.cond_dim, config.cond_tokens, buckets))), "the model")
    except ValueError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None


def new_modules(config: ModelConfig, buckets: int) -> tuple[DiT, HashedTextEncoder]:
    return DiT(config), HashedTextEncoder(config.cond_dim, config.cond_tokens, buckets)


def config_document(config: ModelConfig, codec: str | dict[str, Any], *, buckets: int, **info: Any) -> dict[str, Any]:
    """The content of config.json; `info` adds stage, regime, step, recipe, name, ..."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": config.to_dict(), "text": {"buckets": buckets}, "codec": codec, **info}


def write_directory(directory: Path, files: dict[str, dict[str, torch.Tensor] | dict[str, Any]], extra: dict[str, Path] | None = None) -> Path:
    """Write a checkpoint directory atomically: everything into <dir>.tmp, then one rename.

    `files`: name -> tensors (for .safetensors) or a JSON document (for .json); `extra`: files to copy in.
    A crash leaves at most a stale .tmp directory, which readers ignore and the next write replaces.
    """
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, content in files.items():
        if name.endswith(".safetensors"):
            save_tensors(tmp / name, content)
        else:
            (tmp / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    for name, source in (extra or {}).items():
        shutil.copyfile(source, tmp / name)
    if directory.exists():  # only when re-writing the same step: swap the old one out first
        old = directory.with_name(directory.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)
    _sync_dir(directory.parent)
    return directory


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(model: LMDM, directory: str | Path, codec: str | dict[str, Any] | None = None, *, half: bool = False, **info: Any) -> Path:
    """Write `model` as a self-contained checkpoint directory (no training state).

    A ConvCodec is copied into the directory (codec.json + codec.safetensors, path "."), so the
    directory alone is enough for `load_model`; a placeholder codec is stored as its settings.
    `codec` overrides the reference written to config.json. `half` stores weight matrices as
    float16 (half the size; the bundled model ships so), loaded back as float32.
    """
    from lmdm.codec.checkpoint import save_codec, weights_fingerprint

    directory = Path(directory)
    text_buckets = getattr(model.text, "buckets", 8192)
    tmp_codec: Path | None = None
    extra: dict[str, Path] = {}
    if codec is None:
        if isinstance(model.codec, PlaceholderCodec):
            codec = codec_reference(model.codec)
        else:
            tmp_codec = directory.with_name(directory.name + ".codec.tmp")
            save_codec(model.codec, tmp_codec, half=half)  # type: ignore[arg-type]
            extra = {"codec.json": tmp_codec / "codec.json", "codec.safetensors": tmp_codec / "codec.safetensors"}
            codec = codec_reference(model.codec, ".", weights_fingerprint(tmp_codec))
    info.setdefault("name", model.name)
    if model.guidance != 1.0:
        info.setdefault("guidance", model.guidance)
    if model.steps != 8:
        info.setdefault("sampler_steps", model.steps)
    if model.guide_inputs != 0.0:
        info.setdefault("guide_inputs", model.guide_inputs)
    doc = config_document(model.config, codec, buckets=text_buckets, **info)
    try:
        tensors = model_tensors(model.dit, model.text)
        return write_directory(directory, {MODEL_FILE: half_precision(tensors) if half else tensors, CONFIG_FILE: doc}, extra)
    finally:
        if tmp_codec is not None:
            shutil.rmtree(tmp_codec, ignore_errors=True)


def guidance(doc: dict[str, Any], directory: Path) -> float:
    """The model's recommended classifier-free guidance scale ("guidance" in config.json; 1 if absent)."""
    value = doc.get("guidance", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 20:
        raise CheckpointError(f"{directory / CONFIG_FILE}: guidance must be a number from 0 to 20, got {value!r}")
    return float(value)


def guide_inputs(doc: dict[str, Any], directory: Path) -> float:
    """How much of the sketch and clock the model's guidance pushes towards ("guide_inputs" in
    config.json, 0 to 1; 0 if absent: the prompt only)."""
    value = doc.get("guide_inputs", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise CheckpointError(f"{directory / CONFIG_FILE}: guide_inputs must be a number from 0 to 1, got {value!r}")
    return float(value)


def sampler_steps(doc: dict[str, Any], directory: Path) -> int:
    """The sampler steps the model is made for ("sampler_steps" in config.json, e.g. 4 after ARC-Forcing; 8 if absent)."""
    value = doc.get("sampler_steps", 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise CheckpointError(f"{directory / CONFIG_FILE}: sampler_steps must be a whole number from 1 to 1000, got {value!r}")
    return value
