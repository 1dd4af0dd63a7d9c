"""Resolving every pin inside the image (`pip install --dry-run --report` in the build's
`venv` stage), and reading pip's output when that fails: which requirement has no version,
which package failed to build and why, which pins conflict. The engine only through
`container.engine`."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlbox.container import engine
from dlbox.container.context import Distribution
from dlbox.container.engine import Log
from dlbox.container.lock import marker_environment
from dlbox.container.pipout import missing_tool_hint, proxy_failure_hint, source_build_failure
from dlbox.container.project import Project, normalize_name, requirement_name
from dlbox.errors import ContainerError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

RESOLVE_TIMEOUT_S = 900
RESOLVE_DIR = "/tmp/dlbox-resolve"
PROXY_BUILDARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                   "no_proxy")


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
    if missing is not None and (proxy := proxy_failure_hint(said.splitlines())) is not None:
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
    hint = (missing_tool_hint((captured.stderr + "\n" + captured.stdout).splitlines())
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
