"""Rectified-flow sampling: the log-SNR schedule, Euler and ping-pong updates, guidance.

Rectified flow: x_t = (1 - t) x0 + t eps, and the model predicts v = eps - x0, so that
x0 = x_t - t v. Each function here is a small piece of math the tests call directly.
"""

from __future__ import annotations

from typing import Callable

import torch

SAMPLERS = ("euler", "pingpong")


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return name


def schedule(steps: int, logsnr_start: float = -6.0, logsnr_end: float = 2.0) -> torch.Tensor:
    """[steps + 1] times from 1 to 0: log-SNR linear in [start, end], t = sigmoid(-logSNR), ends forced."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    logsnr = torch.linspace(logsnr_start, logsnr_end, steps + 1, dtype=torch.float64)
    t = torch.sigmoid(-logsnr)
    t[0], t[-1] = 1.0, 0.0
    return t.to(torch.float32)


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


Denoiser = Callable[[torch.Tensor, float, int], torch.Tensor]  # (x, t, step index) -> v


def sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    steps: int,
    sampler: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integrate from pure noise (t = 1) to a clean sample (t = 0)."""
    check_sampler(sampler)
    ts = schedule(steps).tolist()
    x = noise
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        v = denoise(x, t, i)
        if sampler == "euler" or t_next == 0.0:
            x = euler_step(x, v, t, t_next)  # with t_next = 0 both samplers return x0
        else:
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = pingpong_step(x, v, t, t_next, eps)
    return x
