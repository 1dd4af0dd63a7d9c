"""`dlbox train`: train a model from the registry on CIFAR-10 (or an image-folder tree).

Settings come from the model's recipe for the device (`dlbox models` lists them); every flag
given overrides its setting. `--resume RUN_DIR` continues an interrupted run with its own
settings (only --device, --data, --threads, --no-progress and --no-evaluate may be given
with it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from dlbox.cli.common import EXIT_SIGTERM, Terminated, reject_empty_paths
from dlbox.errors import FileWriteError, UsageError
from dlbox.text import shell_quote

# Flags that set a training setting; with --resume the run's own config.json decides them.
# What --resume refuses: the run's own settings. --threads is not one (how many cores this
# machine lends it), nor --device or --data.
SETTING_FLAGS = ("model", "epochs", "batch_size", "lr", "weight_decay", "momentum",
                 "label_smoothing", "width", "seed", "run_dir", "num_train", "num_test",
                 "amp", "channels_last")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (default: the best one for this device)",
        description="Train a model on CIFAR-10 (or your own image tree: DIR/train/<class>/ and "
                    "DIR/test/<class>/, see docs/data.md) and evaluate it. Settings default to "
                    "the model's recipe for the device (see `dlbox models`); flags override "
                    "them.",
        epilog="exit codes: 0 done (also a --resume of a run that had finished); 1 an error "
               "(missing data, a damaged run dir, a file that cannot be written); 2 a bad flag "
               "or value; 70 an internal error (a bug: rerun with DLBOX_DEBUG=1); 130 stopped "
               "by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP, 141 because standard output was "
               "closed (`dlbox train | head`): the message says what was saved and how to "
               "resume. See docs/training.md.",
    )
    parser.add_argument("--model", help="model name from `dlbox models` "
                                        "(default: speedrun, with its CPU recipe on the CPU)")
    parser.add_argument("--epochs", type=int,
                        help="passes over the training set (recipe default; at most 100000)")
    parser.add_argument("--batch-size", type=int, help="images per optimizer step")
    parser.add_argument("--lr", type=float,
                        help="peak learning rate (speedrun: Muon's, see docs/speedrun.md)")
    parser.add_argument("--weight-decay", type=float,
                        help="L2 weight decay (speedrun: on biases and head only, scaled by "
                             "batch size / lr; see docs/speedrun.md)")
    parser.add_argument("--momentum", type=float,
                        help="SGD momentum (speedrun: Muon's)")
    parser.add_argument("--label-smoothing", type=float, help="label smoothing (0 = none)")
    parser.add_argument("--width", type=int, help="channel width of models that have one "
                                                  "(resnet: 64 on GPU, 16 on CPU)")
    parser.add_argument("--device", default=None,
                        help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--seed", type=int, help="random seed, 0 to 4294967295 (default: 0)")
    parser.add_argument("--data", metavar="DIR",
                        help="data dir: CIFAR-10, or an image tree DIR/{train,test}/<class>/"
                             "<image> (default: $DLBOX_DATA, else the user cache dir; with "
                             "--resume, the run's own, unless that is a container's /data "
                             "that is not on this machine)")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="where to write the run (default: runs/<time>-<model>)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--num-train", type=int, metavar="N",
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--num-test", type=int, metavar="N",
                        help="use only the first N test images")
    parser.add_argument("--threads", type=int,
                        help="CPU threads (default: all cores; the tutorial's recipe: 1)")
    parser.add_argument("--no-amp", dest="amp", action="store_const", const=False, default=None,
                        help="train in float32 on CUDA (default: mixed precision)")
    parser.add_argument("--channels-last", dest="channels_last", default=None,
                        action=argparse.BooleanOptionalAction,
                        help="channels_last memory format (default: the recipe's: on for "
                             "CUDA, and for speedrun on the CPU too)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (one line per epoch still prints)")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip the full evaluation at the end (predictions.csv, "
                             "confusion matrix)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reject_empty_paths(args, ("data", "run_dir", "resume"))
    reject_empty_paths(args, ("device", "model"), kind="value")
    return _run(args)  # SIGTERM outside the training loop: main()'s handler, exit 143


def _run(args: argparse.Namespace) -> int:
    from dlbox.errors import EXIT_INTERRUPTED
    from dlbox.training.loop import AlreadyFinished, TrainingStopped, resume, train

    run_dir = args.resume
    try:
        if args.resume is not None:
            given = [f"--{'no-' if getattr(args, name) is False else ''}"
                     f"{name.replace('_', '-')}" for name in SETTING_FLAGS
                     if getattr(args, name, None) is not None]
            if given:
                raise UsageError(
                    f"--resume continues with the run's own settings; {', '.join(given)} "
                    "cannot change",
                    hint="drop those flags (only --device, --data, --threads, --no-progress "
                         "and --no-evaluate may be given with --resume)",
                )
            try:
                resume(args.resume, device=args.device, data_dir=args.data,
                       progress=not args.no_progress, evaluate_at_end=not args.no_evaluate,
                       threads=args.threads)
            except AlreadyFinished as done:  # asked again (a requeued job): nothing to do
                print(done.message)
                print(f"hint: {done.hint}")
                return 0
        else:
            config = config_from_args(args)
            # the run's folder, once this run has one, is named by what stopped it (run_dir
            # on the error): --run-dir may be another run's, refused, or not made yet
            run_dir = train(config, progress=not args.no_progress,
                            evaluate_at_end=not args.no_evaluate)
    except TrainingStopped as stopped:  # on stderr, as every other stop's word: `dlbox
        # train > log` shows the resume command at the terminal (review)
        if stopped.finished and args.no_evaluate:  # in the last test pass: nothing is missing
            return _say_finished(stopped.reason, stopped.run_dir, evaluated=False)
        print("\n".join(stopped.report_lines()), file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt as interrupt:  # a second Ctrl-C: stopped at once, the last
        # epoch's state kept
        print("interrupted", file=sys.stderr)
        say_what_was_kept(getattr(interrupt, "run_dir", None) or run_dir)
        return EXIT_INTERRUPTED
    except BrokenPipeError as closed:  # `dlbox train | head`: the reader went away mid-run
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("stopped: standard output was closed (the program reading it ended)",
              file=sys.stderr)
        say_what_was_kept(getattr(closed, "run_dir", None) or run_dir)
        return 128 + signal.SIGPIPE
    except FileWriteError as error:  # a full disk mid-run: what to do once there is room
        where = getattr(error, "run_dir", None) or run_dir
        if error.kind == "no-space":
            error.hint = f"{error.hint}; then {_going_on(where)}"
        elif error.kind == "not-writable" and _resumable(where):  # read-only, permissions
            path = shell_quote(Path(where or "").resolve())
            error.hint = (f"{error.hint}; its last checkpoint is kept: once {path} can be "
                          "written (or from a copy of it elsewhere), go on with: dlbox train "
                          f"--resume {path}")
        raise
    except Terminated as stopped:  # SIGTERM/SIGHUP outside the epochs: reading the data, or
        # the final evaluation, whose files it may have left from two epochs
        where = getattr(stopped, "run_dir", None) or run_dir
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            evaluated = not args.no_evaluate
            from dlbox.training.rundir import run_all_written

            if run_all_written(where, evaluated):  # a `timeout` as the run ended
                return _say_finished(stopped.signal_name, where, evaluated)
            print(f"stopped ({stopped.signal_name})", file=sys.stderr)
            say_what_was_kept(where)
        return int(stopped.code or EXIT_SIGTERM)
    return 0


def _say_finished(reason: str, run_dir: str | Path | None, evaluated: bool) -> int:
    """A stop that came once the run had finished, with nothing of it missing: said so, and
    the command's success (0)."""
    where = Path(run_dir or "").resolve()
    held = (f"its report is complete in {where}" if evaluated else
            f"its training is complete in {where} (no evaluation was asked for)")
    print(f"stopped ({reason}) once the run had finished: {held}", file=sys.stderr)
    return 0


def _resumable(run_dir: str | Path | None) -> bool:
    """Whether a stopped run saved a checkpoint of an unfinished training."""
    from dlbox.training.rundir import stopped_unfinished  # torch: imported once a run stopped

    return stopped_unfinished(run_dir)


def _going_on(run_dir: str | Path | None) -> str:
    """How a run that a full disk stopped goes on once there is room: its checkpoint (every
    epoch's is written whole or not at all) is resumed, or it saved none and starts again."""
    from dlbox.training.rundir import saved_checkpoint

    with contextlib.suppress(OSError):
        saved = saved_checkpoint(run_dir)
        if saved is not None:
            where = shell_quote(Path(run_dir or "").resolve())
            if saved[1]:  # it failed writing the final report
                return f"write the report with: dlbox evaluate {where}"
            return f"go on with: dlbox train --resume {where}"
    return "start again with the same command"


def say_what_was_kept(run_dir: str | Path | None) -> None:
    """After a stop that skipped the trainer's own report: what the run saved, and the
    command that goes on from it."""
    from dlbox.training.rundir import last_checkpoint, saved_checkpoint

    # the run named in one form on every line (review: as typed, then resolved)
    last = last_checkpoint(Path(run_dir or "").absolute())
    try:
        saved = saved_checkpoint(run_dir)
    except OSError as error:  # the folder lost its search permission mid-run, say
        print(f"cannot tell whether {last} was saved: {error.strerror or error}\n"
              f"once it can be read, resume with: dlbox train --resume "
              f"{shell_quote(Path(run_dir or '').absolute())}", file=sys.stderr)
        return
    if saved is None:
        if run_dir:  # a second Ctrl-C in the speedrun's first epoch: silence read as a hang-up
            print("nothing was saved (it stopped before its first checkpoint): start again "
                  "with the same command", file=sys.stderr)
        return
    where = shell_quote(Path(run_dir or "").resolve())
    last = last_checkpoint(Path(run_dir or "").resolve())  # as `where` names it
    if saved[1]:  # stopped in the final evaluation: training is done
        print(f"training had finished ({last}); its evaluation was cut short\n"
              f"evaluate with: dlbox evaluate {where}", file=sys.stderr)
    else:
        print(f"the last saved state is in {last}\nresume with: dlbox train --resume "
              f"{where}", file=sys.stderr)


def config_from_args(args: argparse.Namespace) -> Any:
    from dlbox.training.config import build_config

    return build_config(
        args.model, device=args.device or "auto",
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, momentum=args.momentum,
        label_smoothing=args.label_smoothing, width=args.width, seed=args.seed,
        data_dir=args.data, run_dir=args.run_dir, num_train=args.num_train,
        num_test=args.num_test, threads=args.threads, amp=args.amp,
        channels_last=args.channels_last,
    )

