"""`dlbox notebook`: JupyterLab with first_pytorch_classifier.ipynb, on this host or in the image.

Prints the URL to open (with its one-time ?token=) once the server answers; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from dlbox.cli.common import path_flag, reject_empty_paths
from dlbox.errors import EXIT_INTERRUPTED, UsageError
from dlbox.hostenv.facts import running_in_container
from dlbox.jupyter.notebooks import damaged_notebook_hint, notebook_problem, resolve_notebook_dir
from dlbox.jupyter.probe import StartupTimeout
from dlbox.jupyter.server import LocalServer, ManagedServer, NotebookServer, ServerInfo
from dlbox.jupyter.settings import (
    DEFAULT_IP,
    DEFAULT_PORT,
    NOTEBOOK_NAME,
    NotebookSettings,
)
from dlbox.processes import detach_from_terminal, handling, hangup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "notebook",
        help="start Jupyter with first_pytorch_classifier.ipynb and print its URL",
        description="Start JupyterLab in the notebooks folder (on this host, or with "
                    "--container inside the dlbox CPU image), wait until it answers, and print "
                    "the URL to open, with a token that is new for each launch. Ctrl-C stops it.",
    )
    parser.add_argument("--container", action="store_true",
                        help="run Jupyter inside the dlbox image (as a non-root user)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on this host (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--ip", default=DEFAULT_IP,
                        help=f"address to listen on (default {DEFAULT_IP}, this machine only; "
                             "0.0.0.0 or :: opens it to the network)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the URL; do not open a browser")
    parser.add_argument("--notebook-dir", metavar="DIR", type=path_flag,
                        help="folder to serve (default: dlbox's notebooks folder)")
    parser.add_argument("--tag", metavar="IMAGE",
                        help="image to run with --container (default: dlbox:cpu, the dlbox CPU "
                             "image)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="how long to wait for the server to answer (default 120; "
                             "a positive number)")
    parser.set_defaults(func=run)


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stops the launch as Ctrl-C does; the exit status is 128 + signal
    (143, 129), as a shell reports for a process that signal ended, not Ctrl-C's 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_status(stop: KeyboardInterrupt) -> int:
    """130 for Ctrl-C; 128 + the signal for SIGTERM (143) and SIGHUP (129)."""
    return 128 + stop.signum if isinstance(stop, StopSignal) else EXIT_INTERRUPTED


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the launch like Ctrl-C does, so the server is always stopped."""

    hung_up = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal hung_up
        if hangup(signum):
            detach_from_terminal()  # the shutdown's messages would fail on the closed terminal
            if hung_up:  # it comes twice: the clean stop under way goes on
                return
            hung_up = True
        raise StopSignal(signum)

    with handling(interrupt, "SIGTERM", "SIGHUP"):
        yield


def open_in_browser(url: str) -> None:
    """Open `url` in a graphical browser; on a machine without a display, say so instead
    (webbrowser would otherwise start a text browser such as lynx in this terminal)."""
    headless_linux = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                      and not os.environ.get("WAYLAND_DISPLAY"))
    opened = False
    if not headless_linux:
        with contextlib.suppress(Exception):
            opened = webbrowser.open(url)
    if not opened:
        print("(no browser opened here: open the URL above in yours)", flush=True)


def run(args: argparse.Namespace) -> int:
    reject_empty_paths(args, ("notebook_dir",))  # "" would serve the current folder
    if args.tag is not None and not args.container:
        raise UsageError(f"--tag {args.tag} names the image for --container, which is not "
                         "given", hint="add --container to run Jupyter in that image, or "
                                       "leave --tag out")
    if args.tag is not None:
        from dlbox.container.spec import check_image_reference

        # Before anything starts: the engine's own refusal of a malformed reference comes
        # late (after the notebook folder is resolved) and garbled, with exit status 1.
        check_image_reference(args.tag, "--tag")
    settings = NotebookSettings(
        notebook_dir=resolve_notebook_dir(args.notebook_dir),
        ip=args.ip,
        port=args.port,
        open_browser=not args.no_browser,
        container=args.container,
        image=args.tag,
        startup_timeout_s=args.startup_timeout,
    )

    server: NotebookServer
    if settings.container:
        from dlbox.jupyter.container import ContainerServer

        server = ContainerServer(settings)
    else:
        server = LocalServer(settings)

    where = ("in a container" if settings.container else
             "in this container" if running_in_container() else "on this host")
    announced: list[KeyboardInterrupt] = []

    def stopping(stop: KeyboardInterrupt) -> None:
        """The line a stop begins with, once, as it begins (a container's stop takes
        seconds: its "Ctrl-C again" is of use only before them)."""
        if announced:
            return
        announced.append(stop)
        why = (f"{signal.Signals(stop.signum).name}" if isinstance(stop, StopSignal)
               else "Ctrl-C again: stop it at once")
        print(f"\nstopping the Jupyter server ({why}) ...", file=sys.stderr, flush=True)

    if isinstance(server, ManagedServer):
        server.on_interrupt = stopping
    with _stop_signals_interrupt():
        try:
            # Every check first (a refusal comes alone), then the warnings, then the start.
            for warning in server.prepare():
                print(warning, file=sys.stderr)
            print(f"starting JupyterLab {where}, serving {settings.notebook_dir} ...",
                  flush=True)
            info = server.start()
            print("Jupyter is ready. Open this URL (the token is new for this launch):")
            print(f"    {info.url}", flush=True)
            show_notebook_url(settings.notebook_dir / NOTEBOOK_NAME, info)
            print("Press Ctrl-C to stop the server.", flush=True)
            if settings.open_browser:
                open_in_browser(info.url)
            status = server.wait()
            if status == 0:  # JupyterLab's File > Shut Down, or `docker stop` of its container
                print("the Jupyter server shut down", file=sys.stderr)
                return 0
            tail = server.log_tail().strip()
            if tail:
                print("--- the end of the Jupyter server's log ---\n" + tail + "\n---",
                      file=sys.stderr, flush=True)
            killed = status < 0
            how = (f"killed by {signal_name(-status)}" if killed else f"exit status {status}")
            print(f"error: the Jupyter server stopped by itself ({how})", file=sys.stderr)
            # a killed server writes no word of it: the killer was another program, or the
            # kernel short of memory
            why = ("another program or the system killed it (out of memory? `dmesg | tail` "
                   "says); " if killed else "its log above says why; " if tail else "")
            print(f"hint: {why}start it again with the same command", file=sys.stderr)
            return 1
        except StartupTimeout as error:
            if error.log_tail.strip():
                print("--- the end of the Jupyter server's log ---\n"
                      + error.log_tail.rstrip("\n") + "\n---", file=sys.stderr, flush=True)
            raise
        except KeyboardInterrupt as stop:
            stopping(stop)
            with contextlib.suppress(KeyboardInterrupt):  # stop() stopped it all the same
                server.stop()
            print("stopped.", file=sys.stderr)
            return exit_status(announced[0])  # the first signal's: 143 for SIGTERM
        finally:
            server.stop()


def signal_name(number: int) -> str:
    """SIGKILL for 9; "signal N" for a number this platform does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def show_notebook_url(notebook: Path, info: ServerInfo) -> None:
    """The direct URL of the notebook, when Jupyter can open it; a damaged file (not a
    notebook Jupyter can read) gets a warning instead of a URL to an error page."""
    if not notebook.is_file():
        return
    problem = notebook_problem(notebook)
    if problem is None:
        print(f"or the notebook directly:\n    {info.notebook_url(notebook.name)}")
        return
    print(f"warning: {notebook} is damaged ({problem}): Jupyter cannot open it", file=sys.stderr)
    print(f"hint: {damaged_notebook_hint(notebook)}", file=sys.stderr, flush=True)
