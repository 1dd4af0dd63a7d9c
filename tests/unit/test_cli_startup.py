"""The CLI starts without importing torch (about 3 s here) for what does not need it:
--help, --version, `doctor`, `data fetch`; torch loads only in the commands that use it.
And how any command ends early: a closed pipe, Ctrl-C, SIGTERM."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dlbox.data.synthetic import write_fake_cifar10_archive


def _imports_torch(argv: list[str], tmp_path: Path, prelude: str = "") -> tuple[int, bool]:
    code = (
        prelude +
        "import sys\n"
        "from dlbox.cli import main\n"
        f"try:\n    code = main({argv!r})\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    code_text, imported = out.stdout.strip().splitlines()[-1].split()
    return int(code_text or 0), imported == "True"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"],
                                  ["doctor", "--json"], ["image", "build", "--help"]])
def test_commands_that_need_no_torch_do_not_import_it(argv: list[str], tmp_path: Path) -> None:
    code, imported = _imports_torch(argv, tmp_path)
    assert code in (0, 1)  # doctor exits 1 when the host has an error finding
    assert not imported


def test_data_fetch_needs_no_torch_but_data_check_loads_it(tmp_path: Path) -> None:
    """The official archive (its md5 known: the fake one's here) is fetched without torch;
    another copy's batches are read through before they replace data, with torch."""
    archive = write_fake_cifar10_archive(tmp_path / "cifar-10-python.tar.gz")
    data = tmp_path / "data"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    official = f"import dlbox.data.fetch as fetch\nfetch.OFFICIAL_MD5 = {md5!r}\n"
    assert _imports_torch(["data", "fetch", "--data", str(data), "--from", str(archive)],
                          tmp_path, prelude=official) == (0, False)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert _imports_torch(["data", "fetch", "--force", "--data", str(tmp_path / "other"),
                           "--from", str(archive), "--sha256", sha], tmp_path) == (0, True)
    assert _imports_torch(["data", "check", "--data", str(data)], tmp_path) == (0, True)


def test_the_data_package_loads_its_parts_on_first_use() -> None:
    code = (
        "import sys\n"
        "import dlbox.data\n"
        "before = 'torch' in sys.modules\n"
        "names = dir(dlbox.data)\n"
        "assert 'load_dataset' in names and 'loading' in names, names\n"
        "assert dlbox.data.loading.load_dataset is dlbox.data.load_dataset\n"
        "assert dlbox.data.CIFAR10_CLASSES[0] == 'airplane'\n"
        "try:\n    dlbox.data.nothing_here\nexcept AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('no AttributeError')\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("command", [["models"], ["doctor"],
                                     ["doctor", "--resolve", "torch", "--cpu"]])
def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    """`dlbox models | head -1`: the reader goes before dlbox writes; no traceback. Review:
    `dlbox doctor | head` exited 1, which says "this host has an error" (rich's console
    ends a closed pipe with exit 1)."""
    process = subprocess.Popen([sys.executable, "-m", "dlbox", *command], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("closed, command, code", [
    (">&-", "models", 0), (">&-", "models --json", 0), ("2>&-", "train --epochs 0", 2),
    ("<&- >&- 2>&-", "models", 0)])
def test_a_standard_stream_closed_at_start_is_no_internal_error(
        tmp_path: Path, closed: str, command: str, code: int) -> None:
    """Review: `dlbox train >&-` (a daemon's or cron's job with stdout closed) trained, saved
    the run, then exited 70 "unexpected AttributeError" (Python leaves sys.stdout None, and
    its flush failed): a scheduler requeues that as failed."""
    out = subprocess.run(["bash", "-c", f'"$0" -m dlbox {command} {closed}', sys.executable],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr


def test_ctrl_c_while_the_commands_import_is_a_word_not_a_traceback(tmp_path: Path) -> None:
    # Ctrl-C lands while build_parser() imports the subcommands (the first ~0.15 s): the
    # KeyboardInterrupt is raised from inside that import, as the signal would raise it.
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'dlbox.cli.train':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from dlbox.cli import main\n"
        "sys.exit(main(['--help']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 130
    assert out.stderr == "interrupted\n"
    assert out.stdout == ""


# ---- SIGTERM: every command stops cleanly with 143 -------------------------------------------

def _stalling_server() -> tuple[socket.socket, threading.Event]:
    """A local HTTP server that sends the headers and a first few bytes of a 1 MB file, then
    nothing more until `release` is set: a download that hangs mid-file."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    release = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
                                   + b"\x1f\x8b" + b"\0" * 98)
                release.wait(60)

    threading.Thread(target=serve, daemon=True).start()
    return listener, release


def _terminate_when(process: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never got to the point to stop it at"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)


def test_sigterm_during_a_download_exits_143_and_keeps_only_the_resumable_part(
        tmp_path: Path) -> None:
    """Found by reading: only train and evaluate handled SIGTERM; `dlbox data fetch` (like
    predict, doctor, models) died by the signal, with no word and a 'killed' status."""
    listener, release = _stalling_server()
    data = tmp_path / "data"
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/cifar-10-python.tar.gz"
    process = subprocess.Popen([sys.executable, "-m", "dlbox", "data", "fetch", "--data",
                                str(data), "--from", url], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _terminate_when(process, (data / "cifar-10-python.tar.gz.part").exists)
        out, err = process.communicate(timeout=60)
    finally:
        release.set()
        listener.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == "stopped (SIGTERM)" and "Traceback" not in err, err
    assert out == ""
    # The .part is kept on purpose: the next fetch resumes it (no temp file besides it; its
    # record of the URL it comes from, which the next fetch checks).
    assert sorted(p.name for p in data.iterdir()) == ["cifar-10-python.tar.gz.part",
                                                      "cifar-10-python.tar.gz.part.source"]


# Holds `dlbox data fetch` after it extracted the archive into its temp folder, before that
# folder moves into place: the moment the default SIGTERM action left the folder behind.
HELD_IN_EXTRACTION = """
import sys, time
import dlbox.cli
from dlbox.data import extract
real = extract._extract_members
def extract_then_wait(*args, **kwargs):
    files = real(*args, **kwargs)
    print("extracted", flush=True)
    time.sleep(60)
    return files
extract._extract_members = extract_then_wait
sys.exit(dlbox.cli.main(sys.argv[1:]))
"""


def test_sigterm_during_extraction_removes_the_temp_folder(tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "cifar-10-python.tar.gz")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    data = tmp_path / "data"
    process = subprocess.Popen([sys.executable, "-c", HELD_IN_EXTRACTION, "data", "fetch",
                                "--data", str(data), "--from", str(archive), "--sha256", sha],
                               cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None
    try:
        _terminate_when(process, lambda: process.stdout.readline() == "extracted\n")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == "stopped (SIGTERM)" and "Traceback" not in err, err
    assert not data.exists()  # the temp folder went, and with it the data dir fetch created


# Each command's work replaced by a wait (its module's `run` function, read when main() builds
# the parser), so that every command is stopped at a known point.
WAITING_COMMAND = """
import signal, sys, time
import dlbox.cli
module = __import__(f"dlbox.cli.{sys.argv[1]}", fromlist=["x"])
def wait(args):
    print("waiting", flush=True)
    time.sleep(60)
setattr(module, sys.argv[2], wait)
sys.exit(dlbox.cli.main(sys.argv[3:]))
"""


@pytest.mark.parametrize("module, function, argv", [
    ("doctor", "run", ["doctor"]),
    ("models", "run", ["models"]),
    ("predict", "run", ["predict", "RUN", "a.png"]),
    ("image", "run_build", ["image", "build"]),
    ("image", "run_run", ["image", "run"]),
    ("notebook", "run", ["notebook"]),
    ("data", "run_check", ["data", "check"]),
])
def test_sigterm_in_any_command_is_a_clean_143(module: str, function: str, argv: list[str],
                                               tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", WAITING_COMMAND, module, function,
                                *argv], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None
    try:
        _terminate_when(process, lambda: process.stdout.readline() == "waiting\n")
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err == "stopped (SIGTERM)\n"


def test_sighup_stops_an_image_build_cleanly_unless_nohup_ignores_it(tmp_path: Path) -> None:
    """Found by review: a closed terminal (SIGHUP) during `image build` killed it at once,
    leaving its build context (hundreds of MB) in /tmp; SIGTERM and Ctrl-C cleaned up."""
    command = [sys.executable, "-c", WAITING_COMMAND, "image", "run_build", "image", "build"]
    process = subprocess.Popen(command, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        assert process.stdout.readline() == "waiting\n"
        process.send_signal(signal.SIGHUP)
        _, err = process.communicate(timeout=60)
        assert time.monotonic() < deadline
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, err) == (129, "stopped (SIGHUP)\n")
    # under nohup SIGHUP is ignored, and stays so: the work outlives the terminal
    from dlbox.cli.common import sigterm_stops_cleanly

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with sigterm_stops_cleanly():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            from dlbox.cli.notebook import _stop_signals_interrupt
            from dlbox.container.engine import _signals_stop
            from dlbox.training.loop import StopFlag, stop_on_signals

            for nested in (stop_on_signals(StopFlag()), _stop_signals_interrupt(),
                           _signals_stop(object(), 1.0)):
                with nested:  # training, notebook, image run: a nohup'd one goes on too
                    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_handlers_of_their_own_inside_a_command_put_main_s_back() -> None:
    """The training loop (finish the step, save), `notebook` and `image run` (stop what they
    started) install their own SIGTERM handler while they run; after them, SIGTERM must again
    be main()'s clean stop, not Python's default (die at once)."""
    from dlbox.cli.common import sigterm_stops_cleanly
    from dlbox.cli.notebook import _stop_signals_interrupt
    from dlbox.container.engine import _signals_stop
    from dlbox.training.loop import StopFlag, stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_stops_cleanly():
        installed = signal.getsignal(signal.SIGTERM)
        assert installed is not before and callable(installed)
        for nested in (stop_on_signals(StopFlag()), _stop_signals_interrupt(),
                       _signals_stop(object(), 1.0)):
            with nested:
                assert signal.getsignal(signal.SIGTERM) is not installed
            assert signal.getsignal(signal.SIGTERM) is installed
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_sigterm_in_training_stops_as_sigterm_not_as_ctrl_c() -> None:
    """Found by review: the training loop's second SIGTERM (the first finishes the step and
    saves) raised KeyboardInterrupt: `interrupted` and exit 130, as for Ctrl-C, where
    docs/training.md says SIGTERM exits 143."""
    import os
    import time

    from dlbox.processes import Terminated
    from dlbox.training.loop import StopFlag, stop_on_signals

    def send(signum: int) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs in the main thread, at its next instruction

    for second, expected in ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)):
        flag = StopFlag()
        with stop_on_signals(flag):
            send(signal.SIGTERM)
            assert flag.signum == signal.SIGTERM  # the first: finish the step, save
            with pytest.raises(expected) as stopped:
                send(second)
        assert type(stopped.value) is expected
    with pytest.raises(Terminated) as again, stop_on_signals(StopFlag()):
        send(signal.SIGINT)
        send(signal.SIGTERM)
    assert again.value.code == 143 and again.value.signal_name == "SIGTERM"


def test_the_stop_handlers_leave_signals_alone_outside_the_main_thread() -> None:
    """Python allows signal handlers only in the main thread. The notebook's SIGTERM/SIGHUP
    handler raised ValueError there (a program launching the notebook from a worker thread
    failed before the server started); the others already left signals alone."""
    from dlbox.cli.common import sigterm_stops_cleanly
    from dlbox.cli.notebook import _stop_signals_interrupt
    from dlbox.container.engine import _signals_stop
    from dlbox.training.loop import StopFlag, stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    errors: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            for nested in (sigterm_stops_cleanly(), stop_on_signals(StopFlag()),
                           _stop_signals_interrupt(), _signals_stop(object(), 1.0)):
                with nested:
                    assert signal.getsignal(signal.SIGTERM) is before
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert errors == []
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("late", [False, True], ids=["as-main-returns", "late-in-the-exit"])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_command_exits_ends_it_with_its_exit_code(
        stop: signal.Signals, late: bool, tmp_path: Path) -> None:
    """Found by review: a second Ctrl-C just after "resume with: ..." landed in Python's slow
    shutdown with torch loaded (its atexit callbacks): `Exception ignored in atexit
    callback ... KeyboardInterrupt` and a traceback; and a `timeout` whose SIGTERM landed as
    a finished `dlbox train` exited made it exit 143, read as a failure, also late in the
    exit, after Python has put its signal handlers back to the default (then tears torch
    down for most of a second). Once the command has ended, a stop ends the process with the
    command's exit code. `late`: the signal comes from the exit's last garbage collection."""
    kill = f"os.kill(os.getpid(), {int(stop)})"
    code = (
        "import gc, os, signal, sys, time\n"
        "from dlbox import cli\n"
        "sys.argv = ['dlbox', 'models']\n"
        "class Late:\n"
        "    def __del__(self):\n"
        f"        {kill if late else 'pass'}\n"
        "        time.sleep(0.2)\n"
        "gc.disable()\n"
        "late = Late(); late.cycle = late; del late  # collected only as Python exits\n"
        "code = cli.main()\n"  # as the console script calls it
        f"{'pass' if late else kill}\n"
        "time.sleep(0.2)\n"
        "print('reached')\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert "speedrun" in out.stdout and ("reached" in out.stdout) is late


def test_a_background_job_that_ignores_ctrl_c_goes_on_ignoring_it() -> None:
    """Found by review: `dlbox train ... &` in a script starts with SIGINT ignored (the
    shell's way of keeping Ctrl-C for the foreground job), and plain Python keeps it so; the
    training loop installed its stop handler anyway, so that job stopped on a SIGINT, while
    the final evaluation, outside the loop, ignored it. SIGINT is left ignored, as SIGHUP is
    under nohup."""
    from dlbox.cli.notebook import _stop_signals_interrupt
    from dlbox.container.engine import _signals_stop
    from dlbox.training.loop import StopFlag, stop_on_signals

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for nested in (stop_on_signals(StopFlag()), _stop_signals_interrupt(),
                       _signals_stop(object(), 1.0)):
            with nested:
                assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
                assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN,
                                                                signal.SIG_DFL)
    finally:
        signal.signal(signal.SIGINT, before)
