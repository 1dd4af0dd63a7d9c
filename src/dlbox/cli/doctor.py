"""`dlbox doctor`: what this host can run, what is wrong, and the fix; `--resolve` a build."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from dlbox.cli.common import path_flag, reject_empty_paths
from dlbox.errors import (
    EXIT_ERROR,
    EXIT_OK,
    DlboxError,
    FileWriteError,
    HostEnvError,
    UsageError,
)
from dlbox.fileio import check_writable
from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.probe import (
    collect_raw,
    facts_from_raw,
    is_recording_file,
    load_raw,
    save_recording,
)
from dlbox.hostenv.recording import HOST_JSON, RecordingError
from dlbox.hostenv.report import render_build, render_text, report_dict
from dlbox.hostenv.resolve import (
    SUPPORTED_FRAMEWORKS,
    NoBuildForPython,
    Target,
    normalize_target,
    resolve_build,
    target_from_host,
)
from dlbox.hostenv.rules import broken_driver_error, evaluate, has_errors
from dlbox.text import in_words, shell_quote

RECORD_WHERE_HINT = "pass a folder you can write to, e.g. dlbox doctor --record host-rec/"
RECORDING_HINT = ("re-record it with: dlbox doctor --record DIR (the files and their fields are "
                  "described under 'Recordings' in docs/doctor.md)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check GPU, driver, CUDA, frameworks and Docker; resolve a build that runs",
        description=(
            "Probe this host (read-only) and report what is wrong with the fix, errors first; "
            "exit 1 when there is an error. With --resolve, print the newest framework build "
            "that this host (or a host given by --driver/--compute-capability, or --cpu) runs."
        ),
    )
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of a table (on failure: error, hint, exit_code)")
    parser.add_argument("--resolve", metavar="FRAMEWORK", choices=SUPPORTED_FRAMEWORKS,
                        help="resolve a build: torch, tensorflow or jax")
    parser.add_argument("--driver", metavar="VERSION",
                        help="with --resolve: a hypothetical NVIDIA driver, e.g. 535.104.05")
    parser.add_argument("--compute-capability", metavar="X.Y", action="append", default=[],
                        dest="compute_capability",
                        help="with --resolve: a GPU's compute capability, e.g. 8.6 (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="with --resolve: a CPU-only build")
    parser.add_argument("--python", metavar="X.Y", help="with --resolve: the Python version")
    parser.add_argument("--cuda", metavar="X.Y", help="with --resolve: force a CUDA version")
    parser.add_argument("--framework-version", metavar="V",
                        help="with --resolve: pin the framework release, e.g. 2.13 or 2.13.0")
    parser.add_argument("--deep", action=argparse.BooleanOptionalAction, default=None,
                        help="import installed frameworks to check them (default: only when "
                             "an NVIDIA GPU is present)")
    parser.add_argument("--record", metavar="DIR", type=path_flag,
                        help="also save the raw probe outputs to DIR (to share or replay)")
    parser.add_argument("--replay", metavar="DIR", type=path_flag,
                        help="check a recorded host (a folder written by --record) instead "
                             "of probing this one")
    parser.set_defaults(func=run)


def _facts(args: argparse.Namespace) -> HostFacts:
    if args.replay is not None:
        if args.record is not None:
            raise UsageError("--record and --replay cannot be combined",
                             hint="record on the host, replay elsewhere")
        if args.replay.is_file():
            hint = (f"pass its folder: dlbox doctor --replay {args.replay.parent}"
                    if args.replay.name == HOST_JSON
                    else "pass the folder that `dlbox doctor --record DIR` wrote")
            raise UsageError(f"{args.replay} is a file: --replay takes a recording's folder "
                             f"(the one that holds {HOST_JSON})", hint=hint)
        if not args.replay.exists():
            raise UsageError(f"{args.replay} does not exist: --replay takes a recording's "
                             f"folder (the one that holds {HOST_JSON})",
                             hint="create one with: dlbox doctor --record DIR")
        if not (args.replay / HOST_JSON).is_file():
            raise UsageError(f"{args.replay} is not a dlbox host recording (no {HOST_JSON})",
                             hint="create one with: dlbox doctor --record DIR")
        try:
            raw = load_raw(args.replay)
        except RecordingError as error:
            readable = f"make it readable (`chmod a+r {shell_quote(error.path)}`)"
            raise UsageError(str(error), hint=readable if error.denied else RECORDING_HINT
                             ) from error
        except OSError as error:
            searchable = f"make the folder readable (`chmod u+rx {shell_quote(args.replay)}`)"
            raise UsageError(f"cannot read recording {args.replay}: "
                             f"{error.strerror or error}",
                             hint=searchable if isinstance(error, PermissionError)
                             else RECORDING_HINT) from error
    else:
        if args.record is not None and args.record.exists() and not args.record.is_dir():
            raise UsageError(f"{args.record} is a file: --record takes a folder to write the "
                             "recording into", hint="pass a new or empty folder, e.g. "
                                                    "dlbox doctor --record host-rec/")
        if args.record is not None and args.record.is_dir() \
                and not (args.record / HOST_JSON).is_file() \
                and any(not is_recording_file(child.name) for child in args.record.iterdir()):
            # an earlier recording (host.json) is replaced whole; any other folder is not ours
            raise UsageError(f"{args.record} is not empty and holds no dlbox recording (no "
                             f"{HOST_JSON})", hint="pass a new or empty folder, e.g. "
                                                   "dlbox doctor --record host-rec/")
        if args.record is not None:  # before the probe; a bad place is exit 2, not 1 (a
            # host with an error finding)
            try:
                check_writable(args.record / HOST_JSON, "--record")
            except FileWriteError as error:
                raise UsageError(f"cannot write the recording to {args.record}: "
                                 f"{error.reason}", hint=RECORD_WHERE_HINT) from None
        raw = collect_raw(deep=args.deep)
        if args.record is not None:
            try:
                save_recording(raw, args.record)
            except OSError as error:
                raise HostEnvError(f"cannot write the recording to {args.record}: "
                                   f"{error.strerror or error}",
                                   hint=RECORD_WHERE_HINT) from error
    return facts_from_raw(raw)


class _StdoutConsole(Console):
    """rich's console, but a closed stdout (`dlbox doctor | head`) is the BrokenPipeError
    that dlbox's main ends with 141 as for every command: rich's own exit 1 read as "this
    host has an error" (review)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except DlboxError as error:
        if args.json:  # a script reading stdout gets the reason too, not an empty document
            print(json.dumps({"error": error.message, "hint": error.hint,
                              "exit_code": error.exit_code}, indent=2))
        raise


def _python_refused(error: NoBuildForPython, args: argparse.Namespace,
                    host_python: str | None) -> DlboxError:
    """No release for the Python resolved for: a --python given is a bad value (exit 2, as
    --cuda's), the host's is told as the host's, with the --python that would do (seen and
    left alone: its hint said "leave --python out" where none was given). `host_python`:
    the Python a resolve without --python is for (None: any, a hypothetical host's)."""
    if args.python is not None or not error.pythons:
        # "leave --python out" only where that resolves (re-review: the host's was refused)
        leave_out = host_python is None or host_python in error.pythons
        return UsageError(error.message, hint=f"use one of Python {', '.join(error.pythons)}"
                                              + (", or leave --python out" if leave_out
                                                 else ""))
    whose = "the recorded host's" if args.replay is not None else "this host's"
    hint = (f"resolve for a Python it supports with --python {error.pythons[-1]} (it supports "
            f"{in_words(error.pythons)})")
    if args.framework_version is not None:
        hint += ", or leave --framework-version out"
    return HostEnvError(f"{error.message}, {whose}", hint=hint)


def _run(args: argparse.Namespace) -> int:
    console = _StdoutConsole(highlight=False)
    reject_empty_paths(args, ("record", "replay"))
    # `--framework-version "$V"` with V unset is an error, not a resolve without a pin.
    for name, values in (("driver", [args.driver]), ("python", [args.python]),
                         ("cuda", [args.cuda]), ("framework_version", [args.framework_version]),
                         ("compute_capability", args.compute_capability)):
        if any(value is not None and not value.strip() for value in values):
            flag = f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} was given an empty value",
                             hint=f"pass a value after {flag} (is the shell variable you used "
                                  "set?), or leave the flag out")
    hypothetical = (args.driver is not None or args.compute_capability or args.cpu
                    or args.cuda is not None or args.python is not None
                    or args.framework_version is not None)
    given = [flag for flag, value in (("--driver", args.driver is not None),
                                      ("--compute-capability", args.compute_capability),
                                      ("--cpu", args.cpu)) if value]
    if given and (args.record is not None or args.replay is not None):
        # the hint says what either way gives (review: it was the command that had failed)
        real = (f"--replay {shell_quote(args.replay)}" if args.replay is not None
                else f"--record {shell_quote(args.record)}")
        them = " and ".join(given)
        check = "the recorded host" if args.replay is not None else "this host and record it"
        raise UsageError("--record and --replay are about a real host; --driver, "
                         "--compute-capability and --cpu describe a hypothetical one",
                         hint=f"leave out {them} to check {check}, or leave out {real} to "
                              f"resolve for the host that {them} "
                              f"{'describe' if len(given) > 1 else 'describes'}")
    if hypothetical and not args.resolve:
        raise UsageError("--driver, --compute-capability, --cpu, --python, --cuda and "
                         "--framework-version go with --resolve",
                         hint="e.g. dlbox doctor --resolve torch --driver 535.104.05 "
                              "--compute-capability 8.6")
    if args.resolve:
        if args.driver is not None or args.compute_capability or args.cpu:
            target = Target(driver=args.driver,
                            compute_capabilities=tuple(args.compute_capability),
                            cpu=args.cpu, python=args.python, cuda=args.cuda,
                            version=args.framework_version)
            host_python = None
        else:
            facts = _facts(args)
            broken = broken_driver_error(facts, args.resolve)
            if broken is not None:
                raise broken
            host = target_from_host(facts)
            if host.cpu and args.cuda:  # resolve's own message says "drop --cpu"
                # a recording: --driver cannot go with --replay (review: the hint said so)
                what = "the recorded host has" if args.replay else "this machine has"
                fix = ("leave --replay out and add its --driver VERSION" if args.replay
                       else "add its --driver VERSION")
                raise UsageError(f"--cuda {args.cuda}: {what} no NVIDIA driver, so it "
                                 "resolves a CPU-only build, which has no CUDA version",
                                 hint=f"to resolve for a GPU machine, {fix} (and "
                                      "--compute-capability X.Y); or drop --cuda")
            target = Target(driver=host.driver, compute_capabilities=host.compute_capabilities,
                            cpu=host.cpu, python=args.python or host.python, cuda=args.cuda,
                            version=args.framework_version, listed=host.listed)
            host_python = host.python
        try:
            build = resolve_build(args.resolve, target)
        except NoBuildForPython as error:
            raise _python_refused(error, args, host_python) from None
        if args.json:  # the target as resolved (review: " 535.104.05 ", sm_86 as given)
            shown = {name: value for name, value in normalize_target(target).__dict__.items()
                     if name != "listed"}
            print(json.dumps({"target": shown, "build": build.to_dict()}, indent=2))
        else:
            render_build(build, console)
        return EXIT_OK

    facts = _facts(args)
    findings = evaluate(facts)
    if args.json:
        print(json.dumps(report_dict(facts, findings), indent=2))
    else:
        render_text(facts, findings, console)
    return EXIT_ERROR if has_errors(findings) else EXIT_OK
