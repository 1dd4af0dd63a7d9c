"""Run directories: a new run's folder (runs/<time>-<model>, taken with an exclusive mkdir),
the checks before a run takes a --run-dir, and the lock a training or an evaluation holds on
its run while it writes there.

    run_dir = claim_default_run_dir("speedrun")     # runs/20261207-101500-speedrun/
    with run_lock(run_dir):                         # a second train/--resume is refused
        ...
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dlbox.errors import RunDirError
from dlbox.fileio import (
    ACCESS_ERRNOS,
    exclusive_lock,
    held_elsewhere,
    is_atomic_temp,
    nearest_folder,
    read_json,
    remove_atomic_temps,
)
from dlbox.text import make_writable, shell_quote
from dlbox.training.checkpoint import (
    CHECKPOINTS_DIRNAME,
    CONFIG_FILE,
    METRICS_FILE,
    checkpoint_path,
    says_finished,
)
from dlbox.training.manifest import MANIFEST_FILE
from dlbox.training.placing import finish_killed_placements

RUNS_DIRNAME = "runs"


def default_run_dir(model: str, base: Path | None = None) -> Path:
    """runs/<YYYYmmdd-HHMMSS>-<model> under the current directory (suffixed if taken)."""
    base = base or Path.cwd() / RUNS_DIRNAME
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    candidate = base / f"{stamp}-{safe}"
    counter = 2
    while candidate.exists():
        candidate = base / f"{stamp}-{safe}-{counter}"
        counter += 1
    return candidate


def claim_default_run_dir(model: str, base: Path | None = None) -> Path:
    """Make and return a new runs/<YYYYmmdd-HHMMSS>-<model>[-N] (with its checkpoints/).
    Each name is taken with an exclusive mkdir, so runs started in the same second (a sweep
    started with `&`) each get their own, where a check-then-create would give several of
    them the same one."""
    base = base or Path.cwd() / RUNS_DIRNAME
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create the runs folder {base} ({error.strerror})",
                          hint="run from a writable folder, or pass --run-dir") from None
    first = default_run_dir(model, base)
    candidate, counter = first, 2
    while True:
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            candidate = first.with_name(f"{first.name}-{counter}")
            counter += 1
        except OSError as error:
            raise run_dir_create_error(candidate, error) from None
    (candidate / "checkpoints").mkdir()
    return candidate


RUN_LOCK_FILE = ".dlbox-run.lock"  # the lock file of runs an earlier dlbox made


@contextlib.contextmanager
def run_lock(run_dir: Path,
             busy_hint: str = "wait for it to end, or pass another --run-dir", *,
             evaluating: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` while a run trains in it, so a second
    `dlbox train --run-dir` into it or a second `--resume` of it is refused meanwhile. It is
    the kernel's lock (flock) on the folder itself (see fileio.exclusive_lock), so it leaves
    no file in the run; it ends with the process, a crash or SIGKILL included, so a stale
    lock never blocks anyone.

    An evaluation holds it too, and then also its checkpoints/ folder's, by which the others
    tell it from a training; `evaluating` is the hint for a run another evaluation holds."""
    with exclusive_lock(run_dir, busy_error(run_dir, busy_hint, evaluating)):
        if evaluating is None:
            yield
            return
        with exclusive_lock(run_dir / "checkpoints", busy_error(run_dir, busy_hint, evaluating),
                            best_effort=True):
            yield


def busy_error(run_dir: Path, hint: str, evaluating: str | None = None) -> RunDirError:
    """The error for a run dir whose lock another dlbox holds: a training, or an evaluation
    (for its seconds), which holds its checkpoints/ folder's lock as well (see run_lock)."""
    if held_elsewhere(run_dir / "checkpoints"):
        return RunDirError(f"a dlbox evaluate is writing the report of {run_dir} right now",
                           hint=evaluating or "run it again when that ends (it takes seconds "
                                              "to minutes)")
    return RunDirError(f"a dlbox run is training in {run_dir} right now", hint=hint)


def saved_nothing(path: Path) -> bool:
    """A run dir that a run started in but stopped before it saved anything: only its
    config.json and manifest.json and an empty checkpoints/ (a speedrun stopped in its first
    epoch, a crash before the first checkpoint), or only the empty checkpoints/ of a start
    whose config.json could not be written (a full disk). Starting again there loses nothing;
    a run still training in it holds its run_lock, which the new run then cannot take."""
    if not (path / CONFIG_FILE).exists():
        return (path / "checkpoints").is_dir() and _holds_only_a_start(path) and not (
            path / MANIFEST_FILE).exists()
    return _holds_only_a_start(path)


def _holds_only_a_start(path: Path) -> bool:
    """Whether `path` holds no more than a run's start: config.json, manifest.json and an
    empty checkpoints/, or fewer of them."""
    started = {CONFIG_FILE, MANIFEST_FILE, "checkpoints", RUN_LOCK_FILE}
    checkpoints = path / "checkpoints"
    # a write killed mid-way (SIGKILL during the first checkpoint) saved nothing either
    return ({p.name for p in path.iterdir() if not is_atomic_temp(p.name)} <= started
            and (not checkpoints.exists() or (checkpoints.is_dir() and all(
                is_atomic_temp(p.name) for p in checkpoints.iterdir()))))


def remove_killed_writes(run_dir: Path) -> None:
    """The temp files of writes a SIGKILL cut short (a checkpoint's can be hundreds of MB),
    removed once the run's lock is held: no other process writes in the run then. A report
    an evaluation was killed moving into place is placed whole first."""
    finish_killed_placements(run_dir)
    remove_atomic_temps(run_dir)
    remove_atomic_temps(run_dir / "checkpoints")


def discard_unsaved(run_dir: Path) -> bool:
    """Remove a default run dir (runs/<time>-<model>) that a failed start left holding nothing
    worth keeping: the same command makes a new one, so it would be clutter in runs/. True
    when it was removed."""
    try:
        if not _holds_only_a_start(run_dir):
            return False
        shutil.rmtree(run_dir)
    except OSError:  # kept: the error that stopped the run is the one to report
        return False
    return True


def create_run_dir(path: Path) -> Path:
    """Make a fresh run dir; one that already holds a run (or any file) is refused, except a
    run that saved nothing (`saved_nothing`), which is started again in place."""
    check_new_run_dir(path)
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise run_dir_create_error(path, error) from None
    return path


def check_new_run_dir(path: Path) -> None:
    """Refuse a --run-dir a new run cannot take (see create_run_dir): checked before the
    data is read too, which takes seconds for an image tree (review: a Ctrl-C then was
    answered with a word on the run already in that folder, which it never touched)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory",
                          hint="pass another --run-dir")
    if path.is_dir() and any(path.iterdir()) and not saved_nothing(path):
        if held_elsewhere(path):  # review: "continue it with --resume" was then refused
            holds_a_run = "pass another --run-dir: this one holds a run"
            raise busy_error(path, holds_a_run, evaluating=holds_a_run)
        if (path / CONFIG_FILE).exists():
            if says_finished(checkpoint_path(path, "last")):  # --resume: "nothing to resume"
                raise RunDirError(f"{path} already holds a run, which finished",
                                  hint=f"evaluate it with `dlbox evaluate {shell_quote(path)}`,"
                                       " or pass another --run-dir for a new run")
            raise RunDirError(f"{path} already holds a run",
                              hint=f"continue it with `dlbox train --resume "
                                   f"{shell_quote(path)}`, or pass another --run-dir")
        raise RunDirError(f"run directory {path} is not empty",
                          hint="pass a new or empty --run-dir")


def run_dir_create_error(path: Path, error: OSError) -> RunDirError:
    """The error for a run dir that cannot be made; a permission refused names the folder
    to make writable (the run dir itself when it exists, else the nearest folder above)."""
    # an existing (empty) folder is not created but written: say so (review)
    verb = "cannot write in run directory" if path.is_dir() else "cannot create run directory"
    message = f"{verb} {path} ({error.strerror})"
    if error.errno not in ACCESS_ERRNOS:
        return RunDirError(message, hint="pass a writable --run-dir")
    folder = nearest_folder(path)
    return RunDirError(message, hint=f"{make_writable(folder)}, or pass another --run-dir")


def last_checkpoint(run_dir: str | Path) -> Path:
    """RUN_DIR/checkpoints/last.pt, which a stopped run resumes from, named without a look
    at the folder: checkpoint_path(run_dir) looks, and makes one that cannot be searched its
    RunDirError, where the word on a stop names the file all the same."""
    return Path(run_dir) / CHECKPOINTS_DIRNAME / "last.pt"


def saved_checkpoint(run_dir: str | Path | None) -> tuple[Path, bool] | None:
    """What a stopped run saved: its checkpoint and whether training had finished (then its
    report is what is left to make, with evaluate); None when it saved none. OSError when
    the checkpoint cannot be looked at."""
    last = last_checkpoint(run_dir or "")
    if not run_dir or not last.is_file():
        return None
    return last, says_finished(last)


def stopped_unfinished(run_dir: str | Path | None) -> bool:
    """Whether `run_dir` holds a run stopped before its training finished, which `dlbox
    train --resume` continues: its config.json, and a checkpoint that does not say it
    finished. False where that cannot be looked at."""
    with contextlib.suppress(OSError):
        saved = saved_checkpoint(run_dir)
        return (saved is not None and not saved[1]
                and (Path(run_dir or "") / CONFIG_FILE).is_file())
    return False


def run_all_written(run_dir: str | Path | None, evaluated: bool) -> bool:
    """Whether a run is all written: its training finished, and, when it was to be
    `evaluated`, metrics.json (the report's last file) holds the evaluation of its last
    epoch."""
    if not run_dir:
        return False
    try:
        metrics = read_json(Path(run_dir) / METRICS_FILE)
        final, evaluation = metrics.get("final") or {}, metrics.get("evaluation") or {}
        # the checkpoint as json_path writes it: $'.../last.pt' for a path not UTF-8
        return final.get("finished") is True and (not evaluated or (
            re.search(r"(^|/)last\.pt'?$", str(evaluation.get("checkpoint", ""))) is not None
            and evaluation.get("epoch") == final.get("epochs_completed")))
    except (OSError, ValueError, AttributeError, TypeError):
        return False
