#!/usr/bin/env python
"""airbench side by side: run one of airbench's scripts on the data dlbox uses, and read its table.

    python benchmarks/airbench_side_by_side.py --script PATH [--runs N] [--data DIR]
        [--num-train N] [--num-test N] [--timeout S] [--python EXE] [--keep-work-dir DIR]
        [--dlbox-json FILE] [--json OUT]
    python benchmarks/airbench_side_by_side.py --write-fake-script PATH

The script (e.g. airbench94_muon.py from github.com/KellerJordan/cifar10-airbench) is
third-party code and never part of this project: it is given by path. The harness

  1. loads the data dir with dlbox's own loader (uint8 NCHW, as dlbox trains on it) and writes
     WORK/cifar10/train.pt and WORK/cifar10/test.pt in the layout airbench's loaders read
     (and, finding them, never download): {'images': uint8 [N, 32, 32, 3] (NHWC),
     'labels': int64 [N], 'classes': [10 names]};
  2. copies the script into WORK with its run count set to --runs (the one
     `for run in range(K)` in it; no such loop, or more than one, is an error);
  3. runs it there as a subprocess of the same Python, streaming its output, and times it end
     to end (start-up, compile and warm-up included): `wall_seconds`;
  4. reads its table. Columns come from the header (`run | epoch | ... | tta_val_acc |
     time_seconds`, or `total_time_seconds` in the longer scripts); the row whose epoch is
     `eval` ends a run and holds its `tta_val_acc` and `time_seconds` (airbench's own clock:
     whitening set-up + epochs + the final TTA evaluation, CUDA events). The `warmup` run is
     kept apart; a table without one (airbench96_faster.py) has its compile in run 0's
     time, so with 2 runs or more run 0 is left out of the summary and the ratio (a note,
     and "summary_note" in the JSON, say so; "runs" still lists it); with --runs 1 it is
     kept, and the note says its time includes the compile. The closing
     `Mean: X    Std: Y` line is read too.

It prints each run and the mean / std / min / max of accuracy and time_seconds, and writes
them to --json. With --dlbox-json (a file written by benchmarks/time_to_accuracy.py --json,
same data dir) it prints the ratio dlbox mean time_seconds / airbench mean time_seconds and
both accuracies side by side (and stores them under "comparison", with "notes", each of
which makes the ratio no fair one: airbench stopped or short of its runs, dlbox's accuracy
more than a point below airbench's, other data or hardware, a partial dlbox JSON, a single
run with its compile in its time; and "info_notes", said but no reason to doubt the ratio:
airbench's accuracy more than a point below dlbox's, run 0 left out of the mean).

Killed by --timeout, by SIGTERM or SIGINT, the harness stops the script's process group and
still writes what the runs finished so far produced.

Exit status: 0 every run finished; 1 the script failed, finished fewer runs, or printed a
table the harness cannot read (its JSON is still written, with `table_error`), or --json
could not be written at the end; 2 bad input (checked before the work dir is made, the data
written or the script started: --dlbox-json is read then too, must hold its mean time, and
must not be the --json file); 130 interrupted before the script started.

If the Python that runs the script has no torchvision (airbench imports it for
T.Normalize only, the download never happening here), a minimal stand-in of the harness's own
is put on the script's path (--torchvision-shim auto; "torchvision_shim" in the JSON says so).

--write-fake-script PATH writes a CPU stand-in for airbench (not airbench: a nearest-centroid
classifier that checks the data files' layout and prints a table in airbench's format) to
check this harness on machines without a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from dlbox.benchmark_report import num, pct, summarize, summary_lines, survive_a_closed_stdout
from dlbox.cli.common import path_flag, reject_empty_paths
from dlbox.errors import EXIT_INTERRUPTED, DlboxError, FileWriteError, UsageError
from dlbox.fileio import check_writable, write_json_atomic, write_text_atomic

DATA_SUBDIR = "cifar10"  # airbench's loaders read cifar10/{train,test}.pt under their cwd
RUN_LOOP = re.compile(r"for\s+run\s+in\s+range\(\s*(\d+)\s*\)")
MEAN_LINE = re.compile(r"Mean:\s*(\S+)\s+Std:\s*(\S+)")
TIME_COLUMNS = ("time_seconds", "total_time_seconds")
METRICS = ("tta_val_acc", "val_acc", "time_seconds")


class HarnessError(UsageError):
    """A problem the harness reports as `error: ...` (and `hint: ...`) and exit status 2."""


MAX_TIMEOUT_S = 7 * 24 * 3600.0  # --timeout's most, a week: more is no limit meant


# ---- data -------------------------------------------------------------------------------------

def load_dlbox_splits(data_dir: Path, num_train: int | None = None,
                      num_test: int | None = None) -> tuple[Any, Any]:
    """(train, test) ImageDatasets exactly as dlbox loads them (uint8 [N, 3, H, W], int64)."""
    from dlbox.training.loop import load_split

    # refuse_short: airbench on fewer images than asked, compared with a dlbox run on the
    # number asked for, would be a ratio between different workloads
    return (load_split(data_dir, "train", num_train, refuse_short=True),
            load_split(data_dir, "test", num_test, refuse_short=True))


def airbench_record(dataset: Any) -> dict[str, Any]:
    """airbench's on-disk form of one split: NHWC uint8 images, int64 labels, class names.

    Fresh, contiguous tensors: a view of a larger tensor (a --num-train subset) would make
    torch.save write the whole underlying storage."""
    images = dataset.images.permute(0, 2, 3, 1).contiguous().clone()
    labels = dataset.labels.to(torch.int64).contiguous().clone()
    return {"images": images, "labels": labels, "classes": list(dataset.classes)}


def write_airbench_data(work_dir: Path, train: Any, test: Any) -> dict[str, Any]:
    """Write WORK/cifar10/train.pt and test.pt; returns what was written (counts, sha256)."""
    folder = Path(work_dir) / DATA_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for name, dataset in (("train", train), ("test", test)):
        record = airbench_record(dataset)
        path = folder / f"{name}.pt"
        torch.save(record, path)
        written[name] = {
            "file": f"{DATA_SUBDIR}/{name}.pt", "images": int(record["images"].shape[0]),
            "shape": list(record["images"].shape),
            "images_sha256": hashlib.sha256(record["images"].numpy().tobytes()).hexdigest(),
            "labels_sha256": hashlib.sha256(record["labels"].numpy().tobytes()).hexdigest(),
        }
    return written


# ---- the script -------------------------------------------------------------------------------

def patch_run_count(source: str, runs: int) -> tuple[str, int]:
    """The script's text with its one `for run in range(K)` set to `runs`; returns (text, K)."""
    if runs < 1:
        raise HarnessError(f"--runs must be at least 1, got {runs}", hint="pass --runs 1 or more")
    found = list(RUN_LOOP.finditer(source))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise HarnessError(
            f"cannot set the run count: the script has {what} `for run in range(N)` loop(s) "
            "(airbench94_muon.py ends with `accs = torch.tensor([main(run, model) for run in "
            "range(200)])`); is it an airbench script, or did its last lines change?",
            hint="pass airbench's own script as published (airbench94_muon.py, airbench94.py, "
                 "airbench96_faster.py)")
    match = found[0]
    start, end = match.span(1)
    return source[:start] + str(runs) + source[end:], int(match.group(1))


def read_script(script: Path, runs: int) -> tuple[str, int, str]:
    """The script's text with the run count patched: (text, original count, sha256)."""
    try:
        source = Path(script).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error.strerror
        raise HarnessError(f"--script {script}: cannot read it as a Python script ({reason})",
                           hint="pass airbench's script, e.g. airbench94_muon.py") from None
    patched, original = patch_run_count(source, runs)
    return patched, original, hashlib.sha256(source.encode("utf-8")).hexdigest()


def write_script(script: Path, work_dir: Path, patched: str) -> Path:
    """The patched text as WORK/<the script's name>."""
    target = Path(work_dir) / Path(script).name
    # a new file, never written through a link there (a work dir holding a link to the
    # script would have the script itself rewritten)
    target.unlink(missing_ok=True)
    target.write_text(patched, encoding="utf-8")
    return target


def prepare_script(script: Path, work_dir: Path, runs: int) -> tuple[Path, int, str]:
    """Copy the script into WORK with the run count patched: (path, original count, sha256)."""
    patched, original, sha = read_script(script, runs)
    return write_script(script, work_dir, patched), original, sha


SHIM_INIT = '''"""torchvision stand-in written by benchmarks/airbench_side_by_side.py."""
from . import datasets, transforms  # noqa: F401
__version__ = "0+dlbox-shim"
'''
SHIM_TRANSFORMS = '''import torch


class Normalize:
    """(x - mean) / std per channel of [..., C, H, W], on a copy, as torchvision's does."""

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        out = tensor if self.inplace else tensor.clone()
        return out.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
'''
SHIM_DATASETS = '''class CIFAR10:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the torchvision stand-in cannot download CIFAR-10: the harness "
                           "should have written cifar10/train.pt and test.pt")
'''


def write_torchvision_shim(folder: Path) -> Path:
    """A minimal `torchvision` package (transforms.Normalize, datasets.CIFAR10 that refuses)."""
    package = Path(folder) / "torchvision"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(SHIM_INIT)
    (package / "transforms.py").write_text(SHIM_TRANSFORMS)
    (package / "datasets.py").write_text(SHIM_DATASETS)
    return Path(folder)


def has_torchvision(python: str) -> bool:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        try:
            import torchvision  # noqa: F401
            return True
        except Exception:  # missing, or built for another torch
            return False
    probe = subprocess.run([python, "-c", "import torchvision"], capture_output=True,
                           timeout=120, check=False)
    return probe.returncode == 0


VERSIONS_PROBE = """\
import json, platform
try:
    import torch
    found = {"torch": torch.__version__, "cuda": torch.version.cuda,
             "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
except Exception:
    found = {"torch": None, "cuda": None, "gpu": None}
print(json.dumps({"python": platform.python_version(), **found}))
"""


def script_versions(python: str) -> dict[str, Any]:
    """Python, torch, CUDA and the GPU as the Python that runs the script sees them: with
    --python it is another environment, and the harness's own torch would mislabel the run."""
    try:
        probe = subprocess.run([python, "-c", VERSIONS_PROBE], capture_output=True, text=True,
                               timeout=120, check=False)
        return dict(json.loads(probe.stdout.strip().splitlines()[-1]))
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {"python": None, "torch": None, "cuda": None, "gpu": None}


# ---- running ----------------------------------------------------------------------------------

class ScriptRun:
    """The script as a subprocess in its own process group; output streamed and kept."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str],
                 timeout: float | None, echo: bool = True) -> None:
        self.command, self.cwd, self.env = command, cwd, env
        self.timeout, self.echo = timeout, echo
        self.lines: list[str] = []
        self.stamps: list[float] = []  # seconds since the start, one per line
        self.stopped_by: str | None = None
        self.process: subprocess.Popen[str] | None = None

    def stop(self, why: str) -> None:
        """End the script's whole process group (compile workers too), if it still runs."""
        process = self.process
        if process is None:  # not started yet: it never will be
            self.stopped_by = self.stopped_by or why
            return
        if process.poll() is None:
            self.stopped_by = self.stopped_by or why
            try:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def run(self) -> tuple[int, float]:
        start = time.perf_counter()
        if self.stopped_by is not None:
            return -1, 0.0
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
        timer = None
        if self.timeout is not None:
            timer = threading.Timer(self.timeout, self.stop, args=("timeout",))
            timer.daemon = True
            timer.start()
        try:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                self.stamps.append(time.perf_counter() - start)
                if self.echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            rc = self.process.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self.stop("harness exit")  # a no-op when it has ended
        return rc, time.perf_counter() - start


# ---- reading its table ------------------------------------------------------------------------

def _cells(line: str) -> list[str] | None:
    text = line.strip()
    if not (text.startswith("|") and text.endswith("|")) or len(text) < 2:
        return None
    return [cell.strip() for cell in text[1:-1].split("|")]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def parse_output(lines: list[str], stamps: list[float] | None = None) -> dict[str, Any]:
    """The runs in airbench's table, the warm-up run apart, and its `Mean: / Std:` line.

    A run is complete when its `eval` row has been printed; a run cut off before that is
    counted in `incomplete_runs` and nowhere else."""
    columns: list[str] | None = None
    time_column = None
    runs: list[dict[str, Any]] = []
    warmup: dict[str, Any] | None = None
    current: str | None = None
    epoch_rows = 0
    started: set[str] = set()
    mean_line: dict[str, float | None] | None = None
    for index, line in enumerate(lines):
        found = MEAN_LINE.search(line)
        if found:
            mean_line = {"mean": _number(found.group(1)), "std": _number(found.group(2))}
            continue
        cells = _cells(line)
        if cells is None:
            continue
        if columns is None:
            if "run" in cells and "epoch" in cells:
                columns = cells
                time_column = next((c for c in TIME_COLUMNS if c in cells), None)
                if time_column is None or "tta_val_acc" not in cells:
                    raise HarnessError(
                        f"table header without tta_val_acc / time_seconds: {line!r}",
                        hint="the script prints another table than airbench's: pass airbench's "
                             "own script as published")
            continue
        if len(cells) != len(columns) or cells == columns:
            continue
        row = dict(zip(columns, cells, strict=True))
        if row["run"]:
            current, epoch_rows = row["run"], 0
            started.add(current)
        if current is None:
            continue
        if row["epoch"] != "eval":
            epoch_rows += 1
            continue
        result = {
            "run": int(current) if current.isdigit() else current,
            "tta_val_acc": _number(row["tta_val_acc"]),
            "val_acc": _number(row.get("val_acc", "")),
            "train_acc": _number(row.get("train_acc", "")),
            "time_seconds": _number(row[time_column]),  # type: ignore[index]
            "epochs": epoch_rows,
            "finished_at_s": round(stamps[index], 3) if stamps else None,
        }
        if current == "warmup":
            warmup = result
        else:
            runs.append(result)
        started.discard(current)
        current = None
    return {"columns": columns, "time_column": time_column, "runs": runs, "warmup": warmup,
            "incomplete_runs": sorted(started), "mean_line": mean_line}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {key: summarize([r.get(key) for r in runs]) for key in METRICS}


def summary_note_voids_ratio(runs_in_table: int) -> bool:
    """Whether summary_runs' note makes the ratio no fair one: with 1 run its time holds the
    compile (the ratio flatters dlbox); with 2 or more run 0 is left out, and the note is
    information only (review: it failed every airbench96_faster ratio)."""
    return runs_in_table < 2


def summary_runs(parsed: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The runs the summary and the ratio rest on, and a note when one is left out: without
    a warm-up run (airbench96_faster.py) run 0's time includes the compile, so with 2 runs
    or more it is left out (review: it was averaged in, and flattered dlbox's ratio); with
    1 run it is all there is, and the note says its time includes the compile."""
    runs = parsed["runs"]
    if parsed["warmup"] is not None or not runs:
        return runs, None
    if len(runs) == 1:  # nothing to leave it out for: said, not averaged in silently (review)
        return runs, (f"no warm-up run in the table: the only run (run {runs[0]['run']}) has "
                      "the compile in its time, so the mean and the ratio overstate airbench's "
                      "time (--runs 2 or more leaves it out)")
    return runs[1:], (f"no warm-up run in the table: run {runs[0]['run']} (its time includes "
                      "the compile) is left out of the summary and the ratio")


# ---- side by side -----------------------------------------------------------------------------

def _mean(doc: dict[str, Any], key: str) -> float | None:
    value = ((doc.get("summary") or {}).get(key) or {}).get("mean")
    return None if value is None else float(value)


def partial_notes(dlbox_doc: dict[str, Any]) -> list[str]:
    """A note when the dlbox JSON is what an interrupted benchmark kept (its "partial")."""
    partial = dlbox_doc.get("partial")
    if not isinstance(partial, dict):
        return []
    return [f"the dlbox JSON is partial: {partial.get('runs_finished')} of "
            f"{partial.get('runs_asked')} runs finished ({partial.get('interrupted')}); its "
            "mean rests on those"]


ACCURACY_GAP = 0.01  # a point of accuracy apart: the ratio is no longer one of equal results


def accuracy_notes(dlbox_doc: dict[str, Any],
                   airbench_summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(notes, info_notes): a note when the two mean accuracies (with TTA, else without) are
    more than a point apart (review: 44.50 % against 100.00 % read as a plain ratio of
    12.167). Where dlbox's is the lower one the ratio is void (dlbox must reach airbench's
    accuracy for its time to count); where airbench's is, dlbox is more accurate in its time,
    and the note is information (review: a faster and more accurate dlbox failed the ratio)."""
    for dlbox_key, airbench_key, what in (("tta_accuracy", "tta_val_acc", "with TTA"),
                                          ("accuracy", "val_acc", "without TTA")):
        ours = _mean(dlbox_doc, dlbox_key)
        theirs = (airbench_summary.get(airbench_key) or {}).get("mean")
        if ours is None or theirs is None:
            continue
        if abs(ours - theirs) <= ACCURACY_GAP:
            return [], []
        if ours < theirs:
            return [f"the accuracies differ ({what}: dlbox {pct(ours)}, airbench "
                    f"{pct(theirs)}): dlbox did not reach the other's, so the ratio is not of "
                    "times to the same accuracy"], []
        return [], [f"the accuracies differ ({what}: dlbox {pct(ours)}, airbench "
                    f"{pct(theirs)}): airbench did not reach the other's; dlbox reached a "
                    "higher accuracy in its time"]
    return [], []


def compare(airbench_summary: dict[str, Any], dlbox_doc: dict[str, Any],
            stopped_by: str | None = None, runs_requested: int | None = None,
            runs_finished: int | None = None) -> dict[str, Any]:
    """dlbox (time_to_accuracy.py's JSON) next to airbench's summary: the time ratio and both
    accuracies. ratio = dlbox mean time_seconds / airbench mean time_seconds (< 1: dlbox faster).
    `dlbox_doc` is as read_dlbox_json returns it, so it has its mean time. `notes` (each a
    reason the ratio is no fair one) says when airbench was stopped (`stopped_by`) or
    finished fewer runs than asked, and when dlbox's accuracy is more than a point below
    airbench's; `info_notes` when airbench's is more than a point below dlbox's."""
    dlbox_time = _mean(dlbox_doc, "time_seconds")
    airbench_time = (airbench_summary.get("time_seconds") or {}).get("mean")
    ratio = dlbox_time / airbench_time if airbench_time else None
    notes = []
    if runs_requested is not None and runs_finished is not None:
        finished = f"{runs_finished} of {runs_requested} runs asked"
        if stopped_by is not None:
            notes.append(f"airbench was stopped ({stopped_by}): {finished} finished; the ratio "
                         "rests on those")
        elif runs_finished < runs_requested:
            notes.append(f"airbench finished {finished}; the ratio rests on those")
    void, info_notes = accuracy_notes(dlbox_doc, airbench_summary)
    notes += void
    return {
        # the runs behind dlbox's mean: a failed one (NaN loss) is in "runs" but not in it
        "dlbox": {"model": dlbox_doc.get("model"), "device": dlbox_doc.get("device"),
                  "runs": sum(1 for r in dlbox_doc.get("runs") or [] if not r.get("failed")),
                  "tta_accuracy_mean": _mean(dlbox_doc, "tta_accuracy"),
                  "accuracy_mean": _mean(dlbox_doc, "accuracy"),
                  "time_seconds_mean": dlbox_time,
                  "num_train": (dlbox_doc.get("settings") or {}).get("num_train"),
                  "num_test": (dlbox_doc.get("settings") or {}).get("num_test"),
                  "data_checksum": (dlbox_doc.get("environment") or {}).get("data_checksum"),
                  "data_dir": (dlbox_doc.get("environment") or {}).get("data_dir")},
        "airbench": {"runs": (airbench_summary.get("tta_val_acc") or {}).get("n", 0),
                     "tta_accuracy_mean": (airbench_summary.get("tta_val_acc") or {}).get("mean"),
                     "accuracy_mean": (airbench_summary.get("val_acc") or {}).get("mean"),
                     "time_seconds_mean": airbench_time},
        "time_seconds_ratio": ratio,
        "notes": notes,  # each makes the ratio no fair one
        "info_notes": info_notes,  # said, but no reason to doubt the ratio
    }


def comparison_lines(comparison: dict[str, Any], script_name: str) -> list[str]:
    d, a = comparison["dlbox"], comparison["airbench"]
    rows = [("runs", str(d["runs"]), str(a["runs"])),
            ("accuracy with TTA (mean)", pct(d["tta_accuracy_mean"]), pct(a["tta_accuracy_mean"])),
            ("accuracy without TTA", pct(d["accuracy_mean"]), pct(a["accuracy_mean"])),
            ("time_seconds (mean)", num(d["time_seconds_mean"], ".3f"),
             num(a["time_seconds_mean"], ".3f"))]
    head = f"{'':<26}{'dlbox ' + str(d['model'] or ''):>18}{script_name:>22}"
    out = [head] + [f"{label:<26}{left:>18}{right:>22}" for label, left, right in rows]
    ratio = num(comparison["time_seconds_ratio"], ".3f")
    out.append(f"time_seconds ratio dlbox / airbench: {ratio}")
    for note in comparison.get("notes", []):
        out.append(f"note: {note}")
    for note in comparison.get("info_notes", []):
        out.append(f"note (information): {note}")
    return out


def same_data_notes(comparison: dict[str, Any], num_train: int, num_test: int,
                    data_checksum: str | None, data_dir: str | None = None) -> list[str]:
    d = comparison["dlbox"]
    notes = []
    if d["num_train"] is not None and (d["num_train"], d["num_test"]) != (num_train, num_test):
        notes.append(f"different data sizes: dlbox {d['num_train']}/{d['num_test']}, airbench "
                     f"{num_train}/{num_test} train/test images")
    if d["data_checksum"] and data_checksum:
        if d["data_checksum"] != data_checksum:
            notes.append("the data dirs' checksums differ: not the same data")
    elif d.get("data_dir") and data_dir and d["data_dir"] != data_dir:
        # converted or synthetic data has no archive checksum: the folders are all there is
        notes.append(f"different data dirs: dlbox read {d['data_dir']}, the script's data came "
                     f"from {data_dir} (no checksum tells whether they hold the same images)")
    return notes


def same_hardware_notes(dlbox_doc: dict[str, Any], script_device: str | None) -> list[str]:
    """A note when the dlbox JSON was measured on another device than the script ran on: a
    ratio between a CPU run and a GPU run (or two GPU models) says nothing about dlbox."""
    dlbox_device = (dlbox_doc.get("environment") or {}).get("device_name")
    if dlbox_device and script_device and dlbox_device != script_device:
        return [f"different hardware: dlbox ran on {dlbox_device}, the script on "
                f"{script_device}: the time ratio compares machines, not code"]
    return []


# ---- the CPU stand-in -------------------------------------------------------------------------

FAKE_SCRIPT = '''"""Fake airbench for checking benchmarks/airbench_side_by_side.py without a GPU.

NOT airbench: a nearest-centroid classifier on the CPU. It checks that cifar10/train.pt and
cifar10/test.pt have airbench's layout, and prints its results in airbench's table format.
"""
import sys
import time

import torch

EXPECT = {"images": torch.uint8, "labels": torch.int64}


def load(name):
    data = torch.load(f"cifar10/{name}.pt", weights_only=True)
    for key, dtype in EXPECT.items():
        if data[key].dtype != dtype:
            sys.exit(f"fake-airbench: {name}.pt {key} is {data[key].dtype}, not {dtype}")
    images, labels = data["images"], data["labels"]
    if images.dim() != 4 or images.shape[1:] != (32, 32, 3):
        sys.exit(f"fake-airbench: {name}.pt images are {tuple(images.shape)}, not [N, 32, 32, 3]")
    if labels.shape != (images.shape[0],) or len(data["classes"]) != 10:
        sys.exit(f"fake-airbench: {name}.pt labels or classes do not match")
    return images.permute(0, 3, 1, 2).float().div(255).flatten(1), labels


def row(cells, widths):
    print("".join("|  %s  " % str(c).rjust(w) for c, w in zip(cells, widths)) + "|")


def main(run, train, test, widths):
    (x, y), (tx, ty) = train, test
    if run == "warmup":
        y = torch.randint(0, 10, y.shape)
    generator = torch.Generator().manual_seed(0 if run == "warmup" else 1 + run)
    start = time.perf_counter()
    for epoch in range(2):
        keep = torch.rand(len(x), generator=generator) < 0.5 + 0.25 * epoch
        centroids = torch.stack([x[keep & (y == c)].mean(0) if (keep & (y == c)).any()
                                 else x.mean(0) for c in range(10)])
        val = (torch.cdist(tx, centroids).argmin(1) == ty).float().mean().item()
        train_acc = (torch.cdist(x[:256], centroids).argmin(1) == y[:256]).float().mean().item()
        row([run if epoch == 0 else "", epoch, "%.4f" % train_acc, "%.4f" % val, "",
             "%.4f" % (time.perf_counter() - start)], widths)
    tta = (torch.cdist(tx, centroids).argmin(1) == ty).float().mean().item()
    seconds = time.perf_counter() - start
    row(["", "eval", "%.4f" % train_acc, "%.4f" % val, "%.4f" % tta, "%.4f" % seconds], widths)
    print("-" * 80)
    return tta


if __name__ == "__main__":
    train, test = load("train"), load("test")
    print(f"fake-airbench: layout ok, {len(train[1])} train / {len(test[1])} test images")
    names = ["run   ", "epoch", "train_acc", "val_acc", "tta_val_acc", "time_seconds"]
    widths = [len(n) for n in names]
    print("-" * 80)
    row(names, widths)
    print("-" * 80)
    main("warmup", train, test, widths)
    accs = torch.tensor([main(run, train, test, widths) for run in range(200)])
    print("Mean: %.4f    Std: %.4f" % (accs.mean(), accs.std()))
'''


def write_fake_script(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--write-fake-script {path} is a folder",
                         hint=f"pass a file path, e.g. {path / 'fake_airbench.py'}")
    try:
        write_text_atomic(path, FAKE_SCRIPT)
    except FileWriteError as error:  # its hint named dlbox's flags (--run-dir), not this one
        raise FileWriteError(path, error.reason, kind=error.kind,
                             hint="pass --write-fake-script a path in a folder you can write "
                                  "to, or free some disk space there") from None
    return path


def write_results(path: Path, document: dict[str, Any]) -> None:
    """--json's file, written at the end; a failure names --json (not dlbox's --run-dir)."""
    try:
        write_json_atomic(Path(path), document)
    except FileWriteError as error:
        raise FileWriteError(path, error.reason, kind=error.kind,
                             hint="pass --json a path in a folder you can write to, or free "
                                  "some disk space there; the figures are printed above") from None


# ---- main -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # the rest of the docstring (what each figure is, how it is timed) is the epilog: --help
    # is where a user looks for what the numbers mean
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", type=path_flag, help="the airbench script to run")
    parser.add_argument("--runs", type=int, default=10, help="runs after its warm-up (default 10)")
    parser.add_argument("--data", metavar="DIR",
                        help="data dir, as dlbox's --data (default: $DLBOX_DATA, else the cache)")
    parser.add_argument("--num-train", type=int, metavar="N", help="first N training images")
    parser.add_argument("--num-test", type=int, metavar="N", help="first N test images")
    parser.add_argument("--python", default=sys.executable, help="Python that runs the script "
                        "(default: this one)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="stop the script after S seconds (what finished is still reported)")
    parser.add_argument("--torchvision-shim", choices=("auto", "always", "never"), default="auto",
                        help="auto: a minimal torchvision stand-in only where none imports")
    parser.add_argument("--keep-work-dir", type=path_flag, metavar="DIR",
                        help="work in DIR and leave it (default: a temporary dir, removed)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the script's output")
    parser.add_argument("--dlbox-json", type=path_flag, metavar="FILE",
                        help="benchmarks/time_to_accuracy.py --json output to compare with")
    parser.add_argument("--json", type=path_flag, metavar="OUT", help="write the results here")
    parser.add_argument("--write-fake-script", type=path_flag, metavar="PATH",
                        help="write the CPU stand-in for airbench to PATH and exit")
    args = parser.parse_args(argv)
    # `--json "$OUT"` with OUT unset: refused, not the current folder
    reject_empty_paths(args, ("script",), required=True)
    reject_empty_paths(args, ("data", "keep_work_dir", "dlbox_json", "json",
                              "write_fake_script"))
    if args.json is not None and args.dlbox_json is not None and \
            args.json.expanduser().resolve() == args.dlbox_json.expanduser().resolve():
        raise UsageError(f"--json and --dlbox-json are the same file ({args.json}): the "
                         "results would overwrite the dlbox measurement they are compared with",
                         hint="pass --json another file, e.g. --json airbench.json")
    if args.write_fake_script is None and args.script is None:
        raise UsageError("--script is required",
                         hint="pass airbench's script, e.g. --script airbench94_muon.py (or "
                              "--write-fake-script PATH for a CPU stand-in to try it with)")
    # Checked before the data is written and the script's minutes: --num-test 0 ran and
    # reported nan accuracy with exit 0, --num-train -5 took all but 5 images.
    for flag, value in (("--runs", args.runs), ("--num-train", args.num_train),
                        ("--num-test", args.num_test)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}",
                             hint=f"pass {flag} 1 or more" + (
                                 "" if flag == "--runs" else f", or leave {flag} out for all"))
    # inf and 1e300 are no time: the timer thread failed on them and the limit was lost
    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"--timeout must be more than 0 seconds and at most {MAX_TIMEOUT_S:g}, "
                         f"got {args.timeout:g}",
                         hint="pass the seconds the script may take, or leave --timeout out")
    found = shutil.which(args.python)
    if args.write_fake_script is None and found is None:
        raise UsageError(f"--python {args.python}: no such program",
                         hint="pass the path of the Python that has airbench's torch")
    if found is not None:  # absolute: the script runs in its own work dir (--python .venv/...)
        args.python = str(Path(found).absolute())
    work = args.keep_work_dir
    if work is not None and work.expanduser().exists() and not work.expanduser().is_dir():
        raise UsageError(f"--keep-work-dir {work} is a file, not a folder",
                         hint="pass a folder (it is made if missing)")
    if work is not None and args.script is not None and \
            work.expanduser().resolve() == args.script.expanduser().resolve().parent:
        # the patched copy (another run count) is written there under the script's name
        raise UsageError(f"--keep-work-dir {work} holds the script {args.script.name}, which "
                         "its patched copy would replace",
                         hint="pass a folder of its own, e.g. --keep-work-dir airbench-work")
    return args


def read_dlbox_json(path: Path) -> dict[str, Any]:
    """time_to_accuracy.py's JSON, read before the script runs (a wrong path found after
    minutes of compiling costs them): UsageError when it cannot be read or has no time."""
    try:
        document = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise UsageError(f"--dlbox-json {path}: cannot read it ({reason})",
                         hint="pass the --json file of benchmarks/time_to_accuracy.py") from None
    try:
        time_mean = _mean(document, "time_seconds") if isinstance(document, dict) else None
    except (AttributeError, TypeError, ValueError):  # a summary of another shape
        time_mean = None
    if time_mean is None:
        raise UsageError(f"--dlbox-json {path} has no summary.time_seconds.mean",
                         hint="pass the --json file of benchmarks/time_to_accuracy.py with "
                              "the speedrun model")
    kind = document.get("benchmark") if isinstance(document, dict) else None
    if kind != "time_to_accuracy":  # airbench.json beside speedrun.json: a ratio of nothing
        raise UsageError(f"--dlbox-json {path} is not time_to_accuracy.py's output"
                         + (f" ({kind}'s)" if isinstance(kind, str) else ""),
                         hint="pass the --json file of benchmarks/time_to_accuracy.py with "
                              "the speedrun model")
    return document


def run_line(r: dict[str, Any]) -> str:
    return (f"run {r['run']}: tta_val_acc {pct(r['tta_val_acc'])}  val_acc {pct(r['val_acc'])}  "
            f"time_seconds {num(r['time_seconds'], '.4f')}  ({r['epochs']} epochs, done at "
            f"{num(r['finished_at_s'], '.1f')} s)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_fake_script is not None:
        print(f"wrote {write_fake_script(args.write_fake_script)}")
        return 0
    script = args.script.expanduser().resolve()
    if not script.is_file():
        raise UsageError(f"no script at {script}",
                         hint="pass the path of airbench's script, e.g. airbench94_muon.py")
    if args.json:
        check_writable(args.json)  # before the script's minutes, not after them
    dlbox_doc = read_dlbox_json(args.dlbox_json) if args.dlbox_json is not None else None
    from dlbox.data.paths import resolve_data_dir
    from dlbox.training.manifest import build_manifest, data_checksum

    data_dir = resolve_data_dir(args.data).resolve()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    environment = build_manifest(device)  # the host: CPU, GPU, driver, platform, git
    # The inputs first, then the work dir: a script that is not airbench's (no run loop) or
    # data that is not there left WORK, or WORK/<script>, behind (review)
    started = time.perf_counter()  # prepare_seconds: the script, the data read and written
    patched, original_runs, script_sha = read_script(script, args.runs)
    train, test = load_dlbox_splits(data_dir, args.num_train, args.num_test)
    if args.keep_work_dir is not None:
        work_dir = args.keep_work_dir.expanduser().resolve()
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--keep-work-dir {args.keep_work_dir}: cannot make it "
                             f"({error.strerror or error})",
                             hint="pass a folder you can write to") from None
    else:
        work_dir = Path(tempfile.mkdtemp(prefix="airbench-side-by-side-"))
    run: ScriptRun | None = None

    def on_signal(signum: int, frame: Any) -> None:
        if run is not None:
            run.stop(signal.Signals(signum).name)
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        target = write_script(script, work_dir, patched)
        written = write_airbench_data(work_dir, train, test)
        prepare_seconds = time.perf_counter() - started
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        source = script.read_text(encoding="utf-8")
        shim = False
        if "torchvision" in source and (args.torchvision_shim == "always" or (
                args.torchvision_shim == "auto" and not has_torchvision(args.python))):
            shim_dir = write_torchvision_shim(work_dir / "_torchvision_shim")
            env["PYTHONPATH"] = os.pathsep.join(
                [str(shim_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            shim = True
            print("note: no torchvision for that Python: using the harness's stand-in "
                  "(transforms.Normalize)", flush=True)
        versions = script_versions(args.python)
        print(f"{args.python}: Python {versions['python']}, torch {versions['torch']}, CUDA "
              f"{versions['cuda']}, GPU {versions['gpu']}; host {environment['device_name']}, "
              f"{environment['cpu_cores']} CPU cores", flush=True)
        print(f"airbench side by side: {script.name} (run count {original_runs} -> {args.runs}) "
              f"on {data_dir}: {len(train)} train / {len(test)} test images, work dir "
              f"{work_dir}, {prepare_seconds:.1f} s to prepare", flush=True)
        run = ScriptRun([args.python, str(target)], work_dir, env, args.timeout,
                        echo=not args.quiet)
        rc, wall = run.run()
        try:
            parsed = parse_output(run.lines, run.stamps)
        except HarnessError as error:  # the script ran: a failed benchmark (1), with its JSON
            print(f"error: cannot read the script's table: {error}", file=sys.stderr)
            print(f"hint: {error.hint}", file=sys.stderr)
            parsed = {"runs": [], "time_column": None, "warmup": None,
                      "incomplete_runs": None, "mean_line": None, "table_error": str(error)}
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if args.keep_work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)

    runs = parsed["runs"]
    counted, summary_note = summary_runs(parsed)
    summary = summarize_runs(counted)
    stopped = f" (stopped: {run.stopped_by})" if run.stopped_by else ""
    print(f"{script.name}: exit status {rc}{stopped}, {len(runs)}/{args.runs} run(s) complete, "
          f"{wall:.1f} s end to end")
    for r in runs:
        print("  " + run_line(r))
    print("\n".join(summary_lines(summary, len(counted), decimals=4, unit=" s")))
    if summary_note:
        print(f"note: {summary_note}")
    if parsed["mean_line"]:
        own = parsed["mean_line"]
        print(f"  its own line: Mean {own['mean']}  Std {own['std']}")

    checksum = data_checksum(data_dir)
    document: dict[str, Any] = {
        "benchmark": "airbench_side_by_side",
        "script": str(script), "script_name": script.name, "script_sha256": script_sha,
        "runs_requested": args.runs, "script_run_count": original_runs,
        "data_dir": str(data_dir), "data_checksum": checksum,
        "num_train": len(train), "num_test": len(test), "data_files": written,
        # the script's Python and torch (not the harness's, which may differ: --python)
        "python": args.python, "python_version": versions["python"],
        "torch": versions["torch"], "cuda": versions["cuda"], "gpu": versions["gpu"],
        "environment": environment, "torchvision_shim": shim,
        "returncode": rc, "stopped_by": run.stopped_by, "timeout": args.timeout,
        "prepare_seconds": round(prepare_seconds, 3), "wall_seconds": round(wall, 3),
        "time_column": parsed["time_column"], "warmup": parsed["warmup"], "runs": runs,
        "incomplete_runs": parsed["incomplete_runs"], "summary": summary,
        "summary_note": summary_note,
        "mean_line": parsed["mean_line"], "table_error": parsed.get("table_error"),
        "output_tail": run.lines[-40:],
    }
    status = 0 if rc == 0 and len(runs) == args.runs else 1
    if dlbox_doc is not None:  # checked before the script ran (read_dlbox_json)
        comparison = compare(summary, dlbox_doc, run.stopped_by, args.runs, len(runs))
        if summary_note:  # run 0 left out: information; a single run with its compile: void
            comparison["notes" if summary_note_voids_ratio(len(runs)) else "info_notes"] += [
                summary_note]
        comparison["notes"] += same_data_notes(comparison, len(train), len(test), checksum,
                                               str(data_dir))
        comparison["notes"] += same_hardware_notes(
            dlbox_doc, versions["gpu"] or environment["device_name"])
        comparison["notes"] += partial_notes(dlbox_doc)
        comparison["dlbox_json"] = str(args.dlbox_json)
        document["comparison"] = comparison
        print("\n".join(comparison_lines(comparison, script.name)))
    if args.json:
        try:
            write_results(args.json, document)
        except FileWriteError as error:  # after the runs: a failed benchmark (1), not bad input
            print("\n".join(error.report_lines()), file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    survive_a_closed_stdout()  # `... | head`: the script (minutes of compile) and --json go on
    try:
        sys.exit(main())
    except DlboxError as error:  # the harness's own, dlbox's loader (no data), the --json write
        print("\n".join(error.report_lines()), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C while the data is written, before the script starts
        print("\ninterrupted before the script started: nothing run, no JSON written",
              file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
