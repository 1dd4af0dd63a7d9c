"""Review 7 of resume, evaluate's run loading and the train CLI: edits and damage that a
resume (or evaluate) took silently, and messages that named the wrong thing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlbox.data.synthetic import write_fake_cifar10
from dlbox.errors import HostEnvError, RunDirError, UsageError
from dlbox.fileio import read_json
from dlbox.training.checkpoint import load_checkpoint, load_model_from_run, save_checkpoint
from dlbox.training.config import TrainConfig, build_config
from dlbox.training.loop import TrainingStopped, resume, train


def tiny_config(data_dir: Path, run_dir: Path, **changes) -> TrainConfig:  # type: ignore[no-untyped-def]
    values = {"epochs": 1, "num_train": 320, "num_test": 100, "device": "cpu",
              "data_dir": str(data_dir), "run_dir": str(run_dir), "threads": 2, "seed": 1}
    values.update(changes)
    return build_config("tiny", **values)


def _stopped_after_epoch_1(data_dir: Path, run: Path, **changes) -> Path:  # type: ignore[no-untyped-def]
    """A 3-epoch tiny run stopped at step 1 of its second epoch: one epoch in its history."""
    with pytest.raises(TrainingStopped):
        train(tiny_config(data_dir, run, epochs=3, **changes), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 2 and step == 1)
    return run


def test_an_edited_model_kwargs_is_refused_by_resume_and_evaluate(fake_cifar_dir: Path,
                                                                  tmp_path: Path) -> None:
    """Found by review: config.json's width edited 8 -> 16 was resumed with (a new
    network, accuracy collapsed) and evaluate said "train again"."""
    from dlbox.training.evaluate import evaluate_run

    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run", width=8)
    config = run / "config.json"
    kept = read_json(config)
    assert kept["model_kwargs"] == {"width": 8}
    config.write_text(json.dumps({**kept, "model_kwargs": {"width": 16}}))
    before = {name: (run / name).read_bytes() for name in ("config.json", "manifest.json")}
    with pytest.raises(RunDirError) as resumed:
        resume(run, progress=False, evaluate_at_end=False)
    assert resumed.value.message == (f"{config} says model_kwargs {{\"width\": 16}}, but the "
                                     "run's checkpoint was trained with {\"width\": 8}: a "
                                     "resumed run keeps its settings")
    assert resumed.value.hint.startswith('put model_kwargs back to {"width": 8} in config.json')
    assert before == {name: (run / name).read_bytes() for name in before}  # nothing written
    last = run / "checkpoints" / "last.pt"
    for load in (lambda: evaluate_run(run, device="cpu", quiet=True),
                 lambda: load_model_from_run(run, device="cpu")):
        with pytest.raises(RunDirError) as refused:
            load()
        assert refused.value.message == (f"{config} says model_kwargs {{\"width\": 16}}, but "
                                         f"the run's checkpoint {last} was trained with "
                                         "{\"width\": 8}")
        assert refused.value.hint == 'put model_kwargs back to {"width": 8} in config.json'
    config.write_text(json.dumps(kept))
    load_model_from_run(run, device="cpu")
    resume(run, progress=False, evaluate_at_end=False)


def test_a_checkpoints_tuple_model_kwargs_equals_config_jsons_list(fake_cifar_dir: Path,
                                                                   tmp_path: Path) -> None:
    """A checkpoint holds the config as to_dict gave it (speedrun's widths a tuple),
    config.json as JSON (a list): the same setting, not an edit."""
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["config"]["model_kwargs"] = {"width": 8, "shape": (1, (2, 3))}
    save_checkpoint(last, state)
    config = run / "config.json"
    config.write_text(json.dumps({**read_json(config),
                                  "model_kwargs": {"width": 8, "shape": [1, [2, 3]]}}))
    from dlbox.training.checkpoint import as_json_value

    assert as_json_value({"a": (1, [2, (3,)])}) == {"a": [1, [2, [3]]]}
    # not refused as an edit (the tiny net knows no "shape": its own error says so)
    with pytest.raises(RunDirError, match="names a model this dlbox cannot build"):
        load_model_from_run(run, device="cpu")


def test_resume_refuses_data_with_fewer_test_images_than_the_run_tested_on(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Found by review: --resume --data SMALL (50 test images, the run's num_test 80) went
    on testing on 50, its history mixing 80 and 50; a new run with that --num-test is
    refused."""
    small = tmp_path / "small"
    write_fake_cifar10(small, n_train=500, n_test=50, seed=0)
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run", num_test=80)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunDirError) as refused:
        resume(run, data_dir=small, progress=False, evaluate_at_end=False)
    assert refused.value.message == (f"run {run} tests on 80 test images (num_test in its "
                                     f"config.json), but {small} has 50")
    assert refused.value.hint == f"resume with the data it was trained on: --data {fake_cifar_dir}"
    assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UsageError, match="--num-test 80 is more than the 50 test images"):
        train(tiny_config(small, tmp_path / "new", num_test=80), progress=False,
              evaluate_at_end=False)


@pytest.mark.parametrize("damage", ["missing", "short"])
def test_resume_refuses_a_checkpoint_whose_history_is_missing_or_short(
        fake_cifar_dir: Path, tmp_path: Path, damage: str) -> None:
    """Found by review: a checkpoint without its history (or a shorter one than its epochs)
    resumed, and wiped the earlier epochs from metrics.json."""
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["epoch"] == 1 and len(state["history"]) == 1  # every checkpoint has one
    if damage == "missing":
        del state["history"]
    else:
        state["history"] = []
    save_checkpoint(last, state)
    metrics = (run / "metrics.json").read_bytes()
    with pytest.raises(RunDirError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message == (
        f"checkpoint {last} is damaged (the history: "
        + ("it is missing)" if damage == "missing" else "it holds 0 epochs, not the 1 the "
           "checkpoint finished)"))
    assert (run / "metrics.json").read_bytes() == metrics


def test_a_cuda_device_from_the_runs_config_json_is_named_as_such(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: resuming a run set to cuda on a CPU-only machine said "--device cuda
    needs CUDA" though no --device was given."""
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run")
    config = run / "config.json"
    config.write_text(json.dumps({**read_json(config), "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HostEnvError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message.startswith(f"{config} says device cuda, which needs CUDA, but ")
    assert refused.value.hint.endswith("or use --device cpu")
    with pytest.raises(HostEnvError, match="^--device cuda needs CUDA"):  # a flag: as before
        resume(run, device="cuda", progress=False, evaluate_at_end=False)
    resume(run, device="cpu", progress=False, evaluate_at_end=False)


def test_an_unknown_device_from_the_runs_config_json_is_named_as_such(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Found by review: a config.json edited to "device": "gpu" said "unknown device 'gpu'"
    on resume, though no --device was given; --device still overrides it."""
    from dlbox.errors import UsageError

    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run")
    config = run / "config.json"
    config.write_text(json.dumps({**read_json(config), "device": "gpu"}))
    with pytest.raises(UsageError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message == f"{config} says device 'gpu', which is not a device"
    assert refused.value.hint == ('put "device": "auto" there, or pass --device (use auto, '
                                  'cpu, cuda or cuda:N)')
    with pytest.raises(UsageError) as refused:  # a flag: as before
        resume(run, device="tpu", progress=False, evaluate_at_end=False)
    assert refused.value.message == "unknown device 'tpu'"
    resume(run, device="cpu", progress=False, evaluate_at_end=False)


def test_a_second_ctrl_c_names_the_run_in_one_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli.train import say_what_was_kept

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("dlbox.training.checkpoint.says_finished", lambda path: False)
    say_what_was_kept("run")
    assert capsys.readouterr().err == (f"the last saved state is in {run}/checkpoints/last.pt\n"
                                       f"resume with: dlbox train --resume {run}\n")


def test_a_folder_in_place_of_last_pt_is_named_a_folder(fake_cifar_dir: Path,
                                                        tmp_path: Path) -> None:
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    last.unlink()
    last.mkdir()
    with pytest.raises(RunDirError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message == (f"{run} has no checkpoint to resume from (a folder of "
                                     "that name is in its place)")
    assert refused.value.hint == (f"{last} is a folder, not a checkpoint: move it away, and "
                                  "put the checkpoint back there or train again")
    assert "moved or deleted" not in refused.value.hint


def test_already_finished_all_1_epoch_reads_right(fake_cifar_dir: Path, tmp_path: Path) -> None:
    from dlbox.training.loop import AlreadyFinished

    run = tmp_path / "run"
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)
    with pytest.raises(AlreadyFinished) as done:
        resume(run, progress=False, evaluate_at_end=False)
    assert done.value.message == f"run {run} already finished its 1 epoch: nothing to resume"


def test_absurd_epochs_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli import main

    assert main(["train", "--epochs", str(10**18), "--model", "tiny", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 1000000000000000000 is more than 100000" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("n_test", [50, 150])
def test_resume_refuses_another_test_set_size_without_num_test(
        fake_cifar_dir: Path, tmp_path: Path, n_test: int) -> None:
    """Found by re-review: a run without --num-test (all the test images) resumed on data with
    fewer, or more, test images, its history mixing accuracies on both."""
    other = tmp_path / "other"
    write_fake_cifar10(other, n_train=500, n_test=n_test, seed=0)
    run = _stopped_after_epoch_1(fake_cifar_dir, tmp_path / "run", num_test=None)
    assert json.loads((run / "config.json").read_text())["num_test"] is None  # all of them
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunDirError, match=rf"tested on \d+ test images, but {other} gives "
                                          rf"{n_test}"):
        resume(run, data_dir=other, progress=False, evaluate_at_end=False)
    assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_absurd_epochs_are_refused_from_python_too() -> None:
    """Found by re-reading the change: the 100000 cap lived in the CLI only, so
    `build_config(epochs=10**18)` from the notebook or Python was taken."""
    from dlbox.errors import UsageError
    from dlbox.training.config import TrainConfig, build_config

    with pytest.raises(UsageError) as refused:
        build_config("tiny", device="cpu", epochs=10**18)
    assert refused.value.message == "--epochs 1000000000000000000 is more than 100000"
    assert refused.value.hint == "pass --epochs 100000 or less"
    assert build_config("tiny", device="cpu", epochs=100_000).epochs == 100_000
    with pytest.raises(UsageError, match="is more than 100000"):
        TrainConfig.from_dict({"model": "tiny", "epochs": 100_001})
