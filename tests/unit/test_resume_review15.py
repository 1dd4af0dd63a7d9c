"""Review 15 of resume: a resume on another thread count said nothing, though its weights
then differ from a run never interrupted; a checkpoint path pasted from the stop message
as the run was "a file, not a run directory" without naming the run; and a finished run
whose report a killed evaluation had left half-moved was told to evaluate again, after
resume had just completed that report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import finished_tiny_run
from test_resume_review7 import tiny_config

from dlbox.errors import RunDirError
from dlbox.fileio import read_json
from dlbox.training.checkpoint import read_run_config, require_run_dir
from dlbox.training.device import available_cpus
from dlbox.training.loop import AlreadyFinished, TrainingStopped, resume, train


def _stopped(data_dir: Path, run: Path, **changes) -> Path:  # type: ignore[no-untyped-def]
    """A 2-epoch tiny run stopped at step 1 of its second epoch."""
    with pytest.raises(TrainingStopped):
        train(tiny_config(data_dir, run, epochs=2, **changes), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 2 and step == 1)
    return run


def _threads_note(err: str) -> list[str]:
    return [line for line in err.splitlines() if "CPU threads" in line]


# --- 1. another thread count ------------------------------------------------------------


def test_a_resume_on_other_threads_says_its_weights_will_differ(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=2)
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False, threads=1)
    assert _threads_note(capsys.readouterr().err) == [
        "note: the run trained with 2 CPU threads and resumes with 1: its weights will differ "
        "slightly from those of a run never interrupted (the same CPU and thread count give "
        "the same weights: --threads 2)"]
    assert read_json(run / "config.json")["threads"] == 1  # the machine's share, as before


def test_a_resume_on_the_same_threads_says_nothing(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=1)
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False, threads=1)
    assert _threads_note(capsys.readouterr().err) == []


@pytest.mark.parametrize("recorded", ["manifest", "neither"])
def test_a_run_on_every_core_is_known_by_the_threads_it_used(
        recorded: str, fake_cifar_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """config.json says "threads": null for a run on every core: manifest.json has the
    number it used; an older run's config.json, without the key, and no manifest.json: it
    trained on every core of its machine."""
    cores = available_cpus()
    other = 1 if cores > 1 else 2
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=None)
    config = read_json(run / "config.json")
    assert config["threads"] is None
    if recorded == "neither":
        del config["threads"]
        (run / "config.json").write_text(json.dumps(config))
        (run / "manifest.json").unlink()
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False, threads=other)
    note = _threads_note(capsys.readouterr().err)
    assert len(note) == 1 and note[0].startswith(
        f"note: the run trained with {cores} CPU threads and resumes with {other}:")


def test_the_note_is_for_the_resume_that_changes_the_threads(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resumed on 1 thread, stopped again and resumed as config.json now says (1): that
    resume changes nothing, and says nothing."""
    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=3), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 2 and step == 1)
    capsys.readouterr()
    with pytest.raises(TrainingStopped):
        resume(run, progress=False, evaluate_at_end=False, threads=1,
               stop=lambda epoch, step: epoch == 3 and step == 1)
    assert len(_threads_note(capsys.readouterr().err)) == 1
    resume(run, progress=False, evaluate_at_end=False)
    assert _threads_note(capsys.readouterr().err) == []


def test_threads_of_a_bigger_machine_are_not_offered(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run made on every core of a bigger machine: --threads of its count would be
    refused here (4 per core at most), so the note does not offer it."""
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=None)
    manifest = read_json(run / "manifest.json")
    big = available_cpus() * 8
    (run / "manifest.json").write_text(json.dumps({**manifest, "cpu_threads": big}))
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False)
    assert _threads_note(capsys.readouterr().err) == [
        f"note: the run trained with {big} CPU threads and resumes with {available_cpus()}: "
        "its weights will differ slightly from those of a run never interrupted (the same "
        "CPU and thread count give the same weights)"]


# --- 2. a path inside the run -----------------------------------------------------------


def test_the_checkpoint_path_as_the_run_names_the_run(tmp_path: Path) -> None:
    run = finished_tiny_run(tmp_path / "my runs")
    quoted = f"'{run}'"
    with pytest.raises(RunDirError) as file_given:
        require_run_dir(run / "checkpoints" / "last.pt")
    assert file_given.value.message == (f"{run / 'checkpoints' / 'last.pt'} is a file, not a "
                                        "run directory")
    assert file_given.value.hint == f"pass its run directory instead: {quoted}"
    with pytest.raises(RunDirError) as folder_given:
        read_run_config(run / "checkpoints")
    assert folder_given.value.hint == f"pass its run directory instead: {quoted}"
    with pytest.raises(RunDirError) as other_file:  # config.json itself: one level up
        read_run_config(run / "config.json")
    assert other_file.value.hint == f"pass its run directory instead: {quoted}"


def test_train_resume_names_its_own_command(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli import main

    run = finished_tiny_run(tmp_path)
    for given in (run / "checkpoints" / "last.pt", run / "checkpoints"):
        assert main(["train", "--resume", str(given)]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"hint: pass its run directory instead: `dlbox train --resume {run}`"


def test_evaluate_names_the_run_directory(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli import main

    run = finished_tiny_run(tmp_path)
    assert main(["evaluate", str(run / "checkpoints" / "last.pt")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"hint: pass its run directory instead: {run}"


def test_a_file_outside_any_run_keeps_its_hint(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError) as info:
        require_run_dir(tmp_path / "afile")
    assert info.value.hint == "pass the folder `dlbox train` wrote, not a file in it"
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError) as empty:
        read_run_config(tmp_path / "empty")
    assert empty.value.hint == "pass a directory made by `dlbox train`"


# --- 3. a finished run with its report --------------------------------------------------


def test_a_finished_run_with_its_report_names_the_report(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=True)
    # killed as the report moved in: metrics.json (moved last) still in the staging folder
    staging = run / ".evaluation.test.abcdefgh.tmp"
    staging.mkdir()
    shutil.move(run / "metrics.json", staging / "metrics.json")
    (staging / "moving").write_text("metrics.json\n")
    capsys.readouterr()
    with pytest.raises(AlreadyFinished) as done:
        resume(run, progress=False, evaluate_at_end=False)
    assert "note: finished placing the report" in capsys.readouterr().err
    assert (run / "metrics.json").is_file() and not staging.exists()
    assert done.value.message == f"run {run} already finished its 1 epoch: nothing to resume"
    assert done.value.hint == (
        f"its report is in {run} (predictions.csv, confusion_matrix.json, "
        "confusion_matrix.png, training_curves.png, metrics.json); to train longer, start a "
        "new run with more --epochs")
    with pytest.raises(AlreadyFinished) as again:  # asked again: the same
        resume(run, progress=False, evaluate_at_end=False)
    assert again.value.hint == done.value.hint


def test_a_finished_run_without_its_report_is_pointed_at_evaluate(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)
    with pytest.raises(AlreadyFinished) as done:
        resume(run, progress=False, evaluate_at_end=False)
    assert done.value.hint == (f"evaluate it with `dlbox evaluate {run}`, or start a new run "
                               "with more --epochs")


# --- re-review ----------------------------------------------------------------------------


def test_a_finished_run_missing_a_report_file_is_pointed_at_evaluate(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Re-review: the report's files were named from metrics.json, one of them deleted."""
    run = tmp_path / "run"
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=True)
    (run / "predictions.csv").unlink()
    with pytest.raises(AlreadyFinished) as done:
        resume(run, progress=False, evaluate_at_end=False)
    assert done.value.hint.startswith(f"evaluate it with `dlbox evaluate {run}`")


def test_a_run_set_to_more_threads_than_cores_it_trained_with_says_the_weights_differ(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Re-review: a run trained here on more threads than cores resumed on the cores with
    only the older note, which says nothing of the weights."""
    cores = available_cpus()
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=cores + 1)
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False)
    notes = [line for line in capsys.readouterr().err.splitlines() if "threads" in line]
    assert notes == [
        f"note: the run was set to {cores + 1} CPU threads, more than the "
        f"{cores} core{'s' if cores > 1 else ''} here: it resumes with {cores} (--threads N "
        "to choose; its weights will then differ slightly from those of a run never "
        f"interrupted, which --threads {cores + 1} avoids)"]


def test_a_manifests_true_is_no_thread_count(fake_cifar_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = _stopped(fake_cifar_dir, tmp_path / "run", threads=2)
    manifest = read_json(run / "manifest.json")
    (run / "manifest.json").write_text(json.dumps({**manifest, "cpu_threads": True}))
    capsys.readouterr()
    resume(run, progress=False, evaluate_at_end=False, threads=1)
    assert len(_threads_note(capsys.readouterr().err)) == 1  # config.json's 2, not True's 1


def test_a_path_inside_a_run_without_config_json_names_the_run(tmp_path: Path) -> None:
    """Re-review: a run found by its config.json only; one that lost it (whose own folder
    gets the hint to write it back) was not named from its checkpoint's path."""
    run = finished_tiny_run(tmp_path / "run")
    (run / "config.json").unlink()
    with pytest.raises(RunDirError) as file_given:
        require_run_dir(run / "checkpoints" / "last.pt")
    assert file_given.value.hint == f"pass its run directory instead: {run}"
