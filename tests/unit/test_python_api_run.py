"""The Python API on a run as a notebook uses it: evaluate_run keeps to the run's lock as
`dlbox evaluate` does, train() and resume() leave the caller's process settings (threads,
random states, cuDNN/TF32 flags) as they found them, and evaluate_run's arguments are typed
and checked as the docs say."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbox.errors import FileWriteError, RunDirError, UsageError
from dlbox.training.config import build_config
from dlbox.training.evaluate import evaluate_run
from dlbox.training.loop import TrainingStopped, resume, train
from dlbox.training.rundir import run_lock


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dlbox.data.synthetic import write_fake_cifar10

    root = tmp_path_factory.mktemp("data")
    write_fake_cifar10(root, n_train=120, n_test=30, seed=0)
    return root


def tiny(data: Path, run_dir: Path, **changes: typing.Any) -> typing.Any:
    values: dict[str, typing.Any] = {"epochs": 1, "device": "cpu", "data_dir": str(data),
                                     "run_dir": str(run_dir), "threads": 1, "seed": 3,
                                     "batch_size": 32}
    return build_config(changes.pop("model", "tiny"), **{**values, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    return train(tiny(data, run), progress=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


Hold = typing.Callable[[Path, str], typing.Callable[[], None]]  # conftest's held_elsewhere


# --- evaluate_run and the run's lock ------------------------------------------------------------


@pytest.mark.parametrize("output", [None, "the run dir"])
def test_evaluate_run_refuses_a_run_that_is_training(
        trained: Path, held_elsewhere: Hold,
        output: str | None) -> None:
    """Review: evaluate_run took no lock (only `dlbox evaluate` did), so from a notebook it
    replaced the report of a run still training (its epoch-2 report by the API's epoch-1
    one). It is refused as the CLI refuses it, and nothing in the run changes; output= the
    run's own folder is the run's report too."""
    before = snapshot(trained)
    held_elsewhere(trained, "training")
    with pytest.raises(RunDirError) as refused:
        evaluate_run(trained, device="cpu", quiet=True,
                     output=trained if output else None)
    assert refused.value.message == f"a dlbox run is training in {trained} right now"
    assert refused.value.hint is not None
    assert refused.value.hint == (
        "evaluate it when training ends (training evaluates its last epoch itself), or now, "
        f"into another folder: dlbox evaluate {trained} --output DIR")
    assert snapshot(trained) == before


def test_evaluate_run_refuses_a_run_another_evaluation_is_writing(
        trained: Path, held_elsewhere: Hold) -> None:
    """Two evaluations of one run at once wrote one report folder together."""
    before = snapshot(trained)
    held_elsewhere(trained, "evaluating")
    with pytest.raises(RunDirError) as refused:
        evaluate_run(trained, device="cpu", quiet=True)
    assert refused.value.message == (f"a dlbox evaluate is writing the report of {trained} "
                                     "right now")
    assert refused.value.hint is not None
    assert refused.value.hint.startswith("run it again when that ends")
    assert snapshot(trained) == before


def test_evaluate_run_refuses_a_run_this_process_trains(trained: Path) -> None:
    """A notebook that trains in a thread holds the run's lock in its own process: an
    evaluation of the run from another thread is refused all the same."""
    before = snapshot(trained)
    with run_lock(trained), pytest.raises(RunDirError, match="is training in"):
        evaluate_run(trained, device="cpu", quiet=True)
    assert snapshot(trained) == before


def test_evaluate_run_into_another_folder_goes_on_while_the_run_trains(
        trained: Path, tmp_path: Path, held_elsewhere: Hold
) -> None:
    """output= another folder reads the checkpoint only: no lock is needed, none is taken."""
    before = snapshot(trained)
    held_elsewhere(trained, "training")
    document = evaluate_run(trained, device="cpu", quiet=True, output=tmp_path / "report")
    assert document["test_images"] == 30 and (tmp_path / "report" / "evaluation.json").is_file()
    assert snapshot(trained) == before


def test_evaluate_run_refuses_a_read_only_run_folder_before_evaluating(
        trained: Path, read_only_mount: typing.Callable[[Path], None]) -> None:
    """The early check `dlbox evaluate` made is the library's: a run folder on a read-only
    mount is refused with --output as the way out, before the evaluation's minutes."""
    before = snapshot(trained)
    read_only_mount(trained)
    with pytest.raises(FileWriteError) as refused:
        evaluate_run(trained, device="cpu", quiet=True)
    assert "the run's folder is not writable (Read-only file system)" in str(refused.value)
    assert refused.value.hint == ("write the report elsewhere: dlbox evaluate "
                                  f"{trained} --output DIR")
    assert snapshot(trained) == before


def test_the_trainers_own_report_under_its_lock_is_not_refused(trained: Path) -> None:
    """The trainer holds the run's lock when it writes its final report; the report's
    evaluate_run path (no test logits at hand) must not refuse the trainer itself."""
    from dlbox.training.checkpoint import read_run_config
    from dlbox.training.loop import _report

    config = read_run_config(trained)
    with run_lock(trained):
        _report(trained, config, torch.device("cpu"), None, (), 1, None, 0.0)  # type: ignore[arg-type]
    assert (trained / "predictions.csv").is_file()


# --- evaluate_run's arguments -------------------------------------------------------------------


def test_evaluate_run_is_typed_for_the_paths_it_takes(trained: Path, data: Path,
                                                      tmp_path: Path) -> None:
    """Review: run_dir, data_dir and output were annotated Path only, so mypy rejected the
    str every example passes, though it works."""
    hints = typing.get_type_hints(evaluate_run)
    for name in ("run_dir", "data_dir", "output"):
        assert str in typing.get_args(hints[name]), (name, hints[name])
        assert os.PathLike[str] in typing.get_args(hints[name]), (name, hints[name])
    document = evaluate_run(str(trained), data_dir=str(data), device="cpu", quiet=True,
                            output=str(tmp_path / "report"))
    assert document["run_dir"] == str(trained.resolve()) and document["test_images"] == 30


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"batch_size": 0}, "batch_size must be a positive whole number, got 0"),
    ({"batch_size": -5}, "batch_size must be a positive whole number, got -5"),
    ({"batch_size": 2.5}, "batch_size must be a positive whole number, got 2.5"),
    ({"tta": "no"}, "tta must be True, False or None, got 'no'"),
    ({"tta": 1}, "tta must be True, False or None, got 1"),
])
def test_evaluate_run_refuses_bad_arguments_with_a_hint(
        trained: Path, tmp_path: Path, arguments: dict[str, typing.Any], problem: str) -> None:
    """Review: batch_size=0 was a raw ValueError, and tta="no" turned TTA on."""
    before = snapshot(trained)
    with pytest.raises(UsageError) as refused:
        evaluate_run(trained, device="cpu", quiet=True, **arguments)
    assert refused.value.message == problem and refused.value.hint
    assert snapshot(trained) == before


# --- train() and resume() leave the caller's process settings as they were ----------------------


def callers_draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def seed_callers_generators() -> None:
    random.seed(12345)
    np.random.seed(12345)
    torch.manual_seed(12345)


@pytest.fixture()
def callers_threads() -> Iterator[int]:
    """The caller's torch thread count for the test (one that no run here sets), put back."""
    original = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(original)


@pytest.mark.parametrize("model", ["tiny", "speedrun"])
def test_train_and_resume_leave_the_callers_settings_as_they_were(
        data: Path, tmp_path: Path, model: str, callers_threads: int) -> None:
    """Review: after train(threads=1) a notebook's torch stayed on one thread, and its
    random, NumPy and torch random sequences were the run's seed's. Stopped or finished,
    trained or resumed: the caller's threads and random states come back as they were."""
    seed_callers_generators()
    expected = callers_draws()
    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    run = tmp_path / "run"
    for attempt in ("stopped", "resumed"):
        seed_callers_generators()
        if attempt == "stopped":
            with pytest.raises(TrainingStopped):
                train(tiny(data, run, model=model, epochs=2), progress=False,
                      stop=lambda epoch, step: epoch >= 2 and step >= 1)
        else:
            resume(run, progress=False, threads=1)
        assert torch.get_num_threads() == callers_threads, attempt
        assert callers_draws() == expected, attempt
        assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32) == flags, attempt


@pytest.mark.gpu
def test_train_on_cuda_puts_back_cudnn_and_tf32_flags(data: Path, tmp_path: Path) -> None:
    """On CUDA a run turns on cuDNN autotuning and TF32; the caller's flags come back."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    backends = torch.backends
    saved = (backends.cudnn.benchmark, backends.cuda.matmul.allow_tf32,
             backends.cudnn.allow_tf32)
    backends.cudnn.benchmark = False
    backends.cuda.matmul.allow_tf32 = False
    backends.cudnn.allow_tf32 = False
    try:
        train(tiny(data, tmp_path / "run", device="cuda"), progress=False)
        assert (backends.cudnn.benchmark, backends.cuda.matmul.allow_tf32,
                backends.cudnn.allow_tf32) == (False, False, False)
    finally:
        (backends.cudnn.benchmark, backends.cuda.matmul.allow_tf32,
         backends.cudnn.allow_tf32) = saved


CUDA_SETTINGS_CHECK = """\
import torch
from dlbox.training.device import configure_host, process_settings_kept
backends = torch.backends
owners = (backends, backends.cuda.matmul, backends.cudnn, backends.cudnn.conv,
          backends.cudnn.rnn)
def readable(read):
    try:
        return read()
    except RuntimeError:  # torch's "mix of the legacy and new APIs"
        return "refused"
def settings():
    return (backends.cudnn.benchmark, readable(lambda: backends.cuda.matmul.allow_tf32),
            readable(lambda: backends.cudnn.allow_tf32),
            readable(torch.get_float32_matmul_precision),
            *(owner.fp32_precision for owner in owners))
{callers_setting}
before = settings()
with process_settings_kept():
    configure_host(torch.device("cuda"), 1)
    during = settings()
print(before == settings(), during != before, before, settings())
"""


@pytest.mark.parametrize("callers_setting", [
    "pass",  # torch's defaults
    "torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False",
    "torch.set_float32_matmul_precision('medium')",
    "torch.backends.cuda.matmul.fp32_precision = 'ieee'",  # torch's newer TF32 settings
    "torch.backends.fp32_precision = 'ieee'",  # then torch refuses to read cudnn.allow_tf32
    "torch.backends.cudnn.conv.fp32_precision = 'ieee'",
])
def test_the_cuda_settings_a_run_makes_are_put_back(callers_setting: str) -> None:
    """configure_host turns on cuDNN autotuning and TF32 for a CUDA run (flags only: no GPU
    needed); process_settings_kept puts the caller's back, also those made with torch's
    newer fp32_precision settings. In a process of its own: the settings are process-wide."""
    result = subprocess.run([sys.executable, "-c",
                             CUDA_SETTINGS_CHECK.format(callers_setting=callers_setting)],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True True "), result.stdout
