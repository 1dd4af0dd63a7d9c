"""Evaluate a trained run: a prediction for every test image, metrics, confusion matrix, report.

    metrics = evaluate_run(Path("runs/tutorial-0"))      # what `dlbox evaluate RUN_DIR` does

writes into the run dir
    predictions.csv         one row per test image: index, true_label, predicted_label,
                            confidence, prob_<class> for every class, and for an image
                            tree path (the image's file, relative to the split folder)
    confusion_matrix.json   classes and matrix (rows = true label, columns = predicted)
    confusion_matrix.png    the same as an annotated heat map
    training_curves.png     loss and accuracy per epoch, when metrics.json has a history
    metrics.json            "final" gains the test metrics, "evaluation" holds the details;
                            everything else the trainer wrote (the history) is kept

The math is in pure functions (confusion_matrix, compute_metrics) and the model call in one
place (predict_logits), which test-time augmentation wraps: a model_fn maps a uint8 batch
[B, 3, H, W] on the device to logits [B, C], and a TTA is a function from model_fn to
model_fn (see with_flip_tta and build_model_fn).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dlbox.data.dataset import ImageDataset
from dlbox.data.imagefolder import refuse_another_unicode_form
from dlbox.errors import (
    DataError,
    DlboxError,
    FileWriteError,
    RunDirError,
    UsageError,
    write_error,
)
from dlbox.fileio import (
    folder_write_error,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from dlbox.processes import OWNER_FILENAME, owner_id, remove_abandoned_folders, signals_held
from dlbox.text import json_path, listed, make_writable, shell_quote, tell
from dlbox.training import report
from dlbox.training.checkpoint import (
    CHECKPOINTS_DIRNAME,
    METRICS_FILE,
    check_batch_size,
    check_tta,
    checkpoint_path,
    load_model_from_run,
    outside_the_run,
    reading_run_file,
    require_run_dir,
    run_json_error,
)
from dlbox.training.device import is_out_of_memory, memory_asked_for, resolve_device
from dlbox.training.manifest import software_versions
from dlbox.training.placing import MOVING_FILE, STAGING_PREFIX, finish_placing, move_into_place
from dlbox.training.progress import spinner
from dlbox.training.rundir import remove_killed_writes, run_lock
from dlbox.training.tta import with_tta

if TYPE_CHECKING:
    from dlbox.training.config import TrainConfig

ModelFn = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_BATCH_SIZE = 500


# --- the math: pure functions over label tensors -------------------------------------------


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [num_classes, num_classes]; entry [i, j] counts images of true class i predicted j."""
    true = torch.as_tensor(true).detach().to("cpu", torch.int64).reshape(-1)
    pred = torch.as_tensor(pred).detach().to("cpu", torch.int64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"true and pred differ in length: {true.numel()} vs {pred.numel()}")
    if num_classes < 1:
        raise ValueError("num_classes must be at least 1")
    for name, labels in (("true", true), ("pred", pred)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels fall outside 0..{num_classes - 1}")
    flat = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def compute_metrics(true: torch.Tensor, pred: torch.Tensor, classes: Sequence[str],
                    confidence: torch.Tensor | None = None) -> dict[str, Any]:
    """Overall and per-class accuracy, derived from the confusion matrix so the two agree.

    Returns {"total", "correct", "accuracy", "mean_confidence", "per_class": {name: {"total",
    "correct", "predicted", "accuracy"}}}. Accuracies are fractions in [0, 1]; a class
    without test images has accuracy None (as has the whole set when it is empty).
    `confidence` (float [N], the probability of the predicted class) gives mean_confidence.
    """
    matrix = confusion_matrix(true, pred, len(classes))
    total = int(matrix.sum())
    correct = int(matrix.diagonal().sum())
    per_class: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(classes):
        class_total = int(matrix[index].sum())
        class_correct = int(matrix[index, index])
        per_class[name] = {
            "total": class_total,
            "correct": class_correct,
            "predicted": int(matrix[:, index].sum()),
            "accuracy": class_correct / class_total if class_total else None,
        }
    mean_confidence = None
    if confidence is not None and confidence.numel():
        mean_confidence = float(confidence.detach().to("cpu", torch.float64).mean())
    return {
        "total": total,
        "correct": correct,
        "accuracy": correct / total if total else None,
        "mean_confidence": mean_confidence,
        "per_class": per_class,
    }


# --- the model call: batched, no grad, on the device, autocast on CUDA ----------------------


def predict_logits(model_fn: ModelFn, images: torch.Tensor,
                   batch_size: int = DEFAULT_BATCH_SIZE,
                   device: torch.device | str = "cpu",
                   amp_dtype: torch.dtype | None = torch.float16) -> torch.Tensor:
    """Run `model_fn` over `images` (uint8 [N, 3, H, W], any device) in batches.

    Each batch is moved to `device` and passed to model_fn as uint8; model_fn does the
    preprocessing (as in training) and returns logits [B, C]. Runs under inference_mode and,
    on CUDA, under autocast to `amp_dtype` (None: float32). Returns float32 logits [N, C] on
    the CPU.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    device = torch.device(device)
    outputs: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            if device.type == "cuda" and amp_dtype is not None:
                with torch.autocast(device_type="cuda", dtype=amp_dtype):
                    logits = model_fn(batch)
            else:
                logits = model_fn(batch)
            if logits.dim() != 2 or logits.shape[0] != batch.shape[0]:
                raise ValueError(f"model returned shape {tuple(logits.shape)} for a batch of "
                                 f"{batch.shape[0]}; expected [B, num_classes]")
            outputs.append(logits.float().cpu())
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def with_flip_tta(model_fn: ModelFn) -> ModelFn:
    """Test-time augmentation: average the logits of each image and its mirror image."""

    def flipped(images: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model_fn(images).float() + model_fn(images.flip(-1)).float())

    return flipped


def loaded_model_fn(loaded: Any) -> ModelFn:
    """model_fn for a LoadedModel: its preprocessing (exactly as in training), then the model."""
    preprocess = getattr(loaded, "preprocess", None)
    model = loaded.model

    def run(images: torch.Tensor) -> torch.Tensor:
        inputs = preprocess(images) if preprocess is not None else images.float() / 255.0
        return model(inputs)

    return run


def resolve_tta(tta: bool | None, config: Any) -> bool:
    """None follows the run's config (a `tta` setting, when the model's config has one)."""
    if tta is not None:
        return bool(tta)
    return bool(getattr(config, "tta", False))


def build_model_fn(loaded: Any, tta: bool) -> ModelFn:
    """The function evaluation and prediction call: the loaded model, wrapped in TTA if asked.

    The TTA is the model's own when it names one (a `tta_level` attribute, as the speedrun
    net's 2: flips plus 1-pixel shifts, 6 views, dlbox.training.tta); else the mirror image.
    """
    model_fn = loaded_model_fn(loaded)
    if not tta:
        return model_fn
    level = int(getattr(getattr(loaded, "model", None), "tta_level", 1))
    if level >= 2:
        return with_tta(model_fn, level)
    return with_flip_tta(model_fn)


# --- one evaluation, in memory ---------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The outcome of running a model over a labelled split (all tensors on the CPU)."""

    classes: tuple[str, ...]
    true_labels: torch.Tensor  # int64 [N]
    probabilities: torch.Tensor  # float32 [N, C], rows sum to 1
    predicted: torch.Tensor  # int64 [N], argmax of probabilities
    confidence: torch.Tensor  # float32 [N], max of probabilities
    matrix: torch.Tensor  # int64 [C, C], rows true, columns predicted
    metrics: dict[str, Any]  # compute_metrics(...)
    seconds: float  # wall time of the model calls
    files: tuple[str, ...] | None = None  # an image tree's: each image's, relative to its split


def evaluate_model(model_fn: ModelFn, dataset: ImageDataset, classes: Sequence[str],
                   device: torch.device | str = "cpu",
                   batch_size: int = DEFAULT_BATCH_SIZE,
                   amp_dtype: torch.dtype | None = torch.float16) -> Evaluation:
    """Predict every image of `dataset` and compute the metrics; writes nothing."""
    device = torch.device(device)
    start = time.perf_counter()
    logits = predict_logits(model_fn, dataset.images, batch_size, device, amp_dtype)
    return evaluation_from_logits(logits, dataset, classes, time.perf_counter() - start)


def evaluation_from_logits(logits: torch.Tensor, dataset: ImageDataset, classes: Sequence[str],
                           seconds: float) -> Evaluation:
    """The Evaluation of logits [N, C] already computed for every image of `dataset` (by
    evaluate_model, or by a trainer's own final evaluation); `seconds` is what they took."""
    classes = tuple(classes)
    logits = logits.detach().to("cpu", torch.float32)
    if len(dataset) and (logits.dim() != 2 or logits.shape[0] != len(dataset)):
        raise ValueError(f"logits of shape {tuple(logits.shape)} for {len(dataset)} images")
    if len(dataset) and logits.shape[1] != len(classes):
        raise DataError(f"the model has {logits.shape[1]} outputs but the data has "
                        f"{len(classes)} classes",
                        hint="evaluate on the data the run was trained on (--data DIR)")
    if len(dataset) == 0:
        logits = torch.empty(0, len(classes))
    bad = int((~torch.isfinite(logits)).any(dim=1).sum())
    if bad:
        raise DlboxError(f"the model produced NaN or infinite outputs for {bad} of "
                         f"{len(dataset)} test images (did training diverge?)",
                         hint="retrain with a lower --lr, or evaluate an earlier checkpoint "
                              "(--checkpoint PATH --output DIR)")
    probabilities = torch.softmax(logits, dim=1)
    confidence, predicted = probabilities.max(dim=1)
    true_labels = dataset.labels.detach().to("cpu", torch.int64)
    matrix = confusion_matrix(true_labels, predicted, len(classes))
    metrics = compute_metrics(true_labels, predicted, classes, confidence)
    from dlbox.data.imagefolder import ImageTreeDataset

    files = dataset.files if isinstance(dataset, ImageTreeDataset) else None
    return Evaluation(classes, true_labels, probabilities, predicted, confidence, matrix,
                      metrics, seconds, files)


# --- a run directory: load, evaluate, write ------------------------------------------------


def load_run_model(run_dir: Path, device: str | torch.device = "auto",
                   checkpoint: str = "last") -> tuple[Any, torch.device]:
    """The run's model (eval mode, on the device) and the resolved device."""
    run_dir = Path(run_dir)
    require_run_dir(run_dir)
    resolved = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        loaded = load_model_from_run(run_dir, resolved, checkpoint=checkpoint)
    except FileNotFoundError as error:
        raise RunDirError(f"{run_dir} has no checkpoint ({error.filename or error})",
                          hint="train first (`dlbox train --run-dir DIR`), or resume an "
                               "interrupted run with `dlbox train --resume DIR`") from None
    loaded.model.eval()
    return loaded, resolved


def load_test_split(config: Any, data_dir: str | Path | None,
                    classes: Sequence[str] | None = None,
                    foreign_checkpoint: Path | None = None) -> tuple[ImageDataset, list[str]]:
    """The test split the run is evaluated on: --data, else the run's data dir; num_test cap.
    With it, the notes to tell once the data is known to fit the run. `classes`: the run's;
    an image tree's test split is read with them (label i is the run's class i), its own
    class folders checked against them first (check_classes, partial), and its train/ not
    looked at (review: a class folder added to train/ for the next run was blamed on test/)."""
    from dlbox.data.loading import (
        load_dataset,
        reading_the_runs_data_dir,
        runs_data_dir,
        shadowed_image_tree,
        skipped_by_split,
        skipped_notes,
        split_class_folders,
        split_size,
    )
    from dlbox.data.paths import resolved_data_dir

    recorded = True
    if data_dir is not None:
        chosen: str | Path | None = data_dir
    else:
        chosen, recorded = runs_data_dir(getattr(config, "data_dir", None))
    given = data_dir is not None or chosen is None or not recorded
    # resolved: metrics.json records where the test images came from, from any folder
    root = resolved_data_dir(chosen)
    limit = getattr(config, "num_test", None)
    read_with: tuple[str, ...] | None = None  # None: the union of the splits (a run of old)
    if classes:
        with reading_the_runs_data_dir(given=given, classes=classes):
            tree = split_class_folders(root, "test")
        if tree is not None:  # before any image is decoded
            split_root, found = tree
            read_with = check_classes(classes, found, str(split_root), foreign_checkpoint,
                                      partial=True)
    notes = []
    if limit is not None:
        with reading_the_runs_data_dir(given=given, classes=classes):
            available = split_size(root, "test", read_with)
        if available < limit:  # other data (--data), or a data dir that lost images
            notes.append(f"note: the run was tested on its first {limit:,} test images "
                         f"(--num-test); {root} has {available:,}, and all {available:,} "
                         "are evaluated")
    with reading_the_runs_data_dir(given=given, classes=classes):
        dataset = load_dataset(root, "test", limit, read_with)
    # what the test split passes over, as `dlbox data check` says it (review: evaluate did not)
    notes.extend(f"note: {note}"
                 for note in skipped_notes(skipped_by_split(root, ("test",), read_with)))
    shadowed = shadowed_image_tree(root)
    if shadowed is not None:
        notes.append(f"note: {shadowed}")
    return dataset, notes


def check_classes(model_classes: Sequence[str] | None,
                  data_classes: Sequence[str], where: str = "",
                  foreign_checkpoint: Path | None = None,
                  partial: bool = False) -> tuple[str, ...]:
    """The class names to report with; the model's and the data's (from `where`) must
    agree, as sets: the same classes in another order are matched by name (in_model_order).
    `foreign_checkpoint`: a --checkpoint from outside the run, named as what differs.
    `partial`: the data may lack some of the model's classes (an image tree's test split,
    read with the model's classes: a class it lacks is reported n/a); one it adds is refused."""
    if model_classes is None or len(model_classes) == 0:
        return tuple(data_classes)
    fits = (set(data_classes) <= set(model_classes) if partial
            else set(model_classes) == set(data_classes))
    if foreign_checkpoint is not None and not fits:
        raise DataError(
            f"checkpoint {foreign_checkpoint} was trained on classes "
            f"{_classes(model_classes)}, but the test data"
            f"{f' in {where}' if where else ''} has {_classes(data_classes)}",
            hint="pass one of this run's checkpoints (in its checkpoints/ folder), or --data "
                 "DIR holding the classes that checkpoint was trained on")
    if not fits or (not partial and len(model_classes) != len(data_classes)):
        refuse_another_unicode_form(model_classes, data_classes, where)
        extra = sorted(set(data_classes) - set(model_classes))
        empty = [name for name in extra if where and _no_images_in(Path(where).parent, name)]
        if empty and empty == extra and (partial or set(model_classes) <= set(data_classes)):
            # `mkdir test/zebra` ahead of its images: a folder is a class, images or not
            raise DataError(
                f"the test data in {where} has the class folder(s) {listed(empty, 5)} beside "
                f"the run's classes, with no images in any split",
                hint="remove the empty class folder(s) (a class folder counts as a class, "
                     "images or not), or pass the data the run was trained on with --data DIR")
        missing = [] if partial else [name for name in model_classes
                                      if name not in set(data_classes)]
        differ = "; ".join(part for part in (
            f"it lacks {listed(missing, 10, counted=True)}" if missing else "",
            f"it adds {listed(extra, 10, counted=True)}" if extra else "") if part)
        hint = "pass the data the run was trained on with --data DIR"
        if missing and not extra and where and Path(where).name == "test" \
                and Path(where).is_dir() and len(missing) <= 10:
            # an image tree of some of the run's classes (a folder of new cat photos): an
            # empty folder is a class, which evaluate then reports as n/a (review)
            folders = " ".join(shell_quote(Path(where) / name) for name in missing)
            hint = ("to evaluate these images, give the test data an empty folder for each "
                    f"class it lacks: mkdir {folders}; or {hint}")
        raise DataError(
            f"the run was trained on classes {_classes(model_classes)} but the test data"
            f"{f' in {where}' if where else ''} has {_classes(data_classes)} ({differ})",
            hint=hint)
    return tuple(model_classes)


def _classes(names: Sequence[str]) -> str:
    """A run's or a data dir's class names in an error: the first ten (a tree of 120 breeds
    made a class-mismatch error of 1,554 characters, review found)."""
    return listed(names, 10, counted=True)


def in_model_order(dataset: ImageDataset, classes: Sequence[str]) -> ImageDataset:
    """`dataset` with its labels as indexes into `classes` (the model's order), when it lists
    the same classes in another order (review: that was refused, though the names match each
    image to the model's output for it)."""
    if tuple(dataset.classes) == tuple(classes):
        return dataset
    position = {name: index for index, name in enumerate(classes)}
    mapping = torch.tensor([position[name] for name in dataset.classes], dtype=torch.int64)
    return dataclasses.replace(dataset, labels=mapping[dataset.labels], classes=tuple(classes))


def _no_images_in(root: Path, name: str) -> bool:
    """Whether `name` is a class folder under `root` (an image tree's) that holds no image in
    any split. False where there is no such folder: CIFAR-10's batches have none, and their
    classes were taken for empty folders."""
    from dlbox.data.imagefolder import is_image_file

    found = False
    for split in ("train", "test"):
        try:
            entries = list((root / split / name).iterdir())
        except OSError:
            continue
        found = True
        if any(is_image_file(path) for path in entries):
            return False
    return found


def read_metrics_file(path: Path) -> dict[str, Any]:
    """metrics.json as a dict ({} when missing); RunDirError when it is damaged."""
    with reading_run_file(path):  # a folder on the way that is not open to the user
        if not path.exists():
            return {}
    # (review: it said a deletion kept "only the test metrics"; evaluate writes the history
    # again from the checkpoint's, catch_up_metrics)
    hint = ("restore it, or delete it: dlbox evaluate (without --checkpoint) writes it "
            "again, the training history from checkpoints/last.pt")
    try:
        existing = read_json(path)
    except (OSError, ValueError) as error:
        # no permission to read it: the file is intact, and its fix is not deleting it
        raise run_json_error(path, error, hint) from None
    if not isinstance(existing, dict):
        raise RunDirError(f"{path} does not hold a JSON object", hint=hint)
    shapes = {"final": (dict, "an object"), "evaluation": (dict, "an object"),
              "history": (list, "a list")}
    for key, (kind, described) in shapes.items():
        if existing.get(key) is not None and not isinstance(existing[key], kind):
            raise RunDirError(f"{path} is damaged: its \"{key}\" is not {described}", hint=hint)
    if any(not isinstance(entry, dict) for entry in existing.get("history") or []):
        raise RunDirError(f"{path} is damaged: its \"history\" holds entries that are not "
                          "objects", hint=hint)
    return existing


def merge_metrics(existing: dict[str, Any], final: dict[str, Any],
                  evaluation: dict[str, Any]) -> dict[str, Any]:
    """`existing` with "final" updated by the test metrics and "evaluation" set; the rest
    (the trainer's history, its own final numbers) kept. Test numbers of a run stopped
    mid-epoch carry its "step_in_epoch" in "final" too (review: they were paired with
    "epochs_completed" alone, as if they were that epoch's)."""
    merged = dict(existing)
    if not existing.get("final") and isinstance(evaluation.get("epoch"), int):
        # the trainer wrote none: stopped before its first epoch ended (review: this final
        # had no epochs_completed or finished)
        merged["final"] = {"epochs_completed": evaluation["epoch"], "finished": False}
    merged["final"] = {**(merged.get("final") or {}), **final}
    merged["final"].pop("step_in_epoch", None)
    if evaluation.get("step_in_epoch"):
        merged["final"]["step_in_epoch"] = evaluation["step_in_epoch"]
    merged["evaluation"] = evaluation
    return merged


EVALUATION_FILE = "evaluation.json"  # the metrics document, in an --output folder


def final_test_metrics(metrics: dict[str, Any], tta: bool,
                       run_tta: bool | None) -> dict[str, Any]:
    """What an evaluation (`metrics`, made with `tta` or without) puts in metrics.json's
    "final": always test_accuracy_tta or test_accuracy_plain, as it was made; and when it was
    made as the run's own setting says (`run_tta`, None: it was), test_accuracy and the test
    numbers beside it, which the trainer writes with that setting too (review: `dlbox
    evaluate` made the plain test_accuracy of a --no-evaluate speedrun its TTA one)."""
    final: dict[str, Any] = {"test_accuracy_tta" if tta else "test_accuracy_plain":
                             metrics["accuracy"]}
    if run_tta is None or tta == run_tta:
        final.update({
            "test_accuracy": metrics["accuracy"],
            "test_correct": metrics["correct"],
            "test_images": metrics["total"],
            "mean_confidence": metrics["mean_confidence"],
            "per_class_accuracy": {name: entry["accuracy"]
                                   for name, entry in metrics["per_class"].items()},
        })
    return final


def write_evaluation(run_dir: Path, evaluation: Evaluation,
                     details: dict[str, Any] | None = None,
                     output: Path | None = None, run_tta: bool | None = None) -> dict[str, Any]:
    """Write predictions, confusion matrix (JSON, PNG), training curves and metrics.

    Returns the metrics document (also stored as "evaluation" in metrics.json). With
    `output`, the predictions and the confusion matrix go there, with the document as
    evaluation.json, and the run dir is left as it is (an evaluation on other data).
    metrics.json's "final" keeps one meaning (final_test_metrics): its test_accuracy and the
    numbers beside it are with the run's own TTA setting `run_tta` (None: the evaluation's,
    details["tta"]); an evaluation with the other goes only to test_accuracy_plain or
    test_accuracy_tta.
    """
    run_dir = Path(run_dir)
    # an --output with `..` in it is taken as the folder it names (re-review: the folders
    # made for it were told by its lexical parents, and an empty one that was there removed)
    target = run_dir if output is None else Path(os.path.normpath(output))
    m = evaluation.metrics
    # a damaged metrics.json stops us first (read for its history)
    existing = read_metrics_file(run_dir / METRICS_FILE) if output is None else {}
    made = None  # the first folder of a new --output that this call makes
    probe = target
    while output is not None and not probe.exists() and probe != probe.parent:
        made, probe = probe, probe.parent
    if output is not None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FileWriteError(target, getattr(error, "strerror", None) or str(error),
                                 hint="pass an --output folder you can write to") from None
    # Every file is written into a staging folder first and moved into place at the end, in
    # an instant: a Ctrl-C during the slow plots left a report of two evaluations (a new
    # predictions.csv beside the old metrics.json), or a new --output folder half filled.
    # of evaluations killed: one killed while moving its report in has the moves finished
    remove_abandoned_folders(target, f"{STAGING_PREFIX}*.tmp", finish=finish_placing)
    staging: Path | None = None
    try:
        try:
            # the owner in the name too: one killed before its owner file is written (review)
            staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{owner_id(namespace=True)}.",
                                            suffix=".tmp", dir=target))
            (staging / OWNER_FILENAME).write_text(owner_id(namespace=True), encoding="utf-8")
        except OSError as error:
            raise write_error(target / report.PREDICTIONS_FILE, error) from None
        try:
            files, moves = _write_staged(staging, run_dir, target, evaluation, existing,
                                         output)
        except FileWriteError as error:  # named as the report's file, not the staged one
            raise _as_written_to(error, staging, target) from None
        n = m["total"]
        document: dict[str, Any] = {
            "test_images": n,
            "test_correct": m["correct"],
            "test_accuracy": m["accuracy"],
            "mean_confidence": m["mean_confidence"],
            "per_class": m["per_class"],
            "classes": list(evaluation.classes),
            **(details or {}),
            "eval_seconds": round(evaluation.seconds, 4),
            "eval_images_per_second": (round(n / evaluation.seconds, 1)
                                       if evaluation.seconds > 0 else None),
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        }
        final = final_test_metrics(m, bool((details or {}).get("tta")), run_tta)
        name = METRICS_FILE if output is None else EVALUATION_FILE
        try:
            if output is not None:
                files["evaluation"] = EVALUATION_FILE
                write_json_atomic(staging / name, document)
            else:  # last: it names the other files
                write_json_atomic(staging / name, merge_metrics(existing, final, document))
        except FileWriteError as error:
            raise _as_written_to(error, staging, target) from None
        moves.append((staging / name, target / name))
        writable: dict[Path, OSError | None] = {}
        for _, final_path in moves:  # all or none: no move once one cannot be made
            if final_path.is_dir() and not final_path.is_symlink():
                raise FileWriteError(final_path, "it is a folder",
                                     hint="remove that folder (the report writes a file "
                                          "there), or write the report elsewhere: --output DIR")
            # a link is followed (move_into_place): its file's folder takes the new file,
            # also a link to no file yet (review: one into an unmounted share was replaced)
            real = final_path.resolve() if final_path.is_symlink() else final_path
            if real.parent not in writable:
                writable[real.parent] = folder_write_error(real.parent)
            refused = writable[real.parent]
            if refused is not None:  # review: predictions.csv was replaced, this one failed
                raise write_error(real, refused)
        try:  # whole now: a command after a SIGKILL or power cut in the moves finishes them
            write_text_atomic(staging / MOVING_FILE,
                              "".join(f"{staged.name}\n" for staged, _ in moves))
        except FileWriteError as error:
            raise _as_written_to(error, staging, target, name) from None
        with signals_held():  # the report is all new or all old, never half of each
            for staged, final_path in moves:
                move_into_place(staged, final_path)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging = None
        if made is not None:  # a new --output folder: nothing of a report cut short
            _remove_empty_folders(target, made)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return document


def _remove_empty_folders(deepest: Path, top: Path) -> None:
    """Remove the folders from `deepest` up to `top` that are empty: those an evaluation cut
    short made for its --output, unless another process wrote there meanwhile (review: an
    rmtree took another evaluation's finished report in a shared reports/ folder)."""
    for folder in (deepest, *deepest.parents):
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return


def _as_written_to(error: FileWriteError, staging: Path, target: Path,
                   name: str | None = None) -> FileWriteError:
    """A staged file's write error, named as the report's file in `target` (the staging
    folder is gone by the time it is read); `name`: the report file it is named as."""
    path = Path(str(error.path))
    if path.parent != staging:
        return error
    final = target / (name or path.name)
    cause = error.__cause__
    if isinstance(cause, OSError):
        return write_error(final, cause)
    hint = error.hint.replace(str(staging), str(target)) if error.hint else None
    return FileWriteError(final, error.reason, hint=hint, kind=error.kind)


def _write_staged(staging: Path, run_dir: Path, target: Path, evaluation: Evaluation,
                  existing: dict[str, Any], output: Path | None
                  ) -> tuple[dict[str, str], list[tuple[Path, Path]]]:
    """The report's files, written into `staging`: their names (by kind), and the moves
    (staged file, where it goes) that put them in place."""
    m = evaluation.metrics
    report.write_predictions_csv(staging / report.PREDICTIONS_FILE, evaluation.probabilities,
                                 evaluation.true_labels, evaluation.classes, evaluation.files)
    report.write_confusion_matrix_json(staging / report.CONFUSION_JSON_FILE, evaluation.matrix,
                                       evaluation.classes)
    accuracy = m["accuracy"]
    title = (f"test accuracy {100 * accuracy:.1f} % on {m['total']} images"
             if accuracy is not None else "no test images")
    report.plot_confusion_matrix(staging / report.CONFUSION_PNG_FILE, evaluation.matrix,
                                 evaluation.classes, title=title)
    files = {
        "predictions": report.PREDICTIONS_FILE,
        "confusion_matrix_json": report.CONFUSION_JSON_FILE,
        "confusion_matrix_png": report.CONFUSION_PNG_FILE,
    }
    moves = [(staging / name, target / name) for name in files.values()]
    history = existing.get("history")
    if isinstance(history, list) and history and output is None:
        if report.plot_training_history(staging / report.HISTORY_PNG_FILE, history):
            files["training_curves_png"] = report.HISTORY_PNG_FILE
            moves.append((staging / report.HISTORY_PNG_FILE, run_dir / report.HISTORY_PNG_FILE))
    return files, moves


def run_amp_dtype(loaded: Any) -> torch.dtype | None:
    """The autocast dtype the run trained with (None: float32); float16 if it does not say."""
    return getattr(loaded, "amp_dtype", torch.float16)


def evaluate_run(run_dir: str | os.PathLike[str],
                 data_dir: str | os.PathLike[str] | None = None, device: str = "auto",
                 quiet: bool = False, tta: bool | None = None, checkpoint: str = "last",
                 batch_size: int | None = None,
                 output: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Evaluate the run's model on the test split and write the report files into `run_dir`.

    data_dir: where the test data lives (default: the data dir the run trained on).
    tta: test-time augmentation (True or False); None follows the run's config.
    batch_size: images per model call, 1 or more (default: the run's eval_batch_size).
    output: a folder for the report files instead of the run dir (see write_evaluation).
    Prints the tutorial-style accuracy lines unless `quiet`. Returns the metrics document.

    A report into the run dir holds the run's lock, as `dlbox evaluate` does: a run that is
    training (or that another evaluation is writing) is a RunDirError, and a run dir that
    cannot be written a FileWriteError, both before anything is evaluated. A bad argument is
    a UsageError.
    """
    run_dir = Path(run_dir)
    tta = check_tta(tta)
    batch_size = check_batch_size(batch_size)
    report_folder = output_folder(Path(output) if output is not None else None, run_dir)
    data = Path(data_dir) if data_dir is not None else None
    if report_folder is not None:  # reads the checkpoint only, which training replaces whole
        return evaluate_run_unlocked(run_dir, data, device, quiet, tta, checkpoint,
                                     batch_size, report_folder)
    check_run_dir_writable(run_dir)  # before the evaluation's minutes, not after
    with not_while_training(run_dir):
        return evaluate_run_unlocked(run_dir, data, device, quiet, tta, checkpoint,
                                     batch_size)


def output_folder(output: Path | None, run_dir: Path) -> Path | None:
    """`output` as a folder to write into (checked: check_output_folder); None for the run
    dir itself, the default, whose report is the run's (metrics.json updated, under its
    lock)."""
    if output is None:
        return None
    check_output_folder(output, run_dir)  # before the lock and the evaluation
    if output.exists() and run_dir.exists() and output.resolve() == run_dir.resolve():
        return None
    return output


def check_run_dir_writable(run_dir: Path) -> None:
    """The run dir is where the report goes without --output: one that cannot be written (a
    read-only mount of shared runs) is refused now, with --output as the way out; it failed
    after the whole evaluation, its metrics lost. A missing run dir is load_run_model's
    error."""
    error = folder_write_error(run_dir)
    if error is None or isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return
    elsewhere = f"write the report elsewhere: dlbox evaluate {shell_quote(run_dir)} --output DIR"
    raise FileWriteError(run_dir, f"the run's folder is not writable ({error.strerror})",
                         hint=elsewhere if error.errno == errno.EROFS  # chmod cannot help
                         else f"{elsewhere}; or {make_writable(run_dir)}")


@contextlib.contextmanager
def not_while_training(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while its report is written: `dlbox train` rewrites metrics.json
    after every epoch, so an evaluation written meanwhile could drop an epoch from its
    history (or the trainer the evaluation), and two evaluations would write one report. A
    run dir that is not one yet is left to load_run_model's errors."""
    if not (run_dir / "config.json").is_file():
        yield
        return
    elsewhere = f"or now, into another folder: dlbox evaluate {shell_quote(run_dir)} --output DIR"
    with run_lock(run_dir, busy_hint="evaluate it when training ends (training evaluates "
                                     f"its last epoch itself), {elsewhere}",
                  evaluating=f"run it again when that ends, {elsewhere}"):
        # as train and resume do: what writes killed mid-way left (a checkpoint's temp file,
        # as big as a checkpoint; an evaluation's staging folder) goes once the lock is held
        remove_killed_writes(run_dir)
        yield


def unfinished_note(run_dir: str | Path, epochs: object, evaluation: dict[str, Any]
                    ) -> str | None:
    """`dlbox evaluate`'s note on an evaluation (its document) of a run that has not finished
    its `epochs` (review: its report read as a finished run's); None for a finished one.
    (The notebook says it in its own words: jupyter.kernel.unfinished_run_note.)"""
    done, steps = evaluation.get("epoch"), evaluation.get("step_in_epoch") or 0
    if not isinstance(epochs, int) or not isinstance(done, int) or done >= epochs:
        return None
    from dlbox.fileio import held_elsewhere

    at = (f"in epoch {done + 1} of {epochs} (after {steps} of its steps)" if steps
          else f"after epoch {done} of {epochs}")
    run = shell_quote(run_dir)
    # an --output evaluation of a run training now (re-review); an evaluation holds the
    # checkpoints/ folder's lock too (rundir.run_lock), by which it is told from a training
    if held_elsewhere(run_dir) and not held_elsewhere(Path(run_dir) / "checkpoints"):
        return (f"note: {run} is training: these are the weights it saved {at}, its last "
                "checkpoint so far")
    return (f"note: {run} stopped {at}: these are its weights so far; `dlbox train --resume "
            f"{run}` finishes it")


def evaluate_run_unlocked(run_dir: Path, data_dir: Path | None = None, device: str = "auto",
                          quiet: bool = False, tta: bool | None = None,
                          checkpoint: str = "last", batch_size: int | None = None,
                          output: Path | None = None) -> dict[str, Any]:
    """evaluate_run without its lock and its early checks, for a caller that holds the run's
    lock itself (the trainer's own final report); `output`: as output_folder gave it (checked)."""
    with out_of_memory_is_an_error(device, "evaluating"):
        loaded, resolved = load_run_model(run_dir, device, checkpoint)
    if output is None:  # metrics.json, unreadable or damaged, stops us now, not after minutes
        read_metrics_file(run_dir / METRICS_FILE)
        if checkpoint == "last":  # another checkpoint is no word on the run's history
            _catch_up_history(run_dir, loaded.config)
    used = getattr(loaded, "checkpoint_path", None)
    foreign = used if used is not None and outside_the_run(used, run_dir) else None
    dataset, notes = load_test_split(loaded.config, data_dir, getattr(loaded, "classes", None),
                                     foreign)
    classes = check_classes(getattr(loaded, "classes", None), dataset.classes, dataset.source,
                            foreign)
    for note in notes:  # after the classes: not said of data that is then refused
        tell(note)
    if tuple(dataset.classes) != classes:
        tell(f"note: the test data in {dataset.source} lists the run's classes in another "
             "order: each image is matched to the model's output of its class by name")
        dataset = in_model_order(dataset, classes)
    use_tta = resolve_tta(tta, loaded.config)
    if batch_size is None:
        batch_size = int(getattr(loaded.config, "eval_batch_size", DEFAULT_BATCH_SIZE))
    with out_of_memory_is_an_error(resolved, f"evaluating in batches of {batch_size} images"), \
            spinner(quiet, f"evaluating {len(dataset):,} test images on {resolved}"
                    + (" with test-time augmentation" if use_tta else "")):
        evaluation = evaluate_model(build_model_fn(loaded, use_tta), dataset, classes,
                                    resolved, batch_size, run_amp_dtype(loaded))
    details = evaluation_details(run_dir, getattr(loaded, "checkpoint_path", checkpoint),
                                 getattr(loaded, "epoch", None), resolved, use_tta,
                                 dataset.source, getattr(loaded, "step_in_epoch", 0))
    return report_evaluation(run_dir, evaluation, details, quiet, output,
                             run_tta=resolve_tta(None, loaded.config))


def evaluation_details(run_dir: Path, checkpoint: str | Path, epoch: int | None,
                       device: torch.device, tta: bool, data: str,
                       step_in_epoch: int = 0) -> dict[str, Any]:
    """What an evaluation document says of what it evaluated, as `dlbox evaluate` and the
    trainer's final evaluation both write it: paths absolute where given so, and one that
    is not UTF-8 as $'...' (json_path: lone surrogates are invalid JSON text for jq)."""
    return {
        "run_dir": json_path(str(run_dir.resolve())),
        "checkpoint": json_path(str(checkpoint)),
        "epoch": epoch,
        # weights of a run stopped mid-epoch: `epoch` whole epochs and these steps more
        **({"step_in_epoch": step_in_epoch} if step_in_epoch else {}),
        "device": str(device),
        "tta": tta,
        "data": json_path(data),
        "versions": software_versions(device),  # what the numbers came from
    }


def check_report_checkpoint(run_dir: Path, checkpoint: str) -> None:
    """The report in a run dir (metrics.json's test accuracy, predictions.csv, the confusion
    matrix) describes the run's own checkpoints/last.pt: another checkpoint (another run's,
    or a copy kept in this one) is refused there, before anything is read or written (review:
    another run's model's accuracy became this run's, without a word); --output takes it.
    A checkpoint that is no file is left to the loader's errors. (`dlbox evaluate` checks
    this; evaluate_run itself writes what it is asked to.)"""
    chosen = checkpoint_path(run_dir, checkpoint)
    own = run_dir / CHECKPOINTS_DIRNAME / "last.pt"
    try:
        if not chosen.is_file() or (own.is_file() and os.path.samefile(chosen, own)):
            return
    except OSError:  # out of reach: the loader says why
        return
    raise UsageError(f"the report in {run_dir} describes its own last checkpoint "
                     f"({CHECKPOINTS_DIRNAME}/last.pt), not {chosen}",
                     hint="pass --output DIR (a folder other than the run's) for this "
                          f"checkpoint's report: dlbox evaluate {shell_quote(run_dir)} "
                          f"--checkpoint {shell_quote(checkpoint)} --output DIR")


def _catch_up_history(run_dir: Path, config: TrainConfig) -> None:
    """A run stopped between its checkpoint and its metrics.json (a SIGKILL, a full disk):
    the history the report plots and keeps is brought up to the checkpoint's first."""
    from dlbox.training.loop import catch_up_metrics

    missing = not (run_dir / METRICS_FILE).exists()
    epoch = catch_up_metrics(run_dir, config)
    if epoch is None:
        return
    if missing:  # deleted, as the hint for a damaged one says: no training stopped
        tell(f"note: metrics.json was missing: its history is written again from "
             f"checkpoints/last.pt (epoch {epoch})")
    else:
        tell(f"note: metrics.json lagged checkpoints/last.pt (training stopped between the "
             f"two writes): its history is brought up to epoch {epoch}")


def check_output_folder(output: Path, run_dir: Path | None = None) -> None:
    """Refuse an `output` folder that cannot be made or written to before evaluating (minutes
    on a CPU), not after; nothing is made yet (write_evaluation makes it). Another run's
    folder is refused too: its own predictions and confusion matrix would be replaced."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file, not a folder",
                         hint="pass a folder (made if missing) for the report files")
    if (output / "config.json").is_file() and (run_dir is None or not run_dir.exists()
                                               or not output.samefile(run_dir)):
        raise UsageError(f"--output {output} is another run's folder: its predictions.csv and "
                         "confusion matrix would be replaced",
                         hint="pass a new folder (made if missing) for the report files")
    existing = output.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--output {output} cannot be made: {existing} is a file",
                         hint="pass a folder path (made if missing) for the report files")
    error = folder_write_error(existing)
    if error is not None and error.errno == errno.EROFS:  # chmod cannot help
        raise FileWriteError(output, f"{existing} is on a read-only filesystem",
                             hint="pass a folder on a writable filesystem for the report files")
    if error is not None:
        raise FileWriteError(output, f"{existing} is not writable for you",
                             hint="pass a folder you can write to, or fix its permissions")



@contextlib.contextmanager
def out_of_memory_is_an_error(device: str | torch.device, doing: str) -> Iterator[None]:
    """Running out of memory (a model or a batch too big for the GPU or RAM) as a one-line
    DlboxError pointing at the CPU, not an "unexpected error" asking for a bug report."""
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        on_cpu = str(device) == "cpu"
        amount = memory_asked_for(error)
        raise DlboxError(f"out of memory on {device} {doing}"
                         + (f" (it asked for {amount} more)" if amount else ""),
                         hint="free memory used by other programs" if on_cpu else
                         "run it on the CPU with --device cpu, or free GPU memory used by "
                         "other programs") from None


def report_evaluation(run_dir: Path, evaluation: Evaluation, details: dict[str, Any],
                      quiet: bool = False, output: Path | None = None,
                      run_tta: bool | None = None) -> dict[str, Any]:
    """write_evaluation, then the tutorial-style accuracy lines unless `quiet`."""
    document = write_evaluation(run_dir, evaluation, details, output, run_tta)
    if not quiet:
        for line in report.accuracy_lines(evaluation.metrics):
            print(line)
    return document
