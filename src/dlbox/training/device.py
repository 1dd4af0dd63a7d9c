"""Pick the torch device a command runs on, and set up the host for it (and put the
process's settings back after a run: process_settings_kept).

`resolve_device("auto")` takes CUDA when torch can use a GPU, else the CPU. Asking for CUDA
explicitly on a host without it is an error that says what is missing; it never falls back
to the CPU silently.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch

from dlbox.errors import HostEnvError, UsageError

_CUDA_SPEC = re.compile(r"^cuda(?::(\d+))?$")


DEVICE_HINT = "use auto, cpu, cuda or cuda:N"


def _device_spec(spec: str | torch.device | None, source: str | None = None) -> str:
    """The spec as a lower-case string ("cpu", "cuda:1", "auto"; None is "auto"); what is not
    a device name is a UsageError (review: 0 and "" were taken for "auto", a torch.device
    failed on `.strip`). `source`: as for resolve_device."""
    if spec is None:
        return "auto"
    if isinstance(spec, torch.device):
        text = str(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
        if not text:
            raise UsageError("the device is empty", hint=DEVICE_HINT)
    else:
        raise UsageError(f"a device is a name such as 'cuda', got {spec!r}", hint=DEVICE_HINT)
    if text not in ("auto", "cpu") and not _CUDA_SPEC.match(text):
        if source is not None:  # review: "unknown device 'gpu'" where no --device was given
            raise UsageError(f"{source} says device '{text}', which is not a device",
                             hint=f'put "device": "auto" there, or pass --device ({DEVICE_HINT})')
        raise UsageError(f"unknown device '{text}'", hint=DEVICE_HINT)
    return text


def device_type(spec: str | torch.device | None = "auto") -> str:
    """"cpu" or "cuda": the kind of device `spec` names, "auto" as resolve_device takes it,
    without checking that the GPU it names is there (a recipe for "cuda:1" is cuda's)."""
    text = _device_spec(spec)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu" if text == "cpu" else "cuda"


def resolve_device(spec: str | torch.device | None = "auto",
                   source: str | None = None) -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` (or a torch.device of those) -> a torch.device this
    host can use. None is "auto" (a flag left out). `source`: the file the spec comes from
    when it is not --device (a resumed run's config.json), for the errors to name it
    (review: "--device cuda needs CUDA" where no --device was given)."""
    spec = _device_spec(spec, source)
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA_SPEC.match(spec)
    assert match is not None  # _device_spec refused the rest
    _require_cuda(f"--device {spec}" if source is None else f"{source} says device {spec}, "
                  "which")
    index = int(match.group(1)) if match.group(1) is not None else None
    if index is not None and index >= torch.cuda.device_count():
        asked = f"device {spec} requested" if source is None else f"{source} says device {spec},"
        raise HostEnvError(
            f"{asked} but this host has {torch.cuda.device_count()} CUDA GPU(s)",
            hint="use --device cuda (the first GPU) or a smaller index; `nvidia-smi -L` lists them",
        )
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


def _require_cuda(asked: str) -> None:
    """`asked`: what asked for CUDA ("--device cuda"), the start of the error."""
    if torch.cuda.is_available():
        return
    if torch.version.cuda is None:
        raise HostEnvError(
            f"{asked} needs CUDA, but this torch build ({torch.__version__}) "
            "has no CUDA support",
            hint="install a CUDA build of torch (see `dlbox doctor`), or use --device cpu",
        )
    raise HostEnvError(
        f"{asked} needs CUDA, but torch {torch.__version__} (CUDA {torch.version.cuda}) "
        "finds no usable NVIDIA GPU or driver",
        hint="check `nvidia-smi` and run `dlbox doctor` for the fix; or use --device cpu",
    )


def available_cpus() -> int:
    """CPU cores this process may use (respects taskset / container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure_host(device: torch.device, threads: int | None = None) -> int:
    """Use all CPU cores (or `threads`) for CPU math; let cuDNN pick fast kernels on CUDA.

    Returns the number of CPU threads set.
    """
    count = threads if threads and threads > 0 else available_cpus()
    torch.set_num_threads(count)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # TF32 matmuls/convs for the few float32 ops left outside autocast.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return count


@contextlib.contextmanager
def process_settings_kept() -> Iterator[None]:
    """Put back, when the block ends (an error or a stop included), what a run sets for the
    whole process: torch's CPU threads, cuDNN autotuning and TF32 (configure_host), and the
    random states its seeding replaces (Python's, NumPy's global one, torch's CPU and CUDA
    generators). A notebook that trains goes on as it was (review: threads=1 left torch on
    one thread, and the user's seeded sequences were the run's); the run seeds itself, so its
    results do not depend on them."""
    import numpy as np

    threads = torch.get_num_threads()
    benchmark = torch.backends.cudnn.benchmark
    restore_tf32 = _tf32_restorer()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_seed = torch.initial_seed()  # what CUDA, started later, is seeded with (lazily)
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
        restore_tf32()
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        with contextlib.suppress(RuntimeError):  # a broken CUDA context: its error stands
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)
            elif torch.cuda.is_initialized():  # started by the run: as it would have started
                torch.cuda.manual_seed_all(cuda_seed)


def _tf32_restorer() -> Callable[[], None]:
    """A function that puts TF32 back as it is now, if it changed: the flags configure_host
    sets (those torch reads: it refuses a mix of them with its newer fp32_precision
    settings), then those settings."""
    backends = torch.backends
    owners: tuple[Any, ...] = (backends, backends.cuda.matmul, backends.cudnn,
                               getattr(backends.cudnn, "conv", None),
                               getattr(backends.cudnn, "rnn", None))

    def readable(read: Callable[[], object]) -> object:
        try:
            return read()
        except RuntimeError:  # "you have used mix of the legacy and new APIs"
            return None

    def state() -> tuple[Any, ...]:
        return (readable(lambda: (backends.cuda.matmul.allow_tf32,
                                  torch.get_float32_matmul_precision())),
                readable(lambda: backends.cudnn.allow_tf32),
                *(getattr(owner, "fp32_precision", None) for owner in owners))

    before = state()

    def restore() -> None:
        if state() == before:  # untouched (a CPU run): setting the flags would pin defaults
            return
        matmul, cudnn, *settings = before
        if matmul is not None:
            backends.cuda.matmul.allow_tf32 = matmul[0]
            torch.set_float32_matmul_precision(matmul[1])
        if cudnn is not None:
            backends.cudnn.allow_tf32 = cudnn
        for owner, value in zip(owners, settings, strict=True):  # "none" (inherit) again
            if value is not None:
                owner.fp32_precision = value

    return restore


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """Human name of the device: the GPU's model, or the CPU's with its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({available_cpus()} cores)"


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for mixed precision on `device`, or None to stay in float32."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def is_out_of_memory(error: BaseException) -> bool:
    """Whether torch failed for want of memory: CUDA's OutOfMemoryError, or the CPU
    allocator's "can't allocate memory" (a RuntimeError), or Python's MemoryError."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text
                                                or "out of memory" in text.lower())


def memory_asked_for(error: BaseException) -> str | None:
    """How much the failed allocation asked for ("800 MiB", "20.00 GiB"), when torch says."""
    asked = re.search(r"[Tt]ried to allocate ([\d.]+) (\w+)", str(error))
    if not asked:
        return None
    if asked.group(2) == "bytes":
        return f"{float(asked.group(1)) / 2**20:,.0f} MiB"
    return f"{asked.group(1)} {asked.group(2)}"
