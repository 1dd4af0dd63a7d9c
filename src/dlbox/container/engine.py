"""A thin wrapper on the Docker SDK: connect, build with progress, run with GPUs and mounts.

Everything that talks to the engine is here, behind small named functions that raise
ContainerError / HostEnvError with a hint instead of the SDK's exceptions. No policy lives
here (which GPUs, which user, what to mount): callers decide, this module does.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlbox.container.pipout import (
    build_reason,
    missing_tool_hint,
    proxy_failure_hint,
    source_build_failure,
)
from dlbox.errors import ContainerError, HostEnvError
from dlbox.hostenv.probe import UNREACHABLE_FIXES, docker_host, unreachable_cause
from dlbox.processes import detach_from_terminal, handling, hangup
from dlbox.text import plain

DEFAULT_TIMEOUT_S = 60  # API calls other than builds and log streams (those have none)
STOP_TIMEOUT_S = 30  # `docker stop` grace before SIGKILL: time to save a checkpoint

EventCallback = Callable[[str, dict[str, Any]], None]
Log = Callable[[str], None]  # where a step's lines go (print, a file, a notebook cell)


# ---- connecting -------------------------------------------------------------------------------

def engine_error(error: BaseException) -> ContainerError:
    """The engine could not be reached: say why in one line and how to fix it."""
    text = str(error)
    host = docker_host()
    cause = unreachable_cause(text)
    if cause == "no permission":
        message = f"no permission to use the Docker engine at {host}"
    elif cause == "not running":
        message = f"the Docker engine is not running: no socket at {host}"
    else:
        reason = text.splitlines()[0][:200] if text else type(error).__name__
        message = f"cannot reach the Docker engine at {host}: {reason}"
    return ContainerError(message, hint=UNREACHABLE_FIXES[cause])


def connect(timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """A docker.DockerClient that answered a ping; ContainerError (with a hint) if none."""
    try:
        import docker
    except ImportError:
        raise ContainerError("the docker SDK for Python is not installed",
                             hint="pip install docker") from None
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as error:  # noqa: BLE001 - DockerException, requests errors, OSError
        raise engine_error(error) from None
    return client


def is_local_engine() -> bool:
    """True when the engine runs on this machine (host paths and host GPUs are its own)."""
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


def api_error_text(error: BaseException) -> str:
    explanation = getattr(error, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error).strip()


# ---- images -----------------------------------------------------------------------------------

def inspect_image(client: Any, name: str) -> dict[str, Any] | None:
    """The image's inspect data, or None when the engine does not have it."""
    import docker

    try:
        return client.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as error:
        if getattr(error, "status_code", None) == 404:
            return None
        raise ContainerError(f"cannot inspect image {name}: {api_error_text(error)}") from None


def image_labels(data: dict[str, Any] | None) -> dict[str, str]:
    """The labels of an image `inspect_image` described ({} for none, or no image)."""
    return ((data or {}).get("Config") or {}).get("Labels") or {}


def image_digest(data: dict[str, Any] | None) -> str | None:
    """The registry digest of an image ("sha256:..."), when it came from a registry."""
    for ref in (data or {}).get("RepoDigests") or ():
        if "@" in ref:
            return ref.split("@", 1)[1]
    return None


@dataclass(frozen=True)
class BuildStep:
    number: int
    total: int
    instruction: str  # "RUN pip install ..." (first line)
    cached: bool
    seconds: float


@dataclass
class BuildResult:
    image_id: str
    steps: list[BuildStep] = field(default_factory=list)
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def cached_steps(self) -> int:
        return sum(step.cached for step in self.steps)


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]+)")


def build(
    client: Any,
    context_tar: Path,
    *,
    tag: str | None = None,
    target: str | None = None,
    nocache: bool = False,
    buildargs: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    on_event: EventCallback | None = None,
    project: str | None = None,
    log: list[str] | None = None,
) -> BuildResult:
    """Build from a context archive; stream progress to `on_event(kind, data)`.

    Kinds: "step" (a Dockerfile step starts: number, total, instruction), "cached" (that step
    came from the cache), "output" (a line the step printed), "pull" (base image pull).
    ContainerError with the failing step and the engine's message when the build fails
    (`project`: the name of the project whose install step it may be). `log`: a list the
    build's output lines go into as they come (BuildResult.log), kept when the build fails.
    """
    import docker

    emit = on_event or (lambda kind, data: None)
    result = BuildResult(image_id="", log=log if log is not None else [])
    start = time.monotonic()
    current: dict[str, Any] | None = None

    def close_step() -> None:
        if current is not None:
            result.steps.append(BuildStep(current["number"], current["total"],
                                          current["instruction"], current["cached"],
                                          round(time.monotonic() - current["start"], 3)))

    try:
        with open(context_tar, "rb") as context:
            stream = client.api.build(
                fileobj=context, custom_context=True, tag=tag, target=target, nocache=nocache,
                rm=True, forcerm=True, pull=False, decode=True, buildargs=buildargs or None,
                labels=labels or None, timeout=None,
            )
            for event in stream:
                if "error" in event:
                    close_step()
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise build_error(detail.strip(), current, result.log, project)
                if "aux" in event and isinstance(event["aux"], dict) and event["aux"].get("ID"):
                    result.image_id = event["aux"]["ID"]
                if "status" in event:
                    emit("pull", {"status": event["status"], "id": event.get("id")})
                text = event.get("stream")
                if not text:
                    continue
                for line in map(plain, text.splitlines()):  # no colours in dlbox's output
                    if not line.strip():
                        continue
                    result.log.append(line)
                    step = _STEP.match(line)
                    if step:
                        close_step()
                        current = {"number": int(step.group(1)), "total": int(step.group(2)),
                                   "instruction": step.group(3).strip(), "cached": False,
                                   "start": time.monotonic()}
                        emit("step", dict(current))
                    elif line.strip() == "---> Using cache" and current is not None:
                        current["cached"] = True
                        emit("cached", dict(current))
                    elif _BUILT.match(line) and not result.image_id:
                        result.image_id = _BUILT.match(line).group(1)  # type: ignore[union-attr]
                    elif not line.startswith(" ---> ") and not line.startswith(
                            "Removing intermediate container"):
                        emit("output", {"line": line})
    except ContainerError:
        raise
    except docker.errors.APIError as error:
        raise build_error(api_error_text(error), current, result.log, project) from None
    except Exception as error:  # noqa: BLE001 - connection dropped mid-build
        if "docker" in type(error).__module__ or isinstance(error, OSError):
            raise engine_error(error) from None
        raise
    close_step()
    if not result.image_id:
        raise ContainerError("the engine finished the build without an image id",
                             hint="run the build again; `docker system df` shows free space")
    result.seconds = round(time.monotonic() - start, 3)
    return result


_APT_MISSING = (
    re.compile(r"Unable to locate package ([^\s\x1b]+)"),
    re.compile(r"Package '([^']+)' has no installation candidate"),
    re.compile(r"Version '([^']+)' for '([^']+)' was not found"),
)


def apt_missing(log: Sequence[str]) -> str | None:
    """The apt.txt entry apt could not find ("libfoo", "curl=9.9"), from the build's output."""
    for line in reversed(log):
        for pattern in _APT_MISSING:
            match = pattern.search(line)
            if match and match.lastindex == 2:
                return f"{match.group(2)}={match.group(1)}"
            if match:
                return match.group(1)
    return None


_APT_UNREACHABLE = re.compile(r"Temporary failure resolving '[^']+'|Could not resolve '[^']+'"
                              r"|Could not connect to [^\s]+|Failed to fetch \S+")


def apt_unreachable(log: Sequence[str]) -> str | None:
    """apt's words when it could not reach a mirror ("Temporary failure resolving
    'deb.debian.org'"), from the build's output; None when it could."""
    for line in log:
        match = _APT_UNREACHABLE.search(line)
        if match:
            return match.group(0)
    return None


# Where the project's own install step (templates/install_project.Dockerfile) copies it.
PROJECT_INSTALL_DIR = "/tmp/dlbox-project"
DISK_FULL_HINT = "the engine's disk is full: docker system prune, or free space"


def build_error(message: str, step: dict[str, Any] | None, log: Sequence[str],
                project: str | None = None) -> ContainerError:
    """The error of a failed build step: what failed, why, and the fix. `project` names the
    project (as its user knows it) whose own install step may be the one that failed."""
    where = (f" at step {step['number']}/{step['total']} ({step['instruction'][:70]})"
             if step else "")
    # the failing step's output (a RUN pip install of the deps stage, the project's install)
    step_log = log[max((i for i, line in enumerate(log) if _STEP.match(line)), default=0):]
    step_text = "\n".join(step_log)
    disk_full = "no space left" in f"{message}\n{step_text}".lower()
    if step is not None and PROJECT_INSTALL_DIR in step["instruction"]:
        # the project's own code: no wheel to look for, no version to pin
        said, _ = build_reason(step_text)
        shown = "".join(f"\n  {line}" for line in said) or f" {message}"
        named = f"the project {project}" if project else "the project"
        return ContainerError(
            f"image build failed at step {step['number']}/{step['total']}: installing "
            f"{named} failed:{shown}",
            hint=DISK_FULL_HINT if disk_full else (
                missing_tool_hint(step_log)
                or "fix the project's build (its pyproject.toml or setup.py) for the reason "
                   "above; where it needs a system library or tool, add its Debian package to "
                   "the project's apt.txt"))
    failed = source_build_failure(step_text)
    if disk_full:  # before a source build's hint: its build ran out of disk
        return ContainerError(f"image build failed{where}: {failed[0] if failed else message}",
                              hint=DISK_FULL_HINT)
    unreachable = apt_unreachable(log[-40:])
    if step is not None and step["instruction"].startswith("RUN apt-get") and unreachable:
        # Then every package is "unable to locate": the network, not apt.txt, is the cause.
        return ContainerError(
            f"image build failed{where}: apt could not reach its package mirrors "
            f"({unreachable})",
            hint="check the engine's network and proxy (HTTP_PROXY / HTTPS_PROXY reach the "
                 "build as build arguments), or use a base image that already has the "
                 "packages")
    if step is not None and step["instruction"].startswith("RUN apt-get") \
            and (package := apt_missing(log[-40:])) is not None:
        # apt's own words ("E: Unable to locate package x", exit code 100) do not say that
        # the name came from the project's apt.txt, which is where the fix goes.
        return ContainerError(
            f"image build failed: apt found no Debian package {package} (from the project's "
            "apt.txt) for the base image",
            hint="check the name and version in apt.txt (apt-cache search NAME, or "
                 "packages.debian.org / packages.ubuntu.com for the base image's release), "
                 "or remove the line")
    if failed is not None:  # which package, why, and the Debian package a compiler needs
        return ContainerError(f"image build failed{where}: {failed[0]}", hint=failed[1])
    hint = "the lines above show the failing command's output"
    lowered = message.lower()
    if ("pull access denied" in lowered or "manifest unknown" in lowered
            or "no such image" in lowered or "failed to resolve" in lowered
            or ("dial tcp" in lowered and "registry" in lowered)):
        # scripts/ is a checkout's: an installed dlbox has none
        hint = ("the base image is not on this machine and could not be pulled: pass "
                "--base-image with a local image (a dlbox checkout's "
                "scripts/build-base-image.sh builds one without a registry) or a registry "
                "mirror's")
    elif any("Could not find a version that satisfies" in line or "No matching distribution"
             in line for line in log[-40:]):
        # found nothing: because the proxy let pip reach no index, when pip says so
        hint = proxy_failure_hint(log[-40:]) or (
            "pip found no matching package: offline? pass --wheelhouse DIR holding the "
            "wheels, or --relock if the lock names versions that no longer exist")
    elif any("CERTIFICATE_VERIFY_FAILED" in line or "SSLError" in line for line in log[-40:]):
        hint = ("TLS to the package index failed: behind a TLS-intercepting proxy pass its CA "
                "with --ca-cert FILE")
    elif (tool := missing_tool_hint(log[-80:])) is not None:
        hint = tool
    return ContainerError(f"image build failed{where}: {message}", hint=hint)


def tag_image(client: Any, image_id: str, tags: Sequence[str]) -> None:
    import docker

    for tag in tags:
        repository, name = split_tag(tag)
        try:
            client.api.tag(image_id, repository, name, force=True)
        except docker.errors.APIError as error:
            raise ContainerError(f"cannot tag the image {image_id[:19]} as {tag}: "
                                 f"{api_error_text(error)}",
                                 hint=f"the image is built: docker tag {image_id[:19]} "
                                      "NAME:TAG names it by hand") from None
        except docker.errors.DockerException as error:
            raise engine_error(error) from None


def remove_replaced_image(client: Any, image_id: str, label: str | None, *,
                          prune: bool = True) -> str:
    """Remove an image that a new build took its tags from, if it is now untagged and carries
    `label` (dlbox built it: dlbox.project on an image, dlbox.stage on a deps stage; None:
    the tag alone says so), with (`prune`) the untagged parents that nothing else builds on,
    as `docker rmi` does: "removed", "in use" (a container, or an image, builds on it), or
    "kept" (tagged elsewhere, not dlbox's, or already gone), or "not removed": the engine did not
    answer in time, or the connection dropped (a warning, with the `docker rmi` to run later,
    is told: this is cleanup, which must not fail the build or the error it reports)."""
    import docker
    import requests

    data = inspect_image(client, image_id)
    if data is None or data.get("RepoTags") or (label is not None
                                                and label not in image_labels(data)):
        return "kept"
    try:
        client.api.remove_image(image_id, **({} if prune else {"noprune": True}))
    except docker.errors.APIError as error:
        if getattr(error, "status_code", None) == 409:
            return "in use"
        return "kept"
    except docker.errors.DockerException as error:
        raise engine_error(error) from None
    except (requests.exceptions.RequestException, OSError) as error:  # a ReadTimeout
        # A loaded engine took longer than the SDK's read timeout to delete gigabytes
        # (review: a 1.6 GB deps stage); it may still finish the removal by itself.
        from dlbox.text import tell

        short = image_id.removeprefix("sha256:")[:12]
        text = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        seconds = getattr(client.api, "timeout", None) or DEFAULT_TIMEOUT_S
        why = (f"the engine did not answer within {seconds:g} s"
               if "Timeout" in type(error).__name__ or "timed out" in text.lower() else text)
        # not only a replaced image comes here: a failed build's, one built for the wrong
        # Python (re-review), so the image is named by its id alone
        tell(f"warning: image {short} was not removed ({why}); "
             f"if `docker images -q {short}` still lists it, `docker rmi {short}` removes it")
        return "not removed"
    return "removed"


def split_tag(tag: str) -> tuple[str, str]:
    """("registry:5000/team/app", "v1") from "registry:5000/team/app:v1"; tag "latest" if none."""
    if ":" in tag.rsplit("/", 1)[-1]:
        repository, name = tag.rsplit(":", 1)
        return repository, name
    return tag, "latest"


# ---- containers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mount:
    source: str  # host path
    target: str  # path in the container
    read_only: bool = False


@dataclass(frozen=True)
class GpuRequest:
    """What `--gpus` asked for: all GPUs, a count, or device ids."""

    count: int | None = None  # -1 = all
    device_ids: tuple[str, ...] = ()

    def device_request(self) -> Any:
        import docker

        if self.device_ids:
            return docker.types.DeviceRequest(device_ids=list(self.device_ids),
                                              capabilities=[["gpu"]])
        return docker.types.DeviceRequest(count=self.count if self.count else -1,
                                          capabilities=[["gpu"]])

    def describe(self) -> str:
        if self.device_ids:
            return f"GPU {','.join(self.device_ids)}"
        return "all GPUs" if self.count in (None, -1) else f"{self.count} GPU(s)"


@dataclass(frozen=True)
class RunRequest:
    image: str
    command: tuple[str, ...] = ()
    gpus: GpuRequest | None = None
    shm_size: str | None = None
    mounts: tuple[Mount, ...] = ()
    user: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    name: str | None = None
    ports: tuple[tuple[int, int], ...] = ()  # (container port, host port)
    network: str | None = None
    init: bool = False  # the engine's init; our images carry tini as entrypoint already
    labels: tuple[tuple[str, str], ...] = ()
    stdin_open: bool = False  # the command reads our stdin (docker run -i)
    tty: bool = False  # the command gets a terminal (docker run -t)
    host_ip: str = "127.0.0.1"  # the host address that published ports listen on
    cap_drop: tuple[str, ...] = ()  # ("ALL",): no Linux capabilities
    no_new_privileges: bool = False  # setuid binaries cannot raise privileges


def _run_kwargs(request: RunRequest) -> dict[str, Any]:
    import docker

    kwargs: dict[str, Any] = {
        "image": request.image,
        "command": list(request.command) or None,
        "detach": True,
        "environment": dict(request.environment) or None,
        # Mounts, not `volumes` (Binds): the engine splits a bind string "src:dst:mode" at
        # each ':', so a host path holding one (a folder named "a:b") was refused; a Mount
        # passes source and target as separate fields. Unlike Binds it never creates a
        # missing source (as a root-owned folder): check_mount_sources says so first.
        "mounts": [docker.types.Mount(m.target, m.source, type="bind", read_only=m.read_only)
                   for m in request.mounts] or None,
        "labels": dict(request.labels) or None,
    }
    if request.gpus is not None:
        kwargs["device_requests"] = [request.gpus.device_request()]
    if request.shm_size:
        kwargs["shm_size"] = request.shm_size
    if request.user:
        kwargs["user"] = request.user
    if request.workdir:
        kwargs["working_dir"] = request.workdir
    if request.name:
        kwargs["name"] = request.name
    if request.ports:
        kwargs["ports"] = {f"{inner}/tcp": (request.host_ip, outer)
                           for inner, outer in request.ports}
    if request.network:
        kwargs["network"] = request.network
    if request.init:
        kwargs["init"] = True
    if request.stdin_open:
        kwargs["stdin_open"] = True
    if request.tty:
        kwargs["tty"] = True
    if request.cap_drop:
        kwargs["cap_drop"] = list(request.cap_drop)
    if request.no_new_privileges:
        kwargs["security_opt"] = ["no-new-privileges"]
    return {key: value for key, value in kwargs.items() if value is not None}


MISSING_SOURCE_HINT = "create it, or pass a folder that exists"
_MISSING_SOURCE = re.compile(r"bind source path does not exist: (.+)$", re.MULTILINE)


def check_mount_sources(request: RunRequest) -> None:
    """ContainerError naming a mount's host path that is missing or relative: a bind Mount
    needs its source to exist (the engine would refuse it with a longer message). Only a
    local engine's paths are ours to look at; a remote one's refusal is mapped by run_error."""
    for mount in request.mounts:
        if not os.path.isabs(mount.source):
            raise ContainerError(f"cannot mount {mount.source} at {mount.target}: not an "
                                 "absolute path", hint="pass the folder's full path")
        if is_local_engine() and not os.path.exists(mount.source):
            raise ContainerError(f"cannot mount {mount.source} at {mount.target}: it does not "
                                 "exist", hint=MISSING_SOURCE_HINT)


def shebang_interpreter(line: str) -> tuple[str, str]:
    """The interpreter a #! line names, as shown ("/usr/bin/python", "/usr/bin/env python2")
    and by its name ("python", "python2"): for `#!/usr/bin/env NAME` the one missing is NAME,
    not env (review)."""
    words = line[2:].split() or ["(none)"]
    if words[0].rsplit("/", 1)[-1] == "env":
        names = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        if names:
            return f"{words[0]} {names[0]}", names[0]
    return words[0], words[0].rsplit("/", 1)[-1]


class CommandNotRunnable(ContainerError):
    """The image cannot start the command (none by that name, or not executable): the exit
    code is the one a shell, and `docker run`, give: 127, or 126 for a file it may not run."""

    def __init__(self, command: str, why: str, image: str, project_in: str | None,
                 shebang: tuple[str, str] | None = None, *, folder: bool = False) -> None:
        """`project_in`: where a dlbox image keeps the project's files; None for an image
        dlbox did not build. `shebang`: the file's #! line and its path on this machine, for
        a script of the project (review: a missing interpreter, or a #! line with a CR at
        its end, was "there is no command ./x.py" though the file is there). `folder`: the
        command is a folder (the project's copy of it is one); a path ending in / is one too.
        tini ("exec /workspace/src failed: Permission denied") and runc (`exec: "/etc":
        permission denied`) say the same of a folder as of a file without the x bit, so the
        message alone cannot tell them apart."""
        self.exit_code = 126 if "permission denied" in why.lower() else 127
        if shebang is not None and self.exit_code == 127:
            line, here = shebang
            if line.endswith("\r"):
                super().__init__(f"{command} cannot start: its #! line ends in a carriage "
                                 "return (Windows line endings), so the interpreter looked "
                                 "for has a CR at the end of its name",
                                 hint=f"convert it to Unix line endings: sed -i 's/\\r$//' "
                                      f"{here} (or dos2unix {here}), and build again")
                return
            shown, name = shebang_interpreter(line)
            run_with = "python3" if "python" in name else name
            super().__init__(f"{command} starts with #!{shown}, an interpreter that is "
                             f"not in {image}",
                             hint=f"run it through one the image has (-- {run_with} "
                                  f"{command}), or change its #! line (#!/usr/bin/env "
                                  "python3) and build again")
            return
        if self.exit_code == 126 and (folder or command.endswith("/")):
            # review: a folder was told to run through python3 or sh, or to be chmod +x
            super().__init__(f"{command} is a folder in {image}, not a command ({why})",
                             hint=f"name a command to run instead: -- ls {command}, or -- "
                                  f"python3 {command.rstrip('/')}/main.py for a script in it")
        elif self.exit_code == 126:
            rebuild = ", or chmod +x it in the project and build again" if project_in else ""
            super().__init__(f"{command} is not executable in {image} ({why})",
                             hint=f"run it through its interpreter (-- python3 {command} or "
                                  f"-- sh {command}){rebuild}")
        elif project_in:
            super().__init__(f"there is no command {command} in {image} ({why})",
                             hint=f"check the name; the project's files are in {project_in} "
                                  "(-- ls), and programs its requirements install are on PATH")
        else:
            super().__init__(f"there is no command {command} in {image} ({why})",
                             hint="check the name: a program on the image's PATH, or the path "
                                  "of one in the image")


# runc, for an image without an init of its own to run the command (any image but dlbox's):
# `exec: "x": executable file not found in $PATH: unknown`, `exec: "/etc": permission denied`
_OCI_EXEC_FAILED = re.compile(r'exec: "(.+?)": (.+?)(?:: unknown)?$', re.MULTILINE)


def pull_hint(image: str) -> str:
    """The hint for a registry's image (a name with a registry or a namespace) not here."""
    return f"pull it: docker pull {image} (or check the name: docker images lists those here)"


def registry_image(image: str) -> bool:
    """Whether the image name has a registry or a namespace (ghcr.io/org/img:1, org/img):
    one that is pulled, never built here."""
    return "/" in image.split("@")[0]


def absent_image_hint(image: str) -> str:
    """The hint for an image the engine does not have: a registry's is pulled (review: a
    `--tag python:3.12-slim` was told to build it with dlbox), dlbox's built."""
    if registry_image(image):
        return pull_hint(image)
    return "build it first: dlbox image build (or pass --tag), or pull it: docker pull " + image


# "listen tcp4 127.0.0.1:8888: bind: address already in use", "Bind for 0.0.0.0:8888 failed:
# port is already allocated"
_BUSY_PORT = re.compile(r"(?:listen tcp[46]? |Bind for )\[?([0-9a-fA-F.:]+?)\]?:(\d+)[: ]")


def run_error(error: BaseException, request: RunRequest) -> Exception:
    """Map an engine error at container start to an error that names what is missing."""
    text = api_error_text(error)
    lowered = text.lower()
    exec_failed = _OCI_EXEC_FAILED.search(text)
    if exec_failed and request.command:
        return CommandNotRunnable(exec_failed.group(1), exec_failed.group(2), request.image,
                                  None)  # a dlbox image starts it through tini: not_runnable
    missing = _MISSING_SOURCE.search(text)
    if missing:
        source = missing.group(1).strip()
        targets = [m.target for m in request.mounts if m.source == source]
        at = f" at {targets[0]}" if targets else ""
        return ContainerError(f"cannot mount {source}{at}: it does not exist on the engine's "
                              "machine", hint="create it there: an engine on another machine "
                                              "(DOCKER_HOST) mounts that machine's paths, "
                                              "not this one's")
    if request.gpus is not None and ("could not select device driver" in lowered
                                     or "unknown or invalid runtime" in lowered):
        return HostEnvError(
            f"the Docker engine cannot give this container {request.gpus.describe()}: it has "
            "no NVIDIA runtime (NVIDIA Container Toolkit)",
            hint="install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure "
                 "--runtime=docker && sudo systemctl restart docker (or --gpus none for CPU)",
        )
    if request.gpus is not None and ("nvidia-container-cli" in lowered or "nvml" in lowered
                                     or "driver" in lowered and "nvidia" in lowered):
        return HostEnvError(
            f"the NVIDIA runtime could not give this container {request.gpus.describe()}: "
            f"{text.splitlines()[-1][:200]}",
            hint="check the NVIDIA driver on the host (nvidia-smi, dlbox doctor)",
        )
    if "no such image" in lowered or "not found" in lowered and "image" in lowered:
        return ContainerError(f"image {request.image} is not on this machine",
                              hint=absent_image_hint(request.image))
    if "port is already allocated" in lowered or "address already in use" in lowered:
        # the engine's words name its endpoint first (review: cut at 200 characters, before
        # "address already in use"): the port and the address, as -p takes them
        busy = _BUSY_PORT.search(text)
        where = f"host port {busy.group(2)} is in use on {busy.group(1)}" if busy else \
            "a host port it publishes is in use"
        return ContainerError(f"cannot start the container: {where}",
                              hint="pick another port, or stop what uses it")
    return ContainerError(f"cannot start the container: {text[:300]}",
                          hint="`docker ps -a` and `docker logs` show more")


def start_container(client: Any, request: RunRequest) -> Any:
    """Create and start a container (detached); the caller stops and removes it. One that
    was created but could not start is removed here."""
    container = create_container(client, request)
    try:
        start_created(container, request)
    except BaseException:
        remove_container(container)
        raise
    return container


def list_containers(client: Any, label: str, statuses: Sequence[str] = ()) -> list[Any]:
    """The containers (any state, or those in `statuses`) that carry `label`."""
    filters: dict[str, Any] = {"label": label}
    if statuses:
        filters["status"] = list(statuses)
    try:
        return list(client.containers.list(all=True, filters=filters))
    except Exception as error:  # noqa: BLE001 - the SDK's and requests' errors
        raise engine_error(error) from None


def remove_by_name(client: Any, name: str, settle_s: float = 0.5) -> None:
    """Remove the container called `name`, if there is one. A create request that was
    interrupted on its way may still complete in the engine: look twice."""
    import docker

    for attempt in range(2):
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            if attempt == 0:
                time.sleep(settle_s)
            continue
        except Exception:  # noqa: BLE001 - the engine is gone: nothing we can remove
            return
        remove_container(container)
        return


def remove_container(container: Any) -> None:
    try:
        container.remove(force=True)
    except Exception:  # noqa: BLE001 - already gone (auto-removed, or the engine restarted)
        pass


def stop_container(container: Any, timeout: float = STOP_TIMEOUT_S) -> None:
    """`docker stop`: SIGTERM to PID 1 (tini forwards it), SIGKILL after `timeout`."""
    try:
        container.stop(timeout=int(timeout))
    except Exception:  # noqa: BLE001 - it may have exited on its own meanwhile
        pass


def wait_exit_code(container: Any, timeout: float | None = None) -> int:
    result = container.wait(timeout=timeout) if timeout else container.wait()
    return int(result.get("StatusCode", 1))


def kill_container(container: Any) -> None:
    """`docker kill`: SIGKILL now, no grace period."""
    try:
        container.kill()
    except Exception:  # noqa: BLE001 - it may have exited on its own meanwhile
        pass


def create_container(client: Any, request: RunRequest) -> Any:
    """Create a container without starting it; the caller starts, stops and removes it."""
    import docker

    check_mount_sources(request)
    kwargs = _run_kwargs(request)
    kwargs.pop("detach", None)
    try:
        return client.containers.create(**kwargs)
    except docker.errors.ImageNotFound:
        raise ContainerError(f"image {request.image} is not on this machine",
                             hint=absent_image_hint(request.image)) from None
    except docker.errors.APIError as error:
        raise run_error(error, request) from None
    except docker.errors.DockerException as error:
        raise engine_error(error) from None


def start_created(container: Any, request: RunRequest) -> None:
    import docker

    try:
        container.start()
    except docker.errors.APIError as error:
        raise run_error(error, request) from None
    except docker.errors.DockerException as error:
        raise engine_error(error) from None


def _say_then(line: str, action: Callable[..., None], *args: Any, tty: bool = False) -> None:
    """Print `line` on stderr, then call `action(*args)`, in a thread of its own. For a
    signal handler: one that prints itself cuts into the write to stderr it may have
    interrupted (the command's output), which Python refuses with a RuntimeError (see
    processes.Terminated); a thread waits for that write to end. The action runs even when
    stderr fails."""
    def say_then() -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr
            newline = "\r\n" if tty else "\n"  # a raw terminal moves down only (review)
            print(line.replace("\n", newline), file=sys.stderr, end=newline, flush=True)
        action(*args)

    threading.Thread(target=say_then, daemon=True).start()


@contextmanager
def _signals_stop(container: Any, stop_timeout: float,
                  tty: bool = False) -> Iterator[dict[str, bool]]:
    """Ctrl-C / SIGTERM / SIGHUP to us: stop the container (SIGTERM to its command) and keep
    streaming; a second one kills it (SIGKILL) at once, as `docker stop` then `docker kill`.
    The handler only keeps the state and starts the stop: it prints nothing itself. `tty`:
    our terminal is raw for the run, so its lines end with CR LF."""
    state = {"stopping": False, "killed": False, "hung_up": False}

    def handler(signum: int, frame: Any) -> None:
        if hangup(signum):
            detach_from_terminal()  # what is printed next would fail on the closed terminal
            state["hung_up"] = True
        if state["killed"]:
            return
        if state["stopping"]:
            if state["hung_up"]:  # a hang-up comes twice: the command still saves its work
                return
            state["killed"] = True
            _say_then("\nkilling the container (SIGKILL)...", kill_container, container,
                      tty=tty)
            return
        state["stopping"] = True
        _say_then(f"\nstopping the container (SIGTERM, SIGKILL after {stop_timeout:g} s; "
                  "press Ctrl-C again to kill it now)...", stop_container, container,
                  stop_timeout, tty=tty)

    with handling(handler, "SIGINT", "SIGTERM", "SIGHUP"):
        yield state


@dataclass(frozen=True)
class StreamedRun:
    exit_code: int
    stderr_tail: bytes  # the end of what it wrote to stderr (to stdout with a terminal)


def _raw_socket(sock: Any) -> Any:
    """The socket under what attach_socket returns (a SocketIO on a local engine)."""
    return getattr(sock, "_sock", sock)


def _feed_stdin(sock: Any, fd: int) -> None:
    """Copy our stdin to the container's until EOF, then close its stdin (half-close)."""
    raw = _raw_socket(sock)
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # our stdin is closed or unreadable: as EOF
            break
        if not data:
            break
        try:
            raw.sendall(data)
        except OSError:  # the container ended and its end of the socket is gone
            return
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@contextmanager
def _terminal(container: Any, fd: int | None) -> Iterator[None]:
    """Our terminal in raw mode, its size given to the container's, for the run (a TTY run)."""
    if fd is None:
        yield
        return
    import termios
    import tty

    def resize(*_: Any) -> None:
        try:
            columns, lines = os.get_terminal_size(fd)
            container.resize(height=lines, width=columns)
        except Exception:  # noqa: BLE001 - not a terminal any more, or the container ended
            pass

    saved = termios.tcgetattr(fd)
    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        tty.setraw(fd)
        resize()
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)


def run_streaming(client: Any, request: RunRequest, stop_timeout: float = STOP_TIMEOUT_S,
                  out: Any = None, err: Any = None, stdin_fd: int | None = None) -> StreamedRun:
    """Run to completion, streaming its stdout/stderr to ours byte for byte; its exit code.

    As `docker run` does, the streams are attached before the container starts, so a
    command that exits at once loses no output and cannot leave us waiting on a stream that
    never opens. With `request.stdin_open`, `stdin_fd` is copied to the command's stdin
    (EOF closes it); with `request.tty` the container gets a terminal and ours is put in raw
    mode for the run, as `docker run -it` does. Ctrl-C or SIGTERM stops the container the
    way `docker stop` does, so a training command saves its checkpoint (a second Ctrl-C kills
    it); the container is removed afterwards either way.
    """
    from docker.utils.socket import STDERR, frames_iter

    out = out or getattr(sys.stdout, "buffer", sys.stdout)
    err = err or getattr(sys.stderr, "buffer", sys.stderr)
    container = create_container(client, request)
    tail = bytearray()
    sock = None
    try:
        with _signals_stop(container, stop_timeout, request.tty):
            try:
                # No "logs": the engine attaches the streams before it answers, so nothing
                # written after start is missed; the log replay it does after answering
                # repeated a quick command's output (1 run in 120 under load, measured).
                sock = client.api.attach_socket(container.id, params={
                    "stdin": int(request.stdin_open), "stdout": 1, "stderr": 1, "stream": 1})
            except Exception as error:  # noqa: BLE001 - the SDK's and requests' errors
                raise engine_error(error) from None
            start_created(container, request)
            with _terminal(container, stdin_fd if request.tty else None):
                # Read once the terminal is raw: a ^D read before is an EOF, which closes a
                # TTY container's streams, and its output was lost.
                if request.stdin_open and stdin_fd is not None:
                    threading.Thread(target=_feed_stdin, args=(sock, stdin_fd),
                                     daemon=True).start()
                for stream, data in frames_iter(sock, request.tty):
                    target = err if stream == STDERR else out
                    target.write(data)
                    target.flush()
                    if stream == STDERR or request.tty:
                        tail.extend(data)
                        del tail[:-4096]
            return StreamedRun(wait_exit_code(container), bytes(tail))
    finally:
        # The attach stream first: a command blocked writing to it (we stopped reading: our
        # stdout's reader went away, `| head`) holds the engine's removal, which waited on it
        # for ever.
        if sock is not None:
            for closable in (_raw_socket(sock), sock):
                with contextlib.suppress(Exception):
                    closable.close()
        remove_container(container)


@dataclass(frozen=True)
class Captured:
    exit_code: int
    stdout: str
    stderr: str


def run_captured(client: Any, request: RunRequest, timeout: float = 600,
                 files: dict[str, bytes] | None = None, files_dir: str = "/tmp",
                 archive: Path | None = None) -> Captured:
    """Run to completion and return its output (smoke tests, probes, lock resolution).

    `files` (name -> bytes) and the tar `archive` are put into `files_dir` before start.
    """
    import io
    import tarfile


    container = create_container(client, request)
    try:
        if files:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for name, data in sorted(files.items()):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
            container.put_archive(files_dir, buffer.getvalue())
        if archive is not None:
            with open(archive, "rb") as handle:
                container.put_archive(files_dir, handle)
        start_created(container, request)
        try:
            exit_code = wait_exit_code(container, timeout=timeout)
        except Exception as error:  # noqa: BLE001 - requests ReadTimeout
            stop_container(container, 5)
            raise ContainerError(f"{' '.join(request.command)[:60]} did not finish within "
                                 f"{timeout:g} s in {request.image}",
                                 hint="run it by hand with docker run to see why") from error
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        return Captured(exit_code, stdout, stderr)
    finally:
        remove_container(container)


def engine_info(client: Any) -> dict[str, Any]:
    try:
        return client.info()
    except Exception as error:  # noqa: BLE001
        raise engine_error(error) from None
