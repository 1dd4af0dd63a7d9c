"""scripts/main.sh: the data dir given to `dlbox data fetch` is the one `dlbox train` reads.

The script runs against stubs (scripts/setup.sh and .venv/bin/dlbox that only record their
arguments) in a copy of its folder layout, so nothing is installed, fetched or trained.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "main.sh"
SHA = "ab" * 32  # a well-formed sha256: main.sh checks its form before the set-up


def run_main(tmp_path: Path, *args: str, train_args: str | None = None) -> list[list[str]]:
    """Run a copy of main.sh with stub setup.sh and dlbox; each dlbox call's arguments."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts" / "main.sh")
    shutil.copy(SCRIPT.with_name("lib.sh"), root / "scripts" / "lib.sh")  # sourced
    log = tmp_path / "calls"
    stubs = {root / "scripts" / "setup.sh": "#!/usr/bin/env bash\nexit 0\n",
             root / ".venv" / "bin" / "dlbox":
                 f'#!/usr/bin/env bash\nprintf "%s\\0" "$@" >> "{log}"\nprintf "\\n" >> "{log}"\n'}
    for path, text in stubs.items():
        path.write_text(text)
        path.chmod(0o755)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DLBOX_TRAIN_ARGS", "DLBOX_DATA")}
    if train_args is not None:
        env["DLBOX_TRAIN_ARGS"] = train_args
    caller = tmp_path / "caller's dir"  # where the user types the command
    caller.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["bash", str(root / "scripts" / "main.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False, cwd=caller)
    assert done.returncode == 0, done.stderr
    return [line.rstrip("\0").split("\0") if line.strip("\0") else []
            for line in log.read_text().splitlines()]


@pytest.mark.parametrize("data", [["--data", "/d i r"], ["--data=/d i r"]])
def test_main_sh_trains_from_the_data_dir_it_fetched_into(tmp_path: Path,
                                                          data: list[str]) -> None:
    archive = tmp_path / "a.tar.gz"  # main.sh checks that a --from file is there
    archive.write_bytes(b"")
    calls = run_main(tmp_path, "--from", str(archive), *data, "--sha256", SHA,
                     train_args="--epochs 2 --model tutorial")
    assert calls == [["data", "fetch", "--from", str(archive), *data, "--sha256", SHA],
                     ["train", "--data", "/d i r", "--epochs", "2", "--model", "tutorial"]]


def test_main_sh_without_data_is_unchanged(tmp_path: Path) -> None:
    assert run_main(tmp_path / "plain") == [["data", "fetch"], ["train"]]
    assert run_main(tmp_path / "force", "--force", "--from", "https://m/x.tar.gz") == [
        ["data", "fetch", "--force", "--from", "https://m/x.tar.gz"], ["train"]]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_main_sh_help_does_not_go_on_to_train(tmp_path: Path, flag: str) -> None:
    """Found in review: `scripts/main.sh --help` printed fetch's help (which exits 0), then
    started the default training job."""
    assert run_main(tmp_path, "--from", "/a.tar.gz", flag) == [["data", "fetch", "--help"]]


def test_main_sh_reads_relative_paths_from_where_it_was_called(tmp_path: Path) -> None:
    """Found in review: main.sh changed to the repo before it used its arguments, so
    `--from ./cifar-10-python.tar.gz` typed in the download folder was not found there."""
    caller = tmp_path / "caller's dir"
    caller.mkdir()
    (caller / "a.tar.gz").write_bytes(b"")  # main.sh checks that a --from file is there
    assert run_main(tmp_path, "--from", "./a.tar.gz", "--data=d", "--sha256", SHA) == [
        ["data", "fetch", "--from", f"{caller}/./a.tar.gz", f"--data={caller}/d",
         "--sha256", SHA],
        ["train", "--data", f"{caller}/d"]]
    other = tmp_path / "2" / "caller's dir"
    other.mkdir(parents=True)
    (other / "x.tgz").write_bytes(b"")
    assert run_main(tmp_path / "2", "--from=x.tgz", "--data", "../d i r") == [
        ["data", "fetch", f"--from={other}/x.tgz", "--data", f"{other}/../d i r"],
        ["train", "--data", f"{other}/../d i r"]]
