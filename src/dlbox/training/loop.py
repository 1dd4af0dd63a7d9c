"""The training loop: data on the device as uint8, batches augmented there, one-cycle SGD,
a checkpoint after every epoch, and a clean stop on Ctrl-C or SIGTERM.

    run_dir = train(build_config("resnet", device="auto"))     # what `dlbox train` does
    run_dir = resume(run_dir)                                  # `dlbox train --resume RUN`

Reads top to bottom: set up (device, data, model, optimizer, schedule, RNG), then per
epoch: shuffle, per step: index, augment, normalise, forward, backward, step; then test
accuracy, metrics.json and checkpoints/last.pt. Everything random draws from one seeded
torch.Generator on the device plus torch's global RNG (for the model's initial weights),
and all of it is in the checkpoint, so an interrupted run resumed on the same CPU ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import random
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dlbox.data.dataset import ImageDataset, data_fingerprint
from dlbox.data.imagefolder import refuse_another_unicode_form
from dlbox.data.layout import IMAGE_EXTENSIONS_TEXT
from dlbox.errors import DlboxError, FileWriteError, RunDirError, UsageError, write_error
from dlbox.fileio import (
    expand_user,
    folder_write_error,
    read_json,
    write_json_atomic,
)
from dlbox.processes import Terminated, detach_from_terminal, handling, hangup
from dlbox.text import listed, make_writable, plural, shell_quote, tell
from dlbox.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CONFIG_FILE,
    DAMAGED_HINT,
    METRICS_FILE,
    CheckpointParts,
    RunFileUnreadable,
    as_json_value,
    build_run_model,
    capture_rng_state,
    check_checkpoint,
    checkpoint_path,
    edited_setting,
    expect_history,
    expect_type,
    float32_models,
    load_checkpoint,
    load_state_dict_checked,
    missing_checkpoint_hint,
    read_run_config,
    reading_run_file,
    restore_rng_state,
    run_json_error,
    save_checkpoint,
)
from dlbox.training.config import THREADS_PER_CORE, TrainConfig, check_new_seed, check_threads
from dlbox.training.device import (
    amp_dtype,
    available_cpus,
    configure_host,
    is_out_of_memory,
    memory_asked_for,
    process_settings_kept,
    resolve_device,
)
from dlbox.training.inputs import prepare_batch
from dlbox.training.manifest import MANIFEST_FILE, build_manifest, utc_now
from dlbox.training.progress import TrainProgress, spinner
from dlbox.training.rundir import (
    check_new_run_dir,
    claim_default_run_dir,
    create_run_dir,
    discard_unsaved,
    remove_killed_writes,
    run_all_written,
    run_lock,
)
from dlbox.training.schedules import lr_factor, make_scheduler
from dlbox.training.tta import views_for_level

if TYPE_CHECKING:
    from dlbox.data.loading import Skipped
    from dlbox.training.speedrun import SpeedrunConfig


# A callback asked after every optimizer step: (epoch, step in epoch) -> stop now? The epoch
# is the one in progress, from 1; the step, the steps done in it (1 after the first), in
# both trainers.
StopCheck = Callable[[int, int], bool]


class AlreadyFinished(RunDirError):
    """`--resume` of a run whose every epoch is done: nothing to do, not a failure (a job
    that a scheduler requeues after its run finished asks again)."""


class TrainingStopped(DlboxError):
    """Training stopped early on request (Ctrl-C, SIGTERM).

    `saved_epoch` is None when checkpoints/last.pt holds the state at the very step it
    stopped (the generic loop), the last finished epoch when the trainer keeps only epoch
    boundaries (speedrun: the epoch in progress is lost), and 0 when nothing was saved (a
    stop before the speedrun trainer's first epoch ended): then there is nothing to resume.
    """

    def __init__(self, run_dir: Path, reason: str, exit_code: int,
                 saved_epoch: int | None = None, finished: bool = False) -> None:
        last = run_dir / "checkpoints" / "last.pt"
        self.resumable = saved_epoch != 0 and not finished
        self.finished = finished
        if finished:  # the stop came in the last epoch's test pass: training is done
            message = (f"training stopped ({reason}) after its last epoch, before the final "
                       f"evaluation; the trained state is in {last}")
        elif saved_epoch is None:
            message = f"training stopped ({reason}); state saved in {last}"
        elif saved_epoch == 0:
            message = (f"training stopped ({reason}) before its first epoch ended; nothing "
                       "was saved")
        else:
            message = (f"training stopped ({reason}); the state after epoch {saved_epoch} is "
                       f"in {last} (the epoch in progress is lost)")
        where = shell_quote(run_dir)
        super().__init__(
            message,
            hint=(f"evaluate it with: dlbox evaluate {where}" if finished else
                  f"continue with: dlbox train --resume {where}" if self.resumable else
                  f"start again with the same command (it may reuse {run_dir}, which holds "
                  "no checkpoint)"),
        )
        self.run_dir = run_dir
        self.exit_code = exit_code
        self.reason = reason

    def report_lines(self) -> list[str]:
        """Not an error: what was saved, and how to go on."""
        if self.finished:
            return [self.message, f"evaluate with: dlbox evaluate {shell_quote(self.run_dir)}"]
        return [self.message, f"resume with: dlbox train --resume {shell_quote(self.run_dir)}"
                if self.resumable else f"hint: {self.hint}"]


# ---- the input pipeline: prepare_batch (dlbox.training.inputs) is used by training, evaluate
# and predict; the rest of it lives here.

def to_device(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move the model to `device`, its conv weights in channels_last layout when asked."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def autocast_context(device: torch.device,
                     dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def network_logits(model: nn.Module, images: torch.Tensor, device: torch.device,
                   batch_size: int = 1000, channels_last: bool = False,
                   amp_dtype: torch.dtype | None = None, mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None, tta_flip: bool = False) -> torch.Tensor:
    """Logits (float32, on the CPU) for uint8 images, in batches, the model in eval mode."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = prepare_batch(images[start:start + batch_size], device, channels_last,
                              mean=mean, std=std)
            with autocast_context(device, amp_dtype):
                logits = model(x).float()
                if tta_flip:
                    logits = 0.5 * (logits + model(x.flip(3)).float())
            outputs.append(logits.cpu())
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def augment(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random crop (after padding), horizontal flip and cutout (filled with the mean) of a
    uint8 batch, on its device."""
    from dlbox.data.augment import AugmentConfig, augment_batch

    return augment_batch(images, AugmentConfig(
        crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout,
        cutout_fill=tuple(255.0 * m for m in config.mean)), generator)


# ---- data -------------------------------------------------------------------------------------

def load_split(data_dir: Path, split: str, limit: int | None, *,
               refuse_short: bool = False) -> ImageDataset:
    """The split's first `limit` images (all when None). With `refuse_short` (a new run's
    --num-train / --num-test), a `limit` beyond the split is a UsageError, before the run dir
    is made: silently taking fewer images than asked hides a wrong data dir."""
    from dlbox.data.loading import load_dataset, split_size

    if refuse_short and limit is not None:  # counted first: an image tree is decoded after
        refuse_beyond(split_size(data_dir, split), limit, f"--num-{split}", split, data_dir)
    return load_dataset(data_dir, split, limit)


def warn_of_classes_it_cannot_learn(train_set: ImageDataset, limit: int | None,
                                    data_dir: Path, skipped: Skipped | None = None) -> None:
    """A class without training images (an empty class folder in an image tree, or one the
    first --num-train images lack) is still one of the model's outputs, never learnt; one
    class alone makes every prediction that class. torchvision's ImageFolder refuses an
    empty class folder; dlbox trains, and says so (review: it said nothing). `limit`:
    --num-train, of the training split in `data_dir`; `skipped`: what loading that split
    passed over (skipped_entries): a class whose folder holds only that is told where its
    images go (review: "add training images" to a folder of .heic files, or of a sub-folder
    of images)."""
    classes = train_set.classes
    counts = torch.bincount(train_set.labels, minlength=len(classes)).tolist()
    unseen = [name for name, count in zip(classes, counts, strict=True) if count == 0]
    if len(classes) == 1:
        tell(f"warning: the data has one class, {classes[0]}: every prediction is "
             f"{classes[0]} (an image tree needs a folder per class)")
    elif unseen:
        shown = listed(unseen, 5)
        what = f"class {shown}" if len(unseen) == 1 else f"{len(unseen)} classes ({shown})"
        if limit is not None:  # counted only now: an image tree's files are listed again
            from dlbox.data.loading import split_size

            taken = limit < split_size(data_dir, "train")
        else:
            taken = False
        where = ("the training split has" if not taken else "the first training image holds"
                 if limit == 1 else f"the first {limit} training images hold")
        in_unseen = tuple(f"{name}/" for name in unseen)  # the entries of their folders
        unread = not taken and skipped is not None and any(
            entry.startswith(in_unseen) for entries in skipped for entry in entries)
        renames = [] if taken else _case_twin_renames(data_dir, unseen)
        fix = ("a larger --num-train may take some in" if taken else
               "a test class folder's name differs from a training one's only in case: "
               f"rename it: {'; '.join(renames)}" if renames else
               _unread_images_fix(unseen) if unread else
               "add training images of it, or remove its class folders from every split if it "
               "is not a class" if len(unseen) == 1 else "add training images of them, or "
               "remove the class folders of any that is not a class from every split")
        tell(f"warning: {where} no images of {what}: the model has an output for "
             f"{'it' if len(unseen) == 1 else 'each'} that training never teaches ({fix})")


def _case_twin_renames(data_dir: Path, unseen: list[str]) -> list[str]:
    """The `mv`s for classes without training images whose test folder is a training
    folder's name in another case (train/cat beside test/Cat: two classes to dlbox), as
    `dlbox data check` gives them (review: train said to add training images of Cat)."""
    from dlbox.data.loading import case_twin_renames, detect_layout, image_folder_classes

    layout = detect_layout(data_dir)
    if layout is None or layout.kind != "image-folder":
        return []
    return [rename for _, _, rename, names in
            case_twin_renames(layout.root, image_folder_classes(layout.root))
            if set(names) & set(unseen)]


def _unread_images_fix(unseen: list[str]) -> str:
    """The fix for classes without training images whose folders hold what the tree does
    not read (named in the `note: train: skipped ...` lines just before): where their images
    go."""
    if len(unseen) == 1:
        return (f"its folder holds only what is not read, noted above; put its images "
                f"directly in train/{unseen[0]}/, as {IMAGE_EXTENSIONS_TEXT} files")
    return (f"their folders hold only what is not read, noted above; put the images directly "
            f"in train/<class>/, as {IMAGE_EXTENSIONS_TEXT} files, or remove the class folders "
            "of any that is not a class from every split")


def note_what_is_not_read(data_dir: Path) -> dict[str, Skipped]:
    """Notes of what in `data_dir` training does not read, as `dlbox data check` notes them:
    each split's files an image tree passes over (review: train said nothing of them), and
    an image tree beside CIFAR-10 batches. Returns the former, by split."""
    from dlbox.data.loading import shadowed_image_tree, skipped_by_split, skipped_notes

    skipped = skipped_by_split(data_dir)
    for note in skipped_notes(skipped):
        tell(f"note: {note}")
    shadowed = shadowed_image_tree(data_dir)
    if shadowed is not None:
        tell(f"note: {shadowed}")
    return skipped


def refuse_beyond(available: int, limit: int | None, flag: str, split: str,
                  data_dir: Path) -> None:
    """UsageError when `flag`'s count of images, `limit`, is more than the `available`."""
    if limit is not None and limit > available:
        raise UsageError(f"{flag} {limit} is more than the {available:,} {split} images in "
                         f"{data_dir}", hint=f"pass {flag} {available} or less, or leave "
                                             f"{flag} out to use them all")


def resolve_data(config: TrainConfig) -> Path:
    from dlbox.data.paths import resolved_data_dir

    return resolved_data_dir(config.data_dir)


# ---- stopping cleanly ------------------------------------------------------------------------

@dataclass
class StopFlag:
    """Set by the signal handler; read by the loop between steps."""

    signum: int | None = None

    def __call__(self, epoch: int, step: int) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP (a dropped SSH session; not under nohup): finish the
    current step, save, stop. Second: stop at once, unless a hang-up is one of the two (it
    comes twice, and nobody is there to mean it)."""

    def handler(signum: int, frame: Any) -> None:
        if hangup(signum):
            detach_from_terminal()  # the progress bar's next write would fail, unsaved
        if flag.signum is not None:
            if hangup(signum) or hangup(flag.signum):
                return
            if signum == signal.SIGTERM:  # exit 143 and "stopped (SIGTERM)", not Ctrl-C's
                raise Terminated(signum)
            raise KeyboardInterrupt  # asked twice: the user means it
        flag.signum = signum

    with handling(handler, "SIGINT", "SIGTERM", "SIGHUP"):
        yield


# ---- the loop ------------------------------------------------------------------------------

@dataclass
class EpochSums:
    """Running sums of the current epoch (saved mid-epoch so a resume continues them)."""

    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "correct": self.correct, "seen": self.seen,
                "seconds": self.seconds}


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done in epoch `epoch + 1`
    global_step: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_perm: torch.Tensor | None = None
    sums: EpochSums = field(default_factory=EpochSums)
    finished: bool = False


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches only (a random order each epoch, so no image is left out for long);
    at least one batch when the data is smaller than a batch."""
    return max(1, num_images // batch_size)


def train(config: TrainConfig, progress: bool = True, evaluate_at_end: bool = True,
          stop: StopCheck | None = None) -> Path:
    """Train a new run as `config` says; returns its run directory.

    `stop(epoch, step)`, asked after every step, may end training early: the state is saved
    and TrainingStopped raised. Ctrl-C and SIGTERM do the same (exit code 130 / 143).
    A SpeedrunNet (`--model speedrun`) goes to the speedrun trainer instead (`_run_speedrun`:
    the same run-dir files, progress and stop; it saves and resumes at epoch boundaries).
    The process's torch threads, cuDNN/TF32 flags and random states (Python, NumPy, torch)
    are as they were when it returns or raises (process_settings_kept).
    A seed outside 0..2**32-1 is refused (check_new_seed: it would train another seed's run).
    """
    check_new_seed(config.seed)
    device = resolve_device(config.device)
    # No run_dir: runs/<time>-<model>, claimed when it is made (see claim_default_run_dir).
    run_dir = expand_user(config.run_dir).resolve() if config.run_dir else None
    data_dir = resolve_data(config)
    config = config.replace(run_dir=str(run_dir) if run_dir else None, data_dir=str(data_dir))
    with process_settings_kept(), out_of_memory_is_an_error(config, device, run_dir), \
            trainable():
        return _train(config, device, run_dir, data_dir, progress, evaluate_at_end, stop)


@contextlib.contextmanager
def trainable() -> Iterator[None]:
    """Autograd on and models built in float32 for a run, whatever the caller's torch is
    set to; the caller's modes come back after it (review: in a notebook's `with
    torch.no_grad():` or `torch.inference_mode():` train() failed with torch's "element 0
    of tensors does not require grad", and after torch.set_default_dtype(torch.float64)
    with "Input type FloatTensor and weight type DoubleTensor", leaving a run dir behind)."""
    with torch.inference_mode(False), torch.enable_grad(), float32_models():
        yield


def _train(config: TrainConfig, device: torch.device, run_dir: Path | None, data_dir: Path,
           progress: bool, evaluate_at_end: bool, stop: StopCheck | None) -> Path:
    # Check the model and load the data before making the run dir: a bad --model, a bad
    # setting or missing data leaves nothing behind.
    from dlbox.models.registry import create_model
    from dlbox.models.speedrun import SpeedrunNet

    speedrun = isinstance(create_model(config.model, **config.model_kwargs), SpeedrunNet)
    if speedrun and config.batch_size < 2:
        # One image: a feature map without variation (a channel ReLU left at 0) has a
        # BatchNorm variance of 0, and under the speedrun's tiny epsilon an infinite
        # gradient: review saw it "diverge" at any --lr, on data of flat channels.
        tell(f"warning: --batch-size 1 with model '{config.model}': its BatchNorm then "
             "normalises each image by itself, and a feature map without variation makes "
             "training diverge whatever the --lr; 2 or more is safe")
    if run_dir is not None:
        check_new_run_dir(run_dir)
    with spinner(not progress, f"reading the data in {data_dir}"):  # an image tree: seconds
        train_set = load_split(data_dir, "train", config.num_train, refuse_short=True)
        test_set = load_split(data_dir, "test", config.num_test, refuse_short=True)
    skipped = note_what_is_not_read(data_dir)
    warn_of_classes_it_cannot_learn(train_set, config.num_train, data_dir, skipped.get("train"))
    if config.batch_size > len(train_set):  # config.json keeps the value asked for
        tell(f"note: the batch size, {config.batch_size}, is more than the {len(train_set)} "
             f"training images: each step takes all {len(train_set)}, one step an epoch")
    named = run_dir is not None
    if run_dir is None:
        run_dir = claim_default_run_dir(config.model).resolve()
        config = config.replace(run_dir=str(run_dir))
    else:
        create_run_dir(run_dir)
    try:
        return _train_in(config, device, run_dir, data_dir, train_set, test_set, speedrun,
                         progress, evaluate_at_end, stop)
    except BaseException as error:
        # Whatever stopped it (a stop, divergence, out of memory, a second Ctrl-C, a closed
        # stdout): a default folder (no --run-dir) that saved nothing is clutter, since the
        # same command makes a new one; a folder that holds a checkpoint is kept.
        removed = not named and discard_unsaved(run_dir)
        if removed:  # the default runs/ folder, made for it and now empty (review)
            with contextlib.suppress(OSError):
                run_dir.parent.rmdir()
        if isinstance(error, TrainingStopped) and not named and not error.resumable \
                and not error.finished:
            error.hint = (f"start again with the same command (the run's folder {run_dir}, "
                          "which held no checkpoint, is removed)" if removed
                          else "start again with the same command; add --run-dir "
                               f"{shell_quote(run_dir)} to it to reuse this run's folder, "
                               "which holds no checkpoint")
        if isinstance(error, Diverged) and removed:
            raise error.folder_removed() from None
        if isinstance(error, FileWriteError) and removed and error.kind == "no-space":
            # its hint named the removed folder (`df -h RUN_DIR/checkpoints`: no such file)
            error.hint = write_error(error.path, OSError(errno.ENOSPC, error.reason)).hint
        if isinstance(error, (KeyboardInterrupt, BrokenPipeError, SystemExit,
                              FileWriteError)):
            error.run_dir = run_dir  # type: ignore[union-attr]  # the CLI names it
        raise


def _train_in(config: TrainConfig, device: torch.device, run_dir: Path, data_dir: Path,
              train_set: ImageDataset, test_set: ImageDataset, speedrun: bool,
              progress: bool, evaluate_at_end: bool, stop: StopCheck | None) -> Path:
    with run_lock(run_dir):  # before any file is written: a run may still live in a reused dir
        remove_killed_writes(run_dir)
        write_json_atomic(run_dir / CONFIG_FILE, config.to_dict())
        configure_host(device, config.threads)
        write_json_atomic(run_dir / MANIFEST_FILE,
                          build_manifest(device, data_dir, train_set.source))
        if speedrun:
            return _run_speedrun(config, run_dir, device, train_set, test_set, None, progress,
                                 evaluate_at_end, stop)
        return _run(config, run_dir, device, train_set, test_set, None, progress,
                    evaluate_at_end, stop)


def resume(run_dir: str | Path, device: str | None = None, data_dir: str | Path | None = None,
           progress: bool = True, evaluate_at_end: bool = True,
           stop: StopCheck | None = None, threads: int | None = None) -> Path:
    """Continue an interrupted run from checkpoints/last.pt with its own config.json.

    `device`, `data_dir` and `threads` may differ from the original run's (a moved data dir,
    another machine, a shared host); every other setting is the run's. A run that finished
    raises AlreadyFinished. The process's settings are kept, as train() keeps them.
    """
    check_threads(threads)  # at most 4 per core, as for a new run (torch crashes beyond)
    run_dir = expand_user(run_dir).resolve()
    config = read_run_config(run_dir, command="dlbox train --resume")
    where = resolve_device(device or config.device,
                           source=None if device else str(run_dir / CONFIG_FILE))
    # A second resume of a run that is training is refused; waiting is the only fix.
    with run_lock(run_dir, busy_hint="wait for it to end (it saves its state as it goes; "
                                     "resume it again if it stops before its last epoch)"), \
            process_settings_kept(), out_of_memory_is_an_error(config, where, run_dir), \
            trainable():
        remove_killed_writes(run_dir)
        return _resume(run_dir, config, device, data_dir, progress, evaluate_at_end, stop,
                       threads)


def _finished_hint(run_dir: Path) -> str:
    """The hint for a finished run asked to resume: its report where it has it whole (review:
    after resume had finished placing a report a killed evaluation left, it still said to
    evaluate), else `dlbox evaluate` to make it."""
    if not run_all_written(run_dir, evaluated=True):
        return (f"evaluate it with `dlbox evaluate {shell_quote(run_dir)}`, or start a new run "
                "with more --epochs")
    files: list[str] = []
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        named = read_json(run_dir / METRICS_FILE)["evaluation"].get("files") or {}
        files = [name for name in named.values() if isinstance(name, str)]
    if not all((run_dir / name).is_file() for name in files):  # one deleted (re-review)
        return (f"evaluate it with `dlbox evaluate {shell_quote(run_dir)}` for the report "
                "files it lacks, or start a new run with more --epochs")
    return (f"its report is in {run_dir} ({', '.join([*files, METRICS_FILE])}); to train "
            "longer, start a new run with more --epochs")


def _threads_trained_with(run_dir: Path, config: TrainConfig) -> int | None:
    """The CPU threads the run last trained with: manifest.json's, of its last resume or
    else of its start (a run on every core has "threads": null in config.json); else
    config.json's, else every core here (a run that recorded neither used all of its
    machine's); None where that training was not on the CPU."""
    manifest: Any = None
    with contextlib.suppress(OSError, ValueError):
        manifest = read_json(run_dir / MANIFEST_FILE)
    if isinstance(manifest, dict):
        resumed = manifest.get("resumed")
        last = resumed[-1] if isinstance(resumed, list) and resumed else manifest
        last = last if isinstance(last, dict) else manifest
        if last.get("device") not in (None, "cpu"):
            return None
        threads = last.get("cpu_threads")
        if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
            return int(last["cpu_threads"])
    return config.threads or available_cpus()


@contextlib.contextmanager
def out_of_memory_is_an_error(config: TrainConfig, device: torch.device,
                              run_dir: Path | None) -> Iterator[None]:
    """Turn running out of memory (a batch or a model too big for the GPU or RAM) into a
    one-line DlboxError whose hint names the settings to lower, instead of an "unexpected
    error" (exit 70) that asks the user to report a bug."""
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        amount = memory_asked_for(error)
        width = config.model_kwargs.get("width")
        lower = f"--batch-size (this run's: {config.batch_size})" + (
            f" or --width (this run's: {width})" if width is not None else "")
        # A run dir the user named and that saved nothing can be named again (a default
        # one is not: the next run gets a new one).
        saved = run_dir is None or checkpoint_path(run_dir, "last").is_file()
        raise DlboxError(
            f"out of memory on {device} training model {config.model!r} with batch size "
            f"{config.batch_size}" + (f" (it asked for {amount} more)" if amount else ""),
            hint=f"train again with a smaller {lower}, or free memory used by other programs"
                 + (" (with another --run-dir)" if saved and run_dir is not None
                    else "" if saved else
                    f"; --run-dir {shell_quote(run_dir)} may be reused, it saved nothing"),
        ) from None


def _resume(run_dir: Path, config: TrainConfig, device: str | None,
            data_dir: str | Path | None, progress: bool, evaluate_at_end: bool,
            stop: StopCheck | None, threads: int | None = None) -> Path:
    path = checkpoint_path(run_dir, "last")
    with reading_run_file(path):  # a folder on the way that is not open to the user
        found = path.is_file()
    if not found:
        raise RunDirError(f"{run_dir} has no checkpoint to resume from"
                          + (" (a folder of that name is in its place)" if path.is_dir() else ""),
                          hint=missing_checkpoint_hint(run_dir, "last", config.checkpoint_every))
    state = load_checkpoint(path)
    check_checkpoint(state, path)
    _check_config_unchanged(run_dir, config, state)
    if state.get("finished"):
        try:  # a damaged metrics.json is evaluate's to report: a requeued job ends here
            _check_metrics_file(run_dir / METRICS_FILE)
        except RunDirError:
            caught_up = None
        else:
            caught_up = catch_up_metrics(run_dir, config, state)
        if caught_up is not None:  # it stopped after its last checkpoint, before the metrics
            raise AlreadyFinished(
                f"run {run_dir} had finished {_all_epochs(config.epochs)}, but "
                f"metrics.json lagged its checkpoint: its history is brought up to epoch "
                f"{caught_up}", hint="evaluate it with `dlbox evaluate "
                f"{shell_quote(run_dir)}` for its predictions and confusion matrix")
        raise AlreadyFinished(f"run {run_dir} already finished "
                              f"{_all_epochs(config.epochs)}: nothing to resume",
                              hint=_finished_hint(run_dir))
    _check_resumable_in_place(run_dir)
    trained_on = config.data_dir
    changes: dict[str, Any] = {"run_dir": str(run_dir)}
    if device is not None:
        changes["device"] = device
    trained_threads = _threads_trained_with(run_dir, config)  # before config.json changes
    most_threads = THREADS_PER_CORE * available_cpus()  # what --threads takes here
    if threads is not None:  # how many cores this machine gives it: not a result setting
        changes["threads"] = threads
    elif config.threads and config.threads > available_cpus():  # set for a bigger machine
        differ = ""  # re-review: a run trained here on more threads than cores
        if trained_threads not in (None, available_cpus()):
            differ = ("; its weights will then differ slightly from those of a run never "
                      "interrupted" + (f", which --threads {trained_threads} avoids"
                                       if trained_threads <= most_threads else ""))
        tell(f"note: the run was set to {config.threads} CPU threads, more than the "
             f"{plural(available_cpus(), 'core')} here: it resumes with {available_cpus()} "
             f"(--threads N to choose{differ})")
        changes["threads"] = None
        trained_threads = None  # that note said it
    from dlbox.data.loading import reading_the_runs_data_dir, runs_data_dir

    recorded = True
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    else:  # a container's /data, not on this machine: $DLBOX_DATA's, with a note
        changes["data_dir"], recorded = runs_data_dir(trained_on)
    config = config.replace(**changes)
    torch_device = resolve_device(config.device)
    resumes_with = config.threads or available_cpus()  # as configure_host sets them
    if torch_device.type == "cpu" and trained_threads not in (None, resumes_with):
        # review: the floating-point sums differ with the thread count, so the docs' "the
        # same weights as a run never interrupted" did not hold, without a word
        again = (f": --threads {trained_threads}" if trained_threads <= most_threads
                 else "")  # one --threads refuses here: another machine's count
        tell(f"note: the run trained with {trained_threads} CPU threads and resumes with "
             f"{resumes_with}: its weights will differ slightly from those of a run never "
             f"interrupted (the same CPU and thread count give the same weights{again})")
    resolved_data = resolve_data(config)
    config = config.replace(data_dir=str(resolved_data))

    with reading_the_runs_data_dir(given=data_dir is not None or trained_on is None
                                   or not recorded, classes=state.get("classes")):
        train_set = load_split(resolved_data, "train", config.num_train)
        test_set = load_split(resolved_data, "test", config.num_test)
    note_what_is_not_read(resolved_data)
    # Nothing in the run dir changes until the checkpoint is known to fit this data, and
    # metrics.json (which every epoch rewrites, keeping what evaluate added) to be readable.
    # the hint's data: where the checkpoint says it trained, past an edited config.json
    saved = state.get("config")
    _check_resume_fits(path, state, config, train_set,
                       (saved.get("data_dir") if isinstance(saved, dict) else None) or trained_on,
                       test_set)
    _check_metrics_file(run_dir / METRICS_FILE)
    caught_up = catch_up_metrics(run_dir, config, state)
    if caught_up is not None:  # it stopped after a checkpoint, before that epoch's metrics
        tell(f"note: metrics.json lagged its checkpoint: its history is brought up to epoch "
             f"{caught_up}")
    configure_host(torch_device, config.threads)
    manifest_path = run_dir / MANIFEST_FILE
    manifest = _read_manifest(manifest_path)
    manifest.setdefault("resumed", []).append(
        {**build_manifest(torch_device, resolved_data, train_set.source),
         "from_epoch": int(state["epoch"]), "from_step": int(state.get("step_in_epoch", 0))})
    write_json_atomic(manifest_path, manifest)
    write_json_atomic(run_dir / CONFIG_FILE, config.to_dict())
    if state.get("trainer") == "speedrun":
        return _run_speedrun(config, run_dir, torch_device, train_set, test_set, state,
                             progress, evaluate_at_end, stop)
    return _run(config, run_dir, torch_device, train_set, test_set, state, progress,
                evaluate_at_end, stop)


def _all_epochs(epochs: int) -> str:
    """"all 3 epochs", "its 1 epoch" (review: "all 1 epoch")."""
    return f"all {epochs} epochs" if epochs != 1 else "its 1 epoch"


# The settings a run's results come from, which a resume keeps (device, data_dir, threads,
# eval_batch_size and checkpoint_every may change). model_kwargs too (review: width 8 -> 16
# built another network, named "does not fit"; one that still loaded trained on silently);
# amp and channels_last (review: other weights than the run's own), and tta (each epoch's
# test accuracy is with it or without it).
RESULT_SETTINGS = ("epochs", "batch_size", "lr", "weight_decay", "momentum", "nesterov",
                   "label_smoothing", "schedule", "warmup_fraction", "crop_padding", "flip",
                   "cutout", "seed", "num_train", "num_test", "mean", "std", "model_kwargs",
                   "amp", "channels_last", "tta")


def changed_result_settings(saved: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """The settings a resumed run keeps (RESULT_SETTINGS, and the model where `config` names
    one dlbox knows: else its own error says so) that `config` sets otherwise than `saved`
    (a checkpoint's config, or config.json's) does. The others (where it runs, its folders,
    threads, checkpoint_every, eval_batch_size) a resume takes as they are now. The one rule
    of `--resume` (_check_config_unchanged) and of the notebook's (stopped_with)."""
    now = json.loads(json.dumps(config.to_dict()))  # as the checkpoint has it: lists
    from dlbox.models import model_names

    names = RESULT_SETTINGS + (("model",) if config.model in model_names() else ())
    return [name for name in names
            if name in saved and name in now and as_json_value(saved[name]) != now[name]]


def _check_config_unchanged(run_dir: Path, config: TrainConfig, state: dict[str, Any]) -> None:
    """Refuse a config.json edited since the checkpoint (review: epochs 2 -> 3 and
    batch_size 4 -> 8 resumed at the saved step counted in batches of 4, skipping images,
    and a finished run "finished all 3 epochs" it never trained)."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return  # an older checkpoint: nothing to compare with
    changed = changed_result_settings(saved, config)
    if not changed:
        return
    name, now = changed[0], json.loads(json.dumps(config.to_dict()))  # (lists, as saved)
    raise RunDirError(
        f"{edited_setting(run_dir, name, now[name], saved[name])}: a resumed run keeps its "
        "settings",
        hint=(f"the run finished: put {name} back to {json.dumps(saved[name])} in "
              f"config.json, and evaluate it (dlbox evaluate {shell_quote(run_dir)}) "
              "or start a new run with the settings you want"
              if state.get("finished") else
              f"put {name} back to {json.dumps(saved[name])} in config.json to resume; "
              "for other settings, start a new run with them"))


def _check_resumable_in_place(run_dir: Path) -> None:
    """A run dir that cannot be written (a read-only mount of finished work, another user's
    folder) is refused before the data is read. --run-dir cannot go with --resume, so the
    way out is a copy of the run that can be written."""
    error = folder_write_error(run_dir)
    if error is None:
        return
    copy = (f"copy the run to a folder you can write and resume it there: cp -r "
            f"{shell_quote(run_dir)} DIR && dlbox train --resume DIR")
    raise RunDirError(f"cannot resume {run_dir}: its folder is not writable ({error.strerror})",
                      hint=copy if error.errno == errno.EROFS  # chmod cannot help there
                      else f"{make_writable(run_dir)}; or {copy}")


def _check_resume_fits(path: Path, state: dict[str, Any], config: TrainConfig,
                       train_set: ImageDataset, trained_on: str | None,
                       test_set: ImageDataset | None = None) -> None:
    """Refuse to resume on other data (other classes, another number of training images,
    fewer test images than its num_test) or with weights that don't fit the model, before
    anything is written."""
    hint = (f"resume with the data it was trained on: --data {shell_quote(trained_on)}"
            if trained_on
            else "resume with the data it was trained on (--data DIR)")
    if trained_on and _same_folder(trained_on, config.data_dir):  # review: it named itself
        hint = (f"the data in {config.data_dir} changed since the checkpoint: put it back as it "
                "was, or start a new run on it")
    saved_classes = tuple(str(c) for c in state.get("classes") or ())
    if saved_classes and saved_classes != tuple(train_set.classes):
        refuse_another_unicode_form(saved_classes, train_set.classes, train_set.source,
                                    "the training data")
        raise RunDirError(
            f"{path} was trained on {len(saved_classes)} classes ({', '.join(saved_classes)}), "
            f"but {config.data_dir} has {len(train_set.classes)} "
            f"({', '.join(train_set.classes)})", hint=hint)
    # The image count: recorded since this release; older checkpoints stopped mid-epoch
    # carry it as their epoch's permutation.
    saved_count = state.get("num_train_images")
    if saved_count is None and state.get("epoch_perm") is not None:
        saved_count = len(state["epoch_perm"])
    if saved_count is not None and int(saved_count) != len(train_set):
        raise RunDirError(
            f"{path} was trained on {int(saved_count)} training images, but "
            f"{config.data_dir} gives {len(train_set)}", hint=hint)
    # A new run refuses a --num-test beyond the data; a resume took fewer, and its history
    # mixed accuracies on 80 and on 50 images (review).
    if test_set is not None and config.num_test is not None and len(test_set) < config.num_test:
        raise RunDirError(
            f"run {path.parent.parent} tests on {config.num_test} test images (num_test in its "
            f"config.json), but {config.data_dir} has {len(test_set)}", hint=hint)
    # Without a num_test, all the test images: as many as the run tested on (recorded since
    # this release; re-review: a run without --num-test mixed 100 and 50 images silently).
    saved_tests = state.get("num_test_images")
    if test_set is not None and saved_tests is not None and int(saved_tests) != len(test_set):
        raise RunDirError(
            f"run {path.parent.parent} tested on {int(saved_tests)} test images, but "
            f"{config.data_dir} gives {len(test_set)}", hint=hint)
    # The images and labels themselves (recorded since this release; review: class folders
    # swapped, or an image moved to another class, resumed without a word)
    saved_print = state.get("data_fingerprint")
    if test_set is not None and saved_print is not None \
            and saved_print != data_fingerprint(train_set, test_set):
        raise RunDirError(
            f"{config.data_dir} holds other images or labels than the run was trained on, "
            "with the same classes and counts", hint=hint)
    model = build_run_model(path.parent.parent, config, len(train_set.classes))
    load_state_dict_checked(model, state.get("model"), path, what=f"model {config.model!r}")
    _rehearse_restore(path, state, config, model, len(train_set))


def _same_folder(one: str | Path, other: str | Path | None) -> bool:
    try:
        return other is not None and Path(one).resolve() == Path(other).resolve()
    except (OSError, RuntimeError):  # a loop of links
        return False


def _read_manifest(path: Path) -> dict[str, Any]:
    """The run's manifest.json ({} when missing), to add a resume to; RunDirError when it is
    damaged (before resume writes anything), rather than an "unexpected" error."""
    with reading_run_file(path):  # a folder on the way that is not open to the user
        if not path.exists():  # a folder in its place is refused below, not taken for none
            return {}
    hint = (f"restore {path}, or delete it (resume then starts a new one, without the record "
            "of how the run started)")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as error:
        # no permission to read it: the file is intact, and its fix is not deleting it
        raise run_json_error(path, error, hint) from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"{path} does not hold a JSON object", hint=hint)
    if not isinstance(manifest.get("resumed", []), list):
        raise RunDirError(f"{path} is damaged: its \"resumed\" is not a list", hint=hint)
    return manifest


def _check_metrics_file(path: Path) -> None:
    """RunDirError for a metrics.json that is not a JSON object of the trainer's shape, found
    before resume writes anything rather than after its first epoch."""
    from dlbox.training.evaluate import read_metrics_file

    try:
        read_metrics_file(path)
    except RunFileUnreadable:  # intact: its permissions to fix, never a file to delete
        raise
    except RunDirError as error:
        raise RunDirError(error.message, hint=f"delete {path} (the checkpoint holds the "
                                              "training history, and resume writes the file "
                                              "again), or restore it") from None


def _rehearse_restore(path: Path, state: dict[str, Any], config: TrainConfig, model: nn.Module,
                      num_train: int) -> None:
    """Restore the whole checkpoint into throwaway CPU copies of the trainer's objects, with
    the trainer's own restore function: a damaged part is a one-line RunDirError now, before
    resume writes anything, not a traceback halfway through. The RNGs it touches are seeded
    and restored again by the trainer."""
    with warnings.catch_warnings():  # a CUDA run's generator state, read on the CPU
        warnings.simplefilter("ignore")
        if state.get("trainer") == "speedrun":
            from dlbox.models.speedrun import SpeedrunNet
            from dlbox.training.speedrun import (
                build_optimizers,
                config_from_train,
                restore_speedrun,
            )

            if not isinstance(model, SpeedrunNet):
                raise RunDirError(f"checkpoint {path} is damaged (its trainer is speedrun, its "
                                  f"model {type(model).__name__})", hint=DAMAGED_HINT)
            recipe = config_from_train(config)
            optimizers = build_optimizers(model, recipe, min(recipe.batch_size, num_train))
            restore_speedrun(state.get("speedrun_state"), path, optimizers, torch.Generator(),
                             torch.device("cpu"))
            parts = CheckpointParts(path)
            with parts.reading():
                parts("the history")
                expect_history(state.get("history"), state.get("epoch"))
            return
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
        scheduler = make_scheduler(optimizer, config.schedule,
                                   config.epochs * steps_per_epoch(num_train, config.batch_size),
                                   config.warmup_fraction)
        restore_training(state, path, optimizer, scheduler,
                         torch.amp.GradScaler("cpu", enabled=False), torch.Generator(),
                         num_images=num_train,
                         per_epoch=steps_per_epoch(num_train, config.batch_size))


def restore_training(checkpoint: dict[str, Any], path: Path, optimizer: torch.optim.Optimizer,
                     scheduler: Any, scaler: torch.amp.GradScaler,
                     generator: torch.Generator, num_images: int | None = None,
                     per_epoch: int | None = None) -> TrainState:
    """The generic loop's restore: everything in the checkpoint but the model's weights, into
    the trainer's objects; the counters come back as a TrainState. A damaged part is a
    RunDirError naming it (resume rehearses this on throwaway copies before writing).
    `num_images` and `per_epoch` (the training images and steps per epoch of the resumed
    run), when given, are what a mid-epoch order and step count must fit."""
    parts = CheckpointParts(path)
    with parts.reading():
        parts("the optimizer state")
        optimizer.load_state_dict(checkpoint["optimizer"])
        parts("the learning-rate schedule")
        scheduler.load_state_dict(checkpoint["scheduler"])
        parts("the loss scaler")
        saved_scaler = expect_type(checkpoint.get("scaler"), (dict, type(None)), "it")
        if saved_scaler:
            scaler.load_state_dict(saved_scaler)
        parts("the random state")
        restore_rng_state(checkpoint["rng"], generator)
        parts("the epoch's order")
        order = checkpoint.get("epoch_perm")
        if order is not None and (not isinstance(order, torch.Tensor) or order.dim() != 1
                                  or order.dtype not in (torch.int64, torch.int32)):
            raise TypeError("it is not a list of image indices")
        if order is not None and num_images is not None and not torch.equal(
                order.sort().values.cpu(), torch.arange(num_images, dtype=order.dtype)):
            raise ValueError(f"it is not an order of the {num_images} training images")
        parts("the history")
        history = expect_history(checkpoint.get("history"), checkpoint.get("epoch"))
        parts("the counters")
        step = expect_type(checkpoint.get("step_in_epoch", 0), int, "step_in_epoch")
        if step < 0 or (per_epoch is not None and step >= per_epoch):
            raise ValueError(f"step_in_epoch {step} is outside 0..{(per_epoch or 1) - 1}")
        if step and order is None:
            raise ValueError(f"it stopped at step {step} of an epoch but has no epoch order")
        partial = checkpoint.get("epoch_partial")
        if partial is not None and (not isinstance(partial, dict)
                                    or set(partial) != set(EpochSums().to_dict())):
            raise ValueError("epoch_partial does not hold the epoch's loss, correct, seen "
                             "and seconds")
        return TrainState(
            epoch=int(checkpoint["epoch"]), step_in_epoch=step,
            global_step=int(checkpoint.get("global_step", 0)),
            train_seconds=float(checkpoint.get("train_seconds", 0.0)),
            history=history, epoch_perm=order,
            sums=EpochSums(**partial) if partial else EpochSums())


# What became NaN or infinite when a run diverges: its loss, or (the loss still finite) its
# outputs on the test images, whose accuracy then read as chance and whose state was saved
# as a finished run that evaluate refused.
LOSS = "the training loss"
OUTPUTS = "the model's outputs on the test images"


class Diverged(DlboxError):
    """An epoch's training loss, or the model's outputs, became NaN or infinite: nothing after
    it can recover, so training stops before that epoch's state is saved."""

    def __init__(self, epoch: int, lr: float, run_dir: Path, message: str, hint: str,
                 what: str = LOSS) -> None:
        # what happened, without where: a benchmark's run dir is gone by the time it reports
        self.reason = f"training diverged in epoch {epoch}: {what} became NaN or infinite"
        super().__init__(self.reason + message,
                         hint=f"train again with a lower learning rate (this run's: --lr "
                              f"{lr:g}){hint}")
        self.epoch, self.lr, self.run_dir, self.what = epoch, lr, run_dir, what

    def folder_removed(self) -> Diverged:
        """The error once the default run dir that saved nothing is removed."""
        return Diverged(self.epoch, self.lr, self.run_dir,
                        f", before anything was saved (its folder {self.run_dir} is removed)", "",
                        self.what)


def _diverged(epoch: int, config: TrainConfig, run_dir: Path, what: str = LOSS) -> Diverged:
    if checkpoint_path(run_dir, "last").is_file():  # resuming would diverge again
        return Diverged(epoch, config.lr, run_dir,
                        f" (the epoch's state was not saved; {run_dir} keeps the last one it "
                        "saved)",
                        " and another --run-dir; resuming this run would diverge again", what)
    return Diverged(epoch, config.lr, run_dir, f", before {run_dir} saved anything",
                    f"; --run-dir {shell_quote(run_dir)} may be reused, it saved nothing", what)


def _run(config: TrainConfig, run_dir: Path, device: torch.device, train_set: ImageDataset,
         test_set: ImageDataset, checkpoint: dict[str, Any] | None, progress: bool,
         evaluate_at_end: bool, stop: StopCheck | None) -> Path:
    from dlbox.models.registry import create_model

    classes = train_set.classes
    if len(train_set) == 0:
        raise DlboxError(f"no training images in {config.data_dir}",
                         hint="check the data with `dlbox data check`")
    channels_last = config.use_channels_last(device)
    mixed = amp_dtype(device) if config.use_amp(device) else None

    # Seed everything first, so the initial weights depend on the seed alone.
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)

    flag = StopFlag()
    # A kernel's first optimizer imports torch._dynamo and sympy (seconds): a stop button
    # pressed then waits for the import (review: one interrupted left sympy half loaded, and
    # every later training in that kernel failed), and stops before the first step.
    with stop_on_signals(flag):
        model = create_model(config.model, num_classes=len(classes), **config.model_kwargs)
        model = to_device(model, device, channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr,
                                    momentum=config.momentum,
                                    nesterov=config.nesterov and config.momentum > 0,
                                    weight_decay=config.weight_decay)
    if flag.signum is not None:
        raise _stopped(run_dir, flag, saved_epoch=None if checkpoint is not None else 0)
    per_epoch = steps_per_epoch(len(train_set), config.batch_size)
    scheduler = make_scheduler(optimizer, config.schedule, config.epochs * per_epoch,
                               config.warmup_fraction)
    # fp16 needs loss scaling against underflow; bf16 (and float32) do not.
    scaler = torch.amp.GradScaler(device.type, enabled=mixed == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    state = TrainState()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        state = restore_training(checkpoint, checkpoint_path(run_dir, "last"), optimizer,
                                 scheduler, scaler, generator, num_images=len(train_set),
                                 per_epoch=per_epoch)

    # Whole splits live on the device; batches are cut from them by index.
    fingerprint = data_fingerprint(train_set, test_set)  # the checkpoints keep it
    train_images = train_set.images.to(device)
    train_labels = train_set.labels.to(device)

    def should_stop(epoch: int, step: int) -> bool:
        # the callback hears of every step, also the one a signal stops at (review: the
        # notebook's bar showed the step before)
        asked = stop is not None and stop(epoch, step)
        return flag(epoch, step) or asked

    def save(finished: bool = False) -> None:
        save_checkpoint(checkpoint_path(run_dir, "last"), {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config.to_dict(),
            "classes": list(classes),
            "num_train_images": len(train_set),
            "num_test_images": len(test_set),
            "data_fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "epoch": state.epoch,
            "step_in_epoch": state.step_in_epoch,
            "epoch_perm": (state.epoch_perm.cpu()
                           if state.step_in_epoch and state.epoch_perm is not None else None),
            "epoch_partial": state.sums.to_dict() if state.step_in_epoch else None,
            "global_step": state.global_step,
            "train_seconds": state.train_seconds,
            "history": state.history,
            "finished": finished,
            "rng": capture_rng_state(generator),
            "saved": utc_now(),
        })

    if checkpoint is None:
        print(f"training {config.model} on {device} ({len(train_set)} train / {len(test_set)} "
            f"test images, {plural(config.epochs, 'epoch')}) -> {run_dir}")
    else:
        print(f"resuming {run_dir} at epoch {state.epoch + 1} of {config.epochs}"
            + (f", step {state.step_in_epoch}" if state.step_in_epoch else "")
            + f", on {device}")

    test_logits: torch.Tensor | None = None  # of the last epoch: the report at the end
    eval_seconds = 0.0
    with stop_on_signals(flag), TrainProgress(progress, config.epochs) as bar:
        while state.epoch < config.epochs:
            epoch = state.epoch + 1
            if state.step_in_epoch == 0:
                state.epoch_perm = torch.randperm(len(train_set), generator=generator,
                                                  device=device)
                state.sums = EpochSums()
            perm = state.epoch_perm.to(device)  # type: ignore[union-attr]
            model.train()
            bar.start_epoch(epoch, per_epoch, state.step_in_epoch)
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            correct_sum = torch.zeros((), device=device, dtype=torch.int64)
            seen_this_session = 0
            _sync(device)
            start = time.perf_counter()
            for step in range(state.step_in_epoch, per_epoch):
                index = perm[step * config.batch_size:(step + 1) * config.batch_size]
                images = augment(train_images[index], config, generator)
                labels = train_labels[index]
                inputs = prepare_batch(images, device, channels_last,
                                       mean=config.mean, std=config.std)
                with autocast_context(device, mixed):
                    logits = model(inputs)
                    loss = criterion(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                state.global_step += 1
                state.step_in_epoch = step + 1
                count = labels.shape[0]
                seen_this_session += count
                loss_sum += loss.detach().double() * count
                correct_sum += (logits.detach().argmax(1) == labels).sum()
                last = step + 1 == per_epoch
                if bar.wants_update(last):
                    seen = state.sums.seen + seen_this_session
                    bar.update(step + 1, (state.sums.loss + float(loss_sum)) / seen,
                               (state.sums.correct + int(correct_sum)) / seen,
                               seen_this_session / max(time.perf_counter() - start, 1e-9))
                if not last and should_stop(epoch, step + 1):
                    _sync(device)
                    _fold(state.sums, loss_sum, correct_sum, seen_this_session,
                          time.perf_counter() - start)
                    state.train_seconds += time.perf_counter() - start
                    save()
                    raise _stopped(run_dir, flag)
            _sync(device)
            seconds = time.perf_counter() - start
            _fold(state.sums, loss_sum, correct_sum, seen_this_session, seconds)
            state.train_seconds += seconds
            if not math.isfinite(state.sums.loss):
                raise _diverged(epoch, config, run_dir)
            sums = state.sums
            bar.phase(f"testing on {len(test_set):,} images"
                      + (" (with flips)" if config.tta else ""))
            eval_start = time.perf_counter()
            test_logits = network_logits(model, test_set.images, device, config.eval_batch_size,
                                         channels_last, mixed, config.mean, config.std,
                                         tta_flip=config.tta)
            eval_seconds = time.perf_counter() - eval_start
            if not bool(torch.isfinite(test_logits).all()):
                raise _diverged(epoch, config, run_dir, OUTPUTS)
            test_accuracy = _accuracy(test_logits, test_set.labels)
            entry = {
                "epoch": epoch,
                "elapsed_s": round(state.train_seconds, 3),
                "epoch_s": round(sums.seconds, 3),
                "train_loss": sums.loss / sums.seen,
                "train_accuracy": sums.correct / sums.seen,
                "test_accuracy": test_accuracy,
                "images_per_s": round(sums.seen / sums.seconds, 1) if sums.seconds else None,
                # the lr of the epoch's first step, as the scheduler set it (its lr now is
                # the next epoch's: review)
                "lr": config.lr * lr_factor(config.schedule, (epoch - 1) * per_epoch,
                                            config.epochs * per_epoch, config.warmup_fraction),
            }
            state.history.append(entry)
            state.epoch = epoch
            state.step_in_epoch = 0
            state.epoch_perm = None
            state.sums = EpochSums()
            finished = epoch == config.epochs
            stop_now = not finished and should_stop(epoch, per_epoch)
            # The checkpoint first: metrics.json never claims an epoch whose state is not on
            # disk (a full disk fails the checkpoint, and then nothing claims the epoch).
            if finished or stop_now or epoch % config.checkpoint_every == 0:
                save(finished)
            _write_metrics(run_dir, config, state, len(test_set), finished)
            bar.message(_epoch_line(entry, config.epochs))
            if stop_now:
                raise _stopped(run_dir, flag)

    final = state.history[-1]
    print(f"test accuracy: {100 * final['test_accuracy']:.2f}% on {len(test_set)} test images "
          f"after {plural(config.epochs, 'epoch')}, {state.train_seconds:.1f} s of training "
          f"({run_dir})")
    if flag.signum is not None:  # asked in the last epoch's test pass: no report then
        raise _stopped(run_dir, flag, finished=True)
    if evaluate_at_end:
        _report(run_dir, config, device, test_set, classes, state.epoch, test_logits,
                eval_seconds)
    else:
        _note_an_older_evaluation(run_dir, state.epoch)
    return run_dir


def _run_speedrun(config: TrainConfig, run_dir: Path, device: torch.device,
                  train_set: ImageDataset, test_set: ImageDataset,
                  checkpoint: dict[str, Any] | None, progress: bool, evaluate_at_end: bool,
                  stop: StopCheck | None) -> Path:
    """Train a SpeedrunNet with the speedrun trainer (dlbox.training.speedrun) and write the
    same run dir as `_run`: metrics.json with a history entry per epoch, checkpoints/last.pt
    after every epoch, the evaluation at the end. Ctrl-C / SIGTERM stop it after the current
    step, keeping the state of the last finished epoch (the trainer resumes only at epoch
    boundaries); `--resume` continues from there with the same weights as an uninterrupted
    run would have."""
    from dlbox.models.registry import create_model
    from dlbox.training.speedrun import config_from_train, train_speedrun

    if len(train_set) == 0:
        raise DlboxError(f"no training images in {config.data_dir}",
                         hint="check the data with `dlbox data check`")
    classes = train_set.classes
    recipe = config_from_train(config)
    batch = min(recipe.batch_size, len(train_set))
    state = TrainState()
    if checkpoint is not None:
        state.history = list(checkpoint.get("history", []))
        state.epoch = int(checkpoint["epoch"])
    flag = StopFlag()
    fingerprint = data_fingerprint(train_set, test_set)  # the checkpoints keep it
    verb = "resuming" if checkpoint else "training"
    where = f" at epoch {state.epoch + 1} of {config.epochs}" if checkpoint else ""
    print(f"{verb} {config.model}{where} on {device} ({len(train_set)} train / "
          f"{len(test_set)} test images, {plural(config.epochs, 'epoch')}, speedrun trainer) "
          f"-> {run_dir}")

    def checkpoint_state(trainer_state: dict[str, Any], finished: bool,
                         summary: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "trainer": "speedrun",
            "config": config.to_dict(),
            "classes": list(classes),
            "num_train_images": len(train_set),
            "num_test_images": len(test_set),
            "data_fingerprint": fingerprint,
            "model": trainer_state["model"],
            "speedrun_state": {k: v for k, v in trainer_state.items() if k != "model"},
            "optimizer": None,
            "scheduler": None,
            "scaler": None,
            "epoch": int(trainer_state["epoch"]),
            "step_in_epoch": 0,
            "global_step": int(trainer_state["step"]),
            "train_seconds": float(trainer_state["train_seconds"]),
            "history": list(state.history),
            "finished": finished,
            "speedrun_summary": summary,  # metrics.json's `speedrun` (catch_up_metrics)
            "rng": capture_rng_state(None),
            "saved": utc_now(),
        }

    with stop_on_signals(flag), TrainProgress(progress, config.epochs) as bar:
        def on_epoch(entry: dict[str, Any], trainer_state: dict[str, Any]) -> None:
            if not math.isfinite(entry["train_loss"]):
                raise _diverged(int(entry["epoch"]), config, run_dir)
            if entry.get("outputs_finite") is False:
                raise _diverged(int(entry["epoch"]), config, run_dir, OUTPUTS)
            previous = state.history[-1] if state.history else {"elapsed_s": 0.0, "steps": 0}
            seconds = entry["train_seconds"] - previous["elapsed_s"]
            record = {
                "epoch": entry["epoch"],
                "elapsed_s": round(entry["train_seconds"], 3),
                "epoch_s": round(seconds, 3),
                "train_loss": entry["train_loss"],
                "train_accuracy": entry["train_accuracy"],
                "test_accuracy": entry.get("test_accuracy"),
                "images_per_s": (round((entry["steps"] - previous["steps"]) * batch / seconds, 1)
                                 if seconds > 0 else None),
                "steps": entry["steps"],
            }
            if "test_accuracy_tta" in entry:
                record["test_accuracy_tta"] = entry["test_accuracy_tta"]
            state.history.append(record)
            state.epoch = entry["epoch"]
            state.global_step = entry["steps"]
            state.train_seconds = entry["train_seconds"]
            finished = state.epoch >= config.epochs
            # The result's timings go with the last epoch's checkpoint and metrics, not in a
            # write after them that a kill could lose.
            summary = speedrun_summary(recipe, device, entry, trainer_state) if finished \
                else None
            # The epoch's state (model, optimizers, generator) goes to disk before anything
            # else, so a stop from now on loses nothing of it.
            save_checkpoint(checkpoint_path(run_dir, "last"),
                            checkpoint_state(trainer_state, finished, summary))
            _write_metrics(run_dir, config, state, len(test_set), finished, speedrun=True,
                           summary=summary)
            bar.message(_epoch_line(record, config.epochs))
            if not finished:
                bar.start_epoch(state.epoch + 1, steps_per_epoch(len(train_set), batch))
            epoch_start[0] = time.monotonic()

        epoch_start = [time.monotonic()]  # images/s on the bar: of the epoch in progress
        done_in_epoch = [0]

        def on_step(done: int, total: int, stats: Callable[[], tuple[float, float]]) -> None:
            done_in_epoch[0] = done
            if bar.wants_update(done == total):
                elapsed = time.monotonic() - epoch_start[0]
                loss, accuracy = stats()
                bar.update(done, loss, accuracy, done * batch / elapsed if elapsed else 0.0)
            if done == total:
                # What follows the epoch's last step: the final TTA evaluation after the last
                # epoch (seconds on a CPU), then the checkpoint. (An epoch's own test ran
                # before this call.)
                last = state.epoch + 1 >= config.epochs
                views = len(views_for_level(recipe.tta_level))
                bar.phase(f"testing on {len(test_set):,} images"
                          + (f" x {views} TTA views" if views > 1 else "") + ", saving"
                          if last and len(test_set) else "saving")

        def should_stop() -> bool:
            # `stop(epoch, step)` as in the generic loop: the epoch in progress (from 1), the
            # steps done in it (review: it was given the epochs done, from 0, so a stop
            # meant for epoch 2 came in epoch 3, and the notebook's bar read "epoch 0/2").
            epoch = state.epoch + 1  # state.epoch: the epochs done (on_epoch counts them)
            asked = bool(stop and stop(epoch, done_in_epoch[0]))  # hears every step
            return flag(epoch, done_in_epoch[0]) or asked

        bar.start_epoch(state.epoch + 1, steps_per_epoch(len(train_set), batch))
        result = train_speedrun(
            train_set, test_set if len(test_set) else None, recipe, device, on_epoch=on_epoch,
            make_model=lambda n: create_model(config.model, num_classes=n, **config.model_kwargs),
            should_stop=should_stop, on_step=on_step,
            resume_state=(dict(checkpoint.get("speedrun_state") or {})
                          | {"model": checkpoint["model"]}) if checkpoint is not None else None,
            resume_path=checkpoint_path(run_dir, "last"))
    if result.stopped:
        raise _stopped(run_dir, flag, saved_epoch=state.epoch)
    tta = (f" ({100 * result.tta_accuracy:.2f}% with TTA)"
           if result.tta_accuracy is not None else "")
    plain = "-" if result.accuracy is None else f"{100 * result.accuracy:.2f}%"
    print(f"test accuracy: {plain}{tta} on {len(test_set)} test images after "
          f"{plural(config.epochs, 'epoch')}, {result.train_seconds:.1f} s of training "
          f"({run_dir})")
    if flag.signum is not None:  # asked in the final TTA evaluation: no report then
        raise _stopped(run_dir, flag, finished=True)
    if evaluate_at_end:
        _report(run_dir, config, device, test_set, classes, state.epoch, result.test_logits,
                result.eval_seconds)
    else:
        _note_an_older_evaluation(run_dir, state.epoch)
    return run_dir


def speedrun_summary(recipe: SpeedrunConfig, device: torch.device, entry: dict[str, Any],
                     trainer_state: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's `speedrun` block (SpeedrunResult's numbers) from the last epoch's
    history entry and trainer state, as `on_epoch` gets them: the final TTA evaluation has
    run by then."""
    train_seconds = float(trainer_state["train_seconds"])
    eval_seconds = float(trainer_state["eval_seconds"])
    return {
        "config": recipe.to_dict(),
        "accuracy": entry.get("test_accuracy"),
        "tta_accuracy": entry.get("test_accuracy_tta"),
        "time_seconds": round(train_seconds + eval_seconds, 4),  # whitening + epochs + TTA
        "train_seconds": round(train_seconds, 4),
        "eval_seconds": round(eval_seconds, 4),
        "warmup_seconds": round(float(trainer_state["warmup_seconds"]), 4),
        "images_per_second": round(int(trainer_state["images_seen"]) / train_seconds, 1)
        if train_seconds > 0 else 0.0,
        "steps": int(trainer_state["step"]),
        "timer": "cuda events" if device.type == "cuda" else "perf_counter",
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fold(sums: EpochSums, loss_sum: torch.Tensor, correct_sum: torch.Tensor, seen: int,
          seconds: float) -> None:
    sums.loss += float(loss_sum)
    sums.correct += int(correct_sum)
    sums.seen += seen
    sums.seconds += seconds


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float | None:
    if logits.numel() == 0:
        return None
    return int((logits.argmax(1) == labels.cpu()).sum()) / labels.shape[0]


def _stopped(run_dir: Path, flag: StopFlag, saved_epoch: int | None = None,
             finished: bool = False) -> TrainingStopped:
    if flag.signum is not None and flag.signum != signal.SIGINT:  # SIGTERM, SIGHUP
        return TrainingStopped(run_dir, signal.Signals(flag.signum).name, 128 + flag.signum,
                               saved_epoch, finished)
    if flag.signum is not None:
        return TrainingStopped(run_dir, "interrupted", 130, saved_epoch, finished)
    return TrainingStopped(run_dir, "stop requested", 130, saved_epoch, finished)


def _epoch_line(entry: dict[str, Any], epochs: int) -> str:
    test = entry["test_accuracy"]
    return (f"epoch {entry['epoch']:>{len(str(epochs))}}/{epochs}  "
            f"train loss {entry['train_loss']:.4f}  "
            f"train acc {100 * entry['train_accuracy']:6.2f}%  "
            f"test acc {'-' if test is None else f'{100 * test:6.2f}%'}  "
            f"{entry['images_per_s'] or 0:,.0f} img/s  {entry['elapsed_s']:.1f} s")


def catch_up_metrics(run_dir: Path, config: TrainConfig,
                     state: dict[str, Any] | None = None) -> int | None:
    """metrics.json behind checkpoints/last.pt, which each epoch writes first (a SIGKILL or a
    full disk between the two writes): its history and final written again from the
    checkpoint's history. The epoch it was brought up to; None when it was not behind (or
    the checkpoint cannot tell). The caller holds the run's lock and has checked that
    metrics.json, if there, reads."""
    if state is None:
        path = checkpoint_path(run_dir, "last")
        if not path.is_file():
            return None
        state = load_checkpoint(path)
    history = state.get("history")
    path = run_dir / METRICS_FILE
    existing = read_json(path) if path.is_file() else {}
    recorded = existing.get("history") if isinstance(existing, dict) else None
    if (not isinstance(history, list) or not history
            or len(history) <= len(recorded if isinstance(recorded, list) else [])):
        return None
    caught_up = TrainState(epoch=int(state.get("epoch", len(history))),
                           train_seconds=float(state.get("train_seconds") or 0.0),
                           history=list(history))
    final = existing.get("final") if isinstance(existing, dict) else None
    test_images = final.get("test_images") if isinstance(final, dict) else None
    summary = state.get("speedrun_summary")
    _write_metrics(run_dir, config, caught_up, test_images or _test_images(config),
                   bool(state.get("finished")), speedrun=state.get("trainer") == "speedrun",
                   summary=summary if isinstance(summary, dict) else None)
    return caught_up.epoch


def _test_images(config: TrainConfig) -> int | None:
    """How many test images the run tested on: its --num-test (a new run refuses one beyond
    the data), else the whole test split of its data dir; None where that is gone."""
    if config.num_test:
        return config.num_test
    from dlbox.data.loading import split_size

    try:
        return split_size(resolve_data(config), "test")
    except (DlboxError, OSError):
        return None


def final_test_accuracies(last: dict[str, Any], config: TrainConfig,
                          speedrun: bool) -> dict[str, float | None]:
    """final's test_accuracy, with the run's TTA (the number its report prints, and what
    `dlbox evaluate` writes there), and test_accuracy_plain, without TTA, from the history's
    `last` entry; None where the history does not hold it. The speedrun trainer tests every
    epoch without TTA and adds the TTA pass after the last one (test_accuracy_tta); the
    generic loop tests every epoch as the run's `tta` says (with flips when it is on)."""
    if speedrun:
        return {"test_accuracy": last.get("test_accuracy_tta") if config.tta
                else last["test_accuracy"],
                "test_accuracy_plain": last["test_accuracy"]}
    return {"test_accuracy": last["test_accuracy"],
            "test_accuracy_plain": None if config.tta else last["test_accuracy"]}


def _write_metrics(run_dir: Path, config: TrainConfig, state: TrainState,
                   test_images: int | None, finished: bool, speedrun: bool = False,
                   summary: dict[str, Any] | None = None) -> None:
    """metrics.json's history and final, keeping what else it holds; with a finished
    speedrun's `summary` (speedrun_summary), its `speedrun` block and final's TTA accuracy
    and time_seconds too."""
    last = state.history[-1]
    tested = [entry["test_accuracy"] for entry in state.history
              if entry.get("test_accuracy") is not None]
    path = run_dir / METRICS_FILE
    existing = read_json(path) if path.is_file() else {}
    metrics = {
        **{k: v for k, v in existing.items() if k not in ("history", "final")},
        "history": state.history,
        "final": {
            "epochs_completed": state.epoch,
            "epochs": config.epochs,
            "finished": finished,
            "train_seconds": round(state.train_seconds, 3),
            "train_loss": last["train_loss"],
            "train_accuracy": last["train_accuracy"],
            **final_test_accuracies(last, config, speedrun),
            "test_images": test_images,
            # for information: the checkpoint is the last epoch's, not chosen by this
            "max_epoch_test_accuracy": max(tested, default=None),
        },
    }
    if summary is not None:
        metrics["final"].update({"test_accuracy_tta": summary["tta_accuracy"],
                                 "time_seconds": round(summary["time_seconds"], 3)})
        metrics["speedrun"] = summary
    write_json_atomic(path, metrics)


def _note_an_older_evaluation(run_dir: Path, epoch: int) -> None:
    """--no-evaluate after a resume: an evaluation of an earlier epoch (a `dlbox evaluate`
    of the stopped run) is still in the run's files; say so, since nothing else does."""
    try:
        evaluation = read_json(run_dir / METRICS_FILE).get("evaluation") or {}
        evaluated, steps = evaluation.get("epoch"), evaluation.get("step_in_epoch")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(evaluated, int) and evaluated < epoch:
        # weights from the middle of an epoch are not "of epoch 0" (review)
        of = (f"the run as it stopped in epoch {evaluated + 1} (after {steps} of its steps)"
              if isinstance(steps, int) and steps > 0 else f"epoch {evaluated}")
        tell(f"note: predictions.csv, the confusion matrix and metrics.json's evaluation in "
             f"{run_dir} are of {of}; `dlbox evaluate {shell_quote(run_dir)}` brings them to "
             f"epoch {epoch}")


def _report(run_dir: Path, config: TrainConfig, device: torch.device, test_set: ImageDataset,
            classes: tuple[str, ...], epoch: int, logits: torch.Tensor | None,
            seconds: float) -> None:
    """The evaluation at the end of training (evaluate's files and printout), from the
    trainer's own final test logits: its weights are those of checkpoints/last.pt, so
    evaluating that checkpoint again would repeat the pass. Without logits (no test data in
    the trainer), the evaluation reads the checkpoint and the test split itself (under the
    trainer's run_lock: evaluate_run would take it again, and be refused)."""
    from dlbox.training.evaluate import evaluate_run_unlocked

    if logits is None:
        document = evaluate_run_unlocked(run_dir, data_dir=Path(config.data_dir)
                                         if config.data_dir else None, device=config.device)
    else:
        document = _report_logits(run_dir, config, device, test_set, classes, epoch, logits,
                                  seconds)
    # The last line is the result, with where its files are (as `dlbox evaluate` ends).
    written = [*document.get("files", {}).values(), METRICS_FILE]
    accuracy = document.get("test_accuracy")
    shown = "-" if accuracy is None else f"{100 * accuracy:.2f}%"
    print(f"test accuracy: {shown}{' with TTA' if document.get('tta') else ''}; wrote "
          f"{', '.join(written)} in {run_dir}")


def _report_logits(run_dir: Path, config: TrainConfig, device: torch.device,
                   test_set: ImageDataset, classes: tuple[str, ...], epoch: int,
                   logits: torch.Tensor, seconds: float) -> dict[str, Any]:
    from dlbox.training.evaluate import (
        evaluation_details,
        evaluation_from_logits,
        report_evaluation,
    )

    details = evaluation_details(run_dir, checkpoint_path(run_dir, "last").resolve(), epoch,
                                 device, config.tta, test_set.source)
    return report_evaluation(run_dir, evaluation_from_logits(logits, test_set, classes, seconds),
                             {**details, "from": "the trainer's final evaluation"})

