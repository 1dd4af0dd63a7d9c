"""A speedrun killed after its last checkpoint keeps its timing result (review 10).

The speedrun's headline numbers (metrics.json's `speedrun` block and final's `time_seconds`
and `test_accuracy_tta`) were written in a separate write after the last epoch's checkpoint
and metrics: a SIGKILL between them lost them for good, since neither `--resume` of the
finished run nor evaluate's catch-up rebuilt them. The kill is stood in for by an exception
raised at that point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlbox.cli import main
from dlbox.errors import EXIT_OK
from dlbox.fileio import read_json

SUMMARY_KEYS = {"config", "accuracy", "tta_accuracy", "time_seconds", "train_seconds",
                "eval_seconds", "warmup_seconds", "images_per_second", "steps", "timer"}


class Killed(Exception):
    """Stands in for a SIGKILL."""


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dlbox.data.synthetic import write_fake_cifar10

    root = tmp_path_factory.mktemp("cifar-summary")
    write_fake_cifar10(root, n_train=200, n_test=50, seed=0)
    return root


def _train(data: Path, run_dir: Path) -> None:
    from dlbox.training.config import build_config
    from dlbox.training.loop import train

    train(build_config("speedrun", device="cpu", epochs=2, num_train=200, num_test=50,
                       threads=1, data_dir=str(data), run_dir=str(run_dir)),
          progress=False, evaluate_at_end=False)


def _assert_summary(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    assert [entry["epoch"] for entry in metrics["history"]] == [1, 2]
    summary = metrics.get("speedrun")
    assert isinstance(summary, dict) and set(summary) == SUMMARY_KEYS
    final = metrics["final"]
    assert final["finished"] and final["epochs_completed"] == 2
    assert final["time_seconds"] is not None and final["time_seconds"] > 0
    assert final["time_seconds"] == round(summary["time_seconds"], 3)
    assert summary["time_seconds"] == pytest.approx(
        summary["train_seconds"] + summary["eval_seconds"], abs=1e-3)
    assert final["test_accuracy_tta"] == summary["tta_accuracy"] is not None
    assert final["test_accuracy_plain"] == summary["accuracy"] is not None
    assert summary["steps"] == metrics["history"][-1]["steps"]
    assert summary["timer"] == "perf_counter"


@pytest.mark.parametrize("then", ["resume", "evaluate"])
def test_killed_between_the_last_checkpoint_and_its_metrics(
        tiny_cifar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str) -> None:
    """The last epoch's checkpoint is written, its metrics.json is not: the catch-up of
    `--resume` (nothing left to train) or of `dlbox evaluate` brings back the summary."""
    import dlbox.training.loop as loop

    write_metrics = loop._write_metrics

    def dies_when_finished(*args: Any, **kwargs: Any) -> None:
        if args[4]:  # finished: the last epoch's write
            raise Killed
        write_metrics(*args, **kwargs)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(loop, "_write_metrics", dies_when_finished)
    with pytest.raises(Killed):
        _train(tiny_cifar, run_dir)
    monkeypatch.undo()
    metrics = read_json(run_dir / "metrics.json")
    assert len(metrics["history"]) == 1 and "speedrun" not in metrics

    if then == "resume":
        assert main(["train", "--resume", str(run_dir)]) == EXIT_OK
    else:
        assert main(["evaluate", str(run_dir), "--device", "cpu"]) == EXIT_OK
    _assert_summary(run_dir)


def test_killed_after_the_trainer_returned(tiny_cifar: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed once the last epoch's checkpoint and metrics are written (the trainer has
    returned): the summary is already in metrics.json, and `--resume` and `dlbox evaluate`
    keep it."""
    import dlbox.training.speedrun as speedrun

    trainer = speedrun.train_speedrun

    def dies_after(*args: Any, **kwargs: Any) -> Any:
        trainer(*args, **kwargs)
        raise Killed

    run_dir = tmp_path / "run"
    monkeypatch.setattr(speedrun, "train_speedrun", dies_after)
    with pytest.raises(Killed):
        _train(tiny_cifar, run_dir)
    monkeypatch.undo()
    _assert_summary(run_dir)
    assert main(["train", "--resume", str(run_dir)]) == EXIT_OK
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == EXIT_OK
    _assert_summary(run_dir)
