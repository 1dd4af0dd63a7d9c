"""`dlbox evaluate RUN_DIR`: accuracy overall and per class, predictions.csv, confusion matrix."""

from __future__ import annotations

import argparse
import json
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
    from dlbox.text import tell
    from dlbox.training.checkpoint import checkpoint_path, read_run_config
    from dlbox.training.evaluate import (
        check_report_checkpoint,
        evaluate_run,
        output_folder,
        unfinished_note,
    )

    # Empty paths are refused before anything is read or written (the run's lock file
    # included): RUN_DIR "" would be ".", --data "" the default data dir.
    reject_empty_run_dir(args)
    reject_empty_paths(args, ("data", "output"))
    reject_empty_paths(args, ("device",), kind="value")
    checkpoint_path(args.run_dir, args.checkpoint)  # --checkpoint "": its usage error, now
    data_dir = Path(args.data) if args.data else None
    output = output_folder(args.output, args.run_dir)  # None: the run dir's own report
    if output is None:
        check_report_checkpoint(args.run_dir, args.checkpoint)  # another checkpoint: --output
    # Into the run dir, evaluate_run checks it is writable and holds the run's lock: an
    # --output evaluation reads the checkpoint, which training replaces whole, and may run
    # while the run trains.
    metrics = evaluate_run(args.run_dir, data_dir=data_dir, device=args.device,
                           quiet=args.json, tta=args.tta, checkpoint=args.checkpoint,
                           output=output)  # SIGTERM: main()'s handler, exit 143
    if args.checkpoint == "last" and (note := unfinished_note(
            args.run_dir, getattr(read_run_config(args.run_dir), "epochs", None), metrics)):
        tell(note)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        written = [*metrics.get("files", {}).values()]
        if output is None:
            written.append("metrics.json")
        print(f"wrote {', '.join(written)} in {output or args.run_dir}")
    return EXIT_OK
