"""Review 14 of first_pytorch_classifier.ipynb: cells run out of order, or after settings
changed, say so in an error and a hint (not a NameError, an IndexError, or silently other
images).

The notebook's cells run here in-process, in one namespace as a kernel would hold them
(tiny synthetic data, the tiny model, one epoch on the CPU): no Jupyter, a few seconds.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from dlbox.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "first_pytorch_classifier.ipynb"
SETTINGS = {"DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
            "DEVICE": "cpu", "RUN_DIR": None, "MY_IMAGE": None}


class Kernel:
    """The notebook's code cells, found by what they hold, run in one namespace."""

    def __init__(self) -> None:
        nbformat = pytest.importorskip("nbformat")
        self.cells = [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
                      if cell.cell_type == "code"]
        self.namespace: dict[str, Any] = {"__name__": "__main__"}

    def cell(self, text: str) -> str:
        (found,) = [source for source in self.cells if text in source]
        return found

    def run(self, text: str) -> str:
        """Run the cell holding `text`; what it printed."""
        return self.code(self.cell(text))

    def code(self, source: str) -> str:
        """Run `source` as a cell of the user's; what it printed."""
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(source, "<cell>", "exec"), self.namespace)  # noqa: S102 - our own
        return printed.getvalue()

    def refused(self, text: str) -> tuple[str, str | None]:
        """The error and hint the cell holding `text` fails with."""
        with pytest.raises(UsageError) as raised:
            self.run(text)
        return raised.value.message, raised.value.hint


SETTINGS_CELL = "RUN_DIR = None       #"
SETUP = "find_cifar10(DATA_DIR)"
DATA = 'load_split(data_dir, "train"'
SHOWS = "def show_images"
TRAINING = "NotebookProgress("
CURVES = "training_history(run_dir)"
EVALUATE = "evaluate_run(run_dir"
PREDICTIONS = 'run_dir / "predictions.csv"'
CONFUSION = "confusion_matrix.png"
GALLERY = "misclassified"
SAVE = "load_model_from_run(run_dir"
OWN_IMAGE = "predict_images(run_dir"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kernel:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    monkeypatch.delenv("DLBOX_NOTEBOOK_SMOKE", raising=False)
    monkeypatch.chdir(tmp_path)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR read again
    kernel = Kernel()
    kernel.run(SETTINGS_CELL)
    kernel.code("\n".join(f"{name} = {value!r}" for name, value in SETTINGS.items()) + "\n")
    return kernel


IN_ORDER = "run the cells above in order (Run > Run All Cells)"


def test_cells_after_training_run_before_it_say_so_in_one_line(kernel: Kernel) -> None:
    """Review: the test cell (or the curves, predictions or save cell) run before the
    training cell failed with `NameError: name 'run_dir' is not defined`."""
    kernel.run(SETUP)
    kernel.run(DATA)
    for cell in (CURVES, EVALUATE, PREDICTIONS, CONFUSION, SAVE, OWN_IMAGE):
        assert kernel.refused(cell) == ("the training cell has not run yet", IN_ORDER), cell
    kernel.run(TRAINING)
    run_dir = kernel.namespace["run_dir"]
    for cell in (PREDICTIONS, CONFUSION):  # they read what the test cell wrote, for this run
        assert kernel.refused(cell) == (f"the test cell has not run for the run in {run_dir} "
                                        "yet", "run the test cell, then this cell"), cell
    # each guard is one line of the cell
    for cell in (CURVES, EVALUATE, PREDICTIONS, CONFUSION, SAVE, OWN_IMAGE):
        assert kernel.cell(cell).count("cell_ran(globals()") == 1, cell


def test_a_new_num_train_on_synthetic_data_sends_to_the_setup_cell(kernel: Kernel) -> None:
    """Review: on synthetic data, NUM_TRAIN raised (as the notebook suggests) and the data
    cell run again said "NUM_TRAIN 5000 is more than the 2,000 train images" / "set
    NUM_TRAIN to 2000 or less": the setup cell makes the data for the new NUM_TRAIN."""
    kernel.run(SETUP)
    kernel.run(DATA)
    for change in ("NUM_TRAIN = 5000", "NUM_TEST = 500", "SEED = 3"):
        kernel.code(change)
        message, hint = kernel.refused(DATA)
        assert message == (f"{change.split(' = ')[0]} changed since the setup cell made the "
                           "synthetic data"), message
        assert hint == "run the setup cell again (it makes the data anew), then this cell"
        kernel.run(SETUP)
        assert "training images: (" in kernel.run(DATA)
    assert len(kernel.namespace["train_set"]) == 5000
    assert len(kernel.namespace["test_set"]) == 500


def test_the_gallery_refuses_test_images_the_run_was_not_tested_on(kernel: Kernel) -> None:
    """Review: NUM_TEST changed, the setup and data cells run again after training: the test
    cell evaluated on the run's own 100 test images without a word, then the gallery of wrong
    guesses failed with `IndexError: index 12 is out of bounds for dimension 0 with size 10`
    (it indexed the data cell's images with predictions.csv's)."""
    for cell in (SETUP, DATA, SHOWS, TRAINING, EVALUATE, PREDICTIONS):
        kernel.run(cell)
    assert "misclassified" in kernel.run(GALLERY)
    kernel.code("NUM_TEST = 10")
    kernel.run(SETUP)
    kernel.run(DATA)
    printed = kernel.run(EVALUATE)
    assert "Accuracy of the network on the 32 test images" in printed, printed
    assert ("note: this run is tested with its own NUM_TEST (32), not NUM_TEST = 10: to test "
            "on 10 test images, train a run with NUM_TEST = 10") in printed, printed
    kernel.run(PREDICTIONS)
    message, hint = kernel.refused(GALLERY)
    assert message == ("the data cell's test images are not the ones this run was tested on: "
                       "NUM_TEST changed since the training cell ran"), message
    assert hint == ("set NUM_TEST back to 32, then run the setup cell and the data cell "
                    "again; or train a run on these images (the training cell and the cells after "
                    "it)"), hint
    # a SEED changed: as many images, other ones
    kernel.code("NUM_TEST = 32\nSEED = 4\n")
    kernel.run(SETUP)
    kernel.run(DATA)
    message, hint = kernel.refused(GALLERY)
    assert message.endswith(": SEED changed since the training cell ran"), message
    assert hint is not None and hint.startswith("set SEED back to 0, then run the setup cell"), hint
    kernel.code("SEED = 0\n")
    kernel.run(SETUP)
    kernel.run(DATA)
    assert "misclassified" in kernel.run(GALLERY)
    # predictions read of another number of images (a test cell's old predictions.csv)
    kernel.code("predictions = predictions[:5]\n")
    message, hint = kernel.refused(GALLERY)
    assert message == ("the predictions read are of 5 test images, the data cell's are 32"), \
        message
    assert hint == "run the test cell and the cell that reads the predictions again", hint


def test_the_gallery_refuses_the_predictions_of_an_earlier_run(kernel: Kernel) -> None:
    """Re-review: SEED changed, the setup, data and training cells run again, the test and
    predictions cells not: the gallery captioned the new run's test images with the earlier
    run's guesses (the same number of them)."""
    for cell in (SETUP, DATA, SHOWS, TRAINING, EVALUATE, PREDICTIONS):
        kernel.run(cell)
    assert "misclassified" in kernel.run(GALLERY)
    kernel.code("SEED = 1\n")
    for cell in (SETUP, DATA, TRAINING):
        kernel.run(cell)
    both = "run the test cell and the cell that reads the predictions again, then this cell"
    message, hint = kernel.refused(GALLERY)
    assert message.startswith("the test cell has not run for the run in "), message
    assert hint == both, hint  # (re-review: "run the test cell" alone was not enough)
    kernel.run(EVALUATE)  # a new test cell, the predictions not read again
    message, hint = kernel.refused(GALLERY)
    assert message == ("the predictions read are not this run's latest: the test cell ran "
                       "since the cell that reads them"), message
    assert hint == both, hint
    kernel.run(PREDICTIONS)
    assert "misclassified" in kernel.run(GALLERY)


def test_a_continued_run_is_tested_again_before_its_predictions_are_read(
        kernel: Kernel) -> None:
    """Re-review: a run stopped, tested, then continued by the training cell: its old
    predictions.csv (of the stopped weights) was read and shown as the run's."""
    import os

    for cell in (SETUP, DATA, SHOWS, TRAINING, EVALUATE, PREDICTIONS):
        kernel.run(cell)
    run_dir = kernel.namespace["run_dir"]
    last = run_dir / "checkpoints" / "last.pt"
    later = (run_dir / "predictions.csv").stat().st_mtime_ns + 1_000_000  # 1 ms
    os.utime(last, ns=(later, later))  # the training went on after the test cell ran
    message, hint = kernel.refused(PREDICTIONS)
    assert message == (f"the test cell has not run since the training cell went on with the "
                       f"run in {run_dir}"), message
    assert kernel.refused(GALLERY)[0] == message
    kernel.run(EVALUATE)
    kernel.run(PREDICTIONS)
    assert "misclassified" in kernel.run(GALLERY)


def test_the_settings_and_network_text_name_every_model() -> None:
    """Review: the settings' comment offered "tutorial" or "resnet", where tiny and speedrun
    are taken too; the network's text described the tutorial network whatever MODEL was."""
    nbformat = pytest.importorskip("nbformat")
    from dlbox.models import model_names

    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    settings = next(cell.source for cell in cells
                    if "parameters" in cell.metadata.get("tags", []))
    lines = settings.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("MODEL = "))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    comment = "\n".join(lines[start:end])  # its line and the comment lines under it
    for name in model_names():
        assert f'"{name}"' in comment, (name, comment)
    text = next(cell.source for cell in cells if cell.cell_type == "markdown"
                and "max-pooling" in cell.source)
    assert 'MODEL = "tutorial"' in text and "the default" in text, text
    assert "whichever" in text, text


def test_the_gallery_names_a_data_dir_changed_since_training(tmp_path: Path) -> None:
    from dlbox.jupyter.kernel import check_test_images

    synthetic = ((300, 100, 0), 300, 100)  # loaded_with: (made_with, NUM_TRAIN, NUM_TEST)
    real = (tmp_path / "cifar10", 300, 100)
    with pytest.raises(UsageError) as raised:
        check_test_images(real, synthetic, 100, 100)
    assert raised.value.message.endswith(": DATA_DIR changed since the training cell ran")
    assert raised.value.hint == (
        "set DATA_DIR to the run's data (the synthetic look-alike), then run the setup cell "
        "and the data cell again; or train a run on these images (the training cell and the cells "
        "after it)")
    with pytest.raises(UsageError) as raised:
        check_test_images((tmp_path, 300, 50), real, 50, 100)
    assert raised.value.message.endswith(": DATA_DIR and NUM_TEST changed since the training "
                                         "cell ran"), raised.value.message
    assert raised.value.hint is not None
    assert raised.value.hint.startswith(f"set DATA_DIR to the run's data ({tmp_path / 'cifar10'})"
                                        " and NUM_TEST back to 100, then run"), raised.value.hint
    check_test_images(((5000, 100, 0), 5000, 100), synthetic, 100, 100)  # NUM_TRAIN: same images
