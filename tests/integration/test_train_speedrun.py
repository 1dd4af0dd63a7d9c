"""`dlbox train --model speedrun` on the CPU: the speedrun trainer writes a normal run dir."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dlbox.cli import main
from dlbox.errors import EXIT_OK
from dlbox.fileio import read_json
from dlbox.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def small_cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dlbox.data.synthetic import write_fake_cifar10

    root = tmp_path_factory.mktemp("cifar-speedrun")
    write_fake_cifar10(root, n_train=300, n_test=100, seed=0)
    return root


def test_train_speedrun_writes_the_run_dir(small_cifar_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    code = main(["train", "--model", "speedrun", "--epochs", "1", "--num-train", "300",
                 "--device", "cpu", "--data", str(small_cifar_dir),
                 "--run-dir", str(run_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "speedrun trainer" in out and "epoch 1/1" in out
    assert "after 1 epoch," in out and "1 epochs" not in out  # it said "after 1 epochs"
    assert "test accuracy:" in out and "with TTA" in out
    assert out.strip().splitlines()[-1].startswith("test accuracy: ")  # the last line too
    assert " with TTA; wrote " in out.strip().splitlines()[-1]
    for name in ("config.json", "manifest.json", "metrics.json", "checkpoints/last.pt",
                 "predictions.csv", "confusion_matrix.json"):
        assert (run_dir / name).is_file(), name
    config = read_json(run_dir / "config.json")
    assert (config["model"], config["epochs"], config["tta"]) == ("speedrun", 1, True)
    metrics = read_json(run_dir / "metrics.json")
    assert len(metrics["history"]) == 1 and metrics["history"][0]["steps"] == 1
    final = metrics["final"]
    assert final["finished"] and 0.0 <= final["test_accuracy_tta"] <= 1.0
    assert metrics["speedrun"]["timer"] == "perf_counter"
    assert metrics["speedrun"]["config"]["batch_size"] == 256  # the CPU recipe
    assert metrics["evaluation"]["tta"] is True and metrics["evaluation"]["test_images"] == 100
    # The end-of-training report is the trainer's own final (6-view TTA) evaluation, not a
    # second pass over the test set.
    assert metrics["evaluation"]["from"] == "the trainer's final evaluation"
    # with the versions its numbers came from, as `dlbox evaluate` records them
    import torch

    assert metrics["evaluation"]["versions"]["torch"] == torch.__version__
    assert metrics["evaluation"]["versions"]["device"] == "cpu"
    assert final["test_accuracy"] == final["test_accuracy_tta"]
    assert metrics["evaluation"]["eval_seconds"] == pytest.approx(
        metrics["speedrun"]["eval_seconds"], abs=1e-3)
    trained = _predictions(run_dir)
    assert len(trained) == 100
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["finished"] and state["trainer"] == "speedrun" and state["classes"]
    # A finished run has nothing to resume (said, exit 0, the checkpoint untouched), and
    # `dlbox evaluate` reloads it from the checkpoint: the same predictions, so the report's
    # figures are those of the saved weights.
    saved = (run_dir / "checkpoints" / "last.pt").read_bytes()
    assert main(["train", "--resume", str(run_dir)]) == EXIT_OK
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == saved
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == EXIT_OK
    evaluated = _predictions(run_dir)
    assert "from" not in read_json(run_dir / "metrics.json")["evaluation"]
    assert [row["predicted_label"] for row in evaluated] == [
        row["predicted_label"] for row in trained]
    assert max(abs(float(a[key]) - float(b[key]))
               for a, b in zip(trained, evaluated, strict=True)
               for key in a if key.startswith("prob_")) < 1e-4


def _predictions(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_stopped_speedrun_resumes_to_the_uninterrupted_weights(
        small_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopped after epoch 1 of 3 (as Ctrl-C / SIGTERM would), resumed: the final weights
    equal those of a run that was never interrupted (CPU, same seed and threads)."""
    import torch

    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, resume, train

    def config(run_dir: Path):  # noqa: ANN202 - a TrainConfig
        return build_config("speedrun", device="cpu", epochs=3, batch_size=64, seed=3,
                            data_dir=str(small_cifar_dir), run_dir=str(run_dir), threads=1)

    whole = tmp_path / "whole"
    train(config(whole), progress=False, evaluate_at_end=False)

    parted = tmp_path / "parted"
    with pytest.raises(TrainingStopped):
        train(config(parted), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch >= 2)  # in epoch 2, as in the generic loop
    saved = load_checkpoint(parted / "checkpoints" / "last.pt")
    assert saved["epoch"] == 1 and not saved["finished"]
    assert saved["trainer"] == "speedrun" and saved["speedrun_state"]["step"] > 0
    assert len(read_json(parted / "metrics.json")["history"]) == 1

    capsys.readouterr()
    resume(parted, progress=False, evaluate_at_end=False)
    # It said "resuming at epoch 2 speedrun on cpu"; now as the generic loop says it.
    assert capsys.readouterr().out.startswith("resuming speedrun at epoch 2 of 3 on cpu (")
    a = load_checkpoint(whole / "checkpoints" / "last.pt")
    b = load_checkpoint(parted / "checkpoints" / "last.pt")
    assert b["finished"] and b["epoch"] == 3
    assert set(a["model"]) == set(b["model"])
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    history = read_json(parted / "metrics.json")["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3]


def test_stop_hook_sees_every_step_as_the_notebook_bar_needs(small_cifar_dir: Path,
                                                            tmp_path: Path) -> None:
    """The notebook drives its progress bar from `stop(epoch, step)`, as with the generic
    loop: the speedrun trainer calls it after every step with the steps done in the epoch."""
    from dlbox.training.config import build_config
    from dlbox.training.loop import train

    calls: list[tuple[int, int]] = []
    config = build_config("speedrun", device="cpu", epochs=2, batch_size=100, seed=0,
                          data_dir=str(small_cifar_dir), run_dir=str(tmp_path / "run"),
                          threads=1)
    train(config, progress=False, evaluate_at_end=False,
          stop=lambda epoch, step: calls.append((epoch, step)) is not None)
    # 300 images, batch 100; epochs from 1, the one in progress, as the generic loop counts
    # them (review: they were from 0 here, and the notebook's bar read "epoch 0/2")
    assert calls == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]


def test_a_speedrun_stopped_before_its_first_epoch_ended_says_nothing_was_saved(
        small_cifar_dir: Path, tmp_path: Path) -> None:
    """The speedrun trainer keeps epoch boundaries only: a stop in epoch 1 has nothing to
    resume, and must not claim a checkpoint; a later stop names the epoch it kept."""
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, train

    def config(run_dir: Path):  # noqa: ANN202 - a TrainConfig
        return build_config("speedrun", device="cpu", epochs=2, batch_size=100, seed=0,
                            data_dir=str(small_cifar_dir), run_dir=str(run_dir), threads=1)

    with pytest.raises(TrainingStopped) as early:
        train(config(tmp_path / "early"), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: step == 1)
    assert not (tmp_path / "early" / "checkpoints" / "last.pt").exists()
    assert not early.value.resumable and "nothing was saved" in early.value.message
    assert "--resume" not in (early.value.hint or "")
    # Its hints all say: start again. --resume and evaluate refuse without pointing back to
    # --resume, and the same command (same --run-dir) starts the run again in place.
    from dlbox.errors import RunDirError
    from dlbox.training.checkpoint import load_model_from_run
    from dlbox.training.loop import resume

    with pytest.raises(RunDirError) as no_resume:
        resume(tmp_path / "early", device="cpu")
    with pytest.raises(RunDirError) as no_model:
        load_model_from_run(tmp_path / "early", "cpu")
    for error in (no_resume.value, no_model.value):
        assert "saved nothing" in (error.hint or "") and "dlbox train --resume" not in (
            error.hint or "")
    train(config(tmp_path / "early"), progress=False, evaluate_at_end=False)
    assert (tmp_path / "early" / "checkpoints" / "last.pt").is_file()

    with pytest.raises(TrainingStopped) as later:
        train(config(tmp_path / "later"), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    assert later.value.resumable and (tmp_path / "later" / "checkpoints" / "last.pt").is_file()
    assert "the state after epoch 1" in later.value.message
    assert "epoch in progress is lost" in later.value.message


def test_a_first_epoch_stop_in_a_default_run_dir_removes_it(
        small_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by hand: without --run-dir, the hint said the same command `may reuse` the run's
    folder; the same command makes a new runs/<time>-<model> and leaves that one behind. The
    folder, which holds no checkpoint, is removed now, and the hint says so."""
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, train

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingStopped) as early:
        train(build_config("speedrun", device="cpu", epochs=1, batch_size=100, threads=1,
                           data_dir=str(small_cifar_dir)),
              progress=False, evaluate_at_end=False, stop=lambda epoch, step: step == 1)
    assert not (tmp_path / "runs").exists()  # nor the runs/ folder made for it, left empty
    assert early.value.hint == (f"start again with the same command (the run's folder "
                                f"{early.value.run_dir}, which held no checkpoint, is removed)")
    assert early.value.run_dir.parent == tmp_path / "runs"


@pytest.mark.parametrize("key, damage", [("optimizers", [None, None]), ("generator", "x"),
                                         ("step", None), ("history", "x"),
                                         ("history", [1]), ("top-level history", "x")])
def test_a_damaged_speedrun_state_is_refused_before_resume_writes(
        small_cifar_dir: Path, tmp_path: Path, key: str, damage: object) -> None:
    import torch

    from dlbox.errors import RunDirError
    from dlbox.training.checkpoint import load_checkpoint
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, resume, train

    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(build_config("speedrun", device="cpu", epochs=2, batch_size=100, seed=0,
                           data_dir=str(small_cifar_dir), run_dir=str(run), threads=1),
              progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    if key == "top-level history":  # the history metrics.json and the epoch lines read
        state["history"] = damage
    else:
        state["speedrun_state"][key] = damage
    torch.save(state, path)
    manifest = (run / "manifest.json").read_bytes()
    with pytest.raises(RunDirError, match="is damaged") as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert "\n" not in error.value.message
    assert (run / "manifest.json").read_bytes() == manifest


def test_a_first_epoch_stop_whose_folder_cannot_be_removed_says_how_to_reuse_it(
        small_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: when the default run dir could not be removed, the hint fell back to
    "the same command may reuse it", false without --run-dir; it names the flag again."""
    from dlbox.training import loop, rundir
    from dlbox.training.config import build_config

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir.shutil, "rmtree", refused)
    with pytest.raises(loop.TrainingStopped) as early:
        loop.train(build_config("speedrun", device="cpu", epochs=1, batch_size=100, threads=1,
                                data_dir=str(small_cifar_dir)),
                   progress=False, evaluate_at_end=False, stop=lambda epoch, step: step == 1)
    [run_dir] = (tmp_path / "runs").iterdir()
    assert early.value.hint == (f"start again with the same command; add --run-dir {run_dir} "
                                "to it to reuse this run's folder, which holds no checkpoint")


def test_nan_outputs_at_the_speedruns_end_are_a_divergence_not_a_finished_run(
        small_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: a run whose loss stayed finite while its test outputs were NaN was saved as
    finished, which evaluate then refused. The speedrun's final evaluation is made to give
    one NaN output (which outputs go NaN is the model's business)."""
    from dlbox.training import speedrun

    real = speedrun.evaluate_logits

    def evaluate_logits(*args, **kwargs):  # type: ignore[no-untyped-def]
        logits = real(*args, **kwargs)
        logits[0, 0] = float("inf")
        return logits

    monkeypatch.setattr(speedrun, "evaluate_logits", evaluate_logits)
    run_dir = tmp_path / "run"
    code = main(["train", "--model", "speedrun", "--epochs", "1", "--device", "cpu",
                 "--data", str(small_cifar_dir), "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert ("error: training diverged in epoch 1: the model's outputs on the test images "
            "became NaN or infinite") in err
    assert not (run_dir / "predictions.csv").exists()
    assert not (run_dir / "checkpoints" / "last.pt").exists()


def test_a_batch_of_one_is_warned_of(small_cifar_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `--model speedrun --batch-size 1` "diverged" at any --lr (1e-9 too) on data of
    flat channels, and the hint said to lower it. On other data it trains: a warning."""
    code = main(["train", "--model", "speedrun", "--batch-size", "1", "--num-train", "40",
                 "--epochs", "1", "--device", "cpu", "--data", str(small_cifar_dir),
                 "--run-dir", str(tmp_path / "run"), "--no-progress", "--no-evaluate"])
    assert code == EXIT_OK
    assert capsys.readouterr().err.startswith(
        "warning: --batch-size 1 with model 'speedrun': its BatchNorm then normalises each "
        "image by itself")
