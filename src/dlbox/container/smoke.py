"""The smoke test every build ends with, run inside the new image.

The check itself is `templates/smoke_check.py`, a stdlib-only script the image's own Python
runs: import the framework, check it is the pinned build, run a small conv net forward; with
a GPU attached, check it is visible, run a matmul and a conv on it and check the build's arch
list covers the device; for a project other than dlbox, compile every .py file of its code
(never running it) and import the package it installs, if any; last, `pip check` of the
image's venv (`pip_check`: a requirement that no installed version meets fails the build,
with pip's report). Here: run it, read its one JSON line, and turn failures into a
ContainerError that names the failed check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from dlbox.container import engine
from dlbox.container.project import FRAMEWORK_COMPANIONS
from dlbox.container.render import load_template
from dlbox.container.spec import WORKDIR, ImageSpec
from dlbox.errors import ContainerError

SMOKE_TIMEOUT_S = 300
MARKER = "DLBOX_SMOKE "


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    framework: str
    version: str | None
    python: str | None
    gpu: bool
    checks: tuple[SmokeCheck, ...]
    raw: dict[str, Any]

    @property
    def failures(self) -> tuple[SmokeCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def summary(self) -> str:
        where = "GPU" if self.gpu else "CPU"
        if self.ok:
            return (f"smoke test passed on {where}: {self.framework} {self.version}, "
                    f"Python {self.python}, {len(self.checks)} checks")
        failed = "; ".join(f"{c.name}: {c.detail}" for c in self.failures)
        return f"smoke test failed on {where}: {failed}"


def smoke_script() -> str:
    return load_template("smoke_check.py")


def smoke_environment(spec: ImageSpec, gpu: bool, compile_sources: bool = True
                      ) -> dict[str, str]:
    builtin = spec.project_kind == "builtin"
    imports = "dlbox,dlbox.cli" if builtin else ""
    return {
        "DLBOX_SMOKE_FRAMEWORK": spec.framework.name,
        "DLBOX_SMOKE_VERSION": spec.framework.version,
        "DLBOX_SMOKE_CUDA": spec.framework.cuda or "" if spec.framework.name == "torch" else "",
        "DLBOX_SMOKE_GPU": "1" if gpu else "0",
        "DLBOX_SMOKE_IMPORTS": imports,
        # torchvision and the like, when installed: one built for another variant or version
        # of the framework fails to import (its operators do not register), and pip check
        # does not see it (review: PyPI's CUDA torchvision beside torch+cpu passed).
        "DLBOX_SMOKE_COMPANIONS": ",".join(FRAMEWORK_COMPANIONS.get(spec.framework.name, ())),
        # Another project's code is checked too, without running it: a syntax error in any of
        # its files, or an installed package that does not import (a dependency left out of
        # its requirements), fails the build instead of the image's first run.
        "DLBOX_SMOKE_SOURCES": "" if builtin or not compile_sources else WORKDIR,
        # Only a [project] name is the installed distribution's; a setup.py project is named
        # after its folder here, which its distribution need not be.
        "DLBOX_SMOKE_DIST": (spec.project_name if spec.project_kind == "pyproject"
                             and spec.install_project else ""),
    }


def parse_smoke_output(stdout: str, stderr: str = "", exit_code: int = 0) -> SmokeResult:
    """The result line of the script; a missing line means the script itself crashed."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER):])
            checks = tuple(SmokeCheck(c["name"], bool(c["ok"]), str(c.get("detail", "")))
                           for c in data.get("checks", ()))
            return SmokeResult(
                ok=bool(data.get("ok")) and exit_code == 0,
                framework=str(data.get("framework", "?")),
                version=data.get("version"),
                python=data.get("python"),
                gpu=bool(data.get("gpu")),
                checks=checks,
                raw=data,
            )
    tail = (stderr or stdout).strip().splitlines()[-3:]
    detail = " / ".join(tail) or f"exit code {exit_code}, no output"
    return SmokeResult(False, "?", None, None, False,
                       (SmokeCheck("run", False, detail),), {})


def run_smoke(client: Any, image: str, spec: ImageSpec, gpu: bool,
              gpus: engine.GpuRequest | None = None, compile_sources: bool = True
              ) -> SmokeResult:
    """Run the smoke test in `image`; the GPU checks only when `gpu` (a GPU is attached)."""
    request = engine.RunRequest(
        image=image,
        command=("python", "-c", smoke_script()),
        environment=tuple(sorted(smoke_environment(spec, gpu, compile_sources).items())),
        gpus=(gpus or engine.GpuRequest(count=-1)) if gpu else None,
        network="none",
    )
    captured = engine.run_captured(client, request, timeout=SMOKE_TIMEOUT_S)
    return parse_smoke_output(captured.stdout, captured.stderr, captured.exit_code)


def require_smoke_ok(result: SmokeResult, image: str, deps: str | None = None,
                     wheel_index: str | None = None) -> None:
    """Raise when the smoke test failed; `image`: the image's id, or the tag it is kept
    under for a look (NAME:TAG-failed); `deps`: the tag its dependency stage is kept under
    (NAME:TAG-failed-deps), named too (review: a 1.27 GB image nothing mentioned);
    `wheel_index`: the framework's own wheel index, named when a companion's build does not
    match the framework's."""
    if not result.ok:
        tagged = ":" in image and not image.startswith("sha256:")
        short = image if tagged else image[:19]
        look = f"docker run --rm -it {short} bash"
        if any(check.name == "pip_check" for check in result.failures):
            look = f"docker run --rm {short} pip check"
        # Only when compiling was all that failed: another failure (pip check, say) must
        # be shown too, and then the image is kept for a look.
        for check in result.failures if all(
                c.name == "project_sources" for c in result.failures) else ():
            # "AssertionError: train.py:3: invalid syntax (<string>:210)": the file and line
            # are the project's; the exception's type and the script's line are noise.
            detail = re.sub(r"^AssertionError: | \([^()]*:\d+\)$", "", check.detail)
            kept = (f"; its dependency stage is kept as {deps} for that, until a build "
                    "passes" if deps else "")
            raise ContainerError(
                f"the project's code does not compile: {detail}",
                hint=f"fix that file and build again (only the code layer is rebuilt{kept}), "
                     "leave it out of the image in the project's .dockerignore, or, for files "
                     "that are not meant to compile (templates, Python 2), build with "
                     "--no-compile-check",
            )
        missing = sorted({match.group(1) for check in result.failures
                          if check.name.startswith("import ")
                          and (match := _NO_MODULE.match(check.detail))
                          # not the module imported itself: the project's own, left out
                          and match.group(1) != check.name.split()[1].split(".")[0]})
        fix = (f"add the package that provides {' and '.join(missing)} to the project's "
               "requirements (or build with --extras NAME, for an optional group that lists "
               "it), then build again; " if missing else "")
        for companion in sorted({match.group(1) for check in result.failures
                                 if (match := _OTHER_BUILD.search(check.detail))}):
            # PyPI's torchvision is a CUDA build: beside torch+cpu its operators are missing
            local = (result.version or "").partition("+")[2]
            build = f" (its +{local} build)" if local else ""
            pin = f"{companion}==VERSION+{local}" if local else f"{companion}==VERSION"
            index = f", {wheel_index}" if wheel_index else ""
            fix += (f"{companion} does not match {result.framework}'s build "
                    f"({result.framework} {result.version or '?'}): it likely came from PyPI, "
                    f"because the build could not reach the framework's index{index}; put "
                    f"the matching {companion} wheel{build} into --wheelhouse DIR, or pin it "
                    f"({pin}), then build again; ")
        if any(check.name.startswith("commands of ") for check in result.failures):
            fix += ("bring those modules into the image (a .dockerignore line that leaves "
                    "their folder out, or a package the project's build does not include), "
                    "then build again; ")
        if not tagged:
            kept = f"the image is kept untagged as {short} for a look"
        elif deps:
            kept = (f"the image is kept as {short} for a look, its dependency stage as {deps} "
                    "(the next build replaces them)")
        else:
            kept = f"the image is kept as {short} for a look (the next build replaces it)"
        raise ContainerError(
            f"the new image fails its smoke test: {result.summary().split(': ', 1)[-1]}",
            hint=f"{fix}{kept}: {look}",
        )


# An import check's failure for a module the image lacks (not the project's own: a
# dependency missing from its requirements): its top-level name.
_NO_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([\w]+)")
# A companion built for another variant of the framework (CUDA's torchvision beside
# torch+cpu): its compiled operators do not load.
_OTHER_BUILD = re.compile(r"operator (torchvision|torchaudio)::\w+ does not exist")
