"""Checkpoints: atomic writes, safe loads, RNG state, and loading a trained model from a run.

A checkpoint is one dict saved with torch.save, holding only tensors and plain Python values
(so it loads with `torch.load(weights_only=True)`, which cannot run code):

    format, version   "dlbox-checkpoint", 1
    config            TrainConfig.to_dict()
    classes           class names in label order
    model, optimizer, scheduler, scaler   state_dicts (scaler None without fp16)
    epoch             epochs completed
    step_in_epoch     steps done in the epoch after `epoch` (0 at an epoch boundary);
    epoch_perm        that epoch's shuffled order, and epoch_partial its running sums,
                      so a run stopped mid-epoch (SIGTERM) resumes exactly where it stopped
    global_step, train_seconds, history, finished
    rng               torch CPU, CUDA, python, numpy and the loop's own generator states
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import re
import shlex
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlbox.errors import DlboxError, RunDirError, UsageError, first_line
from dlbox.fileio import (
    ACCESS_ERRNOS,
    expand_user,
    file_head,
    held_elsewhere,
    read_json,
    unsearchable_folder,
    write_through_memory,
)
from dlbox.text import plural, shell_quote
from dlbox.training.config import TrainConfig
from dlbox.training.device import amp_dtype, is_out_of_memory, resolve_device
from dlbox.training.inputs import prepare_batch

CHECKPOINT_FORMAT = "dlbox-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINTS_DIRNAME = "checkpoints"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"  # the run's history and final numbers (loop, evaluate)


# ---- run files that exist but cannot be read ---------------------------------------------



class RunFileUnreadable(RunDirError):
    """A run file that is there but cannot be read (permissions): intact, so its hint is
    never "delete it" or "train again" (a caller that rewords a damaged file's hint leaves
    this one as it is)."""


def unreadable_error(path: str | Path, error: BaseException) -> RunFileUnreadable | None:
    """The RunDirError for an OSError raised while reading the run file `path` when it is not
    about the file's content: no permission to read it or a folder above it (EACCES, EPERM),
    or a folder where the file should be (EISDIR). None for any other error, which the
    caller reports as its own (a damaged file, say). Such a file is intact: the message
    names it and the fix (its permissions), never "train again"."""
    path = Path(path)
    code = getattr(error, "errno", None)
    if code == errno.EISDIR:
        return RunFileUnreadable(f"cannot read {path}: it is a folder, not a file",
                                 hint=f"move the folder {path} out of the way and put the "
                                      "run's file back; nothing was changed")
    if code not in ACCESS_ERRNOS:
        return None
    folder = unsearchable_folder(path.absolute())
    if folder is None:
        return RunFileUnreadable(f"cannot read {path}: permission denied",
                                 hint=f"make it readable for you (`chmod u+r {path}`), or run "
                                      f"dlbox as the user that owns it (`ls -l {path}` shows "
                                      "who); the file was not changed")
    return RunFileUnreadable(f"cannot read {path}: permission denied on the folder {folder}",
                             hint=f"make the folder readable for you (`chmod u+rx {folder}`), "
                                  f"or run dlbox as the user that owns it (`ls -ld {folder}` "
                                  "shows who); nothing in it was changed")


def run_json_error(path: str | Path, error: BaseException, damaged_hint: str) -> RunDirError:
    """The RunDirError for a run's JSON file (config.json, metrics.json, manifest.json) that
    read_json failed on: unreadable_error's for permissions or a folder in its place; for
    any other error of the system (EIO from a failing disk, say) the file may be intact, so
    it is named with the system's reason and nothing says to delete it or train again; only
    content that is not JSON is damaged, with `damaged_hint`."""
    path = Path(path)
    unreadable = unreadable_error(path, error)
    if unreadable is not None:
        return unreadable
    if isinstance(error, OSError):
        reason = error.strerror or first_line(error)
        return RunFileUnreadable(f"cannot read {path} ({reason})",
                                 hint="the system failed to read it, so it may be intact: "
                                      "check the disk (dmesg shows its errors) and try again, "
                                      "or copy the run folder from a backup; nothing was changed")
    return RunDirError(f"{path} is not valid JSON ({first_line(error)})", hint=damaged_hint)


@contextmanager
def reading_run_file(path: str | Path) -> Iterator[None]:
    """Reads (and existence checks: `is_file` raises PermissionError under a folder that
    cannot be searched) of run file `path`: an access error is unreadable_error's one-line
    RunDirError; any other error goes on as it was."""
    try:
        yield
    except OSError as error:
        unreadable = unreadable_error(path, error)
        if unreadable is None:
            raise
        raise unreadable from None


def checkpoint_path(run_dir: str | Path, name: str = "last") -> Path:
    """RUN_DIR/checkpoints/NAME.pt for a bare name (`best` or `best.pt`); a path (one with a
    folder in it) is taken as it is, so `../x` never reaches outside the checkpoints folder
    by way of a name. A bare `NAME.pt` that the run lacks is the file of that name in the
    current folder, when there is one: the run's own checkpoint comes first (`last.pt` in
    another run's checkpoints folder is no checkpoint of this run). An empty name is a
    UsageError."""
    if not name.strip():
        raise UsageError("--checkpoint needs a name or a path, got an empty one",
                         hint="e.g. --checkpoint last (RUN_DIR/checkpoints/last.pt), or a path "
                              "to a .pt file")
    candidate = expand_user(name)
    if is_checkpoint_file_path(name):
        return candidate
    stem = name[:-len(".pt")] if name.endswith(".pt") else name  # `best.pt` means best
    own = Path(run_dir) / CHECKPOINTS_DIRNAME / f"{stem}.pt"
    with reading_run_file(own):
        missing = not own.exists()
    if missing and candidate.suffix == ".pt" and candidate.is_file():
        return candidate
    return own


def says_finished(checkpoint: Path) -> bool:
    """Whether a run's checkpoint says all its epochs are done (False when unreadable)."""
    try:
        return bool(load_checkpoint(checkpoint).get("finished"))
    except DlboxError:
        return False


def is_checkpoint_file_path(name: str) -> bool:
    """Whether `--checkpoint NAME` is a path (absolute, ~, or with a folder in it) rather
    than the name of a checkpoint in the run's checkpoints folder."""
    path = expand_user(name)
    # The text, not the parts: Path("./epoch5.pt").parts is ("epoch5.pt",).
    return path.is_absolute() or "/" in name or os.sep in name


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` atomically: temp file in the same dir, fsync, os.replace.

    If anything fails (disk full, Ctrl-C mid-write) the previous checkpoint stays as it was.
    """
    write_through_memory(path, lambda buffer: torch.save(state, buffer))


CHOSEN_CHECKPOINT_HINT = ("pass --checkpoint a file `dlbox train` saved (a run's "
                          "checkpoints/*.pt), or leave --checkpoint out for the run's last")
DAMAGED_HINT = ("it is damaged or was edited: restore a good copy of it, or train again "
                "with another --run-dir (this one holds the run)")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True (tensors and plain values only)."""
    path = Path(path)
    with reading_run_file(path):
        found = path.is_file()
    if not found:
        raise RunDirError(f"checkpoint {path} does not exist",
                          hint="train first (`dlbox train`), or pass the right run directory")
    damaged = _damaged_member(path)
    if damaged is not None:
        raise RunDirError(
            f"checkpoint {path} cannot be loaded safely (the file is damaged: {damaged} fails "
            "its CRC check)",
            hint=DAMAGED_HINT,
        )
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes: the error says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load fails on a foreign or damaged file
        # with errors of many types (a text file: KeyError; an empty one: EOFError)
        if is_out_of_memory(error):
            raise
        unreadable = unreadable_error(path, error)
        if unreadable is not None:  # a permission to fix, not a damaged file
            raise unreadable from None
        raise RunDirError(
            f"checkpoint {path} cannot be loaded safely ({_load_failure(error, path)})",
            hint=DAMAGED_HINT,
        ) from None
    if not isinstance(state, dict):
        raise RunDirError(f"checkpoint {path} is not a dlbox checkpoint",
                          hint="pass a checkpoint written by `dlbox train`")
    return state


def _damaged_member(path: Path) -> str | None:
    """The member of the checkpoint's zip archive whose bytes fail their CRC-32 (a bit flipped
    on a disk or in a copy), or None. torch.load checks no CRC: a flipped weight loaded
    silently, and training went on from it (or "diverged", sending the user after the wrong
    cause). Costs a read of the file. A file that is no zip archive is left to torch.load."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError,
            NotImplementedError):
        return None


# How a file torch.save wrote begins: a zip archive (since torch 1.6), or the pickle of the
# legacy format (protocol 2 or later).
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def _load_failure(error: BaseException, path: Path | None = None) -> str:
    """Why torch.load refused a file, in a few words: without torch's advice to load it with
    weights_only=False (which would run whatever code the file holds), and without its
    paragraph about corrupted zip files."""
    text = " ".join(str(error).split())
    head = file_head(path, 4) if path is not None else b""
    if head and not head.startswith(CHECKPOINT_MAGIC):  # text, an image, random bytes...
        return ("not a PyTorch checkpoint file: it is neither the zip archive torch.save "
                "writes nor a pickle")
    if "weights_only" in text or "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        return ("it holds something other than tensors and plain values"
                + (f": {detail.group(1).strip().rstrip('.')}" if detail else ""))
    with contextlib.suppress(OSError):
        if path is not None and path.stat().st_size == 0:
            return "the file is empty"
    if "PytorchStreamReader" in text:  # torch's zip reader: the sentence before its advice
        return ("the file is cut short or damaged: "
                + text.split(". This is an internal miniz error")[0].rstrip("."))
    if isinstance(error, EOFError) or getattr(error, "errno", None) == errno.EINVAL:
        return "the file is cut short"
    if isinstance(error, (pickle.UnpicklingError, RuntimeError, OSError, zipfile.BadZipFile)):
        return first_line(error)
    return f"not a PyTorch checkpoint file ({type(error).__name__}: {first_line(error)})"


MAX_REASON_CHARS = 240  # of torch's reason in a one-line error


NOT_THIS_RUNS_HINT = ("pass one of this run's checkpoints (in its checkpoints/ folder), or "
                      "evaluate the run that checkpoint belongs to")


def outside_the_run(path: Path, run_dir: Path) -> bool:
    """Whether checkpoint `path` (a --checkpoint given as a path) is not in the run's own
    checkpoints/ folder: another run's, most likely."""
    return path.resolve().parent != (run_dir / CHECKPOINTS_DIRNAME).resolve()


def load_state_dict_checked(target: Any, state: Any, path: str | Path,
                            what: str = "the model", hint: str | None = None) -> None:
    """`target.load_state_dict(state)` for a state read from checkpoint `path`; a state that
    is not a dict, or does not fit `target` (other layers, other shapes), raises RunDirError
    with a one-line message instead of torch's TypeError / multi-line RuntimeError.
    `what` names the target in that message (e.g. "model 'resnet'", "the optimizer");
    `hint`, the way out (default: the run's own checkpoint is damaged or not its own)."""
    hint = hint or ("the checkpoint does not belong to this run's config.json, or is damaged; "
                    "train again with another --run-dir")
    if not isinstance(state, Mapping):
        raise RunDirError(f"checkpoint {path} holds no weights for {what} "
                          f"(found {type(state).__name__})", hint=hint)
    try:
        target.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError) as error:
        reason = first_line(error)
        if len(reason) > MAX_REASON_CHARS:  # torch lists every missing key on one line
            reason = reason[:MAX_REASON_CHARS].rstrip(" ,") + " …"
        raise RunDirError(f"checkpoint {path} does not fit {what} ({reason})",
                          hint=hint) from None


def check_checkpoint(state: dict[str, Any], path: str | Path,
                     not_ours_hint: str = "pass a run directory made by `dlbox train`") -> None:
    """RunDirError unless `state` is a dlbox training checkpoint whose classes and epoch have
    the types the writer gives them (the model's weights are checked on loading them);
    `not_ours_hint`, the fix for a file that is no dlbox checkpoint at all."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path} is not a dlbox training checkpoint", hint=not_ours_hint)
    hint = DAMAGED_HINT
    classes = state.get("classes")
    if classes is not None and (not isinstance(classes, (list, tuple))
                                or not all(isinstance(name, str) for name in classes)):
        raise RunDirError(f"checkpoint {path} has no valid class list "
                          f"(classes is {type(classes).__name__}, not a list of names)",
                          hint=hint)
    epoch = state.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise RunDirError(f"checkpoint {path} has an invalid epoch count ({epoch!r})", hint=hint)


# ---- random number generators -------------------------------------------------------------

def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG a run touches, in weights_only-loadable form (numpy's as tensors)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "generator": generator.get_state() if generator is not None else None,
    }


RESTORE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError)


class CheckpointParts:
    """Restores a checkpoint part by part: a part that does not load is one RunDirError that
    names it, never a traceback. `parts("the optimizer state")` names the part that follows.

        parts = CheckpointParts(path)
        with parts.reading():
            parts("the optimizer state")
            optimizer.load_state_dict(state["optimizer"])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.part = "the checkpoint"

    def __call__(self, part: str) -> None:
        self.part = part

    @contextmanager
    def reading(self) -> Iterator[CheckpointParts]:
        try:
            yield self
        except RESTORE_ERRORS as error:
            raise RunDirError(f"checkpoint {self.path} is damaged ({self.part}: "
                              f"{first_line(error)})", hint=DAMAGED_HINT) from None


def expect_type(value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """`value`, or a TypeError naming what it is instead (for CheckpointParts to report)."""
    if not isinstance(value, kinds):
        raise TypeError(f"{what} is {type(value).__name__}")
    return value


def expect_history(value: Any, epochs: Any = None) -> list[dict[str, Any]]:
    """A checkpoint's metrics history: a list of per-epoch dicts, one for each of its
    `epochs` finished (when that is a count), or a TypeError / ValueError saying what it is
    instead (for CheckpointParts to report). Every checkpoint dlbox wrote holds one (an
    empty list before the first epoch ends); a resume from one without, or a shorter one,
    wrote metrics.json without the earlier epochs (review). Every epoch line, metrics.json
    and the report read its entries as dicts."""
    if value is None:
        raise ValueError("it is missing")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"it is {type(value).__name__}, not a list of epochs")
    for entry in value:
        if not isinstance(entry, dict):
            raise TypeError(f"an entry is {type(entry).__name__}, not an epoch's metrics")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and len(value) != epochs:
        raise ValueError(f"it holds {plural(len(value), 'epoch')}, not the {epochs} the "
                         "checkpoint finished")
    return list(value)


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch_cpu"])
    cuda_states = state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))
    if generator is not None:
        restore_generator(generator, state.get("generator"))


def restore_generator(generator: torch.Generator, saved: torch.Tensor | None) -> bool:
    """Give `generator` a saved state. A state saved on another device type (a CUDA
    generator's is 16 bytes, a CPU one's 5056) cannot be taken: the generator keeps its seed,
    a warning says so, and the result is False."""
    if saved is None:
        return True
    if saved.numel() != generator.get_state().numel():
        warnings.warn(f"the run's random state comes from another kind of device than "
                      f"{generator.device.type}; augmentation goes on from the seed, so the "
                      f"result will differ from an uninterrupted run", stacklevel=2)
        return False
    generator.set_state(saved)
    return True


# ---- a trained model, ready for evaluate / predict ----------------------------------------

def config_restore_command(run_dir: Path) -> str | None:
    """The command that writes config.json back from the run's checkpoint, which holds its
    settings too; None without a checkpoint to read (it looks at it: called only once
    config.json is known to be damaged or missing)."""
    last = run_dir / "checkpoints" / "last.pt"
    try:
        found = last.is_file()
    except OSError:  # its folder may not be searched: no way back to name
        found = False
    if not found or not _holds_a_config(last):
        return None
    # on the CPU: a GPU-trained run's tensors load on any machine
    code = ('import json, sys, torch; json.dump(torch.load(sys.argv[1], map_location="cpu", '
            'weights_only=True)["config"], open(sys.argv[2], "w"), indent=2)')
    return (f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {shlex.quote(str(last))} "
            f"{shlex.quote(str(run_dir / CONFIG_FILE))}")


def _holds_a_config(checkpoint: Path) -> bool:
    """Whether a checkpoint loads, with the run's settings in it (review: a cut one was
    offered as the way back to config.json, and the command failed with a traceback)."""
    try:
        return isinstance(load_checkpoint(checkpoint).get("config"), Mapping)
    except Exception:  # damaged in any way: torch's errors, ours
        return False


def _unreadable_checkpoint(run_dir: Path) -> bool:
    """Whether the run has a last.pt that cannot be read back (config_restore_command is
    None then, though the file is there)."""
    with contextlib.suppress(OSError):
        return (run_dir / "checkpoints" / "last.pt").is_file()
    return False


RESTORE_OR_TRAIN = "train again (or restore the run from a copy)"


def config_damaged_hint(run_dir: Path) -> str:
    """How to get a damaged config.json back (config_restore_command)."""
    command = config_restore_command(run_dir)
    if command is not None:
        return f"it was edited or damaged; its checkpoint holds the settings too: {command}"
    if _unreadable_checkpoint(run_dir):
        return f"it was edited or damaged, and its checkpoint cannot be read either; " \
               f"{RESTORE_OR_TRAIN}"
    return "it was edited or damaged; train again"


def run_holding(path: Path) -> Path | None:
    """The run directory (a folder with a config.json) that `path` is in, one or two levels
    up (checkpoints/last.pt, checkpoints/, config.json: a path pasted from a stop message as
    the run); None when neither holds a run."""
    for folder in (path.parent, path.parent.parent):
        with contextlib.suppress(OSError):
            if folder != path and ((folder / CONFIG_FILE).is_file()  # or one that lost it
                                   or (folder / "checkpoints" / "last.pt").is_file()):
                return folder
    return None


def pass_the_run_hint(path: Path, command: str | None = None) -> str | None:
    """The hint for a path inside a run given as the run (run_holding): its run directory,
    in `command` ("dlbox train --resume") where the caller gives one; None when it is in
    no run."""
    run = run_holding(path)
    if run is None:
        return None
    if command is not None:
        return f"pass its run directory instead: `{command} {shell_quote(run)}`"
    return f"pass its run directory instead: {shell_quote(run)}"


def require_run_dir(run_dir: Path, made_by: str = "`dlbox train`",
                    command: str | None = None) -> None:
    """RunDirError unless `run_dir` is a folder: one that is not there, or a file, in one
    line that says which (review: a typo read as "a run stopped in its first epoch");
    `made_by` names what writes run folders, for the hint; a file in a run (its checkpoint)
    names the run instead, in `command` where given (pass_the_run_hint)."""
    with reading_run_file(run_dir):  # a folder above it that is not open to the user
        exists, is_dir = run_dir.exists(), run_dir.is_dir()
    if exists and not is_dir:
        raise RunDirError(f"{run_dir} is a file, not a run directory",
                          hint=pass_the_run_hint(run_dir, command)
                          or f"pass the folder {made_by} wrote, not a file in it")
    if not is_dir:
        raise RunDirError(f"run directory {run_dir} does not exist",
                          hint=f"pass the folder {made_by} wrote (default: "
                               "runs/<time>-<model>); its path is printed when training "
                               "starts")


def read_run_config(run_dir: str | Path, command: str | None = None) -> TrainConfig:
    """The run's config.json; `command` ("dlbox train --resume"): the command a hint gives
    for a path inside a run given as the run (pass_the_run_hint)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    require_run_dir(run_dir, command=command)
    with reading_run_file(path):  # a folder on the way that is not open to the user
        found = path.exists()  # a folder in its place: read_json says so, below
    if not found:
        restore = config_restore_command(run_dir)
        if restore is not None:  # deleted, or lost in a copy: the checkpoint has the settings
            raise RunDirError(f"{run_dir} has no {CONFIG_FILE}, but a checkpoint",
                              hint=f"write {CONFIG_FILE} back from the checkpoint, which holds "
                                   f"the run's settings: {restore}")
        if _unreadable_checkpoint(run_dir):
            raise RunDirError(f"{run_dir} has no {CONFIG_FILE}, and its checkpoint "
                              f"{run_dir / 'checkpoints' / 'last.pt'} cannot be read either",
                              hint=RESTORE_OR_TRAIN)
        raise RunDirError(f"{run_dir} has no {CONFIG_FILE}, so it is not a dlbox run directory",
                          hint=runs_inside_hint(run_dir) or pass_the_run_hint(run_dir, command)
                          or "pass a directory made by `dlbox train`")
    try:
        data = read_json(path)
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
        raise run_json_error(path, error, config_damaged_hint(run_dir)) from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is not a valid run config (it holds a JSON "
                          f"{_json_kind(data)}, not an object of settings)",
                          hint=config_damaged_hint(run_dir))
    try:
        return TrainConfig.from_dict(data)
    except UsageError as error:
        raise RunDirError(f"{path} is not a valid run config ({error.message})",
                          hint=config_damaged_hint(run_dir)) from None
    except (ValueError, TypeError) as error:
        raise RunDirError(f"{path} is not a valid run config ({first_line(error)})",
                          hint=config_damaged_hint(run_dir)) from None


RUNS_SHOWN = 3


def runs_inside(folder: Path) -> list[Path]:
    """The runs (sub-folders with a config.json) in `folder`, newest first (by the time of
    their config.json); [] when it cannot be listed."""
    found: list[tuple[float, str, Path]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir() and (config := Path(entry.path) / CONFIG_FILE).is_file():
                        found.append((config.stat().st_mtime, entry.name, folder / entry.name))
    except OSError:
        return []
    return [path for _, _, path in sorted(found, reverse=True)]


def runs_inside_hint(folder: Path) -> str | None:
    """For the folder that holds the runs (`runs`), passed as a run: the runs in it, newest
    first, to pass one of (review: it said only "pass a directory made by `dlbox train`");
    None when it holds none."""
    runs = runs_inside(folder)
    if not runs:
        return None
    shown = ", ".join(shell_quote(run) for run in runs[:RUNS_SHOWN])
    more = f", and {len(runs) - RUNS_SHOWN} more" if len(runs) > RUNS_SHOWN else ""
    return (f"it holds {plural(len(runs), 'run')}: pass "
            f"{'it' if len(runs) == 1 else 'one of them'}: {shown}{more}")


def missing_checkpoint_hint(run_dir: Path, checkpoint: str, checkpoint_every: int = 1) -> str:
    """What to do about a run without the checkpoint asked for: name the ones it has; for a
    run whose metrics.json records an epoch that was checkpointed (every `checkpoint_every`),
    the checkpoint was lost, not never made."""
    folder = run_dir / CHECKPOINTS_DIRNAME
    in_place = checkpoint_path(run_dir, checkpoint)
    with contextlib.suppress(OSError):
        if in_place.is_dir():  # not "moved or deleted" (review)
            return (f"{in_place} is a folder, not a checkpoint: move it away, and put the "
                    "checkpoint back there or train again")
    saved = _saved_checkpoints(run_dir)
    if checkpoint != "last" and saved:
        return f"its checkpoints are: {', '.join(saved)} (--checkpoint NAME)"
    if not saved and held_elsewhere(run_dir):  # before its first checkpoint
        when = ("its first epoch ends" if checkpoint_every <= 1
                else f"epoch {checkpoint_every} (or its last) ends")
        return (f"a dlbox run is training in it right now, and saves its first checkpoint when "
                f"{when}: try again then")
    metrics = run_dir / METRICS_FILE
    try:
        history = read_json(metrics).get("history")
    except FileNotFoundError:
        history = None
    except OSError as error:  # there, but out of reach: whether epochs ended is not known
        return (f"its {metrics.name} cannot be read ({error.strerror or first_line(error)}), "
                "so whether it finished an epoch is not known: if it did, the checkpoint was "
                f"moved or deleted (put it back in {folder}); if not, start it again with "
                f"the command that started it (without --resume; `--run-dir {run_dir}` may "
                "be reused)")
    except (ValueError, AttributeError):
        history = None
    if isinstance(history, list) and len(history) >= max(1, checkpoint_every):
        return (f"its metrics.json records {len(history)} finished epoch(s), so the checkpoint "
                f"was moved or deleted: put it back in {folder}, or train again")
    return saved_nothing_hint(run_dir)


def _saved_checkpoints(run_dir: Path) -> list[str]:
    """The names of the .pt files in RUN_DIR/checkpoints, sorted."""
    folder = run_dir / CHECKPOINTS_DIRNAME
    try:
        return sorted(p.stem for p in folder.glob("*.pt") if p.is_file()) if folder.is_dir() else []
    except OSError:  # a folder not open to the user: no names to offer in a hint
        return []


def saved_nothing_hint(run_dir: Path) -> str:
    """The hint for a run that stopped before it saved a checkpoint (resume and evaluate
    alike): nothing to continue, so start it again; its run dir may be reused."""
    return ("its training stopped before the first epoch ended and saved nothing; start it "
            "again with the command that started it (without --resume; "
            f"`--run-dir {run_dir}` may be reused)")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _count(value: Any) -> int:
    """A count from a checkpoint; 0 for what is not one (older checkpoints lack some)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def check_tta(tta: object) -> bool | None:
    """`tta` as the Python API takes it: True, False, or None (the run's own setting); a
    string such as "no" was taken as true."""
    if tta is None or isinstance(tta, bool):
        return tta
    raise UsageError(f"tta must be True, False or None, got {tta!r}",
                     hint="pass tta=True or tta=False, or leave it out (None: the run's config "
                          "decides, as `dlbox predict` without --tta/--no-tta)")


def check_batch_size(batch_size: object) -> int | None:
    """`batch_size` as the Python API takes it: a whole number of at least 1, or None."""
    if batch_size is None or (isinstance(batch_size, int) and not isinstance(batch_size, bool)
                              and batch_size >= 1):
        return batch_size
    raise UsageError(f"batch_size must be a positive whole number, got {batch_size!r}",
                     hint="pass batch_size=1 or more, or leave it out (None: the run's "
                          "eval_batch_size)")


def check_images(images: object) -> torch.Tensor:
    """`images` as the model was trained on them: a tensor [N, 3, 32, 32] of RGB values
    0..255, channels first (uint8 as training read them; other integer or float types with
    such values work the same). Review: floats in 0..1 (torchvision's ToTensor) were divided
    by 255 again and predicted as black, one [3, 32, 32] image or NHWC gave torch's own
    errors."""
    from dlbox.data.images import IMAGE_SIZE

    wanted = (f"a tensor [N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}] of RGB values 0..255, channels "
              "first (uint8, as training read them)")
    if not isinstance(images, torch.Tensor):
        kind = f"{type(images).__module__}.{type(images).__qualname__}".removeprefix("builtins.")
        raise UsageError(f"images must be {wanted}, got a {kind}",
                         hint="a numpy array [N, 3, H, W]: torch.from_numpy(array); a file: "
                              "dlbox.training.predict.load_image(path), or predict_images")
    shape = list(images.shape)
    if images.ndim != 4 or shape[1] != 3:
        if images.ndim == 3 and shape[0] == 3:
            hint = "one image: images.unsqueeze(0) makes it a batch of one"
        elif images.ndim == 3 and shape[2] == 3:
            hint = ("one image, channels last (HWC, as numpy and PIL give it): "
                    "images.permute(2, 0, 1).unsqueeze(0)")
        elif images.ndim == 4 and shape[3] == 3:
            hint = "channels last (NHWC): images.permute(0, 3, 1, 2)"
        elif images.ndim == 4 and shape[1] == 1:
            hint = "grey images: images.expand(-1, 3, -1, -1) makes them RGB"
        else:
            hint = "pass RGB images as a batch [N, 3, H, W], channels first"
        raise UsageError(f"images must be {wanted}, got shape {shape}", hint=hint)
    if images.dtype != torch.uint8 and images.numel():
        if images.dtype == torch.bool or images.is_complex():
            raise UsageError(f"images must be {wanted}, got "
                             f"{str(images.dtype).removeprefix('torch.')}",
                             hint="pass uint8 values 0..255")
        low, high = float(images.min()), float(images.max())
        if images.is_floating_point() and high <= 1.0:
            raise UsageError(
                f"images must be {wanted}, got {str(images.dtype).removeprefix('torch.')} "
                "values in 0..1",
                hint="floats in 0..1 (torchvision's ToTensor): (images * 255).round()"
                     ".to(torch.uint8)")
        if low < 0 or high > 255:
            raise UsageError(f"images must be {wanted}, got values from {low:g} to {high:g}",
                             hint="pass the images before any normalisation, 0..255: the run "
                                  "applies its own mean and std")
    if shape[2:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise UsageError(f"images must be {wanted}, as the model was trained on, got "
                         f"{shape[2]}x{shape[3]}",
                         hint=f"resize them to {IMAGE_SIZE}x{IMAGE_SIZE} first, as `dlbox predict` "
                              "does: dlbox.training.predict.load_image(path) reads a file so, "
                              "or pass the files to predict_images")
    return images


@dataclass
class LoadedModel:
    """A trained model from a run directory, in eval mode on `device`.

    Feed it exactly as training did: uint8 images [N, 3, 32, 32] (RGB) go through
    `preprocess` (= dlbox.training.inputs.prepare_batch with this run's mean, std and memory
    format: scale to 0..1, subtract mean, divide by std); the model itself does no
    normalisation. `logits` and `probabilities` do the whole thing in batches, under the same
    mixed precision as training, with the test-time augmentation `dlbox predict` and
    `dlbox evaluate` apply (`tta`, None: the run's config's), and return float32 tensors on
    the CPU. Other images (floats in 0..1, one image [3, 32, 32], NHWC, another size) are a
    UsageError that says how to convert them (check_images).
    """

    model: nn.Module
    config: TrainConfig
    classes: tuple[str, ...]
    device: torch.device
    epoch: int
    checkpoint_path: Path
    channels_last: bool
    amp_dtype: torch.dtype | None
    step_in_epoch: int = 0  # steps of epoch `epoch + 1` in the weights (a run stopped mid-epoch)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return prepare_batch(images, self.device, self.channels_last,
                             mean=self.config.mean, std=self.config.std)

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int | None = None,
               tta: bool | None = None) -> torch.Tensor:
        """The logits [N, classes] of uint8 images [N, 3, 32, 32], as `dlbox predict` computes
        them. `tta`: test-time augmentation (the model's own: speedrun's 6 views; else the
        mirror image); None follows the run's config, as predict and evaluate do."""
        from dlbox.training.evaluate import build_model_fn, predict_logits, resolve_tta

        images = check_images(images)
        size = check_batch_size(batch_size) or self.config.eval_batch_size
        model_fn = build_model_fn(self, resolve_tta(check_tta(tta), self.config))
        was_training = self.model.training
        self.model.eval()
        try:
            logits = predict_logits(model_fn, images, size, self.device, self.amp_dtype)
        finally:
            self.model.train(was_training)
        return logits.clone()  # made under inference_mode: an ordinary tensor for the caller

    def probabilities(self, images: torch.Tensor, batch_size: int | None = None,
                      tta: bool | None = None) -> torch.Tensor:
        """softmax(logits): each row sums to 1."""
        return torch.softmax(self.logits(images, batch_size, tta), dim=1)


@contextmanager
def float32_models() -> Iterator[None]:
    """torch's default dtype float32 in the block, the caller's again after it: a model is
    built there in float32, as the inputs are (review: after the caller's
    torch.set_default_dtype(torch.float64), training and loading a run failed with "Input
    type FloatTensor and weight type DoubleTensor")."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def build_run_model(run_dir: str | Path, config: TrainConfig, num_classes: int) -> nn.Module:
    """A fresh model as the run's config.json describes it; a model or setting this dlbox
    does not know (a config.json edited by hand, or from another dlbox) is a RunDirError
    about that file, not a usage error about flags the user did not give."""
    from dlbox.models.registry import create_model

    try:
        # Its random initial weights, which the checkpoint replaces, are not drawn from the
        # caller's generator (review: loading a run moved a seeded notebook's torch.rand).
        with torch.random.fork_rng(devices=[]), float32_models():
            return create_model(config.model, num_classes=num_classes, **config.model_kwargs)
    except UsageError as error:
        raise RunDirError(f"{Path(run_dir) / CONFIG_FILE} names a model this dlbox cannot "
                          f"build ({error.message})",
                          hint="a model registered with @register_model in a script or "
                               "notebook exists only there: load it there after registering "
                               "it (load_model_from_run, predict_images), or add it to a "
                               "module imported by dlbox/models/__init__.py; else config.json "
                               "was edited or written by another dlbox version (`dlbox "
                               "models` lists the models and their settings)") from None


def edited_setting(run_dir: Path, name: str, now: Any, saved: Any,
                   checkpoint: Path | None = None) -> str:
    """The words for a run's config.json edited since its checkpoint, the same for resume
    and for evaluate/predict: "RUN/config.json says epochs 3, but the run's checkpoint was
    trained with 2"."""
    import json

    return (f"{run_dir / CONFIG_FILE} says {name} {json.dumps(now)}, but the run's checkpoint"
            f"{f' {checkpoint}' if checkpoint is not None else ''} was trained with "
            f"{json.dumps(saved)}")


# The settings of config.json that evaluate and predict feed images by, and build the network
# by (review: an edited model_kwargs said "does not fit ... train again", or built another
# network that loaded, speedrun's whiten_stride 2 -> 1).
INFERENCE_SETTINGS = ("mean", "std", "model_kwargs")


def as_json_value(value: Any) -> Any:
    """`value` as config.json holds it: tuples (a checkpoint's config keeps to_dict's, such as
    speedrun's widths) become lists, in dicts and lists too, so the two compare equal."""
    if isinstance(value, (list, tuple)):
        return [as_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json_value(item) for key, item in value.items()}
    return value


def _refuse_another_runs(state: dict[str, Any], path: Path, run_dir: Path,
                         config: TrainConfig) -> None:
    """A checkpoint of another model (`--checkpoint` of another run) named as such: torch's
    list of missing keys, and "train again", said nothing of the kind."""
    import json

    saved = state.get("config")
    if not isinstance(saved, Mapping):
        return  # an older checkpoint: nothing to compare with
    model = saved.get("model")
    if isinstance(model, str) and model != config.model:
        if not outside_the_run(Path(path), run_dir):  # its own: config.json was edited
            raise RunDirError(edited_setting(run_dir, "model", config.model, model, path),
                              hint=f"put model back to \"{model}\" in config.json")
        raise RunDirError(f"checkpoint {path} is of a '{model}' model, and {run_dir} is a "
                          f"'{config.model}' run",
                          hint=NOT_THIS_RUNS_HINT)
    if outside_the_run(Path(path), run_dir):
        return
    # What the images go through before the model (review: an edited mean or std changed
    # every result silently): the checkpoint's own, or the edit named as resume names it.
    now = json.loads(json.dumps(config.to_dict()))  # as the checkpoint has it: lists
    for name in INFERENCE_SETTINGS:
        if name in saved and name in now and as_json_value(saved[name]) != now[name]:
            raise RunDirError(edited_setting(run_dir, name, now[name], saved[name], path),
                              hint=f"put {name} back to {json.dumps(saved[name])} in "
                                   "config.json")


def load_model_from_run(run_dir: str | os.PathLike[str], device: str | torch.device = "auto",
                        checkpoint: str = "last") -> LoadedModel:
    """The model of a run (its `checkpoint`, default checkpoints/last.pt), ready to predict."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    path = checkpoint_path(run_dir, checkpoint)
    with reading_run_file(path):  # a folder on the way that is not open to the user
        found = path.is_file()
    if not found and is_checkpoint_file_path(checkpoint):
        saved = _saved_checkpoints(run_dir)
        raise RunDirError(f"checkpoint {path} "
                          + ("is a folder, not a .pt file" if path.is_dir() else
                             "is not a regular file (a pipe, socket or device)"
                             if path.exists() else "does not exist"),
                          hint="pass the path of a .pt file, or the name of one of the run's "
                               + (f"checkpoints: {', '.join(saved)}" if saved else
                                  f"checkpoints in {run_dir / CHECKPOINTS_DIRNAME}"))
    if not found:
        raise RunDirError(f"run {run_dir} has no checkpoint {path.name}"
                          + (" (a folder of that name is in its place)" if path.is_dir() else ""),
                          hint=missing_checkpoint_hint(run_dir, checkpoint,
                                                        config.checkpoint_every))
    try:
        state = load_checkpoint(path)
        # one the user named (--checkpoint weights) that is no checkpoint: the flag's fault
        check_checkpoint(state, path, **({"not_ours_hint": CHOSEN_CHECKPOINT_HINT}
                                          if checkpoint != "last" else {}))
    except RunDirError as error:
        # a file the user chose, not the run's own (review: "pass a run directory",
        # "damaged: train again"); a file that cannot be read keeps its permissions hint
        if not isinstance(error, RunFileUnreadable) and outside_the_run(path, run_dir):
            error.hint = CHOSEN_CHECKPOINT_HINT
        raise
    _refuse_another_runs(state, path, run_dir, config)
    classes = tuple(state.get("classes") or ())
    model = build_run_model(run_dir, config, len(classes) or 10)
    load_state_dict_checked(model, state.get("model"), path, what=f"model '{config.model}'",
                            hint=NOT_THIS_RUNS_HINT if outside_the_run(path, run_dir) else None)
    channels_last = config.use_channels_last(torch_device)
    from dlbox.training.loop import to_device

    model = to_device(model, torch_device, channels_last).eval()
    return LoadedModel(model=model, config=config, classes=classes, device=torch_device,
                       epoch=int(state.get("epoch", 0)), checkpoint_path=path.resolve(),
                       channels_last=channels_last,
                       amp_dtype=amp_dtype(torch_device) if config.use_amp(torch_device) else None,
                       step_in_epoch=_count(state.get("step_in_epoch")))

