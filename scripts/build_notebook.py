#!/usr/bin/env python3
"""Build notebooks/first_pytorch_classifier.ipynb from the cells written out below.

The notebook is generated so that it stays reviewable: edit the cells here, then run

    .venv/bin/python scripts/build_notebook.py            # (re)write the notebook
    .venv/bin/python scripts/build_notebook.py --check    # exit 1 if the file is stale

The output is deterministic (fixed cell ids, no outputs, no execution counts), so a rebuild
of unchanged cells gives the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PATH = ROOT / "notebooks" / "first_pytorch_classifier.ipynb"


def md(text: str) -> tuple[str, str, list[str]]:
    return ("markdown", textwrap.dedent(text).strip("\n"), [])


def code(text: str, tags: list[str] | None = None) -> tuple[str, str, list[str]]:
    return ("code", textwrap.dedent(text).strip("\n"), tags or [])


CELLS = [
    md("""
    # Your first image classifier with PyTorch (and dlbox)

    In this notebook you teach a small neural network to recognise what is in a photo:
    an airplane, a car, a bird, a cat, a deer, a dog, a frog, a horse, a ship or a truck.
    These are the ten classes of **CIFAR-10**, a classic data set of 60 000 tiny colour
    photos (32 x 32 pixels): 50 000 to learn from, 10 000 to test on.

    You will:

    1. load the photos and look at some of them,
    2. pick a network and see what it is made of,
    3. train it (on the GPU when this machine has one),
    4. test it on photos it has never seen: the accuracy overall and per class, the confusion
       matrix, and the photos it got wrong,
    5. save it, load it back, and ask it about a picture of your own.

    **How to run it.** Click into a cell and press **Shift+Enter** to run it and move to the
    next one, or use the menu **Run > Run All Cells**. While a cell runs, its prompt shows
    `[*]` and the circle at the top right of the notebook is filled: the *kernel* (the Python
    process behind this notebook) is busy. When the circle is empty again, it is done.

    The heavy lifting is done by the `dlbox` library (the same code as the `dlbox train`,
    `dlbox evaluate` and `dlbox predict` commands), so what you see here is what those
    commands do.
    """),
    md("""
    ## 0. Settings

    The next cell holds every setting of this notebook. The defaults repeat the PyTorch
    tutorial: its small network, 2 passes (*epochs*) over all 50 000 training images. On a
    laptop CPU that takes a few minutes; for a quick first look, set `NUM_TRAIN = 5000`.

    (Tools such as papermill can replace this cell's values: it is tagged `parameters`.)
    """),
    code("""
    # Where CIFAR-10 is: "auto" = the copy `dlbox data fetch` downloaded, if there is one,
    # else a small synthetic look-alike; None = always the synthetic look-alike; or a folder.
    DATA_DIR = "auto"
    NUM_TRAIN = None     # how many training images to use (None: all of them)
    NUM_TEST = None      # how many test images to use (None: all of them)
    EPOCHS = 2           # passes over the training images
    MODEL = "tutorial"   # "tutorial" (the PyTorch tutorial's network), "resnet" (better,
                         # slower), "speedrun" or "speedrun-long" (fast CNNs, made for a GPU),
                         # "tiny" (a very small network, for a quick try): see `dlbox models`
    DEVICE = "auto"      # "auto": the GPU if there is one, else the CPU; or "cpu", "cuda"
    SEED = 0             # the same seed gives the same run on the same machine
    MY_IMAGE = None      # a photo of yours to classify (a path); None: draw one
    RUN_DIR = None       # where the trained model is saved; None: a new folder under runs/
                         # each time (on synthetic data: a temporary folder, deleted when the
                         # kernel stops); a folder named here must not hold a run already,
                         # but one the stop button stopped (the training cell continues it)
    """, tags=["parameters"]),
    code("""
    import atexit
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import matplotlib.pyplot as plt
    import torch

    import dlbox
    from dlbox.data.loading import detect_layout
    from dlbox.data.paths import resolve_data_dir
    from dlbox.fileio import expand_user
    from dlbox.jupyter.notebooks import (check_settings, how_to_get_cifar10,
                                         name_settings_in_errors, synthetic_cifar10)

    name_settings_in_errors()  # dlbox's hints say EPOCHS, DEVICE, ... here, not --epochs

    # A quick smoke run (used by dlbox's own tests): tiny synthetic data, one short epoch.
    if os.environ.get("DLBOX_NOTEBOOK_SMOKE") == "1":
        DATA_DIR, NUM_TRAIN, NUM_TEST, EPOCHS, MODEL = None, 300, 100, 1, "tutorial"

    def scratch_folder(prefix):
        \"\"\"A new temporary folder, deleted when this notebook's kernel stops.\"\"\"
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return folder

    def find_cifar10(setting):
        \"\"\"The data folder to use, and whether it is the synthetic stand-in.\"\"\"
        if setting == "auto":
            candidate = resolve_data_dir(None)  # $DLBOX_DATA, else dlbox's cache folder
            if detect_layout(candidate) is not None:
                return candidate, False
            print(f"CIFAR-10 is not in {candidate}: using a small synthetic look-alike.")
            print(how_to_get_cifar10())  # in a terminal (on the host, from a container)
        elif setting is not None:
            return expand_user(setting), False
        # Deleted with the kernel, as a throwaway run is; kept in dlbox's cache for a run
        # kept in RUN_DIR, to evaluate or resume later.
        folder = scratch_folder("dlbox-synthetic-") if RUN_DIR is None else None
        return synthetic_cifar10(folder, NUM_TRAIN, NUM_TEST, SEED), True

    check_settings(DATA_DIR=DATA_DIR, NUM_TRAIN=NUM_TRAIN, NUM_TEST=NUM_TEST, EPOCHS=EPOCHS,
                   MODEL=MODEL, DEVICE=DEVICE, SEED=SEED, MY_IMAGE=MY_IMAGE, RUN_DIR=RUN_DIR)
    data_dir, synthetic = find_cifar10(DATA_DIR)
    found_for = DATA_DIR  # the setting data_dir was found for: the training cell checks it
    made_with = (NUM_TRAIN, NUM_TEST, SEED)  # the synthetic data's sizes and seed, if it is
    print(f"dlbox {dlbox.__version__}, torch {torch.__version__}")
    note = "  (synthetic: coloured stripes, not photos)" if synthetic else ""
    print(f"data: {data_dir}{note}")
    """),
    md("""
    ## 1. The data

    `load_split` reads a split (its first `NUM_TRAIN` or `NUM_TEST` images; asking for more
    than it holds is an error that says how many it has) into memory at once: `images` is a
    tensor of unsigned bytes with shape `[N, 3, 32, 32]` (N images, 3 colour channels red /
    green / blue, 32 x 32 pixels, values 0..255), and `labels` holds one number 0..9 per
    image, an index into `classes`.
    """),
    code("""
    from dlbox.jupyter.notebooks import check_made_with
    from dlbox.training.loop import load_split

    if synthetic:  # the setup cell made it for its NUM_TRAIN, NUM_TEST and SEED
        check_made_with(made_with, NUM_TRAIN, NUM_TEST, SEED)
    train_set = load_split(data_dir, "train", NUM_TRAIN, refuse_short=True)
    test_set = load_split(data_dir, "test", NUM_TEST, refuse_short=True)
    classes = train_set.classes
    # what these images were read with: the training cell refuses other settings
    loaded_with = (made_with if synthetic else data_dir, NUM_TRAIN, NUM_TEST)

    print(f"training images: {tuple(train_set.images.shape)}, {train_set.images.dtype}")
    print(f"test images:     {tuple(test_set.images.shape)}")
    print(f"classes: {', '.join(classes)}")
    """),
    code("""
    def show_images(images, titles, columns=8, size=1.6):
        \"\"\"A grid of uint8 [N, 3, H, W] images with a title under each.\"\"\"
        rows = (len(images) + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * (size + 0.35)),
                                    squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, image, title in zip(axes.flat, images, titles, strict=False):  # spare axes blank
            ax.imshow(image.permute(1, 2, 0).numpy())  # [3, H, W] -> [H, W, 3] for matplotlib
            ax.set_title(title, fontsize=9)
        figure.tight_layout()
        plt.show()

    first = train_set.images[:24]
    show_images(first, [classes[label] for label in train_set.labels[:24].tolist()])
    """),
    md("""
    ## 2. The network

    A *network* (or *model*) turns the 3 x 32 x 32 numbers of an image into 10 scores, one
    per class; the highest score is its guess. dlbox knows several networks by name:
    """),
    code("""
    from dlbox.models import count_parameters, create_model, list_models, recipe_for
    from dlbox.training.device import resolve_device

    # Some networks are built narrower on a CPU, to train there in minutes: the counts are
    # those of the networks DEVICE trains.
    on = "cpu" if resolve_device(DEVICE).type == "cpu" else "gpu"
    print(f"as built for the {on.upper()}:")
    for info in list_models():
        count = info.params_by_recipe.get(on, info.params)
        print(f"{info.name:13s} {count:>10,} parameters   {info.description}")
    """),
    md("""
    `tutorial` (`MODEL = "tutorial"`, the default) is the network of PyTorch's tutorial: two
    *convolution* layers that look for small patterns (edges, colour blobs), each followed by
    *max-pooling* that halves the picture, then three *fully connected* layers that combine
    everything into the 10 scores. The cell below prints whichever network `MODEL` names:
    every layer with the shape of what it outputs for one image and the number of weights it
    learns.
    """),
    code("""
    def summarize(model, input_shape=(1, 3, 32, 32)):
        \"\"\"Print each layer, its output shape for one image, and its parameter count.\"\"\"
        rows = []

        def record(module, inputs, output, name):
            own = module.parameters(recurse=False)
            learned = frozen = 0
            for p in own:
                if p.requires_grad:
                    learned += p.numel()
                else:  # set once and kept (speedrun's whitening layer): not learned
                    frozen += p.numel()
            rows.append((name, type(module).__name__, tuple(output.shape), learned, frozen))

        leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: record(mod, i, o, n))
                 for n, m in leaves]
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
        for hook in hooks:
            hook.remove()
        width = max([len(kind) for _, kind, _, _, _ in rows] + [18])
        print(f"{'layer':22s} {'type':{width}s} {'output shape':20s} {'parameters':>10s}")
        for name, kind, shape, count, frozen in rows:
            print(f"{name:22s} {kind:{width}s} {str(shape):20s} {count:>10,}"
                  + (f"  (+ {frozen:,} frozen)" if frozen else ""))
        frozen = sum(row[4] for row in rows)
        print(f"total: {count_parameters(model):,} trainable parameters"
              + (f" (+ {frozen:,} frozen: not learned)" if frozen else ""))

    # The network as DEVICE trains it (its recipe's settings: resnet is narrower on a CPU).
    settings = recipe_for(MODEL, resolve_device(DEVICE)).model_kwargs
    model = create_model(MODEL, num_classes=len(classes), **settings)
    print(model)
    print()
    summarize(model)
    """),
    md("""
    ## 3. Training, on the CPU or the GPU

    Training shows the network a *batch* of images, measures how wrong its scores are (the
    *loss*), and nudges every weight a little in the direction that lowers the loss. One
    pass over all training images is an *epoch*.

    **CPU or GPU?** All of this is arithmetic on big arrays of numbers. A CPU has a handful
    of fast cores; a GPU has thousands of simple ones and does this kind of arithmetic tens
    to hundreds of times faster. With `DEVICE = "auto"` dlbox uses an NVIDIA GPU when
    PyTorch can see one (a CUDA build of PyTorch and a working NVIDIA driver), and the CPU
    otherwise. `dlbox doctor` in a terminal tells you what this machine has and what is
    missing.

    **GPUs and Docker.** A Docker container does not see the host's GPU by itself. The
    NVIDIA Container Toolkit (formerly `nvidia-docker`) lends it to a container when you ask
    with `docker run --gpus all ...`; with dlbox, `dlbox image build --gpu` makes an image
    with a CUDA build of PyTorch and `dlbox image run --gpus all -- dlbox train` trains in it
    on the GPU. Inside the container only the driver comes from the host: the image brings
    the CUDA libraries.
    """),
    code("""
    from dlbox.training.device import device_name, resolve_device

    device = resolve_device(DEVICE)
    print(f"training on: {device} ({device_name(device)})")
    if device.type == "cpu":
        print("no GPU in use: fine for this notebook, just slower (see the explanation above)")
    """),
    md("""
    `train` runs the whole training loop and saves everything about the run in a folder:
    its settings (`config.json`), the versions it ran with (`manifest.json`), the numbers
    per epoch (`metrics.json`) and the trained weights (`checkpoints/last.pt`). The bar
    below moves as it trains; one line per epoch reports the loss and the accuracy.
    Stop it with the kernel's stop button (*Kernel > Interrupt Kernel*): the run is saved.
    Run the cell again (settings unchanged) to continue it where it stopped: the run in
    `RUN_DIR`, or with `RUN_DIR = None` the one this cell started in this kernel; or resume
    it in a terminal with `dlbox train --resume RUN_DIR`.
    """),
    code("""
    from dlbox.errors import UsageError
    from dlbox.jupyter.notebooks import cell_ran, removed_if_unsaved, stopped_with
    from dlbox.jupyter.progress import NotebookProgress, plural
    from dlbox.training.config import build_config
    from dlbox.training.loop import resume, steps_per_epoch, train
    from dlbox.training.rundir import claim_default_run_dir

    cell_ran(globals(), "loaded_with", "the data cell")  # (and the cells above it)
    # The bar counts the data cell's images, and the gallery of wrong guesses shows them: they
    # must be the ones this run trains and tests on.
    if DATA_DIR != found_for:  # data_dir would still be the old setting's folder
        raise UsageError("DATA_DIR changed since the setup cell ran",
                         hint="run the setup cell and the data cell again")
    if loaded_with != (made_with if synthetic else data_dir, NUM_TRAIN, NUM_TEST):
        raise UsageError("settings changed since the data cell ran (DATA_DIR, NUM_TRAIN, "
                         "NUM_TEST or SEED)", hint="run the data cell again")
    trained_with = loaded_with  # the images this run trains and tests on (the gallery checks)

    if synthetic and RUN_DIR is not None:  # a kept run keeps its data: dlbox's cached copy
        data_dir = synthetic_cifar10(None, *made_with)  # of what the setup cell made

    # The model's own recipe (batch size, learning rate, ...) with this notebook's settings,
    # checked before a run folder is made.
    config = build_config(MODEL, device=DEVICE, epochs=EPOCHS, seed=SEED, data_dir=str(data_dir),
                          num_train=NUM_TRAIN, num_test=NUM_TEST)
    print(f"batch size {config.batch_size}, learning rate {config.lr}, "
          f"{plural(config.epochs, 'epoch')}")

    # The training cell run again after the stop button continues the run it stopped: the
    # one in RUN_DIR, or with RUN_DIR None the one it started in this kernel.
    again = expand_user(RUN_DIR) if RUN_DIR is not None else globals().get("started_run")
    resuming = again is not None and stopped_with(again, config, named=RUN_DIR is not None)
    claimed = RUN_DIR is None and not synthetic and not resuming
    if resuming:
        run_dir = again
        print(f"continuing the run stopped in {run_dir}")
    elif RUN_DIR is not None:
        run_dir = expand_user(RUN_DIR)
    elif synthetic:  # a throwaway run, like its data
        run_dir = scratch_folder("dlbox-notebook-run-") / MODEL
        print(f"saving the run in a temporary folder, deleted when the kernel stops: {run_dir}")
    else:
        run_dir = claim_default_run_dir(MODEL)  # a new runs/<date>-<time>-<model> here
    config = config.replace(run_dir=str(run_dir))

    started_run = run_dir if RUN_DIR is None else None  # (RUN_DIR names its own run)
    steps = steps_per_epoch(len(train_set), config.batch_size)
    # A folder made here that a failed start left without a checkpoint is removed, as `dlbox
    # train` removes its own; one that held something before is kept.
    with removed_if_unsaved(run_dir, claimed), NotebookProgress(config.epochs, steps) as bar:
        if resuming:
            run_dir = resume(run_dir, device=DEVICE, data_dir=data_dir, progress=False,
                             evaluate_at_end=False, stop=bar.update)
        else:
            run_dir = train(config, progress=False, evaluate_at_end=False, stop=bar.update)
    """),
    code("""
    from dlbox.jupyter.notebooks import cell_ran, training_history

    cell_ran(globals(), "run_dir", "the training cell")
    history = training_history(run_dir)  # metrics.json's entries, one per epoch
    epochs = [entry["epoch"] for entry in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.plot(epochs, [entry["train_loss"] for entry in history], "o-")
    left.set(title="training loss (lower is better)", xlabel="epoch", xticks=epochs)
    right.plot(epochs, [100 * entry["train_accuracy"] for entry in history], "o-", label="train")
    right.plot(epochs, [100 * entry["test_accuracy"] for entry in history], "s-", label="test")
    right.set(title="accuracy %", xlabel="epoch", xticks=epochs)
    right.legend()
    figure.tight_layout()
    plt.show()
    """),
    md("""
    ## 4. Testing: how good is it on photos it has never seen?

    `evaluate_run` loads the trained network from the run folder, predicts a class for
    **every** test image, and compares with the true labels. It prints the overall accuracy
    and the accuracy per class, and writes `predictions.csv` (one row per test image) and a
    confusion matrix into the run folder. Guessing at random would score 10 %.
    """),
    code("""
    from dlbox.jupyter.notebooks import cell_ran, own_test_set_note, unfinished_run_note
    from dlbox.training.evaluate import evaluate_run

    cell_ran(globals(), "run_dir", "the training cell")
    metrics = evaluate_run(run_dir, data_dir=data_dir, device=DEVICE)
    # notes on a run stopped before its last epoch ended, and on a NUM_TEST not the run's own
    for note in (unfinished_run_note(run_dir), own_test_set_note(run_dir, NUM_TEST)):
        if note:
            print(note)
    """),
    md("""
    The prediction recorded for each test image, with the network's confidence (the
    probability it gives its guess):
    """),
    code("""
    import csv

    from dlbox.jupyter.notebooks import cell_ran, tested_stamp

    cell_ran(globals(), "run_dir", "the training cell")
    predicted_from = tested_stamp(run_dir)  # the test cell's file, of this run
    with open(run_dir / "predictions.csv", newline="") as handle:
        predictions = list(csv.DictReader(handle))
    print(f"{len(predictions)} predictions, one per test image; the first ten:")
    print(f"{'image':>5s}  {'true label':12s} {'predicted':12s} {'confidence':>10s}")
    for row in predictions[:10]:
        mark = "" if row["true_label"] == row["predicted_label"] else "   <- wrong"
        print(f"{row['index']:>5s}  {row['true_label']:12s} {row['predicted_label']:12s} "
              f"{float(row['confidence']):>10.1%}{mark}")
    """),
    md("""
    The **confusion matrix**: one row per true class, one column per predicted class. The
    diagonal counts the right answers; a dark cell off the diagonal is a pair the network
    mixes up (cats and dogs, typically).
    """),
    code("""
    from IPython.display import Image, display

    from dlbox.jupyter.notebooks import cell_ran, tested_stamp

    cell_ran(globals(), "run_dir", "the training cell")
    tested_stamp(run_dir)  # the test cell ran for this run
    display(Image(filename=str(run_dir / "confusion_matrix.png"), width=640))
    """),
    md("""
    Some of the test images it got **wrong**, with the true label and its guess:
    """),
    code("""
    from dlbox.jupyter.notebooks import cell_ran, check_predictions_read, check_test_images

    cell_ran(globals(), "show_images", "the cell that shows the first images (it defines "
             "show_images)")
    cell_ran(globals(), "predicted_from", "the cell that reads the predictions")
    # the predictions read are this run's latest, of the data cell's test images
    check_predictions_read(predicted_from, run_dir)
    check_test_images(loaded_with, trained_with, len(test_set), len(predictions))
    wrong = [row for row in predictions if row["true_label"] != row["predicted_label"]]
    print(f"{len(wrong)} of {len(predictions)} test images "
          f"{'is' if len(wrong) == 1 else 'are'} misclassified")
    if wrong:
        shown = wrong[:16]
        show_images(test_set.images[[int(row["index"]) for row in shown]],
                    [f"{row['true_label']}\\n-> {row['predicted_label']} "
                     f"{float(row['confidence']):.0%}" for row in shown])
    """),
    md("""
    ## 5. Save the model, load it back, and try your own picture

    The trained weights are already saved in the run folder (`checkpoints/last.pt`, with
    the optimizer state so training can resume). `load_model_from_run` rebuilds the network
    from that folder, as `dlbox predict` does. For use outside dlbox, the cell also saves
    just the weights, the plain PyTorch way (`state_dict`). A run on the synthetic stand-in
    is in a temporary folder, deleted when the kernel stops: set `RUN_DIR` to keep it.
    """),
    code("""
    from dlbox.jupyter.notebooks import cell_ran
    from dlbox.jupyter.progress import plural
    from dlbox.training.checkpoint import load_model_from_run

    cell_ran(globals(), "run_dir", "the training cell")
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(run_dir)!s:32s} {path.stat().st_size:>12,} bytes")

    loaded = load_model_from_run(run_dir, device=DEVICE)
    weights_file = run_dir / "model_weights.pt"
    torch.save(loaded.model.state_dict(), weights_file)
    stage = (f"stopped during epoch {loaded.epoch + 1}, after "
             f"{plural(loaded.step_in_epoch, 'step')}" if loaded.step_in_epoch
             else f"epoch {loaded.epoch}")
    print(f"\\nloaded {loaded.config.model} ({stage}) from {loaded.checkpoint_path}")
    print(f"weights alone saved to {weights_file}")
    """),
    md("""
    Now a picture of your own: set `MY_IMAGE` in the settings cell to the path of a photo
    (PNG or JPEG, any size; it is cropped to a square and shrunk to 32 x 32). Without one,
    the next cell draws a simple picture of a ship.
    """),
    code("""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageOps

    from dlbox.jupyter.notebooks import cell_ran
    from dlbox.training.predict import predict_images


    def draw_a_ship(path):
        \"\"\"A 128 x 128 cartoon: sky, sea, a hull and a sail.\"\"\"
        picture = PILImage.new("RGB", (128, 128), (135, 190, 235))
        pen = ImageDraw.Draw(picture)
        pen.rectangle([0, 80, 128, 128], fill=(30, 80, 150))
        pen.polygon([(18, 78), (110, 78), (96, 98), (30, 98)], fill=(90, 60, 40))
        pen.rectangle([62, 30, 66, 78], fill=(60, 40, 30))
        pen.polygon([(67, 32), (67, 74), (100, 74)], fill=(245, 245, 240))
        picture.save(path)
        return path

    cell_ran(globals(), "run_dir", "the training cell")
    if MY_IMAGE:
        my_image = Path(MY_IMAGE).expanduser()
    else:  # drawn in a temporary folder, not in the run's
        my_image = draw_a_ship(scratch_folder("dlbox-ship-") / "my_ship.png")
    (result,) = predict_images(run_dir, [my_image], device=DEVICE)
    if hasattr(result, "error"):
        print(f"could not read {my_image}: {result.one_line()}")
    else:
        figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
        # Upright, as the network reads it (a phone's photo is often stored on its side,
        # with a note in its EXIF data saying how to turn it).
        left.imshow(ImageOps.exif_transpose(PILImage.open(my_image)).convert("RGB"))
        left.set_title(my_image.name)
        left.axis("off")
        names = [name for name, _ in result.top_k][::-1]
        right.barh(names, [100 * p for _, p in result.top_k][::-1])
        right.set(title="the network's top guesses", xlabel="probability %")
        figure.tight_layout()
        plt.show()
        print(f"The network's guess for {my_image.name}: {result.label} "
              f"({result.confidence:.1%} sure)")
    """),
    md("""
    ## Where to go from here

    - Train the better network: set `MODEL = "resnet"` (a GPU makes it quick), or in a
      terminal: `dlbox train --model resnet`, then `dlbox evaluate RUN_DIR`.
    - Classify more of your photos: `dlbox predict RUN_DIR photo1.jpg photo2.png`.
    - Run the same thing in a container, on the GPU: `dlbox image build --gpu` (on a
      machine with an NVIDIA GPU; elsewhere name the target's driver, `--driver 550.54.15`),
      then `dlbox image run --gpus all -- dlbox train` where the GPU is.
    - Check what this machine can run: `dlbox doctor`.
    """),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    cells = []
    for number, (kind, source, tags) in enumerate(CELLS, start=1):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{number:02d}"  # fixed ids: rebuilding gives the same file
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)
    notebook.cells = cells
    nbformat.validate(notebook)
    return notebook


def render() -> str:
    return nbformat.writes(build()) + "\n"


class OutputError(Exception):
    """A bad --output: one line for the user, and the fix."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def check_output_path(output: Path) -> None:
    """--output must name a file in a folder that exists (a typo must not create folders)."""
    if output.is_dir():
        raise OutputError(f"--output {output} is a folder, not a file",
                          hint=f"name the file: --output {output / NOTEBOOK_PATH.name}")
    if not output.parent.is_dir():
        what = (f"{output.parent} is a file, not a folder" if output.parent.exists()
                else f"the folder {output.parent} does not exist")
        raise OutputError(f"--output {output}: {what}",
                          hint="create the folder first, or fix the path")


def file_mode(path: Path) -> int:
    """The mode `path` has, or that a new file gets (0666 less the umask)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(output: Path, text: str) -> None:
    """Write `text` to `output` through a temp file in the same folder: `output` is either
    the old file or the whole new one, and no temp file is left behind on any failure."""
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=output.parent,
                                         prefix=f".{output.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
        os.chmod(handle.name, file_mode(output))  # not the temp file's private 0600
        os.replace(handle.name, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the notebook differs from the cells here")
    parser.add_argument("--output", type=Path, default=NOTEBOOK_PATH,
                        help="the file to write or check (its folder must exist)")
    args = parser.parse_args(argv)
    text = render()
    try:
        check_output_path(args.output)
        if args.check:
            rebuild = "scripts/build_notebook.py" + (
                "" if args.output == NOTEBOOK_PATH else f" --output {args.output}")
            if not args.output.exists():
                print(f"error: {args.output} does not exist\nhint: write it with {rebuild}",
                      file=sys.stderr)
                return 1
            if args.output.read_text(encoding="utf-8") != text:
                print(f"error: {args.output} is stale (its cells differ from the builder's)\n"
                      f"hint: write it again with {rebuild}", file=sys.stderr)
                return 1
            print(f"{args.output} is up to date")
            return 0
        write_atomically(args.output, text)
    except OutputError as error:
        print(f"error: {error}\nhint: {error.hint}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f"error: cannot {'read' if args.check else 'write'} {args.output}: {reason}\n"
              "hint: check the path and its permissions", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({len(CELLS)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
