"""What goes into an image: the project folder, its requirements, and how to install it.

A project is a folder with a `pyproject.toml` ([project].dependencies, optional extras) and/or
a `requirements.txt`; a `setup.py` beside them is installed too, and its literal
`install_requires` list is read (never run). The built-in project is dlbox itself (its source
checkout: pyproject, README, src/, notebooks/). Reading is static: nothing of the project is
imported or run.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import errno
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlbox.container import spec as S
from dlbox.errors import ContainerError, DlboxError, UsageError
from dlbox.fileio import current_folder, expand_user
from dlbox.text import URL_USERINFO, has_url_credentials, redact_url_credentials, shell_quote

REQUIREMENTS_FILE = "requirements.txt"
PYPROJECT_FILE = "pyproject.toml"
APT_FILE = "apt.txt"  # Debian packages to install in the image, one or more a line (as repo2docker)
# name[:arch][=version], as apt-get install takes it (libc6:amd64, curl=7.88.1-10)
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?")
SETUP_PY_FILE = "setup.py"
# What pip assumes for a project that names no build system (PEP 517 fallback).
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
# The files of dlbox's own checkout that the built-in image needs (no tests, no scripts).
BUILTIN_INCLUDE = ("pyproject.toml", "README.md", "LICENSE", "src", "notebooks")

# Distribution names per framework: a project line naming one of these decides the framework
# and is replaced by the resolved build's own requirement.
FRAMEWORK_DISTS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly",
                   "tensorflow-intel"),
    "jax": ("jax", "jaxlib"),
}

# Packages built on one framework, which pip brings in as their dependency: a project that
# names no framework but one of these gets that framework's build (review: `flax` got a CUDA
# torch beside a CPU-only jax). tensorflow-* (tensorflow-datasets, -hub, ...) come after these.
FRAMEWORK_USERS: dict[str, tuple[str, ...]] = {
    "torch": ("torchvision", "torchaudio", "lightning", "pytorch-lightning", "timm"),
    "tensorflow": ("keras", "tf-keras"),
    "jax": ("flax", "optax", "orbax", "orbax-checkpoint"),
}

# Packages the framework's own index builds for each of its variants (torchvision
# 0.28.0+cpu beside torch 2.13.0+cpu). PyPI's are one variant's (on x86-64 Linux, CUDA's), so
# one taken from PyPI beside another variant's framework fails to import.
FRAMEWORK_COMPANIONS: dict[str, tuple[str, ...]] = {"torch": ("torchvision", "torchaudio")}

# requirements.txt options passed on to pip as they are (index and resolution options).
_PASSTHROUGH_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "--pre": "--pre",
    "--prefer-binary": "--prefer-binary",
    "--only-binary": "--only-binary",
    "--no-binary": "--no-binary",
}
_FLAG_OPTIONS = {"--pre", "--prefer-binary"}


@dataclass(frozen=True)
class Project:
    root: Path
    name: str  # distribution name ("dlbox"), or the folder name for requirements-only projects
    version: str | None
    kind: str  # "builtin" | "pyproject" | "requirements"
    requirements: tuple[str, ...]  # runtime requirements, PEP 508, normalised and sorted
    build_requirements: tuple[str, ...]  # [build-system].requires when installable, else ()
    installable: bool  # `pip install --no-deps .` after the code is copied
    requires_python: str | None
    pip_options: tuple[str, ...]  # ("--extra-index-url=https://...",) from requirements.txt
    include: tuple[str, ...] | None  # top-level entries to ship; None = all not ignored
    extras: tuple[str, ...] = ()
    command: tuple[str, ...] = ("python3",)  # the image's default CMD
    # What the reading noticed and the user should hear about, one line each, without the
    # "note: " prefix (hash options not checked, a computed install_requires, ...).
    notes: tuple[str, ...] = ()
    # Debian packages from the project's apt.txt (repo2docker's convention): compilers,
    # libraries and tools its requirements need to build or run (build-essential, git, ...).
    system_packages: tuple[str, ...] = ()
    # The Python other tools' files ask for, which dlbox does not read: (file, version), as
    # ("runtime.txt", "3.12"). Said as notes once the base image is known (python_notes):
    # whether it has that Python depends on it.
    python_requests: tuple[tuple[str, str], ...] = ()

    @property
    def image_name(self) -> str:
        """A valid image repository name from the project name ("My_Proj" -> "my_proj")."""
        name = re.sub(r"[^a-z0-9._-]+", "-", self.name.lower()).strip("._-")
        if not re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", name):
            name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")  # "a..b" -> "a-b"
        return name or "project"

    def input_requirements(self) -> tuple[str, ...]:
        """Everything the lock resolves from the project: runtime and build requirements."""
        return tuple(sorted(set(self.requirements) | set(self.build_requirements)))


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name ("Foo_Bar" -> "foo-bar")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(line: str, where: str) -> Any:
    """A packaging Requirement, or UsageError naming the file and line."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(line)
    except InvalidRequirement as error:
        variable = re.search(r"\$\{([A-Za-z0-9_]+)\}", line)
        if variable:  # pip expands ${NAME} from the environment; dlbox does not
            raise UsageError(
                f"{where}: {redact_url_credentials(line)!r} uses ${{{variable.group(1)}}}, an "
                "environment variable: dlbox does not expand those (pip does), since the "
                "image is built and locked from the file as written",
                hint=f"write the value of {variable.group(1)} into the line in its place"
                ) from None
        # packaging's message goes on with the line and a caret under the fault: one line
        reason = (str(error).strip().splitlines() or ["invalid"])[0]
        raise UsageError(
            f"{where}: {redact_url_credentials(line)!r} is not a valid requirement "
            f"({redact_url_credentials(reason)})",
            hint="write it as pip does, e.g. numpy>=1.24 or rich==13.7.1",
        ) from None


def normalize_requirement(line: str, where: str) -> str:
    requirement = parse_requirement(line, where)
    requirement.name = normalize_name(requirement.name)
    return str(requirement)


def requirement_name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return normalize_name(match.group(1)) if match else ""


def detect_framework(requirements: tuple[str, ...]) -> str | None:
    """The framework a project uses, from its requirement names (torch first)."""
    names = {requirement_name(line) for line in requirements}
    for framework, dists in FRAMEWORK_DISTS.items():
        if names & set(dists):
            return framework
    return None


def framework_user(requirements: tuple[str, ...]) -> tuple[str, str] | None:
    """(framework, package) for a project whose requirements name a package built on a
    framework (flax: jax), the first in FRAMEWORK_USERS' order, then a tensorflow-* one; None
    when they name none. For a project that names no framework itself."""
    names = sorted({requirement_name(line) for line in requirements})
    for framework, users in FRAMEWORK_USERS.items():
        for name in names:
            if name in users:
                return framework, name
    for name in names:
        if name.startswith("tensorflow-"):
            return "tensorflow", name
    return None


def other_frameworks(requirements: tuple[str, ...], framework: str) -> tuple[str, ...]:
    """The frameworks a project lists besides the one its image is built for (whose lines
    pip installs as written: no GPU build chosen for them)."""
    names = {requirement_name(line) for line in requirements}
    return tuple(other for other, dists in FRAMEWORK_DISTS.items()
                 if other != framework and names & set(dists))


# ---- credentials in URLs ---------------------------------------------------------------------

def refuse_url_credentials(line: str, where: str) -> None:
    """UsageError when `line` (which would reach the Dockerfile or the lock) has a URL
    with credentials: the image's history would keep them."""
    if has_url_credentials(line):
        from_env = "${" in line  # pip's ${VAR}: the value would need a build arg, kept in history
        raise UsageError(
            f"{where}: {redact_url_credentials(line)!r} has credentials in a URL"
            + (" (from an environment variable, which a build would need as a build arg, "
               "which the image's history keeps)" if from_env else "")
            + ", and dlbox never bakes secrets into an image",
            hint="remove the credentials from the URL, and supply the packages through "
                 "--wheelhouse DIR, filled beforehand with pip download -d DIR",
        )


def _refuse_pyproject_credentials(path: Path, lines: list[str]) -> None:
    """refuse_url_credentials for requirements from pyproject.toml, naming the line."""
    for line in lines:
        match = URL_USERINFO.search(line)
        if match is None or not has_url_credentials(line):
            continue
        numbers = [number for number, raw in
                   enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                   if match.group(0) in raw]
        refuse_url_credentials(line, f"{path.name}:{numbers[0]}" if numbers else path.name)


# ---- requirements.txt ----------------------------------------------------------------------

def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments stripped and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            out.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        out.append((start, buffer.strip()))
    return out


# pip's short options that take a value, which may be attached: -rbase.txt
_SHORT_WITH_VALUE = ("-r", "-c", "-e", "-i", "-f")


def _split_option(line: str) -> tuple[str, str | None]:
    value: str | None
    if "=" in line.split()[0] and line.startswith("--"):
        option, value = line.split("=", 1)
    elif line[:2] in _SHORT_WITH_VALUE and len(line.split()[0]) > 2:
        option, value = line[:2], line[2:]
    else:
        parts = line.split(None, 1)
        option, value = parts[0], (parts[1] if len(parts) > 1 else None)
    return option, _unquoted(value.strip()) if value is not None else None


def _unquoted(value: str) -> str:
    """A quoted or escaped option value as pip reads it (shlex): `-r "my base.txt"`,
    `-r my\\ base.txt`, `-e ".[dev]"`."""
    if value[:1] in ("'", '"') or "\\" in value:
        with contextlib.suppress(ValueError):
            words = shlex.split(value)
            if len(words) == 1:
                return words[0]
    return value


# Byte order marks pip honours in a requirements file (Windows tools write UTF-16 with one);
# UTF-32 first, as its little-endian mark starts with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def _shown_path(path: Path, project_root: Path) -> str:
    """`path` relative to the project when it lies inside it, else as it is."""
    try:
        return path.relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return str(path)


def decode_text(data: bytes, shown: str, hint: str) -> str:
    """`data` as text: UTF-8, or the encoding its byte order mark names; UsageError naming
    the file, line and byte otherwise."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        if encoding != "utf-8":
            raise UsageError(f"{shown} starts with a {encoding.upper()} byte order mark, but is "
                             f"not {encoding.upper()} text (byte {error.start})",
                             hint=hint) from None
        line = data[:error.start].count(b"\n") + 1
        raise UsageError(f"{shown}:{line} is not UTF-8 text (byte {error.start} is "
                         f"{data[error.start]:#04x})", hint=hint) from None


def unreadable_project_file(path: Path, error: OSError, included: bool = False) -> UsageError:
    """The error for a project file that cannot be read, with the fix its errno points at:
    a permission, a folder in its place, or (a `-r` include) a wrong path."""
    if error.errno in (errno.EACCES, errno.EPERM):
        hint = f"make it readable (`chmod a+r {shell_quote(path)}`)"
    elif error.errno == errno.EISDIR:
        hint = f"{path.name} must be a file; rename the folder"
    elif included:
        hint = "check the -r include path in your requirements file"
    else:
        hint = f"check that {path} is there and readable"
    return UsageError(f"cannot read {path}: {error.strerror}", hint=hint)


def _wheel_file_name(requirement: str) -> tuple[str, str, str] | None:
    """(file name, project name, version) when a local path requirement is a wheel file."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    file_name = requirement.rstrip("/").rsplit("/", 1)[-1]
    if not file_name.endswith(".whl"):
        return None
    try:
        name, version, _, _ = parse_wheel_filename(file_name)
    except InvalidWheelFilename:
        return None
    return file_name, name, str(version)


def read_requirements_file(path: Path, project_root: Path,
                           _seen: frozenset[Path] = frozenset(),
                           notes: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(requirement lines, pip options) of a requirements file, following `-r` includes.

    The project itself (`.`, `-e .`) is skipped: it is installed with the code. Options pip
    would need a local path for, constraints files and editable installs of other folders
    raise UsageError naming the line (exit status 2, as for every problem in the project's
    files), and so does a file that is not UTF-8 text. What the
    user should hear about (`--hash` options, which are not checked) goes to `notes`.
    """
    path = path.resolve()
    if path in _seen:
        return [], []
    try:
        data = path.read_bytes()
    except OSError as error:
        raise unreadable_project_file(path, error, included=bool(_seen)) from None
    text = decode_text(data, _shown_path(path, project_root),
                       hint="save it as UTF-8, as pip reads it (e.g. iconv -f latin1 -t utf-8 "
                            "FILE > FILE.new, then replace FILE with it)")
    requirements: list[str] = []
    options: list[str] = []
    hashed = 0
    for number, line in _logical_lines(text):
        where = f"{path.name}:{number}"
        refuse_url_credentials(line, where)
        if line.startswith("-"):
            option, value = _split_option(line)
            if option in ("-r", "--requirement"):
                if not value:
                    raise UsageError(f"{where}: -r needs a file name",
                                     hint="e.g. -r requirements-base.txt")
                more, more_options = read_requirements_file(path.parent / value, project_root,
                                                             _seen | {path}, notes)
                requirements += more
                options += more_options
            elif option in ("-e", "--editable"):
                if value and (path.parent / value).resolve() == project_root.resolve():
                    continue  # the project itself: installed after the code is copied
                _refuse_project_extras(value or "", path, project_root, where)
                raise UsageError(
                    f"{where}: editable install of {value!r} is not supported in an image",
                    hint="list the package as a normal requirement, or make it part of the "
                         "project folder",
                )
            elif option in ("-c", "--constraint"):
                raise UsageError(
                    f"{where}: constraints files are not supported",
                    hint="dlbox pins every requirement in dlbox.lock; put the pins you need "
                         "into requirements.txt (name==version)",
                )
            elif option in _PASSTHROUGH_OPTIONS:
                canonical = _PASSTHROUGH_OPTIONS[option]
                if canonical in _FLAG_OPTIONS:
                    options.append(canonical)
                    continue
                if not value:
                    raise UsageError(f"{where}: {option} needs a value",
                                     hint=f"e.g. {option} https://example.org/simple")
                if canonical == "--find-links" and "://" not in value:
                    raise UsageError(
                        f"{where}: --find-links {value} is a local folder, which the image "
                        "build cannot see",
                        hint=f"pass it to the build instead: dlbox image build --wheelhouse "
                             f"{value}",
                    )
                options.append(f"{canonical}={value}")
            else:
                raise UsageError(f"{where}: pip option {option} is not supported here",
                                 hint="remove it from the requirements file")
            continue
        parts = re.split(r"\s+--hash[= ]", line)
        requirement = parts[0].strip()
        hashed += len(parts) > 1
        if requirement in (".", "./") or (
            requirement.startswith((".", "/")) and (path.parent / requirement).resolve()
            == project_root.resolve()
        ):
            continue
        _refuse_project_extras(requirement, path, project_root, where)
        if requirement.startswith((".", "/", "file:")):
            hint = ("build a wheel of it into a folder and pass --wheelhouse DIR, then "
                    "require it by name")
            wheel = _wheel_file_name(requirement)
            if wheel is not None:  # already a wheel: only where it lies must change
                hint = (f"put {wheel[0]} in a folder, pass --wheelhouse DIR, and require "
                        f"{wheel[1]}=={wheel[2]} by name")
            raise UsageError(
                f"{where}: local path requirement {requirement!r} is not supported",
                hint=hint,
            )
        named_file = _NAMED_FILE_URL.match(requirement)
        # what `pip freeze` writes for a conda env's packages (a framework's URL gets its own
        # error, with the build's plan)
        if named_file and not any(normalize_name(named_file.group(1)) in dists
                                  for dists in FRAMEWORK_DISTS.values()):
            name = named_file.group(1)
            raise UsageError(
                f"{where}: local path requirement {requirement!r} is not supported",
                hint=f"replace it with a released version, e.g. {name}==VERSION (pip freeze "
                     "in a conda env writes these; `pip list --format=freeze` writes "
                     "versions)",
            )
        requirements.append(normalize_requirement(_named_url(requirement, where), where))
    if hashed and notes is not None:
        # pip-compile --generate-hashes output: the lock re-resolves and pins versions only,
        # and pip in the image cannot check hashes of the packages the lock adds.
        notes.append(
            f"{_shown_path(path, project_root)}: the --hash options of {hashed} "
            f"requirement{'s' if hashed != 1 else ''} are not checked: dlbox resolves every "
            "requirement into dlbox.lock, which pins versions, not hashes")
    return requirements, options


_BARE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_NAMED_FILE_URL = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@\s*file:",
                             re.IGNORECASE)
_PATH_EXTRAS = re.compile(r"(.+?)\s*\[([^\]]*)\]\s*")


def _refuse_project_extras(requirement: str, path: Path, project_root: Path,
                           where: str) -> None:
    """UsageError for `.[dev]` or `-e .[dev]`: the project itself with extras, which
    `--extras` gives the build."""
    found = _PATH_EXTRAS.fullmatch(requirement)
    if not found or not found.group(1).startswith((".", "/")):
        return
    if (path.parent / found.group(1)).resolve() != project_root.resolve():
        return
    extras = [extra.strip() for extra in found.group(2).split(",") if extra.strip()]
    flags = " ".join(f"--extras {extra}" for extra in extras) or "--extras NAME"
    raise UsageError(f"{where}: {requirement!r} is the project itself with extras, which a "
                     "requirements file cannot give the image",
                     hint=f"remove the line and pass them to the build: dlbox image build "
                          f"... {flags}")


def _named_url(requirement: str, where: str) -> str:
    """A bare URL requirement as PEP 508's `name @ URL`, which the lock needs (pip takes both):
    the name from a wheel's file name or an #egg= fragment; any other URL, UsageError."""
    if not _BARE_URL.fullmatch(requirement):
        return requirement
    url = requirement
    egg = re.search(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)", url)
    filename = url.split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if egg:
        name = egg.group(1)
    elif filename.endswith(".whl") and filename.count("-") >= 4:
        name = filename.split("-", 1)[0]
    else:
        guess = _name_guess(url, filename)
        raise UsageError(
            f"{where}: {redact_url_credentials(url)!r} is a URL without a package name",
            hint=f"name the package: {guess} @ {redact_url_credentials(url)}")
    return f"{normalize_name(name)} @ {url}"


def _name_guess(url: str, filename: str) -> str:
    """The package name a hint offers for a URL without one: a file name without its version
    and archive suffix (mylib-1.0.tar.gz, tool.git); NAME for a code host's archive of a
    branch or tag (.../archive/refs/heads/main.zip), whose file name is no package's."""
    if "/archive/" in url:
        return "NAME"
    stem = re.sub(r"\.(git|zip|tgz|tar(\.(gz|bz2|xz))?)$", "", filename)
    return re.sub(r"-\d.*$", "", stem) or "NAME"


# ---- pyproject.toml --------------------------------------------------------------------------

def _load_toml(path: Path) -> dict[str, Any]:
    """The table of a TOML file; UsageError when it cannot be read, is not UTF-8 (as TOML
    must be) or is not valid TOML."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise unreadable_project_file(path, error) from None
    check = (f"python3 -c \"import tomllib; tomllib.load(open('{path.name}', 'rb'))\" "
             "checks it")
    if data.startswith(codecs.BOM_UTF8):
        raise UsageError(f"{path} starts with a byte order mark, which TOML does not allow",
                         hint="save it as UTF-8 without BOM; " + check)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line} is not UTF-8 text (byte {error.start} is "
                         f"{data[error.start]:#04x}), and TOML must be",
                         hint="save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > FILE.new, "
                              "then replace FILE with it)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML: {error}",
                         hint="fix it at the line and column named; " + check) from None


def _toml_type(value: Any) -> str:
    """What a TOML value is, in TOML's words ("a string", "an array", ...)."""
    for kind, words in ((bool, "a boolean"), (str, "a string"), (int, "an integer"),
                        (float, "a float"), (list, "an array"), (dict, "a table")):
        if isinstance(value, kind):
            return words
    return "a date or time"


def _toml_table(value: Any, where: str, field: str, example: str) -> dict[str, Any]:
    """`value` when it is a table (None: an empty one); else UsageError naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {field} is {_toml_type(value)}, not a table",
                         hint=f"write it as a table: {example}")
    return value


def _toml_string(value: Any, where: str, field: str, example: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise UsageError(f"{where}: {field} is {_toml_type(value)}, not a string",
                     hint=f"quote it: {example}")


def _refuse_missing_name_or_version(project_table: dict[str, Any], dynamic: set[str],
                                    where: str) -> None:
    """PEP 621: [project] must give a name, and a version unless `dynamic` lists it; the
    image installs the project with pip, whose build backend refuses it otherwise (review:
    a traceback at the install step, after every layer before it was built)."""
    if not project_table.get("name"):
        raise UsageError(f"{where}: [project] name is missing, which pip needs to install the "
                         "project (PEP 621)", hint='add it to [project]: name = "mypkg"')
    if project_table.get("version") is None and "version" not in dynamic:
        raise UsageError(f"{where}: [project] version is missing and not listed in dynamic, "
                         "which pip needs to install the project (PEP 621)",
                         hint='add it to [project]: version = "0.1.0" (or dynamic = '
                              '["version"] when the build backend sets it)')


def _toml_strings(value: Any, where: str, field: str, example: str) -> list[str]:
    """`value` when it is an array of strings (None: an empty one); else UsageError naming
    the field and, for a wrong entry, its index."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(f"{where}: {field} is {_toml_type(value)}, not an array of strings",
                         hint=f"write it as an array of strings: {example}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            shown = repr(item) if isinstance(item, (bool, int, float)) else _toml_type(item)
            raise UsageError(
                f"{where}: {field}[{index}] is {shown}, not a string",
                hint=f"quote every entry: {example}",
            )
    return value


# The keys of pyproject.toml's [project] table (PEP 621 and its successors: license-files,
# import-names); setuptools and flit_core refuse any other (hatchling, say, ignores it).
PROJECT_KEYS = ("name", "version", "description", "readme", "requires-python", "license",
                "license-files", "authors", "maintainers", "keywords", "classifiers", "urls",
                "scripts", "gui-scripts", "entry-points", "dependencies",
                "optional-dependencies", "dynamic", "import-names", "import-namespaces")
# The build backends that refuse such a key (None: no build-backend, which is setuptools)
STRICT_BACKENDS = (None, "setuptools.build_meta", "setuptools.build_meta:__legacy__",
                   "flit_core.buildapi")


def _unknown_project_keys(project_table: dict[str, Any], backend: Any,
                          where: str) -> list[str]:
    """Notes on the [project] keys PEP 621 does not define (`dependecies`), each naming
    the closest one: dlbox ignores them (no dependencies, no extras). UsageError instead for
    a build backend that refuses them (`STRICT_BACKENDS`) only in the real build."""
    import difflib

    notes: list[str] = []
    for key in project_table:
        if key in PROJECT_KEYS:
            continue
        close = difflib.get_close_matches(key, PROJECT_KEYS, n=1)
        if key in ("dev-dependencies", "dependency-groups"):
            fix = "move it to a top-level [dependency-groups] table, as PEP 735 has it"
        elif close:
            fix = f"rename it to {close[0]!r}"
        else:
            fix = (f"remove it, or move it to a [tool.NAME] table (the keys of [project]: "
                   f"{', '.join(PROJECT_KEYS)})")
        if backend not in STRICT_BACKENDS:
            notes.append(f"{where}: [project] has a key {key!r} that is not a PEP 621 key: "
                         f"dlbox ignores it ({fix})")
            continue
        raise UsageError(
            f"{where}: [project] has a key {key!r} that pyproject.toml does not define",
            hint=fix)
    return notes


def _poetry_dependencies(data: dict[str, Any]) -> list[str]:
    """The packages [tool.poetry.dependencies] names (Python itself left out)."""
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    dependencies = poetry.get("dependencies") if isinstance(poetry, dict) else None
    if not isinstance(dependencies, dict):
        return []
    return [name for name in dependencies if normalize_name(name) != "python"]


# ---- setup.py ------------------------------------------------------------------------------

def _literal_requirements(node: ast.expr, names: dict[str, ast.expr],
                          depth: int = 0) -> list[str] | None:
    """The requirement strings of a literal install_requires value: a list or tuple of
    strings, a string of lines, a module-level name bound to one, or a sum of those."""
    if depth > 8:
        return None
    if isinstance(node, ast.Name) and node.id in names:
        return _literal_requirements(names[node.id], names, depth + 1)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in node.value.splitlines())
        return [line for line in lines if line]
    if isinstance(node, (ast.List, ast.Tuple)):
        if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            return [e.value for e in node.elts]  # type: ignore[attr-defined]
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _literal_requirements(node.left, names, depth + 1)
        right = _literal_requirements(node.right, names, depth + 1)
        return None if left is None or right is None else left + right
    return None


def setup_py_requirements(path: Path) -> tuple[list[str] | None, str | None]:
    """(the install_requires of a setup.py, read without running it; a note for the user).

    [] when it passes none; None (and a note saying so) when it computes them, or when the
    file is not Python dlbox can parse: dlbox never runs setup.py.
    """
    unread = (f"{path.name}: dlbox does not run setup.py, and {{why}}: what it lists is not "
              f"in the image unless {REQUIREMENTS_FILE} lists it too")
    try:
        text = path.read_bytes().decode("utf-8")
        tree = ast.parse(text, filename=path.name)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as error:
        why = (error.strerror if isinstance(error, OSError)
               else "it is not UTF-8 text" if isinstance(error, UnicodeDecodeError)
               else f"it does not parse as Python ({type(error).__name__})")
        return None, unread.format(why=f"cannot read its install_requires: {why}")
    names: dict[str, ast.expr] = {}
    for statement in tree.body:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            names[statement.targets[0].id] = statement.value
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else (
            func.attr if isinstance(func, ast.Attribute) else "")
        if called != "setup":
            continue
        for keyword in node.keywords:
            if keyword.arg == "install_requires":
                found = _literal_requirements(keyword.value, names)
                if found is None:
                    return None, unread.format(
                        why="its install_requires is computed, not a list of strings")
                return found, None
    if "install_requires" in text:  # setup(**options), a helper, ...: not found statically
        return None, unread.format(why="it passes install_requires in a way dlbox cannot read")
    return [], None


def _setup_py_only_error(root: Path) -> UsageError:
    """The error for a project whose only description is a setup.py."""
    found, _note = setup_py_requirements(root / SETUP_PY_FILE)
    listed = (f" (setup.py's install_requires: {', '.join(found)})" if found else "")
    pyproject = ((root / PYPROJECT_FILE).is_file()
                 and f" and no [project] table in {PYPROJECT_FILE}")
    return UsageError(
        f"{root} has a {SETUP_PY_FILE} but no {REQUIREMENTS_FILE}{pyproject or ''}: the "
        f"project's dependencies must be listed in {REQUIREMENTS_FILE} or {PYPROJECT_FILE} "
        "([project] dependencies), since dlbox does not run setup.py to find them",
        hint=f"list them in a {REQUIREMENTS_FILE} next to setup.py, one a line{listed}; "
             "the project itself is still installed from setup.py",
    )


def _expand_extras(name: str, optional: dict[str, list[str]], extras: tuple[str, ...],
                   where: str) -> list[str]:
    """Requirements of the named extras, following self-references like dlbox[notebook]."""
    out: list[str] = []
    todo, done = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in done:
            continue
        done.add(extra)
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise UsageError(f"{name} has no extra {extra!r}",
                             hint=f"extras in {where}: {known}")
        for line in optional[extra]:
            requirement = parse_requirement(line, where)
            if normalize_name(requirement.name) == normalize_name(name):
                todo.extend(sorted(requirement.extras))
            else:
                out.append(normalize_requirement(line, where))
    return out


CHECKOUT_PLACEHOLDER = "DLBOX_CHECKOUT"  # PROJECT_DIR in hints, for an installed dlbox


def is_dlbox_tree(root: Path) -> bool:
    """`root` is a dlbox source tree (a checkout, an unpacked sdist): its pyproject.toml's
    [project] name is dlbox and it holds the package, src/dlbox/__init__.py. Any such tree
    is the built-in project, not only the one dlbox runs from (review: a checkout passed as
    PROJECT_DIR, as an installed dlbox's hint said, was built as any pyproject project:
    without the `notebook` extra and `dlbox --help` as CMD)."""
    pyproject = root / PYPROJECT_FILE
    if not pyproject.is_file() or not (root / "src" / "dlbox" / "__init__.py").is_file():
        return False
    try:
        project = _load_toml(pyproject).get("project")
    except DlboxError:  # unreadable: detect_project names its fault
        return False
    name = project.get("name") if isinstance(project, dict) else None
    return isinstance(name, str) and normalize_name(name) == "dlbox"


def _builtin_root() -> Path | None:
    """The dlbox source tree this dlbox runs from; None for one installed without it."""
    import dlbox

    root = Path(dlbox.__file__).resolve().parents[2]
    return root if is_dlbox_tree(root) else None


def builtin_build_command() -> str:
    """The `dlbox image build` that builds the built-in project outside a project: with
    the checkout placeholder as PROJECT_DIR where dlbox runs from no checkout."""
    if _builtin_root() is None:
        return f"dlbox image build {CHECKOUT_PLACEHOLDER}"
    return "dlbox image build"


def builtin_project_dir() -> Path:
    root = _builtin_root()
    if root is None:
        raise ContainerError(
            "the built-in project is built from dlbox's source, and this dlbox is installed "
            "without its checkout",
            hint=f"pass the folder of a dlbox checkout (git clone, or an unpacked sdist) as "
                 f"PROJECT_DIR: dlbox image build {CHECKOUT_PLACEHOLDER}",
        )
    return root


def read_apt_file(path: Path) -> tuple[str, ...]:
    """The Debian packages listed in apt.txt (one or more a line, as repo2docker reads it;
    # comments), in the order given; () without the file. A word that is not a package
    name is a UsageError naming it."""
    if not path.is_file():
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text (byte {error.start})",
                         hint="save it as UTF-8: one Debian package name per line") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}",
                         hint="make it readable, or remove it") from None
    packages: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for word in line.split():
            if not _DEBIAN_PACKAGE.fullmatch(word):
                raise UsageError(f"{path.name}:{number}: {word!r} is not a Debian package name",
                                 hint="package names as apt-get install takes them, e.g. "
                                      "build-essential or libsndfile1 (pkg=VERSION pins one, "
                                      "pkg:ARCH names an architecture)")
            if word not in packages:
                packages.append(word)
    return tuple(packages)


# Other tools' project files, which dlbox does not read, and how their packages reach a
# requirements.txt (Cog users and repo2docker users brought theirs; review).
FOREIGN_PROJECT_FILES = (
    ("cog.yaml", "Cog's", "list its build.python_packages in a requirements.txt (and its "
                          "build.system_packages in an apt.txt)"),
    ("environment.yml", "conda's", "list its pip: packages, and its conda ones by their PyPI "
                                   "names, in a requirements.txt"),
    ("environment.yaml", "conda's", "list its pip: packages, and its conda ones by their PyPI "
                                    "names, in a requirements.txt"),
    ("Pipfile", "Pipenv's", "write a requirements.txt from it: pipenv requirements > "
                            "requirements.txt"),
    ("Pipfile.lock", "Pipenv's", "write a requirements.txt from it: pipenv requirements > "
                                 "requirements.txt"),  # a lock alone: review
)


def foreign_project_error(folder: Path) -> UsageError | None:
    """The error for a folder that is another tool's project (cog.yaml, environment.yml,
    Pipfile) and not one dlbox reads, with how to make it one; None for any other folder."""
    for name, whose, fix in FOREIGN_PROJECT_FILES:
        if (folder / name).is_file():
            more = ""
            if name == COG_FILE:  # what a requirements.txt and apt.txt cannot carry
                cog = read_cog_build(folder / name)
                if cog.get("run"):
                    more += ("; its build.run steps are not run (their packages go in those "
                             "files too)")
                if isinstance(cog.get("python_version"), str):
                    more += f"; {python_choice(cog['python_version'])}"
            return UsageError(f"{folder} holds {name} ({whose}), which dlbox does not read, and "
                              f"no {REQUIREMENTS_FILE} or {PYPROJECT_FILE}",
                              hint=f"{fix}, then build again{more}")
    return None


COG_FILE = "cog.yaml"
RUNTIME_FILE = "runtime.txt"  # repo2docker's: python-3.12


def _yaml_scalar(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text


def _yaml_flow_list(text: str) -> list[str]:
    """The strings of a YAML flow list, `[a, "b"]`."""
    return [_yaml_scalar(item) for item in text.strip().strip("[]").split(",") if item.strip()]


def read_cog_build(path: Path) -> dict[str, Any]:
    """The build: section of a cog.yaml, read without a YAML library (dlbox has none): its
    scalar keys as strings, its lists (`- item` lines, or `[a, b]`, on one line or more) as
    lists of strings (a mapping item, as a run step with mounts, as its first line); {} when
    unreadable, or when build: is a flow mapping (`build: {gpu: true}`), not read."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, Any] = {}
    in_build, key, key_indent, item_indent = False, "", 0, 0
    flow: str | None = None  # a `[` list not closed yet, so far
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        text = line.strip()
        if not text:
            continue
        if flow is not None:
            flow += " " + text
            out[key] = _yaml_flow_list(flow)
            flow = None if "]" in text else flow
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_build, key = text == "build:", ""
            continue
        if not in_build:
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*):\s*(.*)", text)
        if match and (not key or indent <= key_indent):
            key, key_indent, item_indent = match.group(1), indent, 0
            value = match.group(2)
            if value.startswith("["):
                out[key] = _yaml_flow_list(value)
                flow = None if "]" in value else value
            else:
                out[key] = _yaml_scalar(value) if value else []
        elif ((text == "-" or text.startswith("- ")) and isinstance(out.get(key), list)
              and item_indent in (0, indent)):  # not an item of a list inside an item
            item_indent = indent
            out[key].append(_yaml_scalar(text[1:]))
    return out


def python_choice(wanted: str, base_image: str | None = None) -> str:
    """How to get Python `wanted` ("3.12"), which another tool's file asks for: the image has
    its base image's Python, so a base image that has it. `base_image`: the one the build
    uses when the user chose it (--base-image, or the lock's); None: dlbox's default."""

    release = ".".join(wanted.split(".")[:2])
    image = (f"--base-image python:{release}-slim-bookworm" if release in S.OFFICIAL_PYTHONS
             else f"--base-image with a Debian/Ubuntu image whose python3 is {release}")
    # python's own images name their Python: python:3.12-slim-bookworm, python:3.12.4
    official = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)(?:[.-].*)?",
                            base_image or "")
    if official is not None:
        if official.group(1) == release:
            return f"the base image {base_image} has Python {release}, as asked"
        return (f"the image has its base image's Python ({official.group(1)} on {base_image}): "
                f"for {release}, pass {image}")
    if base_image is not None:
        return (f"the image has the Python of its base image {base_image}, which the build "
                f"probes: for {release}, use an image that has it ({image})")
    if release == S.DEFAULT_PYTHON:
        return (f"the image has its base image's Python ({S.DEFAULT_PYTHON} on dlbox's default "
                "base images, as asked)")
    return (f"the image has its base image's Python ({S.DEFAULT_PYTHON} on dlbox's default base "
            f"images): for {release}, pass {image}")


def python_requests(root: Path) -> tuple[tuple[str, str], ...]:
    """The Python that cog.yaml's build.python_version and repo2docker's runtime.txt ask for,
    which dlbox does not read: (file, version) each ("runtime.txt", "3.12"), in that order."""
    requests: list[tuple[str, str]] = []
    if (root / COG_FILE).is_file():
        wanted = read_cog_build(root / COG_FILE).get("python_version")
        if isinstance(wanted, str) and wanted:
            requests.append((COG_FILE, wanted))
    with contextlib.suppress(OSError, UnicodeDecodeError):
        runtime = (root / RUNTIME_FILE).read_text(encoding="utf-8")
        match = re.match(r"\s*python-(\d+\.\d+(?:\.\d+)?)\s*$", runtime)
        if match:
            requests.append((RUNTIME_FILE, match.group(1)))
    return tuple(requests)


def python_notes(requests: Sequence[tuple[str, str]], base_image: str | None = None) -> list[str]:
    """The notes on the Python that other tools' files ask for (Project.python_requests), as
    the base image the build uses has it; `base_image` as for `python_choice`."""
    notes: list[str] = []
    for source, wanted in requests:
        if source == COG_FILE:
            notes.append(f"{COG_FILE}'s build.python_version {wanted} is not read: "
                         f"{python_choice(wanted, base_image)}")
        else:
            notes.append(f"{RUNTIME_FILE} (repo2docker's) asks for Python {wanted}, which "
                         f"dlbox does not read: {python_choice(wanted, base_image)}")
    return notes


def other_tools_notes(root: Path, source: str, apt_packages: tuple[str, ...]) -> list[str]:
    """Notes on Cog's and repo2docker's files beside the project's `source` (requirements.txt
    or pyproject.toml), which dlbox does not read: what of them the image lacks, and where
    it goes instead (the Python they ask for is Project.python_requests, which the build's
    plan names once it knows the base image: `python_notes`)."""
    notes: list[str] = []
    if (root / COG_FILE).is_file():
        cog = read_cog_build(root / COG_FILE)
        notes.append(f"{COG_FILE} (Cog's) is not read: the image gets the packages of {source} "
                     f"(list there those of its build.python_packages it needs)")
        system = [name for name in cog.get("system_packages") or ()
                  if isinstance(name, str) and name not in apt_packages]
        if system and isinstance(cog.get("system_packages"), list):
            notes.append(f"{COG_FILE}'s build.system_packages ({', '.join(system)}) are not "
                         f"installed: list them in {APT_FILE}")
        run = cog.get("run")
        if run:
            steps = f"{len(run)} step{'s' if len(run) != 1 else ''}" \
                if isinstance(run, list) else "a step"
            notes.append(f"{COG_FILE}'s build.run ({steps}) is not run: list the Debian "
                         f"packages it installs in {APT_FILE} and the Python ones in {source}")
    if (root / "postBuild").is_file():
        notes.append(f"postBuild (repo2docker's) is not run: list the Debian packages it "
                     f"installs in {APT_FILE} and the Python ones in {source}; for other "
                     "steps, build an image of your own FROM this one")
    if (root / "start").is_file():
        notes.append("start (repo2docker's) is not run: the image runs its command as it is; "
                     "give another to dlbox image run (IMAGE -- CMD ...)")
    return notes


def default_project_dir(cwd: Path | None = None) -> Path | None:
    """The project `dlbox image build` takes without PROJECT_DIR: the current folder when it
    is a project (requirements.txt, pyproject.toml or setup.py in it), as Cog and
    repo2docker do; else None, the built-in project."""
    folder = current_folder() if cwd is None else cwd
    return folder if is_project_folder(folder) else None


def is_project_folder(folder: Path) -> bool:
    """Whether `folder` holds a project dlbox reads (requirements.txt, pyproject.toml or
    setup.py)."""
    return any((folder / name).is_file() for name in (REQUIREMENTS_FILE, PYPROJECT_FILE,
                                                      "setup.py"))


def project_above(folder: Path) -> Path | None:
    """The nearest folder above `folder` that is a project (a subfolder of a project's
    code, say), up to the user's home or the root; None when there is none."""
    home = Path.home()
    for parent in folder.resolve().parents:
        if parent in (home, Path(parent.anchor)):
            return None
        if is_project_folder(parent):
            return parent
    return None


def project_image_above(folder: Path) -> tuple[Path, str] | None:
    """The project folder above `folder` and its image (NAME:latest, IMAGE when it cannot
    be read); None when there is none, or it is dlbox's own checkout (its notebooks/, say),
    whose image and project are dlbox's own."""
    from dlbox.container.run import BUILTIN_IMAGE

    above = project_above(folder)
    if above is None:
        return None
    try:
        name = f"{detect_project(above).image_name}:latest"
    except DlboxError:
        name = "IMAGE"
    return None if name == BUILTIN_IMAGE else (above, name)


def detect_project(project_dir: str | Path | None = None,
                   extras: tuple[str, ...] | None = None) -> Project:
    """Read the project in `project_dir` (None: the built-in dlbox project)."""
    builtin = project_dir is None
    root = builtin_project_dir() if project_dir is None \
        else expand_user(project_dir).resolve()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise UsageError(f"project folder {root} {what}",
                         hint="pass the folder holding requirements.txt or pyproject.toml")
    if not builtin and is_dlbox_tree(root):  # a dlbox checkout, this one or another
        builtin = True
    pyproject_path = root / PYPROJECT_FILE
    requirements_path = root / REQUIREMENTS_FILE
    has_setup_py = (root / SETUP_PY_FILE).is_file()
    has_requirements_txt = requirements_path.is_file()
    if not pyproject_path.is_file() and not has_requirements_txt:
        for path in (requirements_path, pyproject_path):  # there, but not as a file
            if path.is_symlink() and not path.exists():
                raise UsageError(f"{path} is a link to nothing ({os.readlink(path)})",
                                 hint=f"point it at the real {path.name}, or replace it with "
                                      "the file")
            if path.is_dir():
                raise UsageError(f"{path} is a folder, not a file",
                                 hint=f"{path.name} must be a file; rename the folder")
        if has_setup_py:
            raise _setup_py_only_error(root)
        foreign = foreign_project_error(root)
        if foreign is not None:
            raise foreign
        raise UsageError(
            f"{root} has neither {REQUIREMENTS_FILE} nor {PYPROJECT_FILE}",
            hint="add a requirements.txt listing what the code imports (one package a line); "
                 + ("for the built-in dlbox project, run dlbox image build without PROJECT_DIR "
                    "in a folder that is not a project" if _builtin_root() is not None else
                    "for the built-in dlbox project, pass the folder of a dlbox checkout: "
                    f"{builtin_build_command()}"),
        )
    requirements: list[str] = []
    options: list[str] = []
    notes: list[str] = []
    for conda in ("environment.yml", "environment.yaml"):  # repo2docker would take it first
        if (root / conda).is_file():
            source = REQUIREMENTS_FILE if has_requirements_txt else PYPROJECT_FILE
            notes.append(f"{conda} (conda's) is not read: the image gets the packages of "
                         f"{source} (list there those of {conda} it needs)")
    name, version, requires_python = root.name, None, None
    installable = False
    build_requires: tuple[str, ...] = ()
    command: tuple[str, ...] = ("python3",)
    project_table: dict[str, Any] = {}
    static_dependencies = False  # [project] dependencies given, not dynamic
    if pyproject_path.is_file():
        where = PYPROJECT_FILE
        data = _load_toml(pyproject_path)
        project_table = _toml_table(data.get("project"), where, "[project]",
                                    '[project] name = "mypkg"')
        build_system = _toml_table(data.get("build-system"), where, "[build-system]",
                                   '[build-system] requires = ["setuptools>=61"]')
        if project_table:
            notes += _unknown_project_keys(project_table, build_system.get("build-backend"),
                                           where)
            name = _toml_string(project_table.get("name"), where, "[project] name",
                                'name = "mypkg"') or name
            version = _toml_string(project_table.get("version"), where, "[project] version",
                                   'version = "1.0"')
            requires_python = _toml_string(project_table.get("requires-python"), where,
                                           "[project] requires-python",
                                           'requires-python = ">=3.10"')
            dynamic = set(_toml_strings(project_table.get("dynamic"), where,
                                        "[project] dynamic", 'dynamic = ["version"]'))
            dependencies = _toml_strings(project_table.get("dependencies"), where,
                                         "[project] dependencies",
                                         'dependencies = ["numpy>=1.24", "rich"]')
            static_dependencies = ("dependencies" in project_table
                                   and "dependencies" not in dynamic)
            optional = _toml_table(project_table.get("optional-dependencies"), where,
                                   "[project.optional-dependencies]",
                                   '[project.optional-dependencies] plot = ["matplotlib"]')
            for extra, lines in optional.items():
                _toml_strings(lines, where, f"[project.optional-dependencies] {extra}",
                              f'{extra} = ["matplotlib>=3.8"]')
        poetry = _poetry_dependencies(data)
        if poetry and not static_dependencies and not has_requirements_txt:
            raise UsageError(
                f"{pyproject_path.name} lists its dependencies in [tool.poetry.dependencies] "
                f"({', '.join(poetry[:3])}{', ...' if len(poetry) > 3 else ''}), which dlbox "
                f"does not read: it reads PEP 621 [project] dependencies or a "
                f"{REQUIREMENTS_FILE}",
                hint="export them next to it: poetry export -f requirements.txt -o "
                     "requirements.txt --without-hashes (Poetry 2: poetry self add "
                     "poetry-plugin-export first)",
            )
        if project_table:
            if "dependencies" in dynamic and not has_requirements_txt:
                raise UsageError(
                    f"{pyproject_path.name} declares its dependencies as dynamic, which dlbox "
                    "cannot read without running the build backend",
                    hint="add a requirements.txt next to it listing the dependencies",
                )
            requirements += [normalize_requirement(line, where) for line in dependencies]
            if extras is None and builtin and "notebook" in optional:
                extras = ("notebook",)  # `dlbox notebook --container` runs in this image
            requirements += _expand_extras(name, optional, tuple(extras or ()), where)
        if project_table or build_system or has_setup_py:
            installable = True
            build_requires = tuple(_toml_strings(
                build_system.get("requires"), where, "[build-system] requires",
                'requires = ["setuptools>=61", "wheel"]') or DEFAULT_BUILD_REQUIRES)
        _refuse_pyproject_credentials(pyproject_path, requirements + list(build_requires))
        if project_table:  # after the checks of its fields, which name a worse fault
            _refuse_missing_name_or_version(project_table, dynamic, where)
    elif has_setup_py:
        installable, build_requires = True, DEFAULT_BUILD_REQUIRES
    if has_setup_py and not has_requirements_txt and not project_table:
        raise _setup_py_only_error(root)  # a pyproject.toml with only [build-system] / [tool]
    if extras and not project_table:
        raise UsageError("--extras needs a pyproject.toml with [project.optional-dependencies]",
                         hint="leave --extras out for a requirements.txt project")
    if has_requirements_txt:
        more, options = read_requirements_file(requirements_path, root, notes=notes)
        requirements += more
    if has_setup_py and not static_dependencies:
        # setuptools installs what install_requires lists; `pip install --no-deps .` in the
        # image does not, so they join the lock, as pip would have fetched them.
        found, note = setup_py_requirements(root / SETUP_PY_FILE)
        where = f"{SETUP_PY_FILE} install_requires"
        for line in found or ():
            refuse_url_credentials(line, where)
            requirements.append(normalize_requirement(line, where))
        if note:
            notes.append(note)
    if builtin:
        command = ("dlbox", "--help")
    system_packages = read_apt_file(root / APT_FILE)
    if not builtin:
        notes += other_tools_notes(root, REQUIREMENTS_FILE if has_requirements_txt
                                   else PYPROJECT_FILE, system_packages)
    kind = "builtin" if builtin else ("pyproject" if project_table else "requirements")
    return Project(
        root=root,
        name=name,
        version=str(version) if version is not None else None,
        kind=kind,
        requirements=tuple(sorted(set(requirements))),
        build_requirements=tuple(sorted({normalize_requirement(line, "[build-system]")
                                         for line in build_requires})),
        installable=installable,
        requires_python=requires_python,
        pip_options=tuple(dict.fromkeys(options)),
        include=BUILTIN_INCLUDE if builtin else None,
        extras=tuple(extras or ()),
        command=command,
        notes=tuple(notes),
        system_packages=system_packages,
        python_requests=() if builtin else python_requests(root),
    )
