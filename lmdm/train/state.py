"""train_state.safetensors: what a run needs beyond the weights to continue exactly.

    step                     int64 [1]
    opt.<param>.<key>        AdamW moments (exp_avg, exp_avg_sq) and its per-parameter step
    rng.torch.<rank>         uint8: each rank's torch.Generator state (noise, t, dropout draws)
    rng.numpy.<rank>         uint8: each rank's numpy Generator state as JSON (which windows to crop)

Learning rates are not stored: they are a function of the step and the recipe.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch


def rng_state(generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
    """A JSON-able snapshot of one rank's random state (so ranks can gather it)."""
    return {"torch": generator.get_state().tolist(), "numpy": rng.bit_generator.state}


def state_tensors(optimizer: torch.optim.Optimizer, names: dict[int, str], step: int, rngs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """`names`: id(parameter) -> its prefixed name; `rngs`: rng_state() of every rank, in rank order."""
    tensors = {"step": torch.tensor([step], dtype=torch.int64)}
    for p, state in optimizer.state.items():
        for key, value in state.items():
            tensors[f"opt.{names[id(p)]}.{key}"] = torch.as_tensor(value).detach().cpu()
    for rank, s in enumerate(rngs):
        tensors[f"rng.torch.{rank}"] = torch.tensor(s["torch"], dtype=torch.uint8)
        tensors[f"rng.numpy.{rank}"] = torch.tensor(list(json.dumps(s["numpy"]).encode()), dtype=torch.uint8)
    return tensors


def restore(
    tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, names: dict[int, str], rank: int,
    generator: torch.Generator, rng: np.random.Generator,
) -> tuple[int, bool]:
    """Load optimizer moments and this rank's RNG states -> (step, whether this rank's RNG was found).

    A run resumed with another number of processes finds no state for new ranks; the caller
    then reseeds them (the run stays deterministic, but differs from an uninterrupted one).
    """
    order = [p for group in optimizer.param_groups for p in group["params"]]  # the optimizer's param indices
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index, p in enumerate(order):
        prefix = f"opt.{names[id(p)]}."
        entries = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if entries:
            state[index] = entries
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    found = f"rng.torch.{rank}" in tensors and f"rng.numpy.{rank}" in tensors
    if found:
        generator.set_state(tensors[f"rng.torch.{rank}"].clone())
        rng.bit_generator.state = json.loads(bytes(tensors[f"rng.numpy.{rank}"].tolist()).decode())
    return int(tensors["step"][0]), found
