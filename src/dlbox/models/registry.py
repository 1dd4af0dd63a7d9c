"""The model registry: one name -> one factory, with a default training recipe per model.

A factory is `f(num_classes=10, **kwargs) -> nn.Module`. Register it with
`@register_model("name", "what it is", recipe=Recipe(...), cpu_recipe=Recipe(...))`.
The CLI and the train loop look models up by name only through `create_model`,
`list_models`, `get_model_info` and `recipe_for`, so adding a model is one decorated
function in one module imported by `dlbox.models`.

The registry is the only module-level mutable state in dlbox.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import itertools
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlbox.errors import UsageError
from dlbox.training.inputs import CIFAR10_MEAN, CIFAR10_STD

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class Recipe:
    """Default hyperparameters for training one model; every CLI flag overrides its field.

    The learning rate follows `schedule`: "onecycle" ramps linearly from 0 to `lr` over the
    first `warmup_fraction` of the steps, then linearly down to 0 at the end (the ResNet-9
    recipe of Page's DAWNBench entry); "linear" is the same function (named for recipes
    without warm-up); "constant" keeps `lr` throughout (the tutorial).
    `lr` and `weight_decay` are for a loss averaged over the batch (PyTorch's default).
    `model_kwargs` go to the factory (e.g. {"width": 16}); each recipe holds its own copy of
    the dict given (recipes made with `replace` shared one dict: review).
    """

    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.2
    schedule: str = "onecycle"
    warmup_fraction: float = 0.2
    crop_padding: int = 4  # random crop after reflect-padding this many pixels; 0 = no crop
    flip: bool = True  # random horizontal flip
    cutout: int = 0  # side of a square cut out of each training image; 0 = none
    tta: bool = False  # evaluate on each image and its mirror image, averaging the logits
    channels_last: bool | None = None  # None: on for CUDA only; True where it is faster on CPU
    eval_batch_size: int | None = None  # images per evaluation call; None: TrainConfig's
    # CPU threads; None: every core. 1 where a step is too small to share (the tutorial's
    # batches of 4: as fast on quiet cores, and threads that wait on each other on busy ones)
    threads: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Input normalisation, (x / 255 - mean) / std per channel: CIFAR-10's own statistics,
    # or the tutorial's 0.5 / 0.5 (which maps 0..255 to -1..1).
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelInfo:
    """What `dlbox models` shows and what `train` needs to know about a model."""

    name: str
    description: str
    factory: ModelFactory
    recipe: Recipe  # the default recipe (tuned for a GPU when `cpu_recipe` is set)
    cpu_recipe: Recipe | None = None  # used instead of `recipe` on a CPU, when set

    @property
    def params(self) -> int:
        """Trainable parameters of the default (GPU) recipe's model, for 10 classes."""
        return count_factory_parameters(self.factory, self.recipe.model_kwargs)

    @property
    def params_by_recipe(self) -> dict[str, int]:
        """Trainable parameters of the model each recipe builds, for 10 classes: "gpu" (the
        default recipe), and "cpu" when there is a CPU recipe. They differ where the CPU
        recipe's model_kwargs do (resnet's width 16 against 64)."""
        counts = {"gpu": count_factory_parameters(self.factory, self.recipe.model_kwargs)}
        if self.cpu_recipe is not None:
            same = self.cpu_recipe.model_kwargs == self.recipe.model_kwargs
            counts["cpu"] = counts["gpu"] if same else count_factory_parameters(
                self.factory, self.cpu_recipe.model_kwargs)
        return counts

    def recipe_for(self, device: str | torch.device) -> Recipe:
        """The recipe for `device`: "auto", "cpu", "cuda", "cuda:N" or a torch.device."""
        if _device_kind(device) == "cpu" and self.cpu_recipe is not None:
            return self.cpu_recipe
        return self.recipe


_REGISTRY: dict[str, ModelInfo] = {}

# Which model `dlbox train` trains when no --model is given, per device type.
# Another module may change these (e.g. a faster CPU model) by calling set_default_model.
_DEFAULT_MODELS: dict[str, str] = {"cpu": "resnet", "cuda": "resnet"}


def _device_kind(device: str | torch.device) -> str:
    """A torch.device's type, or the kind of device a name says ("auto" as resolve_device
    takes it); a name that is not a device is a UsageError (review: "auto", the notebook's
    DEVICE, and "gpu" raised torch's RuntimeError)."""
    from dlbox.training.device import device_type

    return device.type if isinstance(device, torch.device) else device_type(device)


def register_model(name: str, description: str, recipe: Recipe | None = None,
                   cpu_recipe: Recipe | None = None) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register `factory(num_classes=10, **kw) -> nn.Module` under `name`."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        # The same function defined again (a notebook cell run twice) replaces the old one.
        if name in _REGISTRY and not _same_function(_REGISTRY[name].factory, factory):
            raise ValueError(f"model '{name}' is already registered")
        _REGISTRY[name] = ModelInfo(name, description, factory, recipe or Recipe(), cpu_recipe)
        return factory

    return decorate


def _same_function(old: ModelFactory, new: ModelFactory) -> bool:
    return old is new or (
        getattr(old, "__module__", None) == getattr(new, "__module__", None)
        and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", None) is not None)


def set_default_model(device_type: str, name: str) -> None:
    """Make `name` the model `dlbox train` picks on `device_type` ("cpu" or "cuda")."""
    if device_type not in _DEFAULT_MODELS:
        raise UsageError(f"unknown device type {device_type!r}",
                         hint=f"use one of: {', '.join(_DEFAULT_MODELS)}")
    get_model_info(name)
    _DEFAULT_MODELS[device_type] = name


def default_model_for(device: str | torch.device) -> str:
    kind = _device_kind(device)
    return _DEFAULT_MODELS.get(kind, _DEFAULT_MODELS["cuda"])


def _ensure_builtins() -> None:
    # Importing the package registers the built-in models; a caller that imported only this
    # module still sees them.
    importlib.import_module("dlbox.models")


def model_names() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    _ensure_builtins()
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    guess = _closest_name(name)
    raise UsageError(
        f"unknown model '{name}'" + (f": did you mean '{guess}'?" if guess else ""),
        hint=f"choose one of: {', '.join(model_names())} (`dlbox models` lists them)",
    )


def _closest_name(name: object) -> str | None:
    """The registered name `name` most likely meant ("Resnet", "speedrun_long", "tutorail"),
    or None."""
    if not isinstance(name, str):
        return None

    def key(text: str) -> str:
        return text.strip().lower().replace("_", "-")

    by_key = {key(known): known for known in sorted(_REGISTRY)}
    close = difflib.get_close_matches(key(name), list(by_key), n=1)
    return by_key[close[0]] if close else None


def recipe_for(name: str, device: str | torch.device) -> Recipe:
    return get_model_info(name).recipe_for(device)


def list_models() -> list[ModelInfo]:
    _ensure_builtins()
    return [_REGISTRY[name] for name in model_names()]


def create_model(name: str, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a fresh model by registry name; unknown names and settings raise UsageError."""
    info = get_model_info(name)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) \
            or num_classes < 1:  # a NumPy integer too (len(np.unique(labels)))
        raise UsageError(f"num_classes must be a positive whole number, got {num_classes!r}",
                         hint="pass the number of classes the data has, e.g. 10 for CIFAR-10")
    accepted = inspect.signature(info.factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [key for key in kwargs if key not in accepted and not takes_any]
    if unknown:
        settings = ", ".join(k for k in accepted if k != "num_classes") or "no settings"
        raise UsageError(
            f"model '{name}' has no setting {', '.join(repr(k) for k in unknown)}",
            hint=f"model '{name}' takes: {settings}",
        )
    settings = ", ".join(k for k in accepted if k != "num_classes") or "no settings"
    try:
        _check_fits_in_memory(name, info.factory, num_classes, kwargs, settings)
        return info.factory(num_classes=num_classes, **kwargs)
    except ValueError as error:  # the factories check their settings' types too, with it: a
        # TypeError is a bug in a factory (a user's own model), whose traceback shows where
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"model '{name}': {first_line}",
                         hint=f"change the model's settings (model '{name}' takes: {settings}; "
                              "`dlbox models` lists the models)") from None


def _check_fits_in_memory(name: str, factory: ModelFactory, num_classes: int,
                          kwargs: Mapping[str, Any], settings: str) -> None:
    """Refuse settings (a `--width 100000`) whose weights alone exceed this machine's memory,
    before allocating them: built on the meta device, which allocates nothing. Without this,
    the allocation fails deep in torch (an "internal error", exit 70), or on a host that
    overcommits memory the process is killed. A factory that cannot build on meta is let
    through (the real build then says what it says)."""
    try:
        with torch.device("meta"):
            probe = factory(num_classes=num_classes, **kwargs)
        size = sum(t.numel() * t.element_size()
                   for t in itertools.chain(probe.parameters(), probe.buffers()))
    except ValueError:
        raise
    except (RuntimeError, TypeError) as error:
        # A tensor too big for torch to even size ("Storage size calculation overflowed"; a
        # size past 2**63, "Overflow when unpacking long long", a TypeError): far beyond any
        # machine's memory, and the real build would end in out-of-memory or that TypeError.
        if "overflow" not in str(error).lower():
            return  # a factory meta cannot run: checked by the real build
        size = None
    except Exception:  # noqa: BLE001 - a factory meta cannot run: checked by the real build
        return
    memory = physical_memory_bytes()
    if size is None or (memory and size > memory):
        given = ", ".join(f"{key} {value}" for key, value in kwargs.items()) or "its defaults"
        weights = ("more weights than torch can size a tensor for" if size is None
                   else f"{_bytes_text(size)} of weights")
        than = (f", more than this machine's {_bytes_text(memory)} of memory"
                if memory and size is not None else "")
        raise UsageError(
            f"model '{name}' with {given} has {weights}{than}",
            hint=f"use smaller settings (model '{name}' takes: {settings}), e.g. a smaller "
                 "--width; `dlbox models` shows each model's size")


def _bytes_text(count: int) -> str:
    """1536 -> "1.5 KiB", 720e9 -> "671 GiB": three significant figures at most."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if value >= 100 or unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def physical_memory_bytes() -> int | None:
    """The machine's RAM in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_factory_parameters(factory: ModelFactory, kwargs: Mapping[str, Any],
                             num_classes: int = 10) -> int:
    """count_parameters of the model `factory(num_classes, **kwargs)` builds, built on the meta
    device: the same parameters, shapes and requires_grad, with no memory allocated and no
    weights initialised (`dlbox models` builds every model at every recipe's size). A factory
    that cannot build on meta is built for real."""
    try:
        with torch.device("meta"):
            model = factory(num_classes=num_classes, **kwargs)
    except Exception:  # noqa: BLE001 - the real build below raises what is really wrong
        model = factory(num_classes=num_classes, **kwargs)
    return count_parameters(model)
