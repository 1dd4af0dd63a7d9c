"""`dlbox data fetch|check`: get CIFAR-10 into the data dir and verify what is there."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlbox.cli.common import reject_empty_paths
from dlbox.data.fetch import (
    OFFICIAL_URL,
    FetchConfig,
    check_not_an_image_tree,
    check_not_empty_source,
    check_source,
    cifar10_present,
    fetch_cifar10,
    is_url,
    normalize_sha256,
    read_checksums,
    redact_url,
)
from dlbox.data.layout import IMAGE_EXTENSIONS_TEXT
from dlbox.data.paths import DATA_ENV_VAR, check_data_dir_path, data_flag, resolve_data_dir
from dlbox.errors import DataError
from dlbox.text import listed, shell_quote, shown_name

if TYPE_CHECKING:  # dlbox.data.loading imports torch: `dlbox data check` loads it when run
    from dlbox.data.loading import DataReport

DATA_HELP = (f"data dir (default: ${DATA_ENV_VAR}, else the user cache dir, "
             "e.g. ~/.cache/dlbox/data)")


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """The --data DIR option every command that reads data takes."""
    parser.add_argument("--data", metavar="DIR", default=None, help=DATA_HELP)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="get CIFAR-10 (download, verify, extract) and check it",
        description="Get CIFAR-10 into the data dir and verify what is on disk.")
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")

    fetch = actions.add_parser(
        "fetch", help="download, verify and safely extract cifar-10-python.tar.gz",
        description=f"Download {OFFICIAL_URL} (or take --from FILE_OR_URL), check its md5 "
                    "(or --sha256), and extract it into DATA_DIR/cifar-10-batches-py.")
    add_data_argument(fetch)
    fetch.add_argument("--from", dest="source", metavar="FILE_OR_URL", default=None,
                       help="a local cifar-10-python.tar.gz (a path or a file:// URL) or a "
                            "mirror URL (http(s):// or ftp://; a login goes in it as "
                            "https://USER:PASSWORD@host/...)")
    fetch.add_argument("--sha256", metavar="HEX", default=None,
                       help="expected sha256 of the archive (for a mirror or a local copy); "
                            "without it the official md5 is checked")
    fetch.add_argument("--force", action="store_true",
                       help="fetch and extract again even if the data is already there")
    fetch.set_defaults(func=run_fetch)

    check = actions.add_parser(
        "check", help="verify the data on disk (files, counts, labels, checksums)",
        description="Verify the data in the data dir (CIFAR-10 batches or an image tree "
                    "<split>/<class>/<image>, the images ending in "
                    f"{IMAGE_EXTENSIONS_TEXT}): every file present and loadable, counts, "
                    "labels, checksums; exits non-zero on any problem.")
    add_data_argument(check)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)

    # `dlbox data` without its command: cli._parse says which it takes


def run_fetch(args: argparse.Namespace) -> int:
    reject_empty_paths(args, ("data",))  # `--data ""` is a mistake, never the default dir
    data_dir = resolve_data_dir(args.data)
    # a bar on a terminal; in a log or a pipe (CI, `| tee`, `docker logs`) plain lines
    bars = sys.stderr.isatty()
    config = FetchConfig(data_dir=data_dir, source=args.source, sha256=args.sha256,
                         force=args.force, progress=bars, progress_lines=not bars)
    # Bad arguments fail before the "fetching ..." line (fetch_cifar10 checks them too).
    # `is not None`: an empty --sha256 or --from is refused, never taken as not given.
    if args.sha256 is not None:
        normalize_sha256(args.sha256)
    source = OFFICIAL_URL if args.source is None else check_not_empty_source(args.source)
    check_source(source)
    check_data_dir_path(data_dir)
    check_not_an_image_tree(data_dir)
    # before a bar too: a server that never answers would leave a blank screen until the
    # timeout (review)
    if config.force or not cifar10_present(data_dir):
        print(f"fetching CIFAR-10 from {redact_url(source)} into {data_dir}",
              file=sys.stderr)
    result = fetch_cifar10(config)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.status == "present":
        print(f"CIFAR-10 is already in {result.batches_dir}; nothing to do "
              "(pass --force to fetch it again)")
        return 0
    print(f"fetched CIFAR-10 into {result.batches_dir}")
    print(f"archive sha256 {result.archive_sha256}")
    return 0


def format_report(report: DataReport) -> str:
    lines = [f"data dir  {shown_name(report.data_dir)}"]
    if report.layout is not None:
        kind = {"cifar10-batches": "CIFAR-10 batches", "image-folder": "image folder"}.get(
            report.layout.kind, report.layout.kind)
        lines.append(f"layout    {kind} in {shown_name(report.layout.root)}")
    if report.archive_sha256:
        lines.append(f"archive   sha256 {report.archive_sha256}")
    width = max([len(f.name) for f in report.files] + [4])
    for item in report.files:
        lines.append(f"  {item.name:<{width}}  {'ok  ' if item.ok else 'FAIL'}  {item.detail}")
    for split, info in report.splits.items():
        labels = (f"labels {info.label_min}..{info.label_max}" if info.count else "no labels")
        spread = sorted(set(info.per_class))
        if not spread:  # batches.meta names no classes: a problem listed below
            per_class = "no class to count them in"
        elif len(spread) == 1:
            per_class = f"{spread[0]} per class"
        else:
            per_class = f"{spread[0]}..{spread[-1]} per class"
        lines.append(f"{split:<9} {info.count} images, {len(report.classes)} classes, {labels}, "
                     f"{per_class}")
    splits = list(report.splits.values())
    if report.classes and splits and all(len(s.per_class) == len(report.classes)
                                         for s in splits):
        counts = [f"{shown_name(name)} {'/'.join(str(s.per_class[i]) for s in splits)}"
                  for i, name in enumerate(report.classes)]
        lines.append(f"classes   ({'/'.join(report.splits)} images) "
                     f"{listed(counts, 20, counted=True)}")
    lines.extend(f"note: {note}" for note in report.notes)
    lines.extend(f"problem: {problem}" for problem in report.problems)
    lines.append("ok" if report.ok else f"{len(report.problems)} problem(s)")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    from dlbox.data.loading import check_data

    reject_empty_paths(args, ("data",))
    data_dir = resolve_data_dir(args.data)
    report = check_data(data_dir)  # a file in its place is a problem: in --json's too
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    if report.ok:
        return 0
    if report.layout is None:
        from dlbox.data.loading import no_data_error

        raise no_data_error(data_dir)
    raise DataError(f"data check found {len(report.problems)} problem(s) in "
                    f"{shown_name(data_dir)}: {report.problems[0]}", hint=check_hint(report))


def check_hint(report: DataReport) -> str:
    """The fix for a failed check, by layout: CIFAR batches can be fetched again; an image
    tree is the user's own, which `dlbox data fetch` neither writes nor repairs. For a tree,
    the fix of the first failed split: the one the check found for it (permissions, where the
    images go), else to add the missing split or replace the damaged images."""
    where = data_flag(report.data_dir)
    if report.layout is not None and report.layout.kind == "image-folder":
        again = f"then run `dlbox data check{where}` again"
        failed = next((item for item in report.files if not item.ok), None)
        if failed is not None and failed.hint:
            return f"{failed.hint}; {again}"
        if failed is not None and failed.detail in ("missing", "no class folders"):
            return (f"add the {failed.name.rstrip('/')} split as "
                    f"{report.layout.root}/{failed.name}<class>/<image> "
                    f"({IMAGE_EXTENSIONS_TEXT}), {again}")
        return (f"replace each image file named above with a good copy, or remove it, {again} "
                "(`dlbox data fetch` does not touch an image tree)")
    flags, note = _fetched_with(report)
    return (f"run `dlbox data fetch --force{where}{flags}`{note} to fetch and extract it "
            "again")


def _fetched_with(report: DataReport) -> tuple[str, str]:
    """The --from and --sha256 of the fetch that put the data there, as its record keeps
    them (without the --sha256 of a copy that is not the official archive the same fetch
    fails its checksum, review), and a note for what the record cannot spell out."""
    record = read_checksums(report.layout.root) if report.layout is not None else None
    archive = record.get("archive") if record is not None else None
    if not isinstance(archive, dict):
        return "", " (with the --from and --sha256 it was fetched with, if any)"
    source, sha256 = archive.get("source"), archive.get("sha256")
    flags, note = "", ""
    if isinstance(source, str) and source and source != OFFICIAL_URL:
        if "***" in source or not (is_url(source) or Path(source).is_absolute()):
            flags, note = " --from FILE_OR_URL", f" (FILE_OR_URL: {source} as given then)"
        else:
            flags = f" --from {shell_quote(source)}"
    if archive.get("official_md5_match") is False and isinstance(sha256, str):
        flags += f" --sha256 {sha256}"
    return flags, note
