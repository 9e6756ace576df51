"""ModelConfig: every number that fixes the shape of an LMDM, as one frozen value."""

from __future__ import annotations

import json
from typing import Any

import attrs

from lmdm.config_fields import from_fields, within

MAX_BLOCK_CHOICES = 8  # other block lengths one model may serve
MAX_WINDOW_FRAMES = 8192  # context + target frames the model attends over (its masks are this squared)
MAX_ADD_INPUTS = 16


def _add_inputs(instance: "ModelConfig", attribute: attrs.Attribute, value: tuple[tuple[str, int], ...]) -> None:
    names = [n for n, _ in value]
    if len(value) > MAX_ADD_INPUTS or any(not n or n == "context" for n in names) or len(set(names)) != len(names):
        raise ValueError(f"ModelConfig.extra_add_inputs must be at most {MAX_ADD_INPUTS} distinct names other than 'context', got {names}")
    for name, dim in value:
        if not 1 <= dim <= 4096:
            raise ValueError(f"ModelConfig.extra_add_inputs: {name!r} must have 1 to 4096 channels, got {dim}")


def _block_choices(instance: "ModelConfig", attribute: attrs.Attribute, value: tuple[tuple[int, int], ...]) -> None:
    blocks = [b for b, _ in value]
    if len(value) > MAX_BLOCK_CHOICES or instance.block_frames in blocks or len(set(blocks)) != len(blocks):
        raise ValueError(f"ModelConfig.block_choices must be at most {MAX_BLOCK_CHOICES} distinct block lengths other than "
                         f"block_frames ({instance.block_frames}), got {blocks}")
    for b, k in value:
        if not (1 <= b <= MAX_WINDOW_FRAMES and 1 <= k <= 1024 and (k + 1) * b <= MAX_WINDOW_FRAMES):
            raise ValueError(f"ModelConfig.block_choices: ({b}, {k}) must be 1 to {MAX_WINDOW_FRAMES} frames per block and 1 to 1024 "
                             f"context blocks, at most {MAX_WINDOW_FRAMES} frames in all")


@attrs.frozen
class ModelConfig:
    """Shape of the diffusion transformer and of the stream it was trained for.

    Time is counted in latent *frames* (``frame_rate`` per second). A stream is made of *blocks*
    of ``block_frames`` frames; the model sees ``context_blocks`` clean blocks of context before
    the block it denoises. In the block-causal regime a block is also an attention *chunk* and
    each chunk attends to itself and the ``context_blocks`` chunks before it.

    Every field has a range (wide: far past any model that plays in real time), so a config read
    off disk cannot ask for a 2^20-wide layer (loaders then size the whole model on torch's meta
    device before allocating it: `lmdm.config_fields.meta_numel`).
    """

    # audio <-> latent space (fixed by the codec)
    latent_dim: int = attrs.field(default=32, validator=within(1, 4096))
    frame_rate: float = attrs.field(default=25.0, validator=within(0.1, 384_000))
    sample_rate: int = attrs.field(default=16000, validator=within(100, 384_000))
    channels: int = attrs.field(default=1, validator=within(1, 16))

    # transformer
    width: int = attrs.field(default=384, validator=within(1, 16384))
    depth: int = attrs.field(default=8, validator=within(1, 256))
    heads: int = attrs.field(default=6, validator=within(1, 1024))
    rotary_dims: int = attrs.field(default=32, validator=within(1, 16384))  # per head; the rest is unrotated
    rope_base: float = attrs.field(default=10000.0, validator=within(1.0001, 1e12))
    mlp_ratio: int = attrs.field(default=4, validator=within(1, 64))  # SwiGLU hidden = mlp_ratio * width
    timestep_features: int = attrs.field(default=256, validator=within(1, 16384))  # Fourier features of t

    # conditioning
    cond_dim: int = attrs.field(default=256, validator=within(1, 16384))  # text token width
    cond_tokens: int = attrs.field(default=16, validator=within(1, 4096))  # max text tokens
    # per-frame additive inputs, in the order they are concatenated into `to_input_add`.
    # "context" is always first: [context_mask (1), clean_latent (latent_dim)].
    extra_add_inputs: tuple[tuple[str, int], ...] = attrs.field(
        default=(), converter=lambda v: tuple((str(n), int(d)) for n, d in v), validator=_add_inputs
    )

    # stream geometry
    block_frames: int = attrs.field(default=50, validator=within(1, MAX_WINDOW_FRAMES))
    context_blocks: int = attrs.field(default=4, validator=within(1, 1024))
    # other (block_frames, context_blocks) the model was trained on as well: a session may play any of
    # them (`reblocked`); training draws each step's geometry from all of them (lmdm.train.loop)
    block_choices: tuple[tuple[int, int], ...] = attrs.field(
        default=(), converter=lambda v: tuple((int(b), int(k)) for b, k in v), validator=_block_choices
    )

    def __attrs_post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.rotary_dims % 2 or self.rotary_dims > self.head_dim:
            raise ValueError(f"rotary_dims must be even and <= head_dim {self.head_dim}, got {self.rotary_dims}")
        if self.timestep_features % 2:
            raise ValueError("timestep_features must be even")
        hop = self.sample_rate / self.frame_rate
        if abs(hop - round(hop)) > 1e-9 or round(hop) < 1:
            raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {hop}")
        if self.window_frames > MAX_WINDOW_FRAMES:
            raise ValueError(f"(context_blocks + 1) * block_frames must be at most {MAX_WINDOW_FRAMES} frames, got {self.window_frames}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def hop(self) -> int:
        """Audio samples per latent frame."""
        return round(self.sample_rate / self.frame_rate)

    @property
    def context_frames(self) -> int:
        return self.block_frames * self.context_blocks

    @property
    def window_frames(self) -> int:
        """Frames the model sees at once in training: context plus one target block."""
        return self.context_frames + self.block_frames

    @property
    def block_seconds(self) -> float:
        return self.block_frames / self.frame_rate

    @property
    def geometries(self) -> tuple[tuple[int, int], ...]:
        """Every (block_frames, context_blocks) this model was trained on, its own first."""
        return ((self.block_frames, self.context_blocks),) + self.block_choices

    def reblocked(self, block_frames: int) -> "ModelConfig":
        """This config playing blocks of `block_frames` (one of its `geometries`), with the context
        blocks trained for that length; the others (this one among them) stay choices."""
        pairs = dict(self.geometries)
        if isinstance(block_frames, bool) or not isinstance(block_frames, int) or block_frames not in pairs:
            shown = " or ".join(f"{b} frames ({b / self.frame_rate:.2f} s)" for b in sorted(pairs))
            raise ValueError(f"this model plays blocks of {shown}, not {block_frames!r}")
        rest = tuple((b, k) for b, k in self.geometries if b != block_frames)
        return attrs.evolve(self, block_frames=block_frames, context_blocks=pairs[block_frames], block_choices=rest)

    @property
    def add_inputs(self) -> tuple[tuple[str, int], ...]:
        return (("context", 1 + self.latent_dim),) + self.extra_add_inputs

    @property
    def add_dim(self) -> int:
        return sum(d for _, d in self.add_inputs)

    def add_slice(self, name: str) -> slice | None:
        """Where the additive input `name` sits in the add channels (None if this model has none)."""
        start = 0
        for n, d in self.add_inputs:
            if n == name:
                return slice(start, start + d)
            start += d
        return None

    # presets --------------------------------------------------------------------------------
    @classmethod
    def tiny(cls, **overrides: Any) -> "ModelConfig":
        """A few layers, a few channels: runs in milliseconds. For tests and docs."""
        base: dict[str, Any] = dict(
            latent_dim=8, width=64, depth=2, heads=4, rotary_dims=8, timestep_features=32,
            cond_dim=32, cond_tokens=8, block_frames=8, context_blocks=3,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def small(cls, **overrides: Any) -> "ModelConfig":
        """The default size: ~24M parameters, 2 s blocks, 8 s of context."""
        return cls(**overrides)

    # serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["extra_add_inputs"] = [list(p) for p in self.extra_add_inputs]
        d["block_choices"] = [list(p) for p in self.block_choices]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return from_fields(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
