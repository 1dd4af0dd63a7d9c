"""Review 11: a `data fetch --force` killed between its two renames, a cache write killed
mid-way, a Ctrl-C while dlbox starts, and `git status` locking the checkout's index."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlbox.data import cifar10
from dlbox.data.extract import remove_stale_staging
from dlbox.data.fetch import FetchConfig, fetch_cifar10
from dlbox.data.layout import BATCHES_DIRNAME
from dlbox.data.loading import check_data, load_dataset
from dlbox.data.synthetic import write_fake_cifar10, write_fake_cifar10_archive
from dlbox.processes import owner_id
from dlbox.training.manifest import git_commit


def _dead_owner() -> str:
    """The owner id (as a fetch names its temp folder) of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = owner_id(child.pid, namespace=True)
    finally:
        child.kill()
        child.wait()
    return owner


def _killed_swap(root: Path, tmp_path: Path, owner: str) -> tuple[Path, Path]:
    """What `dlbox data fetch --force` killed between its two renames leaves in ROOT (which
    holds the old data, seed 0): the old copy moved aside, the new one (seed 5) complete in
    the fetch's temp folder, and no cifar-10-batches-py."""
    target = root / BATCHES_DIRNAME
    aside = root / f".{BATCHES_DIRNAME}.old.k2j4x9q1"
    target.rename(aside)
    staging = root / f".{BATCHES_DIRNAME}.{owner}.a8b7c6d5.tmp"
    shutil.copytree(write_fake_cifar10(tmp_path / "new", n_train=30, n_test=10, seed=5),
                    staging)
    return aside, staging


def _old_data(tmp_path: Path) -> tuple[Path, torch.Tensor]:
    root = write_fake_cifar10(tmp_path / "data", n_train=20, n_test=10, seed=0).parent
    return root, load_dataset(root, "train").images


def test_data_check_after_a_fetch_killed_mid_swap_puts_the_old_copy_back(
        tmp_path: Path) -> None:
    """Review: `data check` said "no CIFAR-10 data found" (and train: run fetch), with the
    user's data in .cifar-10-batches-py.old.* and the new in the fetch's temp folder."""
    root, images = _old_data(tmp_path)
    aside, staging = _killed_swap(root, tmp_path, _dead_owner())
    report = check_data(root)
    assert report.layout is not None and not report.problems
    assert (f"restored {root / BATCHES_DIRNAME} from {aside}, the data a `dlbox data fetch "
            "--force` killed mid-swap had moved aside") in report.notes
    assert not aside.exists() and staging.is_dir()  # the temp folder: the next fetch's
    assert any(note.startswith(f"{staging} ") for note in report.notes)
    assert torch.equal(load_dataset(root, "train").images, images)


def test_train_after_a_fetch_killed_mid_swap_loads_the_old_copy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, images = _old_data(tmp_path)
    aside, _ = _killed_swap(root, tmp_path, _dead_owner())
    capsys.readouterr()
    assert torch.equal(load_dataset(root, "train").images, images)
    err = capsys.readouterr().err
    assert err.startswith(f"note: restored {root / BATCHES_DIRNAME} from {aside}")
    assert err.count("\n") == 1


def test_a_fetch_after_one_killed_mid_swap_finds_the_old_copy_in_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: the next fetch downloaded again and deleted the old copy without a word."""
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10)
    root = tmp_path / "data"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    fetch_cifar10(FetchConfig(data_dir=root, source=str(archive), sha256=digest))
    images = load_dataset(root, "train").images
    aside, staging = _killed_swap(root, tmp_path, _dead_owner())
    capsys.readouterr()
    result = fetch_cifar10(FetchConfig(data_dir=root, source=str(archive), sha256=digest))
    assert result.status == "present"
    assert "note: restored" in capsys.readouterr().err
    assert torch.equal(load_dataset(root, "train").images, images)
    assert not aside.exists() and not staging.exists()  # the killed fetch's folder: cleared


def test_a_live_fetchs_swap_is_left_alone_and_check_names_the_old_copy(
        tmp_path: Path) -> None:
    """A fetch still running (its temp folder's owner alive) is mid-swap: nothing is moved;
    check says where the old copy is, even though it finds no data."""
    root, _ = _old_data(tmp_path)
    aside, staging = _killed_swap(root, tmp_path, owner_id(namespace=True))
    report = check_data(root)
    assert report.layout is None and aside.is_dir() and staging.is_dir()
    assert any(str(aside) in note for note in report.notes)
    remove_stale_staging(root)  # with no data in place, the old copy is never deleted
    assert aside.is_dir()


def test_a_killed_cache_write_is_cleared_once_its_process_is_gone(
        tmp_path: Path) -> None:
    """Review: a load killed while writing the cache left its temp file (150 MB for CIFAR-10)
    for an hour. Its name now says whose it is: gone at once when that process has ended."""
    directory = write_fake_cifar10(tmp_path / "data", n_train=20, n_test=10)
    path = cifar10.cache_path(directory, "train")
    killed = subprocess.run(  # SIGKILLed as it renames the written temp file into place
        [sys.executable, "-c", "import os, signal, sys; from dlbox.data import cifar10; "
         "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
         "cifar10.load_cifar10(sys.argv[1], 'train', cache=True)", str(directory)],
        check=False)
    assert killed.returncode == -signal.SIGKILL
    left = list(path.parent.glob(f".{path.name}.*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size > 0 and not path.exists()
    dead = left[0]
    assert any(note.startswith(f"{dead} (") for note in check_data(directory.parent).notes)
    cifar10.load_cifar10(directory, "train", cache=True)
    assert not dead.exists()
    live = path.parent / f".{path.name}.{owner_id(namespace=True)}.abcdefgh.tmp"
    live.write_bytes(b"x")  # a write of a process still running: kept
    cifar10.load_cifar10(directory, "train", cache=True)
    assert live.exists()
    unowned = path.parent / f".{path.name}.abcdefgh.tmp"  # an older dlbox's: the age rule
    unowned.write_bytes(b"x")
    cifar10.load_cifar10(directory, "train", cache=True)
    assert unowned.exists()
    two_hours_ago = time.time() - 7200
    os.utime(unowned, (two_hours_ago, two_hours_ago))
    cifar10.load_cifar10(directory, "train", cache=True)
    assert not unowned.exists()


# The two ways dlbox starts: the console script's lines (pyproject's [project.scripts]
# dlbox = "dlbox.cli:main") and `python -m dlbox`. Each prints "go" as the first line of
# dlbox's own code runs (an audit hook hears Python exec it): the start-up before it
# (Python's, the import system's reading of the file) is no code of dlbox's to guard. The
# hook says it once and is done, so that the signal finds it no more (review: at delay 0 it
# was still in the hook, which raised the KeyboardInterrupt before dlbox's first line).
GO = ("import sys\nsaid = []\ndef go(event, args):\n"
      "    if not said and event == 'exec' and args[0].co_filename.endswith({!r}):\n"
      "        said.append(True)\n"
      "        print('go', flush=True)\n"
      "sys.addaudithook(go)\nsys.argv[0] = 'dlbox'\n")
MAINS = {
    "console script": ("cli/__init__.py", "from dlbox.cli import main\nsys.exit(main())"),
    "python -m dlbox": ("dlbox/__main__.py", "import runpy\nrunpy.run_module("
                        "'dlbox', run_name='__main__', alter_sys=True)"),
}
STARTS = {start: GO.format(name) + main for start, (name, main) in MAINS.items()}


def _train_without_data(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.Popen(
        [sys.executable, "-c", code, "train", "--data", str(tmp_path / "none"),
         "--run-dir", str(tmp_path / "run"), "--epochs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("start", sorted(STARTS))
def test_ctrl_c_as_dlbox_starts_says_interrupted_and_exits_130(
        tmp_path: Path, start: str) -> None:
    """Review: a Ctrl-C within the first 0.05 s of `dlbox train` (while dlbox.cli imported)
    printed a 30-line KeyboardInterrupt traceback and exited 1."""
    for delay in (0.001, 0.002, 0.004, 0.007, 0.01, 0.015, 0.02, 0.03, 0.05):
        child = _train_without_data(STARTS[start], tmp_path)
        assert child.stdout is not None
        assert child.stdout.readline() == "go\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err)
        if child.returncode != 1:  # 1: it had already failed (no data) before the signal
            assert child.returncode == 130, (delay, child.returncode, err)
            assert err.strip().endswith("interrupted"), (delay, err)


# A Ctrl-C that Python handles in a weakref callback is printed as "Exception ignored in:
# <function _get_module_lock.<locals>.cb ...>" and dropped: the import machinery's module
# locks have such callbacks, and one runs in every import. The hook makes one as an import
# starts (the first that WHEN picks), and has the signal land in it.
IN_A_CALLBACK = (
    "import os, signal, sys, weakref\nsent = []\n"
    "class Lock:\n    pass\n"
    "def callback(ref):\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    for _ in range(1000):  # Python runs the handler here\n"
    "        pass\n"
    "def at(event, args):\n"
    "    if not sent and event == 'import' and ({}):\n"
    "        sent.append(True)\n"
    "        lock = Lock()\n"
    "        ref = weakref.ref(lock, callback)\n"
    "        del lock\n"
    "sys.addaudithook(at)\nsys.argv[0] = 'dlbox'\n")


AFTER_CLI = "hasattr(sys.modules.get('dlbox.cli'), 'main')"  # dlbox.cli has loaded


@pytest.mark.parametrize("start, when", [
    ("console script", "args[0] == 'dlbox.errors'"),  # dlbox.cli's own imports
    ("console script", f"args[0].startswith('dlbox.') and {AFTER_CLI}"),  # the commands'
    ("python -m dlbox", "args[0] == 'dlbox.cli'"),  # __main__'s import of dlbox.cli
    ("python -m dlbox", "args[0] == 'dlbox.errors'"),
    ("python -m dlbox", f"args[0].startswith('dlbox.') and {AFTER_CLI}"),
], ids=["script-own", "script-commands", "m-cli", "m-own", "m-commands"])
def test_ctrl_c_as_dlbox_imports_is_not_lost(tmp_path: Path, start: str, when: str) -> None:
    """Review: with `python -m dlbox` SIGINT'd 0.03 s after it started, Python printed
    "Exception ignored in: <function _get_module_lock.<locals>.cb>" and dlbox went on to run
    the command (here: "no CIFAR-10 data found"; with data it would have trained)."""
    child = _train_without_data(IN_A_CALLBACK.format(when) + MAINS[start][1], tmp_path)
    _, err = child.communicate(timeout=60)
    assert (child.returncode, err.strip().splitlines()[-1:]) == (130, ["interrupted"]), err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("before", ["SIG_IGN", "default_int_handler"])
def test_dlbox_leaves_ctrl_c_as_it_found_it_once_started(before: str) -> None:
    """What holds a Ctrl-C back while dlbox starts puts the handler back as it was: Python's
    (the training's Ctrl-C stops it, saving a checkpoint), or SIG_IGN for a job started with
    SIGINT ignored (a background job of a script), which stays out of its reach."""
    code = ("import contextlib, io, signal\n"
            f"signal.signal(signal.SIGINT, signal.{before})\n"
            "import dlbox.cli\n"
            f"print(signal.getsignal(signal.SIGINT) is signal.{before})\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    dlbox.cli._main([])  # the parser built: dlbox's help\n"
            f"print(signal.getsignal(signal.SIGINT) is signal.{before})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_git_status_of_the_checkout_takes_no_index_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the manifest's `git status`, run by every train, refreshed the checkout's
    index (taking .git/index.lock), which can fail the user's own git commands meanwhile."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("GIT_OPTIONAL_LOCKS", None)
    for args in (["init", "-q"], ["add", "f.txt"], ["commit", "-qm", "x"]):
        if args[0] == "add":
            (repo / "f.txt").write_text("x")
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    later = time.time() + 5  # the same content, another mtime: the index's stat info is stale
    os.utime(repo / "f.txt", (later, later))
    index = repo / ".git" / "index"
    before = index.stat()
    monkeypatch.delenv("GIT_OPTIONAL_LOCKS", raising=False)
    info = git_commit(repo)
    assert info is not None and info["dirty"] is False
    after = index.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
