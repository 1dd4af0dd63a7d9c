"""Learning-rate schedules as pure functions of the step, and the torch scheduler around them.

`lr_factor(schedule, step, total_steps, warmup_fraction)` is the multiplier of the peak
learning rate for optimizer step `step` (0-based). The scheduler is a LambdaLR over a plain
function, so its state_dict holds only numbers and checkpoints load with weights_only=True.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    if warmup_fraction <= 0 or total_steps < 2:
        return 0
    return max(1, min(total_steps - 1, math.ceil(total_steps * warmup_fraction)))


def onecycle_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Linear ramp 0 -> 1 over the warm-up steps, then linear 1 -> 0 at the end (triangle).

    The first step uses 1/warmup of the peak (never 0) and the last a small positive value.
    """
    warm = warmup_steps(total_steps, warmup_fraction)
    if step < warm:
        return (step + 1) / warm
    remaining = total_steps - warm
    return max(0.0, (total_steps - step) / remaining) if remaining > 0 else 1.0


def lr_factor(schedule: str, step: int, total_steps: int, warmup_fraction: float) -> float:
    if schedule == "constant":
        return 1.0
    if schedule in ("onecycle", "linear"):  # "linear": the same ramp, usually without warm-up
        return onecycle_factor(step, total_steps, warmup_fraction)
    raise ValueError(f"unknown schedule '{schedule}'")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup_fraction: float) -> LambdaLR:
    """A per-step scheduler: call `.step()` after every optimizer step."""
    lr_factor(schedule, 0, total_steps, warmup_fraction)  # fail early on an unknown name

    def factor(step: int) -> float:
        return lr_factor(schedule, step, total_steps, warmup_fraction)

    return LambdaLR(optimizer, factor)
