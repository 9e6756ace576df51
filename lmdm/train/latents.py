"""Stage 1 of training: pre-encode a corpus into codec latents, once; then read random windows.

    lmdm train encode --corpus data/corpus --codec runs/codec --out runs/latents

A latents directory:

    latents.json         format, the corpus it came from, the codec reference (see lmdm.checkpoint),
                         latent_dim, sample_rate, hop, frame_rate, per-channel latent mean/std
    index.jsonl          one line per encoded example: id, split, caption, frames
    000000.safetensors   "latents" [D, frames] float32, and the corpus annotations aligned with
                         them: "ann.melody" [frames], "ann.chroma" [frames, 12], ... (frame f of the
                         latents is frame f of every annotation; both at the codec frame rate)

Encoding is resumable: each finished example appends its index line, and re-running the same
command skips the examples already listed. Another corpus or codec in a non-empty directory is
refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import torch

from lmdm.checkpoint import codec_reference
from lmdm.loading import open_codec
from lmdm.codec.base import Codec
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.tensorfile import load_tensors, save_tensors
from lmdm.corpus.reader import CorpusReader
from lmdm.corpus.score import STEM_NAMES
from lmdm.progress import advance, progress as progress_bar

FORMAT = "lmdm-latents"
FORMAT_VERSION = 1
META_FILE = "latents.json"
INDEX_FILE = "index.jsonl"


def resolve_codec(spec: str, sample_rate: int, hop: int, latent_dim: int = 32) -> tuple[Codec, dict[str, Any]]:
    """`--codec` value -> (codec, reference): "placeholder" (sized to the corpus), a ConvCodec directory,
    or a Stable Audio Open model directory (its Oobleck VAE, docs/sao.md)."""
    if spec == "placeholder":
        codec = PlaceholderCodec(sample_rate, hop, latent_dim, 1)
        return codec, codec_reference(codec)
    from lmdm.codec.checkpoint import load_codec, weights_fingerprint
    from lmdm.sao.load import codec_reference as oobleck_reference
    from lmdm.sao.load import is_stable_audio_directory, read_sao
    from lmdm.tensorfile import TensorFileError

    path = Path(spec).resolve()
    if not path.is_dir():
        raise ValueError(f"--codec {spec}: no such directory (give a trained codec directory, or 'placeholder')")
    if is_stable_audio_directory(path):
        codec = read_sao(path).codec
        return codec, oobleck_reference(codec, path)
    try:
        codec = load_codec(path)
        fingerprint = weights_fingerprint(path)
    except TensorFileError as e:
        raise ValueError(f"--codec {spec}: {e}") from None
    return codec, codec_reference(codec, path, fingerprint)


def check_rates(corpus_rate: int, corpus_hop: int, codec: Codec) -> None:
    if corpus_rate != codec.sample_rate or corpus_hop != codec.hop:
        raise ValueError(
            f"the corpus is {corpus_rate} Hz with {corpus_hop} samples per frame ({corpus_rate / corpus_hop:g} frames/s) but the codec is "
            f"{codec.sample_rate} Hz with {codec.hop} ({codec.sample_rate / codec.hop:g} frames/s): make the corpus with "
            f"--sample-rate {codec.sample_rate} --frame-rate {codec.sample_rate / codec.hop:g}, or use a matching codec"
        )


def read_meta(root: str | Path) -> dict[str, Any]:
    file = Path(root) / META_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{root} is not a latents directory (no {META_FILE}); make one with `lmdm train encode`")
    meta = json.loads(file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file} is not an lmdm latents file")
    return meta


def read_index(root: str | Path) -> list[dict[str, Any]]:
    file = Path(root) / INDEX_FILE
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


@attrs.frozen
class EncodeReport:
    examples: int  # in the latents directory now
    encoded: int  # by this call
    frames: int  # latent frames encoded by this call


def encode_corpus(
    corpus: str | Path,
    codec_spec: str,
    out: str | Path,
    *,
    split: str = "all",
    device: str = "cpu",
    latent_dim: int = 32,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    stems: bool | int = False,
) -> EncodeReport:
    """Encode every example of `corpus` (or one split) with the codec; resumable. See the module docstring.

    `stems`: also encode, for each stem s of STEM_NAMES, the stem alone ("stem.s": what a live
    player feeds in) and the mix of the other stems ("rest.s": the accompaniment a jamming model
    generates around it). Nine encodes per example instead of one. An int n > 1 does this for every
    n-th example only (jamming windows are then drawn from those).
    """
    stems_every = int(stems)
    reader = CorpusReader(corpus)
    codec, reference = resolve_codec(codec_spec, reader.sample_rate, reader.hop, latent_dim)
    check_rates(reader.sample_rate, reader.hop, codec)
    out = Path(out)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "corpus": str(Path(corpus).resolve()), "codec": reference,
        "latent_dim": codec.latent_dim, "sample_rate": codec.sample_rate, "hop": codec.hop,
        "frame_rate": codec.sample_rate / codec.hop, "channels": codec.channels, "split": split, "stems": stems_every,
    }
    if (out / META_FILE).exists():
        old = read_meta(out)
        if isinstance(old.get("codec"), dict) and "fingerprint" not in old["codec"]:
            # latents from before codec fingerprints: compare the rest, and claim no fingerprint for them
            meta["codec"] = {k: v for k, v in reference.items() if k != "fingerprint"}
        changed = [k for k in meta if old.get(k) != meta[k]]
        if changed:
            raise ValueError(f"{out} holds latents made with other settings ({', '.join(changed)} differ); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    done = {r["id"] for r in read_index(out) if (out / f"{r['id']}.safetensors").exists()}
    todo = [e for e in reader.select(None if split == "all" else split) if e.id not in done]
    if isinstance(codec, torch.nn.Module):
        codec.to(device).eval()
    frames_done = 0
    with progress_bar(total=len(todo), desc="encode", unit="ex", enabled=progress) as bar:
        for entry in todo:
            audio = torch.from_numpy(reader.load_audio(entry))[None, None, :]
            audio = audio.repeat(1, codec.channels, 1).to(device)  # mono corpus audio on every channel
            z = encode_audio(codec, audio).float().cpu()
            annotations = reader.load_annotations(entry).arrays()
            if z.shape[1] != entry.frames or any(len(a) != entry.frames for a in annotations.values()):
                raise ValueError(f"example {entry.id}: {z.shape[1]} latent frames, {entry.frames} corpus frames; they must match")
            tensors = {"latents": z.contiguous(), **{f"ann.{k}": torch.from_numpy(np.ascontiguousarray(a)) for k, a in annotations.items()}}
            if stems_every and int(entry.id) % stems_every == 0:
                tensors.update(_stem_latents(codec, torch.from_numpy(reader.load_stems(entry)), device))
            save_tensors(out / f"{entry.id}.safetensors", tensors, metadata={"id": entry.id, "caption": entry.caption, "split": entry.split})
            with open(out / INDEX_FILE, "a") as f:
                f.write(json.dumps({"id": entry.id, "split": entry.split, "caption": entry.caption, "frames": entry.frames}) + "\n")
            frames_done += entry.frames
            advance(bar, 1, frames=frames_done)
    records = read_index(out)
    meta["stats"] = latent_stats(out, records)
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"encode: {len(todo)} examples encoded now, {len(records)} in {out}; latent mean {np.mean(meta['stats']['mean']):.3f}, std {np.mean(meta['stats']['std']):.3f}")
    return EncodeReport(len(records), len(todo), frames_done)


CHUNK_SECONDS = 10.0  # codecs with look-ahead (Oobleck) encode long examples in pieces, exactly


@torch.no_grad()
def encode_audio(codec: Codec, audio: torch.Tensor) -> torch.Tensor:
    """One example [1, C, T] -> latents [D, frames]. A causal codec encodes it whole; one whose stream
    encoder has `flush` (look-ahead: the Oobleck VAE) streams it in chunks, which equals the offline
    result and bounds the memory of a full-size VAE."""
    encoder = codec.stream_encoder()
    if not hasattr(encoder, "flush"):
        return codec.encode(audio)[0]
    chunk = round(CHUNK_SECONDS * codec.sample_rate) // codec.hop * codec.hop
    pieces = [encoder.push(audio[..., i : i + chunk]) for i in range(0, audio.shape[-1], chunk)] + [encoder.flush()]
    return torch.cat(pieces, dim=-1)[0]


def _stem_latents(codec: Codec, stems: torch.Tensor, device: str) -> dict[str, torch.Tensor]:
    """stems [S, samples] -> {"stem.NAME": latents of that stem, "rest.NAME": latents of the others' mix}."""
    solo = stems  # [S, T]
    rest = stems.sum(0, keepdim=True) - stems  # [S, T]: every stem but one
    audio = torch.cat((solo, rest))[:, None, :].repeat(1, codec.channels, 1).to(device)  # [2S, C, T]
    with torch.no_grad():
        z = codec.encode(audio).float().cpu()  # [2S, D, F]
    S = stems.shape[0]
    out = {f"stem.{name}": z[i].contiguous() for i, name in enumerate(STEM_NAMES)}
    out.update({f"rest.{name}": z[S + i].contiguous() for i, name in enumerate(STEM_NAMES)})
    return out


def latent_stats(root: Path, records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-channel mean and std over every encoded frame (for the log and for sanity checks)."""
    total, sq, count = None, None, 0
    for r in records:
        z = load_tensors(root / f"{r['id']}.safetensors")[0]["latents"].double()
        total = z.sum(1) if total is None else total + z.sum(1)
        sq = (z * z).sum(1) if sq is None else sq + (z * z).sum(1)
        count += z.shape[1]
    if not count:
        return {"mean": [], "std": []}
    mean = total / count
    std = (sq / count - mean**2).clamp_min(0).sqrt()
    return {"mean": [round(float(v), 5) for v in mean], "std": [round(float(v), 5) for v in std]}


SKETCH_ANNOTATIONS = ("melody", "onsets", "loudness_db")  # what lmdm.conditioning.sketch is made of
CLOCK_ANNOTATIONS = ("beat_phase", "bar_phase")  # what lmdm.conditioning.clock is made of


class LatentSet:
    """The encoded examples of one split, in memory, with random windows for training.

    `shard` = (rank, world): with at least `world` examples each process takes every world-th
    one, so ranks see different data; with fewer, all take all (their seeds still differ).
    """

    def __init__(self, root: str | Path, split: str = "train", shard: tuple[int, int] = (0, 1)):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        records = sorted((r for r in read_index(self.root) if split == "all" or r["split"] == split), key=lambda r: r["id"])
        if not records:
            raise ValueError(f"{self.root} has no {split!r} examples (encode more, or set data.split = \"all\")")
        rank, world = shard
        if len(records) >= world:
            records = records[rank::world]
        self.ids = [r["id"] for r in records]
        self.captions = [r["caption"] for r in records]
        self.latents: list[torch.Tensor] = []
        self.annotations: list[dict[str, torch.Tensor]] = []  # the frame annotations sketches are made of
        self.stems: list[torch.Tensor | None] = []  # [2 (stem, rest), S, D, frames] latents for jamming, if encoded
        for i in self.ids:
            tensors = load_tensors(self.root / f"{i}.safetensors")[0]
            self.latents.append(tensors["latents"])
            self.annotations.append({k: tensors[f"ann.{k}"] for k in SKETCH_ANNOTATIONS + CLOCK_ANNOTATIONS if f"ann.{k}" in tensors})
            if all(f"{kind}.{s}" in tensors for kind in ("stem", "rest") for s in STEM_NAMES):  # encoded with stems
                self.stems.append(torch.stack([torch.stack([tensors[f"{kind}.{s}"] for s in STEM_NAMES]) for kind in ("stem", "rest")]))
            else:
                self.stems.append(None)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def latent_dim(self) -> int:
        return int(self.meta["latent_dim"])

    def codec(self) -> Codec:
        return open_codec(self.meta["codec"], self.root)

    def batch(self, size: int, frames: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
        """`size` random windows of `frames` frames -> (latents [size, D, frames], captions)."""
        latents, captions, _ = self.windows(size, frames, rng)
        return latents, captions

    @property
    def has_stems(self) -> bool:
        """Whether any example was encoded with stems (jamming windows are drawn from those)."""
        return any(s is not None for s in self.stems)

    def windows(self, size: int, frames: int, rng: np.random.Generator, stems_only: bool = False) -> tuple[torch.Tensor, list[str], dict[str, torch.Tensor]]:
        """As `batch`, plus the windows' annotations {melody, onsets, loudness_db, beat_phase, bar_phase: [size, frames]}
        (empty when the latents were encoded without them) and, when encoded with stems, "stems":
        [size, 2 (stem, rest), S, D, frames] for jamming (zeros for examples without stems) and
        "has_stems": [size] bool. `stems_only`: draw only from examples encoded with stems."""
        pool = [i for i, z in enumerate(self.latents) if z.shape[1] >= frames]
        if stems_only:
            if not self.has_stems:
                raise ValueError(f"{self.root} was encoded without stems: jamming needs lmdm train encode --stems")
            pool = [i for i in pool if self.stems[i] is not None]
        if not pool:
            longest = max(z.shape[1] for z in self.latents)
            raise ValueError(f"no example in {self.root} has {frames} frames (the longest has {longest}); use longer corpus examples")
        out, captions, ann = [], [], []
        for _ in range(size):
            i = pool[int(rng.integers(len(pool)))]
            start = int(rng.integers(self.latents[i].shape[1] - frames + 1))
            out.append(self.latents[i][:, start : start + frames])
            captions.append(self.captions[i])
            ann.append({k: a[start : start + frames] for k, a in self.annotations[i].items()})
            if self.has_stems:
                stems = self.stems[i]
                ann[-1]["has_stems"] = torch.tensor(stems is not None)
                ann[-1]["stems"] = (stems[..., start : start + frames] if stems is not None
                                    else torch.zeros(2, len(STEM_NAMES), self.latents[i].shape[0], frames))
        names = set.intersection(*(set(a) for a in ann)) if ann else set()
        return torch.stack(out), captions, {k: torch.stack([a[k] for a in ann]) for k in sorted(names)}
