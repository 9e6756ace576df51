"""Rectified-flow sampling: the log-SNR schedule, Euler and ping-pong updates, guidance.

Rectified flow: x_t = (1 - t) x0 + t eps, and the model predicts v = eps - x0, so that
x0 = x_t - t v. Each function here is a small piece of math the tests call directly.
"""

from __future__ import annotations

from typing import Callable

import math

import torch

SAMPLERS = ("euler", "pingpong")


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return name


def schedule(steps: int, logsnr_start: float = -6.0, logsnr_end: float = 2.0, start: float = 1.0) -> torch.Tensor:
    """Times from `start` (1 by default) to 0: log-SNR linear in [logsnr_start, logsnr_end],
    t = sigmoid(-logSNR), ends forced.

    `start` < 1 (SDEdit: begin from a noised input instead of pure noise) keeps the tail of the
    full schedule's log-SNR line: it starts at logSNR(start) = log((1 - start) / start) and
    runs `round(steps * covered / whole)` steps (at least 1), so `start=0.5` with 8
    steps gives the full schedule's last two steps (.5, .2689, 0). `start=1` is the full schedule.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    check_start(start)
    if start < 1.0:
        lo = min(max(math.log((1.0 - start) / start), logsnr_start), logsnr_end)
        steps = max(1, round(steps * (logsnr_end - lo) / (logsnr_end - logsnr_start)))
        logsnr_start = lo
    logsnr = torch.linspace(logsnr_start, logsnr_end, steps + 1, dtype=torch.float64)
    t = torch.sigmoid(-logsnr)
    t[0], t[-1] = start, 0.0
    return t.to(torch.float32)


def check_start(start: float) -> float:
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0.0 <= start <= 1.0:
        raise ValueError(f"the start time (strength) must be a number from 0 to 1, got {start!r}")
    return float(start)


def noised(x0: torch.Tensor, eps: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    return (1 - t) * x0 + t * eps


def predicted_x0(x: torch.Tensor, v: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    return x - t * v


def euler_step(x: torch.Tensor, v: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    return x + (t_next - t) * v


def pingpong_step(x: torch.Tensor, v: torch.Tensor, t: float, t_next: float, eps: torch.Tensor) -> torch.Tensor:
    """Denoise fully to x0, then re-noise to t_next with fresh noise."""
    return noised(predicted_x0(x, v, t), eps, t_next)


def guided(v_cond: torch.Tensor, v_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: scale 1 is the conditional prediction alone."""
    return v_uncond + scale * (v_cond - v_uncond)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard-normal noise on `device`, drawn from `generator` wherever that lives: a CPU
    generator gives the same numbers on every device (copied over without waiting for the device's
    queued work), a generator on `device` draws there."""
    device = torch.device(device)
    source = generator.device if generator is not None else device
    x = torch.randn(shape, generator=generator, device=source, dtype=dtype)
    if x.device == device:
        return x
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)  # pinned: an async copy, no host sync
    return x.to(device)


Denoiser = Callable[[torch.Tensor, float, int], torch.Tensor]  # (x, t, step index) -> v


def sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    steps: int,
    sampler: str,
    generator: torch.Generator | None = None,
    *,
    init: torch.Tensor | None = None,
    start: float = 1.0,
) -> torch.Tensor:
    """Integrate from pure noise (t = 1) to a clean sample (t = 0).

    SDEdit: with `init` (clean latents shaped like `noise`) and `start` < 1, integrate from
    x = noised(init, noise, start) at t = start instead (`schedule(steps, start=start)`).
    start = 0 returns `init` unchanged (no model call); start = 1 ignores `init` entirely.
    """
    check_sampler(sampler)
    start = check_start(start)
    if start < 1.0 and init is None:
        raise ValueError("sampling from start < 1 (SDEdit) needs the clean latents to start from (init=...)")
    if start == 0.0:
        return init.to(noise.dtype).clone()
    ts = schedule(steps, start=start).tolist()
    x = noise if start == 1.0 else noised(init.to(noise.dtype), noise, start)
    return run_steps(denoise, x, ts, sampler, generator)


def run_steps(denoise: Denoiser, x: torch.Tensor, ts: list[float], sampler: str, generator: torch.Generator | None = None,
              count: int | None = None) -> torch.Tensor:
    """The sampler's loop: the first `count` steps (all, by default) of schedule `ts` from x at ts[0].

    Each step calls the denoiser once and, for ping-pong before the last step, draws one eps of
    x's shape from `generator` (after the denoiser). `sample` runs all of them; ARC-Forcing's
    rollouts run the first k - 1 without gradients and take step k's x0-prediction themselves.
    """
    for i in range(len(ts) - 1 if count is None else count):
        t, t_next = ts[i], ts[i + 1]
        v = denoise(x, t, i)
        if sampler == "euler" or t_next == 0.0:
            x = euler_step(x, v, t, t_next)  # with t_next = 0 both samplers return x0
        else:
            eps = randn(tuple(x.shape), generator, x.device, x.dtype)
            x = pingpong_step(x, v, t, t_next, eps)
    return x
