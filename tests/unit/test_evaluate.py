"""Evaluation math, the model call, and the files an evaluation writes (tiny model, tiny data)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.data.dataset import ImageDataset
from dlbox.data.synthetic import make_synthetic_images
from dlbox.errors import DataError, DlboxError, RunDirError
from dlbox.fileio import read_json, write_json_atomic
from dlbox.training import evaluate as ev
from dlbox.training import report
from dlbox.training.evaluate import (
    compute_metrics,
    confusion_matrix,
    evaluate_model,
    evaluate_run,
    predict_logits,
    with_flip_tta,
    write_evaluation,
)

CLASSES = CIFAR10_CLASSES


class TinyNet(nn.Module):
    """Small enough to run 100 images in milliseconds; input float [B, 3, 32, 32]."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def model_fn_of(model: nn.Module):
    model.eval()
    return lambda images: model(images.float() / 255.0)


def small_dataset(count: int = 100, seed: int = 1) -> ImageDataset:
    images, labels = make_synthetic_images(count, seed)
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), CLASSES, "synthetic")


# --- confusion matrix and metrics ---------------------------------------------------------


def test_confusion_matrix_counts_true_rows_pred_columns() -> None:
    true = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(true, pred, 3)
    assert matrix.dtype == torch.int64
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_rejects_out_of_range_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="length"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_compute_metrics_known_values() -> None:
    true = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    m = compute_metrics(true, pred, ("a", "b", "c"), torch.tensor([0.5, 0.7, 0.9, 1.0, 0.4, 0.5]))
    assert (m["total"], m["correct"]) == (6, 4)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["mean_confidence"] == pytest.approx(4.0 / 6)
    assert m["per_class"]["a"] == {"total": 2, "correct": 1, "predicted": 2, "accuracy": 0.5}
    assert m["per_class"]["b"] == {"total": 1, "correct": 1, "predicted": 2, "accuracy": 1.0}
    assert m["per_class"]["c"]["accuracy"] == pytest.approx(2 / 3)


def test_class_without_test_images_has_no_accuracy() -> None:
    m = compute_metrics(torch.tensor([0, 0]), torch.tensor([0, 1]), ("a", "b"))
    assert m["per_class"]["b"] == {"total": 0, "correct": 0, "predicted": 1, "accuracy": None}
    assert m["mean_confidence"] is None
    empty = compute_metrics(torch.tensor([], dtype=torch.int64),
                            torch.tensor([], dtype=torch.int64), ("a",))
    assert empty["total"] == 0 and empty["accuracy"] is None


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), max_size=80))))
def test_per_class_numbers_agree_with_the_matrix(case) -> None:
    num_classes, pairs = case
    true = torch.tensor([t for t, _ in pairs], dtype=torch.int64)
    pred = torch.tensor([p for _, p in pairs], dtype=torch.int64)
    classes = tuple(f"c{i}" for i in range(num_classes))
    matrix = confusion_matrix(true, pred, num_classes)
    m = compute_metrics(true, pred, classes)
    assert int(matrix.sum()) == m["total"] == len(pairs)
    assert m["correct"] == int((true == pred).sum())
    assert sum(e["total"] for e in m["per_class"].values()) == m["total"]
    assert sum(e["predicted"] for e in m["per_class"].values()) == m["total"]
    for i, name in enumerate(classes):
        entry = m["per_class"][name]
        assert entry["total"] == int((true == i).sum()) == int(matrix[i].sum())
        assert entry["correct"] == int(((true == i) & (pred == i)).sum()) == int(matrix[i, i])
        assert entry["predicted"] == int(matrix[:, i].sum())
        if entry["total"]:
            assert entry["accuracy"] == pytest.approx(entry["correct"] / entry["total"])


# --- the model call ---------------------------------------------------------------------


def test_predict_logits_batches_give_the_same_answer() -> None:
    model_fn = model_fn_of(TinyNet())
    images = small_dataset(37).images
    whole = predict_logits(model_fn, images, batch_size=1000)
    pieces = predict_logits(model_fn, images, batch_size=8)
    assert whole.shape == (37, 10) and whole.dtype == torch.float32
    assert torch.allclose(whole, pieces, atol=1e-5)
    assert not whole.requires_grad


def test_predict_logits_sees_uint8_batches_of_at_most_batch_size() -> None:
    seen: list[tuple[torch.dtype, int]] = []

    def model_fn(images: torch.Tensor) -> torch.Tensor:
        seen.append((images.dtype, images.shape[0]))
        return torch.zeros(images.shape[0], 10)

    predict_logits(model_fn, small_dataset(25).images, batch_size=10)
    assert seen == [(torch.uint8, 10), (torch.uint8, 10), (torch.uint8, 5)]


def test_predict_logits_rejects_a_wrong_output_shape() -> None:
    with pytest.raises(ValueError, match="expected"):
        predict_logits(lambda x: torch.zeros(10), small_dataset(10).images)


def test_flip_tta_averages_an_image_and_its_mirror() -> None:
    images = small_dataset(6).images
    model_fn = model_fn_of(TinyNet())
    tta = with_flip_tta(model_fn)
    with torch.inference_mode():
        expected = 0.5 * (model_fn(images) + model_fn(images.flip(-1)))
        assert torch.allclose(tta(images), expected, atol=1e-6)
        # Invariant to mirroring the input, which is the point of it.
        assert torch.allclose(tta(images), tta(images.flip(-1)), atol=1e-5)


# --- an evaluation and its files ---------------------------------------------------------


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_model_and_files(tmp_path: Path) -> None:
    dataset = small_dataset(100)
    evaluation = evaluate_model(model_fn_of(TinyNet()), dataset, CLASSES, "cpu", batch_size=32)
    history = [{"epoch": 1, "train_loss": 2.3, "test_accuracy": 0.1}]
    write_json_atomic(tmp_path / "metrics.json",
                      {"history": history, "final": {"train_loss": 2.3, "epochs": 1}})
    document = write_evaluation(tmp_path, evaluation, {"device": "cpu"})

    rows = read_predictions(tmp_path / "predictions.csv")
    assert len(rows) == len(dataset)
    assert list(rows[0]) == ["index", "true_label", "predicted_label", "confidence",
                             *(f"prob_{c}" for c in CLASSES)]
    for i, row in enumerate(rows):
        probs = [float(row[f"prob_{c}"]) for c in CLASSES]
        assert int(row["index"]) == i
        assert row["true_label"] == CLASSES[int(dataset.labels[i])]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert float(row["confidence"]) == max(probs)
        assert row["predicted_label"] == CLASSES[probs.index(max(probs))]

    matrix_doc = read_json(tmp_path / "confusion_matrix.json")
    assert matrix_doc["classes"] == list(CLASSES)
    matrix = torch.tensor(matrix_doc["matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == len(dataset)
    # The matrix, the CSV and the per-class metrics all tell the same story.
    for i, name in enumerate(CLASSES):
        entry = document["per_class"][name]
        in_csv = [r for r in rows if r["true_label"] == name]
        assert entry["total"] == int(matrix[i].sum()) == len(in_csv)
        assert entry["correct"] == int(matrix[i, i]) == sum(
            r["predicted_label"] == name for r in in_csv)
        assert entry["predicted"] == sum(r["predicted_label"] == name for r in rows)
    assert document["test_correct"] == int(matrix.trace())
    assert document["test_accuracy"] == pytest.approx(int(matrix.trace()) / len(dataset))
    assert document["mean_confidence"] == pytest.approx(
        sum(float(r["confidence"]) for r in rows) / len(rows), abs=1e-5)

    png = tmp_path / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.size[0] > 300 and image.size[1] > 300

    curves = tmp_path / "training_curves.png"
    assert document["files"]["training_curves_png"] == curves.name
    with Image.open(curves) as image:
        image.verify()

    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["history"] == history  # the trainer's history is kept
    assert metrics["final"]["train_loss"] == 2.3 and metrics["final"]["epochs"] == 1
    assert metrics["final"]["test_accuracy"] == document["test_accuracy"]
    assert metrics["final"]["test_images"] == 100
    assert set(metrics["final"]["per_class_accuracy"]) == set(CLASSES)
    assert metrics["evaluation"]["device"] == "cpu"
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_nan_outputs_are_an_error_not_a_report(tmp_path: Path) -> None:
    def broken(images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], 10), float("nan"))

    with pytest.raises(DlboxError, match="NaN"):
        evaluate_model(broken, small_dataset(10), CLASSES)


def test_an_evaluation_from_logits_computed_elsewhere() -> None:
    data = small_dataset(10)
    logits = torch.zeros(10, 10)
    logits[torch.arange(10), data.labels] = 5.0  # every image right
    logits[0] = 0.0
    logits[0, (int(data.labels[0]) + 1) % 10] = 5.0  # but the first
    evaluation = ev.evaluation_from_logits(logits, data, CLASSES, seconds=1.5)
    assert evaluation.metrics["correct"] == 9 and evaluation.seconds == 1.5
    assert torch.allclose(evaluation.probabilities.sum(1), torch.ones(10))
    assert torch.equal(evaluation.true_labels, data.labels.long())
    with pytest.raises(ValueError, match="for 10 images"):
        ev.evaluation_from_logits(logits[:9], data, CLASSES, 0.0)
    with pytest.raises(DataError, match="3 outputs"):
        ev.evaluation_from_logits(logits[:, :3], data, CLASSES, 0.0)
    empty = ev.evaluation_from_logits(torch.empty(0, 0), small_dataset(0), CLASSES, 0.0)
    assert empty.metrics["accuracy"] is None and empty.probabilities.shape == (0, 10)


def test_wrong_number_of_outputs_is_a_data_error() -> None:
    with pytest.raises(DataError, match="outputs"):
        evaluate_model(model_fn_of(TinyNet(num_classes=3)), small_dataset(10), CLASSES)


def test_class_names_must_match() -> None:
    assert ev.check_classes(None, CLASSES) == CLASSES
    with pytest.raises(DataError, match="trained on classes"):
        ev.check_classes(("a", "b"), CLASSES)


def test_a_class_mismatch_of_many_classes_stays_one_short_line() -> None:
    """Review: a tree of 120 breeds against a run of 120 others made an error of 1,554
    characters listing every class; now the first ten of each list, with how many there
    are."""
    model = tuple(f"breed_{i:03d}" for i in range(120))
    data = tuple(f"breed_{i:03d}" for i in range(12, 132))
    with pytest.raises(DataError) as error:
        ev.check_classes(model, data, "/data/test")
    message = error.value.message
    assert len(message) < 600
    assert message.startswith("the run was trained on classes breed_000, breed_001, ")
    assert "breed_009, ... (120 in all) but the test data in /data/test has breed_012, " in (
        message)
    assert message.endswith("breed_008, breed_009, ... (12 in all); it adds breed_120, "
                            "breed_121, breed_122, breed_123, breed_124, breed_125, breed_126, "
                            "breed_127, breed_128, breed_129, ... (12 in all))")
    with pytest.raises(DataError) as error:  # a few classes: all of them, no count
        ev.check_classes(("cat", "cow"), ("cat", "dog"))
    assert error.value.message == ("the run was trained on classes cat, cow but the test data "
                                   "has cat, dog (it lacks cow; it adds dog)")


def test_the_same_classes_in_another_order_are_matched_by_name() -> None:
    """Review: the same classes listed in another order were refused ("in another order")
    with a hint that could not help."""
    model = ("cat", "dog", "bird")
    assert ev.check_classes(model, ("bird", "cat", "dog")) == model
    data = ImageDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
                        torch.tensor([0, 1, 2, 0]), ("bird", "cat", "dog"))
    matched = ev.in_model_order(data, model)
    assert matched.classes == model
    assert [model[i] for i in matched.labels] == ["bird", "cat", "dog", "bird"]
    assert ev.in_model_order(matched, model) is matched
    with pytest.raises(DataError, match="it lacks cow"):  # not the same set: refused
        ev.check_classes(("cat", "cow"), ("cat", "dog"))


def test_a_checkpoint_from_elsewhere_is_named_when_its_classes_differ() -> None:
    """Review: `--checkpoint OTHER_RUN/checkpoints/last.pt` of other classes blamed the
    data ("the run was trained on ...") and hinted at --data, naming that run's classes as
    this one's."""
    elsewhere = Path("/runs/b/checkpoints/last.pt")
    with pytest.raises(DataError) as error:
        ev.check_classes(("bird", "cat"), CLASSES, "/data/test", elsewhere)
    assert error.value.message.startswith(f"checkpoint {elsewhere} was trained on classes "
                                          "bird, cat, but the test data in /data/test has ")
    assert (error.value.hint or "").startswith("pass one of this run's checkpoints")


def test_class_names_the_font_cannot_draw_are_plotted_as_their_index(tmp_path: Path) -> None:
    """Review: an image tree of 猫 and 犬 gave a confusion matrix of empty boxes and a
    matplotlib warning per glyph on stderr, with source paths."""
    import warnings

    classes = ("猫", "犬", "café")
    assert report.drawable_labels(classes) == ["#0", "#1", "café"]
    assert report.drawable_labels(CLASSES) == list(CLASSES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report.plot_confusion_matrix(tmp_path / "cm.png", torch.eye(3, dtype=torch.int64) * 4,
                                     classes)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert Image.open(tmp_path / "cm.png").size[0] > 100


def test_corrupt_metrics_file_is_a_run_dir_error(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(RunDirError, match="metrics.json"):
        ev.read_metrics_file(tmp_path / "metrics.json")
    assert (tmp_path / "metrics.json").read_text() == "{not json"


def test_accuracy_lines_match_the_tutorial() -> None:
    m = compute_metrics(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 1, 0]),
                        ("airplane", "cat"))
    assert report.accuracy_lines(m) == [
        "Accuracy of the network on the 5 test images: 60 %",
        "Accuracy for class: airplane is 66.7 %",
        "Accuracy for class: cat   is 50.0 %",
    ]


# --- evaluate_run over a run directory (the checkpoint loader replaced by a fake) ----------


def fake_loader(config: SimpleNamespace, model: nn.Module):
    def load_run_model(run_dir: Path, device="auto", checkpoint="last"):
        ev.require_run_dir(Path(run_dir))
        loaded = SimpleNamespace(model=model.eval(), config=config, classes=CLASSES,
                                 preprocess=lambda x: x.float() / 255.0, epoch=1)
        return loaded, torch.device("cpu")

    return load_run_model


def test_evaluate_run_writes_everything_and_prints_tutorial_lines(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = SimpleNamespace(data_dir=str(fake_cifar_dir), num_test=60)
    monkeypatch.setattr(ev, "load_run_model", fake_loader(config, TinyNet()))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    document = evaluate_run(run_dir, device="cpu")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Accuracy of the network on the 60 test images: ")
    assert out[0] == f"Accuracy of the network on the 60 test images: " \
                     f"{100 * document['test_correct'] // 60} %"
    assert out[1].startswith("Accuracy for class: airplane is ") and out[1].endswith(" %")
    assert len(out) == 11
    assert document["test_images"] == 60 and document["tta"] is False
    assert len(read_predictions(run_dir / "predictions.csv")) == 60
    for name in ("confusion_matrix.json", "confusion_matrix.png", "metrics.json"):
        assert (run_dir / name).is_file()

    evaluate_run(run_dir, device="cpu", quiet=True, tta=True)
    assert capsys.readouterr().out == ""
    assert read_json(run_dir / "metrics.json")["evaluation"]["tta"] is True


def test_evaluate_run_data_dir_argument_wins(tmp_path: Path, fake_cifar_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = SimpleNamespace(data_dir=str(tmp_path / "gone"), num_test=None)
    monkeypatch.setattr(ev, "load_run_model", fake_loader(config, TinyNet()))
    document = evaluate_run(tmp_path, data_dir=fake_cifar_dir, device="cpu", quiet=True)
    assert document["test_images"] == 100  # the whole fake test split


def test_other_data_with_fewer_test_images_than_the_run_used_is_noted(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A run tested on its first 60 images (--num-test 60), evaluated with --data on a split
    of 40: all 40 were evaluated without a word, where train refuses such a --num-test."""
    from dlbox.data.synthetic import write_fake_cifar10

    small = tmp_path / "small"
    write_fake_cifar10(small, n_train=20, n_test=40)
    config = SimpleNamespace(data_dir=str(fake_cifar_dir), num_test=60)
    monkeypatch.setattr(ev, "load_run_model", fake_loader(config, TinyNet()))
    document = evaluate_run(tmp_path, data_dir=small, device="cpu", quiet=True,
                            output=tmp_path / "report")
    assert document["test_images"] == 40
    assert capsys.readouterr().err == (
        f"note: the run was tested on its first 60 test images (--num-test); "
        f"{small.resolve()} has 40, and all 40 are evaluated\n")
    evaluate_run(tmp_path, device="cpu", quiet=True)  # its own data: 60 of 100, no note
    assert capsys.readouterr().err == ""
    # review: in the notebook, the note named --num-test, a flag it has no place for
    from dlbox.jupyter.notebooks import in_setting_terms
    from dlbox.text import use_wording

    use_wording(in_setting_terms)
    try:
        evaluate_run(tmp_path, data_dir=small, device="cpu", quiet=True,
                     output=tmp_path / "report")
    finally:
        use_wording(None)
    assert capsys.readouterr().err.startswith(
        "note: the run was tested on its first 60 test images (NUM_TEST); ")


def test_a_signal_while_the_report_moves_into_place_waits_for_the_last_move(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: Ctrl-C between two renames of the staged report left the new
    predictions.csv beside the old metrics.json. The moves now hold signals back."""
    import os
    import signal
    import time

    config = SimpleNamespace(data_dir=str(fake_cifar_dir), num_test=None)
    monkeypatch.setattr(ev, "load_run_model", fake_loader(config, TinyNet()))
    evaluate_run(tmp_path, device="cpu", quiet=True)
    moved: list[str] = []
    real = ev.move_into_place

    def interrupted_after_the_first(staged: Path, final_path: Path) -> None:
        real(staged, final_path)
        moved.append(final_path.name)
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, now
            time.sleep(0.1)  # its handler runs here, unless held back

    monkeypatch.setattr(ev, "move_into_place", interrupted_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(tmp_path, device="cpu", quiet=True, tta=True)
    staged = {path.name for path in tmp_path.iterdir() if path.is_file()}
    assert len(moved) > 1 and set(moved) <= staged  # every file moved: all new
    assert read_json(tmp_path / "metrics.json")["evaluation"]["tta"] is True


def test_missing_run_dir_is_a_run_dir_error_with_hint(tmp_path: Path) -> None:
    with pytest.raises(RunDirError) as info:
        evaluate_run(tmp_path / "nope", device="cpu")
    assert "dlbox train" in (info.value.hint or "")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        evaluate_run(tmp_path / "file", device="cpu")


def test_metrics_document_is_json_serialisable(tmp_path: Path) -> None:
    evaluation = evaluate_model(model_fn_of(TinyNet()), small_dataset(20), CLASSES)
    document = write_evaluation(tmp_path, evaluation)  # no metrics.json before: starts one
    assert json.loads(json.dumps(document)) == document
    assert read_json(tmp_path / "metrics.json")["evaluation"] == document
    assert not (tmp_path / "training_curves.png").exists()  # no history, no curves
    assert "training_curves_png" not in document["files"]


def test_training_history_plot_skips_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "curves.png"
    assert not report.plot_training_history(path, [{"epoch": 1}, "junk"])  # type: ignore[list-item]
    assert not path.exists()
    history = [{"epoch": 1, "train_loss": 2.0, "train_accuracy": 0.3, "test_accuracy": None},
               {"epoch": 2, "train_loss": 1.5, "train_accuracy": 0.5, "test_accuracy": 0.45}]
    assert report.plot_training_history(path, history)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_damaged_metrics_file_stops_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("[1, 2")
    evaluation = evaluate_model(model_fn_of(TinyNet()), small_dataset(20), CLASSES)
    with pytest.raises(RunDirError):
        write_evaluation(tmp_path, evaluation)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp_dtype", [torch.float16, torch.bfloat16, None])
def test_cuda_autocast_matches_cpu(amp_dtype: torch.dtype | None) -> None:
    dataset = small_dataset(64)
    cpu = evaluate_model(model_fn_of(TinyNet()), dataset, CLASSES, "cpu")
    model = TinyNet().to("cuda")
    gpu = evaluate_model(model_fn_of(model), dataset, CLASSES, "cuda", batch_size=16,
                         amp_dtype=amp_dtype)
    assert gpu.probabilities.device.type == "cpu" and gpu.probabilities.dtype == torch.float32
    assert torch.allclose(gpu.probabilities, cpu.probabilities, atol=2e-2)
    assert int((gpu.predicted == cpu.predicted).sum()) >= 60


# --- run files that are there but cannot be read: a permission to fix, not damage ----------


def test_a_metrics_file_without_read_permission_is_not_called_damaged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: "metrics.json is not valid JSON ([Errno 13] Permission denied ...)"
    with the hint "restore it, or delete it". (The PermissionError is simulated: root, as in
    CI, reads any file; test_run_files_robustness runs the real thing without root's powers.)"""
    import errno

    path = tmp_path / "metrics.json"
    path.write_text('{"history": []}')

    def denied(where: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(where))

    monkeypatch.setattr(ev, "read_json", denied)
    with pytest.raises(RunDirError) as info:
        ev.read_metrics_file(path)
    assert info.value.message == f"cannot read {path}: permission denied"
    assert f"chmod u+r {path}" in (info.value.hint or "")
    assert "delete" not in (info.value.hint or "") and "damaged" not in info.value.message
    assert path.read_text() == '{"history": []}'


def test_a_folder_in_place_of_metrics_json_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").mkdir()
    evaluation = evaluate_model(model_fn_of(TinyNet()), small_dataset(20), CLASSES)
    with pytest.raises(RunDirError) as info:
        write_evaluation(tmp_path, evaluation)
    assert info.value.message == (f"cannot read {tmp_path / 'metrics.json'}: it is a folder, "
                                  "not a file")
    assert "not valid JSON" not in info.value.message and "delete" not in (info.value.hint or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_evaluate_run_reads_metrics_json_before_evaluating(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable or damaged metrics.json stops evaluate at once, not after it has
    predicted every test image (minutes on a CPU) only to fail writing the report."""
    config = SimpleNamespace(data_dir=str(fake_cifar_dir), num_test=60)
    monkeypatch.setattr(ev, "load_run_model", fake_loader(config, TinyNet()))

    def not_now(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated before metrics.json was read")

    monkeypatch.setattr(ev, "evaluate_model", not_now)
    (tmp_path / "metrics.json").write_text("[1, 2")
    with pytest.raises(RunDirError, match="metrics.json"):
        evaluate_run(tmp_path, device="cpu", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    # with --output, the run's metrics.json is not read: nothing to check first
    with pytest.raises(AssertionError, match="evaluated before"):
        evaluate_run(tmp_path, device="cpu", quiet=True, output=tmp_path / "elsewhere")


def test_the_training_curves_tick_whole_epochs(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a 3-epoch run's curves had ticks at epochs 1.25, 1.5, 1.75."""
    from matplotlib.figure import Figure

    from dlbox.training.report import plot_training_history

    drawn: list[Figure] = []
    real_savefig = Figure.savefig

    def savefig(self: Figure, *args: object, **kwargs: object) -> None:
        drawn.append(self)
        real_savefig(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Figure, "savefig", savefig)
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.2 * e,
                "test_accuracy": 0.15 * e} for e in (1, 2, 3)]
    assert plot_training_history(tmp_path / "curves.png", history)
    [figure] = drawn
    for axes in figure.axes:
        ticks = [t for t in axes.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_an_empty_class_folder_beside_the_runs_classes_is_named(tmp_path: Path) -> None:
    """Found by review: `mkdir test/zebra` (its images to come) made evaluate say the run
    was trained on other classes, and to pass the data it was trained on: the same data."""
    from dlbox.data.synthetic import write_fake_image_folder
    from dlbox.errors import DataError
    from dlbox.training.config import build_config
    from dlbox.training.evaluate import evaluate_run
    from dlbox.training.loop import train

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=8, classes=2)
    write_fake_image_folder(tree / "test", per_class=2, classes=2)
    run_dir = train(build_config("tiny", epochs=1, device="cpu", data_dir=str(tree),
                                 run_dir=str(tmp_path / "run"), threads=1),
                    progress=False, evaluate_at_end=False)
    (tree / "test" / "zebra").mkdir()
    with pytest.raises(DataError) as info:
        evaluate_run(run_dir, device="cpu", quiet=True)
    assert info.value.message == (f"the test data in {tree / 'test'} has the class folder(s) "
                                  "zebra beside the run's classes, with no images in any split")
    assert (info.value.hint or "").startswith("remove the empty class folder(s)")


def test_a_run_of_fewer_classes_on_cifar_batches_names_the_difference(
        tmp_path: Path, fake_cifar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a run trained on 8 classes of an image tree, evaluated on CIFAR-10's
    batches, was told that ship and truck were empty class folders to remove (batches have
    no class folders), after a note that all the test images would be evaluated."""
    from dlbox.data.cifar10 import CIFAR10_CLASSES
    from dlbox.data.synthetic import write_fake_image_folder
    from dlbox.errors import DataError
    from dlbox.training.config import build_config
    from dlbox.training.evaluate import evaluate_run
    from dlbox.training.loop import train

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=8, classes=2)
    write_fake_image_folder(tree / "test", per_class=60, classes=2)
    run_dir = train(build_config("tiny", epochs=1, device="cpu", data_dir=str(tree),
                                 num_test=120, run_dir=str(tmp_path / "run"), threads=1),
                    progress=False, evaluate_at_end=False)
    trained = sorted(p.name for p in (tree / "train").iterdir())
    capsys.readouterr()
    with pytest.raises(DataError) as info:  # 100 test images there, fewer than its 120
        evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True)
    lacks = [name for name in trained if name not in CIFAR10_CLASSES]
    assert "empty class folder" not in (info.value.hint or "")
    assert info.value.message.endswith(
        f"({'it lacks ' + ', '.join(lacks) + '; ' if lacks else ''}it adds "
        f"{', '.join(sorted(set(CIFAR10_CLASSES) - set(trained)))})")
    assert "note:" not in capsys.readouterr().err  # nothing is evaluated: no word of counts


def test_a_run_whose_image_tree_moved_is_not_told_to_fetch_cifar(tmp_path: Path) -> None:
    """Found by review: a run trained on an image tree of the user's whose tree then moved
    was told to `dlbox data fetch` it again, which brings CIFAR-10, not that tree."""
    from dlbox.data.synthetic import write_fake_image_folder
    from dlbox.errors import DataError
    from dlbox.training.config import build_config
    from dlbox.training.evaluate import evaluate_run
    from dlbox.training.loop import TrainingStopped, resume, train

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=8, classes=2)
    write_fake_image_folder(tree / "test", per_class=2, classes=2)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):  # a run to resume too
        train(build_config("tiny", epochs=3, device="cpu", data_dir=str(tree),
                           run_dir=str(run_dir), threads=1),
              progress=False, evaluate_at_end=False, stop=lambda epoch, step: epoch == 2)
    tree.rename(tmp_path / "moved")
    for attempt in (lambda: evaluate_run(run_dir, device="cpu", quiet=True),
                    lambda: resume(run_dir, progress=False)):
        with pytest.raises(DataError) as info:
            attempt()
        assert info.value.hint == ("the run was trained on an image tree of its own: pass "
                                   "--data DIR where that tree is now")


def test_an_output_folder_on_a_read_only_filesystem_is_not_told_to_change_permissions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: --output on a read-only mount said "fix its permissions", which
    chmod cannot do (the run dir's own check already told the two apart)."""
    import errno

    from dlbox.errors import FileWriteError
    from dlbox.training import evaluate

    def read_only(folder: Path) -> OSError:
        return OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(evaluate, "folder_write_error", read_only)
    with pytest.raises(FileWriteError) as refused:
        evaluate.check_output_folder(tmp_path / "report")
    assert refused.value.message == (f"cannot write {tmp_path / 'report'}: {tmp_path} is on a "
                                     "read-only filesystem")
    assert refused.value.hint == "pass a folder on a writable filesystem for the report files"


def test_a_confusion_matrix_of_many_classes_stays_a_picture_of_sane_size(tmp_path: Path) -> None:
    """Found by review: the figure grew with the class count squared (0.6 in a class, a count
    written in each cell): 150 classes made a 10285x10175 PNG (Pillow's decompression bomb
    warning), 29 s and 4.3 GB to draw; 1000 failed with MemoryError (exit 70)."""
    n = 120
    classes = tuple(f"class{i}" for i in range(n))
    report.plot_confusion_matrix(tmp_path / "cm.png", torch.eye(n, dtype=torch.int64) * 3,
                                 classes)
    width, height = Image.open(tmp_path / "cm.png").size
    assert width <= 2600 and height <= 2600, (width, height)
    # few classes keep their counts written in the cells, at the size they had
    report.plot_confusion_matrix(tmp_path / "ten.png", torch.eye(10, dtype=torch.int64) * 3,
                                 CLASSES)
    assert Image.open(tmp_path / "ten.png").size == (1045, 935)


def test_the_training_curves_of_a_one_epoch_run_have_whole_epoch_ticks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a 1-epoch run's training_curves.png had ticks 0.945 ... 1.050: the
    integer locator finds no whole numbers in the range around a single point."""
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    real = Figure.savefig

    def savefig(self: Figure, *args: object, **kwargs: object) -> None:
        drawn.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    for epochs in (1, 3):
        history = [{"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.1 * e,
                    "test_accuracy": 0.1 * e} for e in range(1, epochs + 1)]
        assert report.plot_training_history(tmp_path / f"curves{epochs}.png", history)
        for axes in drawn[-1].axes:
            assert list(axes.get_xticks()) == list(range(1, epochs + 1))


def test_test_images_of_some_of_the_runs_classes_are_told_the_mkdir_that_evaluates_them(
        tmp_path: Path) -> None:
    """Found by review: `evaluate --data onlycats --output DIR` (a folder of cats, for a
    cat/dog run) said only "pass the data the run was trained on", the one thing --output
    is there to avoid; an empty test/dog makes it run (dog is then n/a)."""
    (tmp_path / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError) as refused:
        ev.check_classes(("cat", "dog", "bird"), ("cat",), str(tmp_path / "test"))
    assert "(it lacks" in refused.value.message
    assert refused.value.hint == (
        "to evaluate these images, give the test data an empty folder for each class it "
        f"lacks: mkdir {tmp_path / 'test' / 'dog'} {tmp_path / 'test' / 'bird'}; or pass the "
        "data the run was trained on with --data DIR")


def test_test_data_naming_the_runs_classes_in_another_unicode_form_is_told_so(
        tmp_path: Path) -> None:
    """Found by the re-check: a run trained on café (composed) evaluated on test/café
    (decomposed, copied from a Mac) said "it lacks café; it adds café"."""
    import unicodedata

    composed, decomposed = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    (tmp_path / "test" / decomposed).mkdir(parents=True)
    with pytest.raises(DataError) as refused:
        ev.check_classes((composed, "dog"), (decomposed, "dog"), str(tmp_path / "test"))
    assert refused.value.message == (
        f"the test data in {tmp_path / 'test'} writes the class {decomposed} in another Unicode "
        "form than the run (decomposed, as macOS writes names, where the run's is composed)")
    assert refused.value.hint == ("rename its names to the run's form: convmv -r -f utf8 -t "
                                  f"utf8 --nfc --notest {tmp_path} (Debian: apt-get install "
                                  "convmv)")


def test_predictions_of_an_image_tree_name_each_images_file(tmp_path: Path) -> None:
    """Found by review: a row of predictions.csv of the user's own image tree could not be
    traced to its file (its `index` is the loading order, which interleaves the classes). A
    `path` column, relative to the split folder, comes last: the columns before it are as
    they were, and CIFAR-10's batches (no files) keep exactly those."""
    from dlbox.data.imagefolder import list_image_files, load_image_folder
    from dlbox.data.synthetic import write_fake_image_folder

    write_fake_image_folder(tmp_path / "test", per_class=3, classes=2)
    (tmp_path / "test" / "class_1" / "0000, a \"named\" cat.png").write_bytes(
        (tmp_path / "test" / "class_1" / "0000.png").read_bytes())
    files, _, _ = list_image_files(tmp_path / "test")
    relative = [path.relative_to(tmp_path / "test").as_posix() for path in files]
    dataset = load_image_folder(tmp_path / "test").subset(5)
    # in the run's class order (another order than the tree's): the rows keep their files
    dataset = ev.in_model_order(dataset, ("class_1", "class_0"))
    evaluation = evaluate_model(model_fn_of(TinyNet(2)), dataset, ("class_1", "class_0"))
    write_evaluation(tmp_path, evaluation, {"device": "cpu"}, output=tmp_path / "out")
    rows = read_predictions(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == ["index", "true_label", "predicted_label", "confidence",
                             "prob_class_1", "prob_class_0", "path"]
    assert [row["path"] for row in rows] == relative[:5]
    assert relative[1] == 'class_1/0000, a "named" cat.png'  # a comma and quotes, kept whole
    assert all(row["true_label"] == row["path"].split("/")[0] for row in rows)
