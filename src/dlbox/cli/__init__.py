"""The `dlbox` command line: parse, call the library, map DlboxError to an exit code.

Each command lives in its own module with `register(subparsers)`, which adds its parser
and sets `func` (a callable taking the parsed args and returning an exit code).
No logic lives here beyond the dispatch, and telling a wrong command line (Parser).
"""

from __future__ import annotations

try:  # Ctrl-C while dlbox starts (review: a 30-line traceback from importlib, exit 1)
    import sys

    from dlbox.startup import CtrlCAfterwards

    with CtrlCAfterwards():
        import argparse
        import atexit
        import contextlib
        import errno
        import importlib
        import os
        import signal
        from collections.abc import Sequence
        from pathlib import Path
        from typing import Any, NoReturn

        from dlbox import __version__
        from dlbox.cli.common import EXIT_SIGTERM, Terminated, sigterm_stops_cleanly
        from dlbox.errors import (
            EXIT_ERROR,
            EXIT_INTERNAL,
            EXIT_INTERRUPTED,
            DlboxError,
            UsageError,
            first_line,
        )
        from dlbox.fileio import ACCESS_ERRNOS, unsearchable_folder
        from dlbox.text import in_words, shell_quote
except KeyboardInterrupt:
    import sys

    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None  # EXIT_INTERRUPTED, which may not be imported yet

DEBUG_ENV = "DLBOX_DEBUG"  # set to 1: an unexpected error shows its full traceback

# Order is the order `dlbox --help` lists them.
COMMAND_MODULES = (
    "doctor",
    "data",
    "models",
    "train",
    "evaluate",
    "predict",
    "image",
    "notebook",
)


class Parser(argparse.ArgumentParser):
    """dlbox's parser and its commands' (add_subparsers makes them of the same class): a
    parse error is a UsageError, one `error:` line and a `hint:` naming the command's
    --help, as every other bad value is told, not argparse's usage block (review: 9 lines
    of it above `dlbox train`'s error); a mistyped command is told with the closest one."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"`{self.prog} --help` says what it takes")

    given: list[str] = []  # the words this parser was handed (a command's: those after it)

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads, one behaviour
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self.given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            misplaced = _value_before_the_command(self, action.choices, value)
            if misplaced is not None:  # `dlbox --epochs 2 train`: not "no command '2'"
                raise misplaced
            raise UsageError(f"{self.prog} has no command '{value}'"
                             + _did_you_mean(value, list(action.choices), quoted=True),
                             hint=f"`{self.prog} --help` lists its commands")
        super()._check_value(action, value)


def _did_you_mean(given: str, known: list[str], quoted: bool = False) -> str:
    """": did you mean 'train'?" for the name in `known` closest to `given`; "" for none.
    Compared without case and leading dashes, which alone made --bogus a --gpus."""
    import difflib  # only when a command line is wrong

    def key(name: str) -> str:
        return name.lstrip("-").lower()

    by_key = {key(name): name for name in reversed(known)}  # the first of equal keys
    close = difflib.get_close_matches(key(given), list(by_key), n=1, cutoff=0.7)
    if not close:
        return ""
    name = by_key[close[0]]
    return f": did you mean '{name}'?" if quoted else f": did you mean {name}?"


def _command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands `parser` chooses between, each with its parser (fetch, check for `dlbox
    data`); {} for none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The names of the commands `parser` chooses between; [] for none."""
    return list(_command_parsers(parser))


def _before_the_command(parser: argparse.ArgumentParser, flag: str,
                        argv: Sequence[str]) -> bool:
    """Whether `flag` stands in `argv` before the command `parser` is (and nowhere after it,
    nor after a `--`): `dlbox --json models`."""
    words = parser.prog.split()[1:]
    if not words or words[-1] not in argv or flag not in argv:
        return False
    command, at = list(argv).index(words[-1]), list(argv).index(flag)
    return at < command and "--" not in argv[:at] and flag not in argv[command:]


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str],
                  argv: Sequence[str] = ()) -> UsageError:
    """The error for the arguments `parser` (the command chosen) did not take: the first
    flag among them, named with the closest of the command's own flags (a flag of another
    command is refused all the same), else argparse's words."""
    flag = next((arg for arg in extra
                 if len(arg) > 1 and arg[0] in parser.prefix_chars and arg != "--"
                 and not parser._negative_number_matcher.match(arg)), None)
    if flag is None:
        return UsageError(f"unrecognized arguments: {' '.join(extra)}",
                          hint=f"`{parser.prog} --help` says what it takes")
    name = flag.split("=", 1)[0]
    known = [option for action in parser._actions if action.help != argparse.SUPPRESS
             for option in action.option_strings]
    if name in known and _before_the_command(parser, flag, argv):  # `dlbox --json models`
        value = " VALUE" if "=" not in flag and _takes_value(parser, name) else ""
        return UsageError(f"{name} is a flag of {parser.prog}: put it after the command "
                          f"({parser.prog} {flag}{value})",
                          hint=f"`{parser.prog} --help` lists its flags")
    if name in known:  # given after a `--`, or twice
        return UsageError(f"unrecognized arguments: {' '.join(extra)}",
                          hint=f"`{parser.prog} --help` says what it takes")
    return UsageError(f"{parser.prog} has no flag {name}" + _did_you_mean(name, known),
                      hint=f"`{parser.prog} --help` lists its flags")


def _value_before_the_command(parser: Parser, commands: dict[str, Any],
                              value: str) -> UsageError | None:
    """The error for `dlbox --epochs 2 train`, where argparse takes the flag's value `2` for
    the command: a flag right before `value` that a command named after it takes with a
    value (that command's, or one of its own commands': `dlbox image --tag T build`)."""
    words = parser.given
    if value not in words:
        return None
    at = words.index(value)
    flag = words[at - 1] if at > 0 else ""
    if not flag.startswith("-") or "=" in flag or "--" in words[:at]:
        return None
    command = next((word for word in words[at + 1:] if word in commands), None)
    chosen = None if command is None else _taking(
        commands[command], flag, words[words.index(command, at + 1) + 1:])
    if chosen is None:
        return None
    return UsageError(f"{flag} is a flag of {chosen.prog}: put it after the command "
                      f"({chosen.prog} {flag} {shell_quote(value)})",
                      hint=f"`{chosen.prog} --help` lists its flags")


def _command_taken_as_a_value(parser: argparse.ArgumentParser,
                              words: list[str]) -> UsageError | None:
    """The error for `dlbox --data data train`: the value of a flag given before the command
    is itself a command's name, which argparse takes for the command (re-review: "dlbox data
    has no command 'train'"); None where the first command named is the command."""
    commands = _command_parsers(parser)
    at = next((i for i, word in enumerate(words) if word in commands or word == "--"), None)
    if not isinstance(parser, Parser) or at is None or at == 0 or words[at] == "--":
        return None
    parser.given = words
    return _value_before_the_command(parser, commands, words[at])


def _taking(parser: argparse.ArgumentParser, flag: str,
            words: list[str]) -> argparse.ArgumentParser | None:
    """`parser`, or the command of it named in `words` (and so on down), that takes `flag`
    with a value; None if none does."""
    if _takes_value(parser, flag):
        return parser
    commands = _command_parsers(parser)
    command = next((word for word in words if word in commands), None)
    if command is None:
        return None
    return _taking(commands[command], flag, words[words.index(command) + 1:])


def _takes_value(parser: argparse.ArgumentParser, option: str) -> bool:
    """Whether `option` of `parser` takes a value (--epochs N, not --json)."""
    return any(option in action.option_strings and action.nargs != 0
               for action in parser._actions)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, or a UsageError: a flag or argument the command chosen does not take,
    a command group (`dlbox data`) without its command."""
    misplaced = _command_taken_as_a_value(parser, list(sys.argv[1:] if argv is None else argv))
    if misplaced is not None:
        raise misplaced
    args, extra = parser.parse_known_args(argv)
    chosen = chosen_parser(parser, args)
    if extra:  # told as the command given's, not dlbox's (review)
        raise _unrecognized(chosen, extra, sys.argv[1:] if argv is None else list(argv))
    commands = _commands(chosen)
    if chosen is not parser and commands:  # bare `dlbox` prints its help (below)
        raise UsageError(f"{chosen.prog} needs a command: {in_words(commands, 'or')}",
                         hint=f"`{chosen.prog} --help` says what each does")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dlbox",
        description=(
            "Deep learning that runs the same on any machine: check the host, get CIFAR-10, "
            "train / evaluate / predict, package it in a Docker image, open the notebook."
        ),
        epilog=(
            "exit codes: 0 done; 1 an error; 2 a bad flag or value; 3 `predict`: some inputs "
            "failed, others not; 70 an internal error (a bug: rerun with DLBOX_DEBUG=1); 130 "
            "stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP, 141 because standard output "
            "was closed (`dlbox ... | head`); `dlbox image run`: its command's own."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dlbox {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dlbox.cli.{name}")
        module.register(subparsers)
    return parser


def chosen_parser(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command the arguments chose: `dlbox image build`'s for
    `dlbox image build ...`, dlbox's own when none was chosen."""
    while True:
        found = next((action for action in parser._actions
                      if isinstance(action, argparse._SubParsersAction)), None)
        name = getattr(args, found.dest, None) if found is not None else None
        if found is None or name not in found.choices:
            return parser
        parser = found.choices[name]


def report_error(error: DlboxError) -> None:
    print("\n".join(error.report_lines()), file=sys.stderr)


def report_unexpected(error: Exception) -> None:
    """One line for an exception no command expected (a bug), and how to see all of it."""
    detail = f": {first_line(error)}" if str(error).strip() else ""
    print(f"error: unexpected {type(error).__name__}{detail}", file=sys.stderr)
    print(f"hint: rerun with {DEBUG_ENV}=1 for the full traceback, and please report it",
          file=sys.stderr)


# Write failures an OSError without a filename may be: of the command's output (stdout
# redirected to a full disk, /dev/full, a broken device), or of a file written through a
# library that names none (tarfile writing a build context into a full temp folder).
# EPIPE (a closed pipe) is BrokenPipeError, which main ends quietly before this.
OUTPUT_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EPIPE)


def _stdout_fails() -> bool:
    """Whether standard output is what could not be written: it still fails to flush, or it
    goes to a file on a full disk, or to a device that is neither a terminal nor /dev/null
    (/dev/full; a failed flush may have dropped its buffer, so flushing again proves
    nothing)."""
    import stat

    try:
        sys.stdout.flush()
    except OSError:
        return True
    except (ValueError, AttributeError):  # closed, or replaced by something without flush
        return False
    try:
        fd = sys.stdout.fileno()  # a captured stdout has none (io.UnsupportedOperation)
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return os.fstatvfs(fd).f_bavail == 0
        if stat.S_ISCHR(info.st_mode) and not os.isatty(fd):
            return info.st_rdev != os.stat(os.devnull).st_rdev
    except (OSError, ValueError, AttributeError):
        return False
    return False


def report_os_error(error: OSError) -> None:
    """One line for an OSError no command caught: what failed (the path, or the output)."""
    reason = error.strerror or first_line(error)
    if error.filename and error.errno in ACCESS_ERRNOS:
        report_access_error(os.fsdecode(error.filename))
    elif error.filename:
        print(f"error: cannot use {error.filename}: {reason}", file=sys.stderr)
        print("hint: check that the path exists, is the right kind (file or folder), is "
              "readable and writable for you, and that the disk has space; if all is well, "
              f"rerun with {DEBUG_ENV}=1 for the traceback and please report it",
              file=sys.stderr)
    elif error.errno in OUTPUT_WRITE_ERRNOS and _stdout_fails():
        print(f"error: cannot write the output: {reason}", file=sys.stderr)
        print("hint: standard output goes somewhere that cannot take it (a full disk or "
              "device): free some space, or redirect it elsewhere", file=sys.stderr)
    elif error.errno in OUTPUT_WRITE_ERRNOS:
        print(f"error: cannot write a file: {reason}", file=sys.stderr)
        print("hint: free some space where dlbox writes (its temp folder, $TMPDIR, the run or "
              f"data folder: df -h shows them); rerun with {DEBUG_ENV}=1 to see which file",
              file=sys.stderr)
    else:
        print(f"error: {reason}", file=sys.stderr)
        print(f"hint: rerun with {DEBUG_ENV}=1 for the traceback, which shows what failed, "
              "and please report it", file=sys.stderr)


def report_access_error(name: str) -> None:
    """The error for a path dlbox may not use (EACCES, EPERM): the folder that keeps it out
    of reach when there is one, and the fix, which is the permissions, not the file."""
    folder = unsearchable_folder(Path(name).absolute())
    if folder is not None:
        print(f"error: cannot use {name}: permission denied on the folder {folder}",
              file=sys.stderr)
        where = shell_quote(folder)
        print(f"hint: make the folder readable for you (`chmod u+rx {where}`), or run dlbox "
              f"as the user that owns it (`ls -ld {where}` shows who)", file=sys.stderr)
        return
    print(f"error: cannot use {name}: permission denied", file=sys.stderr)
    where = shell_quote(name)
    print(f"hint: give yourself access (`chmod u+rw {where}`; u+rwx for a folder), or run dlbox "
          f"as the user that owns it (`ls -ld {where}` shows who)", file=sys.stderr)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM is handled for every command, from the first import on, so that whatever it
    # interrupts unwinds (temp files and folders removed) before the exit with 143.
    try:
        _open_closed_standard_streams()
        with sigterm_stops_cleanly():
            code = _main(argv)
    except KeyboardInterrupt:  # one _main did not catch: as it starts, or as it returns
        with contextlib.suppress(OSError):
            print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Terminated as stopped:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"stopped ({stopped.signal_name})", file=sys.stderr)
        code = int(stopped.code or EXIT_SIGTERM)
    if argv is None:  # the console script, whose process ends now
        _a_stop_at_exit_ends_at_once(code)
    return code


def _open_closed_standard_streams() -> None:
    """A standard stream closed when dlbox started (`dlbox train >&-`, a daemon's job) is
    /dev/null: Python leaves it None, whose flush made a finished training exit 70 (review);
    the fd it lacked takes /dev/null too (the lowest free one), not the next file opened."""
    for name in ("stdin", "stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "r" if name == "stdin" else "w",  # noqa: SIM115
                                    encoding="utf-8"))


def _a_stop_at_exit_ends_at_once(code: int) -> None:
    """Once the command has ended, a Ctrl-C, SIGTERM or SIGHUP ends the process with its exit
    code. Python's shutdown takes a while with torch loaded: a KeyboardInterrupt there printed
    a traceback (review: a second Ctrl-C just after "resume with: ..."), and a `timeout`'s
    SIGTERM as a finished run exited turned its success into 143. A SIGTERM or SIGHUP the
    process was started ignoring (nohup) stays ignored."""
    def exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def ignore_stops() -> None:
        # After the atexit calls Python resets its handlers to the default action (review: a
        # SIGTERM in the second of torch's teardown that follows ended a finished run with
        # 143); an ignored signal it leaves as it is, and the exit goes on to the code.
        for stop in stops:
            signal.signal(stop, signal.SIG_IGN)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, exit_now)
        for stop in stops[1:]:
            if signal.getsignal(stop) is not signal.SIG_IGN:
                signal.signal(stop, exit_now)
        atexit.register(ignore_stops)  # the last registered: the first atexit call


def _write_names_as_they_are(stream: object) -> None:
    """A file name that is not UTF-8 (bytes Python keeps as lone surrogates) is written to
    stdout as the bytes it has on disk, as `ls | cat` writes it. Python's stdout refuses it
    under a UTF-8 locale other than C.UTF-8 (en_US.UTF-8), which failed the command at its
    last line: `dlbox train --run-dir` into such a folder, after all its epochs."""
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            stream.reconfigure(errors="surrogateescape")


def _main(argv: Sequence[str] | None) -> int:
    try:  # Ctrl-C while the subcommands' modules import: a word, not a traceback
        with CtrlCAfterwards():
            parser = build_parser()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        args = _parse(parser, argv)
    except UsageError as error:
        report_error(error)
        return error.exit_code
    _write_names_as_they_are(sys.stdout)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # stdout's reader went away (`dlbox ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except DlboxError as error:
        report_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # a file or folder the command could not use: the user's to fix
        if debugging():
            raise
        report_os_error(error)
        return EXIT_ERROR
    except Exception as error:  # last resort: one line instead of a traceback
        if debugging():
            raise
        if _caused_by_ctrl_c(error):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        report_unexpected(error)
        return EXIT_INTERNAL


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """Whether a Ctrl-C is behind `error`: one during an import (matplotlib's, as evaluate
    plots) comes out of the import machinery as `ImportError: initialization failed`, which
    was reported as a bug to report (review)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
