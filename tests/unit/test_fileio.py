import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlbox.errors import DlboxError, FileWriteError
from dlbox.fileio import (
    exclusive_lock,
    finite_json,
    read_json,
    write_json_atomic,
    write_with_atomic,
)


def test_write_json_atomic_roundtrip(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    write_json_atomic(target, {"x": 1})
    assert read_json(target) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def boom(handle):  # type: ignore[no-untyped-def]
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with_atomic(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_written_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        os.umask(0o077)
        write_json_atomic(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_a_rewritten_file_keeps_its_own_mode(tmp_path: Path) -> None:
    """Found by review: `dlbox evaluate` (and `train --resume`) rewrote a run's 600
    metrics.json, predictions.csv, last.pt as 644, readable by everyone."""
    import os

    for name, mode in (("private.json", 0o600), ("group.json", 0o640), ("kept.json", 0o444)):
        path = tmp_path / name
        path.write_text("{}")
        path.chmod(mode)
        old = os.umask(0o022)
        try:
            write_json_atomic(path, {"x": 1})
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode, name
        assert path.read_text().strip().startswith("{")


def test_nan_and_infinity_are_written_as_null_so_strict_parsers_accept_the_file(
        tmp_path: Path) -> None:
    import numpy as np

    nan, inf = float("nan"), float("inf")
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"history": [{"train_loss": nan, "epoch": 1}],
                               "final": {"lr": inf, "low": -inf, "pair": (nan, 0.5),
                                         "np": np.float64("nan"), "ok": 0.25, "flag": True}})

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    data = json.loads(target.read_text(), parse_constant=refuse)
    assert data == {"history": [{"train_loss": None, "epoch": 1}],
                    "final": {"lr": None, "low": None, "pair": [None, 0.5], "np": None,
                              "ok": 0.25, "flag": True}}
    assert finite_json({"a": [1, "x", None]}) == {"a": [1, "x", None]}


def test_a_full_disk_is_a_one_line_error_naming_the_file_not_its_temp(tmp_path: Path) -> None:
    import errno

    from dlbox.errors import FileWriteError

    target = tmp_path / "metrics.json"
    target.write_text("old")

    def full(handle):  # type: ignore[no-untyped-def]
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError) as info:
        write_with_atomic(target, full)
    assert info.value.message == f"cannot write {target}: No space left on device"
    assert "disk space" in (info.value.hint or "")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_folder_where_the_file_should_be_is_a_write_error(tmp_path: Path) -> None:
    from dlbox.errors import FileWriteError

    (tmp_path / "predictions.csv").mkdir()
    with pytest.raises(FileWriteError, match="cannot write .*predictions.csv"):
        write_json_atomic(tmp_path / "predictions.csv", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temp file left


def test_torch_saves_full_disk_runtime_error_is_read_as_no_space(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collections

    from dlbox import fileio
    from dlbox.errors import FileWriteError

    def zip_writer_fails(handle):  # type: ignore[no-untyped-def]
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 269056")

    with pytest.raises(RuntimeError) as plenty:  # plenty of space: a bug, passed on as it is
        write_with_atomic(tmp_path / "last.pt", zip_writer_fails)
    assert not isinstance(plenty.value, FileWriteError)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 4096))
    with pytest.raises(FileWriteError, match="no space left") as full:
        write_with_atomic(tmp_path / "last.pt", zip_writer_fails)
    assert "last.pt" in full.value.message and "\n" not in full.value.message
    assert list(tmp_path.iterdir()) == []


def test_the_space_is_measured_before_the_partial_file_is_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk is full only while the half-written temp file holds the space: deleting it
    first would read as plenty of room and let torch.save's RuntimeError through."""
    import collections

    from dlbox import fileio
    from dlbox.errors import FileWriteError

    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(path):  # type: ignore[no-untyped-def]
        full = any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        return usage(10**9, 10**9, 4096 if full else 10**8)

    def zip_writer_fails(handle):  # type: ignore[no-untyped-def]
        handle.write(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1024")

    monkeypatch.setattr(fileio.shutil, "disk_usage", disk_usage)
    with pytest.raises(FileWriteError, match="no space left"):
        write_with_atomic(tmp_path / "last.pt", zip_writer_fails)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_that_does_not_fit_is_skipped_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoded-data cache is optional: on a full disk, loading the data still works,
    without a cache and without a temp file left."""
    from dlbox.data import cifar10
    from dlbox.data.synthetic import write_fake_cifar10

    write_fake_cifar10(tmp_path, n_train=30, n_test=10)
    real_write = cifar10.write_through_memory

    def full_disk(path, writer):  # type: ignore[no-untyped-def]
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, handle):  # type: ignore[no-untyped-def]
                self.handle = handle

            def __enter__(self):  # type: ignore[no-untyped-def]
                return self

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                self.handle.close()

            def write(self, data):  # type: ignore[no-untyped-def]
                self.handle.write(bytes(data)[:512])
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
        try:
            real_write(path, writer)
        finally:
            monkeypatch.setattr(os, "fdopen", real_fdopen)

    monkeypatch.setattr(cifar10, "write_through_memory", full_disk)
    assert len(cifar10.load_cifar10(tmp_path, "train")) == 30
    assert [p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()
            if "cache" in p.name] == []


def test_a_signal_while_the_cache_is_written_stops_the_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: SIGTERM (or Ctrl-C) while the data cache was written raised its
    exception inside torch.save's call of the file's write(); torch turned it into a
    RuntimeError, the cache writer forgave it as a failed write, and the command ran to the
    end with exit 0 (and ignored every later SIGTERM). torch.save now writes into memory,
    and the file write, where the handler runs, is plain Python: the signal stops the load."""
    from dlbox.data import cifar10
    from dlbox.data.synthetic import write_fake_cifar10

    write_fake_cifar10(tmp_path, n_train=30, n_test=10)
    real_fdopen = os.fdopen

    class Interrupted:  # the signal arrives once 1000 bytes are out; its handler raises
        def __init__(self, handle):  # type: ignore[no-untyped-def]
            self.handle, self.written, self.raised = handle, 0, False

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.handle.close()

        def write(self, data):  # type: ignore[no-untyped-def]
            if not self.raised and self.written + len(data) > 1000:
                self.raised = True
                raise KeyboardInterrupt
            self.written += len(data)
            return self.handle.write(data)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.handle, name)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Interrupted(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        cifar10.load_cifar10(tmp_path, "train")
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()
            if "cache" in p.name] == []


# ---- exclusive_lock: the other holder is a real process, as in use ---------------------------

_HOLDER = """
import sys
from dlbox.errors import DlboxError
from dlbox.fileio import exclusive_lock
try:
    with exclusive_lock(sys.argv[1], DlboxError("busy")) as held:
        print("held" if held else "unlocked", flush=True)
        if sys.argv[2] == "hold":
            sys.stdin.readline()  # keep the lock until the test says so (or kills us)
except DlboxError:
    print("refused", flush=True)
"""


def _lock_holder(path: Path, mode: str = "hold") -> subprocess.Popen[str]:
    """Another process taking exclusive_lock(path); its first line says how that went."""
    return subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), mode], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _try_lock_elsewhere(path: Path) -> str:
    child = _lock_holder(path, mode="try")
    out, _ = child.communicate(timeout=60)
    return out.strip()


def test_a_lock_held_by_another_process_refuses_at_once_and_frees_when_it_exits(
        tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    holder = _lock_holder(lock)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = DlboxError("a run is in there", hint="wait")
        with pytest.raises(DlboxError) as refused:
            with exclusive_lock(lock, busy):
                pytest.fail("the block ran while another process held the lock")
        assert refused.value is busy
        holder.communicate("go on\n", timeout=60)  # the holder leaves its block and exits
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with exclusive_lock(lock, busy) as held:
        assert held is True
        assert _try_lock_elsewhere(lock) == "refused"  # and now we are the holder
    assert lock.is_file()  # the lock file stays (its removal would race the next taker)


def test_a_holder_killed_outright_leaves_no_stale_lock(tmp_path: Path) -> None:
    """SIGKILL gives no chance to clean up: the kernel drops the lock with the process."""
    lock = tmp_path / "run.lock"
    holder = _lock_holder(lock)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait(timeout=60)
    with exclusive_lock(lock, DlboxError("busy")) as held:
        assert held is True


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    with pytest.raises(ZeroDivisionError):
        with exclusive_lock(lock, DlboxError("busy")):
            assert _try_lock_elsewhere(lock) == "refused"
            1 / 0  # noqa: B018
    assert _try_lock_elsewhere(lock) == "held"


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    """flock belongs to the open file, not the process: a nested take (evaluate inside a
    train, say) is refused like another process's, never silently shared."""
    lock = tmp_path / "run.lock"
    with exclusive_lock(lock, DlboxError("first")):
        with pytest.raises(DlboxError, match="second"):
            with exclusive_lock(lock, DlboxError("second")):
                pass


def test_a_folder_is_locked_itself_and_nothing_is_written_into_it(tmp_path: Path) -> None:
    """The data dir's lock: a folder (or a symlink to one, a data dir on shared storage)."""
    folder = tmp_path / "data"
    folder.mkdir()
    link = tmp_path / "data-link"
    link.symlink_to(folder)
    holder = _lock_holder(folder)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DlboxError, match="busy"):
            with exclusive_lock(link, DlboxError("busy"), best_effort=True):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=60)
    with exclusive_lock(link, DlboxError("busy")) as held:
        assert held is True
    assert list(folder.iterdir()) == []


def test_a_lock_file_whose_folder_is_missing_is_a_clear_error_or_skipped(
        tmp_path: Path) -> None:
    lock = tmp_path / "gone" / "run.lock"
    with pytest.raises(FileWriteError) as error:
        with exclusive_lock(lock, DlboxError("busy")):
            pytest.fail("ran without the lock it was told to take")
    assert str(error.value) == f"cannot write {lock}: its folder {lock.parent} does not exist"
    with exclusive_lock(lock, DlboxError("busy"), best_effort=True) as held:
        assert held is False
    assert not lock.parent.exists()  # neither call made the folder


def test_a_symlink_at_the_lock_files_name_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    lock = tmp_path / "run.lock"
    lock.symlink_to(elsewhere)
    with pytest.raises(FileWriteError, match="is a symlink"):
        with exclusive_lock(lock, DlboxError("busy")):
            pass
    assert not elsewhere.exists()


def test_a_filesystem_without_flock_runs_the_block_unlocked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network filesystems answer flock with ENOLCK or EOPNOTSUPP: refusing to train or
    fetch there at all would be worse than the race the lock guards against."""
    def no_locks_here(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks_here)
    ran = []
    with exclusive_lock(tmp_path / "run.lock", DlboxError("busy")) as held:
        ran.append(held)
    assert ran == [False]


@pytest.mark.parametrize("code, hint", [
    (errno.ENOSPC, "free some disk space where {folder} is (`df -h {folder}` shows it), or "
                   "write elsewhere"),
    (errno.EACCES, "make {folder} writable for you (`chmod u+rwx {folder}`), or write elsewhere"),
    (errno.EROFS, "{folder} is on a read-only filesystem: write elsewhere"),
])
def test_a_write_error_names_its_folder_and_no_other_commands_flags(
        tmp_path: Path, code: int, hint: str) -> None:
    """Found by review: `doctor --record DIR` and `image build --lock FILE` that could not
    write were told to use --run-dir or --data, flags those commands do not have; and chmod
    was offered for a read-only filesystem."""
    from dlbox.errors import write_error

    # named by the nearest folder that exists: a `mkdir -p` of "new/" failed in "out"
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "new" / "file.json"
    error = write_error(target, OSError(code, errno.errorcode[code], str(target)))
    assert error.message == f"cannot write {target}: {errno.errorcode[code]}"
    assert error.hint == hint.format(folder=tmp_path / "out")
    assert "--run-dir" not in (error.hint or "")


def test_a_cache_without_memory_for_its_buffer_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: torch.save into memory reports a buffer that cannot grow as a
    RuntimeError ("unexpected pos"); the optional cache forgives it, as it forgave a full
    disk, instead of ending the load as an unexpected error."""
    import torch

    from dlbox.data import cifar10
    from dlbox.data.synthetic import write_fake_cifar10

    write_fake_cifar10(tmp_path, n_train=30, n_test=10)

    def no_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", no_memory)
    assert len(cifar10.load_cifar10(tmp_path, "train")) == 30
    assert not list((tmp_path / "cifar-10-batches-py").glob("*cache*"))


def test_a_file_size_limit_is_named_with_its_own_fix(tmp_path: Path) -> None:
    """Found by review: a write past `ulimit -f` ("File too large") was told to free disk
    space or make the folder writable, neither of which helps."""
    import subprocess
    import sys

    target = tmp_path / "big.bin"
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "from dlbox.errors import DlboxError\n"
            "from dlbox.fileio import atomic_open\n"
            "try:\n"
            "    with atomic_open(sys.argv[1]) as f:\n"
            "        f.write(b'x' * 65536)\n"
            "except DlboxError as e:\n"
            "    print(e.message); print(e.hint)\n")
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    assert out == [f"cannot write {target}: File too large",
                   "the file outgrew the size this process may write: raise the limit "
                   "(`ulimit -f unlimited` in the shell that runs dlbox), or write to a "
                   "filesystem that takes larger files"]
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_current_folder_is_the_cwd_or_a_one_line_error_when_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.errors import UsageError
    from dlbox.fileio import current_folder

    monkeypatch.chdir(tmp_path)
    assert current_folder() == tmp_path
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(UsageError) as info:
        current_folder()
    assert (info.value.message, info.value.hint) == (
        "the current folder no longer exists (it was removed or moved)",
        "cd to a folder that exists and run the command again")
    with pytest.raises(UsageError) as info:
        current_folder(hint="cd elsewhere")
    assert info.value.hint == "cd elsewhere"
