#!/usr/bin/env python
"""Memory layout on the CPU: the speedrun CPU net in channels_last against the default
(contiguous NCHW) layout, for training steps and for evaluation at several batch sizes.

    python benchmarks/cpu_layout.py [--seconds S] [--repeats R] [--threads T] [--json OUT]

Each case runs for S seconds per repeat; the layouts alternate within a repeat, so a
machine whose load drifts (shared cores) affects both alike. Prints images/s (the median of
the repeats) per case and layout, and the ratio channels_last / contiguous: above 1 means
channels_last is faster. This is what chose `channels_last=True` and `eval_batch_size=500`
in the speedrun CPU recipe (dlbox/models/speedrun.py).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlbox.cli.common import EXIT_SIGTERM, Terminated, path_flag, sigterm_stops_cleanly
from dlbox.errors import EXIT_INTERRUPTED, DlboxError, FileWriteError, UsageError
from dlbox.fileio import check_writable, write_json_atomic
from dlbox.models.speedrun import CPU_WIDTHS, SpeedrunNet

CASES = (("train", 256), ("eval", 250), ("eval", 500), ("eval", 1000), ("eval", 2000))


def images_per_second(step: Callable[[], Any], batch: int, seconds: float) -> float:
    step()  # warm-up: oneDNN picks and caches its kernels on the first call of a shape
    start = time.perf_counter()
    done = 0
    while done == 0 or time.perf_counter() - start < seconds:  # one step at least (review:
        step()                                                 # --seconds 1e-9 divided by 0)
        done += batch
    return done / (time.perf_counter() - start)


def measure(seconds: float, repeats: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    models = {}
    for layout in ("contiguous", "channels_last"):
        model = SpeedrunNet(10, widths=CPU_WIDTHS, whiten_stride=2)
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        models[layout] = model
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        for mode, batch in CASES:
            for layout, model in models.items():
                fmt = torch.channels_last if layout == "channels_last" \
                    else torch.contiguous_format
                x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
                if mode == "train":
                    model.train()

                    def step(m: torch.nn.Module = model, x: torch.Tensor = x) -> None:
                        m(x).sum().backward()
                    rate = images_per_second(step, batch, seconds)
                else:
                    model.eval()

                    def infer(m: torch.nn.Module = model, x: torch.Tensor = x) -> None:
                        m(x)
                    with torch.no_grad():
                        rate = images_per_second(infer, batch, seconds)
                samples.setdefault(f"{mode} batch {batch}", {}).setdefault(layout, []).append(rate)
    return {case: {layout: statistics.median(rates) for layout, rates in by_layout.items()}
            for case, by_layout in samples.items()}


def main(argv: list[str] | None = None) -> int:
    # the rest of the docstring is the epilog: --help says which way the ratio goes (review)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="per case and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--json", type=path_flag, metavar="OUT",
                        help="write the figures here as JSON")
    args = parser.parse_args(argv)
    # checked before the minutes of measuring: --repeats 0 printed an empty table, and an
    # unwritable --json failed only at the end
    if not 0 < args.seconds < math.inf:  # inf measured forever
        raise UsageError(f"--seconds must be a number more than 0, got {args.seconds}",
                         hint="pass --seconds 0.5 or more for steady figures")
    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}",
                             hint=f"pass {flag} 1 or more")
    if args.json is not None:
        check_writable(args.json)
    if args.threads:
        torch.set_num_threads(args.threads)
    from dlbox.training.manifest import build_manifest

    environment = build_manifest(torch.device("cpu"))  # which machine the figures are of
    print(f"speedrun CPU net (widths {CPU_WIDTHS}, stride-2 whitening), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{environment['device_name']}, Python {environment['python']}")
    results = measure(args.seconds, args.repeats)
    print(f"images/s, and their ratio channels_last / contiguous (>1: channels_last faster), "
          f"median of {args.repeats} repeats of {args.seconds:g} s")
    print(f"{'case':<18}{'contiguous':>14}{'channels_last':>16}{'ratio':>8}")
    for case, rates in results.items():
        ratio = rates["channels_last"] / rates["contiguous"]
        rates["ratio"] = ratio
        print(f"{case:<18}{rates['contiguous']:>14,.0f}{rates['channels_last']:>16,.0f}"
              f"{ratio:>8.2f}")
    if args.json:
        document = {"benchmark": "cpu_layout", "threads": torch.get_num_threads(),
                    "seconds": args.seconds, "repeats": args.repeats,
                    "torch": torch.__version__, "results": results, "environment": environment}
        try:
            write_json_atomic(Path(args.json), document)
        except FileWriteError as error:  # after the measuring: exit 1, not 2 (bad input)
            print(f"error: {error}", file=sys.stderr)  # its hint named dlbox's --run-dir
            print("hint: pass --json a path in a folder you can write to, or free some disk "
                  "space there; the table is printed above", file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    return 0


def cli() -> int:
    from dlbox.benchmark_report import survive_a_closed_stdout

    survive_a_closed_stdout()  # `... | head`: the table's --json is still written
    try:
        with sigterm_stops_cleanly():  # review: SIGTERM ended it without a word
            return main()
    except DlboxError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: no table, no JSON written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as stopped:
        print(f"\nstopped ({stopped.signal_name}): no table, no JSON written", file=sys.stderr)
        return int(stopped.code or EXIT_SIGTERM)


if __name__ == "__main__":
    sys.exit(cli())
