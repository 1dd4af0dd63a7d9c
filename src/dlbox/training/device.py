"""Pick the torch device a command runs on, and set up the host for it (and put the
process's settings back after a run: process_settings_kept).

`resolve_device("auto")` takes CUDA when torch can use a GPU, else the CPU (with a note
where torch sees a GPU it has no kernels for). Asking for CUDA explicitly on a host without
it, or on such a GPU, is an error that says what is missing; it never falls back to the CPU
silently.
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
from dlbox.text import tell

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
        return "cuda" if torch.cuda.is_available() and _without_kernels(None) is None else "cpu"
    return "cpu" if text == "cpu" else "cuda"


def resolve_device(spec: str | torch.device | None = "auto",
                   source: str | None = None) -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` (or a torch.device of those) -> a torch.device this
    host can use. None is "auto" (a flag left out). `source`: the file the spec comes from
    when it is not --device (a resumed run's config.json), for the errors to name it
    (review: "--device cuda needs CUDA" where no --device was given)."""
    spec = _device_spec(spec, source)
    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        unserved = _without_kernels(None)
        if unserved is None:
            return torch.device("cuda")
        said = unserved[1]
        if said not in _told_without_kernels:  # once a process: a run resolves it often
            _told_without_kernels.add(said)
            tell(f"note: {said}: using the CPU; `dlbox doctor` says which torch to install "
                 "for the GPU")
        return torch.device("cpu")
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
            hint="use --device cuda (the first GPU) or a smaller index; CUDA numbers the GPUs "
                 "fastest first, `nvidia-smi -L` by PCI bus: set CUDA_DEVICE_ORDER=PCI_BUS_ID "
                 "for cuda:N to be GPU N of that list",
        )
    unserved = _without_kernels(index)
    if unserved is not None:
        asked = f"--device {spec}" if source is None else f"{source} says device {spec}, which"
        sm, said = unserved
        raise HostEnvError(
            f"{asked} needs a GPU torch has kernels for, but {said}",
            hint=f"install a torch build for {sm} (see `dlbox doctor`), or use --device cpu",
        )
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


# The GPUs `--device auto` left for the CPU with a note (said once a process).
_told_without_kernels: set[str] = set()


def torch_has_kernels_for(capability: tuple[int, int], arch_list: list[str] | tuple[str, ...]
                          ) -> bool:
    """Whether a torch whose torch.cuda.get_arch_list() is `arch_list` runs on a GPU of
    compute `capability`: `dlbox doctor`'s rule (dlbox.hostenv.compat.arch_fit; sm_XY cubins
    run on the same major with an equal or higher minor, compute_XY PTX JIT-compiles for
    any capability >= X.Y). An arch list with nothing to go by (empty; ROCm's gfx names) is
    taken to fit."""
    from dlbox.hostenv.compat import arch_fit, split_arch_list

    sass, ptx = split_arch_list(tuple(arch_list))
    if not sass and not ptx:
        return True
    return arch_fit(f"{capability[0]}.{capability[1]}", sass, ptx) != "none"


def _without_kernels(index: int | None) -> tuple[str, str] | None:
    """None where torch has kernels for CUDA GPU `index` (None: the current one, as
    torch.device("cuda") takes it) or cannot tell; else its arch and what to say of it:
    ("sm_120", "the NVIDIA GeForce RTX 5090 (sm_120) has no kernels in torch 2.6.0+cu124
    (built for sm_50 to sm_90)"). torch.cuda.is_available() is True for such a GPU (torch
    only warns) and its first kernel fails with "no kernel image is available" (review)."""
    if torch.version.hip:  # ROCm: no CUDA compute capabilities to compare
        return None
    try:
        capability = tuple(torch.cuda.get_device_capability(index))
        arch_list = list(torch.cuda.get_arch_list())
    except (AssertionError, RuntimeError):  # no answer: the first CUDA call will say why
        return None
    major, minor = int(capability[0]), int(capability[1])
    if torch_has_kernels_for((major, minor), arch_list):
        return None
    try:
        name = torch.cuda.get_device_name(index)
    except (AssertionError, RuntimeError):
        name = "GPU" if index is None else f"GPU {index}"
    sm = f"sm_{major}{minor}"
    return sm, (f"the {name} ({sm}) has no kernels in torch {torch.__version__} "
                f"(built for {_arch_range(arch_list)})")


def _arch_range(arch_list: list[str]) -> str:
    """torch's arch list, short: "sm_50 to sm_90", "sm_80 to sm_90, PTX compute_90"."""
    from dlbox.hostenv.compat import split_arch_list
    from dlbox.hostenv.versions import compute_capability_tuple

    sass, ptx = split_arch_list(tuple(arch_list))

    def name(prefix: str, cc: str) -> str:
        return f"{prefix}_{cc.replace('.', '')}"

    def ordered(ccs: tuple[str, ...]) -> list[str]:
        return sorted(ccs, key=lambda cc: compute_capability_tuple(cc) or (0, 0))

    parts = []
    if sass:
        low, high = ordered(sass)[0], ordered(sass)[-1]
        parts.append(name("sm", low) if low == high else
                     f"{name('sm', low)} to {name('sm', high)}")
    if ptx:
        parts.append("PTX " + ", ".join(name("compute", cc) for cc in ordered(ptx)))
    return ", ".join(parts)


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
    """The autocast dtype for mixed precision on `device`, or None to stay in float32: bf16
    on an Ampere or newer GPU (compute capability 8.0 and up), fp16 on older ones. Not
    torch.cuda.is_bf16_supported(): it says yes to a T4 or a V100 too, which only emulate
    bf16 (no tensor cores, no cuDNN engines), and it asks about the current GPU, not
    `device` (review)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if _has_native_bf16(device) else torch.float16


def _has_native_bf16(device: torch.device) -> bool:
    try:
        return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)
    except (AssertionError, RuntimeError):  # no CUDA to ask: torch's answer, without emulation
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether torch failed for want of memory: CUDA's OutOfMemoryError, or the CPU
    allocator's "can't allocate memory" (a RuntimeError), or cuBLAS's or cuDNN's workspace
    that CUDA could not give (CUBLAS_STATUS_ALLOC_FAILED, CUDNN_STATUS_ALLOC_FAILED), or
    Python's MemoryError."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
        or "CUBLAS_STATUS_ALLOC_FAILED" in text or "CUDNN_STATUS_ALLOC_FAILED" in text)


def memory_asked_for(error: BaseException) -> str | None:
    """How much the failed allocation asked for ("800 MiB", "20.00 GiB"), when torch says."""
    asked = re.search(r"[Tt]ried to allocate ([\d.]+) (\w+)", str(error))
    if not asked:
        return None
    if asked.group(2) == "bytes":
        return f"{float(asked.group(1)) / 2**20:,.0f} MiB"
    return f"{asked.group(1)} {asked.group(2)}"
