"""Pure compatibility checks shared by the rules and the resolver.

NVIDIA's rules, from the CUDA C Programming Guide ("binary compatibility") and the CUDA
Compatibility guide ("minor version compatibility"):
- a cubin (SASS) built for sm_XY runs on a GPU of compute capability X.Z with Z >= Y (same
  major only);
- PTX built for compute_XY is JIT-compiled by the driver for any GPU with capability >= X.Y;
- an application built with CUDA X.y runs on any driver >= the minimum of its major X
  (11.x: 450.80.02, 12.x: 525.60.13, 13.x: 580), or >= the toolkit's own GA driver where
  that is lower (CUDA 11.0: 450.51.05), and without caveats on a driver >= that GA driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlbox.hostenv.matrix import Matrix
from dlbox.hostenv.versions import (
    compute_capability_tuple,
    format_cc,
    parse_version,
    version_at_least,
)

ArchFit = Literal["sass", "ptx", "none", "unknown"]


def arch_fit(cc: str | None, archs: tuple[str, ...], ptx: tuple[str, ...] = ()) -> ArchFit:
    """How a GPU of capability `cc` runs a build with SASS `archs` and PTX `ptx` targets."""
    gpu = compute_capability_tuple(cc)
    if gpu is None:
        return "unknown"
    for arch in archs:
        built = compute_capability_tuple(arch)
        if built and built[0] == gpu[0] and built[1] <= gpu[1]:
            return "sass"
    for arch in ptx:
        built = compute_capability_tuple(arch)
        if built and built <= gpu:
            return "ptx"
    return "none"


def build_fit(
    matrix: Matrix, cc: str | None, archs: tuple[str, ...], ptx: tuple[str, ...],
    build_cuda: str | None,
) -> ArchFit:
    """`arch_fit`, except that PTX alone does not save a GPU its build's CUDA does not know:
    the CUDA libraries of that release (cuBLAS, cuDNN) carry no kernels for it."""
    fit = arch_fit(cc, archs, ptx)
    if fit == "ptx" and cuda_knows_arch(matrix, build_cuda, cc) is False:
        return "none"
    return fit


def split_arch_list(arch_list: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """torch.cuda.get_arch_list() -> (SASS caps, PTX caps): ('sm_86','compute_90') -> (8.6, 9.0)."""
    sass: list[str] = []
    ptx: list[str] = []
    for entry in arch_list:
        cc = compute_capability_tuple(entry)
        if cc is None:
            continue
        (ptx if str(entry).lower().startswith("compute_") else sass).append(format_cc(cc))
    return tuple(sass), tuple(ptx)


def describe_archs(archs: tuple[str, ...], ptx: tuple[str, ...] = ()) -> str:
    names = [f"sm_{a.replace('.', '')}" for a in archs]
    names += [f"compute_{a.replace('.', '')} (PTX)" for a in ptx]
    return ", ".join(names) if names else "none"


@dataclass(frozen=True)
class DriverFit:
    ok: bool | None  # None: unknown (unparsable driver or CUDA version)
    ga_ok: bool | None
    min_driver: str | None  # minor-version compatibility minimum of the CUDA major
    ga_driver: str | None  # the toolkit's GA driver
    known_cuda: bool  # the CUDA version is in the matrix


def driver_fit(matrix: Matrix, driver: str | None, cuda: str | None) -> DriverFit:
    """Can `driver` run code built with CUDA `cuda`?

    Minor-version compatibility decides `ok` (error tier); the GA driver `ga_ok` (warn tier).
    """
    row = matrix.cuda_release(cuda)
    min_driver = matrix.minor_compat_driver(cuda)
    ga_driver = matrix.ga_driver(cuda)
    if min_driver is None:  # CUDA 10.x and older: no minor-version compatibility
        min_driver = ga_driver
    elif ga_driver and version_at_least(ga_driver, min_driver) is False:
        # the toolkit's own driver always runs it, even below its major's minor-version
        # floor: CUDA 11.0 (GA driver 450.51.05 < 450.80.02)
        min_driver = ga_driver
    if ga_driver is None and row is None:
        nearest = matrix.nearest_cuda_release(cuda)
        cuda_major = (parse_version(cuda) or (0,))[0]
        if nearest is not None and parse_version(nearest.cuda)[0] == cuda_major:  # type: ignore[index]
            ga_driver = nearest.ga_driver  # a newer minor: at least the nearest known GA
    return DriverFit(
        ok=version_at_least(driver, min_driver) if min_driver else None,
        ga_ok=version_at_least(driver, ga_driver) if ga_driver else None,
        min_driver=min_driver,
        ga_driver=ga_driver,
        known_cuda=row is not None,
    )


def cuda_knows_arch(matrix: Matrix, cuda: str | None, cc: str | None) -> bool | None:
    """Does CUDA `cuda` (its nvcc / ptxas) know compute capability `cc`? None if unknown."""
    gpu = compute_capability_tuple(cc)
    if gpu is None or parse_version(cuda) is None:
        return None
    archs = matrix.cuda_archs(cuda)
    if not archs:
        return None
    return any(compute_capability_tuple(a) == gpu for a in archs) or arch_fit(cc, archs) == "sass"


def cuda_arch_range(matrix: Matrix, cuda: str | None) -> tuple[str, str] | None:
    archs = sorted(
        (c for c in (compute_capability_tuple(a) for a in matrix.cuda_archs(cuda)) if c),
    )
    if not archs:
        return None
    return format_cc(archs[0]), format_cc(archs[-1])
