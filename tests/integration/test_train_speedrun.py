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
    assert "test accuracy:" in out and "with TTA" in out
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
    # The end-of-training evaluation uses the same 6-view TTA as the trainer.
    assert final["test_accuracy"] == pytest.approx(final["test_accuracy_tta"], abs=0.021)
    with open(run_dir / "predictions.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 100
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["finished"] and state["trainer"] == "speedrun" and state["classes"]
    # A finished run cannot be resumed, and `dlbox evaluate` reloads it.
    assert main(["train", "--resume", str(run_dir)]) != EXIT_OK
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == EXIT_OK
