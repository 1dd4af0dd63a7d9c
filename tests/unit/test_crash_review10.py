"""Review 10: a fetch --force during a data load, and what killed writes and evaluations left
behind in a run (or --output) folder; the no-data error while a fetch is running."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import finished_tiny_run

from dlbox.data import cifar10
from dlbox.data.cifar10 import load_cifar10
from dlbox.data.layout import BATCHES_DIRNAME
from dlbox.data.synthetic import write_fake_cifar10
from dlbox.errors import DataError
from dlbox.fileio import is_atomic_temp
from dlbox.processes import owner_id
from dlbox.training.evaluate import evaluate_run
from dlbox.training.placing import STAGING_PREFIX


def _swap_in(data: Path, other: Path) -> None:
    """What a `dlbox data fetch --force` does to DATA: its batches folder replaced whole by
    another archive's (the old one renamed aside, the new one renamed into place)."""
    target = data / BATCHES_DIRNAME
    aside = data / f".{BATCHES_DIRNAME}.old.x"
    target.rename(aside)
    (other / BATCHES_DIRNAME).rename(target)


@pytest.mark.parametrize("cache", [True, False])
def test_a_fetch_force_during_the_load_gives_one_archive_never_a_mix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool) -> None:
    """Review: a --force fetch of another archive while load_cifar10 read the batches gave
    rows of both (200 from A, 300 from B), with no error."""
    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=500, n_test=10, seed=0)  # archive A
    write_fake_cifar10(tmp_path / "b", n_train=500, n_test=10, seed=7)  # archive B, to swap in
    write_fake_cifar10(tmp_path / "b_ref", n_train=500, n_test=10, seed=7)
    expected = load_cifar10(tmp_path / "b_ref", "train", cache=False)
    real_read_batch = cifar10.read_batch
    calls: list[str] = []

    def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        calls.append(Path(path).name)
        if len(calls) == 3:  # data_batch_1 and 2 read from A: the fetch swaps B in
            _swap_in(data, tmp_path / "b")
        return real_read_batch(path)

    monkeypatch.setattr(cifar10, "read_batch", read_batch)
    dataset = load_cifar10(data, "train", cache=cache)
    assert torch.equal(dataset.images, expected.images)
    assert torch.equal(dataset.labels, expected.labels)
    assert len(calls) == 10  # read again, whole, after the change
    monkeypatch.setattr(cifar10, "read_batch", real_read_batch)
    again = load_cifar10(data, "train", cache=cache)  # the cache (if any) is B's too
    assert torch.equal(again.images, expected.images)


def test_batches_that_keep_changing_while_read_are_a_data_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=50, n_test=10, seed=0)
    real_read_batch = cifar10.read_batch
    swaps = iter(range(100))

    def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        if Path(path).name == "data_batch_2":  # a new archive swapped in during every read
            swap = next(swaps)
            other = tmp_path / f"other{swap}"
            write_fake_cifar10(other, n_train=50, n_test=10, seed=3)
            (data / BATCHES_DIRNAME).rename(tmp_path / f"gone{swap}")
            (other / BATCHES_DIRNAME).rename(data / BATCHES_DIRNAME)
        return real_read_batch(path)

    monkeypatch.setattr(cifar10, "read_batch", read_batch)
    directory = data / BATCHES_DIRNAME
    with pytest.raises(DataError) as info:
        load_cifar10(data, "train", cache=False)
    assert info.value.message == (f"the batches in {directory} changed while they were read "
                                  "(a `dlbox data fetch --force`?)")
    assert info.value.hint == "run the command again when the fetch ends"



def test_evaluate_removes_the_temp_file_of_a_killed_checkpoint_write(
        tmp_path: Path, fake_cifar_dir: Path) -> None:
    """Review: `dlbox evaluate` left checkpoints/.last.pt.XXXXXXXX.tmp (as big as a
    checkpoint) of a training killed mid-write; only train and resume removed it."""
    run_dir = finished_tiny_run(tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    fd, name = tempfile.mkstemp(prefix=f".{last.name}.", suffix=".tmp", dir=last.parent)
    os.write(fd, last.read_bytes())
    os.close(fd)
    killed = Path(name)
    assert is_atomic_temp(killed.name)
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True)
    assert not killed.exists()
    assert last.is_file()
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]


def _killed_staging(folder: Path, owner: str | None) -> Path:
    """An evaluation's staging folder as an evaluation killed right after making it left it:
    no owner file yet; `owner` (an owner id) in its name, as evaluate names it now."""
    prefix = STAGING_PREFIX if owner is None else f"{STAGING_PREFIX}{owner}."
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder))
    (staging / "predictions.csv").write_text("half written")
    return staging


def test_an_evaluation_killed_before_its_owner_file_leaves_no_folder_in_the_run(
        tmp_path: Path, fake_cifar_dir: Path) -> None:
    run_dir = finished_tiny_run(tmp_path)
    killed = _killed_staging(run_dir, None)
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True)
    assert not killed.exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(STAGING_PREFIX)]


def _gone_owner() -> str:
    """The owner id of a process that has ended."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        return owner_id(child.pid, namespace=True)
    finally:
        child.kill()
        child.wait()


def test_an_evaluation_killed_before_its_owner_file_leaves_no_folder_in_its_output(
        tmp_path: Path, fake_cifar_dir: Path) -> None:
    """Into --output no lock is held: a staging folder goes when the process named in it
    (its name, or its owner file) has ended; a live one's is kept."""
    run_dir = finished_tiny_run(tmp_path)
    output = tmp_path / "out"
    output.mkdir()
    killed = _killed_staging(output, _gone_owner())
    live = _killed_staging(output, owner_id(os.getppid(), namespace=True))
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True, output=output)
    assert not killed.exists()
    assert live.is_dir()
    assert (output / "evaluation.json").is_file()


def test_an_evaluation_names_its_owner_in_its_staging_folder(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """So that one killed before its owner file is written can still be told apart."""
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: object, **kwargs: object) -> str:
        name = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        made.append(Path(name).name)
        return str(name)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    run_dir = finished_tiny_run(tmp_path)
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True,
                 output=tmp_path / "out")
    (name,) = [n for n in made if n.startswith(STAGING_PREFIX)]
    assert name.startswith(f"{STAGING_PREFIX}{owner_id(namespace=True)}.")
    assert is_atomic_temp(name)


def test_the_no_data_error_during_a_fetch_into_the_data_dir_says_to_wait(
        tmp_path: Path) -> None:
    """Review: while a `dlbox data fetch` ran into D, `dlbox train --data D` said "no CIFAR-10
    data found ... run `dlbox data fetch --data D`", a fetch that would be refused."""
    from dlbox.data.loading import load_dataset

    root = tmp_path / "d"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)  # what a running fetch holds (another process's lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DataError) as info:
            load_dataset(root, "train")
    finally:
        os.close(fd)
    assert info.value.message == (f"no CIFAR-10 data found in {root} yet: another `dlbox data "
                                  f"fetch` is fetching into {root} right now")
    assert info.value.hint == "wait for that fetch to end, then run the command again"
    with pytest.raises(DataError) as info:  # the lock gone: fetch it
        load_dataset(root, "train")
    assert info.value.hint.startswith(f"run `dlbox data fetch --data {root}`")
