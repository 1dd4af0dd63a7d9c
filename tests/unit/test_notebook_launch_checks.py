"""The checks `dlbox notebook` makes before it starts anything, and the words it shows.

Real sockets on this machine (a port in TIME_WAIT, an address that is not ours, IPv6), real
files for the notebook check; no Jupyter, no Docker.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
from pathlib import Path

import pytest
from conftest import ipv6_loopback_available, port_in_time_wait

from dlbox.errors import UsageError
from dlbox.jupyter.container import run_request
from dlbox.jupyter.notebooks import notebook_problem
from dlbox.jupyter.probe import StartupTimeout, wait_until_ready
from dlbox.jupyter.progress import ProgressView, plural
from dlbox.jupyter.server import resolve_port
from dlbox.jupyter.settings import (
    HIDDEN_FILE_GLOBS,
    NotebookSettings,
    all_interfaces_warning,
    lab_config,
    seconds_text,
    server_url,
)
from dlbox.ports import port_is_free

NOT_OURS = "10.255.255.1"  # a private address no interface of a test machine has






# ---- bug: a port in TIME_WAIT was reported "in use" -----------------------------------------

def test_a_port_in_time_wait_is_free_for_jupyter() -> None:
    port = port_in_time_wait()
    assert port_is_free("127.0.0.1", port)
    assert resolve_port("127.0.0.1", port) == port


def test_a_listening_port_is_still_in_use() -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(UsageError, match=f"port {port} on 127.0.0.1 is already in use"):
            resolve_port("127.0.0.1", port)


def test_localhost_is_checked_on_every_address_the_name_has(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /etc/hosts gives localhost ::1 too, Jupyter (tornado) listens on both: a port
    taken on ::1 alone was said to be free, and the server then failed to start."""
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6")
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port or 0, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with socket.socket(socket.AF_INET6) as busy:
        busy.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        busy.bind(("::1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        if not port_is_free("127.0.0.1", port):
            pytest.skip(f"port {port} is taken on 127.0.0.1 too")
        with pytest.raises(UsageError, match=f"port {port} on localhost is already in use"):
            resolve_port("localhost", port)
    port = resolve_port("localhost", 0)  # free on both, as tornado binds it on each
    assert port_is_free("127.0.0.1", port) and port_is_free("::1", port)


# ---- bug: --ip :: and addresses that are not this machine's ---------------------------------

@pytest.mark.parametrize("port", [8888, 0])
def test_an_address_of_another_machine_is_refused_up_front(port: int) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_port(NOT_OURS, port)
    assert f"--ip {NOT_OURS} is not an address of this machine" in str(caught.value)
    assert "already in use" not in str(caught.value)
    assert caught.value.hint and "--ip 127.0.0.1" in caught.value.hint


@pytest.mark.parametrize(("ip", "mapped"), [("::ffff:127.0.0.1", "127.0.0.1"),
                                             ("::FFFF:10.0.0.7", "10.0.0.7")])
def test_an_ipv4_mapped_address_is_refused_up_front_naming_its_ipv4_address(
        tmp_path: Path, ip: str, mapped: str) -> None:
    """Found by review: `--ip ::ffff:127.0.0.1` was accepted, then failed "cannot listen on
    [::ffff:127.0.0.1]:8888: Invalid argument" with a hint about --port."""
    with pytest.raises(UsageError) as caught:
        NotebookSettings(tmp_path, ip=ip)
    assert (caught.value.message, caught.value.hint) == (
        f"--ip {ip} is an IPv4 address written as IPv6 (IPv4-mapped), which cannot be "
        "listened on", f"pass --ip {mapped}")


def test_ipv6_wildcard_is_browsed_through_the_ipv6_loopback() -> None:
    token = "ab" * 32
    # Jupyter's sockets on :: are IPv6-only: 127.0.0.1 would not reach them.
    assert server_url("::", 8888, token) == f"http://[::1]:8888/lab?token={token}"
    assert server_url("0.0.0.0", 8888, token).startswith("http://127.0.0.1:8888/")
    assert "([::]:8888)" in all_interfaces_warning("::", 8888)
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6")
    port = resolve_port("::", 0)
    assert port > 0 and resolve_port("::1", port) == port


# ---- bug: --startup-timeout nan / inf; 0.5 shown as "0 s" -----------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_startup_timeout_must_be_positive_and_finite(tmp_path: Path, value: float) -> None:
    with pytest.raises(UsageError, match="--startup-timeout .* is not a positive number"):
        NotebookSettings(tmp_path, startup_timeout_s=value)


def test_seconds_are_shown_as_given() -> None:
    assert seconds_text(0.5) == "0.5 s"
    assert seconds_text(120.0) == "120 s"
    assert seconds_text(2.25) == "2.25 s"
    assert seconds_text(0.0001) == "0.0001 s"


def test_a_short_startup_timeout_is_named_as_given() -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(StartupTimeout, match=r"within 0\.5 s \("):
        wait_until_ready(f"http://127.0.0.1:{port}", "t", 0.5, lambda: None, poll_s=0.1)


# ---- bug: --ip of this machine's own network address waited 120 s for a 403 ---------------

@pytest.mark.parametrize("ip, remote", [("127.0.0.1", False), ("::1", False),
                                        ("localhost", False), ("0.0.0.0", True), ("::", True),
                                        ("192.0.2.2", True)])
def test_a_non_loopback_ip_lets_jupyter_answer_its_own_address(ip: str, remote: bool) -> None:
    """Found by review: --ip 192.0.2.2 (this machine's eth0) started a server that refused
    every request for its Host (403, "non-local Host"), so dlbox waited out --startup-timeout
    and suggested a longer one. Jupyter's remote-access check is off for any address that is
    not a loopback one, as for a wildcard."""
    config = lab_config("/nb", ip, 8888, allow_root=False)
    assert config["ServerApp"]["allow_remote_access"] is remote  # type: ignore[index]


def test_a_server_that_refuses_its_own_token_is_an_error_at_once(tmp_path: Path) -> None:
    """Through ManagedServer.start, which adds the log's whereabouts to the hint (and once
    replaced the refusal's hint with the timeout's)."""
    import http.server
    import threading
    import time

    from dlbox.jupyter.server import ManagedServer, ServerInfo

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the handler's name is http.server's)
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http_server = http.server.HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{http_server.server_port}"

    class Answering(ManagedServer):  # what a launched Jupyter is to start(): a URL, a log
        def _launch(self) -> ServerInfo:
            return ServerInfo(base_url, "t", tmp_path, None)

        def _exit_reason(self) -> str | None:
            return None

        def _halt(self, timeout_s: float) -> None:
            pass

        def wait(self) -> int:
            return 0

        def _log_tail(self) -> str:
            return "[W] Blocking request with non-local 'Host'\n"

    try:
        start = time.monotonic()
        with pytest.raises(StartupTimeout) as caught:
            Answering(NotebookSettings(tmp_path, startup_timeout_s=60)).start()
        assert time.monotonic() - start < 10  # not the 60 s timeout
    finally:
        http_server.shutdown()
        http_server.server_close()
    assert caught.value.message == (f"the Jupyter server at {base_url} refuses requests with "
                                    "its own token (HTTP 403)")
    hint = caught.value.hint or ""
    assert "startup-timeout" not in hint and "allow_remote_access" in hint
    assert hint.endswith("; the end of the server's log is above")
    assert "Blocking request" in caught.value.log_tail


# ---- bug: the lock file of a run is shown ---------------------------------------------------

def test_the_file_browser_hides_the_run_lock_and_keeps_jupyters_own_hidden_files() -> None:
    config = lab_config("/nb", "127.0.0.1", 8888, allow_root=False)
    hidden = config["ContentsManager"]["hide_globs"]  # type: ignore[index]
    assert ".dlbox-run.lock" in hidden and list(HIDDEN_FILE_GLOBS) == hidden
    with contextlib.suppress(ImportError):
        from jupyter_server.services.contents.manager import ContentsManager

        assert set(ContentsManager().hide_globs) <= set(hidden)


# ---- bug: "1 epochs" --------------------------------------------------------------------------

def test_counts_agree_with_their_nouns() -> None:
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"
    assert plural(0, "step") == "0 steps"
    done = repr(ProgressView(1, 1, 1, 1, 3.0, finished=True))
    assert "done: 1 epoch, 1 step in 0:03" in done, done
    assert "epoch(s)" not in done
    assert "done: 2 epochs, 10 steps" in repr(ProgressView(10, 10, 2, 2, 3.0, finished=True))


# ---- bug: a damaged notebook got a direct URL -----------------------------------------------

@pytest.mark.parametrize(("content", "problem"), [
    (b'{"cells": [', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[]", "not a Jupyter notebook"),
    (b'{"nbformat": 4}', "not a notebook Jupyter can read"),
    (b"\xff\xfe{", "not UTF-8"),
])
def test_a_damaged_notebook_is_named_as_such(tmp_path: Path, content: bytes,
                                             problem: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    found = notebook_problem(path)
    assert found is not None and problem in found, found


def test_a_good_notebook_has_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "good.ipynb"
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    assert notebook_problem(path) is None
    committed = Path(__file__).resolve().parents[2] / "notebooks"
    assert notebook_problem(committed / "first_pytorch_classifier.ipynb") is None


# ---- the container's request: the address asked for, no capabilities ------------------------

@pytest.mark.parametrize(("ip", "published"), [
    ("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"),
    ("::", "::"), ("::1", "::1"),
])
def test_the_container_port_is_published_on_the_address_asked_for(
        tmp_path: Path, ip: str, published: str) -> None:
    settings = NotebookSettings(tmp_path, ip=ip, port=0, container=True)
    request = run_request("dlbox:cpu", settings, 8123, 1000, 1000, tmp_path / "t",
                          tmp_path / "c.json", None, name="n")
    assert request.host_ip == published and request.ports == ((8888, 8123),)
    assert request.cap_drop == ("ALL",) and request.no_new_privileges is True
    assert request.user == "1000:1000" and request.name == "n"


# ---- bug: a malformed --tag got the engine's garbled refusal and exit status 1 ---------------

@pytest.mark.parametrize("tag", ["BAD TAG!!", "Dlbox:cpu", "dlbox:", "x@sha256:abc"])
def test_a_malformed_image_reference_is_a_usage_error_before_anything_starts(
        tag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli import main
    from dlbox.container import engine

    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine was asked before the tag was checked")

    monkeypatch.setattr(engine, "connect", no_engine)
    code = main(["notebook", "--container", "--no-browser", "--tag", tag,
                 "--notebook-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out)
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"error: --tag {tag!r} is not a valid image name: "), err
    assert lines[1].startswith("hint: use lowercase letters, digits and . _ - in the name"), err


@pytest.mark.parametrize("tag", ["dlbox:cpu", "registry:5000/team/app:v1.2_rc-1",
                                 "app@sha256:" + "0" * 64])
def test_a_valid_image_reference_gets_past_the_check(
        tag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.cli import main
    from dlbox.container import engine
    from dlbox.errors import ContainerError

    def no_engine(*args: object, **kwargs: object) -> None:
        raise ContainerError("no engine in this test")

    monkeypatch.setattr(engine, "connect", no_engine)
    assert main(["notebook", "--container", "--no-browser", "--tag", tag,
                 "--notebook-dir", str(tmp_path)]) == 1  # the engine is the next step


def test_a_stop_signal_gives_the_exit_status_a_shell_gives_for_it() -> None:
    # SIGTERM and SIGHUP stopped `dlbox notebook` with Ctrl-C's 130; every other command
    # exits 143 for SIGTERM, and a scheduler tells the two apart by the status.
    import signal

    from dlbox.cli.notebook import StopSignal, exit_status

    assert exit_status(KeyboardInterrupt()) == 130
    assert exit_status(StopSignal(signal.SIGTERM)) == 143
    assert exit_status(StopSignal(signal.SIGHUP)) == 129


def test_the_image_hint_says_where_dlbox_image_build_builds_dlbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a project's folder `dlbox image build --cpu` builds that project, not the dlbox
    # image the notebook wants: the hint sent the user to build the wrong image.
    from dlbox.jupyter.container import builtin_build_command

    monkeypatch.chdir(tmp_path)
    assert builtin_build_command() == "`dlbox image build --cpu`"
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert "in a folder without requirements.txt" in builtin_build_command()


def test_a_server_that_stops_answering_after_it_started_is_a_clear_error() -> None:
    """Found in review: the token check after the server answered had no guard, so a server
    that died right then gave a raw ConnectionRefusedError (an 'unexpected' error)."""
    import socket

    from dlbox.errors import DlboxError
    from dlbox.jupyter.probe import check_token_required

    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DlboxError) as info:
        check_token_required(f"http://127.0.0.1:{port}")
    assert info.value.message == (f"the Jupyter server stopped answering at "
                                  f"http://127.0.0.1:{port} right after it started "
                                  "(ConnectionRefusedError)")


# ---- bug: bad notebook settings ended in numpy / matplotlib tracebacks ----------------------

@pytest.mark.parametrize("settings, message", [
    ({"NUM_TRAIN": 0}, "NUM_TRAIN = 0 is not a number of images"),
    ({"NUM_TRAIN": -5}, "NUM_TRAIN = -5 is not a number of images"),  # kept all but 5
    ({"NUM_TEST": "100"}, "NUM_TEST = '100' is not a number of images"),
    ({"EPOCHS": 1.5}, "EPOCHS = 1.5 is not a number of passes"),
    ({"SEED": None}, "SEED = None is not a whole number"),
    ({"SEED": True}, "SEED = True is not a whole number"),
])
def test_bad_notebook_settings_are_one_error_naming_the_setting(
        settings: dict[str, object], message: str) -> None:
    """Found by review: NUM_TRAIN = 0 failed in matplotlib, -5 silently kept 49 995 images,
    "100" and SEED = None ended in TypeErrors."""
    from dlbox.jupyter.notebooks import check_settings

    values: dict[str, object] = {"NUM_TRAIN": None, "NUM_TEST": None, "EPOCHS": 2, "SEED": 0}
    check_settings(**values)  # the defaults pass
    with pytest.raises(UsageError) as caught:
        check_settings(**{**values, **settings})
    assert caught.value.message == message
    [name] = settings
    assert (caught.value.hint or "").startswith(f"set {name} to a whole number")


def test_a_subset_of_no_images_is_refused() -> None:
    import torch

    from dlbox.data.dataset import ImageDataset

    data = ImageDataset(torch.zeros(10, 3, 4, 4, dtype=torch.uint8),
                        torch.zeros(10, dtype=torch.int64), ("a",), "test")
    assert len(data.subset(3)) == 3 and data.subset(None) is data
    for count in (0, -5):
        with pytest.raises(UsageError, match=f"a subset of {count} images"):
            data.subset(count)


@pytest.mark.parametrize("line, expected", [
    ("hint: pass --epochs 1 or more", "hint: set EPOCHS to 1 or more"),
    ("hint: or use --device cpu", 'hint: or set DEVICE to "cpu"'),
    ("hint: pass another --run-dir", "hint: set RUN_DIR to another folder"),
    ("hint: or pass --data DIR holding cifar-10-batches-py/",
     "hint: or set DATA_DIR to a folder holding cifar-10-batches-py/"),
    # a command in backticks is pasted into a terminal: left whole
    ("hint: run `dlbox data fetch --data /x`, or pass --data DIR",
     "hint: run `dlbox data fetch --data /x`, or set DATA_DIR"),
    ("hint: train again with a lower learning rate (this run's: --lr 900)",
     "hint: train again with a lower learning rate (this run's: --lr 900)"),
    ("hint: pass --num-test-x 3", "hint: pass --num-test-x 3"),  # not a flag it knows
    # review: a speedrun stopped in its first epoch said to run "the same command" again
    ("hint: start again with the same command (it may reuse /r, which holds no checkpoint)",
     "hint: run the training cell again (it may reuse /r, which holds no checkpoint)"),
    # review: a notebook setting is set, to None for "left out"
    ("hint: pass --num-train 500 or less, or leave --num-train out to use them all",
     "hint: set NUM_TRAIN to 500 or less, or to None to use them all"),
    ("hint: run from a writable folder, or pass --run-dir",
     "hint: start Jupyter in a writable folder, or set RUN_DIR to a folder you can write to"),
    # review: more of the command line's words, said as the notebook sets things
    ("hint: pass --num-train 1 or more, or leave it out",
     "hint: set NUM_TRAIN to 1 or more, or to None"),
    ("hint: pass --data /tmp/tree (the folder that holds train/)",
     'hint: set DATA_DIR to "/tmp/tree" (the folder that holds train/)'),
    ("hint: pass --data '/tmp/a b' (the folder that holds train/)",
     "hint: set DATA_DIR to '/tmp/a b' (the folder that holds train/)"),
    ("hint: pass a new or empty --run-dir", "hint: set RUN_DIR to a new or empty folder"),
    ("hint: pass a writable --run-dir", "hint: set RUN_DIR to a writable folder"),
    ("hint: use --device cuda (the first GPU) or a smaller index",
     'hint: set DEVICE to "cuda" (the first GPU) or a smaller index'),
    ("hint: or pass another --run-dir for a new run",
     "hint: or set RUN_DIR to another folder for a new run"),
])
def test_the_notebook_names_its_settings_for_the_flags(line: str, expected: str) -> None:
    """Found by review: in the notebook, dlbox's hints named --epochs, --device, --run-dir,
    flags of the command line, where the notebook has EPOCHS, DEVICE, RUN_DIR."""
    from dlbox.jupyter.notebooks import in_setting_terms

    assert in_setting_terms(line) == expected


def test_two_launches_on_one_port_at_once_are_told_it_is_in_use(tmp_path: Path) -> None:
    """Found by review: two `dlbox notebook --port N` started together both found the port
    free; the one whose server could not listen then polled the other's (HTTP 403 to its
    own token, "a Jupyter config of yours") or stopped with "pip install" advice."""
    from dlbox.jupyter.server import LocalServer
    from dlbox.jupyter.settings import NotebookSettings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = NotebookSettings(notebook_dir=tmp_path, port=port, open_browser=False)
    first, second = LocalServer(settings), LocalServer(settings)
    try:
        first.prepare()  # checked free, and claimed until its server answers
        with pytest.raises(UsageError) as info:
            second.prepare()
        assert info.value.message == (f"port {port} on 127.0.0.1 is already in use "
                                      "(another Jupyter?)")
        # another spelling of an address that overlaps (found by review: the claim was by
        # the --ip text, so localhost and 127.0.0.1 both went ahead)
        other = LocalServer(NotebookSettings(notebook_dir=tmp_path, ip="localhost", port=port,
                                             open_browser=False))
        with pytest.raises(UsageError, match=f"port {port} on localhost is already in use"):
            other.prepare()
        other.stop()
        first.stop()  # it gave up before starting: the port is free again
        second.prepare()
    finally:
        first.stop()
        second.stop()


def test_the_notebook_words_training_warnings_in_its_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: in the notebook, training's warning that the first NUM_TRAIN images
    lack a class advised "a larger --num-train", a flag the notebook has no place for."""
    import IPython

    from dlbox.data.synthetic import write_fake_cifar10
    from dlbox.jupyter.notebooks import name_settings_in_errors
    from dlbox.text import use_wording
    from dlbox.training.loop import load_split, warn_of_classes_it_cannot_learn

    write_fake_cifar10(tmp_path, n_train=40, n_test=10)
    first_two = load_split(tmp_path, "train", 2)

    warn_of_classes_it_cannot_learn(first_two, 2, tmp_path)  # the command line's words
    assert "(a larger --num-train may take some in)" in capsys.readouterr().err
    class Kernel:  # what a notebook's kernel answers get_ipython() with, as far as used
        def set_custom_exc(self, kinds: tuple[type, ...], handler: object) -> None:
            self.handled = kinds

    kernel = Kernel()
    monkeypatch.setattr(IPython, "get_ipython", lambda: kernel)
    try:
        name_settings_in_errors()  # what the notebook's first code cell calls
        warn_of_classes_it_cannot_learn(first_two, 2, tmp_path)
        said = capsys.readouterr().err
        assert said.startswith("warning: the first 2 training images hold no images of 8 ")
        assert "(a larger NUM_TRAIN may take some in)" in said and "--" not in said
    finally:
        use_wording(None)


def _link_local_addresses() -> list[tuple[str, str]]:
    """This machine's link-local IPv6 addresses that are ready (not tentative), with their
    interfaces (Linux: /proc/net/if_inet6's address, index, prefix, scope, flags, name)."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            digits, _, _, _, flags, interface = line.split()
            if digits.startswith("fe80") and not int(flags, 16) & 0x40:  # IFA_F_TENTATIVE
                found.append((str(ipaddress.IPv6Address(int(digits, 16))), interface))
    return found


def test_a_link_local_address_is_listened_on_through_its_interface() -> None:
    """Found by review: `dlbox notebook --ip fe80::...%eth0` (an address reached through one
    interface) failed the port check with "Invalid argument", where Jupyter listens on it;
    without its interface, "Invalid argument" and a hint about ports."""
    from dlbox.jupyter.server import listen_error
    from dlbox.ports import bind_probe

    if not socket.has_ipv6 or not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 on this machine")
    with pytest.raises(OSError) as unscoped:
        bind_probe("fe80::1", 0)
    error = listen_error("fe80::1", 0, unscoped.value)
    assert error.message == ("--ip fe80::1 is a link-local address, which is reached through "
                             "one network interface, and names none")
    assert (error.hint or "").startswith("add the interface it is on, e.g. --ip fe80::1%eth0")
    with pytest.raises(OSError) as no_such:
        bind_probe("fe80::1%dlbox-none9", 0)
    assert listen_error("fe80::1%dlbox-none9", 0, no_such.value).message == (
        "--ip fe80::1%dlbox-none9: this machine has no network interface 'dlbox-none9'")
    with pytest.raises(OSError) as not_link_local:  # review: "no network interface 'lo'"
        bind_probe("::1%lo", 0)
    assert listen_error("::1%lo", 0, not_link_local.value).message == (
        "--ip ::1%lo: an interface goes only with a link-local address (fe80::...)")
    found = _link_local_addresses()
    if not found:
        pytest.skip("this machine has no link-local IPv6 address")
    bound = []
    for address, interface in found:  # a container's interface may go while this runs
        with contextlib.suppress(OSError):
            bound.append(bind_probe(f"{address}%{interface}", 0))
    assert bound and all(port > 0 for port in bound), found


NOTEBOOK_DEFAULTS: dict[str, object] = {
    "DATA_DIR": "auto", "NUM_TRAIN": None, "NUM_TEST": None, "EPOCHS": 2, "MODEL": "tutorial",
    "DEVICE": "auto", "SEED": 0, "MY_IMAGE": None, "RUN_DIR": None}


@pytest.mark.parametrize("settings, message, hint", [
    ({"DEVICE": 1}, "DEVICE = 1 is not a device", 'set DEVICE to "auto", "cpu" or "cuda"'),
    ({"DEVICE": 0}, "DEVICE = 0 is not a device", "set DEVICE to"),  # had meant "auto"
    ({"DEVICE": "gpu"}, "DEVICE = 'gpu' is not a device", "set DEVICE to"),  # at cell 8
    ({"DEVICE": ""}, "DEVICE = '' is not a device", "set DEVICE to"),
    ({"DEVICE": "cuda:x"}, "DEVICE = 'cuda:x' is not a device", "set DEVICE to"),
    ({"DATA_DIR": 5}, "DATA_DIR = 5 is not a folder", 'set DATA_DIR to "auto", None'),
    ({"RUN_DIR": 5}, "RUN_DIR = 5 is not a folder", "set RUN_DIR to None"),
    ({"RUN_DIR": ""}, "RUN_DIR = '' is not a folder", "set RUN_DIR to None"),
    ({"MY_IMAGE": 5}, "MY_IMAGE = 5 is not a file", "set MY_IMAGE to None"),
    ({"MY_IMAGE": "/no/such/cat.jpg"}, "MY_IMAGE = '/no/such/cat.jpg' is no file here",
     "set MY_IMAGE to the path of a photo of yours, or None to draw one"),
    ({"MODEL": "resnet18"}, "MODEL = 'resnet18' is not one of dlbox's models",
     "set MODEL to one of 'resnet', "),
    ({"SEED": 2**70}, f"SEED = {2**70} is out of range", "set SEED to a whole number such as 0"),
])
def test_every_notebook_setting_is_checked_in_the_first_cell(
        settings: dict[str, object], message: str, hint: str) -> None:
    """Found by review: DEVICE = 1 ended in an AttributeError, DATA_DIR = 5 and RUN_DIR = 5
    in TypeErrors (RUN_DIR's after the data was read), MY_IMAGE = 5 or a mistyped path only
    after the whole training, MODEL only at the model cell, SEED = 2**70 at the training cell
    with a hint (`SEED 0`) that is not Python; DEVICE = 0 silently meant "auto"."""
    from dlbox.jupyter.notebooks import check_settings

    check_settings(**NOTEBOOK_DEFAULTS)  # the defaults pass
    with pytest.raises(UsageError) as caught:
        check_settings(**{**NOTEBOOK_DEFAULTS, **settings})
    assert caught.value.message == message
    assert (caught.value.hint or "").startswith(hint), caught.value.hint


def test_the_notebooks_synthetic_data_takes_any_seed_and_at_most_cifar10s_sizes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: SEED = -1 (a seed `dlbox train --seed` takes) failed in numpy
    ("expected non-negative integer"); NUM_TRAIN = 10**10 ended in a MemoryError, and a
    million made a million images; a run kept in RUN_DIR lost its data with the kernel."""
    from dlbox.data.loading import load_dataset
    from dlbox.jupyter.notebooks import synthetic_cifar10

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    folder = synthetic_cifar10(scratch, 64, None, -1)
    assert folder == scratch
    train = load_dataset(folder, "train")
    assert len(train) == 2000 and len(load_dataset(folder, "test")) == 100  # 64 of 2000 taken
    with pytest.raises(UsageError) as caught:
        synthetic_cifar10(scratch, 10**10, None, 0)
    assert caught.value.message == ("NUM_TRAIN = 10000000000 is more than the synthetic "
                                    "look-alike's 50,000 train images (as many as CIFAR-10 has)")
    assert caught.value.hint == "set NUM_TRAIN to 50000 or fewer, or to None for all of them"
    with pytest.raises(UsageError, match="^NUM_TEST = 10001 is more than"):
        synthetic_cifar10(scratch, None, 10_001, 0)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kept = synthetic_cifar10(None, None, 200, 3)
    assert kept == tmp_path / "cache" / "dlbox" / "synthetic" / "train2000-test200-seed3"
    assert len(load_dataset(kept, "test")) == 200
    assert synthetic_cifar10(None, None, 200, 3) == kept  # found again, not written again
    assert sorted(path.name for path in kept.parent.iterdir()) == [kept.name]  # no half left


def test_the_progress_bar_says_where_training_stopped(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: after the stop button the bar stayed at "about 0:53 left"."""
    from dlbox.jupyter.progress import NotebookProgress

    with pytest.raises(KeyboardInterrupt), NotebookProgress(2, 10, min_interval_s=0) as bar:
        bar.update(1, 3)
        raise KeyboardInterrupt
    last = capsys.readouterr().out.strip().splitlines()[-1]  # outside IPython: printed lines
    assert last.startswith("[####" + "." * 26 + "] stopped in epoch 1/2, at step 3/20, after ")
    with NotebookProgress(1, 4, min_interval_s=0) as bar:
        bar.update(1, 4)
    assert " done: 1 epoch, 4 steps in " in capsys.readouterr().out.strip().splitlines()[-1]


def test_the_progress_bar_claims_no_stop_nor_time_left_before_training_began(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a training refused before it began (RUN_DIR already holds a run)
    left the bar at "stopped in epoch 1/1, at step 0/75", a stop that never happened, above
    the error that says what did; and every bar began "about 0:00 left", before any step
    was timed."""
    from dlbox.errors import RunDirError
    from dlbox.jupyter.progress import NotebookProgress

    with pytest.raises(RunDirError), NotebookProgress(1, 75, min_interval_s=0):
        raise RunDirError("myrun already holds a run, which finished")
    lines = capsys.readouterr().out.strip().splitlines()  # outside IPython: printed lines
    assert lines[0] == "[" + "." * 30 + "] epoch 1/1, step 0/75 (0 %), 0:00 elapsed"
    assert lines[-1] == "[" + "." * 30 + "] training did not start"
    assert "stopped" not in "\n".join(lines)
    # once steps are timed (tests/unit/test_jupyter_progress.py)
    assert "about 2:24 left" in repr(ProgressView(3, 75, 1, 1, 6.0, remaining_s=144.0))


def test_a_run_stopped_in_its_first_epoch_has_no_curves_to_plot(tmp_path: Path) -> None:
    """Found by review: the notebook's curves cell, after a stop in the first epoch, failed
    with a FileNotFoundError's traceback (no metrics.json yet)."""
    from dlbox.errors import RunDirError
    from dlbox.jupyter.notebooks import training_history

    with pytest.raises(RunDirError) as caught:
        training_history(tmp_path)
    assert caught.value.message == (f"the run in {tmp_path} has no finished epoch to plot: "
                                    "its training was stopped in its first epoch")
    (tmp_path / "metrics.json").write_text('{"history": [{"epoch": 1}]}')
    assert training_history(tmp_path) == [{"epoch": 1}]
    (tmp_path / "metrics.json").write_text("{not json")  # one line too, not a traceback
    with pytest.raises(RunDirError, match="metrics.json"):
        training_history(tmp_path)


def test_a_throwaway_runs_hints_say_to_set_run_dir_not_to_resume_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: on synthetic data (RUN_DIR None) the run is in a temporary folder deleted with
    the kernel, yet an interrupt said `resume with: dlbox train --resume /tmp/...` and the
    curves cell offered the same: a user who followed them lost the run."""
    import IPython

    from dlbox.errors import RunDirError
    from dlbox.jupyter.kernel import KEEP_A_RUN, THROWAWAY_RUN_PREFIX
    from dlbox.jupyter.notebooks import name_settings_in_errors, training_history
    from dlbox.text import use_wording
    from dlbox.training.loop import TrainingStopped

    throwaway = tmp_path / f"{THROWAWAY_RUN_PREFIX}abc123" / "tutorial"
    kept = tmp_path / "runs" / "mine"
    for run in (throwaway, kept):
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.pt").write_bytes(b"saved")
    with pytest.raises(RunDirError) as info:
        training_history(throwaway)
    assert info.value.hint == KEEP_A_RUN
    with pytest.raises(RunDirError) as info:
        training_history(kept)
    assert f"dlbox train --resume {kept}" in (info.value.hint or "")

    class Kernel:  # what a notebook's kernel answers get_ipython() with, as far as used
        def set_custom_exc(self, kinds: tuple[type, ...], handler: object) -> None:
            self.handler = handler

        def _showtraceback(self, etype: type, value: BaseException, lines: list[str]) -> None:
            self.shown = lines

    kernel = Kernel()
    monkeypatch.setattr(IPython, "get_ipython", lambda: kernel)
    try:
        name_settings_in_errors()
        for run, hint in ((throwaway, f"hint: {KEEP_A_RUN}"),
                          (kept, "hint: run the training cell again (settings unchanged) to "
                                 f"continue it, or resume it in a terminal: dlbox train --resume "
                                 f"{kept}")):
            stopped = TrainingStopped(run, "KeyboardInterrupt", 130)
            kernel.handler(kernel, TrainingStopped, stopped, None)  # type: ignore[attr-defined]
            assert kernel.shown == [stopped.message, hint]
    finally:
        use_wording(None)


def test_the_notebook_claims_its_run_folder_and_names_its_throwaway_one_as_hints_expect() -> None:
    """Review: two notebooks started in the same second (a papermill sweep) took the same
    runs/<date>-<time>-<model> (check, then create), and the second failed as busy."""
    from dlbox.jupyter.kernel import THROWAWAY_RUN_PREFIX

    script = Path(__file__).parents[2] / "scripts" / "build_notebook.py"
    source = script.read_text(encoding="utf-8")
    assert "claim_default_run_dir(MODEL)" in source and "default_run_dir(MODEL)" not in (
        source.replace("claim_default_run_dir(MODEL)", ""))
    assert f'scratch_folder("{THROWAWAY_RUN_PREFIX}")' in source


def test_in_dlbox_notebook_container_the_data_hint_says_to_fetch_on_the_host_and_restart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: in `dlbox notebook --container` the notebook said "run `dlbox data
    fetch` in a terminal, then re-run", but /data is mounted only when the container starts:
    a fetch on the host was not seen, and one in JupyterLab's terminal was lost with the
    container."""
    from dlbox.jupyter.container import container_environment
    from dlbox.jupyter.notebooks import how_to_get_cifar10
    from dlbox.jupyter.settings import NOTEBOOK_CONTAINER_ENV

    monkeypatch.delenv(NOTEBOOK_CONTAINER_ENV, raising=False)
    assert how_to_get_cifar10() == ("To get the real photos, run `dlbox data fetch` in a "
                                    "terminal, then re-run.")
    env = container_environment({}, has_data=False)
    assert env[NOTEBOOK_CONTAINER_ENV] == "1"
    monkeypatch.setenv(NOTEBOOK_CONTAINER_ENV, env[NOTEBOOK_CONTAINER_ENV])
    assert how_to_get_cifar10() == (
        "To get the real photos, run `dlbox data fetch` on the host (not in this container), "
        "then stop `dlbox notebook --container` and start it again: it mounts the data when "
        "it starts.")
    script = Path(__file__).parents[2] / "scripts" / "build_notebook.py"
    assert "print(how_to_get_cifar10())" in script.read_text(encoding="utf-8")


def test_a_notebook_server_inside_a_container_warns_that_its_url_is_the_containers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `dlbox image run -- dlbox notebook` said "starting JupyterLab on this host" and
    printed a 127.0.0.1 URL of the container's own, which no browser on the host could open."""
    import dlbox.jupyter.server as server_module
    from dlbox.jupyter.server import LocalServer
    from dlbox.jupyter.settings import NotebookSettings

    def warnings(inside: bool, ip: str) -> list[str]:
        monkeypatch.setattr(server_module, "running_in_container", lambda: inside)
        server = LocalServer(NotebookSettings(notebook_dir=tmp_path, ip=ip, port=0,
                                              open_browser=False))
        try:
            return server.prepare()
        finally:
            server.stop()

    said = [w for w in warnings(True, "127.0.0.1") if "inside a container" in w]
    assert said == ["warning: this runs inside a container: the URL below is on the "
                    "container's own loopback, which a browser outside it reaches only "
                    "through a forwarded port or the host's network (not under `dlbox image "
                    "run`); on the host, `dlbox notebook --container` publishes the port "
                    "itself"]
    assert not [w for w in warnings(False, "127.0.0.1") if "inside a container" in w]
    # listening on every interface (a port the user published): not the loopback's warning
    assert not [w for w in warnings(True, "0.0.0.0") if "inside a container" in w]


def test_the_curves_of_a_run_dir_starting_with_a_tilde_are_read_from_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: RUN_DIR = "~/nbruns/t1", interrupted: the curves cell read the literal path
    "~/nbruns/t1" and said it had no finished epoch, though metrics.json held 29."""
    from dlbox.jupyter.notebooks import training_history

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "nbruns" / "t1").mkdir(parents=True)
    (tmp_path / "nbruns" / "t1" / "metrics.json").write_text('{"history": [{"epoch": 1}]}')
    assert training_history(Path("~/nbruns/t1")) == [{"epoch": 1}]
    source = (Path(__file__).parents[2] / "scripts" / "build_notebook.py").read_text()
    assert "Path(RUN_DIR)" not in source and "expand_user(RUN_DIR)" in source


def test_a_root_owned_notebook_file_is_warned_of_as_its_folder_is(tmp_path: Path) -> None:
    """Review: after `chown 1000 own` (as the folder's warning said), saving the notebook,
    still root's and 0644, failed in the container with 403 Permission denied."""
    import os

    from dlbox.jupyter.container import unwritable_warning
    from dlbox.jupyter.settings import NOTEBOOK_NAME

    me = os.geteuid(), os.getegid()
    other = (me[0] + 1000, me[1] + 1000)  # a container user that owns nothing here
    tmp_path.chmod(0o777)
    notebook = tmp_path / NOTEBOOK_NAME
    notebook.write_text("{}")
    notebook.chmod(0o644)
    assert unwritable_warning(tmp_path, *me) is None
    assert unwritable_warning(tmp_path, *other) == (
        f"warning: the container's user (uid {other[0]}) cannot write to {notebook}: the "
        f"notebook cannot be saved there. Run dlbox as a normal user, or: chown -R "
        f"{other[0]} {tmp_path}")
    notebook.chmod(0o666)
    assert unwritable_warning(tmp_path, *other) is None
    tmp_path.chmod(0o755)
    assert unwritable_warning(tmp_path, *other) == (
        f"warning: the container's user (uid {other[0]}) cannot write to {tmp_path}: the "
        f"notebook cannot be saved there. Run dlbox as a normal user, or: chown -R "
        f"{other[0]} {tmp_path}")
    tmp_path.chmod(0o700)


def test_an_unedited_copy_of_the_packaged_notebook_is_refreshed_an_edited_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: an installed dlbox copied its notebook to the user's folder once and never
    again: after an upgrade the user kept the old one, edited or not."""
    import dlbox.jupyter.notebooks as notebooks
    from dlbox.jupyter.settings import NOTEBOOK_NAME

    packaged = tmp_path / "pkg" / NOTEBOOK_NAME
    packaged.parent.mkdir()
    user_dir = tmp_path / "user"
    monkeypatch.setattr(notebooks, "_packaged_notebook", lambda: packaged)
    monkeypatch.setattr(notebooks, "user_notebooks_dir", lambda: user_dir)
    monkeypatch.setattr(notebooks, "checkout_notebooks_dir", lambda: tmp_path / "none")
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    packaged.write_text('{"v": 1}')
    assert notebooks.resolve_notebook_dir(None, cwd) == user_dir
    assert (user_dir / NOTEBOOK_NAME).read_text() == '{"v": 1}'
    packaged.write_text('{"v": 2}')  # an upgrade; the user's copy is as it was copied
    assert notebooks.resolve_notebook_dir(None, cwd) == user_dir
    assert (user_dir / NOTEBOOK_NAME).read_text() == '{"v": 2}'
    (user_dir / NOTEBOOK_NAME).write_text('{"v": 2, "mine": true}')  # edited
    packaged.write_text('{"v": 3}')
    assert notebooks.resolve_notebook_dir(None, cwd) == user_dir
    assert (user_dir / NOTEBOOK_NAME).read_text() == '{"v": 2, "mine": true}'
    newer = user_dir / NOTEBOOK_NAME.replace(".ipynb", ".new.ipynb")
    assert newer.read_text() == '{"v": 3}'


def test_a_per_user_notebook_copy_that_cannot_be_written_is_served_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: with the per-user folder read-only, the refresh's marker could not be
    written and `dlbox notebook` stopped (it served the copy before); and a copy made by a
    dlbox that kept no marker was called "edited" though the user never touched it."""
    import dlbox.jupyter.notebooks as notebooks
    from dlbox.jupyter.settings import NOTEBOOK_NAME

    packaged = tmp_path / "pkg" / NOTEBOOK_NAME
    packaged.parent.mkdir()
    packaged.write_text('{"v": 2}')
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / NOTEBOOK_NAME).write_text('{"v": 1}')  # an older dlbox's copy, no marker
    monkeypatch.setattr(notebooks, "_packaged_notebook", lambda: packaged)
    monkeypatch.setattr(notebooks, "user_notebooks_dir", lambda: user_dir)
    monkeypatch.setattr(notebooks, "checkout_notebooks_dir", lambda: tmp_path / "none")

    def cannot_write(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    with monkeypatch.context() as blocked:
        blocked.setattr(notebooks.shutil, "copyfile", cannot_write)
        blocked.setattr(Path, "write_text", cannot_write)
        assert notebooks.resolve_notebook_dir(None, tmp_path) == user_dir
    assert (user_dir / NOTEBOOK_NAME).read_text() == '{"v": 1}'
    err = capsys.readouterr().err
    assert err.startswith(f"warning: cannot bring {user_dir / NOTEBOOK_NAME} up to date with "
                          "this dlbox's version (Read-only file system): serving it as it is")
    assert "edited" not in err

    assert notebooks.resolve_notebook_dir(None, tmp_path) == user_dir  # writable again
    newer = user_dir / NOTEBOOK_NAME.replace(".ipynb", ".new.ipynb")
    assert newer.read_text() == '{"v": 2}'
    assert capsys.readouterr().err.startswith(
        f"note: your {user_dir / NOTEBOOK_NAME} differs from this dlbox's version (edited, or "
        "copied by an earlier dlbox), so it is kept; this dlbox's version is beside it: ")


def test_synthetic_data_that_cannot_be_kept_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: an unwritable cache folder gave a notebook a pathlib traceback (here
    XDG_CACHE_HOME is a file, which no permission lets through, root's neither)."""
    from dlbox.jupyter.notebooks import synthetic_cifar10

    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    with pytest.raises(UsageError) as caught:
        synthetic_cifar10(None, None, None, 0)
    assert caught.value.message.startswith(
        f"cannot keep the synthetic data in {cache / 'dlbox' / 'synthetic'}: ")
    assert caught.value.hint == ("make that folder writable, or set XDG_CACHE_HOME to a "
                                 "writable folder before starting Jupyter, or set DATA_DIR to "
                                 "a folder of CIFAR-10")


def test_the_training_cell_removes_only_a_run_folder_it_made_that_saved_nothing(
        tmp_path: Path) -> None:
    """Review: a notebook training that failed before its first checkpoint left an empty
    runs/<time>-<model>/ behind; a folder the user had, or one holding a checkpoint, stays."""
    from dlbox.jupyter.notebooks import removed_if_unsaved

    def fail_in(run_dir: Path, claimed: bool = False, checkpoint: bool = False) -> None:
        with pytest.raises(RuntimeError), removed_if_unsaved(run_dir, claimed):
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            if checkpoint:
                (run_dir / "checkpoints" / "last.pt").write_bytes(b"saved")
            raise RuntimeError("training failed")

    claimed = tmp_path / "runs" / "20260101-000000-tiny"
    (claimed / "checkpoints").mkdir(parents=True)
    fail_in(claimed, claimed=True)
    assert not claimed.exists()
    fail_in(tmp_path / "new")  # named, made by the training
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # named, and there before
    fail_in(tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()
    fail_in(tmp_path / "saved", checkpoint=True)
    assert (tmp_path / "saved" / "checkpoints" / "last.pt").is_file()


def test_the_training_cell_continues_a_stopped_run_where_resume_would(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Review: stopped_with kept its own list of the settings a resume ignores, loop.py one of
    those it keeps: eval_batch_size and checkpoint_every were in neither, so with one of
    them changed the training cell started a new run where `dlbox train --resume` (and the
    cell's own resume) would have continued the stopped one."""
    from dlbox.jupyter.notebooks import stopped_with
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, resume, train

    run_dir = tmp_path / "run"
    config = build_config("tiny", epochs=2, num_train=64, num_test=20, device="cpu",
                          data_dir=str(fake_cifar_dir), run_dir=str(run_dir), threads=1, seed=1)
    assert not stopped_with(run_dir, config)  # no run there yet
    with pytest.raises(TrainingStopped):
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2)
    assert stopped_with(run_dir, config)
    # what a resume takes as it is now, or leaves as the run had it: it continues
    assert stopped_with(run_dir, config.replace(
        eval_batch_size=7, checkpoint_every=2, threads=2, data_dir=str(tmp_path), run_dir=None))
    # what the run's result depends on: a new run
    assert not stopped_with(run_dir, config.replace(lr=config.lr * 2))
    assert not stopped_with(run_dir, config.replace(epochs=3))
    assert not stopped_with(run_dir, config.replace(model="speedrun"))
    # ... unless RUN_DIR names the folder (`named`): then that run is the one asked for, and
    # the settings to set back are named (review: "already holds a run", with the hint to
    # `dlbox train --resume` it, which finishes the old run, not the one set now)
    from dlbox.errors import UsageError

    with pytest.raises(UsageError) as changed:
        stopped_with(run_dir, config.replace(epochs=3, seed=2), named=True)
    assert changed.value.message == (f"RUN_DIR {run_dir} holds a run stopped with other "
                                     "settings: EPOCHS = 2 (now 3), SEED = 1 (now 2)")
    assert changed.value.hint == ("set them back to continue it, or set RUN_DIR to another "
                                  "folder (or None) for a new run")
    # the model's recipe has no setting in the notebook (re-review: "set it back")
    with pytest.raises(UsageError) as recipe:
        stopped_with(run_dir, config.replace(batch_size=16), named=True)
    assert recipe.value.message.endswith(f"batch_size = {config.batch_size} (now 16)")
    assert recipe.value.hint == (f"continue it in a terminal with `dlbox train --resume "
                                 f"{run_dir}` (it keeps the run's own settings), or set "
                                 "RUN_DIR to another folder (or None) for a new run")
    assert stopped_with(run_dir, config, named=True)
    resume(run_dir, progress=False, evaluate_at_end=False)
    assert not stopped_with(run_dir, config)  # finished: nothing to continue
    assert not stopped_with(run_dir, config.replace(epochs=3), named=True)  # its own error
