"""The player's input: audio on the stream's timeline, its latents, and what the model has heard.

Sample 0 of the input is sample 0 of block 0 (the session's block count, which `reset()` does not
restart). The audio is encoded incrementally by the codec's stream encoder, so latent frame k
holds input samples [k hop, (k + 1) hop).

The latency cutoff: when block n is generated, the model may use input frames < n B - L B
(L = `latency_blocks`, 1 by default): frames it has really heard, at least one block old, as in
training (lmdm.train.objective.draw: the accomp is present on window frames before C - B or
C - 2B, never on the last context block or the target).
"""

from __future__ import annotations

import numpy as np
import torch

from lmdm.audio.resample import Resampler
from lmdm.codec.base import Codec
from lmdm.conditioning.beat import HISTORY_S as BEAT_HISTORY_S
from lmdm.conditioning.beat import player_beat, project_onsets
from lmdm.conditioning.key import key_melody, player_notes

LATENCY_BLOCKS = 1


class Timeline:
    """Rows [n, width] at absolute positions; rows never written read as zeros. Old rows can be dropped."""

    def __init__(self, width: int):
        self.width = width
        self.start = 0  # absolute position of data[0]
        self.data = np.zeros((0, width), dtype=np.float32)

    @property
    def end(self) -> int:
        """One past the last row written."""
        return self.start + len(self.data)

    def append(self, rows: np.ndarray) -> None:
        self.data = np.concatenate((self.data, np.asarray(rows, dtype=np.float32).reshape(-1, self.width)))

    def write(self, at: int, rows: np.ndarray) -> None:
        """Rows at absolute position `at` (>= start): extends with zeros as needed, overwrites."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, self.width)
        stop = at + len(rows)
        if stop > self.end:
            self.data = np.concatenate((self.data, np.zeros((stop - self.end, self.width), dtype=np.float32)))
        lo = max(at, self.start)
        self.data[lo - self.start : stop - self.start] = rows[lo - at :]

    def read(self, at: int, n: int) -> np.ndarray:
        out = np.zeros((n, self.width), dtype=np.float32)
        lo, hi = max(at, self.start), min(at + n, self.end)
        if hi > lo:
            out[lo - at : hi - at] = self.data[lo - self.start : hi - self.start]
        return out

    def truncate(self, position: int) -> None:
        """Forget rows at `position` and after: they read as zeros again (never written)."""
        if position < self.end:
            self.data = self.data[: max(0, position - self.start)].copy()

    def drop_before(self, position: int) -> None:
        if position > self.start:
            cut = min(position, self.end) - self.start
            self.data = self.data[cut:]
            self.start += cut


def heard_mask(first_frame: int, n: int, block: int, block_frames: int, encoded: int, latency_blocks: int = LATENCY_BLOCKS) -> np.ndarray:
    """[n] 1.0 where input frame first_frame + i has been heard by the time `block` is generated:
    0 <= frame < min(encoded, block * B - latency_blocks * B)."""
    frames = first_frame + np.arange(n)
    cutoff = min(encoded, block * block_frames - latency_blocks * block_frames)
    return ((frames >= 0) & (frames < cutoff)).astype(np.float32)


def as_frames(audio: np.ndarray, channels: int) -> np.ndarray:
    """float32 [n] or [n, c] -> [n, channels] (mono is copied to every channel; other counts are
    averaged to mono first); NaN and Inf become 0."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"input audio must be [n] or [n, channels], got shape {list(a.shape)}")
    if a.shape[1] != channels:
        a = a.mean(axis=1, keepdims=True)
        a = np.repeat(a, channels, axis=1)
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


class PlayerInput:
    """What the session keeps of a live player: audio and latents on the stream timeline."""

    def __init__(self, codec: Codec, sample_rate: int, channels: int, block_frames: int, *, encode: bool = True,
                 frame_rate: float | None = None):
        self.codec = codec
        self.encode = encode  # False: keep the audio only (no model input needs the latents)
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_frames = block_frames
        self.hop = codec.hop
        self.frame_rate = sample_rate / codec.hop if frame_rate is None else frame_rate  # the model's latent frames/s
        self.encoder = codec.stream_encoder()
        self.audio = Timeline(channels)
        self.latents = Timeline(codec.latent_dim)  # [frames, D]
        self._resampler: Resampler | None = None

    @property
    def samples(self) -> int:
        """Input samples received so far (at the model's rate)."""
        return self.audio.end

    @property
    def encoded(self) -> int:
        """Latent frames encoded so far."""
        return self.latents.end

    def push(self, audio: np.ndarray, sample_rate: int | None = None) -> None:
        """Append audio [n, channels] (any rate: resampled to the model's) and encode what completes frames."""
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if self._resampler is not None and self._resampler.src_rate != rate:  # the rate changed: finish the old one
            self._take(self._resampler.flush())
            self._resampler = None
        if rate != self.sample_rate:
            if self._resampler is None:
                self._resampler = Resampler(rate, self.sample_rate, self.channels)
            audio = self._resampler.process(audio)
        self._take(audio)

    def _take(self, audio: np.ndarray) -> None:
        if len(audio) == 0:
            return
        self.audio.append(audio)
        if not self.encode:
            return
        with torch.no_grad():
            z = self.encoder.push(torch.from_numpy(np.ascontiguousarray(audio.T))[None])  # [1, D, k]
        if z.shape[2]:
            self.latents.append(z[0].T.numpy())

    def accomp(self, block: int, n: int, latency_blocks: int = LATENCY_BLOCKS) -> torch.Tensor:
        """The accomp channels [1, 1 + D, n] ([heard mask, stem latents]) of the n frames before block `block`."""
        first = block * self.block_frames - n
        mask = heard_mask(first, n, block, self.block_frames, self.encoded, latency_blocks)
        z = self.latents.read(first, n) * mask[:, None]  # [n, D]
        return torch.from_numpy(np.concatenate((mask[:, None], z), axis=1).T.copy())[None]

    def followed(self, block: int, *, melody: bool, latency_blocks: int = LATENCY_BLOCKS) -> dict[str, np.ndarray]:
        """Jamming by sketch: the sketches [B] of `block` predicted from the input heard up to the
        latency cutoff: {"rhythm": the player's beat (lmdm/conditioning/beat.py)} and, with `melody`
        while the player is pitched, "melody" (MIDI, the notes it plays most, one per beat:
        lmdm/conditioning/key.py); {} before anything is heard or while no beat is found."""
        B = self.block_frames
        cutoff = (block - latency_blocks) * B * self.hop  # heard: input samples before this
        start = max(self.audio.start, cutoff - round(BEAT_HISTORY_S * self.sample_rate))
        if cutoff <= start or self.samples < cutoff:  # nothing heard yet, or not up to the cutoff
            return {}
        heard = self.audio.read(start, cutoff - start).mean(axis=1)
        beat = player_beat(heard, self.sample_rate, heard_start=start)
        if beat is None:
            return {}
        start_s = block * B / self.frame_rate
        out = {"rhythm": project_onsets(beat.onsets_s, beat.period_s, start_s, B, self.frame_rate)}
        notes = player_notes(heard, self.sample_rate) if melody else ()
        if len(notes):
            out["melody"] = key_melody(notes, beat, start_s, B, self.frame_rate)
        return out

    def forget_before(self, sample: int) -> None:
        """Drop audio before `sample` and latents before its frame (memory stays bounded)."""
        self.audio.drop_before(sample)
        self.latents.drop_before(sample // self.hop)
