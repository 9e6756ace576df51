"""``lmdm eval AUDIO_OR_DIR ...`` (also ``python -m lmdm.eval``): FD-probe, prompt adherence, scores over time.

``lmdm eval conditioning [--model M] ...`` measures how a model follows sketches, jams with a player
and re-imagines a delay (lmdm.eval.sketch, docs/applications.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmdm.eval.report import FileReport, Report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lmdm eval",
        description="Score generated audio with the probe (FD-probe, prompt adherence) and model-free measures, per segment over time.",
        epilog="`lmdm eval conditioning --help`: measure a model's sketch following, jamming and generative delay on held-out corpus excerpts.",
    )
    p.add_argument("paths", nargs="+", metavar="AUDIO_OR_DIR", help=".wav/.flac/.ogg files, folders of them, or a corpus directory")
    p.add_argument("--reference", metavar="DIR", default=None, help="audio to compare with (a corpus directory means its train split); default: the training corpus statistics shipped with the probe")
    p.add_argument("--prompt", default=None, help="the prompt of every file (default: sidecar NAME.txt / NAME.json {\"prompt\": ...}, or a corpus's captions)")
    p.add_argument("--probe", metavar="DIR", default=None, help="a probe directory (default: lmdm/weights/probe)")
    p.add_argument("--segment-seconds", type=float, default=15.0, help="length of the segments scored over time (default 15)")
    p.add_argument("--split", default=None, help="comma-separated splits to read from a corpus directory, e.g. valid,test")
    p.add_argument("--shuffle-prompts", type=int, default=None, metavar="SEED", help="give each file another file's prompt: the chance floor of adherence")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", nargs="?", const="eval.png", default=None, metavar="PNG", help="also draw the per-segment scores over time (default eval.png; needs matplotlib: pip install 'lmdm[plot]')")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def adherence_line(report: Report) -> str:
    a = report.adherence
    if a is None:
        return "adherence: no prompts (give --prompt or sidecar NAME.txt / NAME.json files)"
    parts = []
    if a.windows:
        parts.append(f"style top-1 {fmt(a.style_accuracy)}, p(asked style) {fmt(a.style_probability)} (chance {a.style_chance:.2f}; {a.windows} windows)")
    if a.instrument_probability is not None:
        parts.append(f"p(asked instruments) {fmt(a.instrument_probability)}")
    if a.tempo_files:
        parts.append(f"tempo within 4 % {fmt(a.tempo_accuracy)} (octave-tolerant {fmt(a.tempo_accuracy_octave)}; {a.tempo_files} files)")
    if a.key_files:
        parts.append(f"key tonic {fmt(a.key_accuracy)} ({a.key_files} files)")
    return "adherence: " + (" · ".join(parts) if parts else "the prompts name no style, instrument or tempo")


def file_block(f: FileReport) -> list[str]:
    prompt = f' "{f.prompt}"' if f.prompt else ""
    lines = [f"{f.name}  {f.seconds:.1f} s{prompt}"]
    flags = ",".join(f.checks.flags) or "ok"
    lines.append(
        f"  whole: style {f.style} ({f.style_probability:.2f})  tempo {fmt(f.tempo_bpm, '.1f')} BPM  key {f.key}  "
        f"rms {f.loudness.rms_db:.1f} dBFS  peak {f.loudness.peak_db:.1f}  range {f.loudness.range_db:.1f} dB  drift {f.drift:.2f}  {flags}"
    )
    lines.append(f"  {'time':<13} {'style':<19} {'p(asked)':>8} {'tempo':>6}  {'key':<10} {'rms':>6} {'drift':>6}  flags")
    for s in f.segments:
        span = f"{int(s.start // 60)}:{s.start % 60:04.1f}-{int(s.end // 60)}:{s.end % 60:04.1f}"
        lines.append(
            f"  {span:<13} {s.style:<14} {s.style_probability:.2f} {fmt(s.asked_probability):>8} {fmt(s.tempo_bpm, '.1f'):>6}  "
            f"{s.key:<10} {s.rms_db:>6.1f} {s.drift:>6.2f}  {','.join(s.flags) or '-'}"
        )
    return lines


def format_report(report: Report) -> str:
    seconds = sum(f.seconds for f in report.files)
    window = f"{report.windows} windows"
    lines = [f"FD-probe {report.fd_probe:.2f}  ({len(report.files)} files, {seconds / 60:.1f} min, {window}; reference: {report.reference})"]
    if len(report.files) < 100:
        lines.append(
            f"  note: FD of {len(report.files)} files is noisy and biased upwards (random corpus songs score 64 ± 34 with 28 files, "
            "14 ± 9 with 90, 5 ± 2 with 166): compare sets of the same size (docs/evaluation.md)"
        )
    if report.reference_windows < 256:
        lines.append(f"  note: the reference has only {report.reference_windows} windows; FD and drift need a few hundred (2 x 128 dimensions)")
    if report.landmarks:
        marks = " · ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in report.landmarks.items())
        lines.append(f"  landmarks at {report.landmark_files or '?'} files: {marks}")
    lines.append(adherence_line(report))
    lines.append("")
    for f in report.files:
        lines += file_block(f) + [""]
    return "\n".join(lines).rstrip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["conditioning"] and not Path("conditioning").exists():  # a file of that name is still audio
        from lmdm.eval.sketch import main as measure_main

        return measure_main(argv[1:], prog="lmdm eval conditioning")
    a = build_parser().parse_args(argv)
    if a.plot:  # before the work, not after it
        from lmdm.plot import plot_unavailable

        if (problem := plot_unavailable()) is not None:
            print(f"lmdm eval: error: --plot: {problem}", file=sys.stderr)
            return 2
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    from lmdm.eval.inputs import EvalInputError
    from lmdm.eval.probe import ProbeError
    from lmdm.eval.report import evaluate

    splits = [s.strip() for s in a.split.split(",") if s.strip()] if a.split else None
    try:
        report = evaluate(
            a.paths,
            reference=a.reference,
            prompts=a.prompt,
            probe=a.probe,
            segment_seconds=a.segment_seconds,
            splits=splits,
            shuffle_prompts=a.shuffle_prompts,
        )
    except (EvalInputError, ProbeError) as e:
        print(f"lmdm eval: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=1) if a.json else format_report(report))
    if a.plot:
        from lmdm.eval.plot import report_png

        report_png(report, Path(a.plot))
        print(f"wrote {a.plot}", file=sys.stderr if a.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
