"""Run JupyterLab on this host for `dlbox notebook`: start, wait until it answers, stop.

Why the details:
- The server gets its own session (process group), and stdin from /dev/null: Ctrl-C in the
  terminal reaches only dlbox, which then stops Jupyter with SIGTERM (its clean shutdown,
  which also shuts its kernels down) instead of Jupyter's interactive "Shutdown? (y/[n])".
- On Linux the server also gets SIGTERM if dlbox dies (PR_SET_PDEATHSIG), so no orphan
  server keeps listening with a token nobody printed.
- The token reaches Jupyter as a 0600 file named by JUPYTER_TOKEN_FILE; a JUPYTER_TOKEN of
  the caller's environment is removed (it would win over the file).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from dlbox.errors import HostEnvError, UsageError
from dlbox.hostenv.facts import running_in_container
from dlbox.jupyter.probe import (
    STOPPED_HINT,
    TIMEOUT_HINT,
    StartupTimeout,
    check_token_required,
    wait_until_ready,
)
from dlbox.jupyter.secrets_dir import LaunchDir, remove_abandoned_launch_dirs
from dlbox.jupyter.settings import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    NotebookSettings,
    address_text,
    all_interfaces_warning,
    is_loopback,
    lab_command,
    lab_config,
    listens_on_all_interfaces,
    new_token,
    server_base_url,
    url_with_token,
)
from dlbox.ports import bind_probe


@dataclass(frozen=True)
class ServerInfo:
    """A server that answers: where, and with which token."""

    base_url: str  # http://127.0.0.1:8888 (the host-mapped port in container mode)
    token: str
    notebook_dir: Path
    log_file: Path | None = None

    @property
    def url(self) -> str:
        return url_with_token(self.base_url, self.token, "lab")

    def notebook_url(self, name: str) -> str:
        return url_with_token(self.base_url, self.token, f"lab/tree/{name}")


class NotebookServer(Protocol):
    """What the CLI drives: the local server and the container server alike."""

    def prepare(self) -> list[str]:
        """Check what the launch needs, starting nothing (raise on a problem); the warnings
        to show before it starts."""

    def start(self) -> ServerInfo:
        """Start; return once the server answers with its token (clean up on failure)."""

    def wait(self) -> int:
        """Block until the server ends by itself; its exit status."""

    def log_tail(self) -> str:
        """The end of the server's log, while its launch is still there ("" if none)."""

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the server (idempotent); None: the server's own default timeout."""


def _unscoped_link_local(ip: str) -> bool:
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return False
    return address.is_link_local and not address.scope_id  # "fe80::1%eth0" has its scope


def listen_error(ip: str, port: int, error: OSError) -> UsageError:
    """What a failed bind to ip:port means for the user, with the fix."""
    code = error.errno
    if code == errno.EADDRINUSE:
        return UsageError(f"port {port} on {ip} is already in use (another Jupyter?)",
                          hint="pass --port 0 to pick a free port, or --port N for another one")
    if code == errno.EADDRNOTAVAIL:
        return UsageError(f"--ip {ip} is not an address of this machine, so nothing can "
                          "listen on it",
                          hint="pass --ip 127.0.0.1 (this machine only), --ip 0.0.0.0 (all "
                               "interfaces), or one of the addresses `ip address` lists")
    if code in (errno.EAFNOSUPPORT, getattr(errno, "EPFNOSUPPORT", -1)):
        return UsageError(f"--ip {ip}: IPv6 is not available on this machine",
                          hint="pass an IPv4 address: --ip 127.0.0.1, or --ip 0.0.0.0")
    if code in (errno.EACCES, errno.EPERM):
        return UsageError(f"port {port} on {ip} needs more privileges than this user has",
                          hint="pick a port above 1023 (--port 8888), or --port 0 for any "
                               "free one")
    if isinstance(error, socket.gaierror) and "%" in ip:  # fe80::1%eth9: bind looked it up
        address, _, interface = ip.partition("%")
        try:
            socket.if_nametoindex(interface)
        except OSError:
            return UsageError(f"--ip {ip}: this machine has no network interface "
                              f"{interface!r}", hint="name the interface the address is on "
                                                     "(`ip address` lists each interface's "
                                                     "addresses)")
        return UsageError(f"--ip {ip}: an interface goes only with a link-local address "
                          "(fe80::...)", hint=f"pass --ip {address}, without %{interface}")
    if code == errno.EINVAL and _unscoped_link_local(ip):
        return UsageError(f"--ip {ip} is a link-local address, which is reached through one "
                          "network interface, and names none",
                          hint=f"add the interface it is on, e.g. --ip {ip}%eth0 (`ip address` "
                               "lists each interface's addresses)")
    return UsageError(f"cannot listen on {address_text(ip, port)}: {error.strerror or error}",
                      hint="pass --ip 127.0.0.1 and --port 0 to let dlbox pick a free port")


def resolve_port(ip: str, port: int) -> int:
    """`port`, checked free on `ip` (an address of this machine); 0 picks a free one."""
    try:
        bound = bind_probe(ip, port)
    except OSError as error:
        raise listen_error(ip, port, error) from None
    return bound if port == 0 else port


def require_jupyterlab() -> None:
    if importlib.util.find_spec("jupyterlab") is None:
        raise HostEnvError(f"JupyterLab is not installed in this Python ({sys.executable})",
                           hint="pip install 'dlbox[notebook]', or run it in the image: "
                                "dlbox notebook --container")


def on_read_only_filesystem(path: Path) -> bool:
    """Whether `path` is on a read-only mount (where not even root can write)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): say nothing
        return False


def read_only_warning(folder: Path, who: str = "you") -> str:
    return (f"warning: {folder} is read-only for {who}: Jupyter cannot save the notebook "
            "there, nor can the notebook save its runs. Serve a copy you can write to: "
            "--notebook-dir COPY")


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def server_environment(base: dict[str, str], token_file: Path, runtime_dir: Path) -> dict[str, str]:
    """The server's environment: the caller's, minus JUPYTER_TOKEN, plus the token file."""
    env = {k: v for k, v in base.items() if k != TOKEN_ENV}
    env[TOKEN_FILE_ENV] = str(token_file)
    # jpserver-*.json (which holds the token) and kernel files go in the private folder.
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class ManagedServer(ABC):
    """What the local and the container server share: the launch's private folder, the
    start that waits until the server answers (and cleans up on any failure), the stop.

    A subclass launches its server in `_launch` and names what it made in attributes that
    `_halt` stops and clears (so a second stop does nothing)."""

    stop_timeout_s: float = 20.0  # stop()'s default
    # Called with the Ctrl-C (or StopSignal) that cuts a start short, before the stop.
    on_interrupt: Callable[[KeyboardInterrupt], None] | None = None
    # The hint when the server stops while starting (its log is in the message).
    stopped_hint: str = STOPPED_HINT

    def __init__(self, settings: NotebookSettings) -> None:
        self.settings = settings
        remove_abandoned_launch_dirs()  # those of a dlbox notebook killed with SIGKILL
        self.launch = LaunchDir()
        self.info: ServerInfo
        self._warnings: list[str] | None = None
        self._port_claim = contextlib.ExitStack()

    def prepare(self) -> list[str]:
        """Check everything the launch needs before anything starts (the address and port,
        JupyterLab or the image), so a refusal comes before any warning; the warnings to
        show the user. Checks once; `start` calls it too."""
        if self._warnings is None:
            self._claim_port()
            self._warnings = self._prepare()
        return self._warnings

    def _claim_port(self) -> None:
        """Hold a claim on the asked port from its check until the server answers: two
        launches on one port at once both found it free, and the one whose server could not
        listen then polled the other's (HTTP 403 to its token) or stopped with a hint to
        install JupyterLab. The claim is a name in Linux's abstract socket namespace: one
        holder per network namespace (where ports live too), gone with the process, and no
        file left behind. Port 0 (a free one picked) needs none; elsewhere there is none."""
        if self.settings.port == 0 or not sys.platform.startswith("linux"):
            return
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # by the port alone: 127.0.0.1, localhost and 0.0.0.0 overlap
            claim.bind(f"\0dlbox-notebook-port-{self.settings.port}")
        except OSError as error:
            claim.close()
            if error.errno != errno.EADDRINUSE:
                return  # no claims here (a sandbox): the port check alone, as before
            raise listen_error(self.settings.ip, self.settings.port, error) from None
        self._port_claim.callback(claim.close)

    def start(self) -> ServerInfo:
        """Start the server and return once it answers with the token and refuses without
        it; on any failure (Ctrl-C included) stop it, remove what was made, and re-raise.

        A StartupTimeout carries the end of the server's log, read before the server and
        its log go. Warnings nobody asked `prepare` for are printed, never lost."""
        try:
            if self._warnings is None:
                for warning in self.prepare():
                    print(warning, file=sys.stderr)
            info = self._launch()
            wait_until_ready(info.base_url, info.token, self.settings.startup_timeout_s,
                             self._exit_reason, stopped_hint=self.stopped_hint)
            check_token_required(info.base_url)
        except StartupTimeout as error:
            try:
                error.log_tail = self._log_tail()
            except Exception:  # noqa: BLE001 - a log we cannot read: say so, below
                error.log_tail = ""
            base = error.hint or TIMEOUT_HINT  # a refusal (HTTP 403) brings its own
            error.hint = (f"{base}; the end of the server's log is above"
                          if error.log_tail.strip() else
                          f"{base} (the server wrote nothing to its log)")
            self.stop()
            raise
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt) and self.on_interrupt is not None:
                self.on_interrupt(error)  # said before the stop's seconds, not after them
            self.stop()
            raise
        finally:
            self._port_claim.close()  # listening now, or given up
        self.info = info
        return info

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the server (idempotent); the launch's folder (the token file) goes too.

        Ctrl-C while it stops (an impatient second one) does not abandon the stop half-way
        (a container stopped but never removed): the stop goes on with no grace period (the
        server killed at once), and the KeyboardInterrupt is raised once it is done."""
        self._port_claim.close()  # stopped before it started (prepare, then Ctrl-C)
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                try:
                    self._halt(timeout)
                finally:
                    self.launch.remove()
                break
            except KeyboardInterrupt as again:  # a StopSignal (SIGTERM) stays one: exit 143
                interrupted, timeout = interrupted or again, 0
        if interrupted is not None:
            raise interrupted

    def _prepare(self) -> list[str]:
        """The checks of `prepare` (raise on a problem); the warnings."""
        return []

    def _log_tail(self) -> str:
        """The end of the server's log while it still runs ("" when there is none)."""
        return ""

    def log_tail(self) -> str:
        try:
            return self._log_tail()
        except Exception:  # noqa: BLE001 (a log gone or unreadable: there is none to show)
            return ""

    @abstractmethod
    def _launch(self) -> ServerInfo:
        """Start the server; the ServerInfo it will have once it answers."""

    @abstractmethod
    def _exit_reason(self) -> str | None:
        """None while the server may still come up; else why it ended (status, log tail)."""

    @abstractmethod
    def _halt(self, timeout_s: float) -> None:
        """Stop and release what `_launch` made, if anything (called again: no-op); forget it
        only once released, so that a stop interrupted half-way can be run again. Timeout 0:
        no grace period, kill it now."""

    @abstractmethod
    def wait(self) -> int:
        """Block until the server ends by itself; its exit status."""


class LocalServer(ManagedServer):
    """JupyterLab as a child process of dlbox."""

    def __init__(self, settings: NotebookSettings, python: str = sys.executable) -> None:
        super().__init__(settings)
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port: int | None = None  # the port checked free by prepare()

    def _prepare(self) -> list[str]:
        require_jupyterlab()
        settings = self.settings
        self.port = resolve_port(settings.ip, settings.port)
        warnings = []
        if listens_on_all_interfaces(settings.ip):
            warnings.append(all_interfaces_warning(settings.ip, self.port))
        if not os.access(settings.notebook_dir, os.W_OK):  # mode bits, or a read-only mount
            warnings.append(read_only_warning(settings.notebook_dir))
        if running_as_root():
            warnings.append("warning: running Jupyter as root (its kernels can change anything "
                            "on this machine); prefer a normal user, or --container")
        if running_in_container() and is_loopback(settings.ip):
            # review: `dlbox image run -- dlbox notebook` printed a URL nothing could open
            # (a devcontainer forwards the port, --network host shares it: "only if")
            warnings.append("warning: this runs inside a container: the URL below is on the "
                            "container's own loopback, which a browser outside it reaches "
                            "only through a forwarded port or the host's network (not under "
                            "`dlbox image run`); on the host, `dlbox notebook --container` "
                            "publishes the port itself")
        return warnings

    def _launch(self) -> ServerInfo:
        settings = self.settings
        assert self.port is not None, "prepare() first"
        port = self.port
        token = new_token()
        token_file = self.launch.write_token(token)
        runtime_dir = self.launch.path / "runtime"
        runtime_dir.mkdir(mode=0o700)
        config = lab_config(str(settings.notebook_dir), settings.ip, port, running_as_root())
        config_file = self.launch.write_config(config)
        self._log = open(self.launch.log_file, "wb")  # noqa: SIM115 - closed in _halt()
        self.process = subprocess.Popen(
            lab_command(self.python, str(config_file)),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=settings.notebook_dir,
            env=server_environment(dict(os.environ), token_file, runtime_dir),
            preexec_fn=_die_with_parent if os.name == "posix" else None,  # noqa: PLW1509
        )
        return ServerInfo(server_base_url(settings.ip, port), token, settings.notebook_dir,
                          self.launch.log_file)

    def _log_tail(self) -> str:
        return self.launch.log_tail()

    def _exit_reason(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        tail = self.launch.log_tail()
        return f"exit status {self.process.returncode}\n--- server log (tail) ---\n{tail}"

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def _halt(self, timeout_s: float) -> None:
        try:
            if self.process is not None:
                _terminate_group(self.process, timeout_s)
                self.process = None
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _terminate_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the server (a clean Jupyter shutdown), then its whole group; SIGKILL if stuck."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    # Whatever else is in the server's process group goes with it. Kernels run in sessions
    # of their own: the server's clean shutdown ends them, and a kernel whose server was
    # killed ends itself (ipykernel watches its parent).
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            break
        time.sleep(0.5 if sig == signal.SIGTERM else 0)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)

