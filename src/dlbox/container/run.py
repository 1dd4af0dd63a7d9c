"""`dlbox image run`: a command in a dlbox image, with GPUs, the data and the run folder.

Policy lives here, the engine calls in `container.engine`:
- GPUs come through device requests (`--gpus all|N|ID,ID|none`, an ID being an index, a
  GPU UUID or a MIG device id; by default all for a GPU image, none for a CPU one). A GPU
  that the host or the engine cannot give is an error that names what is missing (driver,
  NVIDIA runtime): never a silent fall-back to the CPU. A container given no GPU gets
  NVIDIA_VISIBLE_DEVICES=void (unless --env sets it): a GPU image bakes in `all`, which the
  NVIDIA runtime honours where it is Docker's default, device request or not (review).
- The data folder is mounted at /data (DLBOX_DATA points there); the runs folder at
  /workspace/runs, where `dlbox train` writes by default, so a run lands on the host.
- The container runs as the caller's uid:gid, so what it writes in the runs folder is the
  caller's; a root caller gets the image's own user (uid 1000): never root.
- The shm is 2g by default: DataLoader workers pass batches through /dev/shm, and the
  engine's 64 MB default kills them with a bus error.
- `-p` publishes a container's TCP port on 127.0.0.1 unless an address is given (a notebook
  or a demo is not put on the network by default); `-v` mounts another host folder, never
  over dlbox's own mounts (/workspace, its runs folder, /data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.container.owner import OWNER_LABEL, owner_id, remove_orphaned
from dlbox.container.project import (
    CHECKOUT_PLACEHOLDER,
    builtin_build_command,
    default_project_dir,
    detect_project,
    project_above,
    project_image_above,
)
from dlbox.data.paths import DATA_ENV_VAR, resolve_data_dir
from dlbox.errors import ContainerError, DlboxError, HostEnvError, UsageError
from dlbox.fileio import expand_user, nearest_folder
from dlbox.ports import bind_probe
from dlbox.text import is_utf8, make_writable

if TYPE_CHECKING:
    from dlbox.container.engine import Log

DEFAULT_SHM_SIZE = "2g"
DEFAULT_HOST_IP = "127.0.0.1"  # -p publishes here unless given an address
# The NVIDIA Container Toolkit's value for no GPU: a GPU image's ENV says `all`, which the
# toolkit honours with no device request where nvidia is Docker's default runtime (review).
NO_GPU_ENV = ("NVIDIA_VISIBLE_DEVICES", "void")
DEVICE_LABEL = "dlbox.device"  # "gpu" or "cpu", on the images `dlbox image build` makes
RUN_LABEL = "dlbox.image-run"  # on every container `dlbox image run` starts (docker ps --filter)
# the host path of the runs folder an image run made for its container (removed when empty)
RUNS_MADE_LABEL = "dlbox.runs-made"
# What `docker run --shm-size` takes (go-units' RAMInBytes): a number, then b, k, m, g, t or
# p in any case, then an optional i and b ("2g", "2gb", "1GiB"); powers of 1024 all.
_SHM_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
# What the Docker SDK takes as it is: other forms are passed to it in bytes.
_SDK_SHM_RE = re.compile(r"^\d+(\.\d+)?[bkmg]?$", re.IGNORECASE)
# A device id as `docker run --gpus device=...` takes it: an index, a GPU UUID, a MIG device
# UUID, or the legacy MIG form MIG-GPU-<uuid>/<gpu instance>/<compute instance>.
_DEVICE_ID_RE = re.compile(r"\d+|gpu-[0-9a-f-]+|mig-[0-9a-f-]+|mig-gpu-[0-9a-f-]+/\d+/\d+",
                           re.IGNORECASE)


@dataclass(frozen=True)
class RunOptions:
    image: str
    command: tuple[str, ...] = ()
    gpus: str | None = None  # "all" | "N" | "ID,ID" | "none"; None: from the image's label
    shm_size: str = DEFAULT_SHM_SIZE
    data_dir: Path | None = None
    runs_dir: Path | None = None
    # runs_dir is the default one (no --runs): made for the run only (removed when the run
    # left it empty), and where it cannot be made no error but for dlbox train/evaluate.
    runs_default: bool = False
    environment: tuple[tuple[str, str], ...] = ()
    no_tty: bool = False  # never a terminal, and the terminal's input not passed on
    named: bool = False  # the image was named (--tag), not taken from the folder
    # The project folder the image's default tag came from (no --tag): warned about when
    # another folder of the same name built the image.
    project_dir: Path | None = None
    # The project folder dlbox runs in, with or without --tag: warned about when the image
    # was built from it and its files changed since.
    here: Path | None = None
    ports: tuple[tuple[int, int], ...] = ()  # -p: (container port, host port)
    host_ip: str = DEFAULT_HOST_IP  # the host address published ports listen on
    volumes: tuple[engine.Mount, ...] = ()  # -v: more host folders


def parse_gpus(value: str | None, image_device: str | None) -> engine.GpuRequest | None:
    """`--gpus` -> a device request (None: no GPU). Unset: all GPUs for a GPU image."""
    if value is None:
        return engine.GpuRequest(count=-1) if image_device == "gpu" else None
    text = value.strip().lower()
    if text == "0":
        raise UsageError("--gpus 0 is ambiguous: the engine reads it as zero GPUs, and "
                         "nvidia-smi numbers the first GPU 0",
                         hint="--gpus none for no GPU, --gpus device=0 for the first GPU")
    if text in ("none", ""):
        return None
    if text == "all":
        return engine.GpuRequest(count=-1)
    if text.isdigit():
        return engine.GpuRequest(count=int(text))
    # UUIDs keep their case: the NVIDIA runtime matches "GPU-..." / "MIG-..." as nvidia-smi
    # prints them.
    raw = value.strip()
    raw = raw[len("device="):] if text.startswith("device=") else raw
    ids = tuple(part.strip() for part in raw.split(",") if part.strip())
    if ids and all(_DEVICE_ID_RE.fullmatch(part) for part in ids):
        return engine.GpuRequest(device_ids=ids)
    raise UsageError(f"--gpus {value!r} is not a GPU request",
                     hint="use all, a count (2), device ids (0,1 or GPU-/MIG- UUIDs from "
                          "nvidia-smi -L) or none")


_SHM_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
MIN_SHM_BYTES = 2**20


def check_shm_size(value: str) -> str:
    """The size as the Docker SDK takes it, from any form `docker run --shm-size` takes."""
    text = value.strip()
    match = _SHM_RE.match(text)
    if not match:
        raise UsageError(f"--shm-size {value!r} is not a size",
                         hint="give a number with a unit, e.g. 2g or 512m")
    number = float(match.group(1))
    size = number * _SHM_UNITS[(match.group(2) or "").lower()]
    if size < MIN_SHM_BYTES:
        why = " (0 would mean the engine's 64 MB default)" if number == 0 else ""
        raise UsageError(f"--shm-size {value!r} is under 1 MiB{why}",
                         hint="give a size such as 2g or 512m")
    return text if _SDK_SHM_RE.match(text) else str(int(size))


_PUBLISH_HINT = ("give -p HOST_PORT:CONTAINER_PORT (or one port for both, or "
                 "IP:HOST_PORT:CONTAINER_PORT), e.g. -p 8000:8000")


def _port(text: str, value: str) -> int:
    """One port number of `-p value`."""
    if not text.isdigit():
        raise UsageError(f"-p {value!r}: {text!r} is not a port number", hint=_PUBLISH_HINT)
    port = int(text)
    if not 1 <= port <= 65535:
        raise UsageError(f"-p {value!r}: port {port} is not in 1 to 65535", hint=_PUBLISH_HINT)
    return port


def parse_publish(values: Sequence[str]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """`-p [[IP:]HOST_PORT:]CONTAINER_PORT` (docker's order, host first; one port: the same
    on both sides) -> (the host address, ((container port, host port), ...)). The address is
    127.0.0.1 unless given, and one for all (the engine takes one per container)."""
    addresses: set[str] = set()
    ports: list[tuple[int, int]] = []
    for value in values:
        text = value.strip()
        if text.lower().endswith("/tcp"):
            text = text[:-len("/tcp")]
        elif "/" in text:
            raise UsageError(f"-p {value!r}: only TCP ports are published",
                             hint="give the port without /udp: dlbox image run publishes "
                                  "TCP only (docker run -p PORT/udp for UDP)")
        address, parts = DEFAULT_HOST_IP, text.rsplit(":", 2)
        if len(parts) == 3:
            raw = parts[0][1:-1] if parts[0].startswith("[") and parts[0].endswith("]") \
                else parts[0]
            try:
                address = str(ipaddress.ip_address(raw))
            except ValueError:
                raise UsageError(f"-p {value!r}: {parts[0]!r} is not an IP address",
                                 hint="e.g. -p 0.0.0.0:8000:8000 to listen on every "
                                      "address, or leave it out for 127.0.0.1") from None
            parts = parts[1:]
        inner = _port(parts[-1], value)
        outer = _port(parts[0], value)
        addresses.add(address)
        if any(host == outer for _, host in ports):
            raise UsageError(f"-p publishes host port {outer} twice",
                             hint="give each -p its own host port")
        if any(container == inner for container, _ in ports):
            raise UsageError(f"-p publishes container port {inner} twice",
                             hint="publish each container port once")
        ports.append((inner, outer))
    if len(addresses) > 1:
        raise UsageError(f"-p gives more than one address ({', '.join(sorted(addresses))}): "
                         "dlbox publishes all the ports on one address",
                         hint="give every -p the same IP: (none is 127.0.0.1)")
    return (addresses.pop() if addresses else DEFAULT_HOST_IP), tuple(ports)


def check_ports_free(host_ip: str, ports: Sequence[tuple[int, int]]) -> None:
    """UsageError for a host port that something on this machine listens on already,
    before a container is made (the engine's own error is long, and cut). The bind is
    `dlbox notebook`'s port check (ports.bind_probe: as Docker's port proxy binds, so a port in
    TIME_WAIT is free)."""
    for inner, outer in ports:
        try:
            bind_probe(host_ip, outer)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:  # a port under 1024, say: the engine's
                continue
            raise UsageError(f"host port {outer} is in use on {host_ip}",
                             hint=f"pick another host port: -p OTHER:{inner}, or stop what "
                                  "uses it") from None


_VOLUME_HINT = "give -v HOST_DIR:CONTAINER_PATH, or HOST_DIR:CONTAINER_PATH:ro for read-only"


def parse_volumes(values: Sequence[str], data_mounted: bool) -> tuple[engine.Mount, ...]:
    """`-v HOST_DIR:CONTAINER_PATH[:ro]` -> Mounts: HOST_DIR from the current folder (~
    expanded) and there, CONTAINER_PATH absolute and none of dlbox's own mounts (/workspace,
    the project's code; /workspace/runs; /data when a data folder is mounted there)."""
    mounts: list[engine.Mount] = []
    for value in values:
        parts = value.split(":")
        if len(parts) == 3 and parts[2] != "ro":
            raise UsageError(f"-v {value!r}: {parts[2]!r} is not ro", hint=_VOLUME_HINT)
        if len(parts) not in (2, 3) or not parts[0].strip() or not parts[1].strip():
            raise UsageError(f"-v {value!r} is not HOST_DIR:CONTAINER_PATH[:ro]",
                             hint=_VOLUME_HINT)
        source = expand_user(Path(parts[0])).resolve()
        if not source.exists():
            raise UsageError(f"-v {value!r}: {source} does not exist",
                             hint="create it, or give the folder's path (from the current "
                                  "folder, or absolute)")
        if not parts[1].startswith("/"):
            raise UsageError(f"-v {value!r}: {parts[1]!r} is not an absolute path",
                             hint="give the path in the container from /, e.g. /models")
        target = PurePosixPath(posixpath.normpath(parts[1]))
        if PurePosixPath(S.WORKDIR).is_relative_to(target):
            raise UsageError(f"-v {value!r}: {target} would hide {S.WORKDIR}, the project's "
                             "code", hint=f"mount at another path (under {S.WORKDIR} is fine)")
        owned = [(PurePosixPath(S.RUNS_DIR), "--runs DIR for the runs folder")]
        if data_mounted:
            owned.append((PurePosixPath(S.DATA_DIR), "--data DIR for the data folder"))
        for path, use in owned:
            if target.is_relative_to(path) or path.is_relative_to(target):
                raise UsageError(f"-v {value!r}: dlbox mounts {path} itself",
                                 hint=f"use {use}, or mount at another path")
        if any(str(target) == mount.target for mount in mounts):
            raise UsageError(f"-v mounts {target} twice", hint="give each -v its own path")
        mounts.append(engine.Mount(str(source), str(target), read_only=len(parts) == 3))
    return tuple(mounts)


_SHELLS = {"sh", "bash", "dash", "zsh", "ash", "ksh"}


_LONG_RUNNING = re.compile(r"(.*/)?(python[0-9.]*|dlbox|torchrun|accelerate)")
# What ends a command in a shell script (shlex gives a run of these, ";\n", as one word),
# and the words before a command's own name.
_COMMAND_ENDS = {"{", "}", "!"}
_END_RUN = re.compile(r"[;&|()\n]+")
_COMMAND_PREFIXES = {"if", "then", "elif", "else", "while", "until", "do"}
# Commands that run the command after their options (and the words named here) as theirs.
_WRAPPERS = {"exec", "env", "nohup", "time", "command", "nice", "ionice", "timeout",
             "stdbuf", "setsid", "uv", "poetry", "pipenv", "conda"}
_WRAPPER_WORDS = re.compile(r"run|\d+(\.\d+)?[smhd]?")  # uv run, timeout 2h, nice -n 10
_OPTIONS_WITH_VALUES = {"-n", "-u", "-C", "-s", "-k", "--unset", "--chdir", "--signal",
                        "--kill-after", "--adjustment", "--with", "--project", "--name"}


def _is_end(word: str) -> bool:
    return word in _COMMAND_ENDS or bool(_END_RUN.fullmatch(word))


def started_commands(words: Sequence[str]) -> list[str]:
    """The names of the commands a tokenized shell script starts: the first word of each,
    past NAME=VALUE settings and wrappers such as exec, env -i, nohup, timeout 2h, nice -n
    10 or uv run (review: `ls /usr/bin/python` counted as starting Python)."""
    names: list[str] = []
    at_start, wrapped, value_next = True, False, False
    for word in words:
        if _is_end(word):
            at_start, wrapped, value_next = True, False, False
        elif not at_start:
            continue
        elif value_next:
            value_next = False
        elif word in _COMMAND_PREFIXES and not wrapped:
            pass
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            pass
        elif word in _WRAPPERS:
            wrapped = True
        elif wrapped and word.startswith("-"):
            value_next = word in _OPTIONS_WITH_VALUES
        elif wrapped and _WRAPPER_WORDS.fullmatch(word):
            pass
        else:
            names.append(word)
            at_start = False
    return names


def shell_wrapper_note(command: Sequence[str]) -> str | None:
    """The note for `-- sh -c 'cd src && python train.py'`: a stop's SIGTERM reaches the
    shell (tini's child), which may end at once, and the container's end then kills the
    training before it saves its checkpoint (found by review: dash, Debian's sh, runs even a
    lone command as its child; bash execs the last one in simple cases only). `exec`
    before the long command hands it the shell's place for certain. None when the script
    starts no Python or dlbox, or starts it with exec, at the top level (not in a subshell
    or a pipe, whose exec does not replace the shell)."""
    import shlex

    if len(command) < 3 or PurePosixPath(command[0]).name not in _SHELLS:
        return None
    flag = next((at for at, arg in enumerate(command[1:-1], 1)
                 if re.fullmatch(r"-[a-z]*c[a-z]*", arg)), None)  # -c, -lc, -ec
    if flag is None:
        return None
    lexer = shlex.shlex(command[flag + 1], posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"  # a newline ends a command, as ; does
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: the shell refuses it itself
        return None
    if not any(_LONG_RUNNING.fullmatch(word) for word in started_commands(words)):
        return None
    nested = any(_END_RUN.fullmatch(word) and ("(" in word or "|" in word.replace("||", "")
                                               or "&" in word.replace("&&", ""))
                 for word in words)  # a subshell, a pipe, a command in the background
    if not nested and any(word == "exec" and _LONG_RUNNING.fullmatch(
            (started_commands(words[at + 1:]) or [""])[0])  # exec timeout 2h python: too
                          for at, word in enumerate(words)):
        return None
    return ("note: through a shell, a stop (SIGTERM, and Ctrl-C when dlbox has no terminal) "
            "may reach only the shell, and the end of the container then kills the training "
            "before it saves (its checkpoint); start the long command with exec (sh -c 'cd "
            "src && exec python train.py') so that it gets the stop itself")


def asks_dlbox_for_help(command: Sequence[str]) -> bool:
    """Whether the command is a dlbox command asked for its -h/--help: it uses no data and
    writes no run, so nothing is made or said for it (review)."""
    return (bool(command) and PurePosixPath(command[0]).name == "dlbox"
            and any(arg in ("-h", "--help") for arg in command[1:]))


def dlbox_data_use(command: Sequence[str]) -> str | None:
    """How a command uses the data folder at /data: "fetch" for `dlbox data fetch`, "read"
    for a dlbox command that reads it (train, evaluate, data check); None for any other, for
    one that is given a --data of its own, and for one asked for its -h/--help (review: that
    made the data folder, or got the no-data note)."""
    if not command or PurePosixPath(command[0]).name != "dlbox" or asks_dlbox_for_help(command):
        return None
    if any(arg == "--data" or arg.startswith("--data=") for arg in command[1:]):
        return None
    words = [arg for arg in command[1:] if not arg.startswith("-")][:2]
    if words == ["data", "fetch"]:
        return "fetch"
    if words[:1] in (["train"], ["evaluate"]) or words == ["data", "check"]:
        return "read"
    return None


def writes_runs(command: Sequence[str]) -> bool:
    """Whether the command is one that writes run directories: `dlbox train` or `dlbox
    evaluate` (not asked for its -h/--help)."""
    if not command or PurePosixPath(command[0]).name != "dlbox" or asks_dlbox_for_help(command):
        return False
    words = [arg for arg in command[1:] if not arg.startswith("-")][:1]
    return words in (["train"], ["evaluate"])


def data_mount(path: Path, command: Sequence[str], uid: int, gid: int, as_root: bool,
               log: Log) -> Path:
    """The data folder to mount at /data, which must be one; for `dlbox data fetch` one that
    is missing is made (handed to the container's user when root makes it, and said through
    `log`): without it the download filled the container's own /data, gone with the
    container (found by review)."""
    data_dir = expand_user(path).resolve()
    if data_dir.is_dir():
        return data_dir
    if data_dir.exists() or dlbox_data_use(command) != "fetch":
        raise UsageError(f"--data {data_dir} is not a folder",
                         hint="pass the folder `dlbox data fetch` filled")
    try:
        data_dir.mkdir(parents=True)
    except OSError as error:
        raise UsageError(f"cannot make the data folder {data_dir} ({error.strerror})",
                         hint="pass --data a folder you can write to") from None
    if as_root:
        os.chown(data_dir, uid, gid)
    log(f"note: made the data folder {data_dir}, mounted at {S.DATA_DIR}: the data `dlbox "
        "data fetch` downloads lands there")
    return data_dir


def container_user(euid: int, egid: int) -> tuple[int, int]:
    """The caller's uid:gid, or the image's user when the caller is root."""
    if euid == 0:
        return S.IMAGE_UID, S.IMAGE_GID
    return euid, egid


def writable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether uid:gid may write in `path` by its mode bits (what a container user sees)."""
    info = path.stat()
    if uid == info.st_uid:
        return bool(info.st_mode & 0o200)
    if gid == info.st_gid:
        return bool(info.st_mode & 0o020)
    return bool(info.st_mode & 0o002)


CPU_WAY = "run on the CPU with --gpus none"


def gpu_blocker(facts: Any, cpu_way: str = CPU_WAY) -> tuple[str, str] | None:
    """(what keeps this host's Docker engine from giving a container its GPUs, the fix), or
    None when nothing does: a working NVIDIA driver that sees a GPU, and an engine with the
    NVIDIA runtime, a CDI spec or the toolkit's hook (`DockerFacts.gpu_capable`, doctor's
    judgement too). The one answer of `image run --gpus` and the build's smoke test. An
    engine the probe could not reach is not judged here (connecting to it says why).
    `cpu_way`: how to do without the GPU, in the fix (`dlbox notebook` has no --gpus)."""
    nvidia = facts.nvidia
    if nvidia.error or not nvidia.driver_version:
        why = f": {nvidia.error}" if nvidia.error else ""
        return (f"this host has no working NVIDIA driver{why}",
                f"install the NVIDIA driver (dlbox doctor says what it sees), or {cpu_way}")
    if not nvidia.gpus:
        return ("the NVIDIA driver sees no GPU", f"check nvidia-smi, or {cpu_way}")
    if facts.docker.reachable and not facts.docker.gpu_capable:
        return ("the Docker engine has no NVIDIA runtime (NVIDIA Container Toolkit)",
                "install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure "
                "--runtime=docker && sudo systemctl restart docker")
    return None


def check_gpus_available(gpus: engine.GpuRequest, facts: Any) -> None:
    """HostEnvError naming what is missing when this host cannot give the GPUs asked for."""
    blocker = gpu_blocker(facts)
    if blocker is not None:
        raise HostEnvError(f"--gpus asks for {gpus.describe()}, but {blocker[0]}",
                           hint=blocker[1])
    available = len(facts.nvidia.gpus)
    if gpus.count not in (None, -1) and gpus.count > available:
        raise HostEnvError(f"--gpus asks for {gpus.count} GPUs; this host has {available}",
                           hint=f"use --gpus {available} or all")


class RunsNotMade(UsageError):
    """The runs folder cannot be made where it is asked for: no permission, a read-only
    file system."""


def prepare_runs_dir(path: Path, uid: int, gid: int, as_root: bool) -> Path:
    """Create the runs folder; one that root creates is handed to the container's user."""
    path = expand_user(path).resolve()
    created = not path.exists()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--runs {path} is not a folder", hint="pass a folder for the runs")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError as error:  # named by the folder that refused, which exists
        folder = nearest_folder(path)
        # Review: in / the hint was `chmod u+rwx /`: only a folder of the user's is theirs
        # to make writable.
        theirs = folder.stat().st_uid == os.geteuid()
        raise RunsNotMade(f"cannot create --runs {path} ({error.strerror})",
                          hint=f"{make_writable(folder) + ', or ' if theirs else ''}pass --runs "
                               "a folder you can write to") from None
    except (NotADirectoryError, FileExistsError):  # a file above it: main.py/runs
        above = next(where for where in path.parents if where.exists())
        raise UsageError(f"--runs {path} cannot be made: {above} is a file",
                         hint="pass a folder path (made if missing) for the runs") from None
    except OSError as error:  # a read-only file system, /proc (review: "please report it")
        raise RunsNotMade(f"cannot create --runs {path} ({error.strerror})",
                          hint="pass --runs a folder you can write to") from None
    if as_root and created:
        os.chown(path, uid, gid)
    if not writable_by(path, uid, gid):
        raise UsageError(f"the container's user (uid {uid}) cannot write to {path}",
                         hint=f"chown {uid}:{gid} {path}, or pass a new folder to --runs")
    return path


def runs_mount(options: RunOptions, uid: int, gid: int, as_root: bool, log: Log
               ) -> tuple[Path | None, bool]:
    """The runs folder to mount at /workspace/runs (prepare_runs_dir), and whether it is the
    default one, made for this run: run_in_image removes it when the run leaves it empty
    (review: every run left ./runs behind). The default one that cannot be made (in /, say)
    is an error only for dlbox train/evaluate; another command runs without it, which is
    said (re-review: mounting it only for commands known to write runs lost the run of
    `bash` then `dlbox train`, of `sh -c '... dlbox train'`, with exit 0)."""
    if options.runs_dir is None:
        return None, False
    made = options.runs_default and not expand_user(options.runs_dir).resolve().exists()
    try:
        return prepare_runs_dir(options.runs_dir, uid, gid, as_root), made
    except RunsNotMade:
        if not options.runs_default or writes_runs(options.command):
            raise
    where = "./runs here" if options.runs_dir == Path("runs") else str(options.runs_dir)
    log(f"note: no runs folder is mounted (cannot create {where}): what the command writes in "
        f"{S.RUNS_DIR} goes with the container; pass --runs DIR to keep it")
    return None, False


def runs_go_into_the_image_note(project_dir: Path | None, runs_dir: Path) -> str | None:
    """The note for a --runs folder inside the project that its .dockerignore does not leave
    out (only `runs` is left out by default): what the runs write would go into the next
    build's image, and each run warned that the project's files changed (found by review).
    `project_dir` None (dlbox runs in a subfolder of a project, say): the project the runs
    folder is in, if any."""
    from dlbox.container.dockerignore import IgnoreMatcher, project_patterns
    from dlbox.container.project import project_above

    if project_dir is None:
        project_dir = project_above(runs_dir)
    if project_dir is None:
        return None
    try:
        rel = runs_dir.resolve().relative_to(project_dir.resolve()).as_posix()
        left_out = IgnoreMatcher(project_patterns(project_dir)).ignored(rel)
    except (ValueError, OSError, UsageError):  # outside the project, or no .dockerignore read
        return None
    if left_out or rel == ".":
        return None
    return (f"note: --runs {rel} is in the project and its .dockerignore does not leave it "
            "out: what the runs write goes into the next `dlbox image build`, and the image "
            f"counts as out of date; add the line {rel} to .dockerignore")


def terminal_mode(no_tty: bool, stdin_fd: int = 0, stdout_fd: int = 1) -> tuple[bool, bool]:
    """(pass our stdin on, give the command a terminal), as a user of `docker run` sets -i and
    -t by hand: input from a pipe or a file is passed on; at an interactive terminal (stdin
    and stdout both terminals, dlbox in the foreground) the command gets a terminal of its
    own, so a shell or a REPL works; `--no-tty`, output redirected to a file, or dlbox in the
    background: the terminal's input stays with the terminal."""
    try:
        os.fstat(stdin_fd)
    except OSError:  # no stdin at all: nothing to pass on
        return False, False
    if not os.isatty(stdin_fd):
        return True, False
    try:
        foreground = os.tcgetpgrp(stdin_fd) == os.getpgrp()
    except OSError:
        foreground = False
    if os.isatty(stdout_fd) and foreground and not no_tty:
        return True, True
    return False, False


def run_request(options: RunOptions, gpus: engine.GpuRequest | None, uid: int, gid: int,
                data_dir: Path | None, runs_dir: Path | None, stdin_open: bool = False,
                tty: bool = False, runs_made: bool = False,
                image_device: str | None = None) -> engine.RunRequest:
    """The engine's RunRequest: pure. `image_device`: the image's dlbox.device label (a
    `cpu` image, or --gpus none, hides the GPUs); `runs_made`: the runs folder was made for
    this run, which its container's label says, so that the run that removes the container of a
    killed one removes that folder too when it was left empty (review)."""
    mounts = []
    environment = dict(options.environment)
    if data_dir is not None:
        mounts.append(engine.Mount(str(data_dir), S.DATA_DIR))
        environment.setdefault("DLBOX_DATA", S.DATA_DIR)  # a user's --env wins (review)
    if runs_dir is not None:
        mounts.append(engine.Mount(str(runs_dir), S.RUNS_DIR))
    mounts.extend(options.volumes)
    # uids with no entry in the image's passwd still need a writable home (matplotlib, torch).
    environment.setdefault("HOME", S.IMAGE_HOME if uid == S.IMAGE_UID else "/tmp")
    if gpus is None and (options.gpus is not None or image_device == "cpu"):
        # --gpus none, or dlbox's CPU image: no GPU, not even through an image's
        # NVIDIA_VISIBLE_DEVICES=all under nvidia as the default runtime; an image dlbox did
        # not build keeps what its own env and the engine give it (re-review: a
        # pytorch/pytorch image lost its GPUs); a user's --env wins
        environment.setdefault(*NO_GPU_ENV)
    return engine.RunRequest(
        image=options.image,
        command=options.command,
        gpus=gpus,
        shm_size=options.shm_size,
        mounts=tuple(mounts),
        user=f"{uid}:{gid}",
        environment=tuple(sorted(environment.items())),
        workdir=S.WORKDIR,
        labels=((RUN_LABEL, "1"), (OWNER_LABEL, owner_id()),
                *(((RUNS_MADE_LABEL, str(runs_dir)),)
                  if runs_made and runs_dir is not None and is_utf8(str(runs_dir)) else ())),
        stdin_open=stdin_open,
        tty=tty,
        ports=options.ports,
        host_ip=options.host_ip,
    )


def files_changed(labels: dict[str, str], project_dir: Path) -> bool:
    """Whether the project's files differ from those the image got (False when the image
    does not say, as one an older dlbox built, or the folder is no project now)."""
    from dlbox.container.context import project_digest
    from dlbox.container.project import detect_project
    from dlbox.errors import DlboxError

    built = labels.get(S.FILES_LABEL)
    if not built or not labels.get(S.SOURCE_LABEL):
        return False
    try:
        return project_digest(detect_project(project_dir)) != built
    except DlboxError:
        return False


def folder_names(folder: Path | None) -> set[str]:
    """The names in `folder` (none when it is None or cannot be read)."""
    try:
        return set(os.listdir(folder)) if folder is not None else set()
    except OSError:
        return set()


def made_here_note(runs_dir: Path, names: list[str], shown: int = 3) -> str | None:
    """Where the runs a command made are on this machine: the command printed them as the
    container sees them (/workspace/runs/NAME), which is no path here."""
    if not names:
        return None
    more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
    return (f"note: {S.RUNS_DIR} in the container is {runs_dir} here: "
            + ", ".join(str(runs_dir / name) for name in names[:shown]) + more)


BUILTIN_IMAGE = "dlbox:latest"  # what `image run` runs outside a project, without --tag


def default_data_mount(command: Sequence[str]) -> tuple[Path | None, str | None]:
    """The data dir mounted at /data without --data, and what to tell the user about it:
    $DLBOX_DATA, else the user cache dir, when it is a folder, or a missing one for `dlbox
    data fetch` (image run makes it; a file there is an error naming DLBOX_DATA, not a --data
    that was not given). Else nothing is mounted, which is said for a DLBOX_DATA that is no
    folder and for a dlbox command that reads the data (review: nothing was mounted without
    a word, and the container's hint sent the download into its own /data, gone with the
    container)."""
    directory = resolve_data_dir(None)
    use = dlbox_data_use(command)
    if directory.is_dir() or (use == "fetch" and not directory.exists()):
        return directory, None
    if use == "fetch":  # a file: named by where it came from, not as a --data (review)
        where = DATA_ENV_VAR if os.environ.get(DATA_ENV_VAR, "") else "the data folder"
        raise UsageError(f"{where} is {directory}, which is not a folder",
                         hint=f"set {DATA_ENV_VAR} to a folder (made if missing), or pass "
                              "--data DIR")
    if os.environ.get(DATA_ENV_VAR, "") and not asks_dlbox_for_help(command):
        return None, (f"warning: {DATA_ENV_VAR} is {directory}, which is not a folder, so no "
                      f"data is mounted at /data: fetch into it first (dlbox data fetch), or "
                      f"set {DATA_ENV_VAR} to the folder that holds the data (or pass --data "
                      f"DIR)")
    if use == "read":
        return None, (f"note: no data folder is mounted at /data: fetch the data on this "
                      f"machine with `dlbox data fetch` (it lands in {directory}), or pass "
                      f"--data DIR")
    return None, None


def default_run_image() -> tuple[str, Path | None]:
    """NAME:latest of the project in the current folder (what `dlbox image build` there
    tags), and that folder; else dlbox:latest and None."""
    folder = default_project_dir()
    if folder is None:
        return BUILTIN_IMAGE, None
    try:
        project = detect_project(folder)
    except DlboxError as error:
        # Review: it ran dlbox:latest (the built-in project) without a word, whose
        # /workspace lacks this project's files.
        raise UsageError(f"the project in this folder cannot be read, so its image is "
                         f"not known: {error.message}",
                         hint=f"{error.hint + '; or' if error.hint else 'fix it, or'} "
                              "pass --tag IMAGE to run an image you built") from None
    return f"{project.image_name}:latest", project.root


def default_runs_dir() -> Path:
    """./runs, or from a subfolder of a project the runs/ of its top folder (review: runs/
    made in the project's code went into the next build, and the image looked out of date;
    the top folder's runs/ is left out by default)."""
    if default_project_dir() is None:
        above = project_above(Path.cwd())
        if above is not None:
            return above / "runs"
    return Path("runs")


def container_arguments(command: Sequence[str], runs_dir: Path, cwd: Path
                        ) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The command with each argument (or the VALUE of an --opt=VALUE) that is a path (with
    a /) into the mounted runs folder on this machine, absolute or from `cwd`, there or not
    yet, given as the container's path (/workspace/runs/...), and the (argument, new
    argument) pairs changed: the command reads its arguments in the container (review:
    `dlbox evaluate /home/you/runs/X`, the path dlbox's note printed, "does not exist"
    there; ../runs/X from a subfolder too; re-review: `--output /home/you/runs/X/eval2`, not
    there yet, and `--output=...` were written in the container, lost). A path is in the
    runs folder as written (lexically) or by the folders of it that exist (links
    followed). One that already means the same in /workspace (runs/X from the project's
    top) is left as it is; so is, when `cwd` is in the runs folder, a relative one that is
    not there (a word of a shell script, say)."""
    bases = (Path(os.path.abspath(runs_dir)), runs_dir.resolve())
    inside_runs = any(cwd.is_relative_to(base) for base in bases)
    mapped, changed = list(command), []
    for at, arg in enumerate(command[1:], 1):
        option, _, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if value.startswith("-") or "/" not in value:
            continue
        relative = not value.startswith("/")
        if relative and inside_runs and not os.path.exists(cwd / value):  # no OSError
            continue
        where = (Path(os.path.normpath(cwd / value)), (cwd / value).resolve())
        rel = next((path.relative_to(base).as_posix() for path in where for base in bases
                    if path.is_relative_to(base)), None)
        if rel is None:
            continue
        inside = S.RUNS_DIR if rel == "." else f"{S.RUNS_DIR}/{rel}"
        if inside == value or (relative and posixpath.normpath(f"{S.WORKDIR}/{value}") == inside):
            continue
        mapped[at] = f"{option}={inside}" if option else inside
        changed.append((arg, mapped[at]))
    return tuple(mapped), changed


def container_arguments_note(changed: list[tuple[str, str]]) -> str:
    """The note for the arguments container_arguments changed."""
    pairs = ", ".join(f"{arg} {'is passed ' if at == 0 else ''}as {inside}"
                      for at, (arg, inside) in enumerate(changed))
    return (f"note: the command runs in {S.WORKDIR} and reads its arguments as the "
            f"container's paths: {pairs}")


def project_above_warning(doing: str, fix: Callable[[Path, str], str]) -> str | None:
    """`image run` or `image build` in a subfolder of a project's code takes dlbox's own
    image or project: the warning that says so, with the ways to the project's (review: run
    ran without a word, and made runs/ in the code; build only noted that the folder has no
    requirements.txt); None when no project is above. `doing`: what this does instead
    ("runs dlbox's own image, dlbox:latest"); `fix`: the way out for the project folder
    above and its image."""
    found = project_image_above(Path.cwd())
    if found is None:
        return None
    return (f"warning: no project in this folder, so this {doing}; for the project in "
            f"{found[0]}, {fix(*found)}")


def project_tag(folder: Path | None) -> str | None:
    """NAME:latest, what `dlbox image build` tags the project in `folder` (None: none)."""
    if folder is None:
        return None
    try:
        return f"{detect_project(folder).image_name}:latest"
    except DlboxError:
        return None


def _from_checkout() -> str:
    """The words " from a dlbox checkout" where builtin_build_command() takes one as
    PROJECT_DIR (an installed dlbox; review: its hints named a bare `dlbox image build`,
    which fails outside a project), else none."""
    return " from a dlbox checkout" if CHECKOUT_PLACEHOLDER in builtin_build_command() else ""


def missing_image_hint(client: Any, options: RunOptions) -> str:
    """What to run for an image that is not here: the images built from this folder under
    other tags, when there are (review: "build it first" in a folder built with --tag); a
    name given with --tag is checked or built."""
    if options.named:
        if engine.registry_image(options.image):
            return engine.pull_hint(options.image)
        if options.image == project_tag(options.here):
            return (f"check the name (docker images lists those here), or build it: dlbox "
                    f"image build --tag {options.image}")
        if options.image.partition(":")[0] == BUILTIN_IMAGE.partition(":")[0]:
            # dlbox, dlbox:gpu: the built-in project's, under any tag (re-review)
            return (f"check the name (docker images lists those here), or build it"
                    f"{_from_checkout()}: {builtin_build_command()} --tag {options.image}")
        return (f"check the name (docker images lists those here), pull it (docker pull "
                f"{options.image}) or build it: dlbox image build --tag {options.image}")
    if options.project_dir is None:  # no project here: the built-in project's image
        return (f"build it first{_from_checkout()}: {builtin_build_command()} (or pass --tag "
                "IMAGE)")
    try:
        images = client.images.list(
            filters={"label": f"{S.SOURCE_LABEL}={S.source_id(options.project_dir)}"})
    except Exception:  # noqa: BLE001 - the hint without them
        images = []
    built = sorted(tag for image in images for tag in image.tags
                   if not tag.endswith(("-deps", "-failed")))
    if built:
        return (f"this folder's image is tagged {' and '.join(built[:3])}: pass --tag "
                f"{built[0]}, or build {options.image} with `dlbox image build`")
    return "build it first: dlbox image build (or pass --tag IMAGE)"


def host_facts() -> Any:
    """The doctor's probe of this host (NVIDIA driver, GPUs, Docker), without deep imports."""
    from dlbox.hostenv.probe import probe_host

    return probe_host(deep=False)


def run_in_image(options: RunOptions, log: Log, client: Any = None,
                 facts: Callable[[], Any] = host_facts) -> RunOutcome:
    """Run the command to completion (streaming its output): its exit code, and why the image
    could not start it when it could not. Its warnings and notes go to `log`, one line each,
    as they come: those on the run before the command's output."""
    # Before the engine's connection can take fd 0, when our stdin is closed.
    stdin_open, tty = terminal_mode(options.no_tty)
    client = client or engine.connect()
    data = engine.inspect_image(client, options.image)
    if data is None:
        raise UsageError(f"image {options.image} is not on this machine",
                         hint=missing_image_hint(client, options))
    labels = engine.image_labels(data)
    if options.project_dir is not None and S.built_from_elsewhere(labels, options.project_dir):
        log(f"warning: {options.image} was built from another project folder called "
            f"{options.project_dir.name!r}, not this one ({options.project_dir}): it runs "
            "that folder's code. Build this one with `dlbox image build --tag NAME:TAG`, "
            "or pass --tag")
    rebuild = "dlbox image build" if options.project_dir is not None else \
        f"dlbox image build --tag {options.image} (with the flags it was built with)"
    # Another folder built the image: the project here is not its /workspace.
    foreign = options.here is not None and S.built_from_elsewhere(labels, options.here)
    changed = options.here is not None and not foreign and files_changed(labels, options.here)
    if changed:
        log(f"warning: the project's files changed since {options.image} was built: it "
            f"runs the code of its build. Rebuild it first: {rebuild}")
    note = shell_wrapper_note(options.command)
    if note:
        log(note)
    gpus = parse_gpus(options.gpus, labels.get(DEVICE_LABEL))
    if gpus is not None:
        check_gpus_available(gpus, facts())
    if options.ports and engine.is_local_engine():  # a remote engine's ports are not ours
        check_ports_free(options.host_ip, options.ports)
    euid, egid = os.geteuid(), os.getegid()
    uid, gid = container_user(euid, egid)
    data_dir = None
    if options.data_dir is not None:
        data_dir = data_mount(options.data_dir, options.command, uid, gid, euid == 0, log)
    # Containers of killed runs: done (exited), or never started (created); and the runs
    # folder one made, left empty (before this run takes its own runs folder)
    for name in remove_orphaned(client, RUN_LABEL, ("exited", "created"),
                                after=lambda labels: _remove_runs_made_empty(client, labels)):
        log(f"note: removed container {name}, left behind by a dlbox image run that was "
            "killed")
    runs_dir, made = runs_mount(options, uid, gid, euid == 0, log)
    try:
        if runs_dir is not None:
            note = runs_go_into_the_image_note(options.here, runs_dir)
            if note:
                log(note)
            try:
                command, passed = container_arguments(options.command, runs_dir, Path.cwd())
            except OSError:  # the current folder is gone: nothing to read from it
                passed = []
            if passed:
                log(container_arguments_note(passed))
                options = dataclasses.replace(options, command=command)
        if tty:
            environment = dict(options.environment)
            environment.setdefault("TERM", os.environ.get("TERM", "xterm"))
            options = dataclasses.replace(options, environment=tuple(environment.items()))
        request = run_request(options, gpus, uid, gid, data_dir, runs_dir, stdin_open, tty,
                              runs_made=made, image_device=labels.get(DEVICE_LABEL))
        before = folder_names(runs_dir)
        result = engine.run_streaming(client, request, stdin_fd=0 if stdin_open else None)
        if runs_dir is not None:
            note = made_here_note(runs_dir, sorted(folder_names(runs_dir) - before))
            if note:
                log(note)
    finally:
        if made and runs_dir is not None:  # made for this run: not left behind empty
            _remove_if_empty_and_unused(client, runs_dir)
    problem = None
    if result.exit_code in (126, 127):
        # The project here is the image's /workspace unless another folder built the image.
        problem = not_runnable(result.stderr_tail,
                               dataclasses.replace(options, here=None) if foreign else options,
                               result.exit_code, rebuild if changed else None)
    return RunOutcome(result.exit_code, problem)


def _remove_runs_made_empty(client: Any, labels: dict[str, str]) -> None:
    """The runs folder a killed image run made (RUNS_MADE_LABEL), if it is still empty and
    no running image run uses it."""
    made = labels.get(RUNS_MADE_LABEL)
    if made:
        _remove_if_empty_and_unused(client, Path(made))


def _remove_if_empty_and_unused(client: Any, folder: Path) -> None:
    """rmdir `folder` unless a running `dlbox image run` container mounts it: another dlbox
    may have taken it, empty, for its own run since (re-review: its writes then failed,
    'Directory nonexistent'). Not empty, gone, or the engine not answering: kept."""
    try:
        running = engine.list_containers(client, RUN_LABEL, ("running",))
        sources = {mount.get("Source") for container in running
                   for mount in container.attrs.get("Mounts") or []}
    except Exception:  # noqa: BLE001 - tidying up never fails; kept when unsure
        return
    if str(folder) in sources:
        return
    with contextlib.suppress(OSError):  # not empty (a run wrote there), or gone
        folder.rmdir()


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int  # the command's
    problem: ContainerError | None = None  # why the image could not start it, if it could not


def project_path(command: str, here: Path | None) -> Path | None:
    """The path on this machine of what `command` names in the project's copy in the image
    (./train.py, tools/x.py, /workspace/src), when dlbox runs in the project; None for a
    bare name (looked up on PATH) or a path outside the project."""
    if here is None or "/" not in command:
        return None
    path = PurePosixPath(command)
    if path.is_absolute():
        if not path.is_relative_to(S.WORKDIR):
            return None
        path = path.relative_to(S.WORKDIR)
    return here / path


def project_script(command: str, here: Path | None) -> tuple[str, str] | None:
    """The #! line (a CR at its end kept) and the path on this machine of the project's
    script that `command` names in the image (project_path), when dlbox runs in the
    project; None for another command, or a file with no #! line."""
    script = project_path(command, here)
    if script is None:
        return None
    try:
        with open(script, "rb") as file:
            first = file.readline(512)
    except OSError:  # none here, or a folder
        return None
    if not first.startswith(b"#!"):
        return None
    return first.rstrip(b"\n").decode(errors="replace"), str(script)


def not_runnable(stderr_tail: bytes, options: RunOptions, exit_code: int = 127,
                 rebuild: str | None = None) -> ContainerError | None:
    """The error for a command the image cannot start (tini's 'exec X failed', a script
    whose #! line ends in a CR, or whose `#!/usr/bin/env NAME` names no program of the
    image, which `env` says), or None when the command itself exited with 126/127.
    `rebuild`: how to rebuild the image, when the project's files changed since its build:
    the script here may then not be the image's (review: a script added since the build was
    blamed on its interpreter)."""
    match = re.search(rb"\[FATAL tini \(\d+\)\] exec (.+?) failed: ([^\r\n]+)", stderr_tail)
    if not match:
        command = options.command[0] if options.command else ""
        shebang = project_script(command, options.here) if exit_code == 127 else None
        if shebang is None:
            return None
        name = engine.shebang_interpreter(shebang[0])[1]
        env_said = re.search(rb"env: (?:'|\xe2\x80\x98)?" + re.escape(name.encode())
                             + rb"(?:'|\xe2\x80\x99)?: No such file or directory", stderr_tail)
        if not shebang[0].endswith("\r") and not env_said:
            return None
        return engine.CommandNotRunnable(command, "No such file or directory", options.image,
                                         S.WORKDIR, shebang)
    command = match.group(1).decode(errors="replace")
    why = match.group(2).decode(errors="replace")
    shebang = project_script(command, options.here)
    if shebang is not None and rebuild is not None and "permission denied" not in why.lower():
        return ContainerError(f"{command} cannot start in {options.image} ({why}): the "
                              f"project's files changed since {options.image} was built, so "
                              "it may lack the file, or have another version of it",
                              hint=f"rebuild it first: {rebuild}")
    found = project_path(command, options.here)  # a folder of the project (review)
    return engine.CommandNotRunnable(command, why, options.image, S.WORKDIR, shebang,
                                     folder=found is not None and found.is_dir())
