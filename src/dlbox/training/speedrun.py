"""The speedrun recipe: train dlbox's airbench-style network as fast as the device allows.

Written from the published methods of airbench (Keller Jordan, arXiv 2404.00498, and the
public cifar10-airbench scripts' descriptions), not from its code:

* the whole training split stays on the device as uint8; each epoch is augmented at once
  (random 2-pixel translation with reflect padding, and *alternating* flips: every image
  gets a random flip once, and all images are mirrored on every other epoch, so each
  image is seen both ways in any two consecutive epochs);
* the first layer is a frozen patch-whitening conv set from the training data
  (dlbox.training.whitening); its bias trains for the first few epochs only;
* BatchNorm with a frozen scale; label smoothing 0.2; the loss summed over the batch;
* optimizer: Muon (momentum, then Newton-Schulz orthogonalisation of each conv's update,
  weights renormalised) for the 3x3 filters, Nesterov SGD for the biases and the head;
  or (`optimizer="sgd"`, no CLI flag) Nesterov SGD for all with the Muon recipe's
  numbers, and lookahead averaging when `lookahead` is set (written into the weights at the
  last step only, where airbench94 writes it at every epoch's end);
* a short schedule: linear (optionally with a warm-up, i.e. a trapezoid/triangle) decay;
* bf16 autocast and channels_last on CUDA, float32 on the CPU; optional torch.compile,
  warmed up on random data before the clock starts;
* test-time augmentation (dlbox.training.tta: flip + 1-pixel translations, 6 views).

Timing follows airbench's rule: CUDA events on a GPU (perf_counter on the CPU) around the
whitening initialisation, the training epochs (including their augmentation) and the final
TTA evaluation; data loading, compilation warm-up and per-epoch evaluations are not counted.

    result = train_speedrun(train_set, test_set, SpeedrunConfig(), torch.device("cuda"))
    print(result.tta_accuracy, result.time_seconds)
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlbox.data.augment import flip_where, random_crop, random_cutout
from dlbox.data.dataset import ImageDataset
from dlbox.errors import UsageError
from dlbox.models.speedrun import DEFAULT_WIDTHS, SpeedrunNet
from dlbox.training.checkpoint import (
    CheckpointParts,
    expect_history,
    expect_type,
    restore_generator,
)
from dlbox.training.config import TrainConfig
from dlbox.training.device import amp_dtype
from dlbox.training.inputs import CIFAR10_MEAN, CIFAR10_STD, prepare_batch
from dlbox.training.optim import NesterovSGD, PlainOptimizer
from dlbox.training.tta import TTA_LEVELS, tta_logits

OPTIMIZERS = ("muon", "sgd")
FLIP_MODES = ("alternate", "random", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class SpeedrunConfig:
    """Every setting of a speedrun. Defaults: airbench94_muon's published recipe (GPU).

    Learning rates are for a loss *summed* over the batch. With optimizer "muon",
    `filter_lr`/`filter_momentum` are Muon's (3x3 conv filters); with "sgd" the filters use
    Nesterov SGD at `filter_lr` with `momentum`. `weight_decay` is L2 added to the gradient
    of the Nesterov SGD groups (see build_optimizers): not to Muon's filters.
    The schedule multiplies every lr by a piecewise-linear factor: `lr_start` at step 0,
    1 at `lr_peak` (fraction of the steps), `lr_end` at the last step.
    """

    epochs: float = 8.0
    batch_size: int = 2000
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    depth: int = 2
    whiten_stride: int = 1  # 2 halves the resolution of every layer (4x less compute; CPU)
    optimizer: str = "muon"
    filter_lr: float = 0.24
    filter_momentum: float = 0.6
    bias_lr: float = 0.053
    head_lr: float = 0.67
    momentum: float = 0.85
    weight_decay: float = 2e-6
    label_smoothing: float = 0.2
    lr_start: float = 1.0
    lr_peak: float = 0.0
    lr_end: float = 0.0
    whiten_bias_epochs: float = 3.0
    whiten_eps: float = 5e-4
    whiten_images: int = 5000
    lookahead: bool = False
    lookahead_start_epochs: float = 3.0
    lookahead_every: int = 5
    lookahead_decay: float = 0.95
    lookahead_power: float = 3.0
    flip: str = "alternate"
    translate: int = 2
    cutout: int = 0  # side of the square cut out of each training image per epoch; 0: none
    tta_level: int = 2
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    compile_mode: str | None = None
    threads: int | None = None
    seed: int = 0
    eval_every: float | None = None  # epochs between (untimed) test evaluations; None: end only
    eval_batch_size: int = 2000
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        problems = []
        if not self.epochs > 0:
            problems.append(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append("batch sizes must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.flip not in FLIP_MODES:
            problems.append(f"flip must be one of {FLIP_MODES}, got {self.flip!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.tta_level not in TTA_LEVELS:
            problems.append(f"tta_level must be one of {TTA_LEVELS}, got {self.tta_level}")
        if self.translate < 0 or self.translate >= 16:
            problems.append(f"translate must be in 0..15 pixels, got {self.translate}")
        if not 0 <= self.cutout <= 32:
            problems.append(f"cutout must be in 0..32 pixels, got {self.cutout}")
        if not 0 <= self.lr_peak <= 1:
            problems.append(f"lr_peak is a fraction of the steps in [0, 1], got {self.lr_peak}")
        if min(self.filter_lr, self.bias_lr, self.head_lr) <= 0:
            problems.append("learning rates must be > 0")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if problems:
            raise UsageError(f"speedrun config: {problems[0]}",
                             hint="fix the setting (see dlbox.training.speedrun.SpeedrunConfig)")

    def replace(self, **changes: Any) -> SpeedrunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("widths", "mean", "std"):
            data[key] = list(data[key])
        return data


# ---- from a `dlbox train` config ------------------------------------------------------------

# The architecture settings of the registry's `speedrun` factory that SpeedrunConfig records.
_MODEL_FIELDS = ("widths", "depth", "whiten_stride")


def config_from_train(train_config: TrainConfig, **changes: Any) -> SpeedrunConfig:
    """The SpeedrunConfig for a `dlbox train --model speedrun` run (a TrainConfig: the
    model's recipe plus the flags given), on top of the defaults above.

    lr is Muon's filter lr; the bias and head lrs scale with it (their ratios to 0.24 stay);
    momentum is Muon's; weight_decay is the SGD groups' L2 (see build_optimizers);
    flip on = alternating flips; crop_padding = the translation in pixels; tta on = level 2;
    --no-amp = fp32. Schedules: "linear"/"onecycle" rise from 0 to 1 over `warmup_fraction`
    of the steps (straight from 1 without warm-up), then fall linearly to 0; "constant" stays
    at 1. Per-epoch (untimed) test evaluations are on, as in the generic loop.
    """
    base = SpeedrunConfig()
    c = train_config
    lr_scale = c.lr / base.filter_lr
    warm = 0.0 if c.schedule == "constant" else c.warmup_fraction
    values: dict[str, Any] = dict(
        epochs=float(c.epochs), batch_size=c.batch_size,
        filter_lr=c.lr, bias_lr=base.bias_lr * lr_scale, head_lr=base.head_lr * lr_scale,
        filter_momentum=c.momentum, weight_decay=c.weight_decay,
        label_smoothing=c.label_smoothing,
        lr_start=0.0 if warm > 0 else 1.0, lr_peak=warm,
        lr_end=1.0 if c.schedule == "constant" else 0.0,
        flip="alternate" if c.flip else "none", translate=c.crop_padding, cutout=c.cutout,
        tta_level=2 if c.tta else 0, precision="fp32" if c.amp is False else "auto",
        channels_last=c.channels_last, threads=c.threads, seed=c.seed, eval_every=1.0,
        eval_batch_size=c.eval_batch_size, mean=tuple(c.mean), std=tuple(c.std),
    )
    for key in _MODEL_FIELDS:
        if key in c.model_kwargs:
            value = c.model_kwargs[key]
            values[key] = tuple(int(v) for v in value) if key == "widths" else int(value)
    values.update(changes)
    return base.replace(**values)


# ---- schedules (pure) ---------------------------------------------------------------------


def piecewise_linear(step: float, points: Sequence[tuple[float, float]]) -> float:
    """Linear interpolation through (x, y) points sorted by x; flat beyond the ends."""
    if not points:
        raise ValueError("need at least one point")
    if step <= points[0][0]:
        return float(points[0][1])
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if step <= x1:
            if x1 == x0:
                return float(y1)
            return float(y0 + (y1 - y0) * (step - x0) / (x1 - x0))
    return float(points[-1][1])


def trapezoid_factor(step: int, total_steps: int, start: float = 1.0, peak: float = 0.0,
                     end: float = 0.0) -> float:
    """lr multiplier at `step` of `total_steps`: `start` at 0, 1 at fraction `peak` of the
    steps, `end` at the last step (airbench94: start 0.2, peak 0.23, end 0.07; airbench94_muon:
    1, 0, 0, a plain linear decay)."""
    if total_steps <= 0:
        return 1.0
    peak_step = peak * total_steps
    return piecewise_linear(step, [(0.0, start), (peak_step, 1.0), (float(total_steps), end)])


def whiten_bias_factor(step: int, whiten_steps: int) -> float:
    """The whitening bias's lr multiplier: linear from 1 to 0 over its `whiten_steps`."""
    if whiten_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / whiten_steps)


def lookahead_decay(step: int, total_steps: int, base: float, every: int, power: float) -> float:
    """How much of the averaged weights a lookahead update keeps (grows toward the end)."""
    return (base ** every) * (step / max(1, total_steps)) ** power


# ---- data (pure tensor ops on the device) --------------------------------------------------


def preprocess(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
               channels_last: bool = False) -> torch.Tensor:
    """uint8 [N, 3, H, W] on its device -> float32: scale to 0..1, subtract `mean`, divide by
    `std` per channel, with the generic loop's own code (dlbox.training.inputs), so a
    speedrun run evaluates and predicts through the shared path with the same numbers."""
    return prepare_batch(images, images.device, channels_last, mean=tuple(mean), std=tuple(std))


def augment_epoch(images: torch.Tensor, epoch: int, base_flip: torch.Tensor | None,
                  flip: str, translate: int, generator: torch.Generator | None,
                  cutout: int = 0, fill: Sequence[float] | None = None) -> torch.Tensor:
    """One epoch's augmented copy of the whole uint8 training set.

    flip "alternate": image i is mirrored when base_flip[i] XOR (epoch is odd);
    "random": a fresh coin per image; "none": never. translate: shift by up to that many
    pixels each way (reflect padding). cutout: then cover a square of that side in each
    image with `fill` (per channel, 0..255)."""
    out = random_crop(images, translate, generator=generator, mode="reflect") if translate \
        else images
    if flip == "alternate":
        if base_flip is None:
            raise ValueError("alternating flip needs the base flip mask")
        mask = base_flip if epoch % 2 == 0 else ~base_flip
        out = flip_where(out, mask)
    elif flip == "random":
        mask = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
        out = flip_where(out, mask)
    if cutout:
        out = random_cutout(out, cutout, fill, generator=generator)
    return out


# ---- Muon ----------------------------------------------------------------------------------


def orthogonalize(matrix: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately replace the singular values of a matrix by ~1 (U S V^T -> U V^T)
    with a few quintic Newton-Schulz iterations, coefficients (3.4445, -4.7750, 2.0315) as
    published for Muon (K. Jordan et al., 2024); cheap, and bf16-safe on a GPU.
    `matrix` is [m, n], or a stack [k, m, n] of matrices, each orthogonalised on its own."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.bfloat16() if matrix.is_cuda else matrix.float()
    x = x / (torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True) + eps)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    if transposed:
        x = x.mT
    return x.to(matrix.dtype)


class Muon(PlainOptimizer):
    """Momentum, orthogonalised update, renormalised weights: for conv filters (ndim >= 2).

    Each step: buf = momentum * buf + grad; update = grad + momentum * buf (Nesterov) or buf;
    the weight is rescaled to norm sqrt(out_channels), then moves by -lr * orthogonalize(
    update reshaped to [out, -1]). Filters of the same shape are orthogonalised as one
    stack (batched matmuls): on a GPU each Newton-Schulz chain is ~15 small kernels, and
    speedrun's GPU net has three [256, 2304] filters."""

    def __init__(self, params: Any, lr: float = 0.24, momentum: float = 0.6,
                 nesterov: bool = True, ns_steps: int = 3) -> None:
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError("Muon needs lr > 0 and momentum in [0, 1)")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      ns_steps=ns_steps))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params, updates = self.momentum_updates(group)
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for index, p in enumerate(params):
                p.mul_(len(p) ** 0.5 / (p.norm() + 1e-12))
                by_shape.setdefault(tuple(p.shape), []).append(index)
            for indices in by_shape.values():
                matrices = [updates[i].reshape(len(updates[i]), -1) for i in indices]
                stacked = matrices[0][None] if len(matrices) == 1 else torch.stack(matrices)
                ortho = orthogonalize(stacked, group["ns_steps"])
                for i, o in zip(indices, ortho.unbind(0), strict=True):
                    params[i].add_(o.view_as(params[i]), alpha=-group["lr"])


# ---- timing --------------------------------------------------------------------------------


class Stopwatch:
    """Accumulates seconds between start() and stop(): CUDA events on a GPU (exact device
    time, as airbench counts), perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.seconds = 0.0
        self._t0 = 0.0
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.cuda:
            self._start.record(torch.cuda.current_stream(self.device))
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._end.record(torch.cuda.current_stream(self.device))
            torch.cuda.synchronize(self.device)
            self.seconds += 1e-3 * self._start.elapsed_time(self._end)
        else:
            self.seconds += time.perf_counter() - self._t0
        return self.seconds


# ---- the run -------------------------------------------------------------------------------


@dataclass
class SpeedrunResult:
    model: nn.Module  # the trained model (not compiled), eval mode, on the device
    config: SpeedrunConfig
    accuracy: float | None  # test accuracy without TTA (None without test data)
    tta_accuracy: float | None  # with TTA at config.tta_level
    time_seconds: float  # airbench's rule: whitening init + epochs + final TTA evaluation
    train_seconds: float  # whitening init + epochs only
    eval_seconds: float  # the final TTA evaluation
    warmup_seconds: float  # warm-up before the clock: compile, GPU libraries (not counted)
    steps: int
    epochs_run: float
    images_seen: int
    history: list[dict[str, Any]] = field(default_factory=list)
    # untimed test evaluations during training: steps, epochs, train_seconds, test_accuracy
    curve: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False  # `should_stop` ended training early (state as of the last epoch)
    # the final evaluation's logits [N, C] of the test images (TTA at config.tta_level),
    # float32 on the CPU; None without test data or when stopped early
    test_logits: torch.Tensor | None = None

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds > 0 else 0.0


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype. 'auto': bf16 on a CUDA GPU that has it, else fp16 (pre-Ampere,
    the dtype `dlbox evaluate` reloads the model in too: dlbox.training.device.amp_dtype);
    none (float32) on the CPU."""
    if precision == "fp32":
        return None
    if precision == "auto":
        return amp_dtype(device)
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16


def build_model(config: SpeedrunConfig, num_classes: int, device: torch.device,
                channels_last: bool) -> SpeedrunNet:
    model = SpeedrunNet(num_classes, widths=config.widths, depth=config.depth,
                        whiten_stride=config.whiten_stride).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def build_optimizers(model: SpeedrunNet, config: SpeedrunConfig,
                     batch_size: int | None = None) -> list[PlainOptimizer]:
    """Param groups: whitening bias, BN biases, head (Nesterov SGD), 3x3 filters (Muon/SGD).

    Weight decay, as airbench parameterises it: each Nesterov SGD group adds L2 to its
    gradient (coupled, as torch.optim.SGD does), with the coefficient weight_decay *
    batch_size / the group's lr, so that lr times it, weight_decay * batch_size * the
    schedule's factor, does not depend on the lr. It goes through the momentum buffer, which
    amplifies it (1 + momentum on the first step, about 1 / (1 - momentum) once built up:
    6.7x at 0.85). Muon's group, the 3x3 filters, gets none (Muon resets their norm every
    step); with optimizer "sgd" the filters are an SGD group and get it too. `batch_size`
    is the batch the steps really take (the loss is a sum over it), which is smaller than
    config.batch_size when the training set is; default config.batch_size."""
    decay = config.weight_decay * (batch_size if batch_size is not None else config.batch_size)
    norm_biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    filters = [p for n, p in model.named_parameters()
               if p.requires_grad and p.dim() == 4 and not n.startswith("whiten")]
    groups = [
        dict(params=[model.whiten_bias], lr=config.bias_lr, weight_decay=decay / config.bias_lr,
             name="whiten_bias"),
        dict(params=norm_biases, lr=config.bias_lr, weight_decay=decay / config.bias_lr,
             name="norm_biases"),
        dict(params=[model.head.weight], lr=config.head_lr, weight_decay=decay / config.head_lr,
             name="head"),
    ]
    # dlbox's own (dlbox.training.optim): torch.optim's first call costs a 2-3 s import.
    optimizers: list[PlainOptimizer] = []
    if config.optimizer == "sgd":
        groups.append(dict(params=filters, lr=config.filter_lr,
                           weight_decay=decay / config.filter_lr, name="filters"))
        optimizers.append(NesterovSGD(groups, momentum=config.momentum, nesterov=True))
    else:
        optimizers.append(NesterovSGD(groups, momentum=config.momentum, nesterov=True))
        optimizers.append(Muon(filters, lr=config.filter_lr, momentum=config.filter_momentum,
                               nesterov=True))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers


def set_learning_rates(optimizers: Sequence[PlainOptimizer], step: int,
                       total_steps: int, whiten_steps: int, config: SpeedrunConfig) -> None:
    factor = trapezoid_factor(step, total_steps, config.lr_start, config.lr_peak, config.lr_end)
    whiten = whiten_bias_factor(step, whiten_steps)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group_factor = whiten if group.get("name") == "whiten_bias" else factor
            group["lr"] = group["initial_lr"] * group_factor


class Lookahead:
    """Every few steps, pull the weights (and BN statistics) toward a running average and copy
    the average back in (airbench94's 'lookahead' EMA)."""

    def __init__(self, model: nn.Module) -> None:
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()
                        if v.is_floating_point()}

    @classmethod
    def from_average(cls, average: dict[str, torch.Tensor], device: torch.device) -> Lookahead:
        self = cls.__new__(cls)
        self.average = {k: v.to(device) for k, v in average.items()}
        return self

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for key, avg in self.average.items():
            avg.lerp_(state[key], 1.0 - decay)
            state[key].copy_(avg)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate_logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                    config: SpeedrunConfig, device: torch.device, tta_level: int,
                    channels_last: bool, amp: torch.dtype | None) -> torch.Tensor:
    """Logits [N, C] (float32, on the device) of uint8 `images`, with TTA at `tta_level`."""
    outputs = []
    with _autocast(device, amp):
        for chunk in images.split(config.eval_batch_size):
            inputs = preprocess(chunk.to(device, non_blocking=True), config.mean, config.std,
                                channels_last)
            outputs.append(tta_logits(model, inputs, tta_level).float())
    return torch.cat(outputs) if outputs else torch.empty(0)


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if labels.numel() == 0:
        return float("nan")
    return int((logits.argmax(1) == labels.to(logits.device)).sum()) / labels.numel()


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)


def _warm_up(forward: Callable[..., torch.Tensor], model: SpeedrunNet,
             config: SpeedrunConfig, device: torch.device, num_classes: int,
             channels_last: bool, amp: torch.dtype | None, batch: int,
             eval_sizes: Sequence[int]) -> None:
    """Run the model (compiled or not) through every shape and mode the timed run will use,
    on random data, then undo every change to it. Nothing here is timed.

    Train steps with and without the whitening bias's gradient (train batches are always
    full); evaluation with both, at TTA levels 0 and the config's, for each batch size in
    `eval_sizes` (the eval batch and the test set's last partial one); one whitening solve
    (cuSOLVER's set-up); and every other kernel a timed step launches: the epoch's
    augmentation and shuffle, both optimizers' steps (Muon's Newton-Schulz matmuls, the
    SGD updates; on throwaway optimizers) and the lookahead average. On a GPU without
    compile this still pays cuDNN's algorithm search, the libraries' lazy start-up and each
    kernel's first (lazy) load outside the clock."""
    saved = copy.deepcopy(model.state_dict())
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device,
                           generator=generator)
    labels = torch.randint(0, num_classes, (batch,), device=device, generator=generator)
    base_flip = torch.rand(batch, generator=generator, device=device) < 0.5
    augmented = augment_epoch(images, 0, base_flip, config.flip, config.translate, generator,
                              config.cutout, [255.0 * m for m in config.mean])
    order = torch.randperm(batch, generator=generator, device=device)
    inputs = preprocess(augmented[order], config.mean, config.std, channels_last)
    model.init_whitening(preprocess(images[:64], config.mean, config.std), max_images=None)
    optimizers = build_optimizers(model, config, batch)
    lookahead = Lookahead(model) if config.lookahead else None
    model.train()
    for bias_grad in (True, False):
        model.whiten_bias.requires_grad_(bias_grad)
        for _ in range(2):
            with _autocast(device, amp):
                loss = F.cross_entropy(forward(inputs), labels[order],
                                       label_smoothing=config.label_smoothing, reduction="sum")
            loss.backward()
            set_learning_rates(optimizers, 1, 4, 2, config)
            for optimizer in optimizers:
                optimizer.step()
            model.zero_grad(set_to_none=True)
    if lookahead is not None:
        lookahead.update(model, 0.5)
    model.eval()
    for bias_grad in (True, False):
        model.whiten_bias.requires_grad_(bias_grad)
        for size in dict.fromkeys(n for n in eval_sizes if n > 0):
            eval_images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8,
                                        device=device)
            for level in dict.fromkeys((0, config.tta_level)):
                evaluate_logits(forward, eval_images, config, device, level, channels_last,
                                amp)
    model.whiten_bias.requires_grad_(True)
    model.load_state_dict(saved)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class ResumePoint:
    """Where a resumed speedrun goes on from (restore_speedrun's result)."""

    base_flip: torch.Tensor | None
    lookahead: Lookahead | None
    step: int
    epoch: int
    images_seen: int
    train_seconds: float
    history: list[dict[str, Any]]
    curve: list[dict[str, Any]]


def restore_speedrun(saved: Any, path: str | Path, optimizers: Sequence[PlainOptimizer],
                     generator: torch.Generator, device: torch.device) -> ResumePoint:
    """The speedrun trainer's restore: a state `on_epoch` got (all but the model's weights)
    into its optimizers and generator. A damaged part is a RunDirError naming it; `dlbox
    train --resume` rehearses this on throwaway copies before it writes anything."""
    parts = CheckpointParts(path)
    with parts.reading():
        parts("the speedrun state")
        expect_type(saved, dict, "it")
        parts("the optimizers' state")
        for optimizer, optimizer_state in zip(optimizers, saved["optimizers"], strict=True):
            optimizer.load_state_dict(optimizer_state)
        parts("the random state")
        restore_generator(generator, expect_type(saved["generator"], torch.Tensor, "generator"))
        base_flip = expect_type(saved.get("base_flip"), (torch.Tensor, type(None)), "base_flip")
        average = expect_type(saved.get("lookahead"), (dict, type(None)), "lookahead")
        parts("the counters")
        return ResumePoint(
            base_flip=base_flip.to(device) if base_flip is not None else None,
            lookahead=Lookahead.from_average(average, device) if average is not None else None,
            step=int(saved["step"]), epoch=int(saved["epoch"]),
            images_seen=int(saved["images_seen"]), train_seconds=float(saved["train_seconds"]),
            history=expect_history(saved["history"]), curve=list(saved["curve"]))


def train_speedrun(train: ImageDataset, test: ImageDataset | None, config: SpeedrunConfig,
                   device: torch.device | str = "cpu",
                   on_epoch: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                   make_model: Callable[[int], nn.Module] | None = None,
                   resume_state: dict[str, Any] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_step: Callable[[int, int, Callable[[], tuple[float, float]]], None]
                   | None = None,
                   resume_path: str | Path = "(resume state)",
                   ) -> SpeedrunResult:
    """Train a SpeedrunNet on `train` and measure it on `test` (see the module docstring).

    `on_epoch(entry, state)` is called once after every epoch (outside the clock) with the
    epoch's history entry: epoch, steps, train_seconds, train_loss, train_accuracy,
    images_per_second, and test_accuracy when an evaluation ran (every `config.eval_every`
    epochs, and at the end); and with the state at that epoch's end, everything needed to
    continue (model, optimizers, the generator, counters, history ending with `entry`;
    tensors and plain values only), and eval_seconds and warmup_seconds, which with
    train_seconds, images_seen and step give SpeedrunResult's numbers once the last epoch
    has run. `make_model(num_classes)` builds the network (called
    after seeding; `dlbox train` passes the registry's factory, so the run dir's model is
    rebuilt the same way); None builds one from config.widths, depth and whiten_stride.

    Stopping and resuming, at epoch boundaries: `resume_state` takes a state that `on_epoch`
    got back, so a resumed run ends with the weights of an uninterrupted one (a damaged part
    of it is a RunDirError naming `resume_path`).
    `should_stop()`, asked after every step, ends training early: the partial epoch is
    dropped and the result says `stopped`. `on_step(step_in_epoch, steps_per_epoch, stats)`
    reports progress after every step; `stats()` gives the epoch's running (loss, accuracy),
    and costs a device sync, so a caller asks for it only when it draws.
    """
    device = torch.device(device)
    if len(train) == 0:
        raise UsageError("the training set is empty", hint="pass data with training images")
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _seed_everything(config.seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    amp = resolve_precision(config.precision, device)
    channels_last = (device.type == "cuda") if config.channels_last is None \
        else config.channels_last
    num_classes = len(train.classes)

    # Data loading (not timed): the whole split moves to the device once, as uint8.
    train_images = train.images.to(device)
    train_labels = train.labels.to(device)
    test_images = test.images.to(device) if test is not None else None
    test_labels = test.labels.to(device) if test is not None else None

    batch = min(config.batch_size, len(train))
    steps_per_epoch = len(train) // batch  # drop the last partial batch, as airbench does
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    whiten_steps = math.ceil(config.whiten_bias_epochs * steps_per_epoch)
    lookahead_start = math.ceil(config.lookahead_start_epochs * steps_per_epoch)

    if make_model is None:
        model = build_model(config, num_classes, device, channels_last)
    else:
        built = make_model(num_classes).to(device)
        if not isinstance(built, SpeedrunNet):
            raise UsageError(f"the speedrun trainer trains a SpeedrunNet, got "
                             f"{type(built).__name__}", hint="train it with the generic loop")
        model = built
        if channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    forward: Callable[..., torch.Tensor] = model
    warmup_seconds = 0.0
    if config.compile or device.type == "cuda":
        t0 = time.perf_counter()
        if config.compile:
            forward = torch.compile(model, mode=config.compile_mode)  # type: ignore[assignment]
        num_test = len(test) if test is not None else 0
        eval_sizes = (min(config.eval_batch_size, num_test), num_test % config.eval_batch_size)
        _warm_up(forward, model, config, device, num_classes, channels_last, amp, batch,
                 eval_sizes)
        warmup_seconds = time.perf_counter() - t0

    clock = Stopwatch(device)
    eval_clock = Stopwatch(device)

    if resume_state is None:
        # Whitening from the first images of the training set (timed, as airbench does).
        clock.start()
        sample = preprocess(train_images[: config.whiten_images], config.mean, config.std)
        model.init_whitening(sample, eps=config.whiten_eps, max_images=None)
        del sample
        clock.stop()
    else:
        model.load_state_dict(resume_state["model"])

    optimizers = build_optimizers(model, config, batch)
    lookahead: Lookahead | None = None
    base_flip = (torch.rand(len(train), generator=generator, device=device) < 0.5) \
        if config.flip == "alternate" else None
    eval_steps = max(1, round(config.eval_every * steps_per_epoch)) \
        if config.eval_every and test_images is not None else None
    history: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    step = 0
    images_seen = 0
    epoch = 0
    accuracy: float | None = None
    test_logits: torch.Tensor | None = None
    stopped = False
    if resume_state is not None:
        point = restore_speedrun(resume_state, resume_path, optimizers, generator, device)
        base_flip = point.base_flip if point.base_flip is not None else base_flip
        lookahead = point.lookahead
        step, epoch, images_seen = point.step, point.epoch, point.images_seen
        clock.seconds = point.train_seconds
        history, curve = point.history, point.curve

    def training_state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in optimizers],
            "generator": generator.get_state(),
            "base_flip": base_flip.cpu() if base_flip is not None else None,
            "lookahead": ({k: v.cpu() for k, v in lookahead.average.items()}
                          if lookahead is not None else None),
            "step": step, "epoch": epoch, "images_seen": images_seen,
            "train_seconds": clock.seconds, "history": list(history), "curve": list(curve),
            # for the caller's summary after the last epoch (a resume does not read them)
            "eval_seconds": eval_clock.seconds, "warmup_seconds": warmup_seconds,
        }

    def record_point() -> None:
        """An untimed test evaluation (no TTA) for the time-to-accuracy curve."""
        assert test_images is not None and test_labels is not None
        model.eval()
        logits = evaluate_logits(forward, test_images, config, device, 0, channels_last, amp)
        curve.append({"steps": step, "epochs": round(step / steps_per_epoch, 4),
                      "train_seconds": round(clock.seconds, 4),
                      "test_accuracy": accuracy_of(logits, test_labels)})
        model.train()

    while step < total_steps:
        clock.start()
        model.train()
        if step >= whiten_steps and model.whiten_bias.requires_grad:
            model.whiten_bias.requires_grad_(False)
        epoch_images = augment_epoch(train_images, epoch, base_flip, config.flip,
                                     config.translate, generator, config.cutout,
                                     [255.0 * m for m in config.mean])
        order = torch.randperm(len(train), generator=generator, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for i in range(steps_per_epoch):
            if step >= total_steps:
                break
            if step == whiten_steps:
                model.whiten_bias.requires_grad_(False)
            index = order[i * batch:(i + 1) * batch]
            inputs = preprocess(epoch_images[index], config.mean, config.std, channels_last)
            labels = train_labels[index]
            with _autocast(device, amp):
                logits = forward(inputs)
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing,
                                       reduction="sum")
            loss.backward()
            set_learning_rates(optimizers, step, total_steps, whiten_steps, config)
            for optimizer in optimizers:
                optimizer.step()
            model.zero_grad(set_to_none=True)
            step += 1
            if config.lookahead and step >= lookahead_start and step % config.lookahead_every == 0:
                if lookahead is None:
                    lookahead = Lookahead(model)
                else:
                    lookahead.update(model, lookahead_decay(
                        step, total_steps, config.lookahead_decay, config.lookahead_every,
                        config.lookahead_power))
            loss_sum += loss.detach().float()
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += labels.shape[0]
            if eval_steps and step % eval_steps == 0 and step < total_steps:
                clock.stop()
                record_point()
                clock.start()
            if on_step is not None:
                def running(ls: torch.Tensor = loss_sum, c: torch.Tensor = correct,
                            n: int = seen) -> tuple[float, float]:
                    return float(ls) / n, float(c) / n
                on_step(i + 1, steps_per_epoch, running)
            if should_stop is not None and should_stop():
                stopped = True
                break
        if stopped:
            clock.stop()
            break
        if lookahead is not None and step >= total_steps:
            lookahead.update(model, 1.0)  # the last step: the weights become the average
        clock.stop()
        epoch += 1
        images_seen += seen
        entry: dict[str, Any] = {
            "epoch": epoch,
            "steps": step,
            "train_seconds": round(clock.seconds, 4),
            "train_loss": float(loss_sum) / max(1, seen),
            "train_accuracy": float(correct) / max(1, seen),
            "images_per_second": images_seen / clock.seconds if clock.seconds > 0 else None,
        }
        if curve and curve[-1]["steps"] == step:
            entry["test_accuracy"] = curve[-1]["test_accuracy"]
        if step >= total_steps and test_images is not None and test_labels is not None:
            model.eval()
            # The final evaluation with TTA is timed (airbench's rule); the plain one is not.
            eval_clock.start()
            tta_out = evaluate_logits(forward, test_images, config, device, config.tta_level,
                                      channels_last, amp)
            eval_clock.stop()
            plain = tta_out if config.tta_level == 0 else evaluate_logits(
                forward, test_images, config, device, 0, channels_last, amp)
            accuracy = accuracy_of(plain, test_labels)
            entry["outputs_finite"] = bool(torch.isfinite(plain).all()
                                           and torch.isfinite(tta_out).all())
            entry["test_accuracy"] = accuracy
            entry["test_accuracy_tta"] = accuracy_of(tta_out, test_labels)
            test_logits = tta_out.cpu()
            curve.append({"steps": step, "epochs": round(step / steps_per_epoch, 4),
                          "train_seconds": round(clock.seconds, 4), "test_accuracy": accuracy,
                          "test_accuracy_tta": entry["test_accuracy_tta"],
                          "time_seconds": round(clock.seconds + eval_clock.seconds, 4)})
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry, training_state())

    model.eval()
    tta_accuracy = history[-1].get("test_accuracy_tta") if history else None
    return SpeedrunResult(
        model=model, config=config, accuracy=accuracy, tta_accuracy=tta_accuracy,
        time_seconds=clock.seconds + eval_clock.seconds, train_seconds=clock.seconds,
        eval_seconds=eval_clock.seconds, warmup_seconds=warmup_seconds, steps=step,
        epochs_run=step / steps_per_epoch, images_seen=images_seen, history=history,
        curve=curve, stopped=stopped, test_logits=test_logits,
    )
