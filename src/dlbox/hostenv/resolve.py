"""Pick the newest framework build that a (real or hypothetical) host can run.

`resolve_build("torch", Target(driver="535.104.05", compute_capabilities=("8.6",)))` walks the
shipped matrix newest release first and returns the first build whose CUDA the driver can run
(minor-version compatibility) and whose compiled architectures cover every GPU, preferring,
within a release, a CUDA whose GA driver the host also meets. Pure: no probing here;
`target_from_host(facts)` turns probed facts into a Target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from dlbox.errors import HostEnvError, UsageError
from dlbox.fileio import dataclass_to_json
from dlbox.hostenv.compat import (
    DriverFit,
    arch_fit,
    build_fit,
    cuda_arch_range,
    cuda_knows_arch,
    describe_archs,
    driver_fit,
)
from dlbox.hostenv.matrix import Matrix, TorchRelease, TorchVariant, load_matrix
from dlbox.hostenv.versions import (
    compute_capability_tuple,
    format_cc,
    major_minor,
    parse_version,
    same_release,
    version_at_least,
)

SUPPORTED_FRAMEWORKS = ("torch", "tensorflow", "jax")


# The newest NVIDIA GPUs are compute capability 12.x; a major version past this is a typo
# ("99.0", "86.0"), not a GPU dlbox has yet to hear of.
HIGHEST_PLAUSIBLE_CC_MAJOR = 19

@dataclass(frozen=True)
class Target:
    driver: str | None = None  # "535.104.05"; None = no NVIDIA driver
    compute_capabilities: tuple[str, ...] = ()  # ("8.6",)
    cpu: bool = False  # True = CPU-only build wanted
    python: str | None = None  # "3.11"; None = any
    cuda: str | None = None  # force a CUDA version ("12.4"), optional
    version: str | None = None  # pin the framework release ("2.13" or "2.13.0"), optional
    listed: bool = False  # the driver itself listed these GPUs (a probe): it runs them


@dataclass(frozen=True)
class ResolvedBuild:
    framework: str  # "torch" | "tensorflow" | "jax"
    version: str  # "2.9.1"
    variant: str  # "cu128" | "cpu" | "and-cuda" | "cuda12" | ...
    cuda: str | None  # "12.8"
    cudnn: str | None
    wheel_index: str | None  # "https://download.pytorch.org/whl/cu128" (None = PyPI default)
    requirements: tuple[str, ...]  # pip lines
    python_versions: tuple[str, ...]
    min_driver: str | None  # minimum driver for that CUDA under minor-version compatibility
    reasons: tuple[str, ...]  # why this build was chosen, human-readable
    ga_driver: str | None = None  # driver of the CUDA release's GA (no caveats at or above)
    warnings: tuple[str, ...] = ()  # caveats the caller should show (uncertain data, PTX JIT)
    sources: tuple[str, ...] = field(default=())  # where the matrix row came from
    checked: str | None = None  # date the row was checked

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_json(self)


# ---------------------------------------------------------------------------------------
# target validation


def normalize_target(target: Target) -> Target:
    """Check and normalise a target; bad values raise UsageError naming the flag to fix."""
    driver = target.driver.strip() if target.driver else None
    if isinstance(target.driver, ProbedDriver):  # kept so: nvidia-smi printed it
        driver = ProbedDriver(driver)
    elif driver is not None:  # typed (--driver): a probed one is a ProbedDriver
        check_driver_form(driver)
    caps: list[str] = []
    for value in target.compute_capabilities:
        cc = compute_capability_tuple(value)
        if cc is None:
            raise UsageError(
                f"compute capability {value!r} is not of the form MAJOR.MINOR",
                hint="e.g. --compute-capability 8.6 (nvidia-smi --query-gpu=compute_cap)",
            )
        if not 1 <= cc[0] <= HIGHEST_PLAUSIBLE_CC_MAJOR or cc[0] == 4:  # none had 4.x
            raise UsageError(
                f"compute capability {value!r} is not one an NVIDIA GPU has "
                f"(they run from 1.0 to 12.x{', with no 4.x' if cc[0] == 4 else ''})",
                hint="check it with nvidia-smi --query-gpu=compute_cap, e.g. "
                     "--compute-capability 8.6",
            )
        if format_cc(cc) not in caps:
            caps.append(format_cc(cc))
    python = target.python.strip() if target.python else None
    if python is not None:
        parts = parse_version(python)
        if parts is not None and len(parts) >= 2 and parts[0] != 3:
            raise UsageError(f"Python {target.python} is not supported: the frameworks dlbox "
                             "resolves are built for Python 3", hint="e.g. --python 3.11")
        if parts is None or len(parts) < 2:
            raise UsageError(f"Python version {target.python!r} is not like 3.11",
                             hint="e.g. --python 3.11")
        python = f"{parts[0]}.{parts[1]}"
    cuda = target.cuda.strip() if target.cuda else None
    if cuda is not None and parse_version(cuda) is None:
        raise UsageError(f"CUDA version {target.cuda!r} is not like 12.4", hint="e.g. --cuda 12.4")
    if target.cpu and cuda:
        raise UsageError("a CPU-only build cannot have a CUDA version",
                         hint="drop --cuda, or drop --cpu")
    if target.cpu and (driver or caps):
        raise UsageError("--cpu cannot be combined with --driver / --compute-capability",
                         hint="use --cpu alone for a CPU-only build")
    if caps and driver is None:
        raise UsageError("a compute capability needs a driver version to resolve a GPU build",
                         hint="add --driver VERSION (nvidia-smi prints it), or use --cpu")
    version = target.version.strip() if target.version else None
    if version is not None:
        check_pin_form(version)
    return Target(driver=driver, compute_capabilities=tuple(caps), cpu=target.cpu,
                  python=python, cuda=cuda, version=version, listed=target.listed)


class ProbedDriver(str):
    """A driver version as this host's nvidia-smi printed it (a Target's `driver`): never
    checked for form as a typed --driver is, whatever GPUs the target names."""


# NVIDIA Linux drivers: 418.39, 384.130, 535.104.05, 580.95.05 (nvidia-smi's "Driver Version"),
# JetPack's 540.4.0
_LINUX_DRIVER = re.compile(r"[1-9]\d{2}\.\d{1,3}(\.\d{1,3})?")
# Windows' form of the same driver (Device Manager, DXDIAG): 32.0.15.6636 is 566.36, its
# last five digits
_WINDOWS_DRIVER = re.compile(r"\d{2}\.0\.(\d{2})\.(\d{4})")


def check_driver_form(driver: str) -> None:
    """UsageError unless `driver` reads as an NVIDIA Linux driver version. Review: 0, 1e3,
    v550 and 550,54 were taken; a bare branch (525) read as 525.0.0, below the branch's
    first release; the Windows form 32.0.15.6636 (566.36) as driver 32."""
    if _LINUX_DRIVER.fullmatch(driver):
        return
    windows = _WINDOWS_DRIVER.fullmatch(driver)
    if windows:
        digits = (windows[1] + windows[2])[-5:]
        linux = f"{digits[:3]}.{digits[3:]}"
        raise UsageError(f"driver version {driver!r} is the Windows form of NVIDIA driver "
                         f"{linux}",
                         hint=f"pass the version nvidia-smi prints: --driver {linux}")
    if re.fullmatch(r"[1-9]\d{2}", driver):
        known = [row.ga_driver for row in load_matrix().cuda_releases
                 if row.ga_driver.startswith(f"{driver}.")]
        example = known[0] if known else "535.104.05"
        raise UsageError(f"driver {driver!r} is a driver branch, not a driver version",
                         hint="pass the full version nvidia-smi prints on that machine, "
                              f"e.g. --driver {example}")
    raise UsageError(f"driver version {driver!r} is not a version number of an NVIDIA driver "
                     "(NNN.NN or NNN.NN.NN)",
                     hint="pass it as nvidia-smi prints it, e.g. --driver 535.104.05")


def target_from_host(facts: Any) -> Target:
    """A Target from probed HostFacts: its driver and GPUs, or CPU when it has no usable GPU."""
    nvidia = facts.nvidia
    python = major_minor(facts.system.python) if facts.system.python else None
    if nvidia.driver_version and nvidia.gpus and not nvidia.error:
        return Target(
            driver=ProbedDriver(nvidia.driver_version),
            compute_capabilities=nvidia.compute_capabilities,
            python=python,
            listed=True,
        )
    return Target(cpu=True, python=python)


# ---------------------------------------------------------------------------------------
# resolution


def resolve_build(framework: str, target: Target, matrix: Matrix | None = None) -> ResolvedBuild:
    """The newest `framework` build that `target` can run; HostEnvError (with a hint) if none."""
    name = framework.strip().lower()
    aliases = {"pytorch": "torch", "tf": "tensorflow"}
    name = aliases.get(name, name)
    if name not in SUPPORTED_FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}",
                         hint=f"choose one of: {', '.join(SUPPORTED_FRAMEWORKS)}")
    target = normalize_target(target)
    matrix = matrix or load_matrix()
    _check_driver_knows_gpus(target, matrix)
    if target.version:
        refuse_older_than_data(name, target, matrix, target.version)
    resolver = {"torch": _resolve_torch, "tensorflow": _resolve_tensorflow}.get(name,
                                                                             _resolve_jax)
    try:
        return resolver(target, matrix)
    except HostEnvError as error:
        # A version the data does not know was resolved with the nearest row's facts: the
        # refusal says so (review: "update the driver to >= 580, for torch 2.16.*" as fact)
        rows = pin_rows(getattr(matrix, name), target.version, name, matrix.checked) \
            if target.version else []
        guessed = [row.note for row in rows
                   if "not in dlbox's compatibility data" in getattr(row, "note", "")]
        if guessed and guessed[0] not in (error.hint or ""):
            error.hint = (f"{error.hint}; " if error.hint else "") + f"note: {guessed[0]}"
        raise


def _below(capabilities: tuple[str, ...], minimum: str | None) -> list[str]:
    """The compute capabilities under `minimum` (none when it is unknown)."""
    floor = compute_capability_tuple(minimum) or (0, 0)
    return [cc for cc in capabilities if (compute_capability_tuple(cc) or (0, 0)) < floor]


def first_cuda_for_arch(matrix: Matrix, cc: str) -> Any | None:
    """The oldest CUDA release that compiles for `cc` (its GA driver is the first to run it)."""
    wanted = compute_capability_tuple(cc)
    for row in matrix.cuda_releases:
        if any(compute_capability_tuple(a) == wanted for a in row.archs):
            return row
    return None


def _check_driver_knows_gpus(target: Target, matrix: Matrix) -> None:
    """A GPU newer than the driver, or one whose last driver branch is older than the driver
    (Kepler stops at R470), cannot exist on that host: say so instead of resolving. Only of
    a hypothetical host: GPUs the driver listed are GPUs it runs. And only by the
    driver's branch (520 of 520.61.05), since a GPU's launch driver may come before its
    CUDA's GA driver (the RTX 4090 shipped with 520.56.06; CUDA 11.8's GA is 520.61.05)."""
    if target.listed:
        return
    for cc in target.compute_capabilities:
        last = matrix.last_driver_branch(cc)
        major = (parse_version(target.driver) or (0,))[0]
        if last is not None and major > last[0]:
            # review: a K80 on driver 535 resolved to a build as if that host could exist
            raise HostEnvError(
                f"driver {target.driver} does not support sm_{cc.replace('.', '')} GPUs: "
                f"R{last[0]} is the last driver branch for {last[1]} GPUs",
                hint=f"pass the driver the host runs (branch {last[0]} or older for this GPU)")
        row = first_cuda_for_arch(matrix, cc)
        if row is matrix.cuda_releases[0]:
            continue  # older than the data: no claim
        if row is None:
            continue
        branch = row.ga_driver.split(".")[0]
        if version_at_least(target.driver, branch) is False:
            raise HostEnvError(
                f"driver {target.driver} does not support sm_{cc.replace('.', '')} GPUs: they "
                f"arrived with CUDA {row.cuda}, driver branch {branch} (GA {row.ga_driver})",
                hint=f"install an NVIDIA driver of branch {branch} or newer for this GPU",
            )


def check_pin_form(version: str) -> None:
    """A --framework-version is a release (2.13) or an exact version (2.13.0, 2.15.0.post1).
    Review: "2" was matched to the data's 1.x rows (TensorFlow 1.15's CUDA for "tensorflow
    2"), and a build's local tag (2.5.1+cu118) was kept in an install line no index serves,
    or silently swapped for another build: the build is the target's to pick (--cpu,
    --cuda)."""
    public, _, local = version.partition("+")
    if local:
        # cu118 is CUDA 11.8, cu92 9.2; "cu12" is no build's tag (CUDA 8.0 was the first)
        cuda = re.fullmatch(r"cu(\d+)(\d)", local)
        flag = "--cpu" if local == "cpu" else f"--cuda {cuda[1]}.{cuda[2]}" if cuda and int(
            cuda[1]) >= 8 else ""
        raise UsageError(f"--framework-version {version!r} names a build ({local}), not only "
                         "a version: dlbox picks the build for the target",
                         hint=f"pass --framework-version {public}"
                              + (f" with {flag}" if flag else ""))
    # a post-release (2.15.0.post1, on PyPI) is a version; pin_rows knows the published ones
    if not re.fullmatch(r"\d+(\.\d+){1,2}([a-z]+\d*)?|\d+\.\d+\.\d+\.post\d+", public):
        raise UsageError(f"--framework-version {version!r} is not a release or a version",
                         hint="give a release (2.13) or an exact version (2.13.0)")


def pin_rows(rows: tuple[Any, ...], version: str | None, framework: str,
             checked: str) -> list[Any]:
    """The matrix rows for a pinned framework version (all rows when not pinned).

    A known release gives its row, narrowed to the pinned patch version; a version the data
    does not know gives the nearest known row, marked uncertain, so the caller warns, pinned
    exactly ("2.16.1") or, for a release ("2.16"), to any of its patches ("2.16.*"). A
    version older than the data is `refuse_older_than_data`'s to refuse, first.
    """
    if version is None:
        return list(rows)
    for row in rows:
        if version in row.versions:
            return [replace(row, versions=(version,))]
    for row in rows:
        if same_release(version, row.release) and len(parse_version(version) or ()) <= 2:
            return [row]
    refuse_unreleased_patch(rows, version, framework)
    from dlbox.hostenv.matrix import nearest_release

    nearest = nearest_release(rows, version)
    if nearest is None:
        return []
    parts = parse_version(version) or ()
    exact = version if len(parts) >= 3 else f"{version}.*"
    note = (f"{framework} {version} is not in dlbox's compatibility data (checked {checked}); "
            f"using the nearest known row, {framework} {nearest.release}")
    return [replace(nearest, versions=(exact,), uncertain=True, note=note)]


def oldest_known(rows: tuple[Any, ...]) -> str | None:
    """The oldest version the rows list (jax's data: 0.4.26; its oldest row is "0.4-early")."""
    versions = [v for row in rows for v in row.versions if parse_version(v)]
    return min(versions, key=lambda v: parse_version(v) or ()) if versions else None


def refuse_older_than_data(framework: str, target: Target, matrix: Matrix,
                           version: str) -> None:
    """UsageError for a pin older than all of dlbox's `framework` data: a release before its
    oldest (torch 1.13), or, for a GPU build, an exact version before the oldest one it
    lists (jax 0.4.20: the data starts at 0.4.26, and its first row says earlier jax, with
    jax[cuda12_pip] and no jax[cuda12], is not covered). No row speaks for it: its facts
    would be made up. A CPU build of such a patch is the framework's own CPU wheel:
    `pin_rows` lets it through, marked uncertain. `matrix` must be the whole data."""
    rows = getattr(matrix, framework)
    oldest = oldest_known(rows)
    parts = parse_version(version) or ()
    if oldest is None:
        return
    gpu = target.driver is not None and not target.cpu
    if parts < (parse_version(rows[-1].release) or ()):  # rows newest first
        what, keep = "", f"install {framework} {version} yourself"
    elif gpu and len(parts) >= 3 and parts < (parse_version(oldest) or ()):
        what, keep = " for GPU builds", f"resolve with --cpu to keep {framework} {version}"
    else:
        return
    pinned = " and ".join(flag for flag, value in (("--framework-version", version),
                                                   ("--cuda", target.cuda)) if value)
    try:
        build = resolve_build(framework, replace(target, version=None, cuda=None), matrix)
    except (HostEnvError, UsageError) as error:  # the hint names no build it cannot run
        hint = (f"no {framework} build dlbox knows runs on this target: "
                f"{error.hint or 'resolve with --cpu'}")
    else:
        hint = (f"leave {pinned} out ({framework} {build.version} {build.variant} runs here), "
                f"or {keep}")
    raise UsageError(f"{framework} {version} is older than dlbox's compatibility data{what} "
                     f"(checked {matrix.checked}), which starts at {framework} {oldest}",
                     hint=hint)


def refuse_unreleased_patch(rows: tuple[Any, ...], version: str, framework: str) -> None:
    """UsageError for an exact version (2.1.99) of a known release that was never published:
    a release older than the newest gets no more patches, so one the data does not list does
    not exist; the newest release may have one newer than the data, which is let through."""
    public = version.split("+")[0]
    parsed = parse_version(public) or ()
    kept = [row for row in rows if same_release(public, row.release)]
    if len(parsed) < 3 or not kept or any(public in row.versions for row in kept):
        return
    from packaging.version import Version

    # in PEP 440 order: 2.15.0 < 2.15.0.post1 < 2.15.0.post10 < 2.15.1
    patches = sorted({v for row in kept for v in row.versions if parse_version(v)}, key=Version)
    newest_release = max((parse_version(row.release) or () for row in rows), default=())
    settled = (parse_version(kept[0].release) or ()) < newest_release
    # Below the oldest patch listed the data may just not cover the release's start (jax
    # 0.4 from 0.4.26 on: a CPU build of 0.4.20 resolves with a warning, a GPU build is
    # refused by refuse_older_than_data): only a gap between listed patches, or past the
    # last of a settled release, is known never to have been published.
    covered = bool(patches) and parsed >= (parse_version(patches[0]) or ())
    if covered and (settled or parsed <= (parse_version(patches[-1]) or ())):
        raise UsageError(f"{framework} {public} is not a {framework} release dlbox knows",
                         hint=f"{framework} {kept[0].release} has {', '.join(patches)}: "
                              f"pick one, or give just {kept[0].release} for its newest")


def _python_ok(python: str | None, versions: tuple[str, ...]) -> bool:
    return python is None or python in versions


class NoBuildForPython(HostEnvError):
    """No release (of the pinned version, if any) supports the target's Python. `pythons`
    are the ones that would do, oldest first, so that a caller whose Python comes from
    elsewhere (image build: the base image's) can word its own way out."""

    def __init__(self, message: str, hint: str, pythons: tuple[str, ...]) -> None:
        super().__init__(message, hint=hint)
        self.pythons = pythons


class DriverTooOld(HostEnvError):
    """No build runs on the target's driver, and one does on a driver >= `needed` (the lowest
    such), which its GPUs can get: a caller can resolve again for that driver to name the
    build it would then run."""

    def __init__(self, message: str, hint: str, needed: str) -> None:
        super().__init__(message, hint=hint)
        self.needed = needed


def _no_python_error(framework: str, python: str, rows: list[Any],
                     version: str | None) -> NoBuildForPython:
    # Python 3 only: 2.7 (TensorFlow 1.x's) is refused as a target (review: suggested)
    known = tuple(sorted({p for r in rows for p in r.python if p.startswith("3.")},
                         key=lambda v: parse_version(v) or ()))
    what = f"{framework} {version}" if version else f"no {framework} release in the matrix"
    verb = "does not support" if version else "supports"
    return NoBuildForPython(
        f"{what} {verb} Python {python}",
        hint=f"use one of Python {', '.join(known)}, or leave --python out",
        pythons=known,
    )


def _target_releases(rows: tuple[Any, ...], target: Target, framework: str,
                     matrix: Matrix) -> tuple[list[Any], list[Any]]:
    """(the rows of `framework` (`rows`, newest first) for `target`'s pinned version, those
    of them that support its Python); raises NoBuildForPython when none does, and UsageError
    for a --cuda without a GPU target (a CPU one, or no driver)."""
    candidates = pin_rows(rows, target.version, framework, matrix.checked)
    releases = [r for r in candidates if _python_ok(target.python, r.python)]
    if not releases:
        raise _no_python_error(framework, target.python or "", candidates, target.version)
    if (target.cpu or target.driver is None) and target.cuda:
        raise UsageError("--cuda needs a GPU target", hint="add --driver VERSION")
    return candidates, releases


def _gpu_reasons(target: Target) -> list[str]:
    caps = ", ".join(f"sm_{c.replace('.', '')}" for c in target.compute_capabilities)
    lines = [f"driver {target.driver}"]
    if caps:
        lines[0] += f", GPU architecture {caps}"
    else:
        lines.append("no compute capability given: GPU architecture not checked")
    return lines


def _uncertain_warning(row: Any) -> tuple[str, ...]:
    if not getattr(row, "uncertain", False):
        return ()
    if "not in dlbox's compatibility data" in row.note:
        return (row.note,)
    note = f": {row.note}" if row.note else ""
    return (f"matrix row {row.release} is marked uncertain{note}",)


def _cpu_reason(target: Target) -> str:
    if target.cpu:
        return "CPU-only build (asked for, or no usable NVIDIA GPU on the host)"
    return "no NVIDIA driver: CPU-only build"


# torch ----------------------------------------------------------------------------------


def _torch_variant_rejection(
    target: Target, variant: TorchVariant, matrix: Matrix
) -> str | None:
    fit = driver_fit(matrix, target.driver, variant.cuda)
    if fit.ok is False:
        return (f"{variant.name}: driver {target.driver} < {fit.min_driver}, the minimum for "
                f"CUDA {variant.cuda} (minor-version compatibility)")
    for cc in target.compute_capabilities:
        if build_fit(matrix, cc, variant.archs, variant.ptx, variant.cuda) == "none":
            return (f"{variant.name}: built for {describe_archs(variant.archs, variant.ptx)}, "
                    f"no kernel image for sm_{cc.replace('.', '')}")
        below = cudnn_below_minimum(matrix, variant.cudnn, cc)
        if below:
            return f"{variant.name}: {below}"
    return None


def cudnn_below_minimum(matrix: Matrix, cudnn: str | None, cc: str | None) -> str | None:
    """Why cuDNN `cudnn` cannot serve a GPU of capability `cc` (None when it can or when
    unknown): cuDNN 8.9 and 9.x start at Maxwell (5.0), so a Kepler GPU fails every
    convolution even where torch's own arch list still has sm_37."""
    minimum = matrix.cudnn_min_cc(cudnn)
    gpu = compute_capability_tuple(cc)
    if minimum is None or gpu is None or gpu >= (compute_capability_tuple(minimum) or (0, 0)):
        return None
    return (f"its cuDNN {cudnn} supports compute capability >= {minimum}, not "
            f"sm_{format_cc(gpu).replace('.', '')}, so convolutions fail")


def _newest_reason(build: str, pinned: str | None, narrowed: bool = False,
                   what: str = "a build") -> str:
    """Why this release: the newest this host runs, or, with --framework-version, the newest
    of the pinned series (a newer, unpinned release may well run too), or, from rows that
    version pins `narrowed` (`_pins_narrowed`), the newest they allow."""
    if pinned and build.endswith(f" {pinned}"):
        return f"{build}, as --framework-version asks, has {what} this host runs"
    if pinned:
        return (f"{build} is the newest {pinned} release with {what} this host runs "
                "(--framework-version)")
    allowed = " the version pins allow" if narrowed else ""
    return f"{build} is the newest release{allowed} with {what} this host runs"


def _pins_narrowed(framework: str, candidates: list[Any]) -> bool:
    """Whether the rows the resolver was given leave out dlbox's newest version (the image
    build narrows them to a project's pins or --framework-version): then a build is the
    newest they allow, not the newest release (review: tensorflow==2.4.0 was "the newest
    release")."""
    shipped = getattr(load_matrix(), framework)
    return bool(candidates and shipped) and candidates[0].latest != shipped[0].latest


def _cpu_newest_reason(framework: str, release: Any, candidates: list[Any],
                       target: Target) -> str:
    """Why this CPU build's release: the newest, or the newest the pins or the Python allow."""
    build = f"{framework} {release.latest}"
    if target.version:
        return _newest_reason(build, target.version)
    allowed = " the version pins allow" if _pins_narrowed(framework, candidates) else ""
    python = f" for Python {target.python}" if release is not candidates[0] else ""
    return f"{build} is the newest release{allowed}{python}"


def _resolve_torch(target: Target, matrix: Matrix) -> ResolvedBuild:
    candidates, releases = _target_releases(matrix.torch, target, "torch", matrix)
    if target.cpu or target.driver is None:
        release = releases[0]
        return _torch_build(release, None, target, matrix, [_cpu_reason(target)])

    rejections: list[str] = []
    for release in releases:
        fitting: list[TorchVariant] = []
        for variant in release.variants:
            if target.cuda and not same_release(variant.cuda, target.cuda):
                continue
            why = _torch_variant_rejection(target, variant, matrix)
            if why:
                rejections.append(f"torch {release.latest} {why}")
            else:
                fitting.append(variant)
        if not fitting:
            continue
        ga_clean = [v for v in fitting if driver_fit(matrix, target.driver, v.cuda).ga_ok]
        chosen = (ga_clean or fitting)[0]
        reasons = _gpu_reasons(target)
        reasons.append(_newest_reason(f"torch {release.latest}", target.version,
                                      _pins_narrowed("torch", candidates)))
        if release is not releases[0]:
            newer = releases[0]
            reasons.append(f"newer torch {newer.latest} has no build for this host "
                           "(see rejected builds)")
        fit = driver_fit(matrix, target.driver, chosen.cuda)
        if ga_clean:
            reasons.append(f"{chosen.name}: driver >= {fit.ga_driver}, the GA driver of CUDA "
                           f"{chosen.cuda}")
        else:
            reasons.append(f"{chosen.name}: driver >= {fit.min_driver} runs CUDA {chosen.cuda} "
                           f"under minor-version compatibility (GA driver {fit.ga_driver})")
        skipped = [v for v in fitting if v is not chosen and v.cuda and chosen.cuda
                   and (parse_version(v.cuda) or ()) > (parse_version(chosen.cuda) or ())]
        if skipped:
            needs = ", ".join(f"{v.name} would need driver >= "
                              f"{driver_fit(matrix, target.driver, v.cuda).ga_driver}, the GA "
                              f"driver of CUDA {v.cuda}" for v in skipped)
            reasons.append(f"{needs}; {chosen.name} runs without caveats")
        for cc in target.compute_capabilities:
            how = arch_fit(cc, chosen.archs, chosen.ptx)
            if how == "ptx":
                reasons.append(f"sm_{cc.replace('.', '')} runs through PTX JIT (first start slow)")
        if target.cuda:
            reasons.append(f"CUDA {target.cuda} was requested")
        # the GPU's own reasons (kernels, cuDNN) first: they say why newer releases are out
        shown = sorted(rejections, key=lambda r: "no kernel image" not in r and "cuDNN" not in r)
        reasons.extend(f"rejected: {r}" for r in shown[:6])
        return _torch_build(release, chosen, target, matrix, reasons)

    raise _torch_unresolvable(target, releases, matrix, rejections)


def _torch_unresolvable(
    target: Target, releases: list[TorchRelease], matrix: Matrix, rejections: list[str]
) -> HostEnvError:
    """One line naming the blocking cause (driver or architecture) and the fix."""
    wanted = f" with CUDA {target.cuda}" if target.cuda else ""
    if target.cuda and not rejections:
        cudas = sorted({v.cuda for r in releases for v in r.variants if v.cuda},
                       key=lambda c: parse_version(c) or ())
        builds = f" ({'its' if len(releases) == 1 else 'their'} CUDA builds: {', '.join(cudas)})"
        if target.version is not None:  # the pin, not the matrix, lacks it
            return HostEnvError(
                f"torch {target.version} has no CUDA {target.cuda} build"
                + (builds if cudas else ""),
                hint="pick one of its CUDA versions with --cuda, leave --cuda out, or pin "
                     "a newer torch")
        # the releases a project's requirement admits (image build), or the whole matrix
        span = (releases[0].latest if len(releases) == 1 else
                f"{releases[-1].latest} to {releases[0].latest}")
        return HostEnvError(
            f"{'torch' if len(releases) == 1 else 'no torch release of'} {span} "
            f"{'has no' if len(releases) == 1 else 'has a'} CUDA {target.cuda} build"
            + (builds if cudas else ""),
            hint="pick one of those CUDA versions with --cuda, or leave --cuda out to let "
                 "dlbox pick the CUDA variant")
    known = load_matrix().torch  # all of dlbox's data, not only the releases a pin admits
    uncovered = [cc for cc in target.compute_capabilities
                 if not any(arch_fit(cc, variant.archs, variant.ptx) in ("sass", "ptx")
                            for release in known for variant in release.variants
                            if variant.cuda)]
    if uncovered:  # review: sm_35 was told to update its driver, then to use an older torch
        shown = ", ".join(f"sm_{cc.replace('.', '')}" for cc in uncovered)
        return HostEnvError(
            f"no torch build that dlbox knows (torch {known[-1].latest} to "
            f"{known[0].latest}) has kernels for {shown}, whatever the driver",
            hint="resolve with --cpu (the CPU build runs on any host); a torch older than "
                 "dlbox's data may still have them, built or installed by hand")
    # (driver, driver text, build) of each build, and of those the GPU can use (no kernels,
    # a cuDNN that dropped it: no way out; review: a K80 was sent to torch 2.7.1 cu118): the
    # oldest driver of a usable one is named, else (none is) of any, for the driver branch
    candidates: list[tuple[tuple[int, ...], str, str]] = []
    usable: list[tuple[tuple[int, ...], str, str]] = []
    any_driver = replace(target, driver=None)
    for release in releases:
        for variant in release.variants:
            if target.cuda and not same_release(variant.cuda, target.cuda):
                continue
            minimum = driver_fit(matrix, None, variant.cuda).min_driver
            key = parse_version(minimum)
            if not (minimum and key):
                continue
            build = (key, minimum, f"torch {release.latest} {variant.name}")
            candidates.append(build)
            if not _torch_variant_rejection(any_driver, variant, matrix):
                usable.append(build)
    # the first of the oldest (newest release first), as a strict `<` over the loop kept it
    lowest = min(usable or candidates, key=lambda build: build[0], default=None)
    if lowest and version_at_least(target.driver, lowest[1]) is False:
        return _driver_error(
            f"driver {target.driver} is older than every torch build{wanted} needs "
            f"(the lowest is {lowest[1]}, for {lowest[2]})",
            target, matrix, lowest[1], "torch")
    caps = ", ".join(f"sm_{c.replace('.', '')}" for c in target.compute_capabilities)
    # the GPU's own reasons (no kernels, a cuDNN that dropped it) first: they are the cause
    gpu_first = sorted(rejections, key=lambda r: "no kernel image" not in r and "cuDNN" not in r)
    detail = "; ".join(gpu_first[:2])
    way_out = _unpinned_way_out(target, matrix, "torch") or _one_kind_way_out(target, matrix)
    return HostEnvError(
        f"no torch build{wanted} runs on {caps or 'this GPU'} with driver "
        f"{target.driver}: {detail}",
        hint=f"{way_out}, or resolve with --cpu" if way_out else
        "a newer GPU needs a newer driver and torch; an old GPU an older torch (or --cpu)",
    )


def _one_kind_way_out(target: Target, matrix: Matrix) -> str | None:
    """For GPUs of several kinds that no one torch build covers, though each kind has one
    (an RTX 5090 beside a GTX 1080 Ti: no build has both sm_120 and sm_61): target one kind
    and run on those GPUs only. None when some kind has no build even alone."""
    kinds = list(dict.fromkeys(target.compute_capabilities))
    if len(kinds) < 2:
        return None
    builds = []
    for cc in kinds:
        try:
            builds.append(resolve_build("torch", replace(target, compute_capabilities=(cc,)),
                                        matrix))
        except (HostEnvError, UsageError):
            return None
    each = " or ".join(f"--compute-capability {cc} (torch {build.version} {build.variant})"
                       for cc, build in zip(kinds, builds, strict=True))
    return (f"no one build runs these GPUs together: target one kind, {each}, and run it on "
            "those GPUs only (--gpus device=N, or CUDA_VISIBLE_DEVICES)")


def _torch_build(
    release: TorchRelease,
    variant: TorchVariant | None,
    target: Target,
    matrix: Matrix,
    reasons: list[str],
) -> ResolvedBuild:
    name = variant.name if variant else "cpu"
    warnings = list(_uncertain_warning(release))
    fit = driver_fit(matrix, target.driver, variant.cuda) if variant else None
    if fit and fit.ga_ok is False:
        # (Not "an nvidia/cuda image refuses to start": NVIDIA_REQUIRE_CUDA lets long-term
        # datacenter branches through, 535 for 12.x and 470 for 11.8, review found; dlbox's
        # torch images are not nvidia/cuda's.)
        warnings.append(
            f"driver {target.driver} is below CUDA {variant.cuda if variant else ''}'s GA driver "
            f"{fit.ga_driver}: torch's wheels run on it through minor-version compatibility "
            f"(driver >= {fit.min_driver}), but code that JIT-compiles newer PTX can fail "
            "with 'unsupported toolchain'"
        )
    if variant:
        for cc in target.compute_capabilities:
            if arch_fit(cc, variant.archs, variant.ptx) == "ptx":
                warnings.append(f"sm_{cc.replace('.', '')} has no native kernels in this build: "
                                "PTX JIT at first start")
    return ResolvedBuild(
        framework="torch",
        version=release.latest,
        variant=name,
        cuda=variant.cuda if variant else None,
        cudnn=variant.cudnn if variant else None,
        wheel_index=matrix.torch_wheel_index.format(variant=name),
        requirements=(f"torch=={release.latest}",),
        python_versions=release.python,
        min_driver=fit.min_driver if fit else None,
        reasons=tuple(reasons),
        ga_driver=fit.ga_driver if fit else None,
        warnings=tuple(warnings),
        sources=(release.source,),
        checked=release.checked,
    )


# tensorflow -----------------------------------------------------------------------------


def _gpu_then_driver(target: Target, matrix: Matrix, build: str, min_cc: str | None,
                     cuda: str | None, driver_minimums: list[str]) -> tuple[str | None, DriverFit]:
    """Why `build` (a TensorFlow release, a jax plugin) cannot run on the target, or None,
    with its driver fit. The GPU is checked first: a driver can be updated, a GPU cannot; a
    driver too old adds the driver it needs to `driver_minimums` (for the hint)."""
    fit = driver_fit(matrix, target.driver, cuda)
    too_old = _below(target.compute_capabilities, min_cc)
    if too_old:
        return (f"{build} needs compute capability >= {min_cc}, GPU has "
                f"{', '.join(too_old)}", fit)
    if fit.ok is False:
        driver_minimums.append(fit.min_driver or "")
        return f"{build}: driver {target.driver} < {fit.min_driver}", fit
    return None, fit


def _tf_min_cc(matrix: Matrix, release: Any) -> str | None:
    """The lowest compute capability of a release without its own arch list (per CUDA
    major); None for one with it (`_tf_no_kernels` checks that)."""
    if release.archs or release.ptx:
        return None
    table = dict(matrix.tensorflow_min_cc)
    major = (parse_version(release.cuda) or (0,))[0]
    return table["cuda12"] if major >= 12 else table["cuda10-11"]


def _tf_no_kernels(release: Any, target: Target) -> str | None:
    """Why the official wheels of a TensorFlow release have no kernels for a target GPU
    (review: 2.18+ start at sm_60, so a GTX 980 was given 2.21), or None."""
    if not (release.archs or release.ptx):
        return None
    for cc in target.compute_capabilities:
        if arch_fit(cc, release.archs, release.ptx) == "none":
            return (f"built for {describe_archs(release.archs, release.ptx)}, no kernel image "
                    f"for sm_{cc.replace('.', '')}")
    return None


def _target_words(target: Target) -> str:
    """"driver 470.82.01, sm_37": the GPU target an error is about."""
    caps = ", ".join(f"sm_{c.replace('.', '')}" for c in target.compute_capabilities)
    return f"driver {target.driver}" + (f", {caps}" if caps else "")


def _unresolvable(message: str, target: Target, driver_minimums: list[str], framework: str,
                  matrix: Matrix) -> HostEnvError:
    """The error for no build that fits: DriverTooOld where a driver refused the builds."""
    if driver_minimums:
        lowest = min(driver_minimums, key=lambda d: parse_version(d) or ())
        return _driver_error(message, target, matrix, lowest, framework)
    return HostEnvError(message, hint=_unresolvable_hint(target, framework, matrix))


def _unresolvable_hint(target: Target, framework: str, matrix: Matrix) -> str:
    """What to do when no build fits and no driver was what refused one (builds refused for
    the GPU itself are checked first: a GPU cannot be updated)."""
    # another Python only where one has a build for the GPU (review: jax on a K80 was
    # sent to try another --python, which none has); with none set, this does not recur
    elsewhere = _build_or_none(framework, replace(target, python=None), matrix) \
        if target.python else None
    other = ", or another --python" if elsewhere else ""
    python = f" for Python {target.python}" if other else ""
    unpinned = _unpinned_way_out(target, matrix, framework)
    # with no GPU given (--driver alone), it may be the Python that refused every build
    gpu = "this GPU" if target.compute_capabilities else "this target"
    if unpinned and elsewhere and target.compute_capabilities:
        # the pin runs the GPU, on other Pythons (review: "no GPU build for Python 3.11 ...
        # supports this GPU" where 2.14's [and-cuda] extra has no 3.11 wheels)
        return (f"{framework} {elsewhere.version} {elsewhere.variant} runs this GPU on "
                f"Python {', '.join(elsewhere.python_versions)}, not {target.python}: "
                f"{unpinned}, or resolve with --cpu{other}")
    if unpinned:
        return (f"no {framework} GPU build{python} that you asked for supports {gpu}: "
                f"{unpinned}, or resolve with --cpu{other}")
    return (f"no {framework} GPU build{python} supports {gpu}: resolve with "
            f"--cpu{other}")


def _build_or_none(framework: str, target: Target, matrix: Matrix) -> ResolvedBuild | None:
    try:
        return resolve_build(framework, target, matrix)
    except (HostEnvError, UsageError):
        return None


def last_driver_ceiling(target: Target, matrix: Matrix) -> tuple[int, str, str] | None:
    """(branch, architecture, "sm_37") of the oldest last driver branch among the target's
    GPUs (Kepler: R470), from the matrix; None when current drivers support them all."""
    ceiling: tuple[int, str, str] | None = None
    for cc in target.compute_capabilities:
        last = matrix.last_driver_branch(cc)
        if last and (ceiling is None or last[0] < ceiling[0]):
            ceiling = (last[0], last[1], f"sm_{cc.replace('.', '')}")
    return ceiling


def last_branch_words(ceiling: tuple[int, str, str]) -> str:
    """"R470 is the last driver branch for Kepler GPUs (sm_37)": how hints name a ceiling."""
    branch, architecture, arch = ceiling
    return f"R{branch} is the last driver branch for {architecture} GPUs ({arch})"


def _blocking_ceiling(target: Target, matrix: Matrix,
                      needed: str) -> tuple[int, str, str] | None:
    """The last driver branch of the target's GPUs where it is older than `needed` (a Tesla
    K80 stops at R470, so 525.60.13 is out of its reach), else None."""
    ceiling = last_driver_ceiling(target, matrix)
    if ceiling is None or (parse_version(needed) or (0,))[0] <= ceiling[0]:
        return None
    return ceiling


def _driver_error(message: str, target: Target, matrix: Matrix, needed: str,
                  framework: str) -> HostEnvError:
    """No build runs on the target's driver; builds do from `needed` on: DriverTooOld where the
    GPUs can get that driver."""
    hint = update_driver_hint(target, matrix, needed, framework)
    if _blocking_ceiling(target, matrix, needed) is None:
        return DriverTooOld(message, hint, needed)
    return HostEnvError(message, hint=hint)


def update_driver_hint(target: Target, matrix: Matrix, needed: str, framework: str) -> str:
    """"update the NVIDIA driver to >= `needed`", unless the GPU's last driver branch is
    older than that: then say so, and what can be done instead."""
    ceiling = _blocking_ceiling(target, matrix, needed)
    if ceiling is None:
        return f"update the NVIDIA driver to >= {needed}, or resolve with --cpu"
    unpinned = _unpinned_way_out(target, matrix, framework)
    way_out = f"{unpinned}, or resolve with --cpu" if unpinned else "resolve with --cpu"
    return f"{last_branch_words(ceiling)}, and these {framework} builds need >= {needed}: {way_out}"


def _unpinned_way_out(target: Target, matrix: Matrix, framework: str) -> str | None:
    """"leave --framework-version out (torch 2.3.1 cu118 runs here)" when the target pinned a
    release or a CUDA version and, without the pins, a build does run; else None."""
    pinned = [flag for flag, value in (("--framework-version", target.version),
                                       ("--cuda", target.cuda)) if value]
    if not pinned:
        return None
    try:
        build = resolve_build(framework, replace(target, version=None, cuda=None), matrix)
    except (HostEnvError, UsageError):
        return None
    return (f"leave {' and '.join(pinned)} out ({framework} {build.version} {build.variant} "
            "runs here)")


def _resolve_tensorflow(target: Target, matrix: Matrix) -> ResolvedBuild:
    candidates, releases = _target_releases(matrix.tensorflow, target, "tensorflow", matrix)
    if target.cpu or target.driver is None:
        release = releases[0]
        return ResolvedBuild(
            framework="tensorflow", version=release.latest, variant="cpu", cuda=None,
            cudnn=None, wheel_index=None,
            requirements=(f"{release.cpu_package}=={release.latest}",),
            python_versions=release.python, min_driver=None,
            reasons=(_cpu_reason(target),
                     _cpu_newest_reason("tensorflow", release, candidates, target)),
            warnings=_uncertain_warning(release), sources=(release.source,),
            checked=release.checked,
        )
    if target.cuda and not any(same_release(r.cuda, target.cuda) for r in releases):
        # review: "no release matches", with a hint that blamed the GPU
        cudas = sorted({r.cuda for r in releases}, key=lambda c: parse_version(c) or ())
        what = (f"tensorflow {target.version} has no" if target.version else
                f"no tensorflow release ({releases[-1].latest} to {releases[0].latest}) has a")
        raise HostEnvError(
            f"{what} CUDA {target.cuda} build ({'its' if len(cudas) == 1 else 'their'} CUDA "
            f"versions: {', '.join(cudas)})",
            hint="pick one of those CUDA versions with --cuda, or leave --cuda out")
    rejections: list[str] = []
    driver_minimums: list[str] = []  # the drivers that driver-rejected builds need
    driver_only: list[tuple[Any, str]] = []  # (release, driver it needs): the GPU would do
    gpu_refused = False
    for release in releases:
        if target.cuda and not same_release(release.cuda, target.cuda):
            continue
        build = f"tensorflow {release.latest} (CUDA {release.cuda})"
        no_kernels = _tf_no_kernels(release, target)
        if no_kernels:
            rejections.append(f"{build}: {no_kernels}")
            gpu_refused = True
            continue
        if release.pip_cuda_extra and not _python_ok(target.python, release.and_cuda_python
                                                     or release.python):
            # 2.14's and-cuda pins tensorrt 8.5.3.1, which has no 3.11 wheels (review)
            rejections.append(f"{build}: its [and-cuda] extra installs on Python "
                              f"{', '.join(release.and_cuda_python)} only, not "
                              f"{target.python}")
            continue
        before = len(driver_minimums)
        why, fit = _gpu_then_driver(target, matrix, build, _tf_min_cc(matrix, release),
                                    release.cuda, driver_minimums)
        if why:
            rejections.append(why)
            if len(driver_minimums) > before:
                driver_only.append((release, fit.min_driver or ""))
            else:
                gpu_refused = True
            continue
        reasons = _gpu_reasons(target)
        reasons.append(_newest_reason(f"tensorflow {release.latest}", target.version,
                                      _pins_narrowed("tensorflow", candidates)))
        reasons.append(f"tested with CUDA {release.cuda} and cuDNN {release.cudnn} "
                       "(tensorflow.org tested build configurations)")
        warnings = list(_uncertain_warning(release))
        if fit.ga_ok:
            reasons.append(f"driver >= {fit.ga_driver}, the GA driver of CUDA {release.cuda}")
        else:
            reasons.append(f"driver >= {fit.min_driver} runs CUDA {release.cuda} under "
                           "minor-version compatibility")
            warnings.append(f"driver below CUDA {release.cuda}'s GA driver {fit.ga_driver}: "
                            "XLA may disable parallel PTX compilation and warn")
        for cc in target.compute_capabilities:
            if cuda_knows_arch(matrix, release.cuda, cc) is False:
                rng = cuda_arch_range(matrix, release.cuda)
                warnings.append(
                    f"sm_{cc.replace('.', '')} is newer than CUDA {release.cuda} knows "
                    f"({'sm_' + rng[1].replace('.', '') if rng else '?'} at most): TensorFlow "
                    "runs it only through PTX JIT; expect a slow first start or XLA failures"
                )
        for cc in target.compute_capabilities:
            if arch_fit(cc, release.archs, release.ptx) == "ptx":
                reasons.append(f"sm_{cc.replace('.', '')} runs through PTX JIT (first start slow)")
        if gpu_refused and driver_only:  # an older release, as newer ones lack this GPU
            newer, needed = driver_only[-1]
            reasons.append(f"a driver >= {needed} runs tensorflow {newer.latest} (CUDA "
                           f"{newer.cuda}) on this GPU")
        # the GPU's own reasons first: they say why newer releases are out
        shown = sorted(rejections, key=lambda r: "no kernel image" not in r
                       and "compute capability" not in r)
        reasons.extend(f"rejected: {r}" for r in shown[:6])
        if release.pip_cuda_extra:
            pinned = dict(release.and_cuda_versions).get(release.latest, release.latest)
            variant, requirements = "and-cuda", (f"tensorflow[and-cuda]=={pinned}",)
            if pinned != release.latest:  # 2.15.0's extra needs a tensorrt not on PyPI
                reasons.append(f"pins {pinned}: {release.note}")
            reasons.append("tensorflow[and-cuda] installs that CUDA and cuDNN from pip")
        else:
            variant, requirements = "cuda-system", (f"{release.gpu_package}=={release.latest}",)
            reasons.append(f"needs CUDA {release.cuda} and cuDNN {release.cudnn} installed "
                           "on the system or in the base image")
        return ResolvedBuild(
            framework="tensorflow", version=release.latest, variant=variant,
            cuda=release.cuda, cudnn=release.cudnn, wheel_index=None,
            requirements=requirements,
            python_versions=(release.and_cuda_python if variant == "and-cuda" else ())
            or release.python,
            min_driver=fit.min_driver, reasons=tuple(reasons), ga_driver=fit.ga_driver,
            warnings=tuple(warnings), sources=(release.source,), checked=release.checked,
        )
    wanted = f" with CUDA {target.cuda}" if target.cuda else ""
    raise _unresolvable(
        f"no tensorflow build{wanted} runs on this target ({_target_words(target)}): "
        f"{'; '.join(rejections[:3]) or 'no release matches'}",
        target, driver_minimums, "tensorflow", matrix)


# jax ------------------------------------------------------------------------------------


def _resolve_jax(target: Target, matrix: Matrix) -> ResolvedBuild:
    candidates, releases = _target_releases(matrix.jax, target, "jax", matrix)
    if target.cpu or target.driver is None:
        release = releases[0]
        return ResolvedBuild(
            framework="jax", version=release.latest, variant="cpu", cuda=None, cudnn=None,
            # jax[cpu], not jax: jax up to 0.4.26 brings jaxlib only through its extras,
            # and the project's own jaxlib line is replaced by this one (review); later
            # jax keeps the cpu extra (empty) for compatibility
            wheel_index=None, requirements=(f"jax[cpu]=={release.latest}",),
            python_versions=release.python, min_driver=None,
            reasons=(_cpu_reason(target), _cpu_newest_reason("jax", release, candidates, target)),
            warnings=_uncertain_warning(release), sources=(release.source,),
            checked=release.checked,
        )
    rejections: list[str] = []
    driver_minimums: list[str] = []  # the drivers that driver-rejected builds need
    for release in releases:
        for plugin in release.plugins:
            if target.cuda and not same_release(plugin.cuda, (parse_version(target.cuda)
                                                              or (0,))[0].__str__()):
                continue
            versions = [v for v in release.versions
                        if plugin.since is None or version_at_least(v, plugin.since)]
            if not versions:
                continue
            why, fit = _gpu_then_driver(target, matrix, f"jax {versions[-1]} [{plugin.name}]",
                                        plugin.min_compute_capability, plugin.cuda,
                                        driver_minimums)
            if why:
                rejections.append(why)
                continue
            reasons = _gpu_reasons(target)
            reasons.append(_newest_reason(f"jax {versions[-1]}", target.version,
                                          _pins_narrowed("jax", candidates), "a plugin"))
            reasons.append(f"{plugin.name}: driver >= {fit.min_driver} (CUDA {plugin.cuda}.x "
                           "minor-version compatibility); CUDA and cuDNN come from pip")
            reasons.extend(f"rejected: {r}" for r in rejections[:6])
            return ResolvedBuild(
                framework="jax", version=versions[-1], variant=plugin.name, cuda=plugin.cuda,
                cudnn=plugin.cudnn, wheel_index=None,
                requirements=(f"jax[{plugin.name}]=={versions[-1]}",),
                python_versions=release.python, min_driver=fit.min_driver,
                reasons=tuple(reasons), ga_driver=None,
                warnings=_uncertain_warning(release), sources=(release.source,),
                checked=release.checked,
            )
    raise _unresolvable(
        f"no jax build runs on this target ({_target_words(target)}): "
        f"{'; '.join(rejections[:3]) or 'no plugin matches'}",
        target, driver_minimums, "jax", matrix)
