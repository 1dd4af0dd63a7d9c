"""`dlbox image build|run`: the project in a Docker image (CPU or NVIDIA GPU), and commands in it.

`build` renders the Dockerfile (a pure function of the project, the resolved framework build
and dlbox.lock), builds it through the Docker Engine API, smoke-tests the image and tags it;
`--dry-run` prints the Dockerfile without touching the engine. `run` runs a command in the
image with GPUs, the data and the runs folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlbox.cli.common import path_flag, reject_empty_paths, reject_empty_positional
from dlbox.errors import DlboxError, UsageError
from dlbox.text import shell_quote, tell


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "image", help="build the project into a Docker image (CPU or GPU), run commands in it",
        description="Package a deep-learning project and its dependencies into a Docker image "
                    "whose framework build runs on the target host, and run commands in it.",
    )
    # `dlbox image` without its command: cli._parse says which it takes
    actions = parser.add_subparsers(dest="image_command", metavar="ACTION")
    _register_build(actions)
    _register_run(actions)


def _register_build(actions: argparse._SubParsersAction) -> None:
    build = actions.add_parser(
        "build", help="build the image (default project: the current folder, else dlbox's "
                      "own CIFAR-10 project)",
        description="Build PROJECT_DIR (a folder with requirements.txt, pyproject.toml or "
                    "setup.py; default: the current folder when it has one of them, else the "
                    "built-in dlbox CIFAR-10 project) into an image. The built-in project is "
                    "built from a dlbox checkout: the one dlbox runs from, or one passed as "
                    "PROJECT_DIR (a dlbox installed from a wheel has none of its own). The "
                    "first build resolves every requirement and writes dlbox.lock next to the "
                    "project; later builds install exactly what it pins.",
    )
    build.add_argument("project_dir", nargs="?", metavar="PROJECT_DIR",
                       help="project folder (default: the current folder when it holds "
                            "requirements.txt, pyproject.toml or setup.py, else the built-in "
                            "dlbox project, from the checkout dlbox runs from; a dlbox "
                            "checkout given here is the built-in project too)")
    device = build.add_mutually_exclusive_group()
    device.add_argument("--cpu", dest="device", action="store_const", const="cpu",
                        help="a CPU framework build")
    device.add_argument("--gpu", dest="device", action="store_const", const="gpu",
                        help="an NVIDIA GPU build for this host's driver (or --driver)")
    device.add_argument("--auto", dest="device", action="store_const", const="auto",
                        help="GPU when this host has a usable NVIDIA GPU, else CPU (default)")
    build.add_argument("--framework", choices=("torch", "tensorflow", "jax"),
                       help="framework (default: the framework the requirements name or build "
                            "on (flax: jax), else torch)")
    build.add_argument("--framework-version", metavar="V",
                       help="pin the framework release (default: the newest the target runs)")
    build.add_argument("--driver", metavar="VERSION",
                       help="NVIDIA driver of the machine that will run the image "
                            "(GPU builds on a machine without one), e.g. 550.54.15")
    build.add_argument("--cuda", metavar="X.Y", help="force a CUDA version for the GPU build")
    build.add_argument("--compute-capability", metavar="X.Y", action="append", default=[],
                       dest="compute_capability",
                       help="the target GPU's compute capability, e.g. 8.6 (repeatable)")
    build.add_argument("--tag", "-t", metavar="NAME:TAG",
                       help="image tag (default: <project>:<variant> and <project>:latest)")
    build.add_argument("--base-image", metavar="IMAGE",
                       help="base image: any Debian/Ubuntu image with apt (default: the "
                            "one in dlbox.lock; for a first build $DLBOX_BASE_IMAGE, else "
                            "python:3.11-slim-bookworm)")
    build.add_argument("--wheelhouse", metavar="DIR", type=path_flag,
                       help="folder of wheels to install from first (offline builds)")
    build.add_argument("--offline", action="store_true",
                       help="install only from --wheelhouse (pip --no-index)")
    build.add_argument("--ca-cert", metavar="FILE", type=path_flag,
                       help="CA certificate of a TLS-intercepting proxy, trusted in the build")
    build.add_argument("--extras", metavar="NAME", action="append",
                       help="optional-dependency groups of a pyproject project (repeatable)")
    build.add_argument("--lock", metavar="FILE", type=path_flag,
                       help="lock file (default: PROJECT_DIR/dlbox.lock)")
    build.add_argument("--relock", action="store_true",
                       help="resolve again and rewrite the lock entry for this build")
    build.add_argument("--no-cache", action="store_true", help="build without the layer cache")
    build.add_argument("--no-smoke", action="store_true",
                       help="skip the smoke test inside the new image")
    build.add_argument("--no-compile-check", action="store_true",
                       help="in the smoke test, do not compile the project's .py files (for "
                            "templates or Python 2 files it ships); the other checks run")
    build.add_argument("--dry-run", action="store_true",
                       help="print the Dockerfile (and how it was chosen); build nothing")
    build.add_argument("--json", action="store_true",
                       help="print the outcome as JSON (with --dry-run: the notes and the "
                            "Dockerfile)")
    build.set_defaults(func=run_build, device="auto")


def _register_run(actions: argparse._SubParsersAction) -> None:
    run = actions.add_parser(
        "run", help="run a command in the image (GPUs, data and runs folder mounted)",
        description="Run CMD in the image: `dlbox image run -- dlbox train --epochs 1`. "
                    "The data folder is mounted at /data, the runs folder at /workspace/runs "
                    "(where `dlbox train` writes), and the container runs as your uid "
                    "(uid 1000 when you are root). Ctrl-C or SIGTERM stops it like "
                    "`docker stop`, so training saves its checkpoint; a second Ctrl-C kills "
                    "it. When the command has a terminal (dlbox at an interactive terminal), "
                    "Ctrl-C goes to the command through it, as with docker run -it.",
    )
    run.add_argument("--tag", "-t", metavar="IMAGE",
                     help="image to run (default: NAME:latest of the project in the current "
                          "folder, as `dlbox image build` tags it; else dlbox:latest, the "
                          "last build of the built-in project, from a dlbox checkout)")
    run.add_argument("--no-tty", action="store_true",
                     help="no terminal for the command, and the terminal's input not passed "
                          "on (default: at a terminal the command gets one, as with docker "
                          "run -it; input from a pipe or a file is always passed on)")
    run.add_argument("--gpus", metavar="all|N|ID,ID|none",
                     help="GPUs to give the container: all, a count, indexes or GPU-/MIG- "
                          "UUIDs as nvidia-smi -L prints them, or none (default: all for a "
                          "GPU image, none for a CPU image); a GPU the host cannot give is "
                          "an error")
    run.add_argument("--shm-size", default="2g", metavar="SIZE",
                     help="size of /dev/shm (default 2g: a project's DataLoader workers pass "
                          "batches through it; dlbox's own training uses none)")
    run.add_argument("--data", metavar="DIR", type=path_flag,
                     help="data folder to mount at /data (default: $DLBOX_DATA, else the user "
                          "cache dir, when it exists; for `dlbox data fetch` it is made)")
    run.add_argument("--runs", metavar="DIR", type=path_flag,
                     help="folder for run directories, mounted at /workspace/runs "
                          "(default: runs/ in the top folder of the project the current "
                          "folder is in, from a subfolder of it too; else ./runs; one made "
                          "for the run is removed when the run leaves it empty, and where it "
                          "cannot be made only dlbox train/evaluate fail). The command runs "
                          "in /workspace; an argument (or --opt=VALUE) that is a path into "
                          "the runs folder here, there or not yet, is passed as the "
                          "container's")
    run.add_argument("--env", "-e", metavar="NAME[=VALUE]", action="append", default=[],
                     help="an environment variable for the command (repeatable); NAME alone "
                          "passes this shell's value on")
    run.add_argument("--publish", "-p", metavar="[HOST_PORT:]CONTAINER_PORT", action="append",
                     default=[],
                     help="publish a TCP port of the container on this machine (repeatable; "
                          "docker's order, host first; one port is the same on both). Only "
                          "on 127.0.0.1 by default, so a notebook or a demo is not on the "
                          "network: IP:HOST_PORT:CONTAINER_PORT picks the address (e.g. "
                          "0.0.0.0, one for all -p)")
    run.add_argument("--volume", "-v", metavar="HOST_DIR:CONTAINER_PATH[:ro]", action="append",
                     default=[],
                     help="mount a folder (or file) of this machine (from the current "
                          "folder; it must exist) at an absolute path in the container, "
                          "read-only with :ro (repeatable); not over /workspace, "
                          "/workspace/runs or a mounted /data: use --runs and --data for "
                          "those")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...",
                     help="the command (default: the image's own: `dlbox --help` in "
                          "dlbox's image, python3 in a project's)")
    run.set_defaults(func=run_run)


def _build_request(args: argparse.Namespace) -> Any:
    from dlbox.container.build import BuildRequest
    from dlbox.container.project import default_project_dir, foreign_project_error

    project_dir = Path(args.project_dir) if args.project_dir else default_project_dir()
    if project_dir is None and (foreign := foreign_project_error(Path.cwd())) is not None:
        raise foreign  # not the built-in project, in a folder that is plainly another's
    if project_dir is None:
        _warn_of_a_project_above(
            "builds dlbox's own CIFAR-10 project",
            lambda above, _: f"build it from there (cd {shell_quote(above)}) or pass its "
                             f"folder: dlbox image build {shell_quote(os.path.relpath(above))}")
    return BuildRequest(
        project_dir=project_dir,
        device=args.device,
        framework=args.framework,
        # stripped, as doctor --resolve takes it (review: " 2.5" was refused here only)
        framework_version=args.framework_version.strip() if args.framework_version else
        args.framework_version,
        driver=args.driver,
        cuda=args.cuda,
        compute_capabilities=tuple(args.compute_capability),
        tag=args.tag,
        base_image=args.base_image,
        wheelhouse=args.wheelhouse,
        offline=args.offline,
        ca_cert=args.ca_cert,
        extras=tuple(args.extras) if args.extras else None,
        lock_path=args.lock,
        relock=args.relock,
        no_cache=args.no_cache,
        smoke=not args.no_smoke,
        compile_check=not args.no_compile_check,
    )


class BuildProgress:
    """One line per Dockerfile step (`[3/14] RUN pip install ...`, `(cached)`), and the
    output of the step that is running, so a long pip install is not silent."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stderr

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            text = data["instruction"].splitlines()[0][:90]
            print(f"[{data['number']}/{data['total']}] {text}", file=self.out, flush=True)
        elif kind == "cached":
            print("    (cached)", file=self.out, flush=True)
        elif kind == "output":
            print(f"    {data['line'][:160]}", file=self.out, flush=True)


def run_build(args: argparse.Namespace) -> int:
    from dlbox.container.build import build_image, dry_run, example_command

    reject_empty_positional(args.project_dir, "PROJECT_DIR", "the project's folder",
                            ", or leave it out for the current folder")
    reject_empty_paths(args, ("wheelhouse", "ca_cert", "lock"))
    request = _build_request(args)
    if args.dry_run:
        dockerfile, notes = dry_run(request)
        if args.json:
            print(json.dumps({"dry_run": True, "notes": notes, "dockerfile": dockerfile},
                             indent=2))
            return 0
        for note in notes:
            print(f"# {note}", file=sys.stderr)
        print(dockerfile, end="")
        return 0

    def log(line: str) -> None:
        print(f"==> {line}", file=sys.stderr, flush=True)

    outcome = build_image(request, log=log, on_event=BuildProgress())
    summary = {
        "image_id": outcome.image_id,
        "tags": outcome.tags,
        "framework": outcome.spec.framework.name,
        "framework_version": outcome.spec.framework.version,
        "variant": outcome.spec.framework.variant,
        "cuda": outcome.spec.framework.cuda,
        "min_driver": outcome.spec.framework.min_driver,
        "python": outcome.entry.python,
        "base_image": outcome.spec.base_image,
        "lock": str(outcome.lock_path),
        "lock_written": outcome.lock_written,
        "seconds": outcome.seconds,
        "size_bytes": outcome.size_bytes,
        "steps": len(outcome.build.steps) if outcome.build else None,
        "cached_steps": outcome.build.cached_steps if outcome.build else None,
        "smoke": outcome.smoke.summary() if outcome.smoke else "skipped",
        "notes": outcome.notes,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for note in outcome.notes:
        if note not in outcome.said:  # the project's notes: said as the build started
            print(f"note: {note}")
    size = f", {outcome.size_bytes / 2**20:.0f} MiB" if outcome.size_bytes else ""
    cached = (f", {summary['cached_steps']}/{summary['steps']} steps from cache"
              if outcome.build else "")
    print(f"smoke test: {summary['smoke']}")
    print(f"built {', '.join(outcome.tags)} ({outcome.image_id[:19]}{size}) in "
          f"{outcome.seconds:.0f} s{cached}")
    print(f"run it: dlbox image run --tag {outcome.tags[0]} -- {example_command(outcome)}")
    return 0


def _parse_env(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--env NAME=VALUE, or --env NAME for this shell's value of NAME (as `docker run -e`
    does; an unset NAME is an error here, where docker leaves it out without a word)."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not name.strip() or any(ch.isspace() for ch in name):
            raise UsageError(f"--env {item!r} is not NAME=VALUE or NAME",
                             hint="e.g. --env SEED=1, or --env WANDB_API_KEY to pass this "
                                  "shell's value on")
        if not sep:
            if name not in os.environ:
                raise UsageError(f"--env {name}: {name} is not set in this shell, so there is "
                                 "no value to pass on", hint=f"export {name}=... first, or "
                                                             f"pass --env {name}=VALUE")
            value = os.environ[name]
        pairs.append((name, value))
    return tuple(pairs)


def _warn_of_a_project_above(doing: str, fix: Callable[[Path, str], str]) -> None:
    from dlbox.container.run import project_above_warning

    warning = project_above_warning(doing, fix)
    if warning is not None:
        print(warning, file=sys.stderr)


def run_run(args: argparse.Namespace) -> int:
    from dlbox.container.run import (
        RunOptions,
        check_shm_size,
        default_data_mount,
        default_run_image,
        default_runs_dir,
        parse_publish,
        parse_volumes,
        run_in_image,
    )
    from dlbox.container.spec import check_image_reference

    reject_empty_paths(args, ("data", "runs"))
    reject_empty_paths(args, ("gpus",), kind="value")  # "" was read as left out
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if command and not command[0].strip():  # `-- "$CMD"` with CMD unset: tini's own error
        raise UsageError("the command to run is empty (`-- \"\"`)",
                         hint="name the program after --, e.g. -- python3 train.py (is the "
                              "shell variable you used set?), or leave -- out for the "
                              "image's own command")
    if args.tag is None:
        image, project_dir = default_run_image()
        here = project_dir
        if project_dir is None:
            _warn_of_a_project_above(
                f"runs dlbox's own image, {image}",
                lambda above, name: f"run from there (cd {shell_quote(above)}) or pass "
                                    f"--tag {name}")
    else:  # a project here that cannot be read is no matter: the image is named
        from dlbox.container.project import default_project_dir

        image, project_dir = check_image_reference(args.tag), None
        here = None
        if default_project_dir() is not None:  # a removed current folder: its own error
            with contextlib.suppress(DlboxError):
                here = default_run_image()[1]
    shm_size = check_shm_size(args.shm_size)
    host_ip, ports = parse_publish(args.publish)
    data_dir = args.data
    if data_dir is None:
        data_dir, notice = default_data_mount(command)
        if notice is not None:
            print(notice, file=sys.stderr)
    volumes = parse_volumes(args.volume, data_mounted=data_dir is not None)
    options = RunOptions(
        image=image,
        no_tty=args.no_tty,
        named=args.tag is not None,
        command=tuple(command),
        gpus=args.gpus,
        shm_size=shm_size,
        data_dir=data_dir,
        runs_dir=args.runs if args.runs is not None else default_runs_dir(),
        runs_default=args.runs is None,
        environment=_parse_env(args.env),
        project_dir=project_dir,
        here=here,
        ports=ports,
        host_ip=host_ip,
        volumes=volumes,
    )
    outcome = run_in_image(options, log=tell)  # on stderr, apart from the command's stdout
    if outcome.problem is not None:
        from dlbox.cli import report_error

        report_error(outcome.problem)
    return outcome.exit_code
