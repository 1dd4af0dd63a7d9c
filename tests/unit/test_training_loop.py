"""The train loop on tiny synthetic data: it learns, writes its run dir, stops and resumes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from dlbox.data.cifar10 import load_cifar10
from dlbox.errors import DataError, RunDirError, UsageError
from dlbox.fileio import read_json
from dlbox.models import create_model
from dlbox.training.checkpoint import load_checkpoint, load_model_from_run
from dlbox.training.config import CIFAR10_MEAN, CIFAR10_STD, TrainConfig, build_config
from dlbox.training.inputs import prepare_batch
from dlbox.training.loop import TrainingStopped, augment, resume, train


def tiny_config(data_dir: Path, run_dir: Path, **changes) -> TrainConfig:  # type: ignore[no-untyped-def]
    values = {"epochs": 1, "num_train": 320, "num_test": 100, "device": "cpu",
              "data_dir": str(data_dir), "run_dir": str(run_dir) if run_dir else None,
              "threads": 2, "seed": 1}
    values.update(changes)
    return build_config("tiny", **values)


def test_prepare_batch_normalises_per_channel() -> None:
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    images[:, 1] = 255
    x = prepare_batch(images, "cpu")
    assert x.dtype == torch.float32 and x.shape == (2, 3, 4, 4)
    assert torch.allclose(x[:, 0], torch.tensor(-CIFAR10_MEAN[0] / CIFAR10_STD[0]))
    assert torch.allclose(x[:, 1], torch.tensor((1 - CIFAR10_MEAN[1]) / CIFAR10_STD[1]))
    assert prepare_batch(images, "cpu", channels_last=True).is_contiguous(
        memory_format=torch.channels_last)


def test_every_trainer_normalises_with_the_same_code() -> None:
    from dlbox.training import speedrun

    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    for channels_last in (False, True):
        shared = prepare_batch(images, "cpu", channels_last, mean=mean, std=std)
        own = speedrun.preprocess(images, mean, std, channels_last)
        assert torch.equal(own, shared) and own.stride() == shared.stride()


def _test_loss(model: torch.nn.Module, data_dir: Path) -> float:
    test = load_cifar10(data_dir, "test")
    model.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(prepare_batch(test.images, "cpu")),
                                                       test.labels))


def test_the_tutorial_trains_and_predicts_on_its_own_minus_one_to_one_inputs(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """The tutorial's transform is Normalize((0.5,)*3, (0.5,)*3); the run records it, and the
    loaded model's preprocessing (what evaluate and predict use) maps 0..255 to -1..1."""
    config = build_config("tutorial", device="cpu", epochs=1, num_train=64, num_test=20,
                          data_dir=str(fake_cifar_dir), run_dir=str(tmp_path / "run"),
                          threads=2)
    assert config.mean == config.std == (0.5, 0.5, 0.5)
    run_dir = train(config, progress=False, evaluate_at_end=False)
    assert read_json(run_dir / "config.json")["mean"] == [0.5, 0.5, 0.5]
    loaded = load_model_from_run(run_dir, "cpu")
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[1] = 255
    x = loaded.preprocess(images)
    assert torch.allclose(x[0], torch.tensor(-1.0)) and torch.allclose(x[1], torch.tensor(1.0))
    # Every other model keeps CIFAR-10's own statistics.
    assert build_config("tiny", device="cpu").mean == CIFAR10_MEAN


def test_one_epoch_lowers_the_loss_and_writes_the_run_dir(fake_cifar_dir: Path,
                                                          tmp_path: Path) -> None:
    config = tiny_config(fake_cifar_dir, tmp_path / "run")
    run_dir = train(config, progress=False, evaluate_at_end=False)
    assert run_dir == (tmp_path / "run").resolve()

    torch.manual_seed(config.seed)  # the same initial weights the run started from
    before = _test_loss(create_model("tiny"), fake_cifar_dir)
    after = _test_loss(load_model_from_run(run_dir, "cpu").model, fake_cifar_dir)
    assert after < before - 0.2

    saved = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    assert saved == config.replace(run_dir=str(run_dir), data_dir=str(fake_cifar_dir.resolve()))
    manifest = read_json(run_dir / "manifest.json")
    for key in ("dlbox", "torch", "cuda", "cudnn", "nvidia_driver", "python", "platform",
                "device_name", "git", "data_checksum"):
        assert key in manifest
    assert manifest["torch"] == torch.__version__ and manifest["device"] == "cpu"
    metrics = read_json(run_dir / "metrics.json")
    (entry,) = metrics["history"]
    assert set(entry) >= {"epoch", "elapsed_s", "train_loss", "train_accuracy",
                          "test_accuracy", "images_per_s"}
    assert entry["epoch"] == 1 and entry["images_per_s"] > 0 and 0 <= entry["test_accuracy"] <= 1
    assert metrics["final"]["test_accuracy"] == entry["test_accuracy"]
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["finished"]
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "config", "classes"}
    assert set(state["rng"]) >= {"torch_cpu", "torch_cuda", "python", "numpy", "generator"}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_after_a_clean_stop_mid_epoch_matches_an_uninterrupted_run(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = train(tiny_config(fake_cifar_dir, tmp_path / "whole", epochs=2),
                  progress=False, evaluate_at_end=False)

    def stop_in_epoch_2(epoch: int, step: int) -> bool:
        return epoch == 2 and step == 4

    with pytest.raises(TrainingStopped) as stopped:
        train(tiny_config(fake_cifar_dir, tmp_path / "split", epochs=2), progress=False,
              evaluate_at_end=False, stop=stop_in_epoch_2)
    assert stopped.value.exit_code == 130
    state = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["finished"]) == (1, 4, False)

    capsys.readouterr()
    resume(tmp_path / "split", progress=False, evaluate_at_end=False)
    assert (f"resuming {tmp_path / 'split'} at epoch 2 of 2, step 4, on cpu"
            in capsys.readouterr().out)
    _assert_same_weights(_weights(whole), _weights(tmp_path / "split"))
    history_whole = read_json(whole / "metrics.json")["history"]
    history_split = read_json(tmp_path / "split" / "metrics.json")["history"]
    assert [h["test_accuracy"] for h in history_whole] == [h["test_accuracy"]
                                                           for h in history_split]
    assert history_whole[1]["train_loss"] == pytest.approx(history_split[1]["train_loss"])
    assert len(read_json(tmp_path / "split" / "manifest.json")["resumed"]) == 1


def test_resume_after_a_crash_keeps_the_last_epoch_and_matches(fake_cifar_dir: Path,
                                                               tmp_path: Path) -> None:
    whole = train(tiny_config(fake_cifar_dir, tmp_path / "whole", epochs=3),
                  progress=False, evaluate_at_end=False)

    def crash_in_epoch_3(epoch: int, step: int) -> bool:
        if epoch == 3 and step == 2:
            raise KeyboardInterrupt  # a hard Ctrl-C: nothing saved after epoch 2
        return False

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(fake_cifar_dir, tmp_path / "crash", epochs=3), progress=False,
              evaluate_at_end=False, stop=crash_in_epoch_3)
    state = load_checkpoint(tmp_path / "crash" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (2, 0)
    assert [p.name for p in (tmp_path / "crash" / "checkpoints").iterdir()] == ["last.pt"]

    resume(tmp_path / "crash", progress=False, evaluate_at_end=False)
    _assert_same_weights(_weights(whole), _weights(tmp_path / "crash"))


def test_resuming_a_finished_run_says_so(fake_cifar_dir: Path, tmp_path: Path) -> None:
    run_dir = train(tiny_config(fake_cifar_dir, tmp_path / "run"), progress=False,
                    evaluate_at_end=False)
    with pytest.raises(RunDirError, match="already finished"):
        resume(run_dir, progress=False)


def test_a_resume_may_use_another_number_of_threads(fake_cifar_dir: Path,
                                                    tmp_path: Path) -> None:
    # `--resume RUN --threads 2` was refused ("--threads cannot change"), so a run could not
    # be capped to the cores a shared host lends it when it continued.
    def stop_in_epoch_2(epoch: int, step: int) -> bool:
        return epoch == 2 and step == 2

    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run_dir, epochs=2), progress=False,
              evaluate_at_end=False, stop=stop_in_epoch_2)
    from dlbox.training.device import available_cpus

    before = (run_dir / "config.json").read_bytes()
    with pytest.raises(UsageError, match="threads must be at most"):  # as for a new run
        resume(run_dir, progress=False, threads=4 * available_cpus() + 1)
    assert (run_dir / "config.json").read_bytes() == before
    resume(run_dir, progress=False, evaluate_at_end=False, threads=1)
    assert read_json(run_dir / "config.json")["threads"] == 1
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["finished"]
    assert read_json(run_dir / "manifest.json")["resumed"][0]["cpu_threads"] == 1


def test_a_run_set_for_more_threads_than_cores_here_resumes_with_the_cores_here(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: a run trained with --threads 64 resumed on 2 cores ran 64 threads,
    fifty times slower; only a --threads given here was checked."""
    from dlbox.training.device import available_cpus

    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run_dir, epochs=2), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 2 and step == 2)
    config = read_json(run_dir / "config.json")
    config["threads"] = 16 * available_cpus()  # as on a machine sixteen times bigger
    (run_dir / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    resume(run_dir, progress=False, evaluate_at_end=False)
    assert read_json(run_dir / "manifest.json")["resumed"][0]["cpu_threads"] == available_cpus()
    assert read_json(run_dir / "config.json")["threads"] is None
    assert (f"note: the run was set to {16 * available_cpus()} CPU threads, more than the "
            f"{available_cpus()} cores here: it resumes with {available_cpus()}"
            in capsys.readouterr().err)


def test_resume_of_a_run_whose_checkpoint_was_deleted_says_so(fake_cifar_dir: Path,
                                                              tmp_path: Path) -> None:
    """Found by hand: the hint said the run `saved nothing` and that its --run-dir `may be
    reused`, for a run whose metrics.json records its epochs (a new run there is refused)."""
    run = tmp_path / "run"  # stopped in epoch 3 of 3: metrics.json records 2 epochs
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=3), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 3 and step == 2)
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(RunDirError, match="has no checkpoint to resume from") as error:
        resume(run, progress=False, evaluate_at_end=False)
    hint = error.value.hint or ""
    assert "records 2 finished epoch(s), so the checkpoint was moved or deleted" in hint
    assert "saved nothing" not in hint and "may be reused" not in hint


def test_an_existing_run_dir_is_not_overwritten(fake_cifar_dir: Path, tmp_path: Path) -> None:
    from dlbox.training.loop import TrainingStopped

    run = tmp_path / "my run"  # review: the commands in the hints did not paste (the space)
    config = tiny_config(fake_cifar_dir, run, epochs=2)
    with pytest.raises(TrainingStopped):
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 1 and step == 1)
    with pytest.raises(RunDirError, match="already holds a run") as caught:
        train(config, progress=False, evaluate_at_end=False)
    assert caught.value.hint == (f"continue it with `dlbox train --resume '{run}'`, or pass "
                                 "another --run-dir")
    # Found by review: a finished run was offered --resume too, which has nothing to do.
    done = tmp_path / "done run"
    train(config.replace(run_dir=str(done)), progress=False, evaluate_at_end=False)
    with pytest.raises(RunDirError) as finished:
        train(config.replace(run_dir=str(done)), progress=False, evaluate_at_end=False)
    assert finished.value.message == f"{done} already holds a run, which finished"
    assert finished.value.hint == (f"evaluate it with `dlbox evaluate '{done}'`, or "
                                   "pass another --run-dir for a new run")


def test_a_run_dir_a_new_run_cannot_take_is_refused_before_the_data_is_read(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the refusal came after the data was read (seconds for an image
    tree), and a Ctrl-C meanwhile was answered "training had finished (...); its evaluation
    was cut short" of the run already in that folder, which this command never touched."""
    from dlbox.cli import main
    from dlbox.training import loop

    done = tmp_path / "done"
    train(tiny_config(fake_cifar_dir, done, epochs=1), progress=False, evaluate_at_end=False)
    capsys.readouterr()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the data is read

    monkeypatch.setattr(loop, "load_split", interrupted)
    argv = ["train", "--model", "tutorial", "--epochs", "1", "--data", str(fake_cifar_dir),
            "--no-progress", "--run-dir"]
    assert main([*argv, str(done)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {done} already holds a run, which finished")
    assert main([*argv, str(tmp_path / "new")]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert not (tmp_path / "new").exists()


def test_a_run_dir_that_saved_nothing_is_reused_but_nothing_else(tmp_path: Path) -> None:
    from dlbox.training.rundir import create_run_dir

    started = tmp_path / "started"
    (started / "checkpoints").mkdir(parents=True)
    (started / "config.json").write_text("{}")
    (started / "manifest.json").write_text("{}")
    assert create_run_dir(started) == started  # only what a start writes: reused
    (started / "metrics.json").write_text("{}")  # something the run produced: kept
    with pytest.raises(RunDirError, match="already holds a run"):
        create_run_dir(started)
    (started / "metrics.json").unlink()
    (started / "checkpoints" / "last.pt").write_bytes(b"x")
    with pytest.raises(RunDirError, match="already holds a run"):
        create_run_dir(started)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        create_run_dir(other)


def test_a_run_dir_whose_config_json_could_not_be_written_is_reused(tmp_path: Path) -> None:
    """Found by review: a full disk at the run's first write (config.json) left only an
    empty checkpoints/; the hint said "start again with the same command", which then said
    "run directory ... is not empty"."""
    from dlbox.training.rundir import create_run_dir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert create_run_dir(run) == run
    (run / "checkpoints" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        create_run_dir(run)


def test_a_first_checkpoint_killed_mid_write_saved_nothing(fake_cifar_dir: Path,
                                                              tmp_path: Path) -> None:
    """Found by review: a SIGKILL during the first checkpoint's write left
    checkpoints/.last.pt.XXXXXXXX.tmp; training into the folder again said "continue it with
    --resume", and --resume said "no checkpoint ... start it again": each sent to the other."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "manifest.json").write_text("{}")
    (run / "checkpoints" / ".last.pt.k3j9x_2a.tmp").write_bytes(b"half a checkpoint")
    (run / ".metrics.json.a1b2c3d4.tmp").write_text("{")
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert not list(run.glob(".*.tmp"))  # the killed writes' leftovers are gone
    # a resume clears a later killed write's leftover too (the run's lock is held then)
    (run / "checkpoints" / ".last.pt.zzzzzzzz.tmp").write_bytes(b"x")
    with pytest.raises(RunDirError, match="already finished"):
        resume(run, progress=False)
    assert not (run / "checkpoints" / ".last.pt.zzzzzzzz.tmp").exists()


def test_metrics_behind_the_final_checkpoint_are_caught_up(fake_cifar_dir: Path,
                                                           tmp_path: Path) -> None:
    """Found by review: a kill (or a full disk) after the last epoch's checkpoint, before its
    metrics.json write, left metrics.json an epoch behind for good: --resume said "nothing to
    resume", and evaluate kept the old history and final."""
    from dlbox.training.loop import AlreadyFinished

    run = train(tiny_config(fake_cifar_dir, tmp_path / "run", epochs=2), progress=False,
                evaluate_at_end=False)
    whole = read_json(run / "metrics.json")
    behind = {**whole, "history": whole["history"][:1],
              "final": {**whole["final"], "epochs_completed": 1, "finished": False}}
    (run / "metrics.json").write_text(json.dumps(behind))
    with pytest.raises(AlreadyFinished) as done:
        resume(run, progress=False)
    assert "metrics.json lagged its checkpoint: its history is brought up to epoch 2" in (
        done.value.message)
    caught_up = read_json(run / "metrics.json")
    assert caught_up["history"] == whole["history"]
    assert caught_up["final"] == whole["final"]
    # evaluate does the same (a run whose metrics.json a full disk kept behind)
    from dlbox.training.evaluate import evaluate_run

    (run / "metrics.json").write_text(json.dumps(behind))
    evaluate_run(run, device="cpu", quiet=True)
    evaluated = read_json(run / "metrics.json")
    assert evaluated["history"] == whole["history"] and evaluated["final"]["finished"] is True
    assert evaluated["evaluation"]["epoch"] == 2


def test_resume_catches_up_metrics_behind_an_unfinished_checkpoint(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: docs/training.md says --resume writes metrics.json's history again
    from the checkpoint, and says so; only a finished run's was. An unfinished run whose
    metrics.json lagged (a SIGKILL between the two writes) kept the lag, silently, until its
    next epoch ended."""
    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=3), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 3)
    whole = read_json(run / "metrics.json")
    assert len(whole["history"]) == 2
    (run / "metrics.json").write_text(json.dumps({**whole, "history": whole["history"][:1]}))
    capsys.readouterr()
    with pytest.raises(TrainingStopped):
        resume(run, progress=False, evaluate_at_end=False, stop=lambda epoch, step: True)
    assert ("note: metrics.json lagged its checkpoint: its history is brought up to epoch 2"
            in capsys.readouterr().err)
    assert read_json(run / "metrics.json")["history"] == whole["history"]


def test_catching_up_metrics_never_stands_in_the_way(fake_cifar_dir: Path,
                                                     tmp_path: Path) -> None:
    """Found by review of the catch-up: with no metrics.json at all its test_images was
    null; a finished run with a damaged metrics.json made --resume fail (exit 1) instead of
    "nothing to resume"; and `evaluate --checkpoint GOOD` failed on a damaged last.pt, which
    only the catch-up read."""
    from dlbox.training.evaluate import evaluate_run
    from dlbox.training.loop import AlreadyFinished

    run = train(tiny_config(fake_cifar_dir, tmp_path / "run"), progress=False,
                evaluate_at_end=False)
    whole = read_json(run / "metrics.json")
    (run / "metrics.json").unlink()  # killed before the first metrics write
    with pytest.raises(AlreadyFinished, match="brought up to epoch 1"):
        resume(run, progress=False)
    assert read_json(run / "metrics.json")["final"]["test_images"] == 100 == (
        whole["final"]["test_images"])
    (run / "metrics.json").write_text('{"history": [1,')
    with pytest.raises(AlreadyFinished, match="nothing to resume"):
        resume(run, progress=False)
    # a good copy of the checkpoint, and last.pt damaged: the copy is evaluated
    (run / "metrics.json").write_text(json.dumps(whole))
    good = tmp_path / "good.pt"
    good.write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    (run / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 damaged")
    report = evaluate_run(run, device="cpu", quiet=True, checkpoint=str(good))
    assert report["checkpoint"] == str(good)


def test_an_evaluation_of_a_run_stopped_mid_epoch_says_so(fake_cifar_dir: Path,
                                                          tmp_path: Path) -> None:
    """Found by review: a run stopped in epoch 2 was evaluated as "epoch": 1, though its
    weights held the steps of epoch 2 too (and its accuracy was not epoch 1's)."""
    from dlbox.training.evaluate import evaluate_run

    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=2), progress=False,
              stop=lambda epoch, step: epoch == 2 and step == 3)
    report = evaluate_run(run, device="cpu", quiet=True)
    assert (report["epoch"], report["step_in_epoch"]) == (1, 3)
    # metrics.json's final says its test numbers are of those weights (review: it paired
    # them with "epochs_completed": 1 alone, as if they were epoch 1's)
    final = read_json(run / "metrics.json")["final"]
    assert (final["epochs_completed"], final.get("step_in_epoch"),
            final["test_accuracy"]) == (1, 3, report["test_accuracy"])
    # ... until the resumed run's end writes its own, or an evaluation of whole epochs
    resume(run, progress=False, evaluate_at_end=False)
    assert "step_in_epoch" not in read_json(run / "metrics.json")["final"]
    whole = tmp_path / "whole"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, whole, epochs=2), progress=False,
              stop=lambda epoch, step: epoch == 2 and step == 3)
    evaluate_run(whole, device="cpu", quiet=True)
    assert read_json(whole / "metrics.json")["final"]["step_in_epoch"] == 3
    resumed = resume(whole, progress=False, evaluate_at_end=False)
    assert "step_in_epoch" not in evaluate_run(resumed, device="cpu", quiet=True)
    assert "step_in_epoch" not in read_json(whole / "metrics.json")["final"]


def test_missing_data_leaves_no_run_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        train(tiny_config(tmp_path / "no-data", tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_default_run_dir_is_under_runs(fake_cifar_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = train(tiny_config(fake_cifar_dir, None, num_train=64, num_test=20),
                    progress=False, evaluate_at_end=False)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("-tiny")


def test_runs_started_together_each_get_their_own_default_run_dir(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by hand: two `dlbox train` without --run-dir started in the same second (a sweep
    started with `&`) picked the same runs/<time>-<model>, and all but one failed with `a
    dlbox run is training in ... right now; pass another --run-dir`."""
    import threading

    monkeypatch.chdir(tmp_path)
    start = threading.Barrier(3)
    made: list[Path] = []
    failed: list[BaseException] = []

    def one_run() -> None:
        start.wait()
        try:
            made.append(train(tiny_config(fake_cifar_dir, None, num_train=64, num_test=20),
                              progress=False, evaluate_at_end=False))
        except BaseException as error:  # noqa: BLE001 - reported below
            failed.append(error)

    runs = [threading.Thread(target=one_run) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert not failed, failed
    assert len(set(made)) == 3 and all(run.parent == tmp_path / "runs" for run in made)
    for run in made:
        assert read_json(run / "config.json")["run_dir"] == str(run)
        assert load_checkpoint(run / "checkpoints" / "last.pt")["finished"]


def test_the_generic_loop_cuts_out_a_square_filled_with_the_mean() -> None:
    config = TrainConfig(model="tiny", crop_padding=0, flip=False, cutout=5)
    images = torch.zeros(6, 3, 32, 32, dtype=torch.uint8)
    out = augment(images, config, torch.Generator().manual_seed(0))
    assert int((out[:, 0] != 0).sum()) == 6 * 25
    assert out[:, 0].max() == round(255 * CIFAR10_MEAN[0])
    assert torch.equal(augment(images, config.replace(cutout=0), torch.Generator()), images)
    with pytest.raises(UsageError, match="cutout"):
        TrainConfig(model="tiny", cutout=33)


def _stopped_in_epoch_2(data_dir: Path, run: Path) -> Path:
    """A 2-epoch tiny run stopped at step 2 of its first epoch (no metrics.json yet): a run
    to resume."""
    with pytest.raises(TrainingStopped):
        train(tiny_config(data_dir, run, epochs=2), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 1 and step == 2)
    return run


def test_resume_on_its_own_data_changed_since_says_it_changed(tmp_path: Path) -> None:
    """Found by review: an image added to the run's own data folder gave "trained on 80
    training images, but DIR gives 81" and the hint "resume with the data it was trained
    on: --data DIR", the same folder."""
    import shutil

    from dlbox.data.synthetic import write_fake_image_folder

    data = tmp_path / "data"
    for split, seed in (("train", 0), ("test", 1)):
        write_fake_image_folder(data / split, per_class=8, classes=3, seed=seed)
    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(data, run, epochs=2, num_train=None, num_test=None, batch_size=4),
              progress=False, evaluate_at_end=False, stop=lambda epoch, step: step == 2)
    first = sorted((data / "train").rglob("*.png"))[0]
    shutil.copy(first, first.with_name("added.png"))
    with pytest.raises(RunDirError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message.endswith(f"was trained on 24 training images, but "
                                          f"{data.resolve()} gives 25")
    assert refused.value.hint == (f"the data in {data.resolve()} changed since the checkpoint: "
                                  "put it back as it was, or start a new run on it")


@pytest.mark.parametrize("change", ["swap_classes", "move_one"])
def test_resume_on_a_tree_whose_images_changed_under_the_same_counts_is_refused(
        tmp_path: Path, change: str) -> None:
    """Review: folders a and b swapped (every label wrong), or one image moved to another
    class, kept the class names and counts, and the run resumed on it without a word."""
    from dlbox.data.synthetic import write_fake_image_folder

    data = tmp_path / "data"
    for split, seed in (("train", 0), ("test", 1)):
        write_fake_image_folder(data / split, per_class=8, classes=3, seed=seed)
    run = tmp_path / "run"
    config = tiny_config(data, run, epochs=2, num_train=None, num_test=None, batch_size=4)
    with pytest.raises(TrainingStopped):
        train(config, progress=False, evaluate_at_end=False, stop=lambda epoch, step: step == 2)
    first, second = sorted(p.name for p in (data / "train").iterdir())[:2]
    if change == "swap_classes":
        for split in ("train", "test"):
            (data / split / first).rename(data / split / "swap")
            (data / split / second).rename(data / split / first)
            (data / split / "swap").rename(data / split / second)
    else:
        moved = sorted((data / "train" / first).iterdir())[0]
        moved.rename(data / "train" / second / f"zz-{moved.name}")
    with pytest.raises(RunDirError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert refused.value.message.endswith(
        f"{data.resolve()} holds other images or labels than the run was trained on, with "
        "the same classes and counts"), refused.value.message
    assert refused.value.hint == (f"the data in {data.resolve()} changed since the checkpoint: "
                                  "put it back as it was, or start a new run on it")


def test_resume_on_a_tree_whose_class_names_changed_unicode_form_says_so(
        tmp_path: Path) -> None:
    """Review: class folders renamed from café composed (NFC) to decomposed (NFD, as macOS
    writes names) gave "trained on 3 classes (..., café), but DIR has 3 (..., café)", two
    lists that read the same; evaluate already named the form and the convmv fix."""
    import unicodedata

    from dlbox.data.synthetic import write_fake_image_folder

    data = tmp_path / "data"
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for split, seed in (("train", 0), ("test", 1)):
        write_fake_image_folder(data / split, per_class=8, classes=3, seed=seed)
        (data / split / "class_2").rename(data / split / nfc)
    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(data, run, epochs=2, num_train=None, num_test=None, batch_size=4),
              progress=False, evaluate_at_end=False, stop=lambda epoch, step: step == 2)
    for split in ("train", "test"):
        (data / split / nfc).rename(data / split / nfd)
    with pytest.raises(DataError) as refused:
        resume(run, progress=False, evaluate_at_end=False)
    assert "in another Unicode form than the run" in refused.value.message, refused.value.message
    assert "convmv" in (refused.value.hint or "")


def test_resume_on_other_data_names_its_own_quoted(fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Found by the re-check: the hint's `--data DIR` was not quoted; pasted, a data dir with
    a space in its name broke it."""
    import shutil

    from dlbox.data.synthetic import write_fake_cifar10

    spaced = tmp_path / "my data"
    shutil.copytree(fake_cifar_dir, spaced)
    run = _stopped_in_epoch_2(spaced, tmp_path / "run")
    fewer = tmp_path / "fewer"
    write_fake_cifar10(fewer, n_train=200, n_test=100, seed=5)
    with pytest.raises(RunDirError) as error:
        resume(run, data_dir=fewer, progress=False, evaluate_at_end=False)
    assert error.value.hint == f"resume with the data it was trained on: --data '{spaced}'"


def test_resume_refuses_other_data_before_touching_the_run(fake_cifar_dir: Path,
                                                           tmp_path: Path) -> None:
    from dlbox.data.synthetic import write_fake_cifar10, write_fake_image_folder

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    before = {name: (run / name).read_bytes() for name in ("config.json", "manifest.json")}

    fewer = tmp_path / "fewer"  # the same 10 classes, 200 training images instead of 320
    write_fake_cifar10(fewer, n_train=200, n_test=100, seed=5)
    with pytest.raises(RunDirError, match="trained on 320 training images") as error:
        resume(run, data_dir=fewer, progress=False, evaluate_at_end=False)
    assert f"--data {fake_cifar_dir.resolve()}" in (error.value.hint or "")
    # config.json's data_dir edited to it (review: the hint then named the edited folder)
    import json

    kept = (run / "config.json").read_text()
    (run / "config.json").write_text(json.dumps({**json.loads(kept), "data_dir": str(fewer)}))
    with pytest.raises(RunDirError, match="trained on 320 training images") as edited:
        resume(run, progress=False, evaluate_at_end=False)
    assert f"--data {fake_cifar_dir.resolve()}" in (edited.value.hint or "")
    (run / "config.json").write_text(kept)

    three = tmp_path / "three"  # an image tree of 3 classes
    for split in ("train", "test"):
        write_fake_image_folder(three / split, per_class=120, classes=3, seed=1)
    with pytest.raises(RunDirError, match="trained on 10 classes"):
        resume(run, data_dir=three, progress=False, evaluate_at_end=False)
    # nothing in the run dir changed: a plain resume still works
    assert before == {name: (run / name).read_bytes() for name in before}
    resume(run, progress=False, evaluate_at_end=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["finished"]


def test_resume_refuses_weights_that_do_not_fit_in_one_line(fake_cifar_dir: Path,
                                                            tmp_path: Path) -> None:
    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(7, 7)  # a shape no tiny net has
    torch.save(state, path)
    config_before = (run / "config.json").read_bytes()
    with pytest.raises(RunDirError, match="tiny") as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert "\n" not in error.value.message
    assert (run / "config.json").read_bytes() == config_before


@pytest.mark.parametrize("key, damage, part", [
    ("optimizer", None, "optimizer"),
    ("optimizer", {"state": {}, "param_groups": []}, "optimizer"),
    ("scheduler", None, "schedule"),
    ("rng", None, "random state"),
    ("epoch_partial", {"x": 1}, "counters"),
    ("scaler", [1], "scaler"),
    ("epoch_perm", torch.zeros(3, 3), "order"),
    # Found by hand: these passed the rehearsal, then crashed after a whole epoch of
    # training (the history), or resumed with nonsense counts (the others).
    ("history", "x", "history: it is str"),
    ("history", [1, 2], "history: an entry is int"),
    ("epoch_partial", {"loss": 1.0}, "counters"),
    ("step_in_epoch", 10**6, "counters: step_in_epoch 1000000 is outside 0..9"),
    ("step_in_epoch", -1, "counters"),
    ("epoch_perm", torch.arange(5), "order: it is not an order of the 320"),
    ("epoch_perm", torch.full((320,), 7), "order"),
])
def test_resume_refuses_a_damaged_checkpoint_part_before_writing(
        fake_cifar_dir: Path, tmp_path: Path, key: str, damage: object, part: str) -> None:
    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    state[key] = damage
    torch.save(state, path)
    before = {name: (run / name).read_bytes() for name in ("config.json", "manifest.json")}
    with pytest.raises(RunDirError, match=f"is damaged \\(.*{part}") as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert "\n" not in error.value.message
    assert before == {name: (run / name).read_bytes() for name in before}  # nothing written


@pytest.mark.parametrize("text, problem", [('{"history": [', "is not valid JSON"),
                                           ("[]", "does not hold a JSON object"),
                                           ('{"history": 3}', '"history" is not a list')])
def test_resume_refuses_a_damaged_metrics_json_before_training(
        fake_cifar_dir: Path, tmp_path: Path, text: str, problem: str) -> None:
    """Found by hand: resume trained a whole epoch, saved its checkpoint, then failed to read
    metrics.json with `unexpected JSONDecodeError ... please report it` (exit 70)."""
    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    metrics = run / "metrics.json"
    metrics.write_text(text)
    before = {name: (run / name).read_bytes()
              for name in ("config.json", "manifest.json", "checkpoints/last.pt")}
    with pytest.raises(RunDirError, match=problem) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert f"delete {metrics}" in (error.value.hint or "")
    assert before == {name: (run / name).read_bytes() for name in before}  # nothing written
    metrics.unlink()  # as the hint says: the checkpoint's history writes it again
    resume(run, progress=False, evaluate_at_end=False)
    assert [entry["epoch"] for entry in read_json(metrics)["history"]] == [1, 2]


@pytest.mark.parametrize("changes, problem", [
    ({"model": "vgg99"}, "names a model this dlbox cannot build (unknown model 'vgg99')"),
    # a setting the model lacks is an edit of its model_kwargs, named as such (review 7)
    ({"model_kwargs": {"depth": 3}}, "says model_kwargs {\"depth\": 3}, but the run's "
                                     "checkpoint was trained with {}: a resumed run keeps "
                                     "its settings"),
])
def test_resume_names_the_config_json_that_names_an_unknown_model(
        fake_cifar_dir: Path, tmp_path: Path, changes: dict, problem: str) -> None:
    """Found by hand: resume reported `error: unknown model 'vgg99'` with the hint `choose
    one of: ...` and exit 2, as if the user had passed --model; the model comes from the
    run's config.json, which `dlbox evaluate` names in the same case."""
    import json

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    config = run / "config.json"
    config.write_text(json.dumps({**read_json(config), **changes}))
    manifest = (run / "manifest.json").read_bytes()
    with pytest.raises(RunDirError) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert not isinstance(error.value, UsageError)
    assert error.value.message == f"{config} {problem}"
    assert (run / "manifest.json").read_bytes() == manifest


@pytest.mark.parametrize("text, problem", [("garbage", "is not valid JSON"),
                                           ("[1]", "does not hold a JSON object"),
                                           ('{"resumed": 5}', '"resumed" is not a list')])
def test_resume_refuses_a_damaged_manifest_json_before_writing(
        fake_cifar_dir: Path, tmp_path: Path, text: str, problem: str) -> None:
    """Found by hand: `unexpected JSONDecodeError` / `AttributeError` (exit 70)."""
    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    manifest = run / "manifest.json"
    manifest.write_text(text)
    config = (run / "config.json").read_bytes()
    with pytest.raises(RunDirError, match=problem) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert f"restore {manifest}, or delete it" in (error.value.hint or "")
    assert manifest.read_text() == text and (run / "config.json").read_bytes() == config
    manifest.unlink()
    resume(run, progress=False, evaluate_at_end=False)
    assert len(read_json(manifest)["resumed"]) == 1


def test_a_failed_checkpoint_write_leaves_no_epoch_claimed(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk fails the checkpoint: metrics.json must not then claim the epoch (resume
    reads the checkpoint, and the hints read metrics.json)."""
    from dlbox.errors import FileWriteError
    from dlbox.training import loop

    def disk_full(path, state):  # type: ignore[no-untyped-def]
        raise FileWriteError(path, "No space left on device")

    monkeypatch.setattr(loop, "save_checkpoint", disk_full)
    with pytest.raises(FileWriteError):
        train(tiny_config(fake_cifar_dir, tmp_path / "run"), progress=False,
              evaluate_at_end=False)
    metrics = tmp_path / "run" / "metrics.json"
    assert not metrics.exists() or not read_json(metrics).get("history")


def test_a_diverged_run_stops_with_a_hint_and_saves_no_nan_state(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    from dlbox.errors import DlboxError

    run = tmp_path / "run"
    with pytest.raises(DlboxError, match="diverged in epoch 1") as error:
        train(tiny_config(fake_cifar_dir, run, lr=900.0, weight_decay=10.0), progress=False)
    assert "--lr 900" in (error.value.hint or "")
    assert not (run / "checkpoints" / "last.pt").exists()
    assert not (run / "predictions.csv").exists()  # no report of a 10 % NaN model
    # It saved nothing: the hint says its run dir may be named again, and it may
    assert f"--run-dir {run} may be reused, it saved nothing" in (error.value.hint or "")
    train(tiny_config(fake_cifar_dir, run, epochs=1), progress=False, evaluate_at_end=False)
    assert (run / "checkpoints" / "last.pt").is_file()


def test_nan_outputs_under_a_finite_loss_are_a_divergence_not_a_finished_run(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `--model resnet --lr 999` kept a finite training loss while every test output
    was NaN; the epoch's test pass read that as 10 %, the run was saved as finished, and
    evaluate then refused it ("did training diverge?") while resume said "nothing to
    resume". Which outputs go NaN is the model's business: one of epoch 2's is made so."""
    from dlbox.errors import DlboxError
    from dlbox.training import loop

    real = loop.network_logits
    calls = []

    def network_logits(*args, **kwargs):  # type: ignore[no-untyped-def]
        logits = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # epoch 2's test pass
            logits[3, 5] = float("nan")
        return logits

    monkeypatch.setattr(loop, "network_logits", network_logits)
    run = tmp_path / "run"
    with pytest.raises(DlboxError) as error:
        train(tiny_config(fake_cifar_dir, run, epochs=3), progress=False)
    assert error.value.message == (
        "training diverged in epoch 2: the model's outputs on the test images became NaN or "
        f"infinite (the epoch's state was not saved; {run} keeps the last one it saved)")
    assert "--lr" in (error.value.hint or "")
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and not saved["finished"]
    assert [entry["epoch"] for entry in read_json(run / "metrics.json")["history"]] == [1]
    assert not (run / "predictions.csv").exists()


@pytest.mark.parametrize("failure", ["diverged", "out of memory", "stopped"])
def test_a_default_run_dir_that_saved_nothing_is_removed_when_the_run_fails(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        failure: str) -> None:
    """Found by reading: without --run-dir, a run that diverged, ran out of memory or was
    stopped before its first save left runs/<time>-<model> behind with no checkpoint (the
    next run makes a new folder, so it was clutter that `evaluate` refuses). It is removed,
    and the message says so instead of offering it for reuse."""
    from dlbox.errors import DlboxError
    from dlbox.training import loop

    monkeypatch.chdir(tmp_path)
    config = tiny_config(fake_cifar_dir, None)  # type: ignore[arg-type]
    if failure == "diverged":
        config = config.replace(lr=900.0, weight_decay=10.0)
    elif failure == "out of memory":
        def no_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise MemoryError
        monkeypatch.setattr(loop, "_run", no_memory)
    with pytest.raises(DlboxError) as error:
        train(config, progress=False, stop=lambda epoch, step: failure == "stopped")
    runs = tmp_path / "runs"
    left = list(runs.iterdir()) if runs.exists() else []  # runs/ goes too, left empty
    if failure == "stopped":  # the generic loop saves the step it stopped at: kept to resume
        assert isinstance(error.value, loop.TrainingStopped) and error.value.resumable
        assert [p.name for p in (left[0] / "checkpoints").iterdir()] == ["last.pt"]
        return
    assert not runs.exists()
    if failure == "diverged":
        assert re.fullmatch(
            r"training diverged in epoch 1: the training loss became NaN or infinite, before "
            rf"anything was saved \(its folder {re.escape(str(tmp_path))}/runs/\d{{8}}-\d{{6}}-"
            r"tiny is removed\)", error.value.message), error.value.message
        assert error.value.hint == "train again with a lower learning rate (this run's: --lr 900)"
    else:
        assert error.value.message.startswith("out of memory on cpu")
        assert "--run-dir" not in (error.value.hint or "")


def test_a_run_dir_in_use_is_refused_even_when_it_has_saved_nothing_yet(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """A live run in its first epoch looks like one that saved nothing; its lock tells them
    apart, so a second `train --run-dir` (or `--resume`) into it is refused meanwhile."""
    from dlbox.training.rundir import run_lock

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text('{"model": "tiny"}')
    (run / "manifest.json").write_text("{}")
    with run_lock(run):  # the first run, still training
        with pytest.raises(RunDirError, match="training in .* right now"):
            train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)
        with pytest.raises(RunDirError, match="right now") as busy:
            resume(run, progress=False, evaluate_at_end=False)
        # --run-dir cannot be given with --resume: the hint said to pass another one
        assert "--run-dir" not in (busy.value.hint or "")
        assert (run / "config.json").read_text() == '{"model": "tiny"}'  # untouched
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)  # it ended
    assert (run / "checkpoints" / "last.pt").is_file()
    # The lock is the folder's own: no lock file among the run's files.
    assert sorted(path.name for path in run.iterdir()) == [
        "checkpoints", "config.json", "manifest.json", "metrics.json"]


def test_the_trainers_restore_functions_report_a_damaged_part_themselves(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """The rehearsal before resume and the trainer call the same restore function, so a
    part that the rehearsal lets through cannot crash the trainer with a traceback."""
    from dlbox.training.loop import restore_training
    from dlbox.training.speedrun import restore_speedrun

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    model = torch.nn.Linear(2, 2)

    def objects() -> tuple:  # type: ignore[type-arg]
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        return optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False), \
            torch.Generator()

    with pytest.raises(RunDirError, match=r"last.pt is damaged \(the optimizer state"):
        restore_training(state, path, *objects())  # another model's optimizer state
    restored = restore_training({**state, "optimizer": objects()[0].state_dict(),
                                 "scheduler": objects()[1].state_dict()}, path, *objects())
    assert (restored.epoch, restored.step_in_epoch) == (state["epoch"], state["step_in_epoch"])
    with pytest.raises(RunDirError, match=r"is damaged \(the speedrun state: it is list"):
        restore_speedrun([1], path, [], torch.Generator(), torch.device("cpu"))


@pytest.mark.parametrize("failure", ["EACCES", "EIO"])
@pytest.mark.parametrize("name, module", [("config.json", "dlbox.training.checkpoint"),
                                          ("metrics.json", "dlbox.training.evaluate"),
                                          ("manifest.json", "dlbox.training.loop")])
def test_resume_says_why_a_run_file_it_cannot_read_was_not_read(
        fake_cifar_dir: Path, tmp_path: Path, failing_read_json: Any, name: str, module: str,
        failure: str) -> None:
    """Found by review: an unreadable metrics.json (a run made by another user, chmod 000)
    was "not valid JSON" with the hint "delete it", and manifest.json "restore it, or delete
    it"; a read error of the disk (EIO) was "not valid JSON ([Errno 5] Input/output error)"
    with "it was edited or damaged; train again". The file is intact, or may be: the fix is
    its permissions, or the disk, and the run is left as it was. (Both errors are simulated:
    root reads any file, and a healthy disk does not fail; test_run_files_robustness runs a
    real refusal.)"""
    import errno

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    path = run / name
    if not path.exists():
        path.write_text('{"history": []}')
    reason = {"EACCES": "Permission denied", "EIO": "Input/output error"}[failure]
    failing_read_json(module, path, OSError(getattr(errno, failure), reason, str(path)))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RunDirError) as error:
        resume(run, progress=False, evaluate_at_end=False)
    hint = error.value.hint or ""
    if failure == "EACCES":
        assert error.value.message == f"cannot read {path}: permission denied"
        assert f"chmod u+r {path}" in hint
    else:
        assert error.value.message == f"cannot read {path} (Input/output error)"
        assert "check the disk" in hint and "nothing was changed" in hint
    for wrong in ("damaged", "delete", "train again", "valid JSON"):
        assert wrong not in f"{error.value.message} {hint}"
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}  # untouched


def test_resume_refuses_a_folder_in_place_of_manifest_json_before_it_trains(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """A folder named manifest.json was taken for no manifest: resume trained on until its
    first write of the manifest failed. It is refused first, the run left as it was."""
    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    (run / "manifest.json").unlink()
    (run / "manifest.json").mkdir()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RunDirError) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert error.value.message == f"cannot read {run / 'manifest.json'}: it is a folder, not a file"
    assert "move the folder" in (error.value.hint or "")
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_commands_in_stop_hints_quote_a_run_dir_with_a_space() -> None:
    """Found by review: `dlbox train --resume /tmp/my run` pasted as two arguments."""
    from dlbox.training.loop import TrainingStopped

    stopped = TrainingStopped(Path("/tmp/my run"), "interrupted", 130)
    assert stopped.hint == "continue with: dlbox train --resume '/tmp/my run'"
    assert stopped.report_lines()[1] == "resume with: dlbox train --resume '/tmp/my run'"


def test_a_container_runs_data_dir_falls_back_to_dlbox_data_on_the_host(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a run trained in `dlbox image run` records the container's /data;
    on the host, resume and evaluate said "no CIFAR-10 data found in /data" and offered
    `dlbox data fetch --data /data`, though $DLBOX_DATA held the data (docs/image.md says
    the run resumes on the host)."""
    from dlbox.training.evaluate import evaluate_run

    container_data = Path("/data")  # where `dlbox image run` mounts the data
    if container_data.exists():
        pytest.skip("this machine has a /data of its own")
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run_dir, epochs=2), progress=False,
              evaluate_at_end=False, stop=lambda epoch, step: epoch == 1 and step == 2)
    config = read_json(run_dir / "config.json")
    (run_dir / "config.json").write_text(json.dumps({**config,
                                                     "data_dir": str(container_data)}))
    monkeypatch.setenv("DLBOX_DATA", str(fake_cifar_dir))
    capsys.readouterr()
    resume(run_dir, progress=False, evaluate_at_end=False)
    note = (f"note: the run's data dir {container_data} (from its config.json) is a "
            f"container's, not on this machine; reading {fake_cifar_dir.resolve()} "
            "($DLBOX_DATA) instead (--data DIR to choose)")
    assert note in capsys.readouterr().err
    assert read_json(run_dir / "config.json")["data_dir"] == str(fake_cifar_dir.resolve())
    (run_dir / "config.json").write_text(json.dumps({**read_json(run_dir / "config.json"),
                                                     "data_dir": str(container_data)}))
    assert evaluate_run(run_dir, device="cpu", quiet=True)["test_accuracy"] is not None
    assert note in capsys.readouterr().err
    # `image run --data ~/datasets`, `train --data /data/cifar10`: ~/datasets/cifar10
    import shutil

    datasets = tmp_path / "datasets"
    shutil.copytree(fake_cifar_dir, datasets / "cifar10")
    monkeypatch.setenv("DLBOX_DATA", str(datasets))
    (run_dir / "config.json").write_text(json.dumps({**read_json(run_dir / "config.json"),
                                                     "data_dir": "/data/cifar10"}))
    assert evaluate_run(run_dir, device="cpu", quiet=True)["test_accuracy"] is not None
    assert f"reading {datasets / 'cifar10'} ($DLBOX_DATA)" in capsys.readouterr().err
    # $DLBOX_DATA without data: both named, and the fix is a fetch on this machine (review:
    # the error named /data alone, and its hint was `dlbox data fetch --data /data`)
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataError) as error:
        evaluate_run(run_dir, device="cpu", quiet=True)
    assert error.value.message == (
        "no data for this run: it was trained in a container on /data/cifar10 (from its "
        f"config.json), which holds no data on this machine, nor does {tmp_path / 'empty'} "
        "($DLBOX_DATA)")
    assert (error.value.hint or "").startswith("fetch CIFAR-10 here: `dlbox data fetch` ")
    assert "--data /data" not in (error.value.hint or "")


def test_a_new_run_into_a_folder_that_is_training_is_told_so(tmp_path: Path) -> None:
    """Found by review: `dlbox train --run-dir X` while X trained said "already holds a run:
    continue it with --resume", which was then refused: it is training right now."""
    import subprocess
    import sys

    from dlbox.training.rundir import create_run_dir

    run = tmp_path / "busy"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib\nfrom dlbox.training.rundir import run_lock\n"
         f"with run_lock(pathlib.Path({str(run)!r})):\n    print('held', flush=True)\n"
         "    sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError) as caught:
            create_run_dir(run)
        assert caught.value.message == f"a dlbox run is training in {run} right now"
        assert caught.value.hint == "pass another --run-dir: this one holds a run"
    finally:
        holder.communicate("", timeout=30)
    with pytest.raises(RunDirError, match="already holds a run"):
        create_run_dir(run)  # no longer training


def test_resume_refuses_a_config_json_edited_since_the_checkpoint(fake_cifar_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Found by review: config.json edited to epochs 3 and batch_size 8 resumed at the
    saved step, counted in batches of 4, so the epoch's next images were skipped; a finished
    run edited to more epochs "already finished all 3 epochs" it never trained."""
    import json

    from dlbox.training.loop import AlreadyFinished

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    config = run / "config.json"
    kept = config.read_text()
    batch = read_json(config)["batch_size"]
    config.write_text(json.dumps({**read_json(config), "batch_size": batch * 2, "device": "cpu"}))
    before = {name: (run / name).read_bytes() for name in ("config.json", "manifest.json")}
    with pytest.raises(RunDirError) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert error.value.message == (f"{config} says batch_size {batch * 2}, but the run's "
                                   f"checkpoint was trained with {batch}: a resumed run keeps "
                                   "its settings")
    assert error.value.hint == (f"put batch_size back to {batch} in config.json to resume; for "
                                "other settings, start a new run with them")
    assert before == {name: (run / name).read_bytes() for name in before}  # nothing written
    config.write_text(kept)
    resume(run, progress=False, evaluate_at_end=False)  # as it was: resumed, and finished
    config.write_text(json.dumps({**read_json(config), "epochs": 3}))
    with pytest.raises(RunDirError, match="says epochs 3, but the run's checkpoint was "
                                          "trained with 2") as finished:
        resume(run, progress=False, evaluate_at_end=False)
    assert finished.value.hint == (  # not "put it back to resume": there is nothing to resume
        f"the run finished: put epochs back to 2 in config.json, and evaluate it (dlbox "
        f"evaluate {run}) or start a new run with the settings you want")
    config.write_text(json.dumps({**read_json(config), "epochs": 2, "device": "cpu"}))
    with pytest.raises(AlreadyFinished):  # the device may change
        resume(run, progress=False, evaluate_at_end=False)
    # the model, edited to another dlbox knows: named as the edit (review: "does not fit
    # model 'tutorial' ... or is damaged; train again"), by resume and by evaluate
    config.write_text(json.dumps({**read_json(config), "model": "tutorial"}))
    with pytest.raises(RunDirError, match="says model \"tutorial\", but the run's checkpoint "
                                          "was trained with \"tiny\""):
        resume(run, progress=False, evaluate_at_end=False)
    from dlbox.training.evaluate import evaluate_run

    with pytest.raises(RunDirError) as evaluated:
        evaluate_run(run, device="cpu", quiet=True)
    assert evaluated.value.message == (f"{config} says model \"tutorial\", but the run's "
                                       f"checkpoint {run / 'checkpoints' / 'last.pt'} was "
                                       "trained with \"tiny\"")  # as resume says it
    assert evaluated.value.hint == 'put model back to "tiny" in config.json'


@pytest.mark.parametrize("name, edited", [("channels_last", True), ("amp", False),
                                           ("tta", True)])
def test_resume_refuses_an_edited_layout_precision_or_tta(fake_cifar_dir: Path, tmp_path: Path,
                                                          name: str, edited: object) -> None:
    """Review: config.json edited to channels_last true (or amp false, tta true) resumed with
    no word, though --channels-last / --no-amp with --resume are refused: the weights then
    differed from an uninterrupted run's, and tta mixed plain and TTA accuracies in one
    history."""
    import json

    run = _stopped_in_epoch_2(fake_cifar_dir, tmp_path / "run")
    config = run / "config.json"
    saved = read_json(config)[name]
    config.write_text(json.dumps({**read_json(config), name: edited}))
    with pytest.raises(RunDirError) as error:
        resume(run, progress=False, evaluate_at_end=False)
    assert error.value.message.startswith(f"{config} says {name} {json.dumps(edited)}, but "), \
        error.value.message
    assert f"put {name} back to {json.dumps(saved)}" in (error.value.hint or "")


@pytest.mark.parametrize("name, edited", [("mean", [0.0, 0.0, 0.0]),
                                           ("std", [0.01, 0.01, 0.01])])
def test_evaluate_and_predict_refuse_a_config_json_whose_preprocessing_was_edited(
        fake_cifar_dir: Path, tmp_path: Path, name: str, edited: list[float]) -> None:
    """Found by review: config.json's mean or std, edited after training, changed every
    evaluate and predict result silently (20 % became 9.4 %, written over metrics.json's
    final). The checkpoint was trained with its own; the edit is named, as resume names it."""
    import json

    from dlbox.training.checkpoint import load_model_from_run
    from dlbox.training.evaluate import evaluate_run

    run = tmp_path / "run"
    train(tiny_config(fake_cifar_dir, run), progress=False, evaluate_at_end=False)
    config = run / "config.json"
    saved = read_json(config)[name]
    config.write_text(json.dumps({**read_json(config), name: edited}))
    for load in (lambda: evaluate_run(run, device="cpu", quiet=True),
                 lambda: load_model_from_run(run, device="cpu")):
        with pytest.raises(RunDirError) as refused:
            load()
        assert refused.value.message == (
            f"{config} says {name} {json.dumps(edited)}, but the run's checkpoint "
            f"{run / 'checkpoints' / 'last.pt'} was trained with {json.dumps(saved)}")
        assert refused.value.hint == f"put {name} back to {json.dumps(saved)} in config.json"
    config.write_text(json.dumps({**read_json(config), name: saved}))
    assert load_model_from_run(run, device="cpu").config.mean == tuple(read_json(config)["mean"])


def test_the_stop_callback_hears_of_the_step_a_signal_stops_at(fake_cifar_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Found by review: once Ctrl-C had set the stop flag, the step it stopped at was not
    told to the callback, so the notebook's bar stayed a step behind where training saved."""
    import os
    import signal

    from dlbox.training.checkpoint import load_checkpoint

    heard: list[tuple[int, int]] = []

    def callback(epoch: int, step: int) -> bool:
        heard.append((epoch, step))
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the stop button, as step 2 is told
        return False

    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=2), progress=False,
              evaluate_at_end=False, stop=callback)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert heard[-1] == (state["epoch"] + 1, state["step_in_epoch"]) == (1, 2)


def test_the_trainers_evaluation_names_paths_as_dlbox_evaluate_does(fake_cifar_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Found by review: the trainer's final evaluation wrote a run dir whose name is not UTF-8
    as lone surrogates ("\\udcfe", which jq turns into U+FFFD: the path is lost), and relative
    as given, where `dlbox evaluate` writes it absolute and as $'...' (text.json_path)."""
    import os

    from dlbox.training.evaluate import evaluate_run

    run = tmp_path / os.fsdecode(b"r\xfeun")
    train(tiny_config(fake_cifar_dir, run), progress=False)
    raw = (run / "metrics.json").read_text(encoding="utf-8")
    trained = json.loads(raw)["evaluation"]
    assert "\\udc" not in json.dumps(trained), trained
    evaluated = evaluate_run(run, device="cpu", quiet=True)
    for key in ("run_dir", "checkpoint", "data"):
        assert trained[key] == evaluated[key], key
    assert trained["run_dir"] == f"$'{tmp_path}/r\\xfeun'"
    # still read as the evaluation of its last checkpoint (re-review: a SIGTERM as it ended
    # was then told as a stop, exit 143, not as the finished run it was)
    from dlbox.training.rundir import run_all_written

    assert run_all_written(run, True)


def test_evaluating_a_run_stopped_in_its_first_epoch_says_it_is_unfinished(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        held_elsewhere: Callable[[Path, str], Callable[[], None]]) -> None:
    """Found by review: `dlbox evaluate` of a run stopped in epoch 1 of 2 printed its report
    as a finished run's, and the metrics.json it made (the trainer had written none) had no
    epochs_completed or finished in its final."""
    from dlbox.cli import main
    from dlbox.training.evaluate import evaluate_run

    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny_config(fake_cifar_dir, run, epochs=2), progress=False,
              stop=lambda epoch, step: epoch == 1 and step == 3)
    assert not (run / "metrics.json").exists()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    assert (f"note: {run} stopped in epoch 1 of 2 (after 3 of its steps): these are its "
            f"weights so far; `dlbox train --resume {run}` finishes it"
            in capsys.readouterr().err.splitlines())
    final = read_json(run / "metrics.json")["final"]
    assert (final["epochs_completed"], final["finished"], final["step_in_epoch"]) == (0, False, 3)
    # an --output evaluation while the run trains (its lock held by another process): not
    # "stopped", and no --resume (re-review: that was refused, the run training)
    release = held_elsewhere(run, "training")
    assert main(["evaluate", str(run), "--device", "cpu", "--output", str(tmp_path / "now")]) == 0
    assert (f"note: {run} is training: these are the weights it saved in epoch 1 of 2 "
            "(after 3 of its steps), its last checkpoint so far"
            in capsys.readouterr().err.splitlines())
    release()
    # ... but one another evaluation holds (its checkpoints/ lock too) is not training
    release = held_elsewhere(run, "evaluating")
    assert main(["evaluate", str(run), "--device", "cpu", "--output",
                 str(tmp_path / "now2")]) == 0
    assert f"note: {run} stopped in epoch 1 of 2" in capsys.readouterr().err
    release()
    # the Python API (the notebook's test cell, which says it in its own words): no note
    evaluate_run(run, device="cpu", quiet=True)
    assert "note:" not in capsys.readouterr().err
    # a finished run: no note
    whole = train(tiny_config(fake_cifar_dir, tmp_path / "whole"), progress=False,
                  evaluate_at_end=False)
    capsys.readouterr()
    assert main(["evaluate", str(whole), "--device", "cpu"]) == 0
    assert "note:" not in capsys.readouterr().err
