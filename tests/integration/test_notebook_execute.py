"""first_pytorch_classifier.ipynb runs top to bottom (nbclient) on tiny synthetic data.

Parameters are injected the papermill way: a cell tagged `injected-parameters` right after
the one tagged `parameters`. The outputs must hold the tutorial's accuracy lines and images.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "first_pytorch_classifier.ipynb"
BUILDER = ROOT / "scripts" / "build_notebook.py"

pytestmark = [pytest.mark.notebook]


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def inject_parameters(notebook: Any, values: dict[str, object]) -> None:
    """Insert a cell setting `values` after the cell tagged `parameters` (papermill style)."""
    import nbformat

    cells = notebook.cells
    index = next(i for i, cell in enumerate(cells)
                 if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    cells.insert(index + 1, injected)


def execute_with_errors(notebook: Any, tmp_path: Path,
                        parameters: dict[str, object]) -> list[dict[str, Any]]:
    """Run `notebook` with `parameters` injected, in `tmp_path`, going on past errors as a
    user going cell by cell would; the error outputs, in order."""
    from nbclient import NotebookClient

    inject_parameters(notebook, parameters)
    client = NotebookClient(notebook, timeout=240, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return [output for cell in notebook.cells for output in cell.get("outputs", [])
            if output.get("output_type") == "error"]


def output_texts(notebook: Any) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif "data" in output:
                texts.append(output["data"].get("text/plain", ""))
            elif output.get("output_type") == "error":
                texts.append("\n".join(output.get("traceback", [])))
    return "\n".join(texts)


def png_outputs(notebook: Any) -> int:
    return sum(1 for cell in notebook.cells for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {}))


def test_committed_notebook_matches_its_builder() -> None:
    result = subprocess.run([sys.executable, str(BUILDER), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_notebook_has_parameters_cell_and_no_outputs() -> None:
    require(have("nbformat"), "nbformat")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("DATA_DIR", "NUM_TRAIN", "NUM_TEST", "EPOCHS", "MODEL", "DEVICE"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), name
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    # Found by review: papermill reads `NAME = value  # help` and drops a line whose help
    # holds "=" ("None = all of them"): `--help-notebook` listed 4 of 9 settings and `-p
    # NUM_TRAIN` warned "unknown parameter". Every setting's help is free of "=".
    settings = [line for line in tagged[0].source.splitlines() if re.match(r"^[A-Z_]+ = ", line)]
    assert len(settings) == 9
    for line in settings:
        assert "=" not in line.partition("#")[2], line


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("model", ["tutorial", "speedrun"])  # the tutorial net, the fast one
def test_notebook_runs_top_to_bottom_on_tiny_synthetic_data(tmp_path: Path, model: str) -> None:
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    run_dir = tmp_path / "run"
    my_image = tmp_path / "mine.jpg"
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 30, 30)).save(my_image)  # a user's own photo
    inject_parameters(notebook, {
        "DATA_DIR": None, "NUM_TRAIN": 300, "NUM_TEST": 100, "EPOCHS": 1,
        "MODEL": model, "DEVICE": "cpu", "RUN_DIR": str(run_dir),
        "MY_IMAGE": str(my_image),
    })
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    started = time.monotonic()
    client.execute()  # raises CellExecutionError (with the traceback) if a cell fails
    seconds = time.monotonic() - started
    assert seconds < 300, f"the notebook took {seconds:.0f} s on tiny data"

    text = output_texts(notebook)
    assert re.search(r"Accuracy of the network on the 100 test images: \d+ %", text), text
    per_class = re.findall(r"Accuracy for class: (\w+)\s+is (\d+\.\d) %", text)
    assert len(per_class) == 10, text
    assert {name for name, _ in per_class} >= {"airplane", "cat", "truck"}
    assert "100 predictions, one per test image" in text
    # The network shown is the one trained on the CPU (speedrun is narrower there).
    from dlbox.models import get_model_info

    cpu_count = get_model_info(model).params_by_recipe.get("cpu", get_model_info(model).params)
    assert f"total: {cpu_count:,} trainable parameters" in text, text
    # The layer table counts what is learned, as its total does; frozen weights (speedrun's
    # whitening, its BatchNorm scales) are named apart: the rows added up to more than it.
    table = text.split("output shape")[1].split("total: ")[0]
    rows = [line.split() for line in table.splitlines()[1:] if line.strip()]  # after the head
    assert sum(int(row[-1].replace(",", "")) if "frozen)" not in row else
               int(row[row.index("(+") - 1].replace(",", "")) for row in rows) == cpu_count
    assert ("frozen: not learned" in text) == (model == "speedrun"), text
    assert re.search(rf"^{model} +{cpu_count:,} parameters", text, re.M), text
    assert re.search(r"The network's guess for mine\.jpg: \w+ \(\d+\.\d% sure\)", text), text
    # sample grid, loss curves, confusion matrix, misclassified gallery, own-image plot
    assert png_outputs(notebook) >= 5, png_outputs(notebook)
    assert (run_dir / "predictions.csv").read_text().count("\n") == 101
    assert (run_dir / "confusion_matrix.png").stat().st_size > 1000
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert (run_dir / "model_weights.pt").is_file()
    # The run's lock file is not among the files listed; counts agree with their nouns.
    assert ".dlbox-run.lock" not in text
    assert re.search(r"learning rate \S+, 1 epoch$", text, re.M), text
    assert re.search(r"done: 1 epoch, \d+ steps? in ", text), text
    assert "epoch(s)" not in text
    # every code cell ran, in order
    counts = [c.execution_count for c in notebook.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_synthetic_data_and_run_folders_are_removed_when_the_kernel_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On synthetic data (no DATA_DIR, no RUN_DIR) the notebook makes two temp folders, the
    data and the run; both go when the kernel stops, also after a cell failed."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    temp = tmp_path / "kernel-tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the kernel's temp folder
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Up to the training cell, then a cell that fails, as a user's edit might.
    last = next(i for i, cell in enumerate(notebook.cells) if "NotebookProgress(" in cell.source)
    notebook.cells = notebook.cells[:last + 1]
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import os\n"
        "print('still there:', sorted(p for p in os.listdir(tempfile.gettempdir())"
        " if p.startswith('dlbox-')))\n"
        "raise RuntimeError('a failing cell')"))
    inject_parameters(notebook, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": None,
    })
    client = NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="a failing cell"):
        client.execute()  # shuts the kernel down (gracefully) before it raises
    text = output_texts(notebook)
    assert f"data: {temp}/dlbox-synthetic-" in text, text
    assert re.search(r"still there: \['dlbox-notebook-run-\w+', 'dlbox-synthetic-\w+'\]",
                     text), text
    left = sorted(path.name for path in temp.iterdir() if path.name.startswith("dlbox-"))
    assert left == [], f"left behind in the kernel's temp folder: {left}"
    # ... and the notebook said so where it saved the run.
    assert f"deleted when the kernel stops: {temp}/dlbox-notebook-run-" in text, text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_phone_photo_is_shown_upright_as_the_network_reads_it(tmp_path: Path) -> None:
    """A photo whose EXIF says "rotate me" (as phones save them): the network reads it
    upright, so the notebook must show it upright too (it used to show it on its side, next
    to the network's guess about the upright picture)."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat
    from nbclient import NotebookClient
    from PIL import Image

    photo = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels are to be turned 90 degrees clockwise
    Image.new("RGB", (60, 30), (200, 30, 30)).save(photo, exif=exif)  # upright: 30 x 60
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    inject_parameters(notebook, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": str(tmp_path / "run"), "MY_IMAGE": str(photo),
    })
    notebook.cells.append(nbformat.v4.new_code_cell(
        "print('shown:', left.get_images()[0].get_array().shape)"))
    client = NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = output_texts(notebook)
    assert "shown: (60, 30, 3)" in text, text  # height 60, width 30: upright


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stop_button_and_dlbox_errors_read_as_on_the_command_line(tmp_path: Path) -> None:
    """The kernel's stop button (a SIGINT to the kernel) during training, and a DlboxError
    raised in a cell, show the CLI's lines (what was saved, how to resume; error and hint)
    instead of a traceback through dlbox's code; the cell still fails."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    last = next(i for i, cell in enumerate(notebook.cells) if "NotebookProgress(" in cell.source)
    curves = next(cell for cell in notebook.cells if "training_history(" in cell.source)
    notebook.cells = notebook.cells[:last + 1]
    # The stop button: Jupyter interrupts a kernel by sending it SIGINT; send one after the
    # first training step.
    notebook.cells.insert(last, nbformat.v4.new_code_cell(
        "import os, signal\n"
        "from dlbox.jupyter import progress as _progress\n"
        "_update = _progress.NotebookProgress.update\n"
        "def _press_stop(self, epoch, step):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _update(self, epoch, step)\n"
        "_progress.NotebookProgress.update = _press_stop\n"
        "from dlbox.errors import DataError\n"
        "raise DataError('no data here', hint='pass --data DIR holding it, or run "
        "`dlbox data fetch --data X`')"))
    notebook.cells.append(curves)  # run after the stop, as a user going cell by cell would
    notebook.cells.append(nbformat.v4.new_code_cell("print('after the stop')"))
    run_dir = tmp_path / "run"
    errors = execute_with_errors(notebook, tmp_path, {
        "DATA_DIR": None, "NUM_TRAIN": 256, "NUM_TEST": 32, "EPOCHS": 3, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": str(run_dir),
    })
    assert [error["traceback"] for error in errors] == [
        # the command line's flag named as the notebook's setting; a command left whole
        ["error: no data here",
         "hint: set DATA_DIR to a folder holding it, or run `dlbox data fetch --data X`"],
        [f"training stopped (interrupted); state saved in {run_dir}/checkpoints/last.pt",
         "hint: run the training cell again (settings unchanged) to continue it, or resume it "
         f"in a terminal: dlbox train --resume {run_dir}"],
        # the curves of a run stopped in its first epoch: one line, not a FileNotFoundError
        [f"error: the run in {run_dir} has no finished epoch to plot: its training was "
         "stopped in its first epoch", "hint: run the training cell again (settings unchanged) "
         f"to continue it, or resume it in a terminal: dlbox train --resume {run_dir}"],
    ], errors
    assert errors[1]["ename"] == "TrainingStopped"
    # the bar says where it stopped (it stayed at "about 0:53 left")
    assert re.search(r"\] stopped in epoch 1/3, at step \d+/\d+, after ", output_texts(notebook))
    assert (run_dir / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_kept_on_synthetic_data_outlives_the_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: with RUN_DIR named on synthetic data, the run's data was a temp
    folder deleted with the kernel, so `dlbox evaluate RUN_DIR` then offered to download
    CIFAR-10 into it; and the drawn ship went into the run's folder, which a run stopped
    before it saved anything then could not be started in again."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat
    from nbclient import NotebookClient

    from dlbox.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the kernel's too
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    run_dir = tmp_path / "kept"
    inject_parameters(notebook, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": str(run_dir), "MY_IMAGE": None,
    })
    client = NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # the kernel has stopped when this returns
    data = tmp_path / "cache" / "dlbox" / "synthetic" / "train2000-test100-seed0"
    assert f"data: {data}  (synthetic" in output_texts(notebook)
    assert re.search(r"The network's guess for my_ship\.png: ", output_texts(notebook))
    assert "my_ship.png" not in {path.name for path in run_dir.rglob("*")}
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    assert (run_dir / "predictions.csv").read_text().count("\n") == 33


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_too_many_images_are_refused_in_the_data_cell_and_leave_no_run_folder(
        tmp_path: Path) -> None:
    """Review: NUM_TRAIN = 2000 with 500 images: the data cell silently took the 500, and
    the training cell then failed with a hint to "leave NUM_TRAIN out" and left an empty
    runs/<stamp>-tutorial/ behind, where `dlbox train` leaves nothing."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat

    from dlbox.data.synthetic import write_fake_cifar10

    data = tmp_path / "data"
    write_fake_cifar10(data, 500, 50)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    data_cell = next(cell for cell in notebook.cells if 'load_dataset(data_dir, "train")' in
                     cell.source or 'load_split(data_dir, "train"' in cell.source)
    training = next(cell for cell in notebook.cells if "NotebookProgress(" in cell.source)
    setup = notebook.cells[:notebook.cells.index(data_cell) + 1]
    notebook.cells = [*setup, nbformat.v4.new_code_cell("NUM_TRAIN = 2000"), training,
                      nbformat.from_dict(dict(data_cell))]
    errors = [output["traceback"] for output in execute_with_errors(notebook, tmp_path, {
        "DATA_DIR": str(data), "NUM_TRAIN": 100, "NUM_TEST": 50, "EPOCHS": 1,
        "MODEL": "tiny", "DEVICE": "cpu", "RUN_DIR": None,
    })]
    refusal = [f"error: NUM_TRAIN 2000 is more than the 500 train images in {data}",
               "hint: set NUM_TRAIN to 500 or less, or to None to use them all"]
    # the training cell, run before the data cell with the new NUM_TRAIN, sends it there
    # (review 10: it trained on other images than the data cell's, which it shows)
    changed = ["error: settings changed since the data cell ran (DATA_DIR, NUM_TRAIN, "
               "NUM_TEST or SEED)", "hint: run the data cell again"]
    assert errors == [changed, refusal], errors
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == [], list(runs.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_kept_after_the_data_cell_ran_for_a_throwaway_one_keeps_its_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: data cell with RUN_DIR None (synthetic data, deleted with the kernel), then,
    as the hint says, RUN_DIR = "~/kept" and the training cell: config.json named the temp
    data folder, so `dlbox evaluate` failed after the kernel stopped; and the curves cell of
    a run stopped after its first epoch read the literal "~/kept". The data kept is the one
    the data cell made (review: a SEED changed since made other data, silently)."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import json

    import nbformat
    from nbclient import NotebookClient

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the kernel's ~
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    data_cell = next(i for i, cell in enumerate(notebook.cells)
                     if "training images:" in cell.source)
    training = next(cell for cell in notebook.cells if "NotebookProgress(" in cell.source)
    curves = next(cell for cell in notebook.cells if "training_history(" in cell.source)
    notebook.cells = [*notebook.cells[:data_cell + 1], nbformat.v4.new_code_cell(
        'RUN_DIR = "~/kept"\n'
        "SEED = 5  # changed without running the data cell again: its data is the one kept\n"
        "import os, signal\n"
        "from dlbox.jupyter import progress as _progress\n"
        "_update = _progress.NotebookProgress.update\n"
        "def _press_stop(self, epoch, step):  # the stop button, in the second epoch\n"
        "    if epoch == 2:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _update(self, epoch, step)\n"
        "_progress.NotebookProgress.update = _press_stop"), training, curves,
        nbformat.v4.new_code_cell("print('epochs plotted:', len(history))")]
    inject_parameters(notebook, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 3, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": None,
    })
    client = NotebookClient(notebook, timeout=240, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # the kernel has stopped when this returns
    text = output_texts(notebook)
    assert "epochs plotted: 1" in text, text
    config = json.loads((home / "kept" / "config.json").read_text())
    data = tmp_path / "cache" / "dlbox" / "synthetic" / "train2000-test100-seed0"
    assert config["data_dir"] == str(data)
    assert (data / "cifar-10-batches-py").is_dir() or any(data.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_stop_button_before_the_first_step_stops_in_one_line_and_breaks_nothing(
        tmp_path: Path) -> None:
    """Found by review: the stop button in the training cell's first half second interrupted
    the first optimizer's import of torch._dynamo (and sympy), which left sympy half loaded:
    every later run of the training cell failed ("module 'sympy' has no attribute 'core'")
    until a restart; and the stop showed a KeyboardInterrupt's traceback. A stop before the
    first step (in that import, or while the data is read) now reads as the command line's
    "training stopped" line, and the training cell then runs again."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    last = next(i for i, cell in enumerate(notebook.cells) if "NotebookProgress(" in cell.source)
    data = next(i for i, cell in enumerate(notebook.cells) if "load_split(" in cell.source)
    training = notebook.cells[last]
    notebook.cells = notebook.cells[:data + 1]  # as after a restart: the settings, the data
    # The stop button (a SIGINT to the kernel) while sympy imports, as the first optimizer
    # of a kernel imports it (through torch._dynamo): a finder asked for it sends the SIGINT.
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import os, signal, sys\n"
        "class _PressStop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sympy.core' and self in sys.meta_path:\n"
        "            sys.meta_path.remove(self)\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "print('sympy' in sys.modules)\n"
        "sys.meta_path.insert(0, _PressStop())"))
    notebook.cells.append(nbformat.v4.new_code_cell(training.source))
    # ... and while the training cell reads the data
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import dlbox.training.loop as _loop\n"
        "_load_split = _loop.load_split\n"
        "def _pressed(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _load_split(*args, **kwargs)\n"
        "_loop.load_split = _pressed"))
    notebook.cells.append(nbformat.v4.new_code_cell(training.source))
    notebook.cells.append(nbformat.v4.new_code_cell("_loop.load_split = _load_split"))
    notebook.cells.append(nbformat.v4.new_code_cell(training.source))  # runs to its end
    run_dir = tmp_path / "run"
    errors = execute_with_errors(notebook, tmp_path, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": str(run_dir),
    })
    stopped = ["training stopped (interrupted) before its first epoch ended; nothing was saved",
               "hint: run the training cell again"]
    assert [error["traceback"] for error in errors] == [stopped, stopped], errors
    text = output_texts(notebook)
    assert "False" in text.split(), text  # the finder was there when sympy imported
    assert re.search(r"done: 1 epoch, \d+ steps? in ", text), text
    assert "stopped in epoch" not in text  # the bar claims no stop where training never began
    assert (run_dir / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cells_run_before_the_cells_they_need_say_so_in_one_line(tmp_path: Path) -> None:
    """Found by review: the training cell run before the data cell failed with a raw
    `NameError: name 'loaded_with' is not defined` ('DATA_DIR' in a fresh kernel), and the
    gallery of wrong guesses, with the cell defining show_images (or predictions) skipped,
    with another."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = notebook.cells
    settings = next(i for i, cell in enumerate(cells) if "parameters" in
                    cell.metadata.get("tags", []))
    data = next(i for i, cell in enumerate(cells) if "load_split(" in cell.source)
    training = next(cell for cell in cells if "NotebookProgress(" in cell.source)
    gallery = next(cell for cell in cells if "misclassified" in cell.source)
    shows = next(cell for cell in cells if "def show_images" in cell.source)
    copy = nbformat.from_dict
    notebook.cells = [copy(dict(training)),  # in a fresh kernel
                      *cells[settings:data],  # the settings and setup cells
                      copy(dict(training)),  # before the data cell
                      cells[data], copy(dict(gallery)),  # show_images' cell skipped
                      shows, copy(dict(gallery))]  # the predictions' cell skipped
    errors = execute_with_errors(notebook, tmp_path, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 1, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": None,
    })
    in_order = "hint: run the cells above in order (Run > Run All Cells)"
    assert [error["traceback"] for error in errors] == [
        ["error: the data cell has not run yet", in_order],
        ["error: the data cell has not run yet", in_order],
        ["error: the cell that shows the first images (it defines show_images) has not run "
         "yet", in_order],
        ["error: the cell that reads the predictions has not run yet", in_order],
    ], errors
    assert {error["ename"] for error in errors} == {"UsageError"}
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("named", [True, False])  # RUN_DIR named; None: the kernel's own run
def test_the_training_cell_run_again_after_the_stop_button_continues_the_run(
        tmp_path: Path, named: bool) -> None:
    """Found by review: the stop button, then the training cell again, started a new run
    (RUN_DIR None) or was refused ("already holds a run; continue it with dlbox train
    --resume ..."), where a notebook user expects the run to go on."""
    require(have("nbclient") and have("ipykernel"), "nbclient and ipykernel")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    last = next(i for i, cell in enumerate(notebook.cells) if "NotebookProgress(" in cell.source)
    training = notebook.cells[last]
    notebook.cells = notebook.cells[:last]
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import os, signal\n"
        "from dlbox.jupyter import progress as _progress\n"
        "_update = _progress.NotebookProgress.update\n"
        "def _press_stop(self, epoch, step):  # once, in the first epoch\n"
        "    if (epoch, step) == (1, 2):\n"
        "        _progress.NotebookProgress.update = _update\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _update(self, epoch, step)\n"
        "_progress.NotebookProgress.update = _press_stop"))
    notebook.cells.append(nbformat.from_dict(dict(training)))
    notebook.cells.append(nbformat.from_dict(dict(training)))  # run again: goes on
    notebook.cells.append(nbformat.v4.new_code_cell(
        "from dlbox.jupyter.notebooks import training_history\n"
        "print('run:', run_dir, [entry['epoch'] for entry in training_history(run_dir)])"))
    run_dir = tmp_path / "run"
    errors = execute_with_errors(notebook, tmp_path, {
        "DATA_DIR": None, "NUM_TRAIN": 64, "NUM_TEST": 32, "EPOCHS": 2, "MODEL": "tiny",
        "DEVICE": "cpu", "RUN_DIR": str(run_dir) if named else None,
    })
    assert [error["ename"] for error in errors] == ["TrainingStopped"], errors
    text = output_texts(notebook)
    stopped = re.search(r"state saved in (\S+)/checkpoints/last\.pt", text)
    assert stopped, text
    if named:
        assert stopped.group(1) == str(run_dir)
    assert f"continuing the run stopped in {stopped.group(1)}" in text, text
    assert re.search(r"done: 2 epochs, \d+ steps in ", text), text
    assert f"run: {stopped.group(1)} [1, 2]" in text, text
