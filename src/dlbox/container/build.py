"""`dlbox image build`, step by step: project -> framework build -> lock -> spec -> image.

    1. read the project (requirements.txt / pyproject.toml; the built-in one is dlbox)
    2. pick the target: this host (--auto), --cpu, or --gpu for a driver (--driver/--cuda)
    3. use the lock entry for that build kind, or (first build, --relock) resolve one:
       build the image's `system` and `venv` stages, ask the resolver (dlbox.hostenv) for
       the framework build that the target runs on that Python (among the versions the
       project's own pins admit), and let pip resolve every pin inside that stage
       (`pip install --dry-run --report`)
    4. render the Dockerfile from the spec, write the context archive, build it
    5. smoke-test the new image (with the GPU attached when this host can); then, and only
       then, write a newly resolved entry to dlbox.lock (atomically) and tag the image

The pure parts (choosing, merging requirements, spec from a lock entry) are functions of
their arguments and unit-tested; the engine is touched only through `container.engine`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlbox import __version__
from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.container.context import (
    WARN_CONTEXT_BYTES,
    ContextSummary,
    Distribution,
    left_out_packages,
    left_out_weights,
    measure_project,
    outside_links,
    project_digest,
    read_ca_cert,
    scan_wheelhouse,
    wheels_for_pins,
    write_context,
)
from dlbox.container.dockerignore import IgnoreMatcher, project_patterns
from dlbox.container.lock import (
    LOCK_FILE,
    LockEntry,
    LockUnreadable,
    describe_extras,
    lock_key,
    marker_environment,
    pinned_version,
    read_lock,
    requirement_changes,
    stale_reasons,
    target_archs,
    write_lock,
)
from dlbox.container.project import (
    FRAMEWORK_COMPANIONS,
    FRAMEWORK_DISTS,
    PYPROJECT_FILE,
    SETUP_PY_FILE,
    Project,
    detect_framework,
    detect_project,
    normalize_name,
    other_frameworks,
    parse_requirement,
    project_image_above,
    requirement_name,
)
from dlbox.container.render import render_dockerfile, render_lock_requirements
from dlbox.container.run import gpu_blocker, host_facts
from dlbox.container.smoke import SmokeResult, require_smoke_ok, run_smoke
from dlbox.container.spec import FrameworkBuild, ImageSpec, default_tag
from dlbox.errors import ContainerError, DlboxError, HostEnvError, UsageError
from dlbox.fileio import check_writable, current_folder, expand_user
from dlbox.text import has_url_credentials, listed, redact_url_credentials, shell_quote

if TYPE_CHECKING:
    from packaging.requirements import Requirement

Log = Callable[[str], None]
RESOLVE_TIMEOUT_S = 900
RESOLVE_DIR = "/tmp/dlbox-resolve"
DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class BuildRequest:
    project_dir: Path | None = None  # None: the built-in dlbox project
    device: str = "auto"  # auto | cpu | gpu
    framework: str | None = None  # None: from the project's requirements, else torch
    framework_version: str | None = None
    driver: str | None = None  # target NVIDIA driver (GPU builds on a machine without one)
    cuda: str | None = None
    compute_capabilities: tuple[str, ...] = ()
    tag: str | None = None
    base_image: str | None = None
    wheelhouse: Path | None = None
    offline: bool = False
    ca_cert: Path | None = None
    extras: tuple[str, ...] | None = None
    lock_path: Path | None = None
    relock: bool = False
    no_cache: bool = False
    smoke: bool = True
    compile_check: bool = True  # the smoke test compiles the project's .py files
    buildargs: tuple[tuple[str, str], ...] = ()


@dataclass
class BuildOutcome:
    image_id: str
    tags: list[str]
    spec: ImageSpec
    entry: LockEntry
    lock_path: Path
    lock_written: bool
    seconds: float
    build: engine.BuildResult | None = None
    smoke: SmokeResult | None = None
    size_bytes: int | None = None
    context: ContextSummary | None = None
    notes: list[str] = field(default_factory=list)
    project: Project | None = None


def example_command(outcome: BuildOutcome) -> str:
    """A command to suggest running in the new image: dlbox's training for the built-in
    project; the project's own entry script (or a placeholder) for any other."""
    if outcome.spec.project_kind == "builtin":
        return "dlbox train --epochs 1"
    if outcome.project is None:
        return "python3 YOUR_SCRIPT.py"
    root = outcome.project.root
    include = getattr(outcome.project, "include", None)  # None: all that is not ignored
    ignore = IgnoreMatcher(project_patterns(root))
    for name in ("train.py", "main.py", "run.py"):
        # a script .dockerignore left out is on this disk, not in the image
        if ((root / name).is_file() and not ignore.ignored(name)
                and (include is None or name in include)):
            return f"python3 {name}"
    return "python3 YOUR_SCRIPT.py"


# ---- choosing the target ----------------------------------------------------------------------

def choose_target(request: BuildRequest, facts: Callable[[], Any] = host_facts) -> Any:
    """The resolver Target for the request; probes this host only when it has to."""
    from dlbox.hostenv.report import broken_driver_error
    from dlbox.hostenv.resolve import ProbedDriver, Target

    if request.device not in DEVICES:
        raise UsageError(f"unknown device {request.device!r}", hint="use --cpu, --gpu or --auto")
    if request.device == "cpu":
        if request.driver or request.cuda or request.compute_capabilities:
            raise UsageError("--cpu cannot be combined with --driver / --cuda / "
                             "--compute-capability", hint="drop them, or use --gpu")
        return Target(cpu=True)
    if request.driver:
        return Target(driver=request.driver, compute_capabilities=request.compute_capabilities,
                      cuda=request.cuda)
    host = facts()
    nvidia = host.nvidia
    broken = broken_driver_error(host)
    if broken is not None:  # a CPU image would be a silent surprise on a GPU machine
        raise HostEnvError(broken.message, hint="fix the driver (`dlbox doctor` says how); or "
                                                "choose the image: --cpu, or --driver VERSION "
                                                "for the GPU machine that will run it")
    has_gpu = bool(nvidia.driver_version and nvidia.gpus)
    if request.device == "gpu" and not has_gpu:
        raise UsageError(
            "--gpu needs the NVIDIA driver of the machine that will run the image, and this "
            "machine has none",
            hint="pass it: --driver 550.54.15 (nvidia-smi on that machine prints it), "
                 "optionally --cuda 12.4 and --compute-capability 8.6",
        )
    if not has_gpu:
        if request.cuda or request.compute_capabilities:
            raise UsageError("--cuda / --compute-capability need a GPU target",
                             hint="add --driver VERSION (or build on the GPU machine)")
        return Target(cpu=True)
    caps = request.compute_capabilities or nvidia.compute_capabilities
    return Target(driver=ProbedDriver(nvidia.driver_version), compute_capabilities=tuple(caps),
                  cuda=request.cuda, listed=not request.compute_capabilities)


# ---- the framework build ----------------------------------------------------------------------

def _normalize_framework(name: str | None) -> str | None:
    if name is None:
        return None
    aliases = {"pytorch": "torch", "tf": "tensorflow"}
    value = aliases.get(name.strip().lower(), name.strip().lower())
    if value not in FRAMEWORK_DISTS:
        raise UsageError(f"unknown framework {name!r}",
                         hint=f"choose one of: {', '.join(FRAMEWORK_DISTS)}")
    return value


def _matrix_for_version(matrix: Any, framework: str, version: str) -> Any:
    from dlbox.hostenv.resolve import check_pin_form, refuse_unreleased_patch
    from dlbox.hostenv.versions import same_release

    rows = getattr(matrix, framework)
    check_pin_form(version)
    kept = tuple(row for row in rows if version in row.versions) or tuple(
        row for row in rows if same_release(version, row.release))
    if not kept:
        known = ", ".join(row.release for row in rows[:8])
        raise UsageError(f"{framework} {version} is not in dlbox's compatibility matrix",
                         hint=f"pick a listed release ({known}, ...) or leave the version out")
    refuse_unreleased_patch(rows, version, framework)
    return dataclasses.replace(matrix, **{framework: kept})


def _cuda_image_example(framework: str, pythons: Sequence[str], target: Any,
                        matrix: Any) -> str | None:
    """For a GPU TensorFlow whose builds on `pythons` all need CUDA on the system (2.13 and
    older): an example --base-image with that CUDA (review: the hint named python:3.10-slim,
    which has none), else None."""
    if framework != "tensorflow" or target.cpu or not target.driver or matrix is None:
        return None
    rows = [row for row in matrix.tensorflow if set(row.python) & set(pythons)]
    if not rows or any(row.pip_cuda_extra for row in rows):
        return None
    for row in rows:  # newest first
        image = _cuda_image_for(row.cuda, row.cudnn, row.python)
        if image is not None:
            return f" and CUDA {row.cuda}, cuDNN {row.cudnn} (e.g. {image.image})"
    return f" and CUDA {rows[0].cuda}, cuDNN {rows[0].cudnn} (an Ubuntu image)"


def _python_error(error: HostEnvError, framework: str, version: str | None,
                  target: Any, matrix: Any = None) -> HostEnvError:
    """The resolver's "no build for Python X" in image build's terms: the Python is the base
    image's, so the way out is another --base-image (image build has no --python)."""
    from dlbox.hostenv.resolve import NoBuildForPython

    if not target.python:
        return error
    if not isinstance(error, NoBuildForPython):
        # "... for Python 3.11 ...: resolve with --cpu, or another --python" (a GPU only old
        # releases serve): image build's Python is the base image's.
        if error.hint and error.hint.endswith(", or another --python"):
            return HostEnvError(error.message, hint=error.hint.removesuffix(
                ", or another --python") + ", or --base-image with another Python")
        return error
    known = list(error.pythons)
    what = f"{framework} {version}" if version else f"no {framework} release dlbox knows"
    verb = "does not support" if version else "supports"
    example = (_cuda_image_example(framework, known, target, matrix)
               or (f" (e.g. python:{known[-1]}-slim-bookworm)" if known else ""))
    return HostEnvError(
        f"{what} {verb} Python {target.python}, the base image's",
        hint=f"pass --base-image with Python {', '.join(known) or 'it supports'}{example}"
             + (", or another --framework-version" if version else ""))


def _past_last_driver(error: HostEnvError, framework: str, target: Any, matrix: Any,
                      what: str, way_out: str) -> HostEnvError:
    """The resolver's error, with a hint that holds for a GPU past its last driver branch.

    The resolver knows only the driver: for a pin whose builds all need CUDA 12 it says
    "update the NVIDIA driver to >= 525.60.13", which a Tesla K80 (Kepler, last branch R470)
    can never do. When even the newest driver of the GPU's last branch runs no build in
    `matrix` (the one the resolver was given), the hint says so and gives `way_out` instead."""
    from dlbox.hostenv.resolve import last_branch_words, last_driver_ceiling, resolve_build
    from dlbox.hostenv.versions import parse_version

    ceiling = last_driver_ceiling(target, matrix)
    driver = parse_version(target.driver)
    if ceiling is None or driver is None or driver[0] > ceiling[0]:
        return error
    # Any real driver of the branch sorts below <branch>.999: the newest the GPU can have.
    try:
        resolve_build(framework, dataclasses.replace(target, driver=f"{ceiling[0]}.999"),
                      matrix)
    except DlboxError:
        return HostEnvError(error.message, hint=(
            f"{last_branch_words(ceiling)}, and no {what} runs on it: {way_out}"))
    return error  # a driver of that branch runs one: the resolver's hint holds


def resolve_pinned(framework: str, target: Any, version: str, matrix: Any = None,
                   base_image: str | None = None, requested: bool = True) -> Any:
    """The resolver's build for `--framework-version`: a release ("2.1") gives its newest
    known patch, a patch version ("2.1.0") exactly that one. `base_image` (--base-image) is
    for the hint's version: see `_newest_runnable`. `requested`: the user asked for the
    version (a reason says so); False for one dlbox took elsewhere (a wheelhouse's wheel, a
    project's pin), whose callers give their own reason."""
    from dlbox.hostenv.matrix import load_matrix
    from dlbox.hostenv.resolve import resolve_build
    from dlbox.hostenv.versions import parse_version

    matrix = matrix or load_matrix()
    narrowed = _matrix_for_version(matrix, framework, version)
    try:
        resolved = resolve_build(framework, target, narrowed)
    except HostEnvError as error:
        python = _python_error(error, framework, version, target, narrowed)
        if python is not error:
            raise python from None
        best = _newest_runnable(framework, target, matrix, base_image)
        way_out = (f"pass --framework-version {best} (the newest {framework} this target "
                   "runs), or leave it out, or build with --cpu" if best
                   else "build with --cpu")
        raise _past_last_driver(error, framework, target, narrowed,
                                f"{framework} {version} build", way_out) from None
    reasons = resolved.reasons + ((f"{framework} {version} requested",) if requested else ())
    public = version.split("+")[0]
    if len(parse_version(public) or ()) < 3:
        # Not pip's ==2.1, which is 2.1.0: the resolver took the release's newest patch.
        return dataclasses.replace(resolved, reasons=reasons)
    requirements = tuple(re.sub(r"==\S+", f"=={public}", line, count=1)
                         for line in resolved.requirements)
    return dataclasses.replace(resolved, version=public, requirements=requirements,
                               reasons=reasons)


def framework_dist(resolved: Any) -> str:
    return requirement_name(resolved.requirements[0]) if resolved.requirements else \
        resolved.framework


def resolve_framework(framework: str, target: Any, wheelhouse: Sequence[Distribution] = (),
                      version: str | None = None, matrix: Any = None,
                      pins: Sequence[tuple[str, Any]] = (), base_image: str | None = None) -> Any:
    """The build to put in the image: `version` if given; else the newest build that the
    target runs, except that a wheelhouse holding a build the target runs wins (offline).

    `pins` are the project's own requirements on the framework (`_project_pins`): without a
    `version`, only versions they admit are candidates, from the matrix and the wheelhouse
    alike (a project pinning torch==2.12.0 gets 2.12.0, not the newest release and a clash).
    `base_image` (--base-image) only checks the version a hint suggests (`_newest_runnable`).
    """
    from packaging.version import Version

    from dlbox.hostenv.matrix import load_matrix
    from dlbox.hostenv.resolve import resolve_build

    matrix = matrix or load_matrix()
    _refuse_conflicting_pins(framework, matrix, pins)
    if version:
        return resolve_pinned(framework, target, version, matrix, base_image)

    def admitted(candidate: str) -> bool:
        public = candidate.split("+")[0]
        return all(spec.contains(public, prereleases=True) for _, spec in pins)

    if pins:
        newest = _resolve_admitted(framework, target, matrix, pins, base_image)
    else:
        try:
            newest = resolve_build(framework, target, matrix)
        except HostEnvError as error:
            raise _python_error(error, framework, None, target, matrix) from None
    dist = framework_dist(newest)
    candidates = sorted({d.version for d in wheelhouse
                         if d.name == dist and d.fits_python(target.python)
                         and admitted(d.version)},
                        key=Version, reverse=True)
    for candidate in candidates:
        public, _, local = candidate.partition("+")
        try:
            chosen = resolve_pinned(framework, target, public, matrix, requested=False)
        except DlboxError:
            continue
        if framework == "torch" and local and local != chosen.variant:
            continue  # a cu126 wheel is no use to a CPU image, and the other way round
        if framework == "torch" and not local and chosen.variant == "cpu":
            continue  # PyPI's plain torch wheel on Linux is a CUDA build
        note = (f"{dist} {candidate} is in the wheelhouse: used, so the build needs no "
                "download of it" if public == newest.version.split("+")[0] else
                f"{dist} {candidate} is in the wheelhouse: used instead of the newest "
                f"{'admitted ' if pins else ''}release {newest.version}, so the build needs "
                "no download of it")
        reasons = chosen.reasons
        if pins:
            reasons += (f"the project requires {_pins_text(pins)}, which admits it",)
        return dataclasses.replace(chosen, reasons=reasons + (note,))
    return newest


def _pins_text(pins: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(line for line, _ in pins)


def _refuse_conflicting_pins(framework: str, matrix: Any,
                             pins: Sequence[tuple[str, Any]]) -> None:
    """Pins that each admit versions dlbox knows but not one together (`-r base.txt` says
    torch>=2.14, the file itself torch==2.13.0): the project's own clash, which no target
    and no --framework-version can settle."""
    if len(pins) < 2:
        return
    known = [v for row in getattr(matrix, framework) for v in row.versions if _version_key(v)]

    def admitted(specs: Sequence[Any]) -> bool:
        return any(all(spec.contains(v, prereleases=True) for spec in specs) for v in known)

    specs = [spec for _, spec in pins]
    if all(admitted([spec]) for spec in specs) and not admitted(specs):
        raise ContainerError(
            f"the project's requirements on {framework} conflict: {_pins_text(pins)} admit "
            "no version together",
            hint="keep one of them (look in requirements.txt and the files it includes with "
                 "-r), or make them agree")


def _resolve_admitted(framework: str, target: Any, matrix: Any,
                      pins: Sequence[tuple[str, Any]], base_image: str | None = None) -> Any:
    """The newest build the target runs among the versions the project's pins admit.

    The matrix is narrowed to those versions (rows without one dropped), and the resolver
    walks it as it walks the whole one: newest release first, the first the target runs. None
    admitted, or none the target runs: a ContainerError naming the pin, the versions dlbox
    knows and a version to require instead."""
    from packaging.version import InvalidVersion, Version

    from dlbox.hostenv.resolve import resolve_build

    def admitted(candidate: str) -> bool:
        try:
            Version(candidate)
        except InvalidVersion:
            return False
        return all(spec.contains(candidate, prereleases=True) for _, spec in pins)

    rows = getattr(matrix, framework)
    kept = tuple(dataclasses.replace(row, versions=tuple(v for v in row.versions if admitted(v)))
                 for row in rows if any(admitted(v) for v in row.versions))
    text = _pins_text(pins)
    dist = requirement_name(pins[0][0])

    def instead() -> str | None:
        best = _newest_runnable(framework, target, matrix, base_image)
        return f"{dist}=={best} (the newest this target runs)" if best else None

    if not kept:
        # An exact pin may name a patch of the newest release newer than dlbox's data, which
        # --framework-version takes too (a release older than the newest gets no more).
        for version in _exact_pins(pins):
            try:
                exact = resolve_pinned(framework, target, version, matrix, base_image,
                                       requested=False)
            except DlboxError:
                continue
            return dataclasses.replace(exact, reasons=exact.reasons + (
                f"the project requires {text}",))
        from dlbox.hostenv.versions import same_release

        known = sorted({v for row in rows for v in row.versions if _version_key(v)},
                       key=_version_key)
        # A patch that never existed (torch==2.1.9): its release's patches are the way out.
        patches = [row.versions for version in _exact_pins(pins) for row in rows
                   if same_release(version, row.release)]
        example = (f"{dist}=={patches[0][-1]} ({framework} {', '.join(patches[0])} exist)"
                   if patches else instead() or f"{dist}=={known[-1]}")
        raise ContainerError(
            f"the project requires {text}, and no {framework} version dlbox knows meets it "
            f"(it knows {framework} {known[0]} to {known[-1]})",
            hint=f"require a version dlbox knows, e.g. {example}",
        )
    narrowed = dataclasses.replace(matrix, **{framework: kept})
    try:
        resolved = resolve_build(framework, target, narrowed)
    except HostEnvError as error:
        versions = sorted({v for row in kept for v in row.versions}, key=_version_key,
                          reverse=True)
        shown = listed(versions, 4)
        other = instead()
        python = _python_error(error, framework, None, target, narrowed)
        if python is not error:
            detail = f"none of them supports Python {target.python}, the base image's"
            hint = python.hint or ""
        else:
            detail, hint = error.message, error.hint or ""
            way_out = f"require {other}, or build with --cpu" if other else "build with --cpu"
            ceiling = _past_last_driver(error, framework, target, narrowed,
                                        f"{framework} build that {text} admits", way_out)
            if ceiling is not error:
                hint, other = ceiling.hint or "", None  # its way out names the version
        if other:
            hint += f"; or require {other}" if hint else f"require {other}"
        raise ContainerError(
            f"the project requires {text}, and no {framework} build of the versions it admits "
            f"({shown}) runs on this target: {detail}", hint=hint or None) from None
    return dataclasses.replace(resolved, reasons=resolved.reasons + (
        f"the project requires {text}: {resolved.version} is the newest version it admits "
        "that this target runs",))


def _exact_pins(pins: Sequence[tuple[str, Any]]) -> list[str]:
    """The versions of the pins' `==X.Y.Z` specifiers (no wildcard)."""
    return [spec.version for _, specifier in pins for spec in specifier
            if spec.operator in ("==", "===") and "*" not in spec.version]


def _version_key(version: str) -> tuple[Any, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return (Version(version),)
    except InvalidVersion:
        return ()


def _base_picking(resolve: Callable[[Any], Any], target: Any, base_image: str | None) -> Any:
    """The build that picks the base image, before its Python is known: `resolve(target)`;
    without a --base-image or a known Python, a build that is not cuda-system lands on the
    default base, so it is resolved again on that base's Python, and kept only when that
    leaves a cuda-system build (which picks the nvidia/cuda base instead)."""
    first = resolve(target)
    if base_image or target.python or first.variant == "cuda-system":
        return first
    try:
        again = resolve(dataclasses.replace(target, python=S.DEFAULT_PYTHON))
    except DlboxError:
        return first  # the build's own resolve on the image's Python says why
    return again if again.variant == "cuda-system" else first


def _newest_runnable(framework: str, target: Any, matrix: Any,
                     base_image: str | None = None) -> str | None:
    """The version an unpinned build would take (for a hint), or None if none runs.

    Before the base image's Python is known (the first choice, which picks the base), it
    must also run on the Python the build then assumes (`assumed_python`): review found
    "require tensorflow==2.3.4" for a --base-image of Python 3.11, which 2.3 does not
    support."""
    from dlbox.hostenv.resolve import resolve_build

    try:
        if target.python is not None:
            return str(resolve_build(framework, target, matrix).version)
        # what picks the base image, as `first_choice` does
        first = _base_picking(lambda t: resolve_build(framework, t, matrix), target, base_image)
        python = assumed_python(first, base_image)
        best = resolve_build(framework, dataclasses.replace(target, python=python), matrix)
        if best.variant == "cuda-system" and assumed_python(best, base_image) != python:
            return None  # its base image has another Python again: no sure suggestion
        return str(best.version)
    except DlboxError:
        return None


def first_choice(p: Plan) -> Any:
    """The build that picks the base image, before its Python is known (the build then
    resolves again on the image's Python). Without --base-image, a build that is not
    cuda-system lands on the default base, so it must install on that base's Python: review
    found tensorflow 2.14 (and-cuda) on python:3.11, where its tensorrt has no wheels. When
    the default Python leaves a cuda-system build, that one picks the (nvidia/cuda) base."""
    pins = _project_pins(p.project, p.framework)
    return _base_picking(
        lambda target: resolve_framework(p.framework, target, p.wheelhouse, p.framework_version,
                                         pins=pins, base_image=p.base_image),
        p.target, p.base_image)


def assumed_python(resolved: Any, base_image: str | None) -> str:
    """The Python a build of `resolved` is assumed to get before its base image is seen: the
    nvidia/cuda image's for a cuda-system build on dlbox's base, else the default base's
    (for a --base-image too). ContainerError when no nvidia/cuda image has its CUDA."""
    if resolved.variant == "cuda-system" and not base_image:
        return cuda_base_image(resolved).python
    return S.DEFAULT_PYTHON


def framework_requirement(resolved: Any) -> tuple[str, ...]:
    """The pip lines for the resolved build; torch pins its variant's local version
    (2.13.0+cpu) so pip cannot take PyPI's CUDA wheel of the same number."""
    lines = list(resolved.requirements)
    if resolved.framework == "torch" and lines and "+" not in resolved.version:
        lines[0] = f"torch=={resolved.version}+{resolved.variant}"
    return tuple(lines)


def _project_pins(project: Project, framework: str) -> list[tuple[str, Any]]:
    """(line, specifier) of each of the project's requirements on the framework that has a
    version specifier and applies here (its marker, if any, holds). A local label in a pin
    (torch==2.14.0+cpu) is dropped: which build of that version goes in is dlbox's choice
    for the target, and the image's requirements get the resolved line instead."""
    from packaging.specifiers import SpecifierSet

    pins = []
    for line in project.requirements:
        requirement = parse_requirement(line, "requirements")
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for Linux (a macOS wheel's URL, say): pip skips it too
        if requirement.name in FRAMEWORK_DISTS[framework] and requirement.url:
            raise _framework_url_refusal(requirement)
        if requirement.name not in FRAMEWORK_DISTS[framework] or not requirement.specifier:
            continue
        public = SpecifierSet(",".join(f"{spec.operator}{spec.version.split('+')[0]}"
                                       for spec in requirement.specifier))
        pins.append((line, public))
    return pins


def _framework_url_refusal(requirement: Any) -> UsageError:
    """The error for `torch @ https://.../torch-2.1.0+cpu-...whl`: the build's framework wheel
    is dlbox's choice for the target, so that line was replaced without a word (review)."""
    import urllib.parse

    wheel = urllib.parse.unquote(urllib.parse.urlparse(requirement.url).path.rsplit("/", 1)[-1])
    match = re.match(rf"^{re.escape(requirement.name)}-([0-9][^-]*?)(?:\+[^-]*)?-", wheel,
                     re.IGNORECASE)
    pin = f"{requirement.name}=={match.group(1)}" if match else f"{requirement.name}==VERSION"
    return UsageError(f"the project requires {requirement.name} from a URL "
                      f"({redact_url_credentials(requirement.url)}), but dlbox picks the "
                      f"{requirement.name} build (CPU or CUDA) for the target itself",
                      hint=f"pin the version instead ({pin}); the build takes its wheel for "
                           "the target (--cpu/--gpu) from the framework's index or "
                           "--wheelhouse DIR")


def version_for_project(project: Project, framework: str, version: str | None,
                        matrix: Any = None) -> str | None:
    """`--framework-version` as the resolver takes it. A release ("2.1") means its newest
    known patch; when the project's own pins rule that one out, the newest patch they admit
    (a project pinning torch==2.1.0 gets 2.1.0, not 2.1.2 and a clash). Anything else (a
    patch version, a release the pins rule out entirely: check_project_allows reports that
    clash) is returned as it is."""
    from dlbox.hostenv.matrix import load_matrix

    pins = _project_pins(project, framework)
    if not version or not pins or not re.fullmatch(r"\d+\.\d+", version):
        return version
    patches = _release_patches(matrix or load_matrix(), framework, version)
    if patches is None:
        return version

    def admitted(patch: str) -> bool:
        return all(spec.contains(patch, prereleases=True) for _, spec in pins)

    if not patches or admitted(patches[-1]):
        return version
    return next((patch for patch in reversed(patches) if admitted(patch)), version)


_LOOSEN_PIN_HINT = ("pass --framework-version with a version both allow (see `dlbox doctor "
                    "--resolve`), or loosen the project's requirement")


def check_project_allows(project: Project, framework: str, version: str) -> None:
    """The project's own pin of the framework must admit the chosen version."""
    public = version.split("+")[0]
    for line, specifier in _project_pins(project, framework):
        if not specifier.contains(public, prereleases=True):
            raise ContainerError(
                f"the project requires {line}, but the {framework} build for this target is "
                f"{version}",
                hint=_LOOSEN_PIN_HINT,
            )


def _check_project_admits(project: Project, framework: str, version: str,
                          matrix: Any) -> None:
    """--framework-version against the project's own pin: a patch version the pin refuses,
    or a release none of whose known patches it admits, is refused as check_project_allows
    would after the resolve."""
    pins = _project_pins(project, framework)
    _refuse_conflicting_pins(framework, matrix, pins)  # a clash no version settles, first
    if not re.fullmatch(r"\d+\.\d+", version):
        check_project_allows(project, framework, version)
        return
    patches = _release_patches(matrix, framework, version)
    if not patches:
        return
    for line, specifier in pins:
        if not any(specifier.contains(patch, prereleases=True) for patch in patches):
            raise ContainerError(
                f"the project requires {line}, but --framework-version asks for {framework} "
                f"{version} ({', '.join(patches)})",
                hint=_LOOSEN_PIN_HINT,
            )


def _release_patches(matrix: Any, framework: str, release: str) -> list[str] | None:
    """The known patch versions of `release` ("2.1") in the matrix, oldest first; None when
    one of them is not a version packaging can order."""
    from packaging.version import InvalidVersion, Version

    from dlbox.hostenv.versions import same_release

    try:
        return sorted({patch for row in getattr(matrix, framework)
                       if same_release(release, row.release) for patch in row.versions},
                      key=Version)
    except InvalidVersion:
        return None


def requirements_input(project: Project, framework: str,
                       framework_lines: Sequence[str]) -> tuple[str, ...]:
    """What pip resolves: the project's lines with its framework lines replaced by the
    resolved build's, plus the build backend (the code layer installs without isolation)."""
    family = set(FRAMEWORK_DISTS[framework])
    kept = [line for line in project.requirements if requirement_name(line) not in family]
    return tuple(sorted(set(kept) | set(framework_lines) | set(project.build_requirements)))


def default_base_image(resolved: Any) -> str:
    """dlbox's default base, unless the build needs CUDA installed on the system: then the
    published nvidia/cuda image with that CUDA and cuDNN (`cuda_base_image`)."""
    if resolved.variant == "cuda-system" and resolved.cuda:
        return cuda_base_image(resolved).image
    return env_base_image() or S.DEFAULT_BASE_IMAGE


def env_base_image() -> str | None:
    """$DLBOX_BASE_IMAGE, checked as --base-image is (None when unset or empty)."""
    value = os.environ.get(S.BASE_IMAGE_ENV)
    if not value:
        return None
    try:
        return S.check_image_reference(value, f"${S.BASE_IMAGE_ENV}")
    except UsageError as error:
        raise UsageError(error.message, hint=f"set {S.BASE_IMAGE_ENV} to an image name such as "
                                             f"{S.DEFAULT_BASE_IMAGE}, or unset it") from None


def _cuda_image_for(cuda: str, cudnn: str | None,
                    pythons: Sequence[str] | None = None) -> S.CudaBaseImage | None:
    """The image of `spec.CUDA_BASE_IMAGES` with that CUDA release and cuDNN major (8 when
    not known), and, when `pythons` are given, whose python3 is one of them; else None."""
    from dlbox.hostenv.versions import same_release

    major = (cudnn or "8").split(".")[0]
    for image in S.CUDA_BASE_IMAGES:
        if same_release(cuda, image.cuda) and image.cudnn == major \
                and (pythons is None or image.python in pythons):
            return image
    return None


def cuda_base_image(resolved: Any) -> S.CudaBaseImage:
    """The nvidia/cuda image for a cuda-system build: its CUDA release and cuDNN major in
    `spec.CUDA_BASE_IMAGES`, else a ContainerError telling the user to bring a base."""
    from dlbox.hostenv.versions import parse_version

    image = _cuda_image_for(resolved.cuda, resolved.cudnn)
    if image is not None:
        return image
    cudnn = (resolved.cudnn or "8").split(".")[0]
    major = (parse_version(resolved.cuda) or (0,))[0]
    why = (f"NVIDIA removed the nvidia/cuda images of CUDA {S.REMOVED_CUDA_BELOW - 1}.x and "
           "older from Docker Hub" if major < S.REMOVED_CUDA_BELOW
           else "dlbox knows no published nvidia/cuda image with them")
    # DLBOX_BASE_IMAGE is not the way out: it replaces the CPU-and-pip default, which has no
    # CUDA, so only --base-image overrides this choice.
    raise ContainerError(
        f"{resolved.framework} {resolved.version} needs CUDA {resolved.cuda} and cuDNN "
        f"{resolved.cudnn or cudnn} installed in the image, and {why}",
        hint=f"pass --base-image IMAGE: an Ubuntu image with CUDA {resolved.cuda} and cuDNN "
             f"{resolved.cudnn or cudnn} installed (one you build, or a copy you keep)")


def split_pip_options(options: Sequence[str]) -> tuple[str | None, tuple[str, ...],
                                                       tuple[str, ...]]:
    """requirements.txt options -> (index URL, extra index URLs, other flags)."""
    index, extra, flags = None, [], []
    for option in options:
        name, _, value = option.partition("=")
        if name == "--index-url":
            index = value
        elif name == "--extra-index-url":
            extra.append(value)
        else:
            flags.append(option)
    return index, tuple(extra), tuple(flags)


# ---- the spec ---------------------------------------------------------------------------------

def framework_from_entry(entry: LockEntry) -> FrameworkBuild:
    return FrameworkBuild(name=entry.framework, version=entry.framework_version,
                          variant=entry.variant, cuda=entry.cuda, cudnn=entry.cudnn,
                          wheel_index=entry.wheel_index, min_driver=entry.min_driver)


def companions_in(framework: str, requirements: Sequence[str]) -> tuple[str, ...]:
    """The framework's companions (torchvision, ...) that `requirements` (PEP 508 lines or
    pins) name."""
    names = {requirement_name(line) for line in requirements}
    return tuple(name for name in FRAMEWORK_COMPANIONS.get(framework, ()) if name in names)


def framework_in_wheelhouse(wheelhouse: Sequence[Distribution], dist: str, version: str,
                            python: str | None, companions: Sequence[str] = ()) -> bool:
    """Whether the wheelhouse holds the framework wheel itself, and a wheel of each of its
    `companions` the build needs: then the framework's index is not needed. Review: with
    torch alone there, torchvision came from PyPI, a CUDA build beside torch+cpu, and the
    image's `import torchvision` failed."""
    wheels, uncovered = wheels_for_pins(wheelhouse, (f"{dist}=={version}",), python or None)
    return bool(wheels) and not uncovered and all(
        any(d.name == name and d.fits_python(python or None) for d in wheelhouse)
        for name in companions)


def spec_for(project: Project, entry: LockEntry, *, base_digest: str | None = None,
             wheelhouse: bool = False, offline: bool = False, ca_cert: bool = False,
             use_wheel_index: bool = True) -> ImageSpec:
    """The image spec of a project built from a lock entry: pure."""
    index, extra, flags = split_pip_options(entry.project_pip_options)
    return ImageSpec(
        project_name=project.name,
        project_kind=project.kind,
        project_version=project.version,
        framework=framework_from_entry(entry),
        base_image=entry.base_image,
        base_digest=base_digest,
        install_project=project.installable,
        python=entry.python,
        index_url=index,
        extra_index_urls=extra,
        pip_flags=flags,
        wheelhouse=wheelhouse,
        use_wheel_index=use_wheel_index,
        offline=offline,
        ca_cert=ca_cert,
        command=project.command,
        system_packages=project.system_packages,
        lock_sha256=entry.sha256(),
    )


def spec_with_wheelhouse(p: Plan, entry: LockEntry, request: BuildRequest
                         ) -> tuple[ImageSpec, tuple[Distribution, ...], tuple[str, ...]]:
    """(the spec of a build from `entry`, the wheelhouse files that go to the engine with it,
    the pins no file covers): the one answer of the dry run and the build (review: the dry
    run shipped the whole wheelhouse, the build the pinned wheels alone, and their
    Dockerfiles differed). Only the wheels the entry pins go, so a wheelhouse holding none of
    them is not in the Dockerfile; with every pin there, pip runs with --no-index. An entry
    not pinned yet (a dry run before the first build's lock) is given the whole wheelhouse,
    which pip's resolution may take any wheel of, and what the project asks for decides
    whether the framework's index is needed."""
    if entry.pinned:
        wheels, uncovered = wheels_for_pins(p.wheelhouse, entry.pinned, entry.python or None)
    else:
        wheels, uncovered = p.wheelhouse, ()
    in_house = framework_in_wheelhouse(
        wheels, entry.framework, entry.framework_version, entry.python,
        companions_in(entry.framework, entry.pinned or entry.requirements_in))
    spec = spec_for(p.project, entry, wheelhouse=bool(wheels),
                    offline=request.offline or bool(entry.pinned and wheels and not uncovered),
                    ca_cert=request.ca_cert is not None, use_wheel_index=not in_house)
    return spec, wheels, uncovered


def lock_requirements_text(entry: LockEntry) -> str:
    header = (f"dlbox.lock {entry.key}: {entry.framework} {entry.framework_version}, "
              f"Python {entry.python}, base {entry.base_image}\n"
              "installed with pip install --no-deps: every line is pinned")
    return render_lock_requirements(entry.pinned, header)


def provisional_entry(project: Project, resolved: Any, key: str, base_image: str,
                      python: str | None) -> LockEntry:
    """What the lock would hold before pip pinned it (for --dry-run without a lock)."""
    lines = framework_requirement(resolved)
    version = lines[0].split("==", 1)[1] if lines and "==" in lines[0] else resolved.version
    return LockEntry(
        key=key, framework=resolved.framework, framework_version=version,
        variant=resolved.variant, cuda=resolved.cuda, cudnn=resolved.cudnn,
        wheel_index=resolved.wheel_index, min_driver=resolved.min_driver,
        python=python or S.DEFAULT_PYTHON, base_image=base_image, base_id=None,
        project_requirements=project.input_requirements(),
        project_pip_options=project.pip_options,
        requirements_in=requirements_input(project, resolved.framework, lines),
        pinned=(), reasons=tuple(resolved.reasons), dlbox_version=__version__,
        resolved=resolved.to_dict(),
    )


# ---- planning (no engine) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    project: Project
    framework: str
    target: Any
    key: str
    lock_path: Path
    entries: dict[str, LockEntry]
    entry: LockEntry | None  # the usable lock entry; None: resolve (first build / --relock)
    wheelhouse: tuple[Distribution, ...]
    framework_version: str | None = None  # --framework-version, for the project's pins
    lock_notes: tuple[str, ...] = ()  # what the user should know about the lock entry used
    base_image: str | None = None  # --base-image, or the chosen base a --relock keeps
    # what the build says at its start and among its notes ("warning: ..."), after the
    # project's notes
    warnings: tuple[str, ...] = ()


def check_request(request: BuildRequest) -> None:
    """What is wrong with the request's own values, before the project or the engine is read."""
    # `--extras "$EXTRA"` with EXTRA unset: each value given, the repeatable flags' included
    given = [("--framework-version", request.framework_version, "a value"),
             ("--driver", request.driver, "a value"), ("--cuda", request.cuda, "a value"),
             ("--base-image", request.base_image, "a value"),
             ("--framework", request.framework, "a value"),
             *(("--extras", extra, "an extra's name") for extra in request.extras or ()),
             *(("--compute-capability", value, "a value such as 8.6")
               for value in request.compute_capabilities)]
    for flag, value, what in given:
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty", hint=f"give {what}, or leave {flag} out")
    if request.tag is not None:
        S.check_tag(request.tag)
    if request.base_image is not None:
        S.check_image_reference(request.base_image, "--base-image")
    env_base_image()  # a bad $DLBOX_BASE_IMAGE: refused before anything, as --base-image is
    for flag, path, kind in (("--wheelhouse", request.wheelhouse, "folder"),
                             ("--ca-cert", request.ca_cert, "file")):
        if path is not None and not expand_user(path).exists():
            raise UsageError(f"{flag} {path} does not exist", hint=f"pass an existing {kind}")
    if request.offline and request.wheelhouse is None:  # pip's --no-index, and no wheels
        raise UsageError("--offline needs --wheelhouse DIR", hint="pass the folder of wheels")
    if request.ca_cert is not None:
        read_ca_cert(expand_user(request.ca_cert))
    if request.lock_path is not None and expand_user(request.lock_path).is_dir():
        raise UsageError(f"--lock {request.lock_path} is a folder; pass a file path",
                         hint=f"e.g. --lock {request.lock_path / LOCK_FILE}")


def plan(request: BuildRequest, facts: Callable[[], Any] = host_facts) -> Plan:
    check_request(request)
    _buildargs(request)  # credentials in a build arg: refused before anything (dry runs too)
    project = detect_project(request.project_dir, request.extras)
    patterns = project_patterns(project.root)  # unreadable: refused before any build
    if project.installable:  # `pip install .` in the image needs the files that describe it
        matcher = IgnoreMatcher(patterns)
        # setup.cfg holds the metadata beside a setup.py, or beside a pyproject.toml without
        # a [project] table; beside one with it, it may hold tool settings alone
        legacy = (project.root / SETUP_PY_FILE).is_file() or project.kind != "pyproject"
        for name in (PYPROJECT_FILE, SETUP_PY_FILE, *(("setup.cfg",) if legacy else ())):
            if (project.root / name).is_file() and matcher.ignored(name):
                raise UsageError(
                    f"the project's .dockerignore leaves out {name}, which installing the "
                    "project in the image needs",
                    hint=f"remove the line of .dockerignore that matches {name} (or add "
                         f"`!{name}` after it)")
    here = current_folder() if request.project_dir is None else None
    if here is not None and here.resolve() != project.root.resolve() \
            and project_image_above(here) is None:  # else the CLI named that project
        # `dlbox image build` in a folder meant as a project, but missing its requirements
        project = dataclasses.replace(project, notes=project.notes + (
            "building dlbox's own CIFAR-10 project: the current folder has no "
            "requirements.txt, pyproject.toml or setup.py (pass PROJECT_DIR to build "
            "another)",))
    if project.kind != "builtin":
        left_out = left_out_packages(project.root)  # a `data/` package, say: said up front
        left_out += left_out_weights(project.root)
        left_out += outside_links(project)
        if left_out:
            project = dataclasses.replace(project, notes=project.notes + tuple(left_out))
    if request.offline and project.system_packages:
        raise UsageError(
            f"--offline, but apt.txt lists {len(project.system_packages)} Debian packages "
            f"({', '.join(project.system_packages[:4])}), which apt must download",
            hint="leave --offline out: apt needs the network for apt.txt's packages; or drop "
                 "them from apt.txt")
    framework = (_normalize_framework(request.framework)
                 or detect_framework(project.requirements) or "torch")
    if request.framework_version is not None:
        from dlbox.hostenv.matrix import load_matrix

        # A version dlbox does not know is refused now, not after a lock compare whose
        # --relock hint would only lead to this same refusal.
        matrix = load_matrix()
        _matrix_for_version(matrix, framework, request.framework_version)
        # The project's own pin ruling the version out is said before a lock compare, whose
        # --relock hint would only lead to it.
        _check_project_admits(project, framework, request.framework_version, matrix)
    target = choose_target(request, facts)
    gpu = not target.cpu
    others = other_frameworks(project.requirements, framework) if gpu else ()
    warnings: tuple[str, ...] = ()
    if others:  # review: tensorflow beside torch stayed a CPU build, with no word of it
        warnings += (
            f"warning: the project also requires {' and '.join(others)}, which keeps its "
            f"line as written: only {framework} gets a GPU build (build an image per "
            "framework with --framework to give another one its GPU build)",)
    key = lock_key(framework, gpu)
    lock_path = expand_user(request.lock_path or project.root / LOCK_FILE).resolve()
    lock_notes: tuple[str, ...] = ()
    try:
        entries = read_lock(lock_path)
    except LockUnreadable as unreadable:
        if not request.relock:
            raise
        entries = {}  # what cannot be read cannot be kept: --relock writes a new lock
        lock_notes += (f"--relock: {unreadable.message}; the build writes a new "
                       f"{lock_path.name} with its entry alone",)
    entry = None if request.relock else entries.get(key)
    base_image = request.base_image
    old = entries.get(key)
    if request.relock and base_image is None and old is not None \
            and old.base_image not in _default_bases():
        # A base the user chose (a registry-free one, say) is what the lock was made on;
        # a relock for changed requirements must not swap it for dlbox's default.
        base_image = old.base_image
        lock_notes += (f"--relock keeps the base image {lock_path.name} was made on, "
                       f"{base_image} (--base-image changes it)",)
    if entry is not None:
        requirements = project.input_requirements()
        reasons = stale_reasons(
            entry, requirements, project.pip_options,
            base_image=request.base_image, framework_version=request.framework_version,
            cuda=request.cuda, driver=target.driver,
            compute_capabilities=target.compute_capabilities, extras=project.extras,
        )
        if reasons:
            hint = f"re-resolve and rewrite it: {relock_command(request)}"
            if entry.extras is not None and sorted(entry.extras) != sorted(project.extras):
                hint = (f"build with the lock's extras ({describe_extras(entry.extras)}), or "
                        + hint)
            raise ContainerError(
                f"{lock_path.name} no longer matches the project ({key}): {'; '.join(reasons)}",
                hint=hint,
            )
        met, _ = requirement_changes(entry, requirements)
        if met:
            lock_notes = (f"the project's requirements changed since {lock_path.name} "
                          f"({', '.join(met)}), and its pins meet them: built from the lock "
                          "as it is",)
    wheelhouse = scan_wheelhouse(expand_user(request.wheelhouse)) if request.wheelhouse else ()
    if request.offline and request.wheelhouse is not None and entry is None and not wheelhouse:
        # a first build resolves with pip, which then has nothing (a lock's pins get the full
        # download command when the build checks them)
        _refuse_an_empty_wheelhouse(expand_user(request.wheelhouse), project.root)
    return Plan(project, framework, target, key, lock_path, entries, entry, wheelhouse,
                version_for_project(project, framework, request.framework_version),
                lock_notes, base_image, warnings)


def _refuse_an_empty_wheelhouse(folder: Path, project_root: Path) -> None:
    """--offline with a wheelhouse that holds no wheels, refused before any stage is built
    (the docs check: pip's resolution failed later, with `pip download -d WHEELHOUSE`)."""
    if not folder.is_dir():
        return
    listed_in = project_root / "requirements.txt"
    # pip download of a project folder fetches its dependencies (and builds it)
    what = f"-r {shell_quote(listed_in)}" if listed_in.is_file() else shell_quote(project_root)
    raise UsageError(f"--offline, but the wheelhouse {folder} holds no wheels",
                     hint=f"fill it on a machine with network: pip download -d "
                          f"{shell_quote(folder)} {what} (and the framework's wheels); or drop "
                          "--offline")


def _default_bases() -> set[str]:
    """The bases dlbox picks by itself (a relock picks again), as opposed to a user's."""
    return {S.DEFAULT_BASE_IMAGE, env_base_image() or S.DEFAULT_BASE_IMAGE,
            *(row.image for row in S.CUDA_BASE_IMAGES)}


def download_command(request: BuildRequest, entry: LockEntry, pins: Sequence[str]) -> str:
    """The pip command (pasteable) that puts wheels for `pins` into the wheelhouse: for the
    image's Python and Linux, from PyPI and the framework's own wheel index."""
    import shlex

    where = shlex.quote(str(request.wheelhouse or "WHEELHOUSE"))
    return (f"pip download --no-deps{download_target(entry.python, entry.wheel_index)} "
            f"-d {where} " + " ".join(shlex.quote(pin) for pin in pins))


def download_target(python: str, wheel_index: str | None) -> str:
    """The `pip download` options (each with a leading space) that fetch wheels for the
    image's Python (`python`, "3.11.2") and Linux on this machine's architecture, from PyPI
    and the framework's own wheel index."""
    import platform
    import shlex

    major_minor = ".".join(python.split(".")[:2])
    index = f" --extra-index-url {shlex.quote(wheel_index)}" if wheel_index else ""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                       platform.machine().lower())
    # pip matches only the tags named: the manylinux_2_28 of torch 2.7 on, and older ones
    tags = ("manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux")
    platforms = " ".join(f"--platform {tag}_{arch}" for tag in tags)
    return f" --only-binary=:all: --python-version {major_minor} {platforms}{index}"


def relock_command(request: BuildRequest) -> str:
    """The build command of `request` with --relock: every flag the user gave (but --dry-run
    and --json), shell-quoted, so the hint pastes."""
    import shlex

    args = ["dlbox", "image", "build"]
    if request.project_dir is not None:
        args.append(str(request.project_dir))
    if request.device in ("cpu", "gpu"):
        args.append(f"--{request.device}")
    for flag, value in (("--framework", request.framework),
                        ("--framework-version", request.framework_version),
                        ("--driver", request.driver), ("--cuda", request.cuda)):
        if value is not None:
            args += [flag, value]
    for cc in request.compute_capabilities:
        args += ["--compute-capability", cc]
    for flag, text in (("--tag", request.tag), ("--base-image", request.base_image),
                       ("--wheelhouse", request.wheelhouse)):
        if text is not None:
            args += [flag, str(text)]
    if request.offline:
        args.append("--offline")
    if request.ca_cert is not None:
        args += ["--ca-cert", str(request.ca_cert)]
    for extra in request.extras or ():
        args += ["--extras", extra]
    if request.lock_path is not None:
        args += ["--lock", str(request.lock_path)]
    if request.no_cache:
        args.append("--no-cache")
    if not request.smoke:
        args.append("--no-smoke")
    elif not request.compile_check:
        args.append("--no-compile-check")
    return shlex.join(args + ["--relock"])


# Pythons with a Debian bookworm image of python's own (python:X.Y-slim-bookworm)
OFFICIAL_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")


def python_mismatch(project: Project, python: str, base_image: str,
                    cuda_system: bool = False) -> tuple[str, str] | None:
    """(error, hint) when the base image's Python is not one the project's requires-python
    allows; the hint names an image whose Python is (review: "a fitting Python", no name),
    the newest, as _python_error does; for a build on a CUDA base image (`cuda_system`: the
    GPU build needs its CUDA libraries), another such image."""
    if not project.requires_python:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        allowed = SpecifierSet(project.requires_python)
    except InvalidSpecifier:
        return None  # project.py refuses one it cannot read; nothing to add here
    # "3.11" (assumed, a dry run's) is any 3.11.x: >3.11 allows 3.11.2
    versions = [python] if python.count(".") >= 2 else [f"{python}.0", f"{python}.99"]
    if any(allowed.contains(version, prereleases=True) for version in versions):
        return None
    fitting = next((v for v in reversed(OFFICIAL_PYTHONS)
                    if allowed.contains(f"{v}.0", prereleases=True)
                    or allowed.contains(f"{v}.99", prereleases=True)), None)
    return (f"the project requires Python {project.requires_python}; the base image "
            f"{base_image} has {python}",
            "pass --base-image with a CUDA image (nvidia/cuda, Ubuntu) whose python3 fits "
            "requires-python, or loosen requires-python" if cuda_system else
            f"pass --base-image python:{fitting}-slim-bookworm (or another Debian/Ubuntu image "
            "with that Python)" if fitting else
            "pass --base-image with a Debian/Ubuntu image whose python3 fits requires-python")


def _wheelhouse_exclude(request: BuildRequest) -> list[Path]:
    """The --wheelhouse folder (resolved), which a project's files leave out; [] without one."""
    return [expand_user(request.wheelhouse).resolve()] if request.wheelhouse else []


def project_size_note(project: Project, request: BuildRequest) -> str | None:
    """A note for a project that sends more than WARN_CONTEXT_BYTES to the image (a dataset
    beside the code), naming its biggest files; None for one that does not."""
    project_bytes, largest = measure_project(project, exclude=_wheelhouse_exclude(request))
    if project_bytes <= WARN_CONTEXT_BYTES:
        return None
    biggest = ", ".join(f"{name} ({size // 2**20} MiB)" for name, size in largest[:3])
    return (f"the project sends {project_bytes // 2**20} MiB to the image (biggest: "
            f"{biggest}); list data in .dockerignore")


def dry_run(request: BuildRequest, facts: Callable[[], Any] = host_facts) -> tuple[str, list[str]]:
    """(the Dockerfile a build would use, notes about how it was chosen); no engine."""
    p = plan(request, facts)
    notes: list[str] = list(p.project.notes) + list(p.warnings)
    # what would be sent is what a dry run is for checking (review: the build said it, the
    # dry run did not)
    if p.project.kind != "builtin" and (size := project_size_note(p.project, request)):
        notes.append(size)
    if p.entry is not None:
        entry = p.entry
        notes.append(f"{p.lock_path.name}: {p.key} locked ({len(entry.pinned)} pins, "
                     f"Python {entry.python}, base {entry.base_image})")
        notes += p.lock_notes
    else:
        # As the build does: the first choice picks the base image, whose Python then picks
        # the build. Without an engine, that Python is the known one of dlbox's bases (a
        # TensorFlow 2.11 needs CUDA 11.2's Ubuntu 20.04 image and gets its Python 3.8).
        pins = _project_pins(p.project, p.framework)
        first = first_choice(p)
        python = assumed_python(first, p.base_image)
        if p.base_image:  # its Python is not known before the build probes it: none assumed
            resolved = first
        else:
            target = dataclasses.replace(p.target, python=python)
            resolved = resolve_framework(p.framework, target, p.wheelhouse,
                                         p.framework_version, pins=pins)
        check_project_allows(p.project, p.framework, resolved.version)
        base = p.base_image or default_base_image(first)  # as the build: the first choice's
        entry = provisional_entry(p.project, resolved, p.key, base, None)
        entry = dataclasses.replace(entry, python="")
        notes += p.lock_notes
        what = (f"--relock: the build resolves a new {p.key} entry for {p.lock_path.name}"
                if request.relock and p.key in p.entries else
                f"no {p.key} entry in {p.lock_path.name} yet: the build resolves one")
        assumed = (f"the Python of {p.base_image} is checked when the build probes the "
                   "image" if p.base_image else
                   f"assuming Python {python} for the framework choice")
        notes.append(f"{what} ({assumed}) and writes it")
        # what the build refuses once it has seen the image's Python (not known for a
        # --base-image: none is assumed of it)
        mismatch = None if p.base_image else python_mismatch(
            p.project, python, base, resolved.variant == "cuda-system")
        if mismatch is not None:
            notes.append(f"warning: {mismatch[0]} (assumed): the build will refuse; "
                         f"{mismatch[1]}")
        notes += [f"why: {reason}" for reason in resolved.reasons]
        # what `doctor --resolve` warns of for this build (uncertain data, a driver below the
        # CUDA release's GA driver, no native kernels for a GPU): the build's user needs it too
        notes += [f"warning: {warning}" for warning in resolved.warnings]
    spec, _, uncovered = spec_with_wheelhouse(p, entry, request)
    if request.offline and uncovered:  # what the build refuses at once
        notes.append(f"warning: --offline, but the wheelhouse lacks {len(uncovered)} pinned "
                     f"packages ({', '.join(uncovered[:5])}{' ...' if len(uncovered) > 5 else ''}"
                     f"), so the build will refuse; fill it first: "
                     f"{download_command(request, entry, uncovered)}")
    companions = FRAMEWORK_COMPANIONS.get(entry.framework, ())
    others = [name for name in companions
              if name not in companions_in(entry.framework, entry.requirements_in)]
    dependencies = {requirement_name(line) for line in entry.requirements_in} - {
        entry.framework, *companions}
    if not spec.use_wheel_index and not entry.pinned and others and dependencies \
            and entry.wheel_index and not request.offline:
        # what only pip's resolution shows (review: timm's torchvision; see _lock)
        notes.append(f"if a dependency brings in {' or '.join(others)} and the wheelhouse "
                     f"lacks it, the build resolves it from {entry.wheel_index}, with that "
                     "index in the Dockerfile")
    if not entry.python:
        spec = dataclasses.replace(spec, python=None)
    notes.insert(0, f"{spec.framework.name} {spec.framework.version} ({spec.framework.variant})"
                    f" for {'GPU' if spec.gpu else 'CPU'}, base {spec.base_image}")
    return render_dockerfile(spec), notes


# ---- resolving pins inside the image ----------------------------------------------------------

RESOLVE_SCRIPT = r'''
import json, os, platform, subprocess, sys
args = json.loads(os.environ["DLBOX_PIP_ARGS"])
base = os.environ["DLBOX_RESOLVE_DIR"]
python = sys.executable
import pip
version = tuple(int(p) for p in pip.__version__.split(".")[:2] if p.isdigit())
if version < (22, 2):  # --dry-run --report arrived in pip 22.2: use a newer pip on the side
    subprocess.run([python, "-m", "venv", base + "/pip-venv"], check=True)
    python = base + "/pip-venv/bin/python"
    subprocess.run([python, "-m", "pip", "install", "-q", "pip>=23.1"] + [
        a for a in args if a.startswith(("--index-url", "--extra-index-url", "--find-links",
                                         "--no-index", "--trusted-host"))], check=True)
cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed",
       "--report", base + "/report.json", "-r", base + "/requirements.in"] + args
code = subprocess.run(cmd).returncode
if code:
    sys.exit(code)
with open(base + "/report.json") as handle:
    report = json.load(handle)
print("DLBOX_RESOLVE " + json.dumps({"python": platform.python_version(),
                                     "install": report.get("install", [])}))
'''


def resolve_pins(client: Any, image: str, requirements: Sequence[str], pip_args: Sequence[str],
                 wheels: Sequence[Distribution], log: Log, python: str | None = None,
                 wheel_index: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(Python version, pins) as pip resolves `requirements` inside `image`. `python` (the
    image's, when known) and `wheel_index` (the framework's) go into the `pip download` hint
    of an --offline resolution that lacks wheels."""
    from dlbox.container.lock import pins_from_report

    files = {
        "dlbox-resolve/requirements.in": ("\n".join(requirements) + "\n").encode(),
        "dlbox-resolve/resolve.py": RESOLVE_SCRIPT.encode(),
    }
    archive = None
    with tempfile.TemporaryDirectory(prefix="dlbox-resolve-") as tmp:
        if wheels:
            import tarfile

            archive = Path(tmp) / "wheelhouse.tar"
            # dereference: a wheelhouse of links to wheels elsewhere gives the files
            with tarfile.open(archive, "w", dereference=True) as tar:
                for dist in wheels:
                    tar.add(dist.path, f"dlbox-resolve/wheelhouse/{dist.path.name}")
        request = engine.RunRequest(
            image=image,
            command=("python", f"{RESOLVE_DIR}/resolve.py"),
            environment=(("DLBOX_PIP_ARGS", json.dumps(list(pip_args))),
                         ("DLBOX_RESOLVE_DIR", RESOLVE_DIR),
                         # as the build gets them (review: the resolve went round the proxy)
                         *((name, value) for name in PROXY_BUILDARGS
                           if (value := os.environ.get(name)))),
            user="0:0",
        )
        log(f"resolving {len(requirements)} requirements with pip inside the image "
            "(first build only; the result goes to the lock)")
        captured = engine.run_captured(client, request, timeout=RESOLVE_TIMEOUT_S, files=files,
                                       files_dir="/tmp", archive=archive)
    for line in reversed(captured.stdout.splitlines()):
        if line.startswith("DLBOX_RESOLVE "):
            data = json.loads(line[len("DLBOX_RESOLVE "):])
            return data["python"], pins_from_report({"install": data["install"]})
    said = captured.stderr + "\n" + captured.stdout
    conflict = conflicting_requirements(said, requirements)
    if conflict is not None:
        raise ContainerError(conflict[0], hint=conflict[1])
    offline_in = None  # --offline: the wheelhouse is all pip has (--no-index)
    if "--no-index" in pip_args:
        folders = {dist.path.parent for dist in wheels}
        offline_in = str(folders.pop()) if len(folders) == 1 else "WHEELHOUSE"
    missing = missing_requirement(said, offline=offline_in is not None)
    if missing is not None and offline_in is not None:
        import shlex

        # pip stops at the first wheel it lacks: name every top-level line at once, and
        # download every line, the framework's too (its wheel may be there, its dependencies
        # not): pip download skips the files it has and fetches all their dependencies
        absent = offline_absent(requirements, wheels, python)
        every = offline_lines(requirements, python)
        target = download_target(python, wheel_index) if python else ""
        missing = (f"--offline, but the wheelhouse has no wheel of {', '.join(absent)} for "
                   "this image's Python and platform" if len(absent) > 1 else missing[0],
                   f"fill it on a machine with network: pip download{target} -d "
                   f"{shlex.quote(offline_in)} {' '.join(shlex.quote(line) for line in every)}"
                   "; or drop --offline")
    if missing is not None and (proxy := S.proxy_failure_hint(said.splitlines())) is not None:
        # no version found because the proxy let pip reach no index (a retry's warning that
        # a later retry got past is not it: pip then finds the versions)
        raise ContainerError("pip could not reach the package index through the proxy while "
                             "resolving the requirements inside the image", hint=proxy)
    if missing is not None:
        raise ContainerError(missing[0], hint=missing[1])
    failed = source_build_failure(captured.stdout, captured.stderr)
    if failed is not None:
        raise ContainerError(failed[0], hint=failed[1])
    tail = "\n".join((captured.stderr or captured.stdout).strip().splitlines()[-15:])
    hint = (S.missing_tool_hint((captured.stderr + "\n" + captured.stdout).splitlines())
            or "fix the requirement pip names above, or pass --wheelhouse DIR with the wheels")
    if "CERTIFICATE_VERIFY_FAILED" in tail or "SSLError" in tail:
        hint = "behind a TLS-intercepting proxy: pass its CA certificate with --ca-cert FILE"
    elif "No matching distribution" in tail or "Could not find a version" in tail:
        hint = ("no such version for this Python/platform (or no network): check the name and "
                "version, or pass --wheelhouse DIR holding it")
    raise ContainerError(f"pip could not resolve the requirements inside the image:\n{tail}",
                         hint=hint)


# pip names the package that requires it, for a dependency: "six (from mylib)"
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+) "
                         r"(?:\(from [^)]*\) )?\(from versions: ([^)]*)\)")


_BUILD_FAILED = ("subprocess-exited-with-error", "metadata-generation-failed")
# A failed build's lines that say why (review: sklearn's "is deprecated, use scikit-learn"
# and mysqlclient's "Can not find valid pkg-config name" were passed over) ...
_BUILD_REASON = re.compile(r"error|exception|not found|cannot|can not|could not|required|"
                           r"deprecated|missing|please", re.I)
# ... and those that never do: setuptools' chatter and banners, warnings, traceback lines.
_BUILD_NOISE = re.compile(r"^(running |creating |writing |copying |reading |adding |!!|\*{5}|"
                          r"Traceback|File \"|raise |\^+$|\[end of output\])|Warning\b")
# git's clone of a VCS requirement failed (no route to the host, a private repository):
# pip names the command, with the URL and its host.
_CLONE_FAILED = re.compile(r"git clone .*?((?:https?|ssh|git)://(?:[^@/\s]+@)?([^/:\s]+)\S*)"
                           r" /\S+ did not run successfully")
_SUBPROCESS_OUTPUT = re.compile(r"\[\d+ lines of output\]\n(.*?)\[end of output\]", re.S)


def source_build_failure(stdout: str, stderr: str) -> tuple[str, str] | None:
    """(message, hint) when the resolve failed because a package pip had to build from
    source (an sdist: no wheel fits the image) failed to build: the package, the lines of its
    build's output that say why, and the fix. pip's last 15 lines, shown before, held
    neither the package nor the reason (review: psycopg2 without pg_config)."""
    if not any(marker in stderr for marker in _BUILD_FAILED):
        return None
    collected = re.findall(r"^\s*Collecting (\S+)", stdout + "\n" + stderr, re.M)
    package = collected[-1].rstrip("@") if collected else "a package"  # `mylib@ git+...`
    clone = _CLONE_FAILED.search(stderr)
    if clone is not None:  # a VCS requirement: git could not fetch it, nothing was built
        url, host = redact_url_credentials(clone.group(1)), clone.group(2)
        name = requirement_name(package) or package
        fatal = [redact_url_credentials(line.strip()) for line in stderr.splitlines()
                 if line.strip().startswith(("fatal:", "remote:"))][:2]
        return (f"pip could not clone {name} from {url} inside the image:"
                + "".join(f"\n  {line}" for line in fatal),
                f"the image build needs network access to {host} (and credentials for a "
                f"private repository are not passed in); or build a wheel of {name} on the "
                "host, put it in a folder, pass --wheelhouse DIR and require "
                f"{name} by name")
    block = _SUBPROCESS_OUTPUT.search(stderr)
    output = re.sub(r"^\s*!!\s*$.*?^\s*!!\s*$", "", block.group(1) if block else "",
                    flags=re.S | re.M)  # setuptools' deprecation banners, between !! lines
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not _BUILD_NOISE.search(line.strip())]
    said = [line for line in lines if _BUILD_REASON.search(line)][:4] or lines[-4:]
    if not said:  # no output block: pip's own lines on what failed, never nothing
        said = [line.strip(" \u2502\u2570\u2500>") for line in stderr.splitlines()
                if re.match(r"\s*(\u00d7|fatal:|ERROR:)", line)][:2]
    shown = "".join(f"\n  {line}" for line in said)
    return (f"pip could not build {package} from source inside the image (no wheel of it fits "
            f"the image, and its build failed):{shown}",
            S.missing_tool_hint(lines)
            or "where its build needs a system library or tool, add its Debian package to the "
               "project's apt.txt; else follow the reason above, or pin a version (or a "
               "package) that has a wheel for this platform")


def _holds_in_image(requirement: Any, python: str | None) -> bool | None:
    """Whether a requirement's marker holds in the image (True without one); None when dlbox
    cannot tell (the image's Python unknown, an undefined or odd marker: pip decides)."""
    if requirement.marker is None:
        return True
    if python is None:
        return None
    try:
        return bool(requirement.marker.evaluate(marker_environment(python)))
    except (ValueError, LookupError):  # packaging's UndefinedComparison, UndefinedEnvironmentName
        return None


def _parsed(requirements: Sequence[str]) -> Iterator[tuple[str, Requirement]]:
    """Each line dlbox can read as a requirement: (the line without its marker, parsed)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for line in requirements:
        try:
            yield line.split(";")[0].strip(), Requirement(line)
        except InvalidRequirement:
            continue


def offline_lines(requirements: Sequence[str], python: str | None) -> list[str]:
    """The lines of `requirements` (markers left off) a `pip download` for the image fetches:
    all but those whose marker does not hold in the image, and URLs but a wheel's."""
    lines: list[str] = []
    for line, requirement in _parsed(requirements):
        if requirement.url and not requirement.url.split("#")[0].endswith(".whl"):
            continue  # a source tree or VCS URL: --only-binary fetches none
        if _holds_in_image(requirement, python) is not False:
            lines.append(line)
    return lines


def offline_absent(requirements: Sequence[str], wheels: Sequence[Distribution],
                   python: str | None) -> list[str]:
    """The lines of `requirements` (markers left off) that no file of the wheelhouse meets,
    for the image's Python when known. Lines dlbox cannot judge (a URL, a marker it cannot
    evaluate) count as met."""
    absent: list[str] = []
    for line, requirement in _parsed(requirements):
        if requirement.url or not _holds_in_image(requirement, python):
            continue
        name = normalize_name(requirement.name)
        if not any(dist.name == name and dist.fits_python(python)
                   and requirement.specifier.contains(dist.version, prereleases=True)
                   for dist in wheels):
            absent.append(line)
    return absent


def missing_requirement(output: str, offline: bool = False) -> tuple[str, str] | None:
    """(error, hint) when pip's resolution failed on a requirement that no release meets: a
    name the index does not know (a typo) or a version it never had. None otherwise (the
    caller shows pip's own output). `offline`: pip had the wheelhouse instead of an index
    (--offline), which lacks the wheel; the caller gives the hint that fills it."""
    match = _NO_VERSION.search(output)
    if match is None:
        return None
    requirement = match.group(1)
    name = requirement_name(requirement) or requirement
    versions = [v.strip() for v in match.group(2).split(",") if v.strip() and v.strip() != "none"]
    if offline:  # worded as when the lock's pins are not all in the wheelhouse
        hint = "fill the wheelhouse on a machine with network; or drop --offline"
        if not versions:
            return (f"--offline, but the wheelhouse has no wheel of {name} for this image's "
                    "Python and platform", hint)
        return (f"--offline, but no wheel of {name} in the wheelhouse meets {requirement}: it "
                f"has {', '.join(versions[-5:])}", hint)
    if not versions:
        asked = f" (required as {requirement})" if requirement != name else ""
        return (f"pip found no release of {name}{asked} for this image's Python and platform",
                f"check the name in the project's requirements (a typo? pip index versions "
                f"{name} asks the index), that the build reaches the index, or pass "
                "--wheelhouse DIR holding its wheel")
    shown = ", ".join(versions[-5:])
    error = (f"no release of {name} meets {requirement}: the index has {shown}"
             f"{' (newest last)' if len(versions) > 1 else ''}")
    local = re.search(r"==\s*([^\s,;+]+)\+(\S+)", requirement)
    if local and local.group(1) in versions:  # the version is there, its local build is not
        return (f"{error}, but not its +{local.group(2)} build",
                f"the +{local.group(2)} build lives on the framework's own wheel index, which "
                "the build did not reach (behind a proxy? pass --ca-cert), or pass --wheelhouse "
                f"DIR holding the {name} {local.group(1)}+{local.group(2)} wheel")
    return (error,
            f"change the requirement in the project's requirements, e.g. {name}=={versions[-1]}")


_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have "
                       r"conflicting dependencies")


def conflicting_requirements(output: str, requirements: Sequence[str] = ()
                             ) -> tuple[str, str] | None:
    """(error, hint) when pip's resolution failed on requirements that cannot go together
    (ResolutionImpossible): the requirements it names and, when pip says, what clashes
    ("botocore 1.34.0 depends on urllib3<2.1"). None otherwise. pip names a line of the
    requirements file dlbox wrote ("-r /tmp/.../requirements.in (line 1)"): `requirements`,
    that file's lines, put the requirement itself in its place."""
    def named(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return requirements[number - 1] if 0 < number <= len(requirements) else match.group(0)

    output = re.sub(r"-r \S*requirements\.in \(line (\d+)\)", named, output)
    match = _CONFLICT.search(output)
    if match is None:
        return None
    lines = output.splitlines()
    causes: list[str] = []
    for index, line in enumerate(lines):
        if line.strip() == "The conflict is caused by:":
            for cause in lines[index + 1:]:
                if not cause.strip():
                    break
                causes.append(cause.strip())
            break
    why = f": {'; '.join(causes)}" if causes else ""
    return (f"pip cannot install {match.group(1)} together (conflicting dependencies){why}",
            _framework_pin_hint(causes)
            or "loosen or drop one of these pins in the project's requirements (pip install "
               "--dry-run with them, on any machine, shows the clash in full)")


# "torchvision 0.16.0 depends on torch==2.1.0" beside "The user requested torch==2.13.0+cpu"
_NEEDS_FRAMEWORK = re.compile(r"^(\S+) (\S+) depends on (torch|tensorflow|jax)==([\w.]+)"
                              r"(?:\+\S+)?(?:;.*)?$")
_FRAMEWORK_ASKED = re.compile(r"^The user requested (torch|tensorflow|jax)==([^+\s]+)")


def _framework_pin_hint(causes: Sequence[str]) -> str | None:
    """The fix for a companion package made for another framework version than the build's
    (torchvision==0.16.0 wants torch 2.1.0; dlbox chose 2.13.0): the --framework-version that
    fits it. Review: the hint blamed the project's pins, where torch's came from dlbox."""
    needs = next((m for cause in causes if (m := _NEEDS_FRAMEWORK.match(cause))), None)
    asked = next((m for cause in causes if (m := _FRAMEWORK_ASKED.match(cause))), None)
    if needs is None or asked is None or needs.group(3) != asked.group(1):
        return None
    package, version, framework, wanted = needs.groups()
    return (f"{package} {version} is made for {framework} {wanted}, and the build's "
            f"{framework} is {asked.group(2)}: build with {framework} {wanted} (pin "
            f"{framework}=={wanted} in the project's requirements, or pass --framework-version "
            f"{wanted}), or require a {package} made for {framework} {asked.group(2)} (or "
            f"{package} unpinned: pip picks one)")


def probe_python(client: Any, image: str) -> str:
    captured = engine.run_captured(client, engine.RunRequest(
        image=image, command=("python", "-c", "import platform; print(platform.python_version())"),
        network="none"), timeout=120)
    version = captured.stdout.strip().splitlines()[-1] if captured.stdout.strip() else ""
    if captured.exit_code or not re.match(r"^3\.\d+", version):
        raise ContainerError(f"the image's Python did not answer: {captured.stderr.strip()[:200]}",
                             hint="the base image needs python3 (or apt to install it)")
    return version


def pip_args_for(project: Project, resolved_index: str | None, wheelhouse_dir: str | None,
                 offline: bool) -> tuple[str, ...]:
    index, extra, flags = split_pip_options(project.pip_options)
    args: list[str] = []
    if offline:
        args.append("--no-index")
    else:
        if index:
            args.append(f"--index-url={index}")
        urls = ([resolved_index] if resolved_index else []) + [u for u in extra
                                                                if u != resolved_index]
        args += [f"--extra-index-url={url}" for url in urls]
    if wheelhouse_dir:
        args.append(f"--find-links={wheelhouse_dir}")
    return tuple(args + list(flags))


# ---- the build --------------------------------------------------------------------------------

def _refuse_a_companion_of_another_build(framework: str, version: str, pins: Sequence[str],
                                         wheel_index: str | None, python: str) -> None:
    """Refuse a resolution that pairs torch's +cpu build with a torchvision that is not one:
    on x86-64 that is PyPI's, a CUDA build, whose operators fail to load beside torch+cpu
    (review: the framework's index was out of reach, and pip quietly took PyPI's; only the
    smoke test, minutes later, failed). On ARM the CPU index's torchvision has no +cpu."""
    import platform
    import shlex

    if framework != "torch" or not version.endswith("+cpu") \
            or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    companion = pinned_version(tuple(pins), "torchvision")
    if companion is None or companion.endswith("+cpu"):
        return
    release = companion.split("+")[0]
    index = f" {wheel_index}" if wheel_index else ""
    raise ContainerError(
        f"pip resolved torchvision {companion} beside torch {version}: not the framework's "
        "+cpu build but PyPI's, a CUDA one, which fails to import beside it",
        hint=f"the build did not reach the framework's index{index} (behind a proxy? pass "
             f"--ca-cert FILE): put the torchvision-{release}+cpu wheel into --wheelhouse DIR "
             f"(pip download --no-deps{download_target(python, wheel_index)} -d DIR "
             f"{shlex.quote(f'torchvision=={release}+cpu')} on a machine that reaches it), "
             "then build again")


def _system_only(dockerfile: str) -> str:
    """The Dockerfile up to the deps stage (system, then venv, which pip resolves in): same
    text, so the full build reuses its cache."""
    return dockerfile.split("\n# ---- deps:", 1)[0] + "\n"


PROXY_BUILDARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                   "no_proxy")


def _buildargs(request: BuildRequest) -> dict[str, str]:
    # Proxy settings travel as the engine's predefined build args, which the engine keeps out
    # of the image's history (so a proxy's user:password may be in them); any other build arg
    # could reach the history, so it must not carry credentials.
    args = {name: value for name in PROXY_BUILDARGS if (value := os.environ.get(name))}
    for name, value in request.buildargs:
        if name not in PROXY_BUILDARGS and has_url_credentials(value):
            raise UsageError(
                f"build arg {name}={redact_url_credentials(value)} has credentials in a URL, "
                "and dlbox never bakes secrets into an image",
                hint="remove the credentials from the URL, and supply the packages through "
                     "--wheelhouse DIR, filled beforehand with pip download -d DIR",
            )
        args[name] = value
    return args


def gpu_attachable(facts: Any) -> tuple[bool, str]:
    """Can this host's engine give a container a GPU? (for the smoke test's GPU checks) As
    `image run --gpus` judges it (`gpu_blocker`), and an engine the probe could not reach
    gives none."""
    blocker = gpu_blocker(facts)
    if blocker is None and not facts.docker.reachable:
        blocker = (facts.docker.error or "the probe could not reach the Docker engine", "")
    return (False, blocker[0]) if blocker else (True, "")


def build_image(request: BuildRequest, log: Log = print,
                on_event: engine.EventCallback | None = None,
                facts: Callable[[], Any] = host_facts,
                client: Any = None) -> BuildOutcome:
    """Build (and lock, and smoke-test) the image the request describes."""
    import time

    start = time.monotonic()
    p = plan(request, facts)
    if p.entry is None:  # the build ends by writing the lock: its place is checked now, not
        check_writable(p.lock_path, "--lock")  # after minutes of building
    project = p.project
    client = client or engine.connect()
    notes: list[str] = list(p.project.notes) + list(p.warnings) + list(p.lock_notes)
    for warning in p.warnings:  # said now too (a second framework without a GPU build)
        log(warning)
    buildargs = _buildargs(request)
    ca_cert = expand_user(request.ca_cert) if request.ca_cert else None
    entry = p.entry
    new_entry = entry is None
    size = project_size_note(project, request)
    if size is not None:
        notes.append(size)
        # Said now too, not only after the build: a dataset copied into the image takes
        # minutes and gigabytes, and Ctrl-C here costs nothing (nothing is copied yet).
        log(f"note: {size}")
    with tempfile.TemporaryDirectory(prefix="dlbox-build-") as tmp_name:
        tmp = Path(tmp_name)
        if entry is None:
            # Written only once the image is built and passed its smoke test (below): a build
            # that fails or is interrupted must not leave a lock that later builds trust.
            entry = _lock(request, p, client, tmp, ca_cert, buildargs, log, on_event)
        spec, wheels, uncovered = spec_with_wheelhouse(p, entry, request)
        if request.offline and uncovered:
            raise UsageError(
                f"--offline, but the wheelhouse lacks {len(uncovered)} pinned packages: "
                f"{', '.join(uncovered[:5])}{' ...' if len(uncovered) > 5 else ''}",
                hint="fill it on a machine with network: "
                     f"{download_command(request, entry, uncovered)}; or drop --offline",
            )
        if spec.offline and not request.offline:
            notes.append("every pinned package is in the wheelhouse: pip runs with --no-index")
        base_data = engine.inspect_image(client, entry.base_image)
        spec = dataclasses.replace(spec, base_digest=engine.image_digest(base_data))
        dockerfile = render_dockerfile(spec)
        # Before the context is written: a file edited meanwhile makes `image run` warn
        # (the label is older than the image's files), never stay silent.
        files_digest = project_digest(project)
        context = write_context(tmp / "context.tar", project, dockerfile,
                                lock_requirements_text(entry), [w.path for w in wheels], ca_cert,
                                exclude=[p.lock_path, *_wheelhouse_exclude(request)])
        log(f"building {spec.framework.name} {spec.framework.version} image of "
            f"{project.name} ({project.root}) on {spec.base_image} "
            f"({context.bytes // 2**20} MiB context)")
        result = engine.build(client, context.path, nocache=request.no_cache,
                              buildargs=buildargs,
                              labels={S.SOURCE_LABEL: S.source_id(project.root),
                                      S.FILES_LABEL: files_digest},
                              on_event=on_event)
    tags = [request.tag] if request.tag else [
        default_tag(project.image_name, spec.framework), f"{project.image_name}:latest"]
    smoke_result = None
    if request.smoke:
        gpu_now = False
        if spec.gpu:
            gpu_now, why = gpu_attachable(facts())
            if not gpu_now:
                notes.append(f"GPU checks of the smoke test skipped: {why}; they run when you "
                             "build on the GPU machine")
        log("smoke test inside the new image" + (" (GPU attached)" if gpu_now else ""))
        smoke_result = run_smoke(client, result.image_id, spec, gpu_now,
                                 compile_sources=request.compile_check)
        failures = smoke_result.failures
        kept, deps_kept = result.image_id, None
        if failures:
            # Its deps stage tagged beside the failed image: untagged, the one of a build
            # whose fix changed the dependencies (a package added) stayed for good (review:
            # 1.27 GB); the next failed build's replaces it, the next that passes removes it.
            _tag_deps_stage(client, result, failed_tag(tags[0]))
            deps_kept = deps_tag(failed_tag(tags[0]))
            if S.DEPS_STAGE_LABEL not in engine.image_labels(
                    engine.inspect_image(client, deps_kept)):
                deps_kept = None  # not tagged (a name taken by another image): not named
        if failures and all(check.name == "project_sources" for check in failures):
            # Only the project's code failed to compile: the error names the file and line,
            # and an image kept for a look would only pile up, one per attempt.
            engine.remove_replaced_image(client, result.image_id, S.PROJECT_LABEL)
        elif failures:
            kept = _keep_failed(client, result.image_id, failed_tag(tags[0]))
        require_smoke_ok(smoke_result, kept, deps_kept, entry.wheel_index)
        if smoke_result.python and not smoke_result.python.startswith(
                ".".join(entry.python.split(".")[:2])):
            # Built for a Python the lock was not made for: of no use once relocked.
            engine.remove_replaced_image(client, result.image_id, S.PROJECT_LABEL)
            raise ContainerError(
                f"the image's Python is {smoke_result.python}, the lock was made for "
                f"{entry.python} (the base image changed)",
                hint=f"re-resolve for it: {relock_command(request)}",
            )
    if new_entry:
        try:  # as it is now: a build of another kind may have written its entry meanwhile
            entries = read_lock(p.lock_path)
        except ContainerError:  # as it was read (--relock of one it could not read: none)
            entries = dict(p.entries)
        entries[p.key] = entry
        write_lock(p.lock_path, entries)
        log(f"wrote {p.lock_path} ({p.key}: {len(entry.pinned)} pins)")
    replaced: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for tag in tags:
        if (data := engine.inspect_image(client, tag)) and data["Id"] != result.image_id:
            replaced.setdefault(data["Id"], ([], data))[0].append(tag)
    engine.tag_image(client, result.image_id, tags)
    notes += _remove_replaced(client, replaced, project.root)
    notes += _drop_failed(client, failed_tag(tags[0]))
    notes += _tag_deps_stage(client, result, tags[0])
    # after the tag above: the deps stage of a failed build that this one reused stays
    _drop_failed(client, deps_tag(failed_tag(tags[0])), S.DEPS_STAGE_LABEL)
    data = engine.inspect_image(client, result.image_id) or {}
    return BuildOutcome(
        image_id=result.image_id, tags=tags, spec=spec, entry=entry, lock_path=p.lock_path,
        lock_written=new_entry, seconds=round(time.monotonic() - start, 1), build=result,
        smoke=smoke_result, size_bytes=data.get("Size"), context=context, notes=notes,
        project=project,
    )


def _remove_replaced(client: Any, replaced: dict[str, tuple[list[str], dict[str, Any]]],
                     root: Path) -> list[str]:
    """Each rebuild moves the tags to a new image; the old one, untagged, would keep its
    layers (a dependency change: gigabytes) until `docker image prune`. Remove it, unless a
    container still uses it, or another project folder (of the same name: the same default
    tag) built it. `replaced`: image id -> (the tags this build took from it, its data)."""
    notes = []
    for image_id, (tags, data) in sorted(replaced.items()):
        short = image_id.removeprefix("sha256:")[:12]
        if S.built_from_elsewhere(engine.image_labels(data), root):
            notes.append(f"{', '.join(tags)} named the image of another project folder called "
                         f"{root.name!r}; this build took the name, and that image is kept "
                         f"untagged as {short}: `docker tag {short} NAME:TAG` names it again "
                         "(build each folder with its own --tag to keep both)")
            continue
        outcome = engine.remove_replaced_image(client, image_id, S.PROJECT_LABEL)
        if outcome == "removed":
            notes.append(f"removed the image this build replaced ({short})")
        elif outcome == "in use":
            notes.append(f"the image this build replaced ({short}) is kept: a container "
                         f"uses it (docker ps -a --filter ancestor={short}); docker image "
                         "prune removes it once that container is gone")
    return notes


_STEP_IMAGE = re.compile(r"^---> ([0-9a-f]{12,64})$")
_FINAL_STAGE = re.compile(r"^Step \d+/\d+ : FROM system$")


def deps_stage_image(log: Sequence[str]) -> str | None:
    """The image the deps stage ended in, from the engine's build output: the last step's
    ` ---> ID` before the image stage (`FROM system`) begins. None when not found."""
    last = None
    for line in log:
        text = line.strip()
        if _FINAL_STAGE.match(text):
            return last
        if match := _STEP_IMAGE.match(text):
            last = match.group(1)
    return None


def _side_tag(tag: str, suffix: str) -> str:
    """`p1:cpu` -> `p1:cpu-SUFFIX`: a name beside the image's (its deps stage, a failed
    build); the tag part stays within the engine's 128 characters."""
    repository, name = engine.split_tag(tag)
    return f"{repository}:{name[:127 - len(suffix)]}-{suffix}"


def failed_tag(tag: str) -> str:
    """`p1:cpu` -> `p1:cpu-failed`: where an image that failed its smoke test is kept."""
    return _side_tag(tag, "failed")


def deps_tag(tag: str) -> str:
    """`p1:cpu` -> `p1:cpu-deps`: where the deps stage is kept."""
    return _side_tag(tag, "deps")


def _move_name(client: Any, image_id: str, name: str,
               label: str) -> tuple[str, dict[str, Any] | None]:
    """Tag `image_id` as `name` too, and remove the image `name` named before when dlbox made
    it (it carries `label`) and nothing else names it now. Returns (outcome, the image `name`
    named before): "theirs" when that image lacks `label` (the user's own: left alone, and
    `name` not moved), "none" when no other image was replaced, else remove_replaced_image's
    outcome ("removed", "in use", "kept")."""
    old = engine.inspect_image(client, name)
    if old and label not in engine.image_labels(old):
        return "theirs", old
    engine.tag_image(client, image_id, [name])
    new = engine.inspect_image(client, name)
    if not old or not new or old.get("Id") == new.get("Id"):
        return "none", old
    return engine.remove_replaced_image(client, old["Id"], label), old


def _keep_failed(client: Any, image_id: str, name: str) -> str:
    """Tag an image that failed its smoke test as `name` (NAME:TAG-failed) for a look, and
    remove the failed image it replaces: untagged, one would pile up per attempt. The name
    to show the user; the image's id when `name` is taken by an image dlbox did not build."""
    try:
        outcome, _ = _move_name(client, image_id, name, S.PROJECT_LABEL)
    except ContainerError:  # housekeeping: the smoke test's failure is what the user needs
        return image_id
    return image_id if outcome == "theirs" else name


def _drop_failed(client: Any, name: str, label: str = S.PROJECT_LABEL) -> list[str]:
    """After a build that passed, the image an earlier attempt kept as NAME:TAG-failed (and
    its deps stage, NAME:TAG-failed-deps: `label` S.DEPS_STAGE_LABEL) is of no more use:
    remove it (its tag, and the image unless a container uses it or another tag names it)."""
    import docker

    data = engine.inspect_image(client, name)
    if label not in engine.image_labels(data):
        return []
    try:
        client.api.remove_image(name)
    except docker.errors.APIError as error:
        return [f"left {name} (the image an earlier build kept when its smoke test failed): "
                f"{engine.api_error_text(error)}"]
    except docker.errors.DockerException:
        return []
    return [f"removed {name}, the image an earlier build kept when its smoke test failed"]


def _tag_deps_stage(client: Any, result: engine.BuildResult, tag: str) -> list[str]:
    """Tag the deps stage beside the image, and remove the deps stage it replaces.

    The engine keeps a multi-stage build's deps stage as an untagged image: it is the cache
    that makes a code-only rebuild fast, and as big as the venv (gigabytes). After a
    dependency change nothing referred to the old one, and every relock left one behind
    until `docker image prune` (which also throws away the current cache). Tagged, the
    cache survives a prune, and the next dependency change frees the old one."""
    deps = deps_stage_image(result.log)
    if deps is None:
        return []
    name = deps_tag(tag)
    try:
        outcome, old = _move_name(client, deps, name, S.DEPS_STAGE_LABEL)
    except ContainerError as error:  # the image is built and tagged: this is housekeeping
        return [f"the dependency stage {deps[:19]} is left untagged: {error.message}"]
    if outcome == "theirs":  # NAME:TAG-deps is an image dlbox did not make: left alone
        return [f"the dependency stage {deps[:19]} is left untagged: {name} names an "
                "image that is not a dlbox dependency stage"]
    if outcome != "removed" or old is None:
        return []
    short = old["Id"].removeprefix("sha256:")[:12]
    return [f"removed the dependency stage this build replaced ({short})"]


def _lock(request: BuildRequest, p: Plan, client: Any, tmp: Path, ca_cert: Path | None,
          buildargs: dict[str, str], log: Log,
          on_event: engine.EventCallback | None) -> LockEntry:
    """Resolve the framework build and every pin for a new lock entry (needs the engine)."""
    project = p.project
    framework_pins = _project_pins(project, p.framework)
    first = first_choice(p)
    base_image = p.base_image or default_base_image(first)
    provisional = provisional_entry(project, first, p.key, base_image, None)
    system_spec = spec_for(project, provisional, ca_cert=ca_cert is not None)
    system_file = _system_only(render_dockerfile(system_spec))
    context = write_context(tmp / "system.tar", dataclasses.replace(project, include=()),
                            system_file, "", (), ca_cert)
    log(f"building the system and venv stages on {base_image} (Python, tini, user, venv)")
    system = engine.build(client, context.path, nocache=request.no_cache, buildargs=buildargs,
                          on_event=on_event)
    python = probe_python(client, system.image_id)
    major_minor = ".".join(python.split(".")[:2])
    target = dataclasses.replace(p.target, python=major_minor)
    resolved = resolve_framework(p.framework, target, p.wheelhouse, p.framework_version,
                                 pins=framework_pins, base_image=p.base_image)
    check_project_allows(project, p.framework, resolved.version)
    lines = framework_requirement(resolved)
    requirements = requirements_input(project, p.framework, lines)
    mismatch = python_mismatch(project, python, base_image, resolved.variant == "cuda-system")
    if mismatch is not None:
        raise ContainerError(*mismatch)

    def in_house(named: Sequence[str]) -> bool:
        return framework_in_wheelhouse(p.wheelhouse, framework_dist(resolved),
                                       lines[0].split("==", 1)[-1] if lines else "", python,
                                       companions_in(p.framework, named))

    def pip_args(index: str | None) -> tuple[str, ...]:
        return pip_args_for(project, index, f"{RESOLVE_DIR}/wheelhouse" if p.wheelhouse
                            else None, request.offline)

    for reason in resolved.reasons:
        log(f"  {reason}")
    for warning in resolved.warnings:
        log(f"  warning: {warning}")
    from_house = in_house(requirements)
    python_found, pins = resolve_pins(client, system.image_id, requirements,
                                      pip_args(None if from_house else resolved.wheel_index),
                                      p.wheelhouse, log, python=python,
                                      wheel_index=resolved.wheel_index)
    if from_house and resolved.wheel_index and not request.offline and not in_house(pins):
        # A companion pulled in by another package (timm's torchvision) and not in the
        # wheelhouse: PyPI's build of it is not the framework's (a CUDA torchvision beside
        # torch+cpu fails to import), so pip resolves again with the framework's index.
        log(f"  {', '.join(companions_in(p.framework, pins))} came in as a dependency: "
            f"resolving again with {resolved.wheel_index}")
        python_found, pins = resolve_pins(client, system.image_id, requirements,
                                          pip_args(resolved.wheel_index), p.wheelhouse, log,
                                          python=python, wheel_index=resolved.wheel_index)
    dist = framework_dist(resolved)
    version = pinned_version(pins, dist)
    if version is None:
        raise ContainerError(f"pip's resolution has no {dist} in it",
                             hint="report this: the requirements were " + ", ".join(requirements))
    _refuse_a_companion_of_another_build(p.framework, version, pins, resolved.wheel_index,
                                         python_found)
    base_data = engine.inspect_image(client, base_image) or {}
    return LockEntry(
        key=p.key, framework=p.framework, framework_version=version, variant=resolved.variant,
        cuda=resolved.cuda, cudnn=resolved.cudnn, wheel_index=resolved.wheel_index,
        min_driver=resolved.min_driver, python=python_found, base_image=base_image,
        base_id=base_data.get("Id"), project_requirements=project.input_requirements(),
        project_pip_options=project.pip_options, requirements_in=requirements, pinned=pins,
        reasons=tuple(resolved.reasons),
        locked_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        dlbox_version=__version__,
        compute_capabilities=target_archs(p.target.compute_capabilities),
        extras=tuple(sorted(set(project.extras))),
        resolved=resolved.to_dict(),
    )
