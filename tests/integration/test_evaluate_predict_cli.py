"""`dlbox evaluate` and `dlbox predict` on a real run directory made by `dlbox train`.

One tiny run (model `tiny`, 1 epoch, the 500/100-image fake CIFAR-10) is trained once per
session; each test works on its own copy when it writes into the run dir.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlbox.cli import main
from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from dlbox.fileio import read_json

TEST_IMAGES = 100  # the fake_cifar_dir test split


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, fake_cifar_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["train", "--model", "tiny", "--epochs", "1", "--device", "cpu",
                 "--data", str(fake_cifar_dir), "--run-dir", str(run_dir)])
    assert code == EXIT_OK, "dlbox train failed; see its output above"
    return run_dir


@pytest.fixture()
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    for name in ("predictions.csv", "confusion_matrix.json", "confusion_matrix.png"):
        (copy / name).unlink(missing_ok=True)
    return copy


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("user_images")
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "photo.jpg", quality=90)
    Image.fromarray(photo).convert("RGBA").save(folder / "icon.png")
    Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(folder / "deep.png")
    (folder / "readme.png").write_text("not an image\n")
    data = (folder / "photo.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    return {path.stem: path for path in folder.iterdir()}


# --- evaluate -----------------------------------------------------------------------------


def test_evaluate_writes_reports_and_prints_tutorial_lines(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history_before = read_json(run_copy / "metrics.json").get("history")
    assert main(["evaluate", str(run_copy)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"Accuracy of the network on the {TEST_IMAGES} test images: ")
    per_class = [line for line in out if line.startswith("Accuracy for class: ")]
    assert len(per_class) == 10 and "Accuracy for class: airplane is " in per_class[0]

    with open(run_copy / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == TEST_IMAGES
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in CIFAR10_CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert float(row["confidence"]) == max(probs)
        assert row["predicted_label"] == CIFAR10_CLASSES[probs.index(max(probs))]

    matrix = read_json(run_copy / "confusion_matrix.json")
    metrics = read_json(run_copy / "metrics.json")
    assert metrics.get("history") == history_before  # the trainer's history survives
    final = metrics["final"]
    correct = sum(r["true_label"] == r["predicted_label"] for r in rows)
    assert final["test_images"] == TEST_IMAGES and final["test_correct"] == correct
    assert sum(matrix["matrix"][i][i] for i in range(10)) == correct
    for i, name in enumerate(CIFAR10_CLASSES):
        total = sum(matrix["matrix"][i])
        expected = matrix["matrix"][i][i] / total if total else None
        assert final["per_class_accuracy"][name] == pytest.approx(expected)
    assert out[0].endswith(f": {100 * correct // TEST_IMAGES} %")
    assert (run_copy / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_json_is_the_only_stdout(run_copy: Path) -> None:
    # A real process: nothing else (warnings, progress) may reach stdout.
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "evaluate", str(run_copy), "--json", "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "default"})
    assert result.returncode == EXIT_OK, result.stderr
    document = json.loads(result.stdout)
    assert document["test_images"] == TEST_IMAGES
    assert 0.0 <= document["test_accuracy"] <= 1.0
    assert set(document["per_class"]) == set(CIFAR10_CLASSES)
    assert (run_copy / "predictions.csv").is_file()


def test_evaluate_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "nope")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "error: run directory" in err and "does not exist" in err and "hint: " in err


def test_evaluate_run_without_checkpoint(run_copy: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(run_copy / "checkpoints")
    assert main(["evaluate", str(run_copy)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "error: " in err and "checkpoint" in err and "hint: " in err
    assert not (run_copy / "predictions.csv").exists()


def test_evaluate_a_checkpoint_the_run_lacks_lists_those_it_has(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_copy), "--checkpoint", "best"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "has no checkpoint best.pt" in err and "its checkpoints are: last" in err
    assert "--resume" not in err  # the run finished: resuming is not the fix


def test_evaluate_on_missing_data(run_copy: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_copy), "--data", str(tmp_path / "empty")]) == EXIT_ERROR
    assert "hint: " in capsys.readouterr().err
    assert not (run_copy / "predictions.csv").exists()


# --- predict ------------------------------------------------------------------------------


def test_predict_all_good(trained_run: Path, images: dict[str, Path],
                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = [images["photo"], images["icon"], images["deep"]]
    assert main(["predict", str(trained_run), *map(str, paths)]) == EXIT_OK
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3 and captured.err == ""
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"{path}: ")
        label = line.split(": ", 1)[1].split()[0]
        assert label in CIFAR10_CLASSES
        assert line.count(" %") == 3  # top-3 by default


def test_predict_json_and_top_k(trained_run: Path, images: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", str(trained_run), str(images["photo"]), "--top-k", "5", "--json"])
    assert code == EXIT_OK
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ok"] is True and entry["label"] in CIFAR10_CLASSES
    assert len(entry["top_k"]) == 5 and entry["top_k"][0]["label"] == entry["label"]


def test_predict_some_bad_files_exit_partial(trained_run: Path, images: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    paths = [images["readme"], images["photo"], images["cut"]]
    assert main(["predict", str(trained_run), *map(str, paths)]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{images['photo']}: ")
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {images['readme']}: not an image")
    assert errors[1].startswith(f"error: {images['cut']}: truncated")


def test_predict_all_bad_files_exit_error(trained_run: Path, images: dict[str, Path],
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = [images["readme"], tmp_path / "missing.png"]
    assert main(["predict", str(trained_run), *map(str, paths), "--json"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert [entry["ok"] for entry in json.loads(captured.out)] == [False, False]
    assert f"error: {tmp_path / 'missing.png'}: no such file" in captured.err


def test_predict_bad_arguments(trained_run: Path, tmp_path: Path, images: dict[str, Path],
                               capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(images["photo"])
    assert main(["predict", str(trained_run), photo, "--top-k", "0"]) == EXIT_USAGE
    assert main(["predict", str(tmp_path / "no_run"), photo]) == EXIT_ERROR
    assert "hint: " in capsys.readouterr().err
