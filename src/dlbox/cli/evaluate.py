"""`dlbox evaluate RUN_DIR`: accuracy overall and per class, predictions.csv, confusion matrix."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from dlbox.cli.common import path_flag, reject_empty_paths, reject_empty_run_dir
from dlbox.errors import EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run on the test set (accuracy, per class, confusion matrix)",
        description=(
            "Predict every test image with the run's model and write predictions.csv, "
            "confusion_matrix.json, confusion_matrix.png, training_curves.png (when the run has "
            "a history) and the test metrics (metrics.json) "
            "into the run directory, or with --output into another folder."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=path_flag,
                        help="the directory `dlbox train` wrote")
    parser.add_argument("--data", metavar="DIR", default=None, type=path_flag,
                        help="data dir holding the test set (default: the one the run used; "
                             "when that is a container's /data not on this machine, or the "
                             "run recorded none, $DLBOX_DATA, else the user cache)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--checkpoint", default="last",
                        help="which checkpoint of the run to evaluate (default: last); any "
                             "other needs --output: the run's report is its last's")
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument("--tta", dest="tta", action="store_true", default=None,
                     help="test-time augmentation: the model's own (speedrun: 6 views, flips and "
                          "1-pixel shifts), else each image averaged with its mirror")
    tta.add_argument("--no-tta", dest="tta", action="store_false",
                     help="no test-time augmentation (default unless the run's config asks)")
    parser.add_argument("--output", metavar="DIR", default=None, type=path_flag,
                        help="write predictions.csv, the confusion matrix and the metrics "
                             "(evaluation.json) into DIR, leaving the run directory as it "
                             "is: for an evaluation on other data (default: the run "
                             "directory, its metrics.json updated)")
    parser.add_argument("--json", action="store_true",
                        help="print the metrics as JSON on stdout (and nothing else there)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlbox.training.checkpoint import checkpoint_path
    from dlbox.training.evaluate import check_report_checkpoint, evaluate_run

    # Empty paths are refused before anything is read or written (the run's lock file
    # included): RUN_DIR "" would be ".", --data "" the default data dir.
    reject_empty_run_dir(args)
    reject_empty_paths(args, ("data", "output"))
    reject_empty_paths(args, ("device",), kind="value")
    checkpoint_path(args.run_dir, args.checkpoint)  # --checkpoint "": its usage error, now
    data_dir = Path(args.data) if args.data else None
    output = _output_folder(args.output, args.run_dir)
    if output is None:
        check_report_checkpoint(args.run_dir, args.checkpoint)  # another checkpoint: --output
        _check_run_dir_writable(args.run_dir)  # before the evaluation's minutes, not after
    # The run's lock only when its files are written: an --output evaluation reads the
    # checkpoint, which training replaces whole, and may run while the run trains.
    with _not_while_training(args.run_dir) if output is None else contextlib.nullcontext():
        metrics = evaluate_run(args.run_dir, data_dir=data_dir, device=args.device,
                               quiet=args.json, tta=args.tta, checkpoint=args.checkpoint,
                               output=output)  # SIGTERM: main()'s handler, exit 143
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        written = [*metrics.get("files", {}).values()]
        if output is None:
            written.append("metrics.json")
        print(f"wrote {', '.join(written)} in {output or args.run_dir}")
    return EXIT_OK


def _output_folder(output: Path | None, run_dir: Path) -> Path | None:
    """--output as a folder to write into; None for the run dir itself (the default)."""
    from dlbox.training.evaluate import check_output_folder

    if output is None:
        return None
    check_output_folder(output, run_dir)  # before the lock and the evaluation
    if output.exists() and run_dir.exists() and output.resolve() == run_dir.resolve():
        return None
    return output


def _check_run_dir_writable(run_dir: Path) -> None:
    """The run dir is where the report goes without --output: one that cannot be written (a
    read-only mount of shared runs) is refused now, with --output as the way out; it failed
    after the whole evaluation, its metrics lost. A missing run dir is evaluate_run's error."""
    import errno

    from dlbox.errors import FileWriteError
    from dlbox.fileio import folder_write_error
    from dlbox.text import make_writable, shell_quote

    error = folder_write_error(run_dir)
    if error is None or isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return
    elsewhere = f"write the report elsewhere: dlbox evaluate {shell_quote(run_dir)} --output DIR"
    raise FileWriteError(run_dir, f"the run's folder is not writable ({error.strerror})",
                         hint=elsewhere if error.errno == errno.EROFS  # chmod cannot help
                         else f"{elsewhere}; or {make_writable(run_dir)}")


@contextlib.contextmanager
def _not_while_training(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while evaluating: `dlbox train` rewrites metrics.json after every
    epoch, so an evaluation written meanwhile could drop an epoch from its history (or the
    trainer the evaluation). A run dir that is not one yet is left to evaluate_run's errors."""
    from dlbox.text import shell_quote
    from dlbox.training.loop import run_lock

    if not (run_dir / "config.json").is_file():
        yield
        return
    elsewhere = f"or now, into another folder: dlbox evaluate {shell_quote(run_dir)} --output DIR"
    with run_lock(run_dir, busy_hint="evaluate it when training ends (training evaluates "
                                     f"its last epoch itself), {elsewhere}",
                  evaluating=f"run it again when that ends, {elsewhere}"):
        yield
