"""Codec speed: ms per second of audio for encode, decode and streaming decode in 2 s blocks.

    python -m lmdm.eval.codec_bench                  # default ConvCodec, random weights (speed does not depend on them)
    python -m lmdm.eval.codec_bench --codec runs/codec --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lmdm.codec.checkpoint import load_codec
from lmdm.codec.conv import ConvCodec, ConvCodecConfig


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls pick kernels and allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench_codec(codec: ConvCodec, seconds: float = 8.0, block_seconds: float = 2.0, repeats: int = 5) -> dict[str, float]:
    """-> ms per second of audio for 'encode', 'decode', 'stream_decode', and 'realtime_factor' (x real time, encode + decode)."""
    codec = codec.eval()
    frames = round(seconds * codec.frame_rate)
    block = round(block_seconds * codec.frame_rate)
    audio = 0.1 * torch.randn(1, 1, frames * codec.hop)
    with torch.inference_mode():
        latents = codec.encode(audio)

        def stream() -> None:
            decoder = codec.stream_decoder()
            for start in range(0, frames, block):
                decoder.push(latents[..., start : start + block])

        seconds_of_audio = frames / codec.frame_rate
        encode = median_ms(lambda: codec.encode(audio), repeats) / seconds_of_audio
        decode = median_ms(lambda: codec.decode(latents), repeats) / seconds_of_audio
        streamed = median_ms(stream, repeats) / seconds_of_audio
    return {"encode": encode, "decode": decode, "stream_decode": streamed, "realtime_factor": 1000 / (encode + decode)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", help="checkpoint directory (default: untrained default ConvCodec)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.codec) if args.codec else ConvCodec(ConvCodecConfig())
    params = sum(p.numel() for p in codec.parameters())
    r = bench_codec(codec, args.seconds, repeats=args.repeats)
    print(f"ConvCodec latent_dim={codec.latent_dim} hop={codec.hop} params={params / 1e6:.2f}M threads={torch.get_num_threads()}")
    print(f"encode          {r['encode']:6.2f} ms per second of audio")
    print(f"decode          {r['decode']:6.2f} ms per second of audio")
    print(f"stream decode   {r['stream_decode']:6.2f} ms per second of audio (2 s blocks)")
    print(f"real-time factor {r['realtime_factor']:5.0f}x (encode + decode)")


if __name__ == "__main__":
    main()
