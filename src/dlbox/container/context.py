"""The build context: one tar archive that dlbox writes and sends to the engine.

Layout (what the Dockerfile's COPY lines refer to):

    Dockerfile                      rendered from the spec
    .dockerignore                   the patterns applied below (for a reader of the context)
    dlbox/requirements.lock.txt     the pinned requirements from dlbox.lock
    dlbox/wheelhouse/*.whl          wheels from --wheelhouse that the lock pins
    dlbox/extra-ca.crt              --ca-cert
    project/...                     the project, minus what the ignore patterns leave out

Building the archive here (instead of sending the project folder) lets the generated files sit
beside the project without being copied into the code layer, and keeps data, runs, .git and
virtual environments out whatever the project folder holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dlbox.container import spec as S
from dlbox.container.dockerignore import (
    DEFAULT_PATTERNS,
    WEIGHT_PATTERNS,
    IgnoreMatcher,
    project_patterns,
    render_dockerignore,
)
from dlbox.container.lock import LOCK_FILE, is_dlbox_lock, pin_parts
from dlbox.container.project import Project
from dlbox.errors import ContainerError, UsageError
from dlbox.fileio import expand_user
from dlbox.text import shell_quote

WARN_CONTEXT_BYTES = 500 * 1024 * 1024  # a project this big almost always ships data by mistake


@dataclass(frozen=True)
class Distribution:
    """A wheel or sdist in a wheelhouse folder, as its file name describes it."""

    path: Path
    name: str  # normalised
    version: str
    tags: frozenset[tuple[str, str, str]]  # (interpreter, abi, platform); empty for sdists

    def fits_python(self, python: str | None) -> bool:
        """Could pip install this into CPython `python` ("3.11") on Linux?"""
        if not self.tags or python is None:
            return True
        major_minor = "".join(python.split(".")[:2])
        for interpreter, abi, platform in self.tags:
            if interpreter not in (f"cp{major_minor}", "py3", f"py{major_minor}") and not (
                abi == "abi3" and interpreter.startswith("cp3")
                and int(interpreter[3:] or 0) <= int(major_minor[1:] or 0)
            ):
                continue
            if platform == "any" or "linux" in platform:
                return True
        return False


def scan_wheelhouse(folder: Path) -> tuple[Distribution, ...]:
    """The wheels and sdists directly in `folder`; UsageError when it is not a folder."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    if not folder.is_dir():
        raise UsageError(f"wheelhouse {folder} is not a folder",
                         hint="pass a folder of .whl files, e.g. --wheelhouse /opt/wheels")
    found: list[Distribution] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        try:
            if path.name.endswith(".whl"):
                name, version, _build, tags = parse_wheel_filename(path.name)
                triples = frozenset((t.interpreter, t.abi, t.platform) for t in tags)
                found.append(Distribution(path, str(name), str(version), triples))
            elif path.name.endswith((".tar.gz", ".zip")):
                name, version = parse_sdist_filename(path.name)
                found.append(Distribution(path, str(name), str(version), frozenset()))
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
    return tuple(found)


def _same_version(left: str, right: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(left) == Version(right)
    except InvalidVersion:
        return left == right


def wheels_for_pins(dists: Sequence[Distribution], pins: Sequence[str],
                    python: str | None) -> tuple[tuple[Distribution, ...], tuple[str, ...]]:
    """(the wheelhouse files the pins need, the pins no file covers)."""
    selected: list[Distribution] = []
    uncovered: list[str] = []
    for pin in pins:
        name, version = pin_parts(pin) or ("", None)  # `name===version` too
        if version is None:  # a URL, or no pin
            uncovered.append(pin)
            continue
        matches = [d for d in dists if d.name == name
                   and _same_version(d.version, version) and d.fits_python(python)]
        if matches:
            selected.extend(m for m in matches if m not in selected)
        else:
            uncovered.append(pin)
    return tuple(selected), tuple(uncovered)


def excluded_project_paths(project: Project, exclude: Sequence[Path]) -> tuple[str, ...]:
    """The '/'-separated paths, relative to the project, of those `exclude` entries that lie
    inside it (the --wheelhouse folder, ...); the project folder itself and paths outside it
    are not excluded."""
    root = project.root.resolve()
    out: list[str] = []
    for path in exclude:
        path = expand_user(path)
        try:  # the path as given (a link inside the project) and where it leads
            candidates = (Path(os.path.abspath(path)), path.resolve())
        except (OSError, RuntimeError):
            continue
        for candidate in candidates:
            try:
                rel = candidate.relative_to(root).as_posix()
            except ValueError:
                continue
            if rel not in (".", "") and rel not in out:
                out.append(rel)
    return tuple(out)


def _escape_pattern(rel: str) -> str:
    """A relative path as a .dockerignore pattern that matches only it."""
    escaped = re.sub(r"([*?\[\]\\])", r"\\\1", rel)
    return "\\" + escaped if escaped.startswith("!") else escaped


def is_environment(folder: Path, rel: str | None = None) -> bool:
    """A virtual environment (venv and virtualenv write pyvenv.cfg) or a conda environment
    (conda-meta/), whatever its name: `env/`, `tools/.venv`, ... The default patterns know
    only `.venv` and `venv` at the top; one under any other name would ship the host's
    packages (gigabytes with torch) into an image whose venv is already complete.
    `rel`: the folder's path in the project, for the error when it cannot be read."""
    try:
        return (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta").is_dir()
    except PermissionError as error:
        raise unreadable_folder(rel or folder.name, error) from None


def unreadable_folder(rel: str, error: OSError) -> UsageError:
    return UsageError(f"cannot read the project's folder {rel}/: "
                      f"{error.strerror or error}",
                      hint=f"make it readable (chmod -R u+rX {shlex.quote(rel)}), or leave "
                           f"it out of the image: add {rel} to the project's .dockerignore")


def left_out_packages(root: Path) -> list[str]:
    """Top-level Python packages (a folder with an __init__.py) that only dlbox's default
    ignore patterns leave out of the image: `data/` is a common package name in deep-learning
    projects, and also where datasets go, which the defaults keep out. Each is a note for
    the user, with the `!NAME` that ships it."""
    patterns = project_patterns(root)  # the defaults, then the project's own .dockerignore
    defaults = IgnoreMatcher(DEFAULT_PATTERNS)
    own = IgnoreMatcher(patterns[len(DEFAULT_PATTERNS):])
    everything = IgnoreMatcher(patterns)
    notes = []
    try:
        folders = sorted(child for child in root.iterdir() if child.is_dir())
    except OSError:
        return []
    for folder in folders:
        name = folder.name
        try:
            package = (folder / "__init__.py").is_file()
        except OSError:
            continue
        if package and defaults.ignored(name) and everything.ignored(name) \
                and not own.ignored(name):
            notes.append(f"{name}/ is a Python package ({name}/__init__.py), but dlbox leaves "
                         f"{name}/ out of the image by default: add the line !{name} to the "
                         "project's .dockerignore to ship it")
    return notes


def left_out_weights(root: Path, limit: int = 20_000) -> list[str]:
    """A note naming the weight files (model.pt, *.safetensors, ...) that only dlbox's
    default patterns leave out of the image, with the `!NAME` that ships one (review: a
    predictor's torch.load("model.pt") failed at its first run, where the build said
    nothing). At most `limit` entries are looked at."""
    patterns = project_patterns(root)
    own = IgnoreMatcher(patterns[len(DEFAULT_PATTERNS):])
    everything = IgnoreMatcher(patterns)
    weights = IgnoreMatcher(WEIGHT_PATTERNS)
    found: list[str] = []
    seen = 0
    for folder, subfolders, files in os.walk(root):
        where = Path(folder).relative_to(root).as_posix()
        prefix = "" if where == "." else where + "/"
        subfolders[:] = sorted(name for name in subfolders
                               if not everything.prune(prefix + name))
        for name in sorted(files):
            rel = prefix + name
            if weights.ignored(rel) and everything.ignored(rel) and not own.ignored(rel):
                found.append(rel)
        seen += len(files) + len(subfolders)
        if seen > limit:
            break
    if not found:
        return []
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return [f"weight files are left out of the image by default ({', '.join(found[:3])}{more}):"
            f" mount them at run time, or add the line !{found[0]} (one per file) to the "
            "project's .dockerignore to ship them"]


def outside_links(project: Project) -> list[str]:
    """A note for each link the image gets that points at nothing there, so that the code
    fails at its first run, not at the build: a target outside the project (a shared config
    or module linked in from elsewhere in a monorepo), an absolute path (the project has
    another path in the image), or a file the ignore patterns leave out."""
    root = project.root.resolve()
    files = list(iter_project_files(project))
    shipped = {rel for rel, _ in files}
    # folders the patterns leave out whose files come back (`data/**` then `!data/keep/**`)
    shipped |= {"/".join(rel.split("/")[:depth]) for rel in shipped
                for depth in range(1, rel.count("/") + 1)}
    notes: list[str] = []
    for rel, path in files:
        if not path.is_symlink():
            continue
        try:
            target = os.readlink(path)
            resolved = (path.parent / target).resolve()
        except (OSError, RuntimeError):  # RuntimeError: a loop of links (Python < 3.13)
            continue
        try:
            inside = resolved.relative_to(root).as_posix()
        except ValueError:
            notes.append(f"{rel} is a link to {target}, outside the project: the image gets "
                         f"the link, not what it points to (copy that into the project, or "
                         f"add {rel} to .dockerignore)")
            continue
        if not os.path.lexists(resolved):
            continue  # broken here too: not a matter of the image
        if os.path.isabs(target):
            relative = os.path.relpath(resolved, path.parent.resolve())
            notes.append(f"{rel} is a link to the absolute path {target}, which the image "
                         f"does not have (the project has another path there): make it "
                         f"relative, in the project folder: `ln -sfn {shell_quote(relative)} "
                         f"{shell_quote(rel)}`")
        elif inside not in shipped and inside != ".":
            notes.append(f"{rel} is a link to {target}, which the ignore patterns leave out "
                         f"of the image: the link points at nothing there (ship {inside}, or "
                         f"add {rel} to .dockerignore)")
    if len(notes) > 3:
        notes[3:] = [f"... and {len(notes) - 3} more links that point at nothing in the image"]
    return notes


def iter_project_files(project: Project,
                       exclude: Sequence[Path] = ()) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of every file, folder and link the image gets, sorted.

    `exclude`: files or folders left out besides what the ignore patterns leave out (the
    --wheelhouse folder when it lies inside the project: its wheels go to the engine once,
    under dlbox/wheelhouse, and never into the image's project files)."""
    root = project.root
    matcher = IgnoreMatcher(project_patterns(root))
    include = set(project.include) if project.include is not None else None
    excluded = set(excluded_project_paths(project, exclude))

    def cannot_list(error: OSError) -> None:
        rel = os.path.relpath(error.filename or root, root).replace(os.sep, "/")
        raise unreadable_folder(rel, error)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=cannot_list):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        kept_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if include is not None and not rel_dir and name not in include:
                continue
            if rel in excluded:
                continue
            full = Path(dirpath) / name
            if full.is_symlink():
                if not matcher.ignored(rel):
                    yield rel, full
                continue
            if matcher.prune(rel) or is_environment(full, rel):
                continue
            if not matcher.ignored(rel):
                yield rel, full
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if include is not None and not rel_dir and name not in include:
                continue
            if rel not in excluded and not matcher.ignored(rel):
                yield rel, Path(dirpath) / name


def project_file_stamps(project: Project) -> dict[str, tuple[int, int]]:
    """(size, modification time in ns) of each regular file the image gets, by its relative
    path (the lock files left out, as project_digest leaves them): compared after the build,
    they name a file written meanwhile (changed_files)."""
    stamps = {}
    for rel, path in iter_project_files(project):
        if rel == LOCK_FILE or is_dlbox_lock(path):
            continue
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                stamps[rel] = (info.st_size, info.st_mtime_ns)
    return stamps


def changed_files(before: dict[str, tuple[int, int]], project: Project) -> list[str]:
    """The files of `before` (project_file_stamps) that changed or went since, and those
    that appeared (re-review: a log created by the build's own output was not named)."""
    now = project_file_stamps(project)
    return sorted(rel for rel in before.keys() | now.keys() if now.get(rel) != before.get(rel))


def project_digest(project: Project) -> str:
    """A digest of the project files an image gets (paths, contents, link targets, the
    executable bit): equal when the image holds the folder's code as it is now. The lock
    files are left out: the build writes its lock after the engine took the files, and it
    leaves the lock in use out of the image (`--lock locks/cpu.lock` too: `image run`, which
    checks this digest, does not know which lock the build used)."""
    digest = hashlib.sha256()
    entries: list[bytes] = []
    folders: dict[str, int] = {}  # a folder's rel: its entry's index
    kept, locks = set(), set()  # the folders above a kept file, above a lock
    for rel, path in iter_project_files(project):
        above = {rel.rsplit("/", i)[0] for i in range(1, rel.count("/") + 1)}
        if rel == LOCK_FILE or is_dlbox_lock(path):
            locks |= above
            continue
        kept |= above
        try:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                kind, body = b"L", os.readlink(path).encode("utf-8", "surrogateescape")
            elif stat.S_ISDIR(mode):
                kind, body = b"D", b""
            elif stat.S_ISREG(mode):
                kind, body = (b"X" if mode & stat.S_IXUSR else b"F"), _file_digest(path)
            else:
                continue  # sockets, fifos, devices: never in an image
        except OSError:
            kind, body = b"?", b""  # unreadable now: differs from a build that read it
        name = rel.encode("utf-8", "surrogateescape")
        if kind == b"D":
            folders[rel] = len(entries)
        entries.append(kind + len(name).to_bytes(4, "big") + name + body)
    # a folder that holds only locks (`--lock locks/cpu.lock` makes locks/) is left out too
    dropped = {folders[rel] for rel in locks - kept if rel in folders}
    for index, entry in enumerate(entries):
        if index not in dropped:
            digest.update(entry)
    return digest.hexdigest()[:32]


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def copy_project(project: Project, target: Path, exclude: Sequence[Path] = ()) -> Path:
    """Copy the files the image would get into a new folder `target` (e.g. the built-in
    project as a stand-alone one, to change its code without touching the checkout)."""
    target.mkdir(parents=True)
    for rel, path in iter_project_files(project, exclude):
        destination = target / rel
        if path.is_dir() and not path.is_symlink():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination, follow_symlinks=False)
    return target


@dataclass(frozen=True)
class ContextSummary:
    path: Path
    files: int
    bytes: int
    project_bytes: int
    largest: tuple[tuple[str, int], ...]  # the biggest project files, for a warning


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner and group do not matter (COPY --chown sets them); keep modes and times.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def read_ca_cert(ca_cert: Path) -> bytes:
    """The bytes of `--ca-cert`, refused unless it is a readable PEM certificate file."""
    if ca_cert.is_dir():
        raise UsageError(f"--ca-cert {ca_cert} is a folder",
                         hint="pass the certificate file, e.g. /usr/local/share/"
                              "ca-certificates/proxy.crt")
    try:
        data = ca_cert.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read --ca-cert {ca_cert}: {error.strerror}",
                         hint="pass a PEM file, e.g. /usr/local/share/ca-certificates/"
                              "proxy.crt") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise UsageError(f"--ca-cert {ca_cert} holds no PEM certificate",
                         hint="convert it: openssl x509 -inform der -in CERT -out cert.pem")
    return data


def write_context(
    tar_path: Path,
    project: Project,
    dockerfile: str,
    lock_requirements: str,
    wheels: Sequence[Path] = (),
    ca_cert: Path | None = None,
    exclude: Sequence[Path] = (),
) -> ContextSummary:
    """Write the build context archive to `tar_path`.

    The project files leave out `exclude` (pass the --wheelhouse folder) and the folders
    holding `wheels`, when they lie inside the project: the wheels travel under
    dlbox/wheelhouse, and the image's /workspace gets none of them."""
    files, total, project_bytes = 0, 0, 0
    sizes: list[tuple[str, int]] = []
    exclude = (*exclude, *wheels, *(wheel.parent for wheel in wheels))
    left_out = excluded_project_paths(project, exclude)
    patterns = project_patterns(project.root) + tuple(_escape_pattern(rel) for rel in left_out)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        _add_bytes(tar, ".dockerignore",
                   render_dockerignore(patterns, prefix=f"{S.CONTEXT_PROJECT}/").encode())
        _add_dir(tar, "dlbox")
        _add_bytes(tar, S.CONTEXT_LOCK, lock_requirements.encode())
        if wheels:
            _add_dir(tar, S.CONTEXT_WHEELHOUSE)
            for wheel in wheels:
                # the file a link points at (a wheelhouse of `ln -s`), not the link
                tar.add(wheel.resolve(), f"{S.CONTEXT_WHEELHOUSE}/{wheel.name}",
                        recursive=False, filter=_normalise)
                total += wheel.stat().st_size
                files += 1
        if ca_cert is not None:
            data = read_ca_cert(ca_cert)
            _add_bytes(tar, S.CONTEXT_CA_CERT, data if data.endswith(b"\n") else data + b"\n")
        _add_dir(tar, S.CONTEXT_PROJECT)
        for rel, path in iter_project_files(project, exclude):
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                continue  # sockets, fifos, devices
            try:
                tar.add(path, f"{S.CONTEXT_PROJECT}/{rel}", recursive=False, filter=_normalise)
            except PermissionError as error:
                raise ContainerError(f"cannot read {path}: {error.strerror}",
                                     hint="fix its permissions, or add it to the project's "
                                          ".dockerignore") from None
            if stat.S_ISREG(mode):
                size = path.stat().st_size
                files += 1
                total += size
                project_bytes += size
                sizes.append((rel, size))
    sizes.sort(key=lambda item: -item[1])
    return ContextSummary(tar_path, files, total, project_bytes, tuple(sizes[:5]))


def measure_project(project: Project, exclude: Sequence[Path] = ()
                    ) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(bytes, the five biggest files) of what the image would get of the project, from the
    file sizes alone: a dataset left in the project is said before gigabytes are copied."""
    total = 0
    sizes: list[tuple[str, int]] = []
    for rel, path in iter_project_files(project, exclude):
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
            sizes.append((rel, info.st_size))
    sizes.sort(key=lambda item: -item[1])
    return total, tuple(sizes[:5])

