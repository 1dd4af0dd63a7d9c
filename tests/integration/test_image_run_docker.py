"""`dlbox image run` streams like `docker run`: bytes exact, stdin passed on, a terminal at a
terminal, and a clear error for a command the image does not have (real engine; required
when CI=true)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_image_docker import BASE, TAG, cpu_image, dlbox, engine, lock_dir  # noqa: F401 - fixtures

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("cpu_image")]


def run_args(tmp_path: Path, *command: str) -> list[str]:
    """The command line of `dlbox image run`; run it in tmp_path (no project there, so no
    note about one joins the command's own output)."""
    return [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--runs",
            str(tmp_path / "runs"), "--", *command]


def test_output_reaches_us_byte_for_byte(tmp_path: Path) -> None:
    # Binary output, and UTF-8 characters that chunks split, came out with U+FFFD before.
    script = ("import sys; sys.stdout.buffer.write(bytes(range(256)) * 4000); "
              "sys.stderr.write('\u2713' * 300000)")
    result = subprocess.run(run_args(tmp_path, "python3", "-c", script), capture_output=True,
                            timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == bytes(range(256)) * 4000
    assert result.stderr == ("\u2713" * 300000).encode()


def test_a_reader_that_goes_away_ends_the_run(engine: Any, tmp_path: Path) -> None:  # noqa: F811
    """`dlbox image run -- CMD | head`: review found it waited for ever once head had its
    lines (the engine's removal waited on the attach stream the command was blocked on)."""
    import signal

    before = {container.id for container in engine.containers.list(all=True)}
    script = "import sys; sys.stdout.write('x' * 50_000_000)"
    with subprocess.Popen(run_args(tmp_path, "python3", "-c", script), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          cwd=tmp_path) as run:
        assert run.stdout is not None and run.stdout.read(10) == b"x" * 10
        run.stdout.close()  # as head does when it has what it wants
        try:
            code = run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
            raise AssertionError("dlbox image run went on after its reader had gone") from None
    assert code == 128 + signal.SIGPIPE
    assert {container.id for container in engine.containers.list(all=True)} <= before


def test_piped_input_reaches_the_command_and_ends_with_eof(tmp_path: Path) -> None:
    data = b"".join(b"line %d\n" % i for i in range(20000))
    result = subprocess.run(run_args(tmp_path, "sh", "-c", "cat; echo done >&2"), input=data,
                            capture_output=True, timeout=120, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, data, b"done\n")


def _terminal_output(pid: int, fd: int,
                     on_output: Callable[[bytes], None] = lambda out: None) -> tuple[bytes, int]:
    """What the child on the pty `fd` printed until it closed it (`on_output` sees it as it
    grows, to answer a prompt), and its exit code."""
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child ended: the pty is closed
            break
        if not chunk:
            break
        out += chunk
        on_output(out)
    _, status = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(status)


def test_at_a_terminal_the_command_gets_one(tmp_path: Path) -> None:
    import pty

    script = ("import os, sys; print('tty', sys.stdin.isatty(), sys.stdout.isatty(), "
              "bool(os.environ.get('TERM'))); print('got', input('name? '))")
    pid, fd = pty.fork()
    if pid == 0:  # the child: dlbox with the pty as its controlling terminal
        os.execv(sys.executable, run_args(tmp_path, "python3", "-c", script))
    sent = False

    def answer(out: bytes) -> None:
        nonlocal sent
        if b"name? " in out and not sent:
            os.write(fd, b"world\r")
            sent = True

    out, code = _terminal_output(pid, fd, answer)
    assert code == 0, out
    assert b"tty True True True" in out and b"got world" in out, out


def test_a_terminal_whose_input_ended_early_still_gets_the_output(tmp_path: Path) -> None:
    """Found by review: under `script ... </dev/null` (CI's way to get a terminal) the
    terminal's input ends at once, a ^D; read before dlbox made the terminal raw, it was an
    EOF that closed the TTY container's streams: no output, exit status still 0 or 5."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, run_args(tmp_path, "sh", "-c", "sleep 1; echo late; exit 5"))
    os.write(fd, b"\x04")  # what `script` sends when its own input ends
    out, code = _terminal_output(pid, fd)
    assert code == 5, out
    assert b"late" in out, out


@pytest.mark.parametrize("command, words", [
    (("no-such-command",), "error: there is no command no-such-command in"),
    (("/workspace/pyproject.toml",), "is not executable in"),
])
def test_a_command_the_image_cannot_start_is_a_clear_error(
        tmp_path: Path, command: tuple[str, ...], words: str) -> None:
    result = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "--",
                   *command, timeout=60)
    assert result.returncode in (126, 127)  # the engine's exit code, kept
    assert words in result.stderr and "\nhint: " in result.stderr, result.stderr


@pytest.mark.parametrize("command, code, message", [
    ("no-such-command", 127, "there is no command no-such-command in {image} (executable file "
                             "not found in $PATH)"),
    ("/etc/passwd", 126, "/etc/passwd is not executable in {image} (permission denied)"),
])
def test_an_image_dlbox_did_not_build_says_the_same_of_a_command_it_cannot_start(
        engine: Any, tmp_path: Path, command: str, code: int,  # noqa: F811 - a fixture
        message: str) -> None:
    """`--tag` takes any image. Without dlbox's init, the engine itself refuses to start the
    command: that was exit 1 and "cannot start the container: failed to create shim task:
    OCI runtime create failed: ..." with a hint about `docker logs`. Now the same error as in
    a dlbox image, the shell's exit code, and no container left."""
    before = {c.id for c in engine.containers.list(all=True)}
    result = dlbox("image", "run", "--tag", BASE, "--no-tty", "--runs", str(tmp_path / "runs"),
                   "--", command, timeout=60, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {message.format(image=BASE)}", result.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: ") and "docker logs" not in lines[1]
    assert {c.id for c in engine.containers.list(all=True)} <= before


def test_a_killed_runs_exited_container_is_removed_by_the_next_run(
        engine: Any, tmp_path: Path) -> None:  # noqa: F811 - the engine fixture
    import signal

    process = subprocess.Popen(run_args(tmp_path, "sh", "-c", "echo ready; sleep 3"),
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGKILL)  # no chance to remove its container
        process.wait(timeout=30)
        left = [c for c in engine.containers.list(all=True, filters={"label": "dlbox.image-run"})
                if c.labels.get("dlbox.owner", "").split(":")[1:2] == [str(process.pid)]]
        assert len(left) == 1
        left[0].wait(timeout=60)  # its command ends on its own: the container stays, exited
        result = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "--",
                       "true", timeout=60)
        assert result.returncode == 0
        assert f"note: removed container {left[0].name}" in result.stderr, result.stderr
        assert left[0].name not in {c.name for c in engine.containers.list(all=True)}
    finally:
        if process.poll() is None:
            process.kill()


def test_each_run_closes_its_connection_to_the_engine(engine: Any) -> None:  # noqa: F811
    import gc
    import warnings

    from dlbox.container import engine as E

    request = E.RunRequest(image=TAG, command=("true",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            with open(os.devnull, "wb") as sink:
                assert E.run_streaming(engine, request, out=sink, err=sink).exit_code == 0
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)
                and "docker.sock" in str(w.message)]
    assert unclosed == []  # the attach socket of each run was left open before


def test_folders_whose_paths_hold_colons_and_commas_are_mounted(tmp_path: Path) -> None:
    """The engine splits a bind string "src:dst:mode" at each ':', so a folder named "a:b"
    was refused ("invalid volume specification"); mounts pass the path as one field."""
    data = tmp_path / "in:put,1"
    data.mkdir()
    (data / "x.txt").write_text("from the host\n")
    runs = tmp_path / "r:uns,2"  # created by dlbox
    result = dlbox("image", "run", "--tag", TAG, "--gpus", "none", "--data", str(data),
                   "--runs", str(runs), "--", "sh", "-c",
                   "cat /data/x.txt && echo from the container > /workspace/runs/y.txt",
                   timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the host\n"
    assert (runs / "y.txt").read_text() == "from the container\n"
    # The container's path is no path here: dlbox says where it is.
    assert f"note: /workspace/runs in the container is {runs} here: {runs}/y.txt" \
        in result.stderr, result.stderr


def test_a_missing_mount_source_is_a_clear_error(engine: Any, tmp_path: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A bind mount, unlike the old bind string, never creates a missing source (as a folder
    owned by root): dlbox names it, and so it does when the engine is the one to refuse."""
    from dlbox.container import engine as E
    from dlbox.errors import ContainerError

    missing = tmp_path / "gone:away"
    request = E.RunRequest(image=TAG, command=("true",), mounts=(E.Mount(str(missing), "/d"),))
    with pytest.raises(ContainerError) as ours:
        E.run_streaming(engine, request)
    assert ours.value.message == f"cannot mount {missing} at /d: it does not exist"
    monkeypatch.setattr(E, "check_mount_sources", lambda request: None)  # as a remote engine
    with pytest.raises(ContainerError) as theirs:
        E.run_streaming(engine, request)
    assert theirs.value.message == (f"cannot mount {missing} at /d: it does not exist on the "
                                    "engine's machine"), theirs.value.message
    assert not missing.exists()


def test_a_missing_image_names_the_tags_this_folder_was_built_under(
        engine: Any, tmp_path: Path) -> None:  # noqa: F811 - the engine fixture
    """Found by review: in a folder built with `--tag other:cpu`, `image run` (no --tag)
    said "image hinted:latest is not on this machine" and "build it first", though the
    folder's image was there; with --tag, the hint still said "or pass --tag IMAGE"."""
    import io

    from dlbox.container.spec import SOURCE_LABEL, source_id

    project = tmp_path / "hinted"
    project.mkdir()
    (project / "requirements.txt").write_text("torch\n")
    tag = "dlbox-test-hinted:cpu"
    dockerfile = f"FROM {BASE}\nLABEL {SOURCE_LABEL}={source_id(project)}\n"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        result = dlbox("image", "run", "--no-tty", "--", "true", timeout=60, cwd=project)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "error: image hinted:latest is not on this machine",
            f"hint: this folder's image is tagged {tag}: pass --tag {tag}, or build "
            "hinted:latest with `dlbox image build`"], result.stderr
        named = dlbox("image", "run", "--no-tty", "--tag", "dlbox-test-none:x", "--", "true",
                      timeout=60, cwd=project)
        assert named.stderr.splitlines()[1] == (
            "hint: check the name (docker images lists those here), pull it (docker pull "
            "dlbox-test-none:x) or build it: dlbox image build --tag dlbox-test-none:x"), \
            named.stderr
        # the project's own tag is built, not pulled
        own = dlbox("image", "run", "--no-tty", "--tag", "hinted:latest", "--", "true",
                    timeout=60, cwd=project)
        assert own.stderr.splitlines()[1] == (
            "hint: check the name (docker images lists those here), or build it: dlbox image "
            "build --tag hinted:latest"), own.stderr
        # no project here and no --tag: the built-in project's image, which is built bare
        from dlbox.container.run import RunOptions, missing_image_hint

        assert missing_image_hint(engine, RunOptions(image="dlbox:latest", command=("true",))) \
            == "build it first: dlbox image build (or pass --tag IMAGE)"
        # ... and that name given with --tag: the name is checked, not "pass --tag IMAGE"
        assert missing_image_hint(engine, RunOptions(
            image="dlbox:latest", command=("true",), named=True)) == (
            "check the name (docker images lists those here), or build it: dlbox image build "
            "--tag dlbox:latest")
    finally:
        engine.images.remove(tag, force=True)


def test_the_default_runs_folder_keeps_a_run_leaves_no_empty_one_and_keeps_dlbox_data(
        tmp_path: Path) -> None:
    """Review 10: every run made ./runs in the current folder (in / as a user: "cannot create
    --runs /runs"), and a `--env DLBOX_DATA=...` was replaced by /data without a word.
    Re-review: with no ./runs nothing was mounted for `bash`, `sh -c '... dlbox train'`, so
    the run went with the container (exit 0). ./runs is mounted, and removed when the run
    left it empty; where it cannot be made, a command that is not dlbox train/evaluate runs
    without it, which is said."""
    def image_run(cwd: Path, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--no-tty", "--data",
             str(tmp_path), *command], capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL, cwd=cwd)

    result = image_run(tmp_path, "--env", "DLBOX_DATA=/data/mine", "--", "sh", "-c",
                       'echo "$DLBOX_DATA"')
    assert (result.returncode, result.stdout) == (0, "/data/mine\n"), result.stderr
    assert not (tmp_path / "runs").exists()
    result = image_run(tmp_path, "--", "sh", "-c", "mkdir /workspace/runs/r1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "r1").is_dir()
    assert f"{tmp_path / 'runs' / 'r1'}" in result.stderr  # the note names it here
    locked = tmp_path / "locked"  # a folder the user cannot write in, as / is
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere, but in an immutable folder
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            pytest.skip("chattr +i, to lock a folder for root, does not work here")
    else:
        locked.chmod(0o555)
    try:
        result = image_run(locked, "--", "sh", "-c", "echo hi")
        assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
        assert ("note: no runs folder is mounted (cannot create ./runs here): what the command "
                "writes in /workspace/runs goes with the container; pass --runs DIR to keep it"
                ) in result.stderr
        result = image_run(locked, "--", "dlbox", "train", "--epochs", "1")
        assert result.returncode != 0
        assert f"error: cannot create --runs {locked / 'runs'}" in result.stderr
        assert "pass --runs a folder you can write to" in result.stderr
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755)
    assert not (locked / "runs").exists()


def test_a_path_into_the_runs_folder_here_is_read_as_the_containers(tmp_path: Path) -> None:
    """Review 10: the path dlbox's note printed for a run (/host/runs/X), or ../runs/X from
    a subfolder, "does not exist" in the container, which runs in /workspace."""
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "x.txt").write_text("hello\n")
    for path in (runs, runs / "r1", runs / "r1" / "x.txt"):
        path.chmod(0o644 if path.is_file() else 0o755)
        if os.geteuid() == 0:  # the container's user is then uid 1000
            os.chown(path, 1000, 1000)
    (tmp_path / "sub").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--no-tty", "--runs",
         str(runs), "--", "cat", str(runs / "r1" / "x.txt"), "../runs/r1/x.txt"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        cwd=tmp_path / "sub")
    assert (result.returncode, result.stdout) == (0, "hello\nhello\n"), result.stderr
    assert (f"{runs / 'r1' / 'x.txt'} is passed as /workspace/runs/r1/x.txt, ../runs/r1/x.txt "
            "as /workspace/runs/r1/x.txt") in result.stderr
    # Re-review: a path not there yet, and an --opt=VALUE, were left as they were, so what
    # the command wrote there went with the container.
    script = ("import pathlib, sys; [pathlib.Path(arg.split('=')[-1]).mkdir(parents=True) "
              "for arg in sys.argv[1:]]")
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--no-tty", "--runs",
         str(runs), "--", "python3", "-c", script, str(runs / "r1" / "eval2"),
         f"--output={runs / 'new' / 'eval'}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (runs / "r1" / "eval2").is_dir() and (runs / "new" / "eval").is_dir()


def test_volumes_and_published_ports_reach_the_host(engine: Any, tmp_path: Path  # noqa: F811
                                                    ) -> None:
    """Review: `image run` took no -p and no -v. A folder mounted with -v gets what the
    container writes there; one with :ro refuses writes; a server on a port published with -p
    answers on this machine's 127.0.0.1, and only there by default."""
    import json
    import signal
    import socket
    import urllib.request

    shared, weights = tmp_path / "shared", tmp_path / "weights"
    for folder in (shared, weights):
        folder.mkdir()
        folder.chmod(0o777)  # the container's user may be uid 1000 (a root caller)
    (weights / "w.txt").write_text("weights\n")
    script = ("cat /models/w.txt; echo made > /out/made.txt; "
              "if touch /models/x 2>/dev/null; then echo WROTE; else echo refused; fi")
    result = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "-v",
                   "shared:/out", "-v", f"{weights}:/models:ro", "--", "sh", "-c", script,
                   timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "weights\nrefused\n"
    assert (shared / "made.txt").read_text() == "made\n" and not (weights / "x").exists()

    with socket.socket() as free:  # a host port nobody uses
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (shared / "page.txt").write_text("served\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--no-tty", "--runs",
         str(tmp_path / "runs"), "-p", f"{port}:8000", "-v", "shared:/out", "--",
         "python3", "-m", "http.server", "8000", "--directory", "/out"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        cwd=tmp_path)
    try:
        body, deadline = None, time.monotonic() + 60
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/page.txt",
                                            timeout=5) as answer:
                    body = answer.read()
            except OSError:
                time.sleep(0.5)
        assert body == b"served\n", server.stderr.read() if server.poll() is not None else ""
        mine = [c for c in engine.containers.list(filters={"label": "dlbox.image-run"})
                if c.labels.get("dlbox.owner", "").split(":")[1:2] == [str(server.pid)]]
        assert len(mine) == 1
        bindings = mine[0].attrs["HostConfig"]["PortBindings"]
        assert json.loads(json.dumps(bindings)) == {
            "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        # the same host port again: refused before a container is made
        again = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "-p",
                      f"{port}:9000", "--", "true", timeout=60, cwd=tmp_path)
        assert again.returncode == 2, again.stderr
        assert again.stderr.splitlines() == [
            f"error: host port {port} is in use on 127.0.0.1",
            "hint: pick another host port: -p OTHER:9000, or stop what uses it"]
    finally:
        server.send_signal(signal.SIGTERM)  # dlbox stops and removes its container
        server.wait(timeout=60)
    assert not [c for c in engine.containers.list(all=True, filters={"label": "dlbox.image-run"})
                if c.labels.get("dlbox.owner", "").split(":")[1:2] == [str(server.pid)]]
