"""Shared fixtures. Tests make their own tiny data; none needs the network or ../shared.

Components that CI provisions (Docker engine, Jupyter, Chromium) are required when CI=true:
`require(...)` fails the test there, and skips it elsewhere when the component is missing.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dlbox.data.fetch import ARCHIVE_NAME as CIFAR_ARCHIVE_NAME
from dlbox.data.synthetic import write_fake_cifar10

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """Tests send SIGINT to the programs they start, as Ctrl-C at a terminal would. A shell
    that starts the suite in the background without job control (`(cmd &)`, a CI runner's
    script) gives it SIGINT ignored, which its children inherit across exec, so each of
    them rightly ignored that Ctrl-C and the tests failed. Handled here, the children
    start with SIGINT's default, as a program at a terminal does."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def require(available: bool, what: str) -> None:
    """Skip when `what` is missing, except in CI, where a missing component is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true but is not available")
    pytest.skip(f"{what} is not available")


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a fresh module (registered in sys.modules, which dataclasses
    need), for tests of a benchmark script's functions."""
    script = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def finished_tiny_run(root: Path) -> Path:
    """root/run: a finished run of the tiny model on CIFAR-10's classes, as its config.json
    and checkpoints/last.pt (no report yet), for tests of evaluate and the run's files."""
    from dlbox.data.cifar10 import CIFAR10_CLASSES
    from dlbox.fileio import write_json_atomic
    from dlbox.models import create_model
    from dlbox.training.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from dlbox.training.config import TrainConfig

    run_dir = root / "run"
    write_json_atomic(run_dir / "config.json", TrainConfig(model="tiny", epochs=1).to_dict())
    state = {"format": CHECKPOINT_FORMAT, "version": 1, "classes": list(CIFAR10_CLASSES),
             "model": create_model("tiny", num_classes=10).state_dict(), "epoch": 1,
             "finished": True}
    save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
    return run_dir


def port_in_time_wait() -> int:
    """A port of 127.0.0.1 whose last connection lingers in TIME_WAIT, as after a Jupyter
    server (whose listening socket has SO_REUSEADDR, as tornado's does) closed one."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: it is the one left in TIME_WAIT
        assert client.recv(1) == b""
        client.close()
    time.sleep(0.1)
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # a bind without SO_REUSEADDR is refused
    return port


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def fake_cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding cifar-10-batches-py with 500 train and 100 test synthetic images."""
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar10(root, n_train=500, n_test=100, seed=0)
    return root


@pytest.fixture(scope="session", autouse=True)
def temp_files_stay_in_pytests_tmp(tmp_path_factory: pytest.TempPathFactory
                                   ) -> Iterator[Path]:
    """Point TMPDIR of every process the tests start (notebook kernels, Jupyter servers,
    CLIs) into pytest's own temporary area, which pytest prunes, so a test run leaves no
    dlbox-* folders behind in /tmp."""
    import tempfile

    folder = tmp_path_factory.mktemp("tmpdir")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # this process asks TMPDIR again
    yield folder
    if saved is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved
    tempfile.tempdir = None


@pytest.fixture()
def undeletable_old_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --force fetch cannot delete the folder it swapped out (say, another user's files in
    it): shutil.rmtree of a `.old.` folder raises PermissionError. Root ignores permission
    bits, so the refusal is simulated."""
    import errno
    import shutil

    from dlbox.data import extract

    real_rmtree = shutil.rmtree

    def rmtree(path: object, *args: object, **kwargs: object) -> None:
        if ".old." in str(path):
            raise PermissionError(errno.EACCES, "Permission denied",
                                  str(Path(str(path)) / "batches.meta"))
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(extract.shutil, "rmtree", rmtree)


@pytest.fixture()
def sigterm_as_the_old_copy_goes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A SIGTERM (`kill PID`) just as a --force fetch starts deleting the old copy it swapped
    out, with the handler the CLI installs (it raises Terminated)."""
    import signal

    from dlbox.data import extract
    from dlbox.processes import Terminated

    real_remove = extract._remove_tree

    def remove(path: Path) -> None:
        if path.name.startswith(".cifar-10-batches-py.old."):
            signal.raise_signal(signal.SIGTERM)
        real_remove(path)

    def stop(signum: int, frame: object) -> None:
        raise Terminated(signum)

    monkeypatch.setattr(extract, "_remove_tree", remove)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Root reads any file whatever its mode (CAP_DAC_OVERRIDE), and CI runs the tests as root, so
# these run the CLI in a child without that power: setpriv drops CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH from root's bounding set (a user's child needs nothing dropped).
DROP_ROOTS_READ_POWER = ["--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
                         "--"]


@pytest.fixture()
def refused_prefix(tmp_path: Path) -> list[str]:
    """The prefix of a command whose process a `chmod 000` file refuses, as it would a user;
    the test is skipped where there is none (root without setpriv, a user with CAP_DAC_*)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        require(setpriv is not None, "setpriv (util-linux), to drop root's power to read "
                                     "any file")
        prefix = [str(setpriv), *DROP_ROOTS_READ_POWER]
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0)
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-c", f"import os; os.listdir({str(probe)!r})"],
            capture_output=True, text=True, check=False)
    finally:
        probe.chmod(0o755)
        probe.rmdir()
    require("PermissionError" in result.stderr,
            f"a process a chmod 000 folder refuses ({result.stderr.strip()[-200:]})")
    return prefix


@pytest.fixture()
def failing_read_json(monkeypatch: pytest.MonkeyPatch
                      ) -> Callable[[str, Path, OSError], None]:
    """fail(module, path, error): the module's read_json raises `error` for the file `path`
    and reads any other file as before: a read the system refuses (EACCES, which root never
    meets) or fails (EIO, which a healthy disk never raises)."""
    def fail(module: str, path: Path, error: OSError) -> None:
        target = importlib.import_module(module)
        real_read_json = target.read_json

        def read_json(where: Path) -> object:
            if Path(where) == Path(path):
                raise error
            return real_read_json(where)

        monkeypatch.setattr(target, "read_json", read_json)

    return fail


@pytest.fixture()
def read_only_mount(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """mount(folder): making a file in `folder` fails as on a read-only mount (EROFS), the
    probe dlbox makes before writing there. Root writes past a chmod, so a test cannot use
    one; mounting needs privileges a test lacks."""
    import errno
    import tempfile

    def mount(folder: Path) -> None:
        real = tempfile.TemporaryFile

        def temporary_file(*args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(kwargs.get("dir") or ".") == folder:
                raise OSError(errno.EROFS, "Read-only file system")
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)

    return mount


HOLD = """\
import sys
from pathlib import Path
from dlbox.training.rundir import run_lock
kind = sys.argv[2]
with (run_lock(Path(sys.argv[1])) if kind == "training" else
      run_lock(Path(sys.argv[1]), "busy", evaluating="evaluating")):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture()
def held_elsewhere() -> Iterator[Callable[[Path, str], Callable[[], None]]]:
    """hold(run_dir, kind): another process holds the run's lock as `dlbox train` ("training")
    or `dlbox evaluate` ("evaluating") does, until the test ends or the release it returns
    is called."""
    holders: list[subprocess.Popen[str]] = []

    def release(holder: subprocess.Popen[str]) -> None:
        if holder.poll() is None:
            holder.communicate("", timeout=30)

    def hold(run_dir: Path, kind: str) -> Callable[[], None]:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), kind],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return lambda: release(holder)

    yield hold
    for holder in holders:
        release(holder)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test servers' base)."""

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        """Send `status` with `body` (its Content-Length) and `headers` (Location=...;
        an underscore in a name is sent as a hyphen)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def closed_port_url(path: str = "cifar-10-python.tar.gz") -> str:
    """An http URL on a loopback port that nothing listens on: a refused connection, as
    offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) for a test: `serve(Handler)` starts
    it and sets `hostport`; `close()` stops it."""

    def serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.hostport = f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class ArchiveServer(LoopbackServer):
    """A loopback HTTP server for one payload at /cifar-10-python.tar.gz (404 elsewhere);
    honours Range; can cut the body short; `etag = last_modified = None`: names no version."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut_after: int | None = None  # send only this many bytes of a full response
        self.ranges: list[str | None] = []
        self.etag: str | None = None  # sent, and If-Range honoured, when set
        self.last_modified: str | None = "Sat, 05 Dec 2026 10:00:00 GMT"  # the same
        self.send_length = True  # False: no Content-Length (the body ends when it closes)
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/" + CIFAR_ARCHIVE_NAME:
                    self.send_error(404, "Not Found")
                    return
                requested = self.headers.get("Range")
                outer.ranges.append(requested)
                if_range = self.headers.get("If-Range")
                if requested and if_range is not None and if_range != (
                        outer.etag or outer.last_modified):
                    requested = None  # RFC 9110: the file changed, so all of it
                start = int(requested.split("=")[1].split("-")[0]) if requested else 0
                body = outer.payload[start:]
                self.send_response(206 if requested else 200)
                if outer.send_length:
                    self.send_header("Content-Length", str(len(body)))
                if outer.etag:
                    self.send_header("ETag", outer.etag)
                if outer.last_modified:
                    self.send_header("Last-Modified", outer.last_modified)
                self.end_headers()
                if outer.cut_after is not None and not requested:
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.serve(Handler)
        self.url = f"http://{self.hostport}/{CIFAR_ARCHIVE_NAME}"
