"""Recipes: a training run's settings as a TOML file, overridable from the command line.

    stage = "base"              # base | lmdm | arc (must match the command: lmdm train base / lmdm / arc)
    [model]  preset = "small"   # small | tiny, then any ModelConfig field, e.g. depth = 6
    [data]   latents = "runs/latents"
    [train]  steps = 20000 ...
    [log]    every = 50 ...
    [arc]    rollout_blocks = 4 ...   (stage "arc" only: ARC-Forcing, docs/arc_forcing.md)

`--set train.lr=1e-4` replaces one setting (the value is read as TOML, so `true`, `1e-4`,
`"text"` and bare words all work). Unknown settings are errors, never silently ignored.
Every setting, its default and its meaning is listed in the classes below and in docs/training.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Sequence

import attrs

STAGES = ("base", "lmdm", "arc")
TRAINED_REGIMES = ("block_causal", "encdec")
TIMESTEPS = ("uniform", "logit_normal")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16")
SPLITS = ("train", "valid", "test", "all")


def _one_of(choices: tuple[str, ...]):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


def _probability(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value}")


def _at_least(low: float):
    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if value < low:
            raise ValueError(f"{attribute.name} must be >= {low:g}, got {value}")

    return check


@attrs.frozen
class DataSettings:
    latents: str = "runs/latents"  # directory written by `lmdm train encode`
    split: str = attrs.field(default="train", validator=_one_of(SPLITS))  # corpus split to train on
    frames: int = attrs.field(default=0, validator=_at_least(0))  # base: window length (0 = context + block); lmdm: ignored (always C + B)


@attrs.frozen
class TrainSettings:
    out: str = "runs/base"  # run directory: checkpoints step-NNNNNNN/, log.jsonl, samples/
    steps: int = attrs.field(default=20000, validator=_at_least(1))  # length of the LR schedule
    stop_at: int = attrs.field(default=0, validator=_at_least(0))  # stop (with a checkpoint) after this step; 0 = at `steps`
    max_minutes: float = attrs.field(default=0.0, validator=_at_least(0))  # stop (with a checkpoint) after this wall time; 0 = none
    batch_size: int = attrs.field(default=16, validator=_at_least(1))  # per process
    lr: float = attrs.field(default=3e-4, validator=_at_least(0))
    schedule: str = attrs.field(default="cosine", validator=_one_of(SCHEDULES))  # after the linear warm-up
    warmup_steps: int = attrs.field(default=500, validator=_at_least(0))
    min_lr_ratio: float = attrs.field(default=0.1, validator=_probability)  # cosine ends at lr * this
    beta1: float = attrs.field(default=0.9, validator=_probability)
    beta2: float = attrs.field(default=0.999, validator=_probability)
    weight_decay: float = attrs.field(default=0.0, validator=_at_least(0))  # AdamW, on the DiT's weight matrices only
    grad_clip: float = attrs.field(default=1.0, validator=_at_least(0))  # max global grad norm; 0 = off
    seed: int = attrs.field(default=0, validator=_at_least(0))
    timesteps: str = attrs.field(default="uniform", validator=_one_of(TIMESTEPS))
    logit_mean: float = 0.0  # logit_normal: t = sigmoid(N(logit_mean, logit_std))
    logit_std: float = attrs.field(default=1.0, validator=_at_least(0))
    time_shift: float = 0.0  # t <- sigmoid(logit(t) + time_shift); > 0 trains more on high noise
    text_dropout: float = attrs.field(default=0.1, validator=_probability)  # prompt -> null prompt (CFG)
    init: str = ""  # checkpoint (or run directory) to start from, e.g. the base for lmdm; "" = random init
    regime: str = attrs.field(default="block_causal", validator=_one_of(TRAINED_REGIMES))  # lmdm only
    context_drop_full: float = attrs.field(default=0.2, validator=_probability)  # whole context latent zeroed, mask kept
    context_drop_partial: float = attrs.field(default=0.3, validator=_probability)  # oldest k blocks zeroed, k ~ U{1..K}
    context_dropout: float = attrs.field(default=0.1, validator=_probability)  # CFG on the context input: mask and latent zeroed
    sketch_dropout: float = attrs.field(default=0.5, validator=_probability)  # each sketch control dropped (models with sketch inputs)
    clock_dropout: float = attrs.field(default=0.25, validator=_probability)  # models with a "clock" input: windows without it
    beat_sketch: float = attrs.field(default=0.0, validator=_probability)  # sketch models: share of windows whose rhythm sketch is the beat grid
    short_captions: float = attrs.field(default=0.0, validator=_probability)  # share of windows prompted by a short caption ("house at 120 bpm")
    jam_prob: float = attrs.field(default=0.0, validator=_probability)  # models with an "accomp" input: share of jamming windows
    accomp_drop_partial: float = attrs.field(default=0.2, validator=_probability)  # jamming: accompaniment older than a random frame zeroed
    jam_context_drop: float = attrs.field(default=0.0, validator=_probability)  # jamming windows (lmdm): whole context latent zeroed, so only the player tells the beat
    device: str = "cpu"  # cpu | cuda | cuda:1 ... (under torchrun each rank takes cuda:LOCAL_RANK)
    precision: str = attrs.field(default="fp32", validator=_one_of(PRECISIONS))  # bf16 = autocast, weights stay fp32
    threads: int = attrs.field(default=0, validator=_at_least(0))  # torch CPU threads per process; 0 = torch's choice

    def __attrs_post_init__(self) -> None:
        if self.context_drop_full + self.context_drop_partial > 1.0:
            raise ValueError("context_drop_full + context_drop_partial must be <= 1")


@attrs.frozen
class LogSettings:
    every: int = attrs.field(default=50, validator=_at_least(1))  # a log line (log.jsonl; stderr when not a TTY)
    save_every: int = attrs.field(default=500, validator=_at_least(1))  # a checkpoint; also at the end
    keep: int = attrs.field(default=3, validator=_at_least(1))  # checkpoints kept (older ones are deleted)
    sample_every: int = attrs.field(default=0, validator=_at_least(0))  # render a preview to samples/; 0 = never
    sample_prompt: str = "deep house groove with warm electric piano chords, 122 BPM"
    sample_seconds: float = attrs.field(default=6.0, validator=_at_least(0))
    sample_steps: int = attrs.field(default=8, validator=_at_least(1))


@attrs.frozen
class ArcSettings:
    """ARC-Forcing post-training (stage "arc", lmdm.train.arc_forcing, docs/arc_forcing.md)."""

    disc_init: str = ""  # discriminator weights (a bidirectional base checkpoint or run); "" = the base train.init was fine-tuned from
    disc_layer: int = attrs.field(default=0, validator=_at_least(0))  # discriminator features after this many layers; 0 = 3/4 of its depth
    disc_lr: float = attrs.field(default=0.0, validator=_at_least(0))  # discriminator learning rate; 0 = train.lr
    head_channels: int = attrs.field(default=128, validator=_at_least(1))  # ConvNeXt-1D score head width (x1, x2, x4 over its stages)
    rollout_blocks: int = attrs.field(default=4, validator=_at_least(1))  # blocks per self-rollout (the paper: 12 block-causal, 4 enc-dec)
    steps: int = attrs.field(default=4, validator=_at_least(2))  # sampler steps S of the rollout (and of the ARC model at inference)
    sampler: str = attrs.field(default="pingpong", validator=_one_of(("pingpong", "euler")))
    exit_final: bool = False  # exit steps drawn from 1..S (True) or 1..S-1 (False, as the reference)
    gan_logsnr_min: float = -6.0  # t_gan = sigmoid(-U(min, max)): log-SNR uniform, as the reference
    gan_logsnr_max: float = 2.0
    contrastive: float = attrs.field(default=2.0, validator=_at_least(0))  # weight of the mismatched-prompt term of the D loss
    context_shift: bool = True  # context dropout prepends zeros and shifts the sequence right (the real continuation moves with it)
    switch_prob: float = attrs.field(default=0.25, validator=_probability)  # share of steps whose rollouts switch prompt mid-rollout
    switch_grace: int = attrs.field(default=1, validator=_at_least(0))  # blocks after a switch the discriminator does not judge
    sketches: bool = False  # rollouts carry the real sequence's sketch, each control kept with p = 1 - train.sketch_dropout
    jam_prob: float = attrs.field(default=0.0, validator=_probability)  # share of jamming steps: accompany a player's stem, D hears the player

    def __attrs_post_init__(self) -> None:
        if self.gan_logsnr_min >= self.gan_logsnr_max:
            raise ValueError("gan_logsnr_min must be < gan_logsnr_max")


@attrs.frozen
class Recipe:
    stage: str = attrs.field(validator=_one_of(STAGES))
    model: dict[str, Any] = attrs.field(factory=dict)  # preset + ModelConfig overrides
    data: DataSettings = DataSettings()
    train: TrainSettings = TrainSettings()
    log: LogSettings = LogSettings()
    description: str = ""
    arc: ArcSettings = ArcSettings()

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        if self.stage != "arc":
            del d["arc"]
        return d


SECTIONS = {"data": DataSettings, "train": TrainSettings, "log": LogSettings, "arc": ArcSettings}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _section(cls: type, name: str, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"[{name}] must be a table")
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown setting {name}.{unknown[0]} (known in [{name}]: {', '.join(fields)})")
    converted = {}
    for key, value in values.items():
        kind = _TYPES[fields[key].type]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{name}.{key} must be {fields[key].type}, got {value!r}")
        converted[key] = value
    try:
        return cls(**converted)
    except ValueError as e:
        raise ValueError(f"[{name}] {e}") from None


def parse_value(text: str) -> Any:
    """'1e-4' -> 1e-4, 'true' -> True, '"a b"' -> 'a b', 'cuda' -> 'cuda' (bare words are strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(doc: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """["train.lr=1e-4", "model.depth=4", "stage=lmdm"] applied to a parsed TOML document (a copy)."""
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        path = key.strip().split(".")
        if len(path) == 1:
            doc[path[0]] = parse_value(value.strip())
        elif len(path) == 2:
            doc.setdefault(path[0], {})[path[1]] = parse_value(value.strip())
        else:
            raise ValueError(f"--set key {key!r} has too many dots (section.key)")
    return doc


def build_recipe(doc: dict[str, Any]) -> Recipe:
    known = {"stage", "model", "description", *SECTIONS}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"unknown recipe entry {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if "stage" not in doc:
        raise ValueError('a recipe needs stage = "base", "lmdm" or "arc"')
    if "arc" in doc and doc["stage"] != "arc":
        raise ValueError('[arc] settings are for stage = "arc" only')
    model = doc.get("model", {})
    if not isinstance(model, dict):
        raise ValueError("[model] must be a table")
    sections = {name: _section(cls, name, doc.get(name, {})) for name, cls in SECTIONS.items()}
    try:
        return Recipe(stage=doc["stage"], model=dict(model), description=str(doc.get("description", "")), **sections)
    except ValueError as e:
        raise ValueError(f"recipe: {e}") from None


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file and apply `--set` overrides. ValueError with the file name on any problem."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read recipe {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"recipe {path} is not valid TOML: {e}") from None
    try:
        return build_recipe(apply_overrides(doc, overrides))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
