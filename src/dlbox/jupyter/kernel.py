"""What the notebook's kernel imports from dlbox (first_pytorch_classifier.ipynb, written by
scripts/build_notebook.py): its settings cell checked (check_settings), the synthetic
CIFAR-10 look-alike (synthetic_cifar10), a training cell that leaves no half-made run behind
(removed_if_unsaved) and goes on with the run it stopped (stopped_with), a cell run before
the cells it needs said so (cell_ran), as are settings changed since a cell above used them
(check_made_with, check_test_images, own_test_set_note), the run's history for its curves
(training_history), and dlbox's errors shown in the notebook's words: its settings' names for
the command line's flags (name_settings_in_errors, an IPython exception hook).

These run inside the Jupyter kernel, not in `dlbox notebook`; the notebook imports them from
dlbox.jupyter.notebooks, which re-exports them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlbox.errors import UsageError
from dlbox.fileio import expand_user
from dlbox.jupyter.settings import NOTEBOOK_CONTAINER_ENV
from dlbox.text import in_words, shell_quote, use_wording

if TYPE_CHECKING:
    from dlbox.training.config import TrainConfig


def check_settings(**settings: object) -> None:
    """The notebook's settings cell, checked before anything uses it: a bad value is one
    error naming the setting (as the notebook spells it) and the value to give instead, not
    a traceback from deep in numpy, pathlib or matplotlib, nor a silent surprise (NUM_TRAIN =
    -5 kept all but 5 images; DEVICE = 0 meant "auto"), nor one found after the training
    (RUN_DIR = 5, a MY_IMAGE that is not there). Takes any of NUM_TRAIN, NUM_TEST, EPOCHS,
    SEED, MODEL, DEVICE, DATA_DIR, RUN_DIR and MY_IMAGE."""
    from dlbox.training.config import MAX_SEED, MIN_SEED

    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def refuse(name: str, what: str, fix: str) -> None:
        raise UsageError(f"{name} = {settings[name]!r} {what}", hint=f"set {name} to {fix}")

    def path_like(value: object) -> bool:
        return isinstance(value, (str, os.PathLike)) and str(value).strip() != ""

    for name in ("NUM_TRAIN", "NUM_TEST"):
        value = settings.get(name)
        if value is not None and (not whole(value) or int(value) < 1):  # type: ignore[call-overload]
            refuse(name, "is not a number of images",
                   "a whole number, 1 or more, or to None for all of them")
    epochs = settings.get("EPOCHS")
    if "EPOCHS" in settings and (not whole(epochs) or int(epochs) < 1):  # type: ignore[call-overload]
        refuse("EPOCHS", "is not a number of passes", "a whole number, 1 or more")
    seed = settings.get("SEED")
    if "SEED" in settings and not (whole(seed) and MIN_SEED <= int(seed) <= MAX_SEED):  # type: ignore[call-overload]
        refuse("SEED", "is not a whole number" if not whole(seed) else "is out of range",
               "a whole number such as 0 (the same seed gives the same run on the same "
               "machine)")
    if "MODEL" in settings:
        from dlbox.models import model_names

        if settings["MODEL"] not in model_names():
            refuse("MODEL", "is not one of dlbox's models",
                   f"one of {', '.join(repr(name) for name in model_names())}")
    device = settings.get("DEVICE")
    if "DEVICE" in settings:
        if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?",
                                                           device.strip().lower()):
            refuse("DEVICE", "is not a device", '"auto", "cpu" or "cuda" ("cuda:1" for a '
                   "second GPU)")
        from dlbox.training.device import resolve_device

        resolve_device(str(device))  # a GPU this machine lacks: its error, in DEVICE's words
    data = settings.get("DATA_DIR")
    if data is not None and not path_like(data):
        refuse("DATA_DIR", "is not a folder", '"auto", None (the synthetic look-alike) or a '
               'folder\'s path, as a string such as "~/cifar10"')
    if settings.get("RUN_DIR") is not None and not path_like(settings["RUN_DIR"]):
        refuse("RUN_DIR", "is not a folder", 'None (a new folder under runs/) or a folder\'s '
               'path, as a string such as "runs/first"')
    image = settings.get("MY_IMAGE")
    if image is not None:
        if not path_like(image):
            refuse("MY_IMAGE", "is not a file", "None (a drawing) or a photo's path, as a "
                   'string such as "~/Pictures/cat.jpg"')
        elif not expand_user(str(image)).is_file():
            refuse("MY_IMAGE", "is no file here", "the path of a photo of yours, or None to "
                   "draw one")


# The synthetic look-alike has as many images as CIFAR-10 at most, and at least these (so
# that a small NUM_TRAIN takes the first few of them, as it does of the real data).
# 2000 training images: enough for the default run (2 epochs of the tutorial's network) to
# learn all ten classes (review: 500 gave ~20 %, two classes learnt, which looked broken).
SYNTHETIC_SIZES = {"train": (2000, 50_000), "test": (100, 10_000)}


def synthetic_cifar10(folder: Path | None, num_train: int | None, num_test: int | None,
                      seed: int) -> Path:
    """The data folder of a synthetic CIFAR-10 look-alike for the notebook: written in
    `folder` (a temporary one), or, for None, in a folder of dlbox's cache that stays (one
    per size and seed), so that a run kept in RUN_DIR can be evaluated and resumed after the
    kernel stopped (review: its data went with the kernel). NUM_TRAIN / NUM_TEST beyond
    CIFAR-10's sizes are refused (review: 10**10 ended in a MemoryError)."""
    from dlbox.data.synthetic import write_fake_cifar10

    counts = {}
    for split, asked in (("train", num_train), ("test", num_test)):
        least, most = SYNTHETIC_SIZES[split]
        if asked is not None and asked > most:
            name = f"NUM_{split.upper()}"
            raise UsageError(f"{name} = {asked} is more than the synthetic look-alike's "
                             f"{most:,} {split} images (as many as CIFAR-10 has)",
                             hint=f"set {name} to {most} or fewer, or to None for all of them")
        counts[split] = max(asked or 0, least)
    if folder is not None:
        write_fake_cifar10(folder, counts["train"], counts["test"], seed)
        return folder
    from dlbox.data.paths import cache_dir

    kept = cache_dir() / "synthetic" / f"train{counts['train']}-test{counts['test']}-seed{seed}"
    if not kept.is_dir():  # written aside, then renamed: a stopped kernel leaves no half
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            aside = Path(tempfile.mkdtemp(prefix=".writing-", dir=kept.parent))
            try:
                write_fake_cifar10(aside, counts["train"], counts["test"], seed)
                with contextlib.suppress(OSError):  # another kernel's, the same, came first
                    aside.rename(kept)
            finally:
                shutil.rmtree(aside, ignore_errors=True)
        except OSError as error:  # review: a read-only cache gave a pathlib traceback
            raise UsageError(f"cannot keep the synthetic data in {kept.parent}: "
                             f"{error.strerror or error}",
                             hint="make that folder writable, or set XDG_CACHE_HOME to a "
                                  "writable folder before starting Jupyter, or set DATA_DIR "
                                  "to a folder of CIFAR-10") from None
    return kept


# The temporary folder the notebook trains a throwaway run in (synthetic data, RUN_DIR None),
# deleted with the kernel: a resume in a terminal would lose it (review), so its hints say to
# set RUN_DIR instead.
THROWAWAY_RUN_PREFIX = "dlbox-notebook-run-"
# The training cell run again continues a run the stop button stopped (its settings unchanged)
CONTINUE_IN_CELL = "run the training cell again (settings unchanged) to continue it"
KEEP_A_RUN = ("this run is a throwaway one, deleted when the kernel stops: to keep a run you "
              "can resume, set RUN_DIR to a folder and run the training cell again")


@contextlib.contextmanager
def removed_if_unsaved(run_dir: Path, claimed: bool = False) -> Iterator[None]:
    """The notebook's training: a run folder the cell claimed (`claimed`) or that did not
    exist before is removed when training fails before its first checkpoint, as `dlbox
    train` removes its own (review: the notebook left an empty runs/<time>-<model>/ behind,
    as it names the folder it claimed to train()). A folder that existed, or that holds a
    checkpoint, is kept.

    A stop before training saved anything reads as the command line's "training stopped"
    line, also one that came before training's own handler of the stop button (reading the
    data: review saw a KeyboardInterrupt's traceback)."""
    from dlbox.training.checkpoint import checkpoint_path
    from dlbox.training.loop import TrainingStopped
    from dlbox.training.rundir import discard_unsaved

    made_here = claimed or not run_dir.exists()
    try:
        yield
    except BaseException as error:
        # only a folder holding no more than a run's start
        removed = made_here and discard_unsaved(run_dir)
        stopped = error
        if isinstance(error, KeyboardInterrupt) \
                and not checkpoint_path(run_dir, "last").is_file():
            stopped = TrainingStopped(run_dir, "interrupted", 130, saved_epoch=0)
        if isinstance(stopped, TrainingStopped) and not stopped.resumable \
                and not stopped.finished and (removed or not run_dir.exists()):
            # not "it may reuse RUN_DIR": there is none
            stopped.hint = "start again with the same command"
        if stopped is error:
            raise
        raise stopped from None


def cell_ran(namespace: Mapping[str, object], name: str, cell: str) -> None:
    """In the notebook, before a cell uses `name` that an earlier `cell` defines: a
    UsageError's error and hint lines where that cell has not run (skipped, or a fresh
    kernel), not a NameError's traceback."""
    if name not in namespace:
        raise UsageError(f"{cell} has not run yet",
                         hint="run the cells above in order (Run > Run All Cells)")


def check_made_with(made_with: tuple[object, ...], num_train: int | None,
                    num_test: int | None, seed: int) -> None:
    """The data cell on synthetic data: the setup cell made it for its NUM_TRAIN, NUM_TEST
    and SEED (`made_with`); one changed since is a UsageError that sends to the setup cell
    (review 14: NUM_TRAIN raised, the data cell said to set it to 2000 or less, the
    synthetic data's size, where the setup cell makes the data anew)."""
    changed = [name for name, then, now in zip(("NUM_TRAIN", "NUM_TEST", "SEED"), made_with,
                                               (num_train, num_test, seed), strict=True)
               if then != now]
    if changed:
        raise UsageError(f"{in_words(changed)} changed since the setup cell made the "
                         "synthetic data",
                         hint="run the setup cell again (it makes the data anew), then this cell")


def _test_images_settings(loaded_with: tuple[object, ...]) -> dict[str, object]:
    """The settings that choose the test images, from the data cell's `loaded_with`: (the
    synthetic data's (NUM_TRAIN, NUM_TEST, SEED) or the data folder, NUM_TRAIN, NUM_TEST)."""
    source, _, num_test = loaded_with
    if isinstance(source, tuple):  # synthetic: its test images are made from SEED
        return {"DATA_DIR": "the synthetic look-alike", "SEED": source[2], "NUM_TEST": num_test}
    return {"DATA_DIR": source, "NUM_TEST": num_test}


def check_test_images(loaded_with: tuple[object, ...], trained_with: tuple[object, ...],
                      test_images: int, predictions: int) -> None:
    """The gallery of wrong guesses: it shows the data cell's test images (read with
    `loaded_with`) captioned with the test cell's predictions, which are of the images the
    run was trained with (`trained_with`: the data cell's `loaded_with` when the training
    cell ran), as many as `predictions`. Other images are a UsageError naming the settings
    to set back, or the cells to run again (review 14: NUM_TEST changed and the setup and
    data cells run again, it failed with an IndexError, or captioned other photos)."""
    then, now = _test_images_settings(trained_with), _test_images_settings(loaded_with)
    changed = [name for name in then if name in now and then[name] != now[name]]
    if changed:
        back = [f"{name} back to {then[name]!r}" if name != "DATA_DIR" else
                f"DATA_DIR to the run's data ({then[name]})" for name in changed]
        raise UsageError("the data cell's test images are not the ones this run was tested "
                         f"on: {in_words(changed)} changed since the training cell ran",
                         hint=f"set {in_words(back)}, then run the setup cell and the data "
                              "cell again; or train a run on these images (the training cell and "
                              "the cells after it)")
    if test_images != predictions:  # the predictions of an earlier run, say
        raise UsageError(f"the predictions read are of {predictions} test images, the data "
                         f"cell's are {test_images}",
                         hint="run the test cell and the cell that reads the predictions again")


def tested_stamp(run_dir: Path) -> tuple[str, int, int]:
    """The run's predictions.csv as the test cell last wrote it (path, time, size), for the
    cells that read it; a UsageError when the test cell has not run for this run, or not
    since its training went on (re-review: a new training's cells read the last run's
    predictions, or failed on a missing file; a continued run's, those of its stopped
    weights)."""
    folder = expand_user(run_dir)
    path = folder / "predictions.csv"
    try:
        info = path.stat()
    except OSError:
        raise UsageError(f"the test cell has not run for the run in {run_dir} yet",
                         hint="run the test cell, then this cell") from None
    try:  # the test cell writes its predictions after the checkpoint it reads
        trained = (folder / "checkpoints" / "last.pt").stat().st_mtime_ns
    except OSError:
        trained = None
    if trained is not None and info.st_mtime_ns < trained:
        raise UsageError(f"the test cell has not run since the training cell went on with the "
                         f"run in {run_dir}", hint="run the test cell, then this cell")
    return str(path), info.st_mtime_ns, info.st_size


def check_predictions_read(predicted_from: tuple[str, int, int], run_dir: Path) -> None:
    """The gallery: the predictions the cell above read (`predicted_from`: tested_stamp then)
    are the run's latest (re-review: after a new training, or a new test cell, the gallery
    captioned the pictures with another run's guesses)."""
    again = "run the test cell and the cell that reads the predictions again, then this cell"
    try:
        now = tested_stamp(run_dir)
    except UsageError as error:  # the fix here is both cells, not the test cell alone
        raise UsageError(error.message, hint=again) from None
    if now != predicted_from:
        raise UsageError("the predictions read are not this run's latest: the test cell ran "
                         "since the cell that reads them", hint=again)


def own_test_set_note(run_dir: Path, num_test: int | None) -> str | None:
    """The test cell's note where NUM_TEST is not the run's own: evaluate_run tests the run
    on its own test images, not on NUM_TEST's (review 14: it did so without a word); else
    None."""
    from dlbox.training.checkpoint import read_run_config

    own = read_run_config(expand_user(run_dir)).num_test
    if own == num_test:
        return None
    those = "all the test images" if num_test is None else f"{num_test:,} test images"
    return (f"note: this run is tested with its own NUM_TEST ({own!r}), not NUM_TEST = "
            f"{num_test!r}: to test on {those}, train a run with NUM_TEST = {num_test!r}")


# The training settings the notebook sets (the others are the model's recipe)
SETTING_OF_CONFIG = {"epochs": "EPOCHS", "num_train": "NUM_TRAIN", "num_test": "NUM_TEST",
                     "seed": "SEED", "model": "MODEL"}


def stopped_with(folder: Path, config: TrainConfig, named: bool = False) -> bool:
    """Whether `folder` holds a run that was stopped before it finished (the stop button)
    with the settings of `config` that a resumed run keeps (where it runs, its folders, its
    threads, checkpoint_every and eval_batch_size aside): the notebook's training cell, run
    again, continues it where `dlbox train --resume` would. `named`: RUN_DIR names `folder`,
    so a stopped run there with other settings is a UsageError naming them (review: "already
    holds a run", and a `dlbox train --resume` that finishes the old run, not this one)."""
    from dlbox.training.checkpoint import read_run_config
    from dlbox.training.loop import changed_result_settings
    from dlbox.training.rundir import stopped_unfinished

    if not stopped_unfinished(folder):
        return False
    saved = read_run_config(folder).to_dict()
    changed = changed_result_settings(saved, config)
    if changed and named:
        now = config.to_dict()
        said = [f"{SETTING_OF_CONFIG.get(name, name)} = {saved[name]!r} (now {now[name]!r})"
                for name in changed]
        new_run = "or set RUN_DIR to another folder (or None) for a new run"
        # the model's recipe (batch_size, lr, ...) has no setting here (re-review: a run
        # `dlbox train --batch-size 16` started was told to set it back, "which DEVICE
        # chooses"): a terminal's --resume keeps the run's own
        fix = (f"set them back to continue it, {new_run}"
               if all(name in SETTING_OF_CONFIG for name in changed) else
               f"continue it in a terminal with `dlbox train --resume {shell_quote(folder)}` "
               f"(it keeps the run's own settings), {new_run}")
        raise UsageError(f"RUN_DIR {folder} holds a run stopped with other settings: "
                         f"{', '.join(said)}", hint=fix)
    return not changed


def how_to_get_cifar10() -> str:
    """The notebook's line on how to get the real CIFAR-10. `dlbox notebook --container`
    mounts the host's data at /data when it starts (review: a fetch on the host afterwards
    was not seen, and one in JupyterLab's terminal went with the container)."""
    if os.environ.get(NOTEBOOK_CONTAINER_ENV):
        return ("To get the real photos, run `dlbox data fetch` on the host (not in this "
                "container), then stop `dlbox notebook --container` and start it again: it "
                "mounts the data when it starts.")
    return "To get the real photos, run `dlbox data fetch` in a terminal, then re-run."


def throwaway_run(run_dir: str | Path) -> bool:
    """Whether `run_dir` is in the notebook's temporary folder for a throwaway run."""
    return any(part.startswith(THROWAWAY_RUN_PREFIX) for part in Path(run_dir).parts)


def training_history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's history, one entry per finished epoch (metrics.json), for the notebook's
    curves; a run stopped in its first epoch has none, which is said in one line (review:
    a FileNotFoundError's traceback)."""
    from dlbox.errors import RunDirError
    from dlbox.training.checkpoint import checkpoint_path
    from dlbox.training.evaluate import read_metrics_file

    run_dir = expand_user(run_dir)  # RUN_DIR = "~/runs/first" (review: read literally)
    # A folder that is not there is not a run stopped in its first epoch (review: a typo)
    from dlbox.training.checkpoint import require_run_dir

    require_run_dir(run_dir, made_by="the training cell (or `dlbox train`)")
    # {} without one; a damaged one is its own one-line error
    history = read_metrics_file(run_dir / "metrics.json").get("history") or []
    if not history:
        saved = checkpoint_path(run_dir).is_file()  # a RUN_DIR holding it
        raise RunDirError(f"the run in {run_dir} has no finished epoch to plot: its training "
                          "was stopped in its first epoch",
                          hint=KEEP_A_RUN if throwaway_run(run_dir) else
                          (f"{CONTINUE_IN_CELL}, or resume it in a terminal: dlbox train "
                           f"--resume {shell_quote(run_dir)}") if saved else
                          "run the training cell again, to its end")
    return list(history)


def unfinished_run_note(run_dir: Path) -> str | None:
    """The test cell's note on a run whose training did not finish (metrics.json, after an
    evaluation: its "final" says finished false, or its weights are from the middle of an
    epoch), so that its numbers are not read as a trained network's (review); else None."""
    from dlbox.text import plural
    from dlbox.training.evaluate import read_metrics_file

    document = read_metrics_file(expand_user(run_dir) / "metrics.json")
    final, evaluation = document.get("final") or {}, document.get("evaluation") or {}
    steps, epoch = evaluation.get("step_in_epoch") or 0, evaluation.get("epoch")
    if final.get("finished") is not False and not steps:
        return None
    if steps and isinstance(epoch, int):
        where = f"it stopped during epoch {epoch + 1}, after {plural(steps, 'step')}"
    elif isinstance(epoch, int):
        where = f"it stopped after {plural(epoch, 'epoch')}"
    else:
        where = "it was stopped"
    return (f"note: this run's training did not finish: {where}; these are the numbers of a "
            "partly trained network")


# The command line's flags and the notebook's settings that do the same: a hint written for
# `dlbox train` ("pass --epochs 1 or more") is read in the notebook in its own words.
SETTING_OF_FLAG = {"--epochs": "EPOCHS", "--num-train": "NUM_TRAIN", "--num-test": "NUM_TEST",
                   "--device": "DEVICE", "--seed": "SEED", "--model": "MODEL",
                   "--data": "DATA_DIR", "--run-dir": "RUN_DIR"}


# ... and what the command line says of running itself again, or of where it runs, as the
# notebook does it.
NOTEBOOK_PHRASES = {"start again with the same command": "run the training cell again",
                    "run from a writable folder, or pass --run-dir":
                        "start Jupyter in a writable folder, or set RUN_DIR to a folder you "
                        "can write to"}

# A setting is set, not passed, and None where a flag is left out (review: "pass NUM_TRAIN
# 500 or less, or leave NUM_TRAIN out"): (pattern, replacement) over the settings' names.
_SETTING = "|".join(SETTING_OF_FLAG.values())
SETTING_PHRASES = [
    (rf"\bpass ({_SETTING}) (.+?), or leave \1 out\b", r"set \1 to \2, or to None"),
    (rf"\bpass ({_SETTING}) (?=[\d\"'])", r"set \1 to "),
    (rf"\b(set ({_SETTING}) to [^,;]+), or leave it out\b", r"\1, or to None"),
    (rf"\bleave ({_SETTING}) out\b", r"set \1 to None"),
    # "pass another --run-dir", "pass a writable --run-dir": a folder of that kind
    (rf"\b(?:pass|use) (another|a new or empty|a new|a writable) ({_SETTING})\b",
     r"set \2 to \1 folder"),
    (rf"\bpass ({_SETTING}) holding\b", r"set \1 to a folder holding"),
    # a value as the command line gives it (--device cpu, --data /x): a string in Python
    (rf"\b(?:pass|use) ({_SETTING}) (?!to\b)([^\s\"',;()\d][^\s,;()]*)", r'set \1 to "\2"'),
    (rf"\bpass ({_SETTING})\b", r"set \1"),
]


def in_setting_terms(line: str) -> str:
    """`line` with the flags the notebook has settings for named as those settings ("--data
    DIR" as DATA_DIR), said as a notebook sets them (SETTING_PHRASES: "pass --epochs 1" as
    "set EPOCHS to 1", "leave X out" as "set X to None"), and "the same command" as the
    training cell; a command in backticks (`dlbox data fetch --data X`) is left whole."""
    def setting(match: re.Match[str]) -> str:
        return SETTING_OF_FLAG.get(match.group(1), match.group(0))

    for phrase, instead in NOTEBOOK_PHRASES.items():
        line = line.replace(phrase, instead)

    parts = line.split("`")
    for index in range(0, len(parts), 2):  # outside backticks
        parts[index] = re.sub(r"(?<![\w-])(--[a-z][a-z-]*)(?: (?:DIR|N)\b)?", setting,
                              parts[index])
        for pattern, instead in SETTING_PHRASES:
            parts[index] = re.sub(pattern, instead, parts[index])
    return "`".join(parts)


def name_settings_in_errors() -> None:
    """In a notebook (IPython), show dlbox's errors, warnings and notes with the settings'
    names for the flags (see in_setting_terms); elsewhere, nothing changes."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from dlbox.errors import DlboxError

    def show(shell: Any, etype: type, value: BaseException, tb: Any,
             tb_offset: int | None = None) -> list[str]:
        from dlbox.text import shell_quote
        from dlbox.training.loop import TrainingStopped

        render = getattr(value, "_render_traceback_", None)
        lines = [in_setting_terms(line) for line in (render() if render else [str(value)])]
        if isinstance(value, TrainingStopped) and value.resumable:
            # not "resume with: ..." alone: the cell continues it (and a throwaway run is
            # deleted with the kernel: see KEEP_A_RUN)
            lines = [value.message, f"hint: {KEEP_A_RUN}" if throwaway_run(value.run_dir)
                     else f"hint: {CONTINUE_IN_CELL}, or resume it in a terminal: dlbox train "
                          f"--resume {shell_quote(value.run_dir)}"]
        shell._showtraceback(etype, value, lines)  # how IPython shows a rendered traceback
        return lines

    shell.set_custom_exc((DlboxError,), show)
    use_wording(in_setting_terms)

