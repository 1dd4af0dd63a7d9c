#!/usr/bin/env python
"""Time to accuracy: train one dlbox recipe N times on a data dir and report how fast and how well.

    python benchmarks/time_to_accuracy.py [--data DIR] [--model speedrun|resnet|...] [--runs N]
        [--epochs E] [--num-train N] [--num-test N] [--device auto|cpu|cuda]
        [--tta-level 0|1|2] [--baseline tutorial] [--baseline-epochs E] [--compile]
        [--compile-mode MODE] [--precision auto|bf16|fp16|fp32] [--json OUT]

Per run, then as mean / std / min / max over the runs:

    accuracy            test accuracy without test-time augmentation
    tta_accuracy        with the model's TTA (speedrun: --tta-level's views, 6 by default;
                        others: the mirror image)
    train_seconds       training only: the speedrun trainer's clock (CUDA events on a GPU,
                        perf_counter on the CPU) around the whitening set-up and the epochs;
                        the generic loop's (perf_counter between device synchronisations)
                        around its epochs. Data loading, compile warm-up and evaluations
                        are never counted.
    time_seconds        airbench's rule: train_seconds + the final evaluation that gives the
                        reported accuracy (speedrun: the TTA one at --tta-level; --tta-level 0:
                        one plain pass; the generic loop, the tutorial: its plain evaluation)
    eval_seconds        that final evaluation alone
    images_per_second   training images processed / train_seconds
    peak_memory_mib     torch.cuda.max_memory_allocated on a GPU (reset before each run); on
                        the CPU the process's peak RSS so far (getrusage; it cannot be reset,
                        so it never falls from one run to the next)

With `--baseline tutorial` the PyTorch tutorial's loop (batch 4, SGD lr 0.001, momentum 0.9,
2 epochs unless --baseline-epochs says otherwise) runs once in the same process on the same
data dir (all its training images, as the tutorial: --num-train limits only the recipe),
and two ratios (recipe mean / tutorial) are printed with both accuracies: of training times,
and of time_seconds (training + the evaluation that gives the accuracy the recipe reports).
They are times to the same accuracy only where the recipe reached the baseline's (its mean,
with TTA where it has one): a warning says when it did not, and the JSON's baseline has
"recipe_reached_its_accuracy" (true, false, or null when either accuracy is not known).
Hardware and versions (dlbox's run manifest) go into the output and the JSON.
On CUDA one short untimed warm-up run (1 epoch on two batches) comes first (--warmup 0: none).

A run whose training loss is not finite (NaN, inf) or that gives no accuracy is printed as
FAILED, kept in the JSON's runs with its "failed" reason, left out of the summary and the
ratios, and makes the exit status 1 (the generic loop stops such a run at the epoch where its
loss turns NaN; the baseline's failure counts too). Bad input is one `error:` line and a
`hint:` line, exit status 2, before any training (an unwritable --json path included, and
--num-train or --baseline-num-train beyond the data; so are --compile, --precision and
--tta-level with a model the generic loop trains: it has none of them). Any other error once
the runs have started stops the benchmark with its `error:` line, exit status 1, no JSON.
Ctrl-C (or SIGTERM, a `timeout`) stops the benchmark with exit status 130; the runs it
finished are written to --json and summarised, marked "partial" (runs finished and asked, no
baseline ratio), so that a step's time limit does not lose them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dlbox.benchmark_report import num, pct, summarize, summary_lines, survive_a_closed_stdout
from dlbox.cli.common import path_flag, reject_empty_paths
from dlbox.data.dataset import ImageDataset
from dlbox.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, DlboxError, UsageError
from dlbox.fileio import check_writable, read_json, write_json_atomic
from dlbox.models.registry import create_model
from dlbox.models.speedrun import SpeedrunNet
from dlbox.text import plural
from dlbox.training.config import TrainConfig, build_config
from dlbox.training.device import available_cpus, configure_host, resolve_device
from dlbox.training.manifest import build_manifest
from dlbox.training.speedrun import (
    PRECISIONS,
    config_from_train,
    resolve_precision,
    train_speedrun,
)

METRICS = ("accuracy", "tta_accuracy", "train_seconds", "eval_seconds", "time_seconds",
           "images_per_second", "peak_memory_mib")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # the rest of the docstring (what each figure is, how it is timed) is the epilog: --help
    # is where a user looks for what the numbers mean
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", metavar="DIR",
                        help="data dir holding cifar-10-batches-py (or an image-folder tree); "
                             "default: $DLBOX_DATA, else the cache, as dlbox's commands")
    parser.add_argument("--model", default="speedrun", help="registry model (default: speedrun)")
    parser.add_argument("--runs", type=int, default=3, help="training runs (default: 3)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the recipe's)")
    parser.add_argument("--num-train", type=int, metavar="N", help="first N training images")
    parser.add_argument("--num-test", type=int, metavar="N", help="first N test images")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed of run 1 (run i: seed + i - 1)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads of the runs and the baseline (default: the recipe's: "
                             "all cores, the tutorial's 1)")
    parser.add_argument("--tta-level", type=int, choices=(0, 1, 2),
                        help="speedrun: views of the timed final evaluation (0: the image, "
                             "1: + its mirror, 2: + 1-pixel shifts, 6 views; default: the "
                             "recipe's, 2)")
    parser.add_argument("--compile", action="store_true",
                        help="speedrun: torch.compile the model (warm-up not timed)")
    parser.add_argument("--compile-mode", metavar="MODE",
                        choices=("default", "reduce-overhead", "max-autotune",
                                 "max-autotune-no-cudagraphs"),
                        help="speedrun, with --compile: torch.compile's mode (default: "
                             "torch's; airbench94_muon uses max-autotune)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="speedrun: autocast dtype (default: auto, bf16 on a GPU that "
                             "has it, else fp16; float32 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, metavar="N",
                        help="untimed warm-up runs first (default: 1 on CUDA, 0 on the CPU)")
    parser.add_argument("--baseline", choices=("tutorial",),
                        help="also run this baseline once and compare training times")
    parser.add_argument("--baseline-epochs", type=int,
                        help="epochs of the baseline (default: 2, the tutorial's)")
    parser.add_argument("--baseline-num-train", type=int, metavar="N",
                        help="training images of the baseline (default: all of them, as the "
                             "tutorial does, whatever --num-train says)")
    parser.add_argument("--json", type=path_flag, metavar="OUT",
                        help="write the results here as JSON")
    args = parser.parse_args(argv)
    reject_empty_paths(args, ("data",), required=True)  # "" read the current folder
    reject_empty_paths(args, ("device", "model"), kind="value")  # "" read as auto
    if args.compile_mode and not args.compile:
        raise UsageError("--compile-mode needs --compile",
                         hint="add --compile, or leave --compile-mode out")
    # All checked here, before any training: a bad --baseline-epochs found after the recipe's
    # runs would throw their minutes away.
    for flag, value, least in (("--runs", args.runs, 1), ("--epochs", args.epochs, 1),
                               ("--num-train", args.num_train, 1),
                               ("--num-test", args.num_test, 1),
                               ("--warmup", args.warmup, 0),
                               ("--baseline-epochs", args.baseline_epochs, 1),
                               ("--baseline-num-train", args.baseline_num_train, 1),
                               ("--threads", args.threads, 1)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be at least {least}, got {value}",
                             hint=f"pass {flag} {least} or more"
                                  + ("" if flag in ("--runs", "--warmup",
                                                    "--baseline-epochs")
                                     else f", or leave {flag} out"))
    from dlbox.training.config import MAX_SEED, MIN_SEED

    last_seed = args.seed + args.runs - 1  # run i's seed: the last one must fit too (review)
    if not MIN_SEED <= args.seed <= last_seed <= MAX_SEED:
        raise UsageError(f"--seed {args.seed} with --runs {args.runs} gives the seeds "
                         f"{args.seed}..{last_seed}, and a new run takes {MIN_SEED}..{MAX_SEED}",
                         hint=f"pass a --seed from {MIN_SEED} to {MAX_SEED - args.runs + 1}, "
                              "e.g. --seed 0")
    given = [flag for flag, value in (("--baseline-epochs", args.baseline_epochs),
                                      ("--baseline-num-train", args.baseline_num_train))
             if value is not None]
    if given and args.baseline is None:  # they were ignored, silently
        raise UsageError(f"{' and '.join(given)} set the baseline, but no --baseline runs",
                         hint="add --baseline tutorial, or leave them out")
    if args.baseline_epochs is None:
        args.baseline_epochs = 2  # the tutorial's
    if args.json is not None:
        check_writable(args.json)
    return args


# ---- measuring --------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """GPU: bytes allocated at the peak since the last reset. CPU: the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024



# ---- one run ----------------------------------------------------------------------------------

def speedrun_once(config: TrainConfig, device: torch.device, train_set: ImageDataset,
                  test_set: ImageDataset, compile_model: bool,
                  tta_level: int | None = None, **changes: Any) -> dict[str, Any]:
    """A speedrun trainer run in memory; its own clock is the measurement. `changes` go to
    its SpeedrunConfig (precision, compile_mode); None values are left as the recipe's."""
    changes = {key: value for key, value in changes.items() if value is not None}
    if tta_level is not None:
        changes["tta_level"] = tta_level
    # With --compile, the runs share dynamo's cache: each run's fresh model has the same code
    # and parameter shapes, so only the first run (the warm-up on a GPU) compiles, about 5
    # graphs (train, eval, the whitening bias's freeze, the last eval batch), well under
    # dynamo's recompile limit; the later runs' warm-up takes a fraction of a second.
    recipe = config_from_train(config, eval_every=None, compile=compile_model, **changes)
    result = train_speedrun(
        train_set, test_set, recipe, device,
        make_model=lambda n: create_model(config.model, num_classes=n, **config.model_kwargs))
    losses = [entry.get("train_loss") for entry in result.history]
    return {"accuracy": result.accuracy, "tta_accuracy": result.tta_accuracy,
            "train_loss": losses[-1] if losses else None,
            "failed": failure_of(losses, result.accuracy),
            "train_seconds": result.train_seconds, "eval_seconds": result.eval_seconds,
            "time_seconds": result.time_seconds, "tta_level": recipe.tta_level,
            "images_per_second": result.images_per_second,
            "warmup_seconds": result.warmup_seconds, "steps": result.steps,
            "precision": str(resolve_precision(recipe.precision, device) or torch.float32)
            .removeprefix("torch."),
            "timer": "cuda events" if device.type == "cuda" else "perf_counter"}


def failure_of(losses: list[Any], accuracy: float | None) -> str | None:
    """Why a run is no result, or None. The speedrun trainer, unlike the generic loop, does
    not stop on a NaN loss: its accuracy (chance, about 10%) would look like a slow recipe."""
    for epoch, loss in enumerate(losses, 1):
        if loss is None or not math.isfinite(loss):
            return f"train loss {loss} in epoch {epoch}"
    if accuracy is None or not math.isfinite(accuracy):
        return "no test accuracy"
    return None


def divergence_of(error: DlboxError) -> str | None:
    """The failed reason of a generic run stopped by a NaN / infinite loss (the loop's
    Diverged, without its run dir, a temporary one that is gone), or None when `error` is
    anything else (those still stop the benchmark)."""
    from dlbox.training.loop import Diverged

    return error.reason if isinstance(error, Diverged) else None


THROWAWAY = "a throw-away run dir"


class Renamed(io.TextIOBase):
    """Standard output with one text (a temporary path) written as another."""

    def __init__(self, target: Any, old: str, new: str) -> None:
        self.target, self.old, self.new = target, old, new

    def write(self, text: str) -> int:
        self.target.write(text.replace(self.old, self.new))
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def generic_once(config: TrainConfig, device: torch.device, test_set: ImageDataset
                 ) -> dict[str, Any]:
    """A run of dlbox's generic loop in a throw-away run dir, then both evaluations. A run
    the loop stops for a NaN or infinite loss is a failed run, not an error: the speedrun
    trainer's NaN runs are too (failure_of), and the finished runs are kept."""
    from dlbox.training.checkpoint import load_model_from_run
    from dlbox.training.evaluate import build_model_fn, evaluate_model
    from dlbox.training.loop import train

    with tempfile.TemporaryDirectory(prefix="dlbox-tta-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        try:
            # train names its run dir; this one is gone when the benchmark ends
            with contextlib.redirect_stdout(Renamed(sys.stdout, str(run_dir), THROWAWAY)):
                train(config.replace(run_dir=str(run_dir)), progress=False,
                      evaluate_at_end=False)
        except DlboxError as error:
            reason = divergence_of(error)
            if reason is None:
                raise
            return {"accuracy": None, "tta_accuracy": None, "failed": reason,
                    "train_seconds": None, "eval_seconds": None, "time_seconds": None,
                    "images_per_second": None, "timer": "perf_counter (synchronised)"}
        final = read_json(run_dir / "metrics.json")["final"]
        history = read_json(run_dir / "metrics.json")["history"]
        loaded = load_model_from_run(run_dir, device)
        accuracies = {}
        eval_seconds = 0.0
        for key, tta in (("accuracy", False), ("tta_accuracy", True)):
            synchronize(device)
            start = time.perf_counter()
            evaluation = evaluate_model(build_model_fn(loaded, tta), test_set, loaded.classes,
                                        device, config.eval_batch_size, loaded.amp_dtype)
            synchronize(device)
            if not tta:
                eval_seconds = time.perf_counter() - start
            accuracies[key] = evaluation.metrics["accuracy"]
    seconds = float(final["train_seconds"])
    images = sum((h["images_per_s"] or 0.0) * h["epoch_s"] for h in history)
    return {**accuracies, "failed": None, "train_seconds": seconds, "eval_seconds": eval_seconds,
            "time_seconds": seconds + eval_seconds,
            "images_per_second": images / seconds if seconds > 0 else None,
            "timer": "perf_counter (synchronised)"}


def run_once(config: TrainConfig, device: torch.device, train_set: ImageDataset,
             test_set: ImageDataset, compile_model: bool,
             tta_level: int | None = None, **changes: Any) -> dict[str, Any]:
    reset_peak_memory(device)
    if isinstance(create_model(config.model, **config.model_kwargs), SpeedrunNet):
        out = speedrun_once(config, device, train_set, test_set, compile_model, tta_level,
                            **changes)
    else:
        out = generic_once(config, device, test_set)
    out["peak_memory_mib"] = round(peak_memory_mib(device), 1)
    return out


def reached_baseline(summary: dict[str, Any], baseline: dict[str, Any]) -> bool | None:
    """Whether the recipe's mean accuracy (with TTA where it has one) reached the baseline's;
    None where either is not known."""
    recipe = summary["tta_accuracy"]["mean"]
    if recipe is None:
        recipe = summary["accuracy"]["mean"]
    if recipe is None or baseline.get("accuracy") is None:
        return None
    return bool(recipe >= baseline["accuracy"])


def ratio_of(recipe: float | None, baseline: float | None) -> float | None:
    return recipe / baseline if recipe and baseline else None


# ---- reporting --------------------------------------------------------------------------------

def run_line(label: str, r: dict[str, Any]) -> str:
    if r.get("failed"):
        return f"{label}: FAILED ({r['failed']}); left out of the summary"
    return (f"{label}: acc {pct(r['accuracy'])}  tta {pct(r['tta_accuracy'])}  "
            f"train {num(r['train_seconds'])} s  eval {num(r.get('eval_seconds'))} s  "
            f"total {num(r.get('time_seconds'))} s  "
            f"{num(r['images_per_second'], ',.0f')} img/s  "
            f"peak {num(r['peak_memory_mib'], ',.0f')} MiB")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dlbox.data.paths import resolve_data_dir
    from dlbox.training.loop import load_split, refuse_beyond

    PROGRESS["training"] = False  # bad input until the first run starts (cli: exit 2, not 1)

    device = resolve_device(args.device)
    data_dir = resolve_data_dir(args.data).resolve()
    base = build_config(args.model, device=str(device), epochs=args.epochs, seed=args.seed,
                        data_dir=str(data_dir), num_train=args.num_train,
                        num_test=args.num_test, threads=args.threads)
    # the threads the runs train on: --threads, else the recipe's (the tutorial's 1), else
    # every core (re-review: the header said 2 where the tutorial's runs used 1)
    threads = configure_host(device, base.threads)
    model = create_model(base.model, **base.model_kwargs)  # a bad --model fails before work
    speedrun_only = [flag for flag, value in (
        ("--compile", args.compile), ("--precision", args.precision),
        ("--tta-level", args.tta_level))
        if value is not None and value is not False]  # --tta-level 0 counts
    if speedrun_only and not isinstance(model, SpeedrunNet):
        # the generic loop has none of these: the JSON's settings would claim what never ran
        raise UsageError(f"{', '.join(speedrun_only)}: only for speedrun models, and "
                         f"--model {base.model} is trained by the generic loop",
                         hint=f"leave {', '.join(speedrun_only)} out, or pick a speedrun model")
    load_start = time.perf_counter()
    # Counts beyond the data are refused (refuse_short and the loop below): fewer images than
    # asked would make a faster, meaningless benchmark.
    all_train = load_split(data_dir, "train", None)
    test_set = load_split(data_dir, "test", args.num_test, refuse_short=True)
    # The baseline's counts too, here and not when it starts, after every recipe run: it
    # trains on the same data dir (its test images: --num-test, checked just above).
    for flag, limit in (("--num-train", args.num_train),
                        ("--baseline-num-train", args.baseline_num_train if args.baseline
                         else None)):
        refuse_beyond(len(all_train), limit, flag, "train", data_dir)
    train_set = all_train.subset(args.num_train)
    load_seconds = time.perf_counter() - load_start
    environment = build_manifest(device, data_dir, train_set.source)
    print(f"time to accuracy: {base.model} on {device} = {environment['device_name']}, "
          f"{threads} CPU threads, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{len(train_set)} train / {len(test_set)} test images, {plural(base.epochs, 'epoch')}, "
          f"{args.runs} run(s)", flush=True)

    if device.type == "cpu" and args.precision == "fp16":
        # measured on 2 cores: one epoch of 500 images took 6.8 s against fp32's 0.2 s
        print("warning: --precision fp16 on the CPU runs float16 kernels that most CPUs lack "
              "(tens of times slower than fp32); use bf16 or fp32 there (auto: fp32)",
              file=sys.stderr, flush=True)
    speedrun_changes = {"precision": args.precision, "compile_mode": args.compile_mode}
    warmups = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)
    PROGRESS["training"] = True  # from here an error is a failed benchmark (exit 1)
    for _ in range(warmups):
        small = base.replace(epochs=1, num_train=min(len(train_set), 2 * base.batch_size))
        run_once(small, device, train_set.subset(small.num_train), test_set,
                 args.compile, args.tta_level, **speedrun_changes)

    runs = PROGRESS["runs"] = []
    PROGRESS["total"] = args.runs

    def document_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
        good = [r for r in runs if not r.get("failed")]
        return {
            "benchmark": "time_to_accuracy",
            "model": base.model,
            "device": str(device),
            "settings": {"runs": args.runs, "epochs": base.epochs,
                         "batch_size": base.batch_size, "num_train": len(train_set),
                         "num_test": len(test_set), "seed": args.seed, "threads": threads,
                         "compile": args.compile, "compile_mode": args.compile_mode,
                         "precision": args.precision,
                         # the level the runs used (the recipe's when --tta-level is left out)
                         "tta_level": next((r["tta_level"] for r in runs if "tta_level" in r),
                                           args.tta_level),
                         "warmup_runs": warmups, "recipe": base.to_dict()},
            "environment": {**environment, "torch_threads": torch.get_num_threads()},
            "data_load_seconds": round(load_seconds, 3),
            "runs": runs,
            "failed_runs": len(runs) - len(good),
            "summary": {key: summarize([r.get(key) for r in good]) for key in METRICS},
        }

    if args.json:  # what an interrupted benchmark still writes (cli), marked partial
        PROGRESS["partial"] = (Path(args.json), document_of)
    for index in range(args.runs):
        config = base.replace(seed=args.seed + index)
        result = {"run": index + 1, "seed": config.seed,
                  **run_once(config, device, train_set, test_set, args.compile,
                             args.tta_level, **speedrun_changes)}
        runs.append(result)
        print(run_line(f"run {index + 1}/{args.runs}", result), flush=True)

    document = document_of(runs)
    summary, failed = document["summary"], document["failed_runs"]
    print("\n".join(summary_lines(summary, len(runs) - failed, decimals=3)))
    if failed:
        print(f"{failed} of {len(runs)} run(s) FAILED, left out of the summary and the ratios "
              "(exit status 1)")
    failed_baseline = False
    if args.baseline:
        tutorial = build_config(args.baseline, device=str(device), epochs=args.baseline_epochs,
                                seed=args.seed, data_dir=str(data_dir),
                                num_train=args.baseline_num_train, num_test=args.num_test,
                                threads=args.threads)
        PROGRESS["phase"] = "the baseline"
        baseline = run_once(tutorial, device, train_set, test_set, False)
        ratio = ratio_of(summary["train_seconds"]["mean"], baseline["train_seconds"])
        time_ratio = ratio_of(summary["time_seconds"]["mean"], baseline["time_seconds"])
        document["baseline"] = {"model": tutorial.model, "epochs": tutorial.epochs,
                                # None would read as unknown: it trains on every image
                                "num_train": (tutorial.num_train if tutorial.num_train
                                              is not None else len(all_train)),
                                "batch_size": tutorial.batch_size, "lr": tutorial.lr,
                                "momentum": tutorial.momentum,
                                # its own: the tutorial's recipe takes one thread
                                "threads": tutorial.threads or available_cpus(), **baseline,
                                "train_seconds_ratio": ratio,
                                "time_seconds_ratio": time_ratio}
        print(run_line(f"baseline {tutorial.model} ({plural(tutorial.epochs, 'epoch')}, batch "
                       f"{tutorial.batch_size}, "
                       f"{plural(tutorial.threads or available_cpus(), 'thread')})", baseline))
        if baseline.get("failed"):
            failed_baseline = True
            print("the baseline FAILED: no ratios (exit status 1)")
        print(f"training time {base.model} / {tutorial.model}: {num(ratio, '.3f')}; "
              f"training + final evaluation: {num(time_ratio, '.3f')}  "
              f"(accuracy {pct(summary['accuracy']['mean'])} vs {pct(baseline['accuracy'])}; "
              f"with TTA {pct(summary['tta_accuracy']['mean'])})")
        # A time to accuracy only where the recipe got there (review: a 38 % recipe's ratio
        # against a 100 % baseline read as a win). With TTA, as the recipe reports it.
        reached = reached_baseline(summary, baseline)
        document["baseline"]["recipe_reached_its_accuracy"] = reached
        if reached is False:
            print(f"warning: {base.model} did not reach the baseline's accuracy, so the "
                  "ratios are not times to the same accuracy")
    if args.json:
        PROGRESS["partial"] = None  # the whole document, from here
        write_json_atomic(Path(args.json), document)
        print(f"wrote {args.json}")
    return EXIT_ERROR if failed or failed_baseline else 0


# How far main got, for the message when it is interrupted; "partial": (the --json path, a
# function of the finished runs giving the document) once the runs start.
PROGRESS: dict[str, Any] = {"runs": [], "total": 0, "phase": None, "training": False,
                            "partial": None}


def write_partial(where: str) -> str:
    """On an interrupt: the runs that finished, written to --json marked partial (a step
    killed by its time limit keeps what it measured); what to say of them."""
    # A FAILED run finished too: kept in the runs with its reason, out of the summary
    # (review: one before the interrupt wrote no JSON, or counts that disagreed)
    finished = list(PROGRESS["runs"])
    good = [r for r in finished if not r.get("failed")]
    if not finished:
        return "no summary, no JSON written (0 finished runs)"
    counted = (f"{len(finished)} of {PROGRESS['total']} run(s) finished"
               + (f" ({len(finished) - len(good)} FAILED)" if len(good) < len(finished) else ""))
    if PROGRESS.get("partial") is None:  # no --json: the finished runs' summary, printed
        if not PROGRESS["phase"] and good:  # during the baseline it is printed already
            summary = {key: summarize([r.get(key) for r in good]) for key in METRICS}
            print("\n".join(summary_lines(summary, len(good), decimals=3)), flush=True)
        return (f"{counted}{', summarised above' if good else ''} (no --json, so no JSON "
                "written); no baseline ratio")
    path, document_of = PROGRESS["partial"]
    document = document_of(finished)
    document["partial"] = {"interrupted": where.strip(), "runs_finished": len(finished),
                           "runs_asked": PROGRESS["total"]}
    write_json_atomic(path, document)
    return f"wrote {path}, marked partial: {counted}, summarised there; no baseline ratio"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cli(argv: list[str] | None = None) -> int:
    from dlbox.processes import Terminated
    from dlbox.training.loop import TrainingStopped

    survive_a_closed_stdout()  # `... | head`: the runs and their --json go on
    # SIGTERM (a job scheduler, `timeout`) stops like Ctrl-C, not with a bare "Terminated".
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main(argv)
    except (KeyboardInterrupt, TrainingStopped, Terminated):
        # TrainingStopped: the generic loop (the baseline) catches Ctrl-C itself; its message
        # would name a checkpoint in a temporary run dir that is already gone. Terminated: a
        # second SIGTERM while a run stops (the training loop's own handler raises it).
        # Stopping now: one more signal would cut the partial JSON short with a traceback,
        # or, once Python shuts down (it puts the default handlers back), kill the process
        # (review: a second SIGTERM 20 ms after the first did both).
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, signal.SIG_IGN)
        where = (f" during {PROGRESS['phase']}" if PROGRESS["phase"] else
                 f" after {len(PROGRESS['runs'])} of {PROGRESS['total']} run(s)"
                 if PROGRESS["total"] else " before the first run")
        print(f"\ninterrupted{where}: {write_partial(where)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DlboxError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        # Bad input is found before any training (exit status 2); an error once the runs
        # have started is a failed benchmark, like a failed run (1).
        return EXIT_ERROR if PROGRESS["training"] else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(cli())
