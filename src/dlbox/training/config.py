"""TrainConfig: every setting of a training run, in one frozen dataclass.

It is built from the model's recipe (dlbox.models.registry.Recipe) plus what the user set on
the command line (`build_config`), written to the run's config.json, and read back by
`--resume`, `evaluate` and `predict` (`TrainConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from dlbox.errors import UsageError
from dlbox.training.inputs import CIFAR10_MEAN, CIFAR10_STD

SCHEDULES = ("onecycle", "linear", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """All settings of one training run. `None` means "decide from the device" (amp,
    channels_last, threads) or "all of them" (num_train, num_test)."""

    model: str = "resnet"
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.2
    schedule: str = "onecycle"
    warmup_fraction: float = 0.2
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0  # side of a square cut out of each training image (filled with the mean)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    tta: bool = False  # test-time augmentation (average with the mirror image) when evaluating
    device: str = "auto"
    seed: int = 0
    data_dir: str | None = None
    run_dir: str | None = None
    num_train: int | None = None
    num_test: int | None = None
    threads: int | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always saves one)
    eval_batch_size: int = 1000
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        for name in ("data_dir", "run_dir"):  # a Path (review: "must be a path, got PosixPath")
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        self.validate()

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                    "checkpoint_every": self.checkpoint_every,
                    "eval_batch_size": self.eval_batch_size}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive whole number, got {value!r}",
                                 hint=f"pass --{name.replace('_', '-')} 1 or more")
        if self.epochs > MAX_EPOCHS:  # a typo: 1e18 was taken, every epoch line 19 digits wide
            raise UsageError(f"--epochs {self.epochs} is more than {MAX_EPOCHS}",
                             hint=f"pass --epochs {MAX_EPOCHS} or less")
        for name in ("num_train", "num_test", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise UsageError(f"{name} must be a positive whole number, got {value!r}",
                                 hint=f"pass --{name.replace('_', '-')} 1 or more, or leave it out")
        for name in ("model", "schedule", "device"):
            if not isinstance(getattr(self, name), str):
                raise UsageError(f"{name} must be a name, got {getattr(self, name)!r}")
        # A hand-edited config.json's "flip": "no" would read as on, "amp": 1 as a switch.
        for name in ("nesterov", "flip", "tta"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("amp", "channels_last"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be true, false or null (the device decides), "
                                 f"got {getattr(self, name)!r}")
        for name in ("crop_padding", "cutout"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be a whole number of pixels, got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.model_kwargs, dict):
            raise UsageError(f"model_kwargs must be a dict of settings, got {self.model_kwargs!r}")
        # (value, a sensible example) of each float setting; NaN and inf pass `x > 0` checks
        # or make the run diverge, and JSON cannot hold them.
        floats = {"lr": (self.lr, "--lr 0.1"),
                  "weight_decay": (self.weight_decay, "--weight-decay 5e-4"),
                  "momentum": (self.momentum, "--momentum 0.9"),
                  "label_smoothing": (self.label_smoothing, "--label-smoothing 0.1"),
                  "warmup_fraction": (self.warmup_fraction, "\"warmup_fraction\": 0.2")}
        for name, (number, example) in floats.items():
            if not _is_finite_number(number):
                raise UsageError(f"{name} must be a finite number, got {number!r}",
                                 hint=f"e.g. {example}")
        if not self.lr > 0:
            raise UsageError(f"learning rate must be > 0, got {self.lr}", hint="pass --lr 0.1")
        # Past these the run only diverges, and float32 weights overflow on the first step.
        # Each named alone (review: --lr 1001 blamed a weight decay never given too).
        if self.lr > MAX_LR:
            raise UsageError(f"learning rate must be at most {MAX_LR:g}, got {self.lr:g}",
                             hint="e.g. --lr 0.1")
        if self.weight_decay > MAX_WEIGHT_DECAY:
            raise UsageError(f"weight decay must be at most {MAX_WEIGHT_DECAY:g}, got "
                             f"{self.weight_decay:g}", hint="e.g. --weight-decay 5e-4")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) \
                or not TORCH_MIN_SEED <= self.seed <= TORCH_MAX_SEED:
            raise UsageError(f"seed must be a whole number torch can take ({TORCH_MIN_SEED}.."
                             f"{TORCH_MAX_SEED}), got {self.seed!r}", hint="e.g. --seed 0")
        for name in ("data_dir", "run_dir"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise UsageError(f"{name} must be a path, got {getattr(self, name)!r}")
        if self.weight_decay < 0:
            raise UsageError(f"weight decay must be >= 0, got {self.weight_decay:g}",
                             hint="pass --weight-decay 0 or more, e.g. --weight-decay 5e-4")
        if not 0 <= self.momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), got {self.momentum:g}",
                             hint="e.g. --momentum 0.9")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"label smoothing must be in [0, 1), got {self.label_smoothing}",
                             hint="e.g. --label-smoothing 0.1")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown learning-rate schedule '{self.schedule}'",
                             hint=f"use one of: {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_fraction < 1:
            raise UsageError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.crop_padding < 0:
            raise UsageError(f"crop_padding must be >= 0, got {self.crop_padding}")
        if not 0 <= self.cutout <= 32:
            raise UsageError(f"cutout must be in 0..32 pixels, got {self.cutout}",
                             hint="use 0 (no cutout) or the side of the square, e.g. 12")
        if (len(self.mean) != 3 or len(self.std) != 3
                or not all(_is_finite_number(v) for v in (*self.mean, *self.std))
                or min(self.std) <= 0):
            raise UsageError("mean and std need 3 finite values each (RGB), std > 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of to_dict. Keys this version does not know are ignored; missing keys
        take their defaults, so config.json files from other dlbox versions still load."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        if "model_kwargs" in values:
            values["model_kwargs"] = dict(values["model_kwargs"] or {})
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def use_amp(self, device: torch.device) -> bool:
        """Mixed precision: on by default on CUDA, never on CPU (slower there)."""
        if device.type != "cuda":
            return False
        return True if self.amp is None else bool(self.amp)

    def use_channels_last(self, device: torch.device) -> bool:
        """channels_last: on by default on CUDA (tensor-core convolutions)."""
        if self.channels_last is None:
            return device.type == "cuda"
        return bool(self.channels_last)


# More epochs than any run could finish (review: 1e18 was taken).
MAX_EPOCHS = 100_000
MAX_LR = 1e3
MAX_WEIGHT_DECAY = 10.0
# torch.manual_seed's range (a signed or an unsigned 64-bit number): every run that trained
# had a seed in it, so no earlier config.json is refused (validate).
TORCH_MIN_SEED = -(2**63)
TORCH_MAX_SEED = 2**64 - 1
# The seeds a new run takes: torch's CPU generator (mt19937), which draws every model's
# initial weights (on CUDA runs too: models are built on the CPU), keeps the low 32 bits, and
# -1 is 2**64 - 1; beyond this range a seed trains the same run as another (review).
MIN_SEED = 0
MAX_SEED = 2**32 - 1


def check_new_seed(seed: int) -> None:
    """Refuse a new run's seed that would run as another seed (a resumed run keeps its own,
    whatever it is: validate takes all of torch's range)."""
    if isinstance(seed, int) and not isinstance(seed, bool) \
            and not MIN_SEED <= seed <= MAX_SEED:
        runs_as = seed % 2**32
        raise UsageError(f"--seed {seed} would run as seed {runs_as}: torch's CPU generator, "
                         "which draws the initial weights, keeps only the low 32 bits",
                         hint=f"pass a --seed from {MIN_SEED} to {MAX_SEED}, e.g. --seed "
                              f"{runs_as}")


THREADS_PER_CORE = 4  # the most --threads per core: more only slows training


def check_threads(threads: int | None) -> None:
    """Refuse more threads than THREADS_PER_CORE per core of this machine (torch crashes when
    asked for 100,000). Checked where the user sets it, not in validate: a run's config.json
    from a bigger machine still loads here."""
    from dlbox.training.device import available_cpus

    most = THREADS_PER_CORE * available_cpus()
    if isinstance(threads, int) and threads > most:
        raise UsageError(f"threads must be at most {most} ({THREADS_PER_CORE} per core of this "
                         f"machine), got {threads}", hint="leave --threads out to use every core")
    if isinstance(threads, int) and threads > available_cpus():
        # review: 8 on 2 cores made an epoch ten times slower, without a word
        from dlbox.text import plural, tell

        tell(f"note: --threads {threads} is more than the {plural(available_cpus(), 'core')} "
             "here: the threads take turns, which is often slower than one a core (leave "
             "--threads out for one a core)")


def _is_finite_number(value: Any) -> bool:
    """An int or float that is not NaN or infinite (and not a bool)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


RECIPE_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "momentum", "nesterov",
                 "label_smoothing", "schedule", "warmup_fraction", "crop_padding", "flip",
                 "cutout", "tta", "model_kwargs", "mean", "std")


def check_takes_width(name: str) -> None:
    """UsageError for `--width` on a model without one (speedrun sizes each stage, tutorial
    is fixed): its hint named settings no flag sets ("takes: widths, depth, ...")."""
    import inspect

    from dlbox.models.registry import get_model_info, model_names

    def has_width(model: str) -> bool:
        return "width" in inspect.signature(get_model_info(model).factory).parameters

    if not has_width(name):
        with_width = [model for model in model_names() if has_width(model)]
        raise UsageError(f"--width does not apply to model '{name}'",
                         hint=f"leave --width out; the models with a width: "
                              f"{', '.join(with_width)}")


def build_config(model: str | None = None, device: str = "auto", **overrides: Any) -> TrainConfig:
    """The model's recipe for this device, with every non-None override applied on top.

    `model=None` takes the default model for the device. `overrides` are TrainConfig fields
    (None = keep the recipe's value); `width=N` is shorthand for model_kwargs {"width": N}.
    """
    from dlbox.models.registry import default_model_for, get_model_info
    from dlbox.training.device import resolve_device

    resolved = resolve_device(device)
    name = model or default_model_for(resolved)
    recipe = get_model_info(name).recipe_for(resolved)
    values: dict[str, Any] = {key: getattr(recipe, key) for key in RECIPE_FIELDS}
    values["model_kwargs"] = dict(recipe.model_kwargs)
    for key in ("channels_last", "eval_batch_size", "threads"):
        if getattr(recipe, key) is not None:
            values[key] = getattr(recipe, key)
    width = overrides.pop("width", None)
    if width is not None:
        check_takes_width(name)
        values["model_kwargs"]["width"] = width
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
    values.update({key: value for key, value in overrides.items() if value is not None})
    if overrides.get("seed") is not None:  # a new run's range, not validate's (all torch takes)
        check_new_seed(overrides["seed"])
    config = TrainConfig(model=name, device=device, **values)
    check_threads(config.threads)
    return config
