"""The framework build an image gets: which torch / TensorFlow / JAX version and wheel the
target (a driver, or the CPU) runs on the image's Python, among the versions the project's
own pins admit, and the base image that build needs. Pure functions over the resolver
(dlbox.hostenv) and the project; no engine."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from dlbox.container import spec as S
from dlbox.container.context import Distribution
from dlbox.container.project import FRAMEWORK_DISTS, Project, parse_requirement, requirement_name
from dlbox.errors import ContainerError, DlboxError, HostEnvError, UsageError
from dlbox.hostenv.matrix import load_matrix
from dlbox.hostenv.resolve import (
    NoBuildForPython,
    check_pin_form,
    last_branch_words,
    last_driver_ceiling,
    pin_rows,
    refuse_older_than_data,
    refuse_unreleased_patch,
    resolve_build,
)
from dlbox.hostenv.versions import parse_version, same_release
from dlbox.text import listed, redact_url_credentials


def normalize_framework(name: str | None) -> str | None:
    if name is None:
        return None
    aliases = {"pytorch": "torch", "tf": "tensorflow"}
    value = aliases.get(name.strip().lower(), name.strip().lower())
    if value not in FRAMEWORK_DISTS:
        raise UsageError(f"unknown framework {name!r}",
                         hint=f"choose one of: {', '.join(FRAMEWORK_DISTS)}")
    return value


def matrix_for_version(matrix: Any, framework: str, version: str) -> Any:
    """`matrix` with only the rows of `version`: a release's rows, or, for an exact version,
    its row narrowed to that version (`pin_rows`), so that the resolver's build, its extras
    (jax[cuda13] from 0.7.2 on) and its reasons are that version's, not its release's newest
    patch's. A version dlbox does not know is refused (UsageError)."""
    rows = getattr(matrix, framework)
    check_pin_form(version)
    kept = tuple(row for row in rows if version in row.versions) or tuple(
        row for row in rows if same_release(version, row.release))
    if not kept:
        # a row's release, or its first version where the release is a row's name (jax's
        # "0.4-early": 0.4.26 to 0.4.30), which --framework-version does not take
        known = [row.release if re.fullmatch(r"\d+(\.\d+)+", row.release) else row.versions[0]
                 for row in rows[:8]]
        more = ", ..." if len(rows) > 8 else ""
        raise UsageError(f"{framework} {version} is not in dlbox's compatibility matrix",
                         hint=f"pick a listed release ({', '.join(known)}{more}) or leave "
                              "the version out")
    refuse_unreleased_patch(rows, version, framework)
    if len(parse_version(version) or ()) >= 3:
        kept = tuple(pin_rows(rows, version, framework, matrix.checked))
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


def python_error(error: HostEnvError, framework: str, version: str | None,
                  target: Any, matrix: Any = None) -> HostEnvError:
    """The resolver's "no build for Python X" in image build's terms: the Python is the base
    image's, so the way out is another --base-image (image build has no --python)."""
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
    matrix = matrix or load_matrix()
    narrowed = matrix_for_version(matrix, framework, version)
    refuse_older_than_data(framework, target, matrix, version)  # jax 0.4.20 on a GPU
    try:
        resolved = resolve_build(framework, target, narrowed)
    except HostEnvError as error:
        python = python_error(error, framework, version, target, narrowed)
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
    if len(parse_version(public) or ()) < 3 or resolved.version == public:
        # Not pip's ==2.1, which is 2.1.0: the resolver took the release's newest patch. Or
        # the version's own build, whose line may pin another (tensorflow[and-cuda]==2.15.0
        # is 2.15.0.post1's).
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

    `pins` are the project's own requirements on the framework (`project_pins`): without a
    `version`, only versions they admit are candidates, from the matrix and the wheelhouse
    alike (a project pinning torch==2.12.0 gets 2.12.0, not the newest release and a clash).
    `base_image` (--base-image) only checks the version a hint suggests (`_newest_runnable`).
    A pin's local label (torch==2.13.0+cu121) is the target's to choose: when the build's
    differs, a reason says it was replaced.
    """
    resolved = _resolve_framework(framework, target, wheelhouse, version, matrix, pins,
                                  base_image)
    return dataclasses.replace(resolved, reasons=resolved.reasons + tuple(
        _replaced_labels(pins, resolved)))


def _replaced_labels(pins: Sequence[tuple[str, Any]], resolved: Any) -> list[str]:
    """A reason for each local label in the project's pins (+cu121) that is not the one of
    the build for the target (+cpu), with the flag that gets that build."""
    from packaging.requirements import Requirement

    built = resolved.version.partition("+")[2] or resolved.variant
    out = []
    for line, _ in pins:
        for spec in Requirement(line).specifier:
            label = spec.version.partition("+")[2]
            if not label or label == built:
                continue
            cuda = re.fullmatch(r"cu(\d+)(\d)", label)
            how = ("build with --cpu" if label == "cpu" else
                   f"build with --gpu (and --driver VERSION on a machine without an NVIDIA GPU)"
                   f"{f', --cuda {cuda.group(1)}.{cuda.group(2)}' if cuda else ''}"
                   if built == "cpu" else
                   f"build with --cuda {cuda.group(1)}.{cuda.group(2)}" if cuda else
                   "dlbox picks the build for the target")
            target = ("a CPU-only build: --cpu, or no usable NVIDIA GPU on the host"
                      if built == "cpu" else "the build for this target's GPU and driver")
            out.append(f"the project pins {line}: its local label +{label} is replaced by "
                       f"+{built} ({target}); for +{label}, {how}")
    return out


def _resolve_framework(framework: str, target: Any, wheelhouse: Sequence[Distribution],
                       version: str | None, matrix: Any, pins: Sequence[tuple[str, Any]],
                       base_image: str | None) -> Any:
    from packaging.version import Version

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
            raise python_error(error, framework, None, target, matrix) from None
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
            reasons += (f"the project requires {_pins_text(pins)}, which admits version "
                        f"{public}",)
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

        known = sorted({v for row in rows for v in row.versions if _version_key(v)},
                       key=_version_key)
        # A patch that never existed (torch==2.1.9): its release's patches are the way out;
        # not for one older than the data (jax==0.4.20, the data starting at 0.4.26).
        patches = [sorted({v for row in rows if same_release(version, row.release)
                           for v in row.versions}, key=_version_key)
                   for version in _exact_pins(pins)
                   if _version_key(version) >= _version_key(known[0])]
        patches = [listed_patches for listed_patches in patches if listed_patches]
        example = (f"{dist}=={patches[0][-1]} ({framework} {', '.join(patches[0])} exist)"
                   if patches else instead())
        hint = f"require a version dlbox knows, e.g. {example}" if example else None
        if hint is None:  # review: it named jax==0.4.38 to driver 470, which runs none
            try:
                resolve_build(framework, target, matrix)
            except HostEnvError as error:
                hint = (f"require a version dlbox knows; no {framework} build of them runs on "
                        f"this target: "
                        f"{python_error(error, framework, None, target, matrix).hint}")
        raise ContainerError(
            f"the project requires {text}, and no {framework} version dlbox knows meets it "
            f"(it knows {framework} {known[0]} to {known[-1]})",
            hint=hint or f"require a version dlbox knows, e.g. {dist}=={known[-1]}",
        )
    narrowed = dataclasses.replace(matrix, **{framework: kept})
    try:
        resolved = resolve_build(framework, target, narrowed)
    except HostEnvError as error:
        versions = sorted({v for row in kept for v in row.versions}, key=_version_key,
                          reverse=True)
        shown = listed(versions, 4)
        other = instead()
        python = python_error(error, framework, None, target, narrowed)
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


def base_picking(resolve: Callable[[Any], Any], target: Any, base_image: str | None) -> Any:
    """The build that picks the base image, before its Python is known: `resolve(target)`;
    without a --base-image or a known Python, a build that is not cuda-system lands on the
    default base, so it is resolved again on that base's Python, and kept only when that
    leaves a cuda-system build (which picks the nvidia/cuda base instead). When that Python
    leaves none, `first` is kept: `default_base_image` gives it the nvidia/cuda image whose
    Python it installs on, if one is known (a pinned tensorflow 2.14: review)."""
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
    try:
        if target.python is not None:
            return str(resolve_build(framework, target, matrix).version)
        # what picks the base image, as `first_choice` does
        first = base_picking(lambda t: resolve_build(framework, t, matrix), target, base_image)
        python = assumed_python(first, base_image)
        best = resolve_build(framework, dataclasses.replace(target, python=python), matrix)
        if best.variant == "cuda-system" and assumed_python(best, base_image) != python:
            return None  # its base image has another Python again: no sure suggestion
        return str(best.version)
    except DlboxError:
        return None


def assumed_python(resolved: Any, base_image: str | None) -> str:
    """The Python a build of `resolved` is assumed to get before its base image is seen: the
    nvidia/cuda image's for a cuda-system build on dlbox's base (or for one the default
    base's Python cannot install: `default_base_image`), else the default base's (for a
    --base-image too). ContainerError when no nvidia/cuda image has its CUDA."""
    if base_image:
        return S.DEFAULT_PYTHON
    if resolved.variant == "cuda-system":
        return cuda_base_image(resolved).python
    image = _cuda_base_for_python(resolved)
    return image.python if image is not None else S.DEFAULT_PYTHON


def framework_requirement(resolved: Any) -> tuple[str, ...]:
    """The pip lines for the resolved build; torch pins its variant's local version
    (2.13.0+cpu) so pip cannot take PyPI's CUDA wheel of the same number."""
    lines = list(resolved.requirements)
    if resolved.framework == "torch" and lines and "+" not in resolved.version:
        lines[0] = f"torch=={resolved.version}+{resolved.variant}"
    return tuple(lines)


def project_pins(project: Project, framework: str) -> list[tuple[str, Any]]:
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
    pins = project_pins(project, framework)
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
    for line, specifier in project_pins(project, framework):
        if not specifier.contains(public, prereleases=True):
            raise ContainerError(
                f"the project requires {line}, but the {framework} build for this target is "
                f"{version}",
                hint=_LOOSEN_PIN_HINT,
            )


def check_project_admits(project: Project, framework: str, version: str,
                          matrix: Any) -> None:
    """--framework-version against the project's own pin: a patch version the pin refuses,
    or a release none of whose known patches it admits, is refused as check_project_allows
    would after the resolve."""
    pins = project_pins(project, framework)
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
    published nvidia/cuda image with that CUDA and cuDNN (`cuda_base_image`); or unless the
    default base's Python cannot install it: then the nvidia/cuda image of its CUDA whose
    Python can (`_cuda_base_for_python`)."""
    if resolved.variant == "cuda-system" and resolved.cuda:
        return cuda_base_image(resolved).image
    image = _cuda_base_for_python(resolved)
    if image is not None:
        return image.image
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
    major = (cudnn or "8").split(".")[0]
    for image in S.CUDA_BASE_IMAGES:
        if same_release(cuda, image.cuda) and image.cudnn == major \
                and (pythons is None or image.python in pythons):
            return image
    return None


def _cuda_base_for_python(resolved: Any) -> S.CudaBaseImage | None:
    """For a GPU build with its CUDA from pip that the default base's Python cannot install
    (tensorflow 2.14's [and-cuda] extra: its tensorrt has no 3.11 wheels), the nvidia/cuda
    image of its CUDA whose python3 it installs on; else None. Review: unpinned, such a
    target got that image (through 2.13, cuda-system, on 3.11), while the project pinning
    tensorflow==2.14.1, or --framework-version 2.14, was refused on python:3.11."""
    if resolved.variant in ("cpu", "cuda-system") or not resolved.cuda \
            or S.DEFAULT_PYTHON in resolved.python_versions:
        return None
    return _cuda_image_for(resolved.cuda, resolved.cudnn, resolved.python_versions)


def cuda_base_image(resolved: Any) -> S.CudaBaseImage:
    """The nvidia/cuda image for a cuda-system build: its CUDA release and cuDNN major in
    `spec.CUDA_BASE_IMAGES`, else a ContainerError telling the user to bring a base."""
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
