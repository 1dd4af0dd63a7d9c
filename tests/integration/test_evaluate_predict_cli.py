"""`dlbox evaluate` and `dlbox predict` on a real run directory made by `dlbox train`.

One tiny run (model `tiny`, 1 epoch, the 500/100-image fake CIFAR-10) is trained once per
session; each test works on its own copy when it writes into the run dir.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
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


def test_evaluate_records_absolute_paths_and_names_data_of_other_classes(
        run_copy: Path, fake_cifar_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # metrics.json recorded `run` and `cifar/cifar-10-batches-py` as typed, relative to a
    # folder it does not name; data of other classes was refused without saying which data.
    from dlbox.data.synthetic import write_fake_image_folder

    copy = tmp_path / "data"
    shutil.copytree(fake_cifar_dir, copy)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "run", "--data", "data", "--device", "cpu"]) == EXIT_OK
    evaluation = read_json(run_copy / "metrics.json")["evaluation"]
    assert evaluation["run_dir"] == str(run_copy.resolve())
    assert Path(evaluation["data"]).is_absolute()
    assert Path(evaluation["data"]).is_relative_to(copy.resolve())
    capsys.readouterr()

    pets = tmp_path / "pets"
    for split in ("train", "test"):
        write_fake_image_folder(pets / split, per_class=2, classes=3)
    assert main(["evaluate", "run", "--data", "pets", "--device", "cpu"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"but the test data in {(pets / 'test').resolve()} has class_0" in err, err



def test_predictions_of_an_image_tree_name_each_file_and_evaluate_notes_what_it_skips(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: predictions.csv of the user's own image tree could not be traced
    back to its files, and `dlbox evaluate` said nothing of test files it passed over (data
    check noted them). Each row names its file, relative to the split folder, in train's
    report and evaluate's alike; evaluate notes the test split's skipped files, once."""
    from dlbox.data.synthetic import write_fake_image_folder

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=3, classes=2)
    write_fake_image_folder(tree / "test", per_class=2, classes=2)
    run = tmp_path / "run"
    assert main(["train", "--model", "tiny", "--epochs", "1", "--device", "cpu",
                 "--no-progress", "--num-test", "3", "--data", str(tree), "--run-dir",
                 str(run)]) == EXIT_OK
    expected = ["class_0/0000.png", "class_1/0000.png", "class_0/0001.png"]  # interleaved

    def paths() -> list[str]:
        with open(run / "predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0])[:4] == ["index", "true_label", "predicted_label", "confidence"]
        assert all(row["true_label"] == row["path"].split("/")[0] for row in rows)
        return [row["path"] for row in rows]

    assert paths() == expected
    (tree / "test" / "class_1" / "notes.txt").write_text("not an image\n")
    (tree / "test" / "class_0" / "more").mkdir()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--device", "cpu"]) == EXIT_OK
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if "skipped" in line]
    assert skipped == [
        f"note: test: skipped {what}; only test/<class>/<image> ending in .png, .jpg, "
        ".jpeg, .jfif, .jpe, .gif, .bmp, .webp, .tif, .tiff, .ppm, .pgm, .pbm, .pnm is read"
        for what in ("1 file without an image extension (class_1/notes.txt)",
                     "1 folder inside a class folder (class_0/more/)")], err
    assert paths() == expected

def test_evaluate_output_leaves_the_run_as_it_is(run_copy: Path, fake_cifar_dir: Path,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # An evaluation on other data replaced the run's own predictions.csv, confusion matrix
    # and final test accuracy, with no way to write them elsewhere.
    other = tmp_path / "other"
    shutil.copytree(fake_cifar_dir, other)
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    out = tmp_path / "reports" / "on-other"
    assert main(["evaluate", str(run_copy), "--data", str(other), "--output", str(out),
                 "--device", "cpu"]) == EXIT_OK
    assert capsys.readouterr().out.strip().endswith(
        f"wrote predictions.csv, confusion_matrix.json, confusion_matrix.png, evaluation.json "
        f"in {out}")
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
    document = json.loads((out / "evaluation.json").read_text())
    assert document["test_images"] == TEST_IMAGES and document["run_dir"] == str(run_copy)
    import torch

    import dlbox  # every artifact carries its provenance, this one too
    assert document["versions"]["dlbox"] == dlbox.__version__
    assert (document["versions"]["torch"], document["versions"]["device"]) == (
        torch.__version__, "cpu")
    assert Path(document["data"]).is_relative_to(other)
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == TEST_IMAGES + 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["evaluate", str(run_copy), "--output", str(blocker)]) == EXIT_USAGE
    assert "--output" in capsys.readouterr().err and blocker.read_text() == ""
    # Under a file: refused before evaluating (it failed after, with "please report it").
    assert main(["evaluate", str(run_copy), "--output", str(blocker / "sub" / "x")]) \
        == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == (f"error: --output {blocker / 'sub' / 'x'} cannot "
                                            f"be made: {blocker} is a file"), captured.err
    assert captured.out == "" and "please report" not in captured.err
    from dlbox.errors import UsageError
    from dlbox.training.evaluate import evaluate_run

    with pytest.raises(UsageError, match="cannot be made"):  # before the run is even read
        evaluate_run(tmp_path / "no-such-run", output=blocker / "sub")
    # Another run's folder: its own predictions would be replaced. This run's is the default.
    other_run = tmp_path / "other-run"
    shutil.copytree(run_copy, other_run)
    kept = {path.name: path.read_bytes() for path in other_run.iterdir() if path.is_file()}
    assert main(["evaluate", str(run_copy), "--output", str(other_run)]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: --output {other_run} is another run's folder: its predictions.csv and "
        "confusion matrix would be replaced")
    assert {path.name: path.read_bytes() for path in other_run.iterdir()
            if path.is_file()} == kept
    assert main(["evaluate", str(run_copy), "--output", str(run_copy)]) == EXIT_OK


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


@pytest.mark.parametrize("given, message", [
    ("elsewhere/last.pt", "checkpoint elsewhere/last.pt does not exist"),
    ("../config", "checkpoint ../config does not exist"),
    ("/dev/null", "checkpoint /dev/null is not a regular file (a pipe, socket or device)"),
    ("checkpoints", None),  # a folder: filled in below
])
def test_a_checkpoint_path_that_is_not_a_file_is_named_as_given(
        run_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        given: str, message: str | None) -> None:
    """Found by hand: `--checkpoint elsewhere/last.pt` said `has no checkpoint last.pt` with
    the hint `its checkpoints are: last`, and `../config` read RUN_DIR/config.pt."""
    monkeypatch.chdir(run_copy)
    if message is None:
        given = str(run_copy / "checkpoints")
        message = f"checkpoint {given} is a folder, not a .pt file"
    before = (run_copy / "metrics.json").read_bytes()
    for command in (["evaluate", str(run_copy)], ["predict", str(run_copy), "x.png"]):
        assert main([*command, "--checkpoint", given]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.splitlines()[0] == f"error: {message}"
        assert "one of the run's checkpoints: last" in err
    assert (run_copy / "metrics.json").read_bytes() == before


def test_an_empty_checkpoint_name_is_a_usage_error(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_copy), "--checkpoint", ""]) == EXIT_USAGE
    assert "error: --checkpoint needs a name or a path" in capsys.readouterr().err


def test_a_checkpoint_given_as_a_path_is_used(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept = tmp_path / "kept" / "epoch1.pt"
    kept.parent.mkdir()
    shutil.copy(run_copy / "checkpoints" / "last.pt", kept)
    # its report goes elsewhere: the run's own describes its last checkpoint (review 7)
    assert main(["evaluate", str(run_copy), "--checkpoint", str(kept), "--json",
                 "--output", str(tmp_path / "report")]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(kept)


def test_a_checkpoint_of_another_model_is_named_as_such(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Another run's checkpoint gave torch's list of missing keys and the hint "train again".
    import torch

    state = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["model"] = "speedrun"
    other = tmp_path / "other.pt"
    torch.save(state, other)
    for command in (["evaluate", str(run_copy), "--output", str(tmp_path / "report")],
                    ["predict", str(run_copy), "x.png"]):
        assert main([*command, "--checkpoint", str(other)]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith(f"error: checkpoint {other} is of a 'speedrun' model, and "
                              f"{run_copy} is a 'tiny' run"), err
        assert "Missing key" not in err and "train again" not in err


def test_a_chosen_file_that_is_no_checkpoint_is_hinted_as_the_flags_fault(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --checkpoint naming a file that is no dlbox checkpoint got "pass a
    run directory made by dlbox train" (a run directory was passed) or "it is damaged or
    was edited: ... train again with another --run-dir"."""
    import torch

    other = tmp_path / "other.pt"
    torch.save({"a": 1}, other)
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    inside = run_copy / "checkpoints" / "weights.pt"  # a .pt there that is no checkpoint
    torch.save({"a": 1}, inside)
    for chosen in (other, text, run_copy / "config.json", inside):
        for command in (["evaluate", str(run_copy), "--output", str(tmp_path / "report")],
                        ["predict", str(run_copy), "x.png"]):
            assert main([*command, "--checkpoint", str(chosen)]) == EXIT_ERROR
            lines = capsys.readouterr().err.splitlines()
            assert lines[0].startswith("error: ") and str(chosen) in lines[0], lines
            assert lines[1] == ("hint: pass --checkpoint a file `dlbox train` saved (a run's "
                                "checkpoints/*.pt), or leave --checkpoint out for the run's "
                                "last"), lines
    # the run's own checkpoint, damaged, named by its path: the damaged file's hint stays
    last = run_copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    assert main(["predict", str(run_copy), "x.png", "--checkpoint", str(last)]) == EXIT_ERROR
    assert "it is damaged or was edited" in capsys.readouterr().err.splitlines()[1]


def test_data_listing_the_runs_classes_in_another_order_is_matched_by_name(
        run_copy: Path, fake_cifar_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: the same classes in another order were refused. A copy of the test data whose
    batches.meta lists the classes reversed, each label turned with it, is the same data:
    the same images are right, with a note. A checkpoint of other classes, given from
    elsewhere, is named as the difference (it blamed the data)."""
    import pickle

    import torch

    source = fake_cifar_dir / "cifar-10-batches-py"
    reordered = tmp_path / "reordered" / "cifar-10-batches-py"
    shutil.copytree(source, reordered)
    meta = pickle.loads((reordered / "batches.meta").read_bytes(), encoding="bytes")
    names = list(reversed(meta[b"label_names"]))
    meta[b"label_names"] = names
    (reordered / "batches.meta").write_bytes(pickle.dumps(meta))
    batch = pickle.loads((reordered / "test_batch").read_bytes(), encoding="bytes")
    batch[b"labels"] = [len(names) - 1 - label for label in batch[b"labels"]]
    (reordered / "test_batch").write_bytes(pickle.dumps(batch))
    assert main(["evaluate", str(run_copy), "--json"]) == EXIT_OK
    same = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run_copy), "--json", "--data", str(tmp_path / "reordered")]
                ) == EXIT_OK
    captured = capsys.readouterr()
    assert "lists the run's classes in another order" in captured.err
    other = json.loads(captured.out)
    assert other["test_correct"] == same["test_correct"]
    assert other["per_class"] == same["per_class"]
    state = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    state["classes"] = ["plane", *state["classes"][1:]]  # another run's, as many
    foreign = tmp_path / "elsewhere" / "last.pt"
    foreign.parent.mkdir()
    torch.save(state, foreign)
    report = ["--output", str(tmp_path / "report")]  # not the run's own checkpoint
    assert main(["evaluate", str(run_copy), "--checkpoint", str(foreign), *report]
                ) == EXIT_ERROR
    assert capsys.readouterr().err.startswith(
        f"error: checkpoint {foreign} was trained on classes plane, automobile, ")
    # one of another width: "train again with another --run-dir" was no way out for it
    state["model"] = {name: tensor[..., :1] if tensor.dim() else tensor
                      for name, tensor in state["model"].items()}
    torch.save(state, foreign)
    assert main(["evaluate", str(run_copy), "--checkpoint", str(foreign), *report]
                ) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {foreign} does not fit model 'tiny' ")
    assert err.splitlines()[1] == ("hint: pass one of this run's checkpoints (in its "
                                   "checkpoints/ folder), or evaluate the run that checkpoint "
                                   "belongs to")


def test_evaluate_waits_for_a_run_that_is_training(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by reading: `dlbox evaluate` of a run that is training read metrics.json, the
    trainer rewrote it for its next epoch, and the evaluation then wrote the older history
    back (and the next epoch's write dropped the evaluation)."""
    from dlbox.training.rundir import run_lock

    before = (run_copy / "metrics.json").read_bytes()
    with run_lock(run_copy):  # `dlbox train` holds this while it trains
        assert main(["evaluate", str(run_copy), "--json"]) == EXIT_ERROR
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"error: a dlbox run is training in {run_copy} right now")
        assert "evaluate it when training ends" in captured.err
        # review: the hint said to evaluate a copy, where --output works meanwhile
        assert captured.err.rstrip().endswith(
            f"or now, into another folder: dlbox evaluate {run_copy} --output DIR")
        assert main(["evaluate", str(run_copy), "--output", str(run_copy.parent / "now"),
                     "--json"]) == EXIT_OK
        capsys.readouterr()
    assert (run_copy / "metrics.json").read_bytes() == before
    assert not (run_copy / "predictions.csv").exists()
    assert main(["evaluate", str(run_copy), "--json"]) == EXIT_OK  # the run ended


def test_a_run_another_evaluate_is_writing_is_not_called_training(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a second `dlbox evaluate` (or a `train --resume`) of a run that an
    evaluate was writing said "a dlbox run is training in RUN right now", and "evaluate it
    when training ends". Nothing was training."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom pathlib import Path\n"
         "from dlbox.training.evaluate import not_while_training\n"
         f"with not_while_training(Path({str(run_copy)!r})):\n"
         "    print('held', flush=True)\n    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = f"error: a dlbox evaluate is writing the report of {run_copy} right now"
        assert main(["evaluate", str(run_copy)]) == EXIT_ERROR
        assert capsys.readouterr().err.splitlines() == [
            busy, f"hint: run it again when that ends, or now, into another folder: "
                  f"dlbox evaluate {run_copy} --output DIR"]
        assert main(["train", "--resume", str(run_copy), "--no-progress"]) == EXIT_ERROR
        assert capsys.readouterr().err.splitlines() == [
            busy, "hint: run it again when that ends (it takes seconds to minutes)"]
        # a new run into it (the re-check: "run it again" was then "already holds a run")
        assert main(["train", "--model", "tiny", "--epochs", "1",
                     "--run-dir", str(run_copy)]) == EXIT_ERROR
        assert capsys.readouterr().err.splitlines() == [
            busy, "hint: pass another --run-dir: this one holds a run"]
    finally:
        holder.communicate("", timeout=60)
    assert main(["evaluate", str(run_copy), "--json"]) == EXIT_OK


# `dlbox evaluate`, with a real SIGTERM sent to itself while it writes confusion_matrix.png
# (half of the PNG in its temp file), as `docker stop` may.
SIGTERM_MID_WRITE_SCRIPT = """
import os, signal, sys
import dlbox.cli
from dlbox.training import report
atomic = report.write_with_atomic
def write_then_term(path, writer, mode="wb"):
    def half_then_term(handle):
        handle.write(b"half a PNG")
        handle.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        writer(handle)
    atomic(path, half_then_term, mode)
report.write_with_atomic = write_then_term
sys.exit(dlbox.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_sigterm_while_the_report_is_written_leaves_no_temp_file(
        run_copy: Path, fake_cifar_dir: Path, tmp_path: Path, command: str) -> None:
    """Found by reading: SIGTERM's default action ended `dlbox evaluate` (and the report at
    the end of `dlbox train`, after the training loop's own handler) at once, leaving
    `.confusion_matrix.png.XXXX.tmp` behind."""
    run_dir = run_copy if command == "evaluate" else tmp_path / "new-run"
    argv = (["evaluate", str(run_dir)] if command == "evaluate" else
            ["train", "--model", "tiny", "--num-train", "100", "--num-test", "20",
             "--no-progress", "--data", str(fake_cifar_dir), "--run-dir", str(run_dir)])
    result = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE_SCRIPT, *argv,
                             "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 143, result.stderr
    said = result.stderr.strip().splitlines()
    if command == "evaluate":
        assert said[-1] == "stopped (SIGTERM)"
    else:  # and, since training had finished, the command that writes the report
        assert said[-3:] == ["stopped (SIGTERM)", f"training had finished ({run_dir.resolve()}"
                             "/checkpoints/last.pt); its evaluation was cut short",
                             f"evaluate with: dlbox evaluate {run_dir.resolve()}"]
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "confusion_matrix.png").exists()


@pytest.mark.parametrize("where", ["run", "output"])
def test_ctrl_c_while_the_report_is_written_leaves_the_old_report_whole(
        run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Found by review: Ctrl-C during the slow confusion-matrix plot left a new
    predictions.csv and confusion_matrix.json beside the old metrics.json (two evaluations in
    one folder), or a new --output folder holding half a report."""
    from dlbox.training import report

    assert main(["evaluate", str(run_copy)]) == EXIT_OK  # a whole report to keep
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}

    def cut_short(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_confusion_matrix", cut_short)
    output = tmp_path / "new-report"
    argv = ["evaluate", str(run_copy), "--tta", *(["--output", str(output)]
                                                  if where == "output" else [])]
    assert main(argv) == 130
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]
    assert not output.exists()


def test_the_staged_report_keeps_links_names_its_files_and_leaves_nothing(
        run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review of the staged report: a linked metrics.json was replaced by a plain
    file; a full disk named the staging folder's file (gone by then); a new nested --output
    left its parents; and a killed evaluation's staging folder stayed for good."""
    import errno

    from dlbox.errors import write_error
    from dlbox.processes import owner_id
    from dlbox.training import report

    shared = tmp_path / "shared"
    shared.mkdir()
    (run_copy / "metrics.json").rename(shared / "metrics.json")
    (run_copy / "metrics.json").symlink_to(shared / "metrics.json")
    killed = run_copy / ".evaluation.abcd1234.tmp"  # a SIGKILLed evaluation's
    killed.mkdir()
    (killed / "owner").write_text(owner_id(pid=2**22 + 7, namespace=True))
    assert main(["evaluate", str(run_copy)]) == EXIT_OK
    assert (run_copy / "metrics.json").is_symlink()  # the file it points to is updated
    assert "evaluation" in json.loads((shared / "metrics.json").read_text())
    assert not killed.exists()
    real = report.plot_confusion_matrix

    def full_disk(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise write_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(report, "plot_confusion_matrix", full_disk)
    capsys.readouterr()
    nested = tmp_path / "a" / "b" / "c"
    assert main(["evaluate", str(run_copy), "--output", str(nested)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: cannot write {nested / 'confusion_matrix.png'}: No space left" in err
    assert ".evaluation." not in err
    assert not (tmp_path / "a").exists()  # the folders it made for the report, all of them
    monkeypatch.setattr(report, "plot_confusion_matrix", real)
    # a new --output where not even the staging folder can be made: nothing left either
    import tempfile

    def no_room(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_room)
    assert main(["evaluate", str(run_copy), "--output", str(nested)]) == EXIT_ERROR
    assert "No space left" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


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


def test_names_that_are_not_utf_8_or_hold_a_newline_keep_their_line(
        trained_run: Path, images: dict[str, Path], tmp_path: Path) -> None:
    """A name from an old archive (latin-1 bytes) or with a newline is shown quoted as bash
    reads it back, one line each, under a locale whose stdout refuses such bytes; it
    failed with exit 70 there, and a newline split the name's line in two."""
    odd = [os.fsencode(tmp_path) + b"/caf\xe9.jpg", os.fsencode(tmp_path) + b"/two\nlines.jpg"]
    for name in odd:
        shutil.copy(images["photo"], name)
    missing = os.fsencode(tmp_path) + b"/gone\xff.jpg"
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "predict", trained_run, *odd, missing],
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
        timeout=120, check=False)
    assert result.returncode == EXIT_PARTIAL, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for name, line in zip(odd, lines, strict=True):
        shown, label = line.split(b": ", 1)
        assert label.split()[0].decode() in CIFAR10_CLASSES
        pasted = subprocess.run(["bash", "-c", b"printf %s " + shown], capture_output=True,
                                check=True)
        assert pasted.stdout == name
    error = result.stderr.decode().splitlines()[0]
    assert error.startswith(f"error: $'{tmp_path}/gone\\xff.jpg': no such file")


def test_a_run_dir_whose_name_is_not_utf_8_is_written_as_its_bytes(
        run_copy: Path, fake_cifar_dir: Path) -> None:
    """stdout under a UTF-8 locale refuses a name's non-UTF-8 bytes; evaluate (as train)
    failed with exit 70 on its last line, after all the work, where it names the run dir."""
    odd = os.fsencode(run_copy.parent) + b"/r\xe9sum\xe9"
    os.rename(run_copy, odd)
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "evaluate", odd, "--data", fake_cifar_dir],
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
        timeout=120, check=False)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.rstrip().endswith(b" in " + odd)


def test_predict_a_folder_classifies_the_images_in_it(
        trained_run: Path, images: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A folder of photos got "is a directory, not an image file": every file had to be named.
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    (photos / ".thumbnails").mkdir()
    shutil.copy(images["photo"], photos / "b.jpg")
    shutil.copy(images["icon"], photos / "trip" / "a.PNG")
    shutil.copy(images["icon"], photos / ".thumbnails" / "a.png")  # hidden: left out
    (photos / "notes.txt").write_text("not an image\n")  # not an image name: left out
    # found by review: a link to nothing was skipped in silence; it is reported
    (photos / "c.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(trained_run), str(photos), str(images["deep"]),
                 str(tmp_path / "empty")]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    named = [line.split(": ", 1)[0] for line in captured.out.splitlines()]
    assert named == [str(photos / "b.jpg"), str(photos / "trip" / "a.PNG"), str(images["deep"])]
    assert f"error: {tmp_path / 'empty'}: is a folder without image files" in captured.err
    assert (f"error: {photos / 'c.png'}: a link to nothing (it points to "
            f"{tmp_path / 'gone.png'})") in captured.err
    assert "2 of 5 files failed" in captured.err


def test_predict_json_and_top_k(trained_run: Path, images: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", str(trained_run), str(images["photo"]), "--top-k", "5", "--json"])
    assert code == EXIT_OK
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ok"] is True and entry["label"] in CIFAR10_CLASSES
    assert len(entry["top_k"]) == 5 and entry["top_k"][0]["label"] == entry["label"]
    # review: a name whose bytes are not UTF-8 went into the JSON as a lone surrogate
    # ("\\udcfd"), which strict parsers refuse; it is written as the text output shows it
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xfd.png")
    shutil.copy(images["photo"], odd)
    assert main(["predict", str(trained_run), odd, "--json"]) == EXIT_OK
    out = capsys.readouterr().out
    out.encode("utf-8")  # no lone surrogate: this raised
    (entry,) = json.loads(out)
    assert entry["path"] == f"$'{tmp_path}/caf\\xfd.png'"
    assert main(["predict", str(trained_run), odd]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"$'{tmp_path}/caf\\xfd.png': ")


def test_predict_some_bad_files_exit_partial(trained_run: Path, images: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    paths = [images["readme"], images["photo"], images["cut"]]
    assert main(["predict", str(trained_run), *map(str, paths)]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{images['photo']}: ")
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {images['readme']}: not an image")
    assert errors[1].startswith(f"error: {images['cut']}: truncated")


def test_a_dash_is_told_images_come_from_files_and_a_file_named_dash_is_dot_slash_dash(
        trained_run: Path, images: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `dlbox predict RUN - < cat.png` said "-: no such file"."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(images["photo"], tmp_path / "-")
    assert main(["predict", str(trained_run), "-", "./-"]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert captured.out.startswith("./-: ")
    assert captured.err.splitlines()[0] == (
        "error: -: images are read from files, not from stdin (-); save the image to a file "
        "and pass its path (a file named - is ./-)")


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


def test_a_path_too_long_to_look_up_fails_alone(trained_run: Path, images: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: telling a folder from a file (`Path.is_dir`) raised on a name too
    long for the system (ENAMETOOLONG), so the whole batch ended in `cannot use ...: File
    name too long` with "please report it". Such a path now fails on its own."""
    long_name = str(images["photo"].parent / ("a" * 5000))
    assert main(["predict", str(trained_run), str(images["photo"]), long_name]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{images['photo']}: ")
    assert (f"error: {long_name}: the path or a name in it is too long to open; rename the "
            "file or a folder above it to a shorter name (at most 255 bytes a name)\n"
            in captured.err)
    assert "1 of 2 files failed" in captured.err and "please report" not in captured.err


def predict_refused(prefix: list[str], run_dir: Path, *paths: Path,
                    chmod: dict[Path, int]) -> subprocess.CompletedProcess[str]:
    """`dlbox predict` of `paths` in a child process, with `chmod` (path: mode) applied and
    undone afterwards."""
    modes = {path: path.stat().st_mode & 0o7777 for path in chmod}
    for path, mode in chmod.items():
        path.chmod(mode)
    try:
        return subprocess.run([*prefix, sys.executable, "-m", "dlbox", "predict", str(run_dir),
                               *map(str, paths), "--device", "cpu"],
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_a_file_that_may_not_be_read_fails_alone_with_its_fix(
        trained_run: Path, images: dict[str, Path], tmp_path: Path,
        refused_prefix: list[str]) -> None:
    """Found by review: an IMAGE in a folder without search permission made telling a folder
    from a file raise EACCES, and the whole batch ended in `cannot use ...: Permission
    denied` with "please report it". Each such file fails on its own, with the fix: the
    permissions of the file, or of the folder above it that refuses."""
    secret = tmp_path / "secret.png"
    shutil.copy(images["icon"], secret)
    closed = tmp_path / "closed"
    closed.mkdir()
    inside = closed / "inside.png"
    shutil.copy(images["icon"], inside)
    result = predict_refused(refused_prefix, trained_run, secret, images["photo"], inside,
                             chmod={secret: 0o000, closed: 0o644})
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == [
        str(images["photo"])]
    assert result.stderr.splitlines() == [
        f"error: {secret}: permission denied; make it readable for you (chmod u+r), or run "
        "dlbox as the user that owns it (ls -l shows who)",
        f"error: {inside}: permission denied on the folder {closed}; make that folder "
        f"readable for you (chmod u+rx {closed}), or run dlbox as the user that owns it "
        "(ls -ld shows who)",
        "2 of 3 files failed"]


def test_a_folder_that_may_not_be_read_fails_alone_and_the_rest_is_predicted(
        trained_run: Path, images: dict[str, Path], tmp_path: Path,
        refused_prefix: list[str]) -> None:
    """Found by review: in a folder given to predict, a sub-folder that may not be listed
    was left out without a word, one that may be listed but not searched ended the batch
    with "please report it", and a folder given itself that may not be listed was "a folder
    without image files". Each is now a failure of its own, in path order, with the fix."""
    photos = tmp_path / "photos"
    for folder in ("private", "listed"):
        (photos / folder).mkdir(parents=True)
        shutil.copy(images["icon"], photos / folder / "b.png")
    shutil.copy(images["photo"], photos / "a.jpg")
    shutil.copy(images["icon"], photos / "z.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(images["icon"], locked / "c.png")
    result = predict_refused(refused_prefix, trained_run, photos, locked,
                             chmod={photos / "private": 0o000, photos / "listed": 0o644,
                                    locked: 0o000})
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == [
        str(photos / "a.jpg"), str(photos / "z.png")]
    fix = ("make it readable for you (chmod u+rx), or run dlbox as the user that owns it "
           "(ls -ld shows who)")
    assert result.stderr.splitlines() == [
        f"error: {photos / 'listed'}: permission denied: cannot open the files in this "
        f"folder; {fix}",
        f"error: {photos / 'private'}: permission denied: cannot list this folder; {fix}",
        f"error: {locked}: permission denied: cannot list this folder; {fix}",
        "3 of 5 files failed"]


def test_predict_with_a_checkpoint_without_class_names_is_a_one_line_error(
        run_copy: Path, images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Found by hand: a checkpoint without "classes" (which the checks allow, and evaluate
    handles by taking the data's) made predict fail with `unexpected IndexError` (exit 70)."""
    import torch

    path = run_copy / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["classes"]
    torch.save(state, path)
    assert main(["predict", str(run_copy), str(images["photo"])]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {path} has no class names")
    assert len(err.strip().splitlines()) == 2


# --- out of memory ------------------------------------------------------------------------

# Runs the CLI with its address space capped at what it uses once imported plus 1.2 GiB: the
# run's model (tiny at width 2048, 0.3 GB of weights) loads, its first activation for a batch
# (2 GB and more) does not.
OUT_OF_MEMORY_SCRIPT = """
import resource, sys
import dlbox.cli, dlbox.training.evaluate, dlbox.training.predict, torch
with open("/proc/self/status") as status:
    peak = int(status.read().split("VmPeak:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (peak + 1229 * 2**20, resource.RLIM_INFINITY))
sys.exit(dlbox.cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir of a tiny net at width 2048 (untrained: only its size matters), with 400
    test images."""
    import torch

    from dlbox.data.synthetic import write_fake_cifar10
    from dlbox.models import create_model
    from dlbox.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint
    from dlbox.training.config import build_config

    root = tmp_path_factory.mktemp("wide")
    write_fake_cifar10(root / "data", n_train=10, n_test=400)
    run = root / "run"
    config = build_config("tiny", device="cpu", width=2048, data_dir=str(root / "data"),
                          run_dir=str(run))
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    save_checkpoint(run / "checkpoints" / "last.pt", {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "config": config.to_dict(), "classes": list(CIFAR10_CLASSES), "epoch": 1,
        "model": create_model("tiny", width=2048).state_dict(), "finished": True})
    del torch
    return run


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_running_out_of_memory_is_a_one_line_error(
        wide_run: Path, images: dict[str, Path], command: str) -> None:
    """Found by hand: running out of memory ended in `unexpected RuntimeError: [enforce fail
    at alloc_cpu.cpp:127] ... please report it` (exit 70); on a GPU, in CUDA's
    OutOfMemoryError, the same way."""
    argv = [command, str(wide_run), "--device", "cpu"]
    if command == "predict":
        argv += [str(images["photo"])] * 256  # one batch of 256 images
    result = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY_SCRIPT, *argv],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_ERROR, result.stderr
    error, hint = result.stderr.splitlines()
    doing = {"evaluate": "evaluating in batches of 1000 images", "predict": "predicting"}
    assert re.fullmatch(f"error: out of memory on cpu {doing[command]} "
                        r"\(it asked for [\d,]+ MiB more\)", error), error
    assert hint == "hint: free memory used by other programs"
    assert not (wide_run / "predictions.csv").exists()


def test_a_bare_checkpoint_name_is_the_runs_own_before_a_file_here(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: in another run's checkpoints folder, `--checkpoint last.pt` took that
    run's last.pt (a file of that name here) and wrote its results into this run's metrics."""
    import torch

    elsewhere = tmp_path / "other-run" / "checkpoints"
    elsewhere.mkdir(parents=True)
    state = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    state["epoch"] = 67
    torch.save(state, elsewhere / "last.pt")
    torch.save(state, elsewhere / "mine.pt")
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(run_copy), "--checkpoint", "last.pt", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(run_copy / "checkpoints" / "last.pt")
    assert report["epoch"] != 67
    # A name the run lacks, with a file of that name here: that file, recorded in full (its
    # report elsewhere: the run's own describes its last checkpoint).
    output = ["--output", str(tmp_path / "report")]
    assert main(["evaluate", str(run_copy), "--checkpoint", "mine.pt", "--json", *output]
                ) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["checkpoint"], report["epoch"]) == (str(elsewhere / "mine.pt"), 67)
    # ./NAME.pt is a path, as the docs say: the file here, though the run has one too.
    assert main(["evaluate", str(run_copy), "--checkpoint", "./last.pt", "--json", *output]
                ) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["checkpoint"], report["epoch"]) == (str(elsewhere / "last.pt"), 67)
    assert main(["evaluate", str(run_copy), "--checkpoint", "./gone.pt"]) == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: checkpoint gone.pt does not exist")


def test_a_run_dir_that_cannot_be_written_is_refused_before_evaluating(
        run_copy: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, read_only_mount: Callable[[Path], None]) -> None:
    """Found by review: on a read-only run dir (a shared runs folder mounted read-only)
    evaluate ran the whole evaluation, then failed writing predictions.csv, metrics lost,
    with no word of --output."""
    read_only_mount(run_copy)
    assert main(["evaluate", str(run_copy)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing evaluated
    assert captured.err.splitlines() == [
        f"error: cannot write {run_copy}: the run's folder is not writable (Read-only file "
        "system)",
        f"hint: write the report elsewhere: dlbox evaluate {run_copy} --output DIR"]  # no chmod
    monkeypatch.undo()
    assert main(["evaluate", str(run_copy), "--output", str(run_copy.parent / "report")]) == 0


def test_a_tilde_in_an_output_flag_is_the_home_folder(run_copy: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `--output=~/reports` (the shell leaves a `~` after `=` as it is)
    made a folder named `~` in the current folder, where --data=~/... was expanded."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run_copy), "--output=~/reports", "--device", "cpu"]) == EXIT_OK
    assert (tmp_path / "home" / "reports" / "evaluation.json").is_file()
    assert not (tmp_path / "~").exists()


def test_a_damaged_metrics_file_is_hinted_with_what_deleting_it_does(
        run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the hint said a deletion would "keep only the test metrics"; the
    evaluation then writes the training history again, from the checkpoint's."""
    history = json.loads((run_copy / "metrics.json").read_text())["history"]
    (run_copy / "metrics.json").write_text("[1, 2]")
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_ERROR
    assert capsys.readouterr().err.splitlines()[1] == (
        "hint: restore it, or delete it: dlbox evaluate (without --checkpoint) writes it "
        "again, the training history from checkpoints/last.pt")
    (run_copy / "metrics.json").unlink()
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    assert json.loads((run_copy / "metrics.json").read_text())["history"] == history


def test_a_run_named_after_the_images_is_put_first_in_the_hint(
        trained_run: Path, images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `dlbox predict cat.png runs/x` said "pass the run directory dlbox
    train wrote, not a file in it"."""
    photo = str(images["photo"])
    for argv in ([photo, str(trained_run)], [photo, str(trained_run), photo]):
        assert main(["predict", *argv]) == EXIT_USAGE
        assert capsys.readouterr().err.splitlines() == [
            f"error: {trained_run} is a run directory, named after an image: the run comes "
            "first",
            f"hint: name it before the images, with the same flags: dlbox predict {trained_run} "
            "IMAGE..."]


def test_an_evaluation_keeps_the_modes_of_the_files_it_rewrites(run_copy: Path) -> None:
    """Found by review: evaluate writes its report into a staging folder and moves it in, so
    a 600 metrics.json or predictions.csv came back 644, readable by everyone."""
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    modes = {"metrics.json": 0o600, "predictions.csv": 0o600, "confusion_matrix.png": 0o640,
             "confusion_matrix.json": 0o444}
    for name, mode in modes.items():
        (run_copy / name).chmod(mode)
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    assert {name: (run_copy / name).stat().st_mode & 0o777 for name in modes} == modes


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder)."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob("*"))}


def test_a_report_of_another_checkpoint_is_refused_in_the_run_dir(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review 7: `dlbox evaluate runA --checkpoint runB/checkpoints/last.pt` wrote runB's
    model's test accuracy into runA's metrics.json, predictions and confusion matrix, with no
    word: the report in a run dir describes its own last checkpoint. Another checkpoint's
    report needs --output; nothing of the run is written (no lock file either)."""
    last = run_copy / "checkpoints" / "last.pt"
    other = tmp_path / "runB" / "checkpoints" / "last.pt"
    other.parent.mkdir(parents=True)
    shutil.copy(last, other)
    kept = run_copy / "checkpoints" / "epoch1.pt"  # another checkpoint of the run itself
    shutil.copy(last, kept)
    before = _snapshot(run_copy)
    for chosen, given in ((other, str(other)), (kept, "epoch1")):
        assert main(["evaluate", str(run_copy), "--checkpoint", given]) == EXIT_USAGE
        assert capsys.readouterr().err.splitlines() == [
            f"error: the report in {run_copy} describes its own last checkpoint "
            f"(checkpoints/last.pt), not {chosen}",
            "hint: pass --output DIR (a folder other than the run's) for this checkpoint's "
            f"report: dlbox evaluate {run_copy} "
            f"--checkpoint {given} --output DIR"]
        assert _snapshot(run_copy) == before
    # the run's own last checkpoint, named by its path, is the run's report
    assert main(["evaluate", str(run_copy), "--checkpoint", str(last), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(last)
    # with --output, the other checkpoint's report goes there, the run left as it is
    before = _snapshot(run_copy)
    report = tmp_path / "report"
    assert main(["evaluate", str(run_copy), "--checkpoint", str(other), "--output",
                 str(report), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(other)
    assert (report / "evaluation.json").is_file() and _snapshot(run_copy) == before


def test_a_report_file_linked_into_a_read_only_folder_replaces_nothing(
        run_copy: Path, tmp_path: Path, refused_prefix: list[str]) -> None:
    """Review 7: with confusion_matrix.json a link into a read-only folder, predictions.csv
    was already replaced when that file failed: the report half new, half old. Every file
    the report replaces is checked before the first one is."""
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    shared = tmp_path / "shared"
    shared.mkdir()
    linked = run_copy / "confusion_matrix.json"
    shutil.move(linked, shared / "confusion_matrix.json")
    linked.symlink_to(shared / "confusion_matrix.json")
    (run_copy / "predictions.csv").write_text("old\n")
    before = _snapshot(run_copy)
    shared.chmod(0o555)
    try:
        result = subprocess.run([*refused_prefix, sys.executable, "-m", "dlbox", "evaluate",
                                 str(run_copy), "--device", "cpu"],
                                capture_output=True, text=True, timeout=300, check=False)
    finally:
        shared.chmod(0o755)
    assert result.returncode == EXIT_ERROR, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: cannot write {shared / 'confusion_matrix.json'}: "
                               "Permission denied"), lines
    assert lines[1].startswith("hint: ") and str(shared) in lines[1], lines
    assert _snapshot(run_copy) == before


def test_a_report_file_linked_into_a_missing_folder_is_refused_not_replaced(
        run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by a docs check: confusion_matrix.json a link into a folder that is not there
    (an unmounted share) was replaced by a plain file without a word, the link gone; the
    docs say a linked file is followed, and refused before anything is replaced when its
    folder cannot be written."""
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    linked = run_copy / "confusion_matrix.json"
    linked.unlink()
    gone = tmp_path / "unmounted" / "cm.json"
    linked.symlink_to(gone)
    before = _snapshot(run_copy)
    capsys.readouterr()
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_ERROR
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"error: cannot write {gone}: "), lines
    assert linked.is_symlink() and _snapshot(run_copy) == before
    gone.parent.mkdir()  # mounted: the link is followed, and its file made
    assert main(["evaluate", str(run_copy), "--device", "cpu"]) == EXIT_OK
    assert linked.is_symlink() and json.loads(gone.read_text())["classes"]


def test_a_model_that_outputs_nan_is_one_error_of_the_run_not_of_each_image(
        run_copy: Path, images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Review 7: predict of a diverged run's model failed each image with "the model
    produced NaN or infinite outputs" and no fix, as if the files were at fault; it is one
    error of the run, with evaluate's hint."""
    import torch

    last = run_copy / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    for tensor in state["model"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    torch.save(state, last)
    for flags in ([], ["--json"]):
        assert main(["predict", str(run_copy), str(images["photo"]), str(images["icon"]),
                     "--device", "cpu", *flags]) == EXIT_ERROR
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [
            "error: the model produced NaN or infinite outputs for 2 of 2 images (did "
            "training diverge?)",
            "hint: retrain with a lower --lr, or predict with an earlier checkpoint "
            "(--checkpoint)"]


def test_predict_images_takes_one_path_as_one_image(
        trained_run: Path, images: dict[str, Path]) -> None:
    """Review 7: predict_images(run, "photo.png") predicted each character of the name as
    a file, and a Path raised TypeError (no len())."""
    from dlbox.training.predict import PredictionResult, predict_images

    for one in (str(images["photo"]), images["photo"]):
        results = predict_images(trained_run, one, device="cpu")
        assert len(results) == 1 and isinstance(results[0], PredictionResult), results
        assert results[0].path == str(images["photo"])
