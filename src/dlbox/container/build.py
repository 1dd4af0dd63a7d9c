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
Step 3's parts have their own modules: `container.framework` (which framework build and
base image), `container.pins` (pip's resolve inside the image, and reading its failures);
`container.tags` keeps the engine's names tidy after step 5.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlbox import __version__
from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.container.context import (
    WARN_CONTEXT_BYTES,
    ContextSummary,
    Distribution,
    changed_files,
    left_out_packages,
    left_out_weights,
    measure_project,
    outside_links,
    project_digest,
    project_file_stamps,
    read_ca_cert,
    scan_wheelhouse,
    wheels_for_pins,
    write_context,
)
from dlbox.container.dockerignore import IgnoreMatcher, project_patterns
from dlbox.container.engine import Log
from dlbox.container.framework import (
    assumed_python,
    base_picking,
    check_project_admits,
    check_project_allows,
    default_base_image,
    env_base_image,
    framework_dist,
    framework_requirement,
    matrix_for_version,
    normalize_framework,
    project_pins,
    requirements_input,
    resolve_framework,
    version_for_project,
)
from dlbox.container.lock import (
    LOCK_FILE,
    LockEntry,
    LockUnreadable,
    describe_extras,
    lock_key,
    pinned_version,
    read_lock,
    requirement_changes,
    stale_reasons,
    target_archs,
    write_lock,
)
from dlbox.container.pins import (
    PROXY_BUILDARGS,
    RESOLVE_DIR,
    download_target,
    pip_args_for,
    probe_python,
    resolve_pins,
    split_pip_options,
)
from dlbox.container.project import (
    FRAMEWORK_COMPANIONS,
    PYPROJECT_FILE,
    SETUP_PY_FILE,
    Project,
    detect_framework,
    detect_project,
    framework_user,
    other_frameworks,
    project_image_above,
    python_notes,
    requirement_name,
)
from dlbox.container.render import render_dockerfile, render_lock_requirements
from dlbox.container.run import gpu_blocker, host_facts
from dlbox.container.smoke import SmokeResult, require_smoke_ok, run_smoke
from dlbox.container.spec import FrameworkBuild, ImageSpec, default_tag
from dlbox.container.tags import (
    deps_stage_image,
    deps_step_images,
    deps_tag,
    drop_failed,
    failed_tag,
    keep_failed,
    last_step_image,
    remove_replaced,
    tag_deps_stage,
)
from dlbox.errors import ContainerError, HostEnvError, UsageError
from dlbox.fileio import check_writable, current_folder, expand_user
from dlbox.hostenv.matrix import load_matrix
from dlbox.hostenv.resolve import ProbedDriver, Target, refuse_older_than_data
from dlbox.hostenv.rules import broken_driver_error
from dlbox.text import has_url_credentials, listed, redact_url_credentials, shell_quote

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
    said: tuple[str, ...] = ()  # of the notes, those the build logged at its start


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


def first_choice(p: Plan) -> Any:
    """The build that picks the base image, before its Python is known (the build then
    resolves again on the image's Python). Without --base-image, a build that is not
    cuda-system lands on the default base, so it must install on that base's Python: review
    found tensorflow 2.14 (and-cuda) on python:3.11, where its tensorrt has no wheels. When
    the default Python leaves a cuda-system build, that one picks the (nvidia/cuda) base."""
    pins = project_pins(p.project, p.framework)
    return base_picking(
        lambda target: resolve_framework(p.framework, target, p.wheelhouse, p.framework_version,
                                         pins=pins, base_image=p.base_image),
        p.target, p.base_image)


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
    # what the build says at its start and among its notes, after the project's notes: a
    # warning ("warning: ...") or the framework added to a project that names none
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


def _reference_key(reference: str) -> str:
    """An image name as the engine keys it: NAME:TAG, `latest` when no tag is given, Docker
    Hub's docker.io/ (and library/) left off; a digest reference as it is."""
    if "@" in reference:
        return reference
    repository, name = engine.split_tag(reference)
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix):]
            break
    return f"{repository}:{name}"


def refuse_tag_of_base(tags: Sequence[str], base_image: str, given: bool = True,
                       project_name: str = "PROJECT") -> None:
    """UsageError for a tag of the build that names its own base image (review: `--base-image
    revnb-base:1 --tag revnb-base:1` took the base's name over, and the next build on it
    started FROM the project's image, its user and venv there already, and failed with
    "Permission denied: '/opt/venv/pyvenv.cfg'"). `given`: the tags are --tag's, not the
    default ones."""
    for tag in tags:
        if _reference_key(tag) != _reference_key(base_image):
            continue
        what = f"--tag {tag}" if given else f"the image's default tag {tag}"
        other = f"{project_name}:latest"
        if _reference_key(other) == _reference_key(base_image):
            other = f"{project_name}-app:latest"
        raise UsageError(f"{what} names the build's base image {base_image}: the build would "
                         f"take that name from it, and the next build on {base_image} would "
                         "start from this image",
                         hint=f"pass another --tag (e.g. --tag {other}), so the base image "
                              "keeps its name")


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
    framework = normalize_framework(request.framework) or detect_framework(project.requirements)
    warnings: tuple[str, ...] = ()  # said at the build's start and among its notes
    if framework is None:  # review: a `six`-only project got torch with no word of it
        user = framework_user(project.requirements)
        framework = user[0] if user else "torch"
        warnings += ((f"the project names no framework, but {user[1]} is built on {user[0]}: "
                      if user else "the project names no framework: ")
                     + f"{framework} added (--framework to choose another)",)
    if request.framework_version is not None:
        # A version dlbox does not know is refused now, not after a lock compare whose
        # --relock hint would only lead to this same refusal.
        matrix = load_matrix()
        matrix_for_version(matrix, framework, request.framework_version)
        # The project's own pin ruling the version out is said before a lock compare, whose
        # --relock hint would only lead to it.
        check_project_admits(project, framework, request.framework_version, matrix)
    target = choose_target(request, facts)
    if request.framework_version is not None:
        # And one older than dlbox's data for this target (jax 0.4.20 on a GPU), as the
        # resolver refuses it, before the lock compare too.
        refuse_older_than_data(framework, target, matrix, request.framework_version)
    gpu = not target.cpu
    others = other_frameworks(project.requirements, framework) if gpu else ()
    if others:  # review: tensorflow beside torch stayed a CPU build, with no word of it
        warnings += (
            f"warning: the project also requires {' and '.join(others)}, which keeps its "
            f"line as written: only {framework} gets a GPU build (build an image per "
            "framework with --framework to give another one its GPU build)",)
    warnings += other_device_indexes(project.pip_options, gpu)
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
    chosen = base_image or (entry.base_image if entry is not None else None)
    if project.python_requests:
        # the notes on the Python cog.yaml or runtime.txt asks for, as the base image the
        # build uses has it (review: "pass --base-image python:3.12-slim-bookworm" when it
        # was passed); None: one of dlbox's default bases
        chosen_by_user = chosen if chosen is not None and chosen not in _default_bases() \
            else None
        project = dataclasses.replace(project, notes=project.notes + tuple(
            python_notes(project.python_requests, chosen_by_user)))
    wheelhouse = scan_wheelhouse(expand_user(request.wheelhouse)) if request.wheelhouse else ()
    if request.offline and request.wheelhouse is not None and entry is None and not wheelhouse:
        # a first build resolves with pip, which then has nothing (a lock's pins get the full
        # download command when the build checks them)
        _refuse_an_empty_wheelhouse(expand_user(request.wheelhouse), project.root)
    return Plan(project, framework, target, key, lock_path, entries, entry, wheelhouse,
                version_for_project(project, framework, request.framework_version),
                lock_notes, base_image, warnings)


_DEVICE_INDEX = re.compile(r"/whl/(?:nightly/)?(cpu|cu\d+|rocm[\d.]+)/?$")


def other_device_indexes(pip_options: Sequence[str], gpu: bool) -> tuple[str, ...]:
    """Warnings for a wheel index in requirements.txt made for another device: PyTorch's
    CUDA or ROCm index (.../whl/cu121) on a CPU build, its CPU or ROCm index on an (NVIDIA)
    GPU build. The framework comes from the index dlbox picks either way, but a companion
    (torchaudio, say) found only in the project's index came as that device's build (review:
    a cu121 line on a --cpu build, with no word of it)."""
    said = []
    for option in pip_options:
        url = option.partition("=")[2]
        found = _DEVICE_INDEX.search(url)
        if found is None:
            continue
        kind = {"cp": "CPU", "cu": "CUDA", "ro": "ROCm (AMD GPU)"}[found[1][:2]]
        if kind == ("CUDA" if gpu else "CPU"):
            continue
        fix = "--cpu" if kind == "CPU" else "--gpu" if kind == "CUDA" else ""
        said.append(f"warning: requirements.txt adds the wheel index {url}, of {kind} builds, "
                    f"to {'an NVIDIA GPU' if gpu else 'a CPU'} build: the framework comes "
                    "from the index dlbox picks, but a package found only there comes as its "
                    f"{kind} build; drop the line (dlbox adds the framework's index itself)"
                    + (f", or build with {fix}" if fix else ""))
    return tuple(said)


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


def python_mismatch(project: Project, python: str, base_image: str,
                    cuda_system: bool = False) -> tuple[str, str] | None:
    """(error, hint) when the base image's Python is not one the project's requires-python
    allows; the hint names an image whose Python is (review: "a fitting Python", no name),
    the newest, as python_error does; for a build on a CUDA base image (`cuda_system`: the
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
    fitting = next((v for v in reversed(S.OFFICIAL_PYTHONS)
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
        pins = project_pins(p.project, p.framework)
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
    name = p.project.image_name  # the build's refusal of a tag that names its base, too
    refuse_tag_of_base([request.tag] if request.tag else [
        default_tag(name, spec.framework), f"{name}:latest"], spec.base_image,
        request.tag is not None, name)
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
    for note in p.project.notes:  # said now: a build that fails, or takes long, shows them
        log(f"note: {note}")
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
    # refused before anything is built: a tag that names the base image the build uses (as
    # _lock picks it for a new entry; the default tags are all known once the framework
    # build is: checked again below)
    refuse_tag_of_base([request.tag] if request.tag else [f"{project.image_name}:latest"],
                       entry.base_image if entry is not None
                       else p.base_image or default_base_image(first_choice(p)),
                       request.tag is not None, project.image_name)
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
        stamps = project_file_stamps(project)  # a file written during the build is named
        context = write_context(tmp / "context.tar", project, dockerfile,
                                lock_requirements_text(entry), [w.path for w in wheels], ca_cert,
                                exclude=[p.lock_path, *_wheelhouse_exclude(request)])
        log(f"building {spec.framework.name} {spec.framework.version} image of "
            f"{project.name} ({project.root}) on {spec.base_image} "
            f"({context.bytes // 2**20} MiB context)")
        tags = [request.tag] if request.tag else [
            default_tag(project.image_name, spec.framework), f"{project.image_name}:latest"]
        refuse_tag_of_base(tags, spec.base_image, request.tag is not None, project.image_name)
        output: list[str] = []  # kept when the build fails: it names the images it made
        try:
            result = engine.build(client, context.path, nocache=request.no_cache,
                                  buildargs=buildargs,
                                  labels={S.SOURCE_LABEL: S.source_id(project.root),
                                          S.FILES_LABEL: files_digest},
                                  on_event=on_event, project=project.name, log=output)
        except ContainerError as error:
            _after_failed_build(client, output, failed_tag(tags[0]), error)
            raise
        if changed := changed_files(stamps, project):  # review: `| tee build.log` in it
            one = len(changed) == 1
            notes.append(
                f"warning: {listed([shell_quote(rel) for rel in changed], 3, counted=True)}"
                " changed while the image was built (or appeared), so the image's copy of "
                "the project differs: `dlbox image run` will warn that the project's files "
                "changed; write such a file outside the project, or list "
                f"{'it' if one else 'them'} in .dockerignore")
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
            deps_kept = _keep_failed_deps(client, result.log, failed_tag(tags[0]))
        if failures and all(check.name == "project_sources" for check in failures):
            # Only the project's code failed to compile: the error names the file and line,
            # and an image kept for a look would only pile up, one per attempt.
            engine.remove_replaced_image(client, result.image_id, S.PROJECT_LABEL)
        elif failures:
            kept = keep_failed(client, result.image_id, failed_tag(tags[0]))
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
    notes += remove_replaced(client, replaced, project.root)
    notes += drop_failed(client, failed_tag(tags[0]))
    notes += tag_deps_stage(client, result.log, tags[0])
    # after the tag above: the deps stage of a failed build that this one reused stays
    drop_failed(client, deps_tag(failed_tag(tags[0])), S.DEPS_STAGE_LABEL)
    data = engine.inspect_image(client, result.image_id) or {}
    return BuildOutcome(
        image_id=result.image_id, tags=tags, spec=spec, entry=entry, lock_path=p.lock_path,
        lock_written=new_entry, seconds=round(time.monotonic() - start, 1), build=result,
        smoke=smoke_result, size_bytes=data.get("Size"), context=context, notes=notes,
        project=project, said=p.project.notes,
    )


def _keep_failed_deps(client: Any, log: Sequence[str], name: str) -> str | None:
    """Tag the deps stage of a build that failed (its output: `log`) as NAME:TAG-failed-deps
    (`name`: NAME:TAG-failed), for the next build to reuse: untagged, the one of a build
    whose fix changed the dependencies (a package added) stayed for good (review: 1.27 GB);
    the next failed build's replaces it, the next that passes removes it. The name to show,
    None when none was tagged (the build failed before the stage ended, or the name is
    another image's)."""
    # checked here too: with no stage of this build's, the -failed-deps image that the
    # check below finds is an older build's, not one this build kept
    if deps_stage_image(log) is None:
        return None
    tag_deps_stage(client, log, name)
    kept = deps_tag(name)
    if S.DEPS_STAGE_LABEL not in engine.image_labels(engine.inspect_image(client, kept)):
        return None
    return kept


def _after_failed_build(client: Any, log: Sequence[str], name: str,
                        error: ContainerError) -> None:
    """A build that failed after its deps stage: the stage is kept as NAME:TAG-failed-deps
    (named in `error`'s hint), and the image of the last step that ended, which nothing
    names or builds on (the engine keeps it, with the gigabytes of the venv's copy), is
    removed; that of a step that an image still builds on stays. One that failed inside the
    stage (pip's install): the images its finished steps left (the wheelhouse's copy: up to
    gigabytes, which nothing reuses after a --relock) are removed, newest first, each alone,
    until one that an image or a container still uses; the system and venv stages under
    them, the cache of any build on the base, stay. One that failed before the stage keeps
    its steps' images, that cache."""
    try:
        if deps_stage_image(log) is None:  # it failed inside the stage, or before it
            for image in reversed(deps_step_images(log)):
                if engine.remove_replaced_image(client, image, None, prune=False) \
                        != "removed":
                    break
            return
        kept = _keep_failed_deps(client, log, name)
        if kept is None:
            return
        # (the engine removed the failed step's container before it sent the error)
        last = last_step_image(log)
        if last:
            engine.remove_replaced_image(client, last, None)
    except ContainerError:  # housekeeping: the build's own failure is what the user needs
        return
    said = f"its dependency stage is kept as {kept} (the next build reuses it; the first " \
           "that passes removes it)"
    error.hint = f"{error.hint}; {said}" if error.hint else said


def _lock(request: BuildRequest, p: Plan, client: Any, tmp: Path, ca_cert: Path | None,
          buildargs: dict[str, str], log: Log,
          on_event: engine.EventCallback | None) -> LockEntry:
    """Resolve the framework build and every pin for a new lock entry (needs the engine)."""
    project = p.project
    framework_pins = project_pins(project, p.framework)
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
