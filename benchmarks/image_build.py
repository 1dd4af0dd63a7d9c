"""Image size and build time of the built-in project's CPU image: cold, and warm after a
code-only change (the baseline is the cold build of the same run, so the ratio means
something on a shared machine).

    python benchmarks/image_build.py [--base-image dlbox-base:bookworm] [--wheelhouse /opt/wheels]
                                     [--json OUT]

It copies the built-in project to a temp folder (so the checkout is never touched), builds it
with `--no-cache` (cold: every layer, dependencies included), changes one source file, and
builds again (warm). Both builds use one lock, made before the clock starts, so pip's
resolution is not part of either figure. Needs a Docker engine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dlbox import __version__  # noqa: E402
from dlbox.cli.common import (  # noqa: E402
    EXIT_SIGTERM,
    Terminated,
    path_flag,
    reject_empty_paths,
    sigterm_stops_cleanly,
)
from dlbox.container import engine  # noqa: E402
from dlbox.container import spec as S  # noqa: E402
from dlbox.container.build import BuildRequest, build_image  # noqa: E402
from dlbox.container.context import copy_project  # noqa: E402
from dlbox.container.project import detect_project  # noqa: E402
from dlbox.container.spec import check_image_reference  # noqa: E402
from dlbox.errors import EXIT_INTERRUPTED, DlboxError, UsageError  # noqa: E402
from dlbox.fileio import check_writable, write_json_atomic  # noqa: E402

TAG = "dlbox-bench:cpu"
# What a stop leaves: the engine keeps the layers a stopped build had made as untagged images
# (review: 405 MB), which carry no dlbox label and cannot be told apart from another
# build's, so they are named, not removed. (Untagged images with dlbox's labels that its own
# builds' output names, such as a deps stage a later build replaced, are removed.)
REMOVED = ("the benchmark's images are removed; a build stopped half-way leaves untagged "
           "layers, which `docker image prune` removes")


def report(error: DlboxError) -> None:
    print("\n".join(error.report_lines()), file=sys.stderr)


_STEP_IMAGE = re.compile(r"^(?:---> |Successfully built )([0-9a-f]{12,64})$")


@contextlib.contextmanager
def recording_builds() -> Iterator[list[str]]:
    """Within: every engine build (dlbox's, through engine.build) keeps its output lines in
    the list yielded, also when it fails: the step images they name are this run's own."""
    made: list[str] = []
    original = engine.build

    def build(*args: Any, log: list[str] | None = None, **kwargs: Any) -> Any:
        lines: list[str] = [] if log is None else log
        try:
            return original(*args, log=lines, **kwargs)
        finally:
            made.extend(lines)

    engine.build = build  # type: ignore[assignment]
    try:
        yield made
    finally:
        engine.build = original  # type: ignore[assignment]


def remove_images(client: Any, output: list[str]) -> None:
    """The benchmark's tags, then the untagged images its builds made (a deps stage that a
    later build replaced and the engine was too slow to remove, the last step of a build
    that failed): only those that a dlbox label marks and its builds' `output` names; an
    untagged image of anyone else's stays."""
    for name in (TAG, f"{TAG}-deps"):
        try:
            client.images.remove(name, force=True)
        except Exception:  # noqa: BLE001 - never made, or already gone
            pass
    ours = {match.group(1) for line in output if (match := _STEP_IMAGE.match(line.strip()))}
    if not ours:
        return
    try:
        dangling = client.images.list(filters={"dangling": True})
    except Exception:  # noqa: BLE001 - the engine is gone: nothing more to do
        return
    for image in dangling:
        short = str(image.id).removeprefix("sha256:")
        labels = image.labels or {}
        if not any(short.startswith(made) for made in ours) or not (
                S.PROJECT_LABEL in labels or S.DEPS_STAGE_LABEL in labels):
            continue
        try:
            client.images.remove(image.id)
        except Exception:  # noqa: BLE001 - a slow engine, a container using it
            print(f"note: the untagged image {short[:12]} this benchmark made is left: "
                  f"`docker rmi {short[:12]}` removes it", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--base-image", default=os.environ.get("DLBOX_BASE_IMAGE",
                                                               "dlbox-base:bookworm"),
                        help="the image to build on (default: $DLBOX_BASE_IMAGE, else "
                             "dlbox-base:bookworm; here %(default)s)")
    parser.add_argument("--wheelhouse", type=path_flag,
                        help="a folder of wheels to install from (default: /opt/wheels when "
                             "it exists)")
    parser.add_argument("--json", type=path_flag, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:  # before minutes of building: a folder given as --json failed only at the end
        reject_empty_paths(args, ("wheelhouse", "json"))
        reject_empty_paths(args, ("base_image",), kind="value")
        check_image_reference(args.base_image, "--base-image")  # before the engine (review)
        if args.json is not None:
            check_writable(args.json)
        if args.wheelhouse is not None and not args.wheelhouse.is_dir():
            raise UsageError(f"--wheelhouse {args.wheelhouse} is not a folder",
                             hint="pass the folder of wheels, or leave --wheelhouse out")
    except DlboxError as error:
        report(error)
        return 2
    try:
        client = engine.connect()
        with recording_builds() as output:
            try:
                with sigterm_stops_cleanly():  # SIGTERM unwinds too: temp project, images
                    figures = measure(client, args)
            finally:  # the benchmark's images go, also after a failed or interrupted build
                remove_images(client, output)
    except DlboxError as error:
        report(error)
        return 1
    except KeyboardInterrupt:  # the benchmark's images are gone (above): nothing to keep
        print(f"\ninterrupted: no figures ({REMOVED})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as stopped:  # `timeout`, a scheduler: it left its temp project before
        print(f"\nstopped ({stopped.signal_name}): no figures ({REMOVED})", file=sys.stderr)
        return int(stopped.code or EXIT_SIGTERM)
    except Exception as error:  # noqa: BLE001 - the engine's client (a requests ReadTimeout)
        text = str(error).splitlines()[0][:200] if str(error) else ""
        print(f"error: the benchmark failed: {type(error).__name__}"
              f"{': ' + text if text else ''}", file=sys.stderr)
        slow = "Timeout" in type(error).__name__  # the engine answered no call in time
        print("hint: no figures (its images are removed); " + (
            "a busy engine can be slower than the Docker SDK's 60 s: run it again when the "
            "machine is quieter" if slow else
            "run it again; the line above says what failed"), file=sys.stderr)
        return 1
    print(f"image size        {figures['image_size_mib']} MiB ({figures['framework']}, "
          f"base {args.base_image})")
    print(f"cold build        {figures['cold_build_s']:7.1f} s   (baseline)")
    print(f"warm build        {figures['warm_build_s']:7.1f} s   ratio "
          f"{figures['warm_over_cold']:.3f} of cold; {figures['warm_cached_steps']} steps from "
          "cache")
    if args.json:
        write_json_atomic(args.json, figures)
        print(f"wrote {args.json}")
    return 0


DEFAULT_WHEELHOUSE = Path("/opt/wheels")


def default_wheelhouse() -> Path | None:
    """Without --wheelhouse: /opt/wheels when this machine has one."""
    return DEFAULT_WHEELHOUSE if DEFAULT_WHEELHOUSE.is_dir() else None


def measure(client: object, args: argparse.Namespace) -> dict[str, object]:
    """Lock (not timed), build cold, change one source file, build warm: the figures."""
    quiet = lambda line: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="dlbox-bench-") as tmp:
        project = copy_project(detect_project(None), Path(tmp) / "project")
        request = BuildRequest(project_dir=project, device="cpu", base_image=args.base_image,
                               wheelhouse=args.wheelhouse or default_wheelhouse(),
                               extras=("notebook",), tag=TAG, smoke=False)
        print("locking (not timed) ...", flush=True)
        build_image(request, log=quiet)
        print("cold build (--no-cache) ...", flush=True)
        start = time.monotonic()
        cold = build_image(dataclasses.replace(request, no_cache=True), log=quiet)
        cold_s = time.monotonic() - start
        source = project / "src" / "dlbox" / "cli" / "models.py"
        source.write_text(source.read_text() + "\n# benchmark: a code-only change\n")
        print("warm build after a code-only change ...", flush=True)
        start = time.monotonic()
        warm = build_image(request, log=quiet)
        warm_s = time.monotonic() - start
    assert warm.build is not None and cold.build is not None
    return {
        "dlbox": __version__,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(),
                 "docker": engine.engine_info(client).get("ServerVersion")},
        "base_image": args.base_image,
        "framework": f"{cold.spec.framework.name} {cold.spec.framework.version}",
        "image_size_mib": round((warm.size_bytes or 0) / 2**20),
        "cold_build_s": round(cold_s, 1),
        "warm_build_s": round(warm_s, 1),
        "warm_over_cold": round(warm_s / cold_s, 3),
        "warm_cached_steps": f"{warm.build.cached_steps}/{len(warm.build.steps)}",
    }


if __name__ == "__main__":
    sys.exit(main())
