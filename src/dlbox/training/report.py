"""Reports on an evaluation: the tutorial's printout, the predictions table, the confusion matrix.

Everything here turns numbers that evaluate.py computed into text, CSV, JSON or a PNG; no
model, no device. Plots use matplotlib's object API with the Agg canvas (no pyplot, so no
global backend is switched and nothing needs a display).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dlbox.fileio import write_json_atomic, write_text_atomic, write_with_atomic
from dlbox.text import shown_name

PREDICTIONS_FILE = "predictions.csv"
CONFUSION_JSON_FILE = "confusion_matrix.json"
CONFUSION_PNG_FILE = "confusion_matrix.png"
HISTORY_PNG_FILE = "training_curves.png"

# Probabilities are written with this many decimals; confidence uses the same formatting, so
# in the file `confidence` equals the largest `prob_*` exactly, as text.
PROB_DECIMALS = 6


def accuracy_lines(metrics: dict[str, Any]) -> list[str]:
    """The PyTorch tutorial's printout, with the real image count.

    `metrics` is what compute_metrics returns: total, correct and per_class.
    """
    total = int(metrics["total"])
    correct = int(metrics["correct"])
    # The tutorial prints the floor of the percentage: 100 * correct // total.
    overall = 100 * correct // total if total else 0
    lines = [f"Accuracy of the network on the {total} test images: {overall} %"]
    for name, entry in metrics["per_class"].items():
        accuracy = entry["accuracy"]
        shown = "n/a (no test images)" if accuracy is None else f"{100 * accuracy:.1f} %"
        # a class folder named with a newline or tab as `dlbox data check` shows it, $'...'
        # (review: "new\nline" split its line in two)
        lines.append(f"Accuracy for class: {shown_name(name):5s} is {shown}")
    return lines


def prediction_fieldnames(classes: Sequence[str], with_path: bool = False) -> list[str]:
    return ["index", "true_label", "predicted_label", "confidence",
            *(f"prob_{name}" for name in classes), *(["path"] if with_path else [])]


def predictions_csv_text(probabilities: torch.Tensor, true_labels: torch.Tensor,
                         classes: Sequence[str], files: Sequence[str] | None = None) -> str:
    """One row per image: index, true and predicted class names, confidence, probabilities,
    and, given `files` (an image tree's: each image's file relative to its split folder), a
    last column `path`; last, so that the columns before it are those of CIFAR-10's batches,
    which have no files.

    probabilities: float [N, C] (rows sum to 1); true_labels: int [N] indexing `classes`.
    The predicted label is the argmax of the row and the confidence its probability.
    """
    probabilities = probabilities.detach().to("cpu", torch.float64)
    true_labels = true_labels.detach().to("cpu")
    if probabilities.dim() != 2 or probabilities.shape[1] != len(classes):
        raise ValueError(f"probabilities must be [N, {len(classes)}], got "
                         f"{tuple(probabilities.shape)}")
    if true_labels.shape != (probabilities.shape[0],):
        raise ValueError("need one true label per row of probabilities")
    if files is not None and len(files) != probabilities.shape[0]:
        raise ValueError("need one file per row of probabilities")
    confidence, predicted = probabilities.max(dim=1)
    fmt = f"{{:.{PROB_DECIMALS}f}}".format
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(prediction_fieldnames(classes, with_path=files is not None))
    for index, (row, true, pred, conf) in enumerate(
        zip(probabilities.tolist(), true_labels.tolist(), predicted.tolist(),
            confidence.tolist(), strict=True)
    ):
        # a name that is not UTF-8, or holds a newline, as bash's $'...' (the file is UTF-8)
        path = [shown_name(files[index])] if files is not None else []
        writer.writerow([index, classes[true], classes[pred], fmt(conf), *map(fmt, row), *path])
    return buffer.getvalue()


def write_predictions_csv(path: Path, probabilities: torch.Tensor, true_labels: torch.Tensor,
                          classes: Sequence[str], files: Sequence[str] | None = None) -> None:
    write_text_atomic(path, predictions_csv_text(probabilities, true_labels, classes, files))


def confusion_matrix_document(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """The JSON form: rows are the true class, columns the predicted one, in `classes` order."""
    return {
        "classes": list(classes),
        "rows": "true label",
        "columns": "predicted label",
        "matrix": [[int(v) for v in row] for row in matrix.tolist()],
        "total": int(matrix.sum()),
    }


def write_confusion_matrix_json(path: Path, matrix: torch.Tensor, classes: Sequence[str]) -> None:
    write_json_atomic(path, confusion_matrix_document(matrix, classes))


def drawable_labels(classes: Sequence[str]) -> list[str]:
    """The class names as a plot can draw them: a name with a character the plot's font has
    no glyph for (猫, 犬 in DejaVu Sans; a tab) is drawn as its index, "#3"; they were empty
    boxes, with a matplotlib warning per glyph on stderr (found by review). The JSON and CSV
    keep the names."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    except Exception:  # noqa: BLE001 - no font to ask: draw the names as they are
        return list(classes)

    def drawable(name: str) -> bool:
        # a plain space, or a glyph the font has: a tab or newline (str.isspace) has none,
        # and matplotlib warned "Glyph 9 (^I) missing" (review)
        return all(char == " " or font.get_char_index(ord(char)) for char in name)

    return [name if drawable(name) else f"#{index}" for index, name in enumerate(classes)]


MAX_FIGURE_SIDE = 20.0  # inches, at 110 dpi: 2,310 x 2,200 pixels at most
COUNTED_CLASSES = 30  # up to which each cell has its count written in it


def plot_confusion_matrix(path: Path, matrix: torch.Tensor, classes: Sequence[str],
                          title: str | None = None) -> None:
    """A PNG heat map of the matrix, each cell annotated with its count (up to
    COUNTED_CLASSES classes; beyond, the counts are in confusion_matrix.json only).

    Colour is the fraction of the row (how often a true class gets each prediction), so
    classes with few test images are as readable as the others; the text is the raw count.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = matrix.detach().to("cpu", torch.int64)
    n = len(classes)
    row_sums = counts.sum(dim=1, keepdim=True).clamp(min=1)
    fractions = (counts.double() / row_sums).numpy()

    # 0.6 in a class up to MAX_FIGURE_SIDE (review: 150 classes made a 104-megapixel PNG)
    side = min(max(5.0, 0.6 * n + 2.5), MAX_FIGURE_SIDE)
    figure = Figure(figsize=(side + 1.0, side), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the true class")
    labels = drawable_labels(classes)
    label_size = 10 if n <= COUNTED_CLASSES else max(3.0, 300 / n)  # in the room a class has
    axes.set_xticks(range(n), labels=labels, rotation=45, ha="right", rotation_mode="anchor",
                    fontsize=label_size)
    axes.set_yticks(range(n), labels=labels, fontsize=label_size)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    if labels != list(classes):
        title = ((title + "\n") if title else "") + (
            "#N: class N in confusion_matrix.json (a name the font cannot draw)")
    if n > COUNTED_CLASSES:  # too small to read: the counts are in confusion_matrix.json
        title = ((title + "\n") if title else "") + "counts in confusion_matrix.json"
    if title:
        axes.set_title(title)
    if n <= COUNTED_CLASSES:
        font_size = 8 if n <= 12 else 6
        for i in range(n):
            for j in range(n):
                value = int(counts[i, j])
                colour = "white" if fractions[i, j] > 0.5 else "black"
                axes.text(j, i, str(value), ha="center", va="center", color=colour,
                          fontsize=font_size)
    figure.tight_layout()
    write_with_atomic(path, lambda handle: figure.savefig(handle, format="png"))


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the entries that have a number under `key`."""
    xs: list[float] = []
    ys: list[float] = []
    for position, entry in enumerate(history, start=1):
        value = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            epoch = entry.get("epoch", position)
            xs.append(float(epoch) if isinstance(epoch, (int, float)) else float(position))
            ys.append(float(value))
    return xs, ys


def plot_training_history(path: Path, history: Sequence[dict[str, Any]]) -> bool:
    """A PNG of train loss (left) and train / test accuracy (right) per epoch.

    Reads the trainer's history entries (epoch, train_loss, train_accuracy, test_accuracy,
    accuracies as fractions); missing values are skipped. Returns False, writing nothing,
    when there is nothing to plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    loss = _series(history, "train_loss")
    accuracies = {label: _series(history, key) for key, label in
                  (("train_accuracy", "train"), ("test_accuracy", "test"))}
    if not loss[0] and not any(xs for xs, _ in accuracies.values()):
        return False
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    if loss[0]:
        left.plot(*loss, marker="o", label="train loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.set_title("training loss")
    left.grid(alpha=0.3)
    for label, (xs, ys) in accuracies.items():
        if xs:
            right.plot(xs, [100 * y for y in ys], marker="o", label=label)
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy (%)")
    right.set_title("accuracy")
    right.grid(alpha=0.3)
    right.legend()
    epochs = sorted({x for xs, _ in (loss, *accuracies.values()) for x in xs})
    for axes in (left, right):  # epochs are whole numbers: no 1.25, 1.5 ticks for a short run
        if len(epochs) <= 10:  # each its own (a single one gave 0.945 ... 1.050: review)
            axes.set_xticks(epochs)
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    write_with_atomic(path, lambda handle: figure.savefig(handle, format="png"))
    return True
