"""What goes into an image: the project folder, its requirements, and how to install it.

A project is a folder with a `pyproject.toml` ([project].dependencies, optional extras) and/or
a `requirements.txt`. The built-in project is dlbox itself (its source checkout: pyproject,
README, src/, notebooks/). Reading is static: nothing of the project is imported or run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlbox.errors import ContainerError, UsageError

REQUIREMENTS_FILE = "requirements.txt"
PYPROJECT_FILE = "pyproject.toml"
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
# The userinfo of a URL (scheme://user:password@host, scheme://token@host): up to the last @
# before the path, so a password holding an @ is caught (and redacted) whole.
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^\s/?#]+)@")


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
    """A packaging Requirement, or ContainerError naming the file and line."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(line)
    except InvalidRequirement as error:
        raise ContainerError(
            f"{where}: {redact_url_credentials(line)!r} is not a valid requirement "
            f"({redact_url_credentials(str(error))})",
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


# ---- credentials in URLs ---------------------------------------------------------------------

def has_url_credentials(text: str) -> bool:
    """Whether a URL in `text` carries credentials (user:password@ or token@)."""
    for match in _URL_USERINFO.finditer(text):
        if match.group(1).lower().endswith("ssh") and ":" not in match.group(2):
            continue  # git+ssh://git@host: a login name; the key is not in the URL
        return True
    return False


def redact_url_credentials(text: str) -> str:
    """`text` with the userinfo of every URL replaced by ***."""
    return _URL_USERINFO.sub(lambda match: f"{match.group(1)}://***@", text)


def refuse_url_credentials(line: str, where: str) -> None:
    """ContainerError when `line` (which would reach the Dockerfile or the lock) has a URL
    with credentials: the image's history would keep them."""
    if has_url_credentials(line):
        from_env = "${" in line  # pip's ${VAR}: the value would need a build arg, kept in history
        raise ContainerError(
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
        match = _URL_USERINFO.search(line)
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


def _split_option(line: str) -> tuple[str, str | None]:
    if "=" in line.split()[0] and line.startswith("--"):
        option, value = line.split("=", 1)
        return option, value.strip()
    parts = line.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else None)


def read_requirements_file(path: Path, project_root: Path,
                           _seen: frozenset[Path] = frozenset()) -> tuple[list[str], list[str]]:
    """(requirement lines, pip options) of a requirements file, following `-r` includes.

    The project itself (`.`, `-e .`) is skipped: it is installed with the code. Options pip
    would need a local path for, constraints files and editable installs of other folders
    raise ContainerError naming the line.
    """
    path = path.resolve()
    if path in _seen:
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ContainerError(f"cannot read {path}: {error.strerror}",
                             hint="check the -r include path in your requirements file") from None
    requirements: list[str] = []
    options: list[str] = []
    for number, line in _logical_lines(text):
        where = f"{path.name}:{number}"
        refuse_url_credentials(line, where)
        if line.startswith("-"):
            option, value = _split_option(line)
            if option in ("-r", "--requirement"):
                if not value:
                    raise ContainerError(f"{where}: -r needs a file name",
                                         hint="e.g. -r requirements-base.txt")
                more, more_options = read_requirements_file(path.parent / value, project_root,
                                                             _seen | {path})
                requirements += more
                options += more_options
            elif option in ("-e", "--editable"):
                if value and (path.parent / value).resolve() == project_root.resolve():
                    continue  # the project itself: installed after the code is copied
                raise ContainerError(
                    f"{where}: editable install of {value!r} is not supported in an image",
                    hint="list the package as a normal requirement, or make it part of the "
                         "project folder",
                )
            elif option in ("-c", "--constraint"):
                raise ContainerError(
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
                    raise ContainerError(f"{where}: {option} needs a value",
                                         hint=f"e.g. {option} https://example.org/simple")
                if canonical == "--find-links" and "://" not in value:
                    raise ContainerError(
                        f"{where}: --find-links {value} is a local folder, which the image "
                        "build cannot see",
                        hint=f"pass it to the build instead: dlbox image build --wheelhouse "
                             f"{value}",
                    )
                options.append(f"{canonical}={value}")
            else:
                raise ContainerError(f"{where}: pip option {option} is not supported here",
                                     hint="remove it from the requirements file")
            continue
        requirement = re.split(r"\s+--hash[= ]", line)[0].strip()  # dlbox re-pins anyway
        if requirement in (".", "./") or (
            requirement.startswith((".", "/")) and (path.parent / requirement).resolve()
            == project_root.resolve()
        ):
            continue
        if requirement.startswith((".", "/", "file:")):
            raise ContainerError(
                f"{where}: local path requirement {requirement!r} is not supported",
                hint="build a wheel of it into a folder and pass --wheelhouse DIR, then "
                     "require it by name",
            )
        requirements.append(normalize_requirement(requirement, where))
    return requirements, options


# ---- pyproject.toml --------------------------------------------------------------------------

def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ContainerError(f"{path} is not valid TOML: {error}",
                             hint="fix the file (python -m tomllib checks it)") from None


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


def _builtin_root() -> Path | None:
    import dlbox

    root = Path(dlbox.__file__).resolve().parents[2]
    pyproject = root / PYPROJECT_FILE
    if not pyproject.is_file():
        return None
    name = (_load_toml(pyproject).get("project") or {}).get("name")
    return root if name and normalize_name(name) == "dlbox" else None


def builtin_project_dir() -> Path:
    root = _builtin_root()
    if root is None:
        raise ContainerError(
            "the built-in project needs dlbox's source checkout, and this dlbox is installed "
            "without one",
            hint="pass the folder of a dlbox checkout (git clone ...) as PROJECT_DIR",
        )
    return root


def default_project_dir(cwd: Path | None = None) -> Path | None:
    """The project `dlbox image build` takes without PROJECT_DIR: the current folder when it
    is a project (requirements.txt, pyproject.toml or setup.py in it), as Cog and
    repo2docker do; else None, the built-in project."""
    folder = Path.cwd() if cwd is None else cwd
    markers = (REQUIREMENTS_FILE, PYPROJECT_FILE, "setup.py")
    return folder if any((folder / name).is_file() for name in markers) else None


def detect_project(project_dir: str | Path | None = None,
                   extras: tuple[str, ...] | None = None) -> Project:
    """Read the project in `project_dir` (None: the built-in dlbox project)."""
    builtin = project_dir is None
    root = builtin_project_dir() if project_dir is None \
        else Path(project_dir).expanduser().resolve()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise UsageError(f"project folder {root} {what}",
                         hint="pass the folder holding requirements.txt or pyproject.toml")
    if not builtin and root == _builtin_root():
        builtin = True
    pyproject_path = root / PYPROJECT_FILE
    requirements_path = root / REQUIREMENTS_FILE
    has_setup_py = (root / "setup.py").is_file()
    if not pyproject_path.is_file() and not requirements_path.is_file():
        raise ContainerError(
            f"{root} has neither {REQUIREMENTS_FILE} nor {PYPROJECT_FILE}",
            hint="add a requirements.txt listing what the code imports (one package a line), "
                 "or leave PROJECT_DIR out for the built-in dlbox project",
        )
    requirements: list[str] = []
    options: list[str] = []
    name, version, requires_python = root.name, None, None
    installable = False
    build_requires: tuple[str, ...] = ()
    command: tuple[str, ...] = ("python3",)
    project_table: dict[str, Any] = {}
    if pyproject_path.is_file():
        data = _load_toml(pyproject_path)
        project_table = data.get("project") or {}
        build_system = data.get("build-system")
        if project_table:
            name = str(project_table.get("name") or name)
            version = project_table.get("version")
            requires_python = project_table.get("requires-python")
            dynamic = set(project_table.get("dynamic") or ())
            if "dependencies" in dynamic and not requirements_path.is_file():
                raise ContainerError(
                    f"{pyproject_path.name} declares its dependencies as dynamic, which dlbox "
                    "cannot read without running the build backend",
                    hint="add a requirements.txt next to it listing the dependencies",
                )
            where = PYPROJECT_FILE
            requirements += [normalize_requirement(line, where)
                             for line in project_table.get("dependencies") or ()]
            optional = project_table.get("optional-dependencies") or {}
            if extras is None and builtin and "notebook" in optional:
                extras = ("notebook",)  # `dlbox notebook --container` runs in this image
            requirements += _expand_extras(name, optional, tuple(extras or ()), where)
        if project_table or build_system:
            installable = True
            build_requires = tuple((build_system or {}).get("requires") or DEFAULT_BUILD_REQUIRES)
        _refuse_pyproject_credentials(pyproject_path, requirements + list(build_requires))
    elif has_setup_py:
        installable, build_requires = True, DEFAULT_BUILD_REQUIRES
    if extras and not project_table:
        raise UsageError("--extras needs a pyproject.toml with [project.optional-dependencies]",
                         hint="leave --extras out for a requirements.txt project")
    if requirements_path.is_file():
        more, options = read_requirements_file(requirements_path, root)
        requirements += more
    if builtin:
        command = ("dlbox", "--help")
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
    )
