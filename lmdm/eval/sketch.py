"""Measure how well a model follows sketches, jams with a player, and re-imagines a delay.

    python -m lmdm.eval.sketch --model DIR [--corpus data/corpus] [--json]

Everything is measured on held-out corpus excerpts (lmdm.corpus.reader.CorpusReader, the test
split), with the same trackers the sketch sources use (lmdm.conditioning.sketch_sources):

sketch   the excerpt's annotations are the sketch (melody, onsets, loudness, all three at once);
         the model's stream under the caption is scored against them: pitch-class accuracy of the
         main pitch (over frames where the sketch has a note: the strongest pitch class of the
         frame's spectral peaks in 250-2500 Hz; a monophonic tracker such as YIN fails on mixes),
         onset F1 (+-1 frame, 40 ms) and the correlation of frame loudness (dB) with the curve.
         Four rows: with the sketch, without it (same seed), the corpus ceiling (the corpus audio
         itself against its own annotations: what the trackers can score on real music) and the
         codec ceiling (the same audio through the model's codec and back: the best the model
         can do, whatever its transformer learns).
jam      one stem of the excerpt (the bass, or --player-stem) is fed as the player, and the model
         follows it in each way it can (LiveSession jam_follow "key", "beat" and "listen", rows
         jam_key, jam_beat and jam_listen); the model's accompaniment is scored against the
         player's song: beat-phase agreement (mean cos(2 pi x 2 x beat phase) over its onsets,
         1 = every onset on the eighth-note grid of the player's tempo, ~0 = unrelated), key
         agreement (same key, or its relative) and pitch-class correlation (of the
         accompaniment's pitch-class profile with the player's: a graded key agreement) - vs the
         same stream without the player; the prompt is empty in both, so only the player can tell
         the model the song. The codec ceiling scores the real song (all stems) through the codec
         and back; the real accompaniment row, the song's other stems as they are.
delay    the excerpt's lead stem goes through the delay (2 blocks, feedback 0, mix 1) at strengths
         0 .. 1, under the caption of a held-out example of another style (the timbre prompt); the
         first repeat is scored against the input (onset F1, pitch-class agreement) and against
         the prompt (the quality probe's p(prompt's style), lmdm.eval.probe; the dry input's too).

About 230 blocks with the defaults (--examples 4 --blocks 6): 11 min for ModelConfig.small at 1
thread while a training run shared the 2 cores; less on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Sequence

import numpy as np
import torch

from lmdm.corpus.score import STEM_NAMES
from lmdm.conditioning.sketch_sources import db_to_level, frame_loudness_db, onset_times
from lmdm.render import add_model_arguments, resolve_model

TOLERANCE_FRAMES = 1


# ----------------------------------------------------------------------------------------------
# Scores (pure)


def onset_f1(found: Sequence[int], wanted: Sequence[int], tolerance: int = TOLERANCE_FRAMES) -> float:
    """F1 of onset frames, each wanted onset matched to at most one found onset within +-tolerance."""
    found, wanted = sorted(found), sorted(wanted)
    if not found and not wanted:
        return float("nan")
    used = [False] * len(found)
    hits = 0
    for w in wanted:
        best = None
        for i, f in enumerate(found):
            if not used[i] and abs(f - w) <= tolerance and (best is None or abs(f - w) < abs(found[best] - w)):
                best = i
        if best is not None:
            used[best] = True
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(found), hits / len(wanted)
    return 2 * precision * recall / (precision + recall)


def main_pitch_class(audio: np.ndarray, sample_rate: int, frame_rate: float, n_fft: int = 2048,
                     low: float = 250.0, high: float = 2500.0, silence_db: float = -50.0) -> np.ndarray:
    """The strongest pitch class per latent frame (0..11, -1 when quieter than `silence_db`).

    Spectral peaks of a window centred on each frame, in `low`..`high` Hz, summed per pitch class
    (lmdm.analysis.chroma_weights). On the corpus mixes it matches the lead's annotated
    note in ~3/4 of the frames where the lead plays (the ceiling row shows it per run).
    """
    from lmdm.analysis import chroma_weights, spectral_peaks

    hop = round(sample_rate / frame_rate)
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0, dtype=int)
    xp = np.pad(x, (n_fft // 2, n_fft // 2))
    idx = (np.arange(n) * hop + hop // 2)[:, None] + np.arange(n_fft)[None, :]
    mag = spectral_peaks(np.abs(np.fft.rfft(xp[idx] * np.hanning(n_fft), axis=1)))
    chroma = mag @ chroma_weights(n_fft, sample_rate, low, high).T
    pc = chroma.argmax(axis=1)
    loud = frame_loudness_db(x, hop)[:n] >= silence_db
    return np.where(loud & (chroma.max(axis=1) > 0), pc, -1)


def pitch_class_hits(found_pc: np.ndarray, target_midi: np.ndarray) -> float:
    """Fraction of frames with a target note whose main pitch class (-1 = none) is the note's."""
    n = min(len(found_pc), len(target_midi))
    pc, g = np.asarray(found_pc[:n]), np.asarray(target_midi[:n])
    voiced = g > 0
    if not voiced.any():
        return float("nan")
    return float(np.mean(pc[voiced] == np.round(g[voiced]).astype(int) % 12))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], dtype=np.float64), np.asarray(b[:n], dtype=np.float64)
    if n < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def onset_frame_list(audio: np.ndarray, sample_rate: int, frame_rate: float) -> list[int]:
    times, _ = onset_times(audio, sample_rate)
    return sorted({int(t * frame_rate + 1e-9) for t in times})


def beat_phase_agreement(onset_frames: Sequence[int], beat_phase: np.ndarray, subdivision: int = 2) -> float:
    """mean cos(2 pi * subdivision * beat phase) over the onsets: 1 = all on the grid, ~0 = unrelated."""
    frames = [f for f in onset_frames if 0 <= f < len(beat_phase)]
    if not frames:
        return float("nan")
    return float(np.mean(np.cos(2 * math.pi * subdivision * beat_phase[frames])))


def same_key(a, b) -> bool:
    """Same key, or relative major/minor (a Key has tonic and mode, lmdm.analysis.Key)."""
    from lmdm.analysis import PITCH_NAMES

    ta, tb = PITCH_NAMES.index(a.tonic), PITCH_NAMES.index(b.tonic)
    if a.mode == b.mode:
        return ta == tb
    major, minor = (ta, tb) if a.mode == "major" else (tb, ta)
    return (major - 3) % 12 == minor


def _key(name: str, scale: str):
    from lmdm.analysis import PITCH_NAMES, Key

    aliases = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb"}
    name = aliases.get(name, name)
    return Key(name if name in PITCH_NAMES else "C", "minor" if "minor" in scale else "major", float("nan"))


def mean(values: Sequence[float]) -> float:
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else float("nan")


# ----------------------------------------------------------------------------------------------
# Runs


def _session(model, prompt: str, seed: int, steps: int | None, **kw):
    import lmdm

    return lmdm.LiveSession(model, prompt=prompt, steps=steps, seed=seed, **kw)


def _excerpts(reader, count: int, frames: int, seed: int) -> list:
    """`count` crops of `frames` from the test split (one per example, from its middle)."""
    pool = [e for e in reader.select("test") if e.frames >= frames] or [e for e in reader.select(None) if e.frames >= frames]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [reader.crop(pool[i], (pool[i].frames - frames) // 2, frames) for i in sorted(picks)]


def sketch_scores(audio: np.ndarray, sr: int, frame_rate: float, melody: np.ndarray, onsets: np.ndarray, loudness_db: np.ndarray) -> dict:
    hop = round(sr / frame_rate)
    wanted = np.nonzero(onsets > 0)[0].tolist()
    return {
        "pitch_class_accuracy": pitch_class_hits(main_pitch_class(audio, sr, frame_rate), melody),
        "onset_f1": onset_f1(onset_frame_list(audio, sr, frame_rate), wanted),
        "loudness_correlation": correlation(frame_loudness_db(audio, hop), np.maximum(loudness_db, -60.0)),
    }


def codec_round_trip(codec, audio: np.ndarray) -> np.ndarray:
    """Mono audio [T] through the codec and back: what the model could produce at best."""
    from lmdm.train.latents import encode_audio

    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, 1, -1).repeat(1, codec.channels, 1)
    with torch.no_grad():
        y = codec.decode(encode_audio(codec, x)[None])
    return y[0, 0, : x.shape[-1]].numpy()


def measure_sketch(model, reader, examples: int, blocks: int, steps: int | None, seed: int) -> dict:
    B, sr, fr = model.config.block_frames, model.sample_rate, model.config.frame_rate
    rows: dict[str, list[dict]] = {"sketch": [], "no_sketch": [], "corpus_ceiling": [], "codec_ceiling": []}
    for i, crop in enumerate(_excerpts(reader, examples, blocks * B, seed)):
        a = crop.annotations
        rows["corpus_ceiling"].append(sketch_scores(crop.audio, sr, fr, a.melody, a.onsets, a.loudness_db))
        rows["codec_ceiling"].append(sketch_scores(codec_round_trip(model.codec, crop.audio), sr, fr, a.melody, a.onsets, a.loudness_db))
        for name in ("sketch", "no_sketch"):
            s = _session(model, crop.caption, seed + i, steps)
            if name == "sketch":
                s.set_sketch(melody=a.melody, rhythm=np.clip(a.onsets, 0, 1), loudness=db_to_level(a.loudness_db))
            audio = s.render(blocks * model.config.block_seconds)[:, 0]
            rows[name].append(sketch_scores(audio, sr, fr, a.melody, a.onsets, a.loudness_db))
    return {name: {k: mean([r[k] for r in rs]) for k in rs[0]} for name, rs in rows.items()} | {"examples": examples, "blocks": blocks}


def measure_jam(model, reader, examples: int, blocks: int, steps: int | None, seed: int, stem: str = "bass") -> dict:
    from lmdm.analysis import key_of, pitch_profile

    B, sr, fr = model.config.block_frames, model.sample_rate, model.config.frame_rate
    skip = 2 * B  # the first two blocks cannot hear the player yet (latency cutoff)
    probe = _session(model, "", seed, steps)
    modes = [m for m, feature in (("key", "sketch"), ("beat", "sketch"), ("listen", "jam")) if probe.supports(feature)]
    names = [f"jam_{m}" for m in modes] + ["unconditioned", "codec_ceiling", "real_accompaniment"]
    out: dict[str, dict[str, list]] = {name: {"beat_phase": [], "key": [], "pitch": []} for name in names}
    played_by = STEM_NAMES.index(stem)  # the player's stem
    for i, crop in enumerate(_excerpts(reader, examples, blocks * B, seed + 1)):
        player = crop.stems[played_by].astype(np.float32)
        truth = _key(crop.attributes.key, crop.attributes.scale)
        played = pitch_profile(player, sr)
        for name in out:
            if name == "codec_ceiling":  # the real song through the codec: the best a stream could score
                audio = codec_round_trip(model.codec, crop.audio)[skip * model.config.hop :]
            elif name == "real_accompaniment":  # what the song's own other stems do
                audio = sum(x for j, x in enumerate(crop.stems) if j != played_by)[skip * model.config.hop :]
            else:
                follow = name[4:] if name.startswith("jam_") else None
                s = _session(model, "", seed + i, steps, **({"jam_follow": follow} if follow else {}))
                if follow:
                    s.feed_input(player)
                audio = s.render(blocks * model.config.block_seconds)[skip * model.config.hop :, 0]
            found = onset_frame_list(audio, sr, fr)
            out[name]["beat_phase"].append(beat_phase_agreement(found, crop.annotations.beat_phase[skip:]))
            out[name]["key"].append(float(same_key(key_of(audio, sr), truth)))
            out[name]["pitch"].append(correlation(pitch_profile(audio, sr), played))
    return {name: {"beat_phase_agreement": mean(v["beat_phase"]), "key_agreement": mean(v["key"]),
                   "pitch_class_correlation": mean(v["pitch"])} for name, v in out.items()} | {
        "player_stem": stem, "examples": examples, "blocks": blocks}


def timbre_prompts(reader, crops: Sequence, seed: int) -> list[tuple[str, str]]:
    """For each crop, a (caption, style) of an example of ANOTHER style (held out if the test split has
    one, else any): the delay's timbre prompt."""
    held_out, everything = reader.select("test"), reader.select(None)
    rng = np.random.default_rng(seed)
    out = []
    for crop in crops:
        others = next((p for p in ([e for e in pool if e.attributes.style != crop.attributes.style] for pool in (held_out, everything)) if p), everything)
        e = others[int(rng.integers(len(others)))]
        out.append((e.caption, e.attributes.style))
    return out


def style_probability(probe, audio: np.ndarray, style: str) -> float:
    """The probe's mean p(style) over the audio's windows (nan: the probe does not know the style)."""
    styles = list(probe.config.styles)
    if style not in styles:
        return float("nan")
    return float(np.mean(probe.embed_audio(np.asarray(audio, dtype=np.float32)).style[:, styles.index(style)]))


def measure_delay(model, reader, examples: int, blocks: int, steps: int | None, seed: int, strengths: Sequence[float]) -> dict:
    """The lead stem through the delay under a timbre prompt of another style; the first repeat vs the
    input (onsets, pitch classes where the input sounds) and vs the prompt (the probe's p(style))."""
    from lmdm.eval.probe import load_probe

    probe = load_probe()
    B, sr, fr, S = model.config.block_frames, model.sample_rate, model.config.frame_rate, model.block_samples
    curve = {f"{s:g}": {"onset_f1": [], "pitch_class_agreement": [], "p_prompt_style": []} for s in strengths}
    crops = _excerpts(reader, examples, blocks * B, seed + 2)
    dry = []
    for i, (crop, (prompt, style)) in enumerate(zip(crops, timbre_prompts(reader, crops, seed + 2))):
        line = crop.stems[STEM_NAMES.index("lead")].astype(np.float32)
        heard = main_pitch_class(line, sr, fr)
        heard_midi = np.where(heard >= 0, heard + 60, 0)  # as MIDI notes (the octave does not matter)
        wanted = onset_frame_list(line, sr, fr)
        dry.append(style_probability(probe, line, style))
        for strength in strengths:
            s = _session(model, prompt, seed + i, steps)
            s.set_delay(2, strength=strength, feedback=0.0, mix=1.0)
            s.feed_input(line)
            wet = s.render((blocks + 2) * model.config.block_seconds)[2 * S :, 0]  # the first repeat, aligned with the input
            c = curve[f"{strength:g}"]
            c["onset_f1"].append(onset_f1(onset_frame_list(wet, sr, fr), wanted))
            c["pitch_class_agreement"].append(pitch_class_hits(main_pitch_class(wet, sr, fr), heard_midi))
            c["p_prompt_style"].append(style_probability(probe, wet, style))
    return {"curve": {k: {m: mean(v) for m, v in c.items()} for k, c in curve.items()}, "examples": examples, "blocks": blocks,
            "input": "lead stem", "delay_blocks": 2, "prompt": "a held-out caption of another style",
            "dry_p_prompt_style": mean(dry)}


MEASUREMENTS = ("sketch", "jam", "delay")


def measure(model, corpus: str, *, examples: int = 4, blocks: int = 6, steps: int | None = None, seed: int = 0,
            strengths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), player_stem: str = "bass", log=print,
            only: Sequence[str] = MEASUREMENTS) -> dict:
    """The measurements named in `only` (all three by default; each skipped when the model lacks the feature).
    steps None: the sampler steps the model is made for (config.json's sampler_steps)."""
    from lmdm.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    if reader.sample_rate != model.sample_rate or reader.frame_rate != model.config.frame_rate:
        raise ValueError(f"corpus {corpus} is {reader.sample_rate} Hz / {reader.frame_rate} fps, the model {model.sample_rate} Hz / {model.config.frame_rate} fps")
    session = _session(model, "", seed, steps)
    result: dict = {"model": model.name, "corpus": str(corpus), "steps": session.stats.steps, "seed": seed}
    for name, features, run in (
        ("sketch", ("sketch",), lambda: measure_sketch(model, reader, examples, blocks, steps, seed)),
        ("jam", ("jam", "sketch"), lambda: measure_jam(model, reader, examples, blocks + 2, steps, seed, player_stem)),
        ("delay", ("delay",), lambda: measure_delay(model, reader, max(1, examples - 1), blocks, steps, seed, strengths)),
    ):
        if name not in only:
            continue
        if not any(session.supports(f) for f in features):
            result[name] = {"skipped": f"the model has no {' or '.join(features)} support"}
            continue
        t0 = time.perf_counter()
        result[name] = run()
        result[name]["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{name}: done in {result[name]['seconds']:.0f} s")
    return result


def player_information(model, latents: str, *, batches: int = 12, batch: int = 32, seed: int = 0, split: str = "test",
                       regime: str = "block_causal") -> dict:
    """Does the model use the player? Its loss on held-out jamming windows (lmdm.train.objective)
    with the player heard as in training vs silenced (nothing heard), the same noise and times,
    once with the context zeroed (only the player can tell the beat) and once with it kept.
    Equal losses mean the accomp input is ignored."""
    import attrs

    from lmdm.train.latents import LatentSet
    from lmdm.train.objective import draw, lmdm_loss
    from lmdm.train.recipe import TrainSettings

    if model.config.add_slice("accomp") is None:
        raise ValueError("this model has no accomp input (it cannot hear a player)")
    data = LatentSet(latents, split)
    if not data.has_stems:
        raise ValueError(f"{latents} has no stem latents (lmdm train encode --stems)")
    rng = np.random.default_rng(seed)
    out = {}
    for name, blind in (("context_zeroed", 1.0), ("context_kept", 0.0)):
        settings = TrainSettings(jam_prob=1.0, jam_context_drop=blind, context_drop_full=0.0, context_drop_partial=0.0,
                                 context_dropout=0.0, text_dropout=1.0, accomp_drop_partial=0.0)
        heard, silenced = [], []
        for i in range(batches):
            z, captions, annotations = data.windows(batch, model.config.window_frames, rng)
            d = draw("lmdm", model.config, batch, 0, settings, torch.Generator().manual_seed(seed + i))
            deaf = attrs.evolve(d, accomp_cutoff=torch.zeros_like(d.accomp_cutoff))
            with torch.no_grad():
                heard.append(lmdm_loss(model.dit, model.text, z, captions, d, regime, annotations).item())
                silenced.append(lmdm_loss(model.dit, model.text, z, captions, deaf, regime, annotations).item())
        out[name] = {"loss_player_heard": mean(heard), "loss_player_silenced": mean(silenced)}
    return out | {"batches": batches, "batch": batch, "split": split}


def format_result(r: dict) -> str:
    def f(x) -> str:
        return "  n/a" if x != x else f"{x:5.2f}"

    lines = [f"model {r['model']}, corpus {r['corpus']}, {r['steps']} steps"]
    s = r.get("sketch", {"skipped": "not asked"})
    if "skipped" not in s:
        lines.append("sketch           pitch-class acc  onset F1  loudness corr")
        for name in ("sketch", "no_sketch", "corpus_ceiling", "codec_ceiling"):
            v = s[name]
            lines.append(f"  {name:<15}  {f(v['pitch_class_accuracy'])}            {f(v['onset_f1'])}     {f(v['loudness_correlation'])}")
    j = r.get("jam", {"skipped": "not asked"})
    if "skipped" not in j:
        lines.append(f"jam (player: {j['player_stem']})      beat-phase agreement  key agreement  pitch-class corr")
        for name in [k for k in ("jam_key", "jam_beat", "jam_listen") if k in j] + ["unconditioned", "codec_ceiling", "real_accompaniment"]:
            v = j[name]
            lines.append(f"  {name:<18}  {f(v['beat_phase_agreement'])}                 {f(v['key_agreement'])}          {f(v['pitch_class_correlation'])}")
    d = r.get("delay", {"skipped": "not asked"})
    if "skipped" not in d:
        lines.append("delay strength   onset F1  pitch-class agreement (first repeat vs input)  p(prompt style)")
        lines.append(f"  {'dry input':<15}  {f(1.0)}     {f(1.0)}                                      {f(d['dry_p_prompt_style'])}")
        for k, v in d["curve"].items():
            lines.append(f"  {k:<15}  {f(v['onset_f1'])}     {f(v['pitch_class_agreement'])}                                      {f(v['p_prompt_style'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m lmdm.eval.sketch") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default', a checkpoint directory, or tiny/small (random weights)")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--blocks", type=int, default=6, help="blocks per excerpt")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's own, 8 for the bundled model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=list(MEASUREMENTS), help="run only these measurements")
    p.add_argument("--player-stem", default="bass", choices=STEM_NAMES, help="the stem fed as the live player in the jam measurement")
    p.add_argument("--player-loss", metavar="LATENTS", help="only measure whether the model uses the player: its loss on held-out "
                   "jamming windows of LATENTS (encoded with --stems) with the player heard vs silenced")
    add_model_arguments(p, guide_inputs=True)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    model = resolve_model(a.model, a.block_frames, a.guide_inputs)  # every session below takes its guide_inputs
    if a.model in ("tiny", "small"):  # random weights: give them every input so each path runs
        import lmdm
        from lmdm.conditioning.sketch import SKETCH_INPUTS

        preset = {"tiny": lmdm.ModelConfig.tiny, "small": lmdm.ModelConfig.small}[a.model]()
        config = lmdm.ModelConfig.from_dict({**preset.to_dict(), "extra_add_inputs": [list(x) for x in SKETCH_INPUTS] + [["accomp", 1 + preset.latent_dim]]})
        model = lmdm.build_model(config, seed=0)
    if a.player_loss:
        r = player_information(model, a.player_loss, seed=a.seed)
        print(json.dumps(r, indent=2) if a.json else "\n".join(
            f"{k}: loss with the player heard {v['loss_player_heard']:.4f}, silenced {v['loss_player_silenced']:.4f}"
            for k, v in r.items() if isinstance(v, dict)))
        return 0
    result = measure(model, a.corpus, examples=a.examples, blocks=a.blocks, steps=a.steps, seed=a.seed, player_stem=a.player_stem,
                     log=lambda line: print(line, file=sys.stderr), only=a.only)
    print(json.dumps(result, indent=2) if a.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
