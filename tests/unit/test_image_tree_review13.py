"""Review 13: `dlbox evaluate` reads an image tree's test split alone, with the run's classes
(train/ is not looked at), and a --data that does not exist is named so, not taken for a
request to download CIFAR-10."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from dlbox.cli import main
from dlbox.data.synthetic import write_fake_image_folder
from dlbox.errors import EXIT_ERROR, EXIT_OK
from dlbox.fileio import read_json

RUN_CLASSES = ("cat", "dog", "frog")


def image_split(folder: Path, classes: tuple[str, ...], per_class: int = 2,
                seed: int = 0) -> None:
    """folder/<class>/NNNN.png for each of `classes`: write_fake_image_folder's classes
    renamed (each class's images look alike, so a trained model tells them apart)."""
    scratch = folder.parent / f".scratch-{folder.name}"
    write_fake_image_folder(scratch, per_class=per_class, classes=len(classes), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(classes):
        (scratch / f"class_{index}").rename(folder / name)
    shutil.rmtree(scratch)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the tiny model, trained on an image tree of cat, dog and frog."""
    root = tmp_path_factory.mktemp("r13")
    tree = root / "tree"
    image_split(tree / "train", RUN_CLASSES, per_class=6)
    image_split(tree / "test", RUN_CLASSES, per_class=2)
    run_dir = root / "run"
    assert main(["train", "--model", "tiny", "--device", "cpu", "--epochs", "1",
                 "--data", str(tree), "--run-dir", str(run_dir), "--no-progress",
                 "--no-evaluate"]) == EXIT_OK
    return run_dir


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def evaluate(run_dir: Path, data: Path, output: Path) -> int:
    return main(["evaluate", str(run_dir), "--data", str(data), "--device", "cpu",
                 "--output", str(output)])


def test_a_class_folder_only_in_train_is_not_blamed_on_test(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: train/zebra (added for the next run) made evaluate say "the test data in
    .../test has cat, dog, frog, zebra (it adds zebra)", of a test/ without zebra."""
    tree = tmp_path / "e1"
    image_split(tree / "train", (*RUN_CLASSES, "zebra"))
    image_split(tree / "test", RUN_CLASSES, seed=1)
    capsys.readouterr()
    assert evaluate(trained_run, tree, tmp_path / "o1") == EXIT_OK, capsys.readouterr().err
    assert "zebra" not in capsys.readouterr().err
    document = read_json(tmp_path / "o1" / "evaluation.json")
    assert document["classes"] == list(RUN_CLASSES)
    assert document["test_images"] == 6


def test_a_class_sorted_first_in_train_only_leaves_the_runs_labels_as_they_are(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train/aardvark, sorted before the run's classes, made the union's labels shift by
    one: each test image must keep the run's label of its class (cat 0, dog 1, frog 2)."""
    tree = tmp_path / "e2"
    image_split(tree / "train", ("aardvark", *RUN_CLASSES))
    image_split(tree / "test", RUN_CLASSES, per_class=3, seed=2)
    assert evaluate(trained_run, tree, tmp_path / "o2") == EXIT_OK, capsys.readouterr().err
    rows = read_rows(tmp_path / "o2" / "predictions.csv")
    assert len(rows) == 9
    assert list(rows[0])[4:] == ["prob_cat", "prob_dog", "prob_frog", "path"]
    assert all(row["true_label"] == row["path"].split("/")[0] for row in rows)
    matrix = read_json(tmp_path / "o2" / "confusion_matrix.json")
    assert matrix["classes"] == list(RUN_CLASSES)
    assert [sum(row) for row in matrix["matrix"]] == [3, 3, 3]
    # the same images with no train/ at all: the same predictions, row by row
    shutil.rmtree(tree / "train")
    assert evaluate(trained_run, tree, tmp_path / "o3") == EXIT_OK
    assert read_rows(tmp_path / "o3" / "predictions.csv") == rows


def test_a_train_class_folder_whose_name_is_not_utf8_is_not_read_by_evaluate(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: train/caf\\xe9 (Latin-1) made evaluate fail with "the class folder
    .../train/caf\\xe9 has a name that is not UTF-8", though evaluate reads only test/."""
    tree = tmp_path / "tl"
    image_split(tree / "train", RUN_CLASSES)
    image_split(tree / "test", RUN_CLASSES, seed=3)
    os.rename(tree / "train" / "frog", os.fsencode(tree / "train") + b"/caf\xe9")
    image_split(tree / "train", ("frog",))
    capsys.readouterr()
    assert evaluate(trained_run, tree, tmp_path / "o4") == EXIT_OK, capsys.readouterr().err
    assert "UTF-8" not in capsys.readouterr().err


def test_a_test_class_folder_the_run_does_not_know_is_still_refused(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "e5"
    image_split(tree / "train", RUN_CLASSES)
    image_split(tree / "test", (*RUN_CLASSES, "zebra"), seed=4)
    capsys.readouterr()
    assert evaluate(trained_run, tree, tmp_path / "o5") == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: the run was trained on classes cat, dog, frog but the "
                          f"test data in {tree / 'test'} has cat, dog, frog, zebra (it adds "
                          "zebra)\n"), err
    assert not (tmp_path / "o5").exists()


def test_a_test_split_of_some_of_the_runs_classes_is_evaluated_with_the_runs_labels(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run's classes define the labels; a class the test split lacks is reported n/a,
    as one whose test/ folder is empty is (no `mkdir` needed)."""
    tree = tmp_path / "e6"
    image_split(tree / "test", ("dog", "frog"), seed=5)
    assert evaluate(trained_run, tree, tmp_path / "o6") == EXIT_OK, capsys.readouterr().err
    rows = read_rows(tmp_path / "o6" / "predictions.csv")
    assert sorted(row["true_label"] for row in rows) == ["dog", "dog", "frog", "frog"]
    assert all(row["true_label"] == row["path"].split("/")[0] for row in rows)
    per_class = read_json(tmp_path / "o6" / "evaluation.json")["per_class"]
    assert per_class["cat"]["total"] == 0 and per_class["cat"]["accuracy"] is None
    assert per_class["dog"]["total"] == 2


# --- finding 2: a --data that does not exist ---------------------------------------------


@pytest.mark.parametrize("command", [
    ["train", "--model", "tiny", "--device", "cpu", "--epochs", "1", "--no-progress"],
    ["data", "check"],
])
def test_a_data_dir_that_does_not_exist_is_named_so(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `--data nonexist` (a mistyped path to an image tree) said "no CIFAR-10 data
    found in .../nonexist" with only the hint to download CIFAR-10 into it."""
    missing = tmp_path / "nonexist"
    extra = ["--run-dir", str(tmp_path / "run")] if command[0] == "train" else []
    capsys.readouterr()
    assert main([*command, "--data", str(missing), *extra]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: --data {missing} does not exist\n" in err, err
    hint = err.split("hint: ", 1)[1]
    assert hint.startswith(f"check the path (an image tree is {missing}/train/<class>/<image>")
    assert f"or fetch CIFAR-10 into it: `dlbox data fetch --data {missing}`" in hint
    assert not missing.exists()


def test_evaluate_with_a_data_dir_that_does_not_exist_names_it(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexist"
    capsys.readouterr()
    assert evaluate(trained_run, missing, tmp_path / "o7") == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data {missing} does not exist\nhint: check the path (an "
                          f"image tree is {missing}/test/<class>/<image>"), err
    assert "config.json" not in err


def test_an_empty_data_dir_and_a_default_one_not_made_yet_keep_the_fetch_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["data", "check", "--data", str(empty)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: no CIFAR-10 data found in {empty}\nhint: run `dlbox data fetch --data " \
           f"{empty}`" in err
    # no --data, nothing fetched yet: the first run's "fetch it", not "does not exist"
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    default = tmp_path / "cache" / "dlbox" / "data"
    assert main(["data", "check"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: no CIFAR-10 data found in {default}\nhint: run `dlbox data fetch` (" in err


def test_train_gives_the_rename_for_class_folders_that_differ_only_in_case(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: train/cat beside test/Cat (two classes to dlbox): train warned "add training
    images of Cat, or remove its class folders", where renaming one folder is the fix that
    `dlbox data check` already gives."""
    from dlbox.data.loading import load_dataset
    from dlbox.training.loop import warn_of_classes_it_cannot_learn

    root = tmp_path / "tree"
    image_split(root / "train", ("cat", "dog"))
    image_split(root / "test", ("Cat", "dog"))
    warn_of_classes_it_cannot_learn(load_dataset(root, "train"), None, root)
    err = capsys.readouterr().err
    assert "no images of class Cat" in err, err
    assert f"rename it: mv {root / 'test' / 'Cat'} {root / 'test' / 'cat'}" in err, err
    assert "add training images" not in err
