"""``lmdm corpus make|show|example``: make a procedural music corpus, summarise one, hear one.

``main`` takes the arguments that follow ``corpus`` on the command line, e.g.
``main(["make", "--hours", "2", "--out", "data/corpus"])``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import soundfile

from lmdm.corpus.example import INSTRUMENT_SOURCES, make_example
from lmdm.corpus.reader import CorpusReader
from lmdm.corpus.styles import STYLE_NAMES
from lmdm.corpus.writer import write_corpus


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmdm corpus", description="Procedural music corpus with stems and annotations."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("make", help="generate a corpus directory")
    make.add_argument("--hours", type=float, required=True, help="hours of audio to generate")
    make.add_argument("--out", type=Path, required=True, help="output directory (re-running resumes)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--seconds", type=float, default=40.0, help="length of each example")
    make.add_argument("--workers", type=int, default=2, help="worker processes")
    make.add_argument("--styles", default="", help=f"comma-separated subset of: {','.join(STYLE_NAMES)}")
    make.add_argument("--sample-rate", type=int, default=16000)
    make.add_argument("--frame-rate", type=float, default=25.0)
    make.add_argument("--any-tempo", type=float, default=0.0, metavar="SHARE",
                      help="share of songs (0..1) whose tempo is drawn from 60-180 BPM whatever their style (default 0)")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.add_argument("--instruments", choices=INSTRUMENT_SOURCES, default="synth",
                      help="synth: the numpy voices (default); sampled: a General MIDI soundfont through FluidSynth")
    make.add_argument("--soundfont", metavar="SF2", help="soundfont for --instruments sampled: a path or a file name in "
                      "/usr/share/sounds/sf2 (default: FluidR3_GM.sf2, else TimGM6mb.sf2)")

    example = commands.add_parser("example", help="render one example to a WAV file to listen to")
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--style", choices=STYLE_NAMES, default=None)
    example.add_argument("--seconds", type=float, default=20.0)
    example.add_argument("--out", type=Path, default=Path("example.wav"))
    example.add_argument("--stems", action="store_true", help="also write OUT-<stem>.wav per stem")
    example.add_argument("--sample-rate", type=int, default=16000)
    example.add_argument("--instruments", choices=INSTRUMENT_SOURCES, default="synth",
                      help="synth: the numpy voices (default); sampled: a General MIDI soundfont through FluidSynth")
    example.add_argument("--soundfont", metavar="SF2", help="soundfont for --instruments sampled: a path or a file name in "
                      "/usr/share/sounds/sf2 (default: FluidR3_GM.sf2, else TimGM6mb.sf2)")

    show = commands.add_parser("show", help="summarise a corpus directory")
    show.add_argument("dir", type=Path)
    show.add_argument("--captions", type=int, default=3, help="example captions to print per style")
    return parser


def run_make(args: argparse.Namespace) -> int:
    styles = [s.strip() for s in args.styles.split(",") if s.strip()] or None
    report = write_corpus(
        args.out,
        args.hours,
        seed=args.seed,
        seconds_per_example=args.seconds,
        workers=args.workers,
        progress=not args.quiet,
        styles=styles,
        sample_rate=args.sample_rate,
        frame_rate=args.frame_rate,
        any_tempo=args.any_tempo,
        instruments=args.instruments,
        soundfont=args.soundfont,
    )
    print(
        f"{args.out}: {report.examples} examples, {report.audio_hours:.2f} h audio, "
        f"{report.bytes_on_disk / 1e6:.1f} MB; made {report.written} in {report.wall_seconds:.1f} s "
        f"({report.realtime_factor:.0f}x real time)"
    )
    return 0


def run_example(args: argparse.Namespace) -> int:
    example = make_example(args.seed, args.seconds, style=args.style, sample_rate=args.sample_rate,
                           instruments=args.instruments, soundfont=args.soundfont)
    soundfile.write(args.out, example.audio, example.sample_rate)
    if args.stems:
        for name, stem in example.stems.items():
            soundfile.write(args.out.with_name(f"{args.out.stem}-{name}.wav"), stem, example.sample_rate)
    a = example.attributes
    print(f"{args.out}: {example.caption}")
    print(f"  {a.style}, {a.tempo} BPM, {a.key} {a.scale}, {a.mood}; {', '.join(a.instruments)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    reader = CorpusReader(args.dir)
    print(
        f"{args.dir}: {len(reader)} examples, {reader.hours():.2f} h, "
        f"{reader.sample_rate} Hz, {reader.frame_rate:g} frames/s"
    )
    splits = Counter(e.split for e in reader)
    print("splits: " + ", ".join(f"{name} {splits[name]}" for name in ("train", "valid", "test")))
    styles = Counter(e.attributes.style for e in reader)
    seconds = Counter()
    for e in reader:
        seconds[e.attributes.style] += e.attributes.seconds
    width = max([len(s) for s in styles] + [5])
    print(f"{'style':<{width}}  examples    hours")
    for style in sorted(styles):
        print(f"{style:<{width}}  {styles[style]:8d}  {seconds[style] / 3600:7.3f}")
        for entry in reader.select(style=style)[: args.captions]:
            print(f"{'':<{width}}    {entry.id}: {entry.caption}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["corpus"]:
        args_list = args_list[1:]
    args = build_parser().parse_args(args_list)
    try:
        if args.command == "make":
            return run_make(args)
        if args.command == "example":
            return run_example(args)
        return run_show(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"lmdm corpus: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
