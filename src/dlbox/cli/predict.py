"""`dlbox predict RUN_DIR IMAGE...`: the label and top-k probabilities for the user's images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlbox.cli.common import path_flag, reject_empty_paths, reject_empty_run_dir
from dlbox.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, UsageError
from dlbox.text import plural, shell_quote, shown_name

if TYPE_CHECKING:
    from dlbox.training.predict import PredictionResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify your own images with a trained run",
        description=(
            "Print the predicted label and the top-k class probabilities for each image "
            "(PNG, JPEG or any format Pillow reads; any size and mode, resized to 32x32); "
            "a folder stands for the image files in it and its sub-folders. "
            "A file that cannot be read gets `error: PATH: reason` on stderr and the others "
            "still get predictions. Exit code: 0 all succeeded, 3 some failed, 1 all failed."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=path_flag,
                        help="the directory `dlbox train` wrote")
    parser.add_argument("images", metavar="IMAGE", nargs="+",
                        help="image files to classify, or folders of them")
    parser.add_argument("--top-k", type=int, default=3, metavar="K",
                        help="how many classes to list per image (default: 3)")
    parser.add_argument("--fit", choices=("crop", "stretch"), default="crop",
                        help="make the image square by cropping its centre (default) or by "
                             "stretching the whole image")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--checkpoint", default="last",
                        help="which checkpoint of the run to use (default: last)")
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument("--tta", dest="tta", action="store_true", default=None,
                     help="test-time augmentation: the model's own (speedrun: 6 views, flips and "
                          "1-pixel shifts), else each image averaged with its mirror")
    tta.add_argument("--no-tta", dest="tta", action="store_false",
                     help="no test-time augmentation (default unless the run's config asks)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as a JSON list on stdout (errors still go "
                             "to stderr as well)")
    parser.set_defaults(func=run)


def format_result(result: PredictionResult) -> str:
    """One line per image: a path or class name holding a newline or tab as bash's $'...',
    as `dlbox data check` shows class folders (--json keeps the names as they are)."""
    ranked = ", ".join(f"{shown_name(name)} {100 * p:.1f} %" for name, p in result.top_k)
    return f"{shown_name(result.path)}: {shown_name(result.label)}  ({ranked})"


def exit_code_for(succeeded: int, failed: int) -> int:
    if failed == 0:
        return EXIT_OK
    return EXIT_PARTIAL if succeeded else EXIT_ERROR


def is_a_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _refuse_swapped_arguments(run_dir: str, images: list[str]) -> None:
    """`dlbox predict cat.jpg runs/x`: the run directory named after the image (review: "pass
    the run directory dlbox train wrote, not a file in it")."""
    from dlbox.training.checkpoint import CONFIG_FILE

    def is_a_run(path: str) -> bool:
        try:
            return (Path(path) / CONFIG_FILE).is_file()
        except OSError:  # a name too long, a folder out of reach: predict's own error, later
            return False

    if not is_a_file(run_dir):
        return
    run = next((image for image in images if is_a_run(image)), None)
    if run is not None:  # at the end, or among the images
        raise UsageError(f"{run} is a run directory, named after an image: the run comes "
                         "first", hint=f"name it before the images, with the same flags: dlbox "
                                       f"predict {shell_quote(run)} IMAGE...")


def run(args: argparse.Namespace) -> int:
    from dlbox.training.checkpoint import checkpoint_path
    from dlbox.training.predict import PredictionFailure, predict_images
    from dlbox.training.progress import spinner

    reject_empty_run_dir(args)  # "" would be ".": the run dir predict was started in
    reject_empty_paths(args, ("device",), kind="value")
    _refuse_swapped_arguments(args.run_dir, args.images)
    checkpoint_path(args.run_dir, args.checkpoint)  # --checkpoint "": its usage error, first
    if args.top_k < 1:  # in the flag's words (predict_images says top_k=)
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}",
                         hint="e.g. --top-k 3 (the default), or --top-k 1 for the label alone")
    # A folder is the images in it, a quoted pattern the files it matches; an empty IMAGE
    # ("$IMG" unset) or `-` fails on its own, the others still predicted (predict_images).
    # A folder of phone photos: seconds each, minutes in all, said nothing before; the
    # count comes with the first file read. One file named gets no spinner.
    one_file = len(args.images) == 1 and is_a_file(args.images[0])
    with spinner(one_file, "reading images") as update:
        results = predict_images(
            args.run_dir, args.images, device=args.device, top_k=args.top_k, fit=args.fit,
            tta=args.tta, checkpoint=args.checkpoint,
            on_image=update and (lambda done, total: update(f"reading images: {done} of "
                                                            f"{total}")))
    failed = 0
    for result in results:
        if isinstance(result, PredictionFailure):
            failed += 1
            shown = shown_name(result.path)
            shown = shown if shown.strip() else f'"{shown}"'  # an empty or blank name
            print(f"error: {shown}: {result.one_line()}", file=sys.stderr)
        elif not args.json:
            print(format_result(result))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    elif failed:
        print(f"{failed} of {plural(len(results), 'file')} failed", file=sys.stderr)
    return exit_code_for(len(results) - failed, failed)

