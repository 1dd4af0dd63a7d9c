"""dlbox.lock: what the first build resolved, so every later build installs the same bytes.

One JSON file per project (next to its requirements), one entry per build kind
("torch-cpu", "torch-gpu", ...). An entry records the Python of the image, the framework
build and its wheel index, the base image, the minimum NVIDIA driver, the GPU architectures
the build was resolved for, the project's own requirement lines (to notice when they change)
and the full pinned set pip resolved inside the image. `stale_reasons` compares an entry
with the project as it is now: a non-empty answer makes the build fail with a hint to
`--relock`.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from dlbox.errors import ContainerError
from dlbox.fileio import dataclass_to_json, read_json, write_json_atomic
from dlbox.text import shell_quote

LOCK_FILE = "dlbox.lock"
LOCK_SCHEMA = 1
_WRITTEN_BY = "Written by `dlbox image build`"
LOCK_COMMENT = f"{_WRITTEN_BY}; commit it. Re-resolve with --relock."
# how the comment starts in a written lock (is_dlbox_lock looks for it)
_LOCK_MARKER = f'"comment": "{_WRITTEN_BY}'.encode()


@dataclass(frozen=True)
class LockEntry:
    key: str  # "torch-cpu" | "torch-gpu" | "tensorflow-cpu" | ...
    framework: str
    framework_version: str  # exact, as pinned: "2.13.0+cpu"
    variant: str
    cuda: str | None
    cudnn: str | None
    wheel_index: str | None
    min_driver: str | None
    python: str  # "3.11.2", the image's Python when it was locked
    base_image: str
    base_id: str | None  # the base image's id when it was locked
    project_requirements: tuple[str, ...]  # the project's lines (normalised, sorted)
    project_pip_options: tuple[str, ...]  # index options from requirements.txt
    requirements_in: tuple[str, ...]  # what pip resolved (framework line substituted)
    pinned: tuple[str, ...]  # name==version for every package the image installs
    reasons: tuple[str, ...] = ()  # why this framework build (from the resolver)
    locked_at: str = ""
    dlbox_version: str = ""
    # The target's compute capabilities the framework build was resolved for, normalised
    # and sorted ("8.6", "9.0"); () = resolved without one (architecture not checked);
    # None = not recorded (a lock written before dlbox recorded them).
    compute_capabilities: tuple[str, ...] | None = None
    # The pyproject extras the project's requirements were read with (sorted); None = not
    # recorded (a lock written before dlbox recorded them).
    extras: tuple[str, ...] | None = None
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def gpu(self) -> bool:
        return self.variant != "cpu"

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockEntry:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue  # written by a newer dlbox: ignore what we do not know
            if not _fits(str(known[key].type), value):
                raise LockUnreadable(
                    f"dlbox.lock entry {data.get('key', '?')!r} has a {key} of the wrong kind "
                    f"({type(value).__name__})", hint="re-resolve with --relock")
            values[key] = tuple(value) if isinstance(value, list) else value
        missing = [name for name, f in known.items() if name not in values
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise LockUnreadable(
                f"dlbox.lock entry {data.get('key', '?')!r} lacks {', '.join(missing)}",
                hint="re-resolve with --relock",
            )
        return cls(**values)

    def sha256(self) -> str:
        """A digest of what the image's dependencies depend on (labels carry it)."""
        payload = {
            "framework": [self.framework, self.framework_version, self.variant, self.cuda,
                          self.wheel_index],
            "python": self.python,
            "base_image": self.base_image,
            "pinned": sorted(self.pinned),
            "options": list(self.project_pip_options),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class LockUnreadable(ContainerError):
    """The lock file is not one dlbox can read (damaged, hand-edited, another schema):
    `--relock` writes a new one in its place."""


def _fits(annotation: str, value: Any) -> bool:
    """Whether a lock field's JSON value has the kind its annotation says (the lock is a
    file people edit and merge: a wrong kind is an error, not a crash further on)."""
    if value is None:
        return "None" in annotation
    if annotation.startswith("tuple[str"):
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if annotation.startswith("dict"):
        return isinstance(value, dict)
    return isinstance(value, str)


def lock_key(framework: str, gpu: bool) -> str:
    return f"{framework}-{'gpu' if gpu else 'cpu'}"


def target_archs(compute_capabilities: Sequence[str]) -> tuple[str, ...]:
    """The GPU architectures a target names, as a lock records them: "MAJOR.MINOR", without
    repeats, sorted ("sm_90", "8.6", "86" -> ("8.6", "9.0")); a value that is no compute
    capability is kept as given (the resolver refuses it with a hint)."""
    from dlbox.hostenv.versions import compute_capability_tuple, format_cc

    parsed = {value: compute_capability_tuple(value) for value in compute_capabilities}
    known = sorted({cc for cc in parsed.values() if cc is not None})
    junk = sorted({value for value, cc in parsed.items() if cc is None})
    return tuple(format_cc(cc) for cc in known) + tuple(junk)


def describe_target_archs(archs: Sequence[str]) -> str:
    """("8.6", "9.0") -> "sm_86, sm_90"."""
    return ", ".join(f"sm_{arch.replace('.', '')}" for arch in archs)


def read_lock(path: Path) -> dict[str, LockEntry]:
    """The entries of a lock file; {} when it does not exist."""
    if path.is_dir():
        raise ContainerError(f"{path} is a folder, not a lock file",
                             hint=f"pass a file path: --lock {path / LOCK_FILE}")
    if not path.exists():
        return {}
    if not path.is_file():  # a build would replace a device (--lock /dev/null) or a FIFO
        raise ContainerError(f"{path} is not a regular file, and the build writes its lock "
                             "there", hint="pass --lock a file path (the default: dlbox.lock "
                                           "in the project)")
    try:
        data = read_json(path)
    except OSError as error:
        raise ContainerError(f"cannot read {path}: {error.strerror or error}",
                             hint=f"make it readable (`chmod a+r {shell_quote(path)}`), or "
                                  "pass another --lock file") from None
    except ValueError as error:
        if _has_conflict_markers(path):  # a merge left both sides in it
            raise LockUnreadable(f"{path} holds git merge conflict markers (<<<<<<<)",
                                 hint="resolve the conflict (keep one side, or delete the file "
                                      "and build with --relock)") from None
        _refuse_another_file(path)
        raise LockUnreadable(f"{path} is not valid JSON ({error})",
                             hint="build with --relock to write a fresh one") from None
    if not isinstance(data, dict) or data.get("schema") != LOCK_SCHEMA:
        _refuse_another_file(path)
        raise LockUnreadable(
            f"{path} is not a dlbox lock of schema {LOCK_SCHEMA}",
            hint="build with --relock to write a fresh one",
        )
    builds = data.get("builds") or {}
    if not isinstance(builds, dict) or not all(isinstance(entry, dict)
                                               for entry in builds.values()):
        raise LockUnreadable(f"{path}: its \"builds\" is not a table of lock entries",
                             hint="build with --relock to write a fresh one")
    entries = {key: LockEntry.from_dict(entry) for key, entry in sorted(builds.items())}
    for key, entry in entries.items():
        for pin in entry.pinned:
            # name==version or name @ url, as pins_from_report writes it: pip would fail on
            # anything else at the install step, much later
            if pin_parts(pin) is None:
                raise LockUnreadable(
                    f"{path}: entry {key!r} has a pin that is not name==version or "
                    f"name @ url: {pin!r}", hint="re-resolve with --relock")
    return entries


# `name==version` as the image's pip (<24.1) may write it for a version that is not PEP 440
# ("1.0-SNAPSHOT"): a pin all the same, which dlbox must read back
_LEGACY_PIN = re.compile(
    r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,*=<>!~][^\s;,*]*)\s*")


def pin_parts(line: str) -> tuple[str, str | None] | None:
    """(normalised name, version) of a pin: one `==` (no wildcard) or `===` specifier, or
    `name @ url` (version None); None for anything else. dlbox writes pins without markers
    or extras (pins_from_report), so a line with them is no pin."""
    from packaging.requirements import InvalidRequirement, Requirement

    from dlbox.container.project import normalize_name

    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        legacy = _LEGACY_PIN.fullmatch(line)
        return (normalize_name(legacy.group(1)), legacy.group(2)) if legacy else None
    if requirement.marker is not None or requirement.extras:
        return None
    name = normalize_name(requirement.name)
    if requirement.url:
        return name, None
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and (specifiers[0].operator == "===" or (
            specifiers[0].operator == "==" and not specifiers[0].version.endswith("*"))):
        return name, specifiers[0].version
    return None


def _refuse_another_file(path: Path) -> None:
    """A file dlbox cannot read as a lock is replaced by --relock only when it is one: named
    dlbox.lock, or holding a "schema" key. Anything else (`--lock requirements.txt`, a typo)
    is the user's own file, which the relock its hint offered would overwrite."""
    if path.name == LOCK_FILE:
        return
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    if '"schema"' not in text:
        raise ContainerError(f"{path} is not a dlbox lock, and the build would replace it "
                             "with one", hint="pass --lock the project's dlbox.lock, or a path "
                                              "where no file is yet")


def is_dlbox_lock(path: Path) -> bool:
    """Whether `path` is a regular file as `dlbox image build` writes its locks (any name:
    --lock chooses it)."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        with open(path, "rb") as stream:
            head = stream.read(256)
    except OSError:
        return False
    return head.startswith(b"{") and b'"schema"' in head and _LOCK_MARKER in head


def _has_conflict_markers(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return any(line.startswith("<<<<<<< ") for line in lines) and "=======" in lines


def write_lock(path: Path, entries: dict[str, LockEntry]) -> None:
    """Write the lock atomically (a crash leaves the old one)."""
    write_json_atomic(path, {
        "schema": LOCK_SCHEMA,
        "comment": LOCK_COMMENT,
        "builds": {key: entries[key].to_dict() for key in sorted(entries)},
    })


def pins_from_report(report: dict[str, Any]) -> tuple[str, ...]:
    """`name==version` (or `name @ url` for direct references) from pip's install report."""
    pins: list[str] = []
    for item in report.get("install") or ():
        metadata = item.get("metadata") or {}
        name, version = metadata.get("name"), metadata.get("version")
        if not name or not version:
            continue
        url = (item.get("download_info") or {}).get("url", "")
        if item.get("is_direct") and not url.startswith("file:"):
            pins.append(f"{name} @ {url}")
        else:
            pins.append(f"{name}=={version}")
    return tuple(sorted(pins, key=str.lower))


def pinned_version(pins: tuple[str, ...], name: str) -> str | None:
    """The version `pins` pin `name` to; None when they pin it as `name @ url`, or not."""
    from dlbox.container.project import normalize_name

    for pin in pins:
        parts = pin_parts(pin)
        if parts and parts[0] == normalize_name(name) and parts[1] is not None:
            return parts[1]
    return None


def _diff(old: tuple[str, ...], new: tuple[str, ...]) -> str:
    added = [line for line in new if line not in old]
    removed = [line for line in old if line not in new]
    return _shown([f"+{line}" for line in added] + [f"-{line}" for line in removed])


def _shown(parts: Sequence[str]) -> str:
    shown = ", ".join(parts[:6])
    return shown + (f", ... ({len(parts) - 6} more)" if len(parts) > 6 else "")


def describe_extras(extras: Sequence[str]) -> str:
    """("viz",) -> "--extras viz"; () -> "no extras"."""
    return " ".join(f"--extras {name}" for name in extras) or "no extras"


def marker_environment(python: str) -> dict[str, str]:
    """The image's marker values as far as the lock knows them: its Python, on Linux."""
    parts = python.split(".")
    return {"python_version": ".".join(parts[:2]), "python_full_version": python,
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}


def _unmet(line: str, entry: LockEntry) -> str | None:
    """Why the lock's pins do not meet the requirement `line`; None when they do (its pinned
    version is in its specifier, or its marker does not hold in the image)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return "not a requirement dlbox can check"
    if requirement.marker is not None and entry.python and not requirement.marker.evaluate(
            marker_environment(entry.python)):
        return None
    if requirement.url:
        return "a URL: only a new resolution fetches it"
    if requirement.extras:
        return f"its extras [{','.join(sorted(requirement.extras))}] may need more packages"
    version = pinned_version(entry.pinned, requirement.name)
    if version is None:
        return "not in the lock"
    if not requirement.specifier.contains(version, prereleases=True):
        return f"the lock pins {requirement.name} {version}"
    return None


_MARKER_WORDS = {"and", "or", "in", "not"}


def _uncovered(line: str, entry: LockEntry) -> str | None:
    """Why the lock's pins do not install what the requirement `line` asks for ("not in the
    lock", "the lock pins NAME VERSION"); None when they do or when dlbox cannot tell (a URL,
    a marker it cannot evaluate for the image, the framework's own lines, which the resolved
    build replaces). The pins of a hand-edited lock are checked so, not only the list of
    requirements it recorded."""
    from packaging.requirements import InvalidRequirement, Requirement

    from dlbox.container.project import FRAMEWORK_DISTS, normalize_name, requirement_name

    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None
    name = normalize_name(requirement.name)
    if requirement.url or name in FRAMEWORK_DISTS.get(entry.framework, ()):
        return None
    if requirement.marker is not None:
        environment = marker_environment(entry.python) if entry.python else {}
        # the marker's variables, outside its quoted values: any the lock does not know
        # (platform_machine, extra, ...) leaves the line unchecked
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*",
                               re.sub(r"'[^']*'|\"[^\"]*\"", "", str(requirement.marker))))
        if not words - _MARKER_WORDS <= set(environment):
            return None
        if not requirement.marker.evaluate(environment):
            return None
    if not any(requirement_name(pin) == name for pin in entry.pinned):
        return "not in the lock"
    version = pinned_version(entry.pinned, name)  # None: pinned as `name @ url`
    if version is not None and _pep440(version) \
            and not requirement.specifier.contains(version, prereleases=True):
        return f"the lock pins {requirement.name} {version}"
    return None


def _pep440(version: str) -> bool:
    """Whether a pinned version is one a specifier can compare (a legacy one, as old pip
    locks it, is not: dlbox cannot tell whether it meets a requirement)."""
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def requirement_changes(entry: LockEntry, project_requirements: Sequence[str],
                        ) -> tuple[list[str], list[str]]:
    """(changes the lock's pins meet, changes that need a new resolution), each described.

    A new or changed line is met when the version the lock pins satisfies it (`requests>=2`
    with requests 2.32.3 pinned): the image would install the same thing. A line the project
    dropped is not: the lock would still install what it brought in."""
    from dlbox.container.project import normalize_name

    def name(line: str) -> str:
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            return normalize_name(Requirement(line).name)
        except InvalidRequirement:
            return line

    old, new = tuple(entry.project_requirements), tuple(project_requirements)
    added = [line for line in new if line not in old]
    removed = [line for line in old if line not in new]
    met: list[str] = []
    unmet: list[str] = []
    for line in added:
        before = [other for other in removed if name(other) == name(line)]
        shown = f"{before[0]} -> {line}" if len(before) == 1 else f"+{line}"
        why = _unmet(line, entry)
        (unmet if why else met).append(f"{shown} ({why})" if why else shown)
    changed = {name(line) for line in added}
    unmet += [f"-{line}" for line in removed if name(line) not in changed]
    return met, unmet


def _same_public_version(locked: str, asked: str) -> bool:
    """Whether the locked version is what was asked: a release ("2.1") admits any of its
    patches ("2.1.2+cu121"), a patch version ("2.1.0") itself (PEP 440 equality)."""
    from packaging.version import InvalidVersion, Version

    public = locked.split("+")[0]
    try:
        wanted = Version(asked)
        if len(wanted.release) < 3 and not wanted.local:
            return Version(public).release[:len(wanted.release)] == wanted.release
        return Version(public) == wanted
    except InvalidVersion:
        return public == asked


def stale_reasons(
    entry: LockEntry,
    project_requirements: tuple[str, ...],
    project_pip_options: tuple[str, ...],
    base_image: str | None = None,
    framework_version: str | None = None,
    cuda: str | None = None,
    driver: str | None = None,
    compute_capabilities: Sequence[str] = (),
    extras: Sequence[str] | None = None,
) -> list[str]:
    """Why `entry` no longer fits the project or the request; [] when it still does.

    Changed requirements make it stale unless the lock's pins meet every new or changed line
    (`requirement_changes`). `extras` are the pyproject extras of this build (None: not
    compared); a lock that recorded other ones is stale for that reason, named as such (the
    requirements that differ with them are not listed apart).

    `base_image`, `framework_version`, `cuda` and `driver` are what the user asked for
    explicitly this time (None: not asked, the lock decides). `compute_capabilities` are the
    GPU architectures the target has (given or probed; (): none named, the lock decides): the
    lock fits when it was resolved for every one of them (its build covers them all), and not
    when it was resolved for other ones or for none (then the architecture was never
    checked). A lock that predates the record (None) cannot tell, and is kept.
    """
    from dlbox.hostenv.versions import same_release, version_at_least

    reasons: list[str] = []
    other_extras = (extras is not None and entry.extras is not None
                    and sorted(set(extras)) != sorted(set(entry.extras)))
    if other_extras:
        reasons.append(f"the extras differ from the lock's: it was resolved with "
                       f"{describe_extras(entry.extras or ())}, this build has "
                       f"{describe_extras(sorted(set(extras or ())))}")
    else:
        if tuple(entry.project_requirements) != tuple(project_requirements):
            _, unmet = requirement_changes(entry, project_requirements)
            if unmet:
                reasons.append(f"the project's requirements changed ({_shown(unmet)})")
        # the lines the lock recorded: its pins may have been edited by hand since (the new
        # lines are checked above)
        uncovered = [f"{line} ({why})" for line in project_requirements
                     if line in entry.project_requirements
                     for why in [_uncovered(line, entry)] if why]
        if uncovered:
            reasons.append(f"its pins do not meet the project's requirements "
                           f"({_shown(uncovered)})")
    if tuple(entry.project_pip_options) != tuple(project_pip_options):
        reasons.append("the pip options in requirements.txt changed ("
                       f"{_diff(entry.project_pip_options, project_pip_options)})")
    if base_image and base_image != entry.base_image:
        reasons.append(f"the base image is now {base_image} (locked: {entry.base_image})")
    if framework_version and not (
        entry.framework_version == framework_version
        or _same_public_version(entry.framework_version, framework_version)
    ):
        reasons.append(f"{entry.framework} {framework_version} was asked for "
                       f"(locked: {entry.framework_version})")
    if cuda and entry.cuda and not same_release(entry.cuda, cuda):
        reasons.append(f"CUDA {cuda} was asked for (locked: CUDA {entry.cuda})")
    if driver and entry.min_driver and version_at_least(driver, entry.min_driver) is False:
        reasons.append(f"driver {driver} is below the locked build's minimum "
                       f"{entry.min_driver} (CUDA {entry.cuda})")
    wanted = target_archs(compute_capabilities)
    locked = entry.compute_capabilities
    # A lock that records no architecture (older, or resolved from --driver alone) was never
    # checked against one: the other settings decide, as for every option not given.
    missing = [cc for cc in wanted if cc not in (locked or ()) and not _build_runs(entry, cc)]
    if locked and missing:
        noun = "architectures are" if len(missing) > 1 else "architecture is"
        reasons.append(f"the target's GPU {noun} {describe_target_archs(missing)}, which "
                       f"the locked build does not run (locked for "
                       f"{describe_target_archs(locked)})")
    return reasons


def _build_runs(entry: LockEntry, cc: str) -> bool:
    """Whether the locked framework build has kernels for GPUs of capability `cc`
    (dlbox's matrix; torch GPU builds only, anything else: False, so the lock is rechecked)."""
    from dlbox.hostenv.compat import build_fit
    from dlbox.hostenv.matrix import load_matrix
    from dlbox.hostenv.versions import same_release

    if entry.framework != "torch" or not entry.cuda:
        return False
    matrix = load_matrix()
    release = matrix.torch_release(entry.framework_version.split("+")[0])
    for variant in release.variants if release is not None else ():
        if same_release(variant.cuda, entry.cuda):
            return build_fit(matrix, cc, variant.archs, variant.ptx, variant.cuda) in ("sass",
                                                                                     "ptx")
    return False
