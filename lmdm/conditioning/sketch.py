"""Sketches: time-aligned controls (melody, rhythm, loudness) as per-frame additive inputs.

A model trained with sketches has `extra_add_inputs = SKETCH_INPUTS` in its config: after the
context channels `[context_mask, clean_latent]`, every frame of the additive input carries

    melody    13 = 12 pitch classes (one-hot of the lead's note, C = 0; all zero where the lead rests) + present
    rhythm     2 = onset strength in the frame (0..1) + present
    loudness   2 = loudness, (dBFS + 60) / 60 clipped to 0..1 + present

A control that is not given is all zeros, `present` included, which is exactly what training
shows the model when it drops that control (each is dropped at random, so any subset works).
The sketch sits on target frames only; context frames carry none (their K/V are cached).
"""

from __future__ import annotations

import torch

SKETCH_INPUTS: tuple[tuple[str, int], ...] = (("melody", 13), ("rhythm", 2), ("loudness", 2))
SKETCH_NAMES: tuple[str, ...] = tuple(name for name, _ in SKETCH_INPUTS)
SKETCH_DIM = sum(d for _, d in SKETCH_INPUTS)
LOUDNESS_FLOOR_DB = -60.0


def loudness_feature(db: torch.Tensor) -> torch.Tensor:
    """dBFS [...] -> 0..1: -60 dB (or less) is 0, 0 dB is 1."""
    return ((db - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB).clamp(0.0, 1.0)


def melody_feature(midi: torch.Tensor) -> torch.Tensor:
    """MIDI pitch [b, F] (0 = rest) -> pitch-class one-hot [b, 12, F] (zeros on rests)."""
    pc = torch.remainder(torch.round(midi).long(), 12)
    onehot = torch.nn.functional.one_hot(pc, 12).to(torch.float32).transpose(1, 2)  # [b, 12, F]
    return onehot * (midi > 0).to(torch.float32)[:, None, :]


def sketch_features(
    melody: torch.Tensor,  # [b, F] MIDI pitch, 0 = rest
    onsets: torch.Tensor,  # [b, F] 0..1
    loudness_db: torch.Tensor,  # [b, F] dBFS
    present: torch.Tensor,  # [b, 3] 0/1 per control, in SKETCH_NAMES order
) -> torch.Tensor:
    """The sketch channels [b, SKETCH_DIM, F]; a control with present = 0 is all zeros."""
    b, n = melody.shape
    ones = torch.ones(b, 1, n, device=melody.device)
    present = present.to(melody.device)  # the draws live on the CPU; training may run elsewhere
    parts = (
        torch.cat((melody_feature(melody), ones), dim=1),
        torch.cat((onsets.to(torch.float32).clamp(0, 1)[:, None], ones), dim=1),
        torch.cat((loudness_feature(loudness_db.to(torch.float32))[:, None], ones), dim=1),
    )
    return torch.cat([p * present[:, i, None, None] for i, p in enumerate(parts)], dim=1)


def has_sketch(extra_add_inputs: tuple[tuple[str, int], ...]) -> bool:
    """Whether a model config's extra additive inputs start with the sketch channels."""
    return tuple(extra_add_inputs[: len(SKETCH_INPUTS)]) == SKETCH_INPUTS
