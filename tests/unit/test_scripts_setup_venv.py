"""scripts/setup.sh's .venv (which torch, which Python, two set-ups at once, a Ctrl-C while it
is made), the scripts run through a symlink, provision-system.sh's arguments and main.sh's
DLBOX_TRAIN_ARGS check. Each script runs copied into a scratch checkout with fake executables:
its own logic, none of the work."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_scripts_arguments import SCRIPTS, _copy_script
from test_scripts_review10 import PRESENT, SET_UP, bin_dir, copy_scripts, run_script, system_fakes


def _setup_repo(tmp_path: Path, fakes: dict[str, str]) -> Path:
    repo = copy_scripts(tmp_path, ("setup.sh",), fakes)
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    return repo


def test_setup_sh_reinstalls_torch_when_dlbox_torch_spec_or_index_changes(
        tmp_path: Path) -> None:
    """Found by review: once a .venv had torch, DLBOX_TORCH_SPEC and DLBOX_TORCH_INDEX were
    silently ignored. A venv made before (no record of its torch) with neither set is kept."""
    log = tmp_path / "pip.log"
    repo = _setup_repo(tmp_path, {
        ".venv/bin/python": "exit 0\n",  # torch, dlbox and pytest import
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\necho "$*" >> {log}\n',
        ".venv/bin/dlbox": "exit 0\n",
    })

    def torch_steps(**env: str) -> list[str]:
        log.unlink(missing_ok=True)
        result = run_script(repo, "setup.sh", env={"PATH": os.environ["PATH"], **env})
        assert result.returncode == 0, result.stderr
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if "torch" in line]

    assert torch_steps() == []  # an earlier venv: kept as it is
    cpu = "https://download.pytorch.org/whl/cpu"
    # torch installed again over the one there (none uninstalled first: review, a spec pip
    # could not find left no torch), then what it needs
    again, install = torch_steps(DLBOX_TORCH_INDEX=cpu)
    assert "--force-reinstall --no-deps" in again and again.endswith(" torch==2.13.0")
    assert f"--index-url {cpu}" in again
    assert install.endswith(f"--index-url {cpu} torch==2.13.0")
    assert torch_steps(DLBOX_TORCH_INDEX=cpu) == []  # the same again: nothing to do
    assert torch_steps() == []  # nothing asked: the venv's torch is kept
    assert torch_steps(DLBOX_TORCH_SPEC="torch==2.12.0", DLBOX_TORCH_INDEX=cpu)[-1].endswith(
        f"--index-url {cpu} torch==2.12.0")
    assert torch_steps(DLBOX_TORCH_SPEC="torch==2.12.0", DLBOX_TORCH_INDEX=cpu) == []


def test_setup_sh_says_how_to_rebuild_the_venv_for_another_python(tmp_path: Path) -> None:
    """Found by review: PYTHON=python3.12 with a .venv of 3.11 was silently ignored."""
    repo = _setup_repo(tmp_path, {
        **SET_UP, ".venv/bin/python": 'case "$*" in *sep=*) echo 3.11 ;; esac\nexit 0\n'})
    path = bin_dir(tmp_path, {"python3.12": 'case "$*" in *sep=*) echo 3.12 ;; esac\nexit 0\n',
                              "python3.11": 'case "$*" in *sep=*) echo 3.11 ;; esac\nexit 0\n'})
    result = run_script(repo, "setup.sh", env={"PATH": str(path), "PYTHON": "python3.12"})
    assert result.returncode == 0, result.stderr
    assert ("==> keeping .venv (Python 3.11; PYTHON=python3.12 is 3.12): to rebuild it with "
            "that Python: rm -rf .venv && PYTHON=python3.12 scripts/setup.sh"
            ) in result.stdout.splitlines()
    result = run_script(repo, "setup.sh", env={"PATH": str(path), "PYTHON": "python3.11"})
    assert result.returncode == 0 and "keeping .venv" not in result.stdout


def _venv_maker(log: Path) -> str:
    """python3 whose `-m venv .venv` takes a second and makes a fake venv."""
    made = "".join(f'printf "#!/bin/bash\\n{body}" > .venv/bin/{name}; chmod +x .venv/bin/{name}\n'
                   for name, body in (("python", "exit 0\\n"), ("pip", "exit 0\\n"),
                                      ("dlbox", "exit 0\\n")))
    return ('[ "$1" = -m ] || exit 0\n'
            f'echo start >> {log}\nmkdir -p .venv/bin\nsleep 1\n{made}echo end >> {log}\n')


def test_two_setups_at_once_make_the_venv_once(tmp_path: Path) -> None:
    """Found by review: two scripts/setup.sh at once on a fresh clone both failed (each
    removed and made .venv under the other). The second waits for the first."""
    log = tmp_path / "venv.log"
    repo = _setup_repo(tmp_path, {})
    path = bin_dir(tmp_path, {"python3": _venv_maker(log)})
    env = {"PATH": f"{path}:{os.environ['PATH']}"}
    command = ["/bin/bash", str(repo / "scripts" / "setup.sh")]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    while not log.exists():
        assert first.poll() is None, first.communicate()
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert log.read_text().splitlines() == ["start", "end"]  # made once
    assert "==> waiting for another scripts/setup.sh in this checkout" in out2


@pytest.mark.parametrize("interrupted", [True, False])
def test_setup_sh_ctrl_c_while_the_venv_is_made_says_interrupted_alone(
        tmp_path: Path, interrupted: bool) -> None:
    """Found by review: a Ctrl-C during `python -m venv` printed venv's and ensurepip's
    tracebacks (20 lines). Its output shows when it failed by itself."""
    venv = ('[ "$1" = -m ] || exit 0\n'
            "trap 'echo \"Traceback (most recent call last):\" >&2; echo KeyboardInterrupt >&2;"
            " exit 1' INT\n"
            + ("kill -INT 0\nsleep 2\n" if interrupted else "")
            + 'echo "Error: ensurepip failed" >&2\nexit 1\n')
    repo = _setup_repo(tmp_path, {})
    path = bin_dir(tmp_path, {"python3": venv})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(["/bin/bash", str(repo / "scripts" / "setup.sh")],
                            env={"PATH": f"{path}:{os.environ['PATH']}", "TMPDIR": str(scratch)},
                            capture_output=True, text=True, timeout=60, check=False,
                            start_new_session=True)
    if interrupted:
        assert result.returncode == 130 and result.stderr == "interrupted\n"
    else:
        assert result.returncode == 1
        assert result.stderr.splitlines() == ["Error: ensurepip failed"]
        assert not (repo / ".venv").exists()
    assert list(scratch.iterdir()) == []  # no log left behind


@pytest.mark.parametrize("script", ["setup.sh", "test.sh", "provision-system.sh", ".ci/run"])
def test_scripts_run_through_a_symlink(tmp_path: Path, script: str) -> None:
    """Found by review: through a link they looked for scripts/lib.sh beside the link."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("setup.sh", "test.sh", "provision-system.sh"), {
        **SET_UP, "scripts/build-base-image.sh": f'echo build >> {log}\n'})
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    if script == "test.sh":  # its set-up and pytest: logged only
        for name in ("scripts/setup.sh", ".venv/bin/python"):
            (repo / name).write_text(f'#!/bin/bash\necho "{name}" >> {log}\n')
            (repo / name).chmod(0o755)
    if script == ".ci/run":
        (repo / ".ci").mkdir()
        shutil.copy(SCRIPTS.parent / ".ci" / "run", repo / ".ci" / "run")
        (repo / "scripts" / "test.sh").write_text(f'#!/bin/bash\necho "test.sh" >> {log}\n')
    path = bin_dir(tmp_path, system_fakes(log, PRESENT, None))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "linked"
    link.symlink_to(repo / ("scripts/" + script if "/" not in script else script))
    result = subprocess.run(["/bin/bash", str(link)], capture_output=True, text=True, timeout=60,
                            check=False, cwd=tmp_path,
                            env={"PATH": str(path), "HOME": str(tmp_path),
                                 "DLBOX_WHEELHOUSE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    expected = {"setup.sh": None, "provision-system.sh": ["docker info", "build"],
                "test.sh": ["scripts/setup.sh", ".venv/bin/python"], ".ci/run": ["test.sh"]}
    assert (log.read_text().splitlines() if log.exists() else None) == expected[script]


@pytest.mark.parametrize("args, first", [
    (["--help"], "System components the integration tests use: a Docker engine (started here), "
                 "a base image"),
    (["--force"], "error: scripts/provision-system.sh takes no arguments, got: --force"),
])
def test_provision_system_takes_help_and_refuses_other_arguments(
        tmp_path: Path, args: list[str], first: str) -> None:
    """Found by review: `scripts/provision-system.sh --help` ran the whole provisioning."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("provision-system.sh",),
                        {"scripts/build-base-image.sh": f'echo build >> {log}\n'})
    path = bin_dir(tmp_path, system_fakes(log, PRESENT, None))
    result = run_script(repo, "provision-system.sh", *args, env={"PATH": str(path)})
    assert not log.exists()  # nothing ran
    if args == ["--help"]:
        assert result.returncode == 0 and result.stdout.splitlines()[0] == first
        assert "Usage: scripts/provision-system.sh" in result.stdout and result.stderr == ""
    else:
        assert result.returncode == 2 and result.stderr.splitlines()[0] == first
        assert result.stderr.splitlines()[1].startswith("hint: ")


@pytest.mark.parametrize("train_args", ["--dat d3", "--da=d3", "--epochs 1 --dat=d3"])
def test_main_sh_refuses_an_abbreviated_data_in_train_args(tmp_path: Path,
                                                           train_args: str) -> None:
    """Found by review: `--dat` (argparse's abbreviation of --data) got past the check."""
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "main.sh", {"scripts/setup.sh": f"echo setup >> {log}\n",
                                              ".venv/bin/dlbox": f'echo "$*" >> {log}\n'})
    result = subprocess.run(["bash", str(repo / "scripts" / "main.sh")], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "DLBOX_TRAIN_ARGS": train_args})
    assert result.returncode == 2 and not log.exists()
    assert result.stderr.splitlines()[0].startswith("error: DLBOX_TRAIN_ARGS has --data")


@pytest.mark.parametrize("flag, example", [("--data", "DIR"), ("--sha256", "HEX"),
                                           ("--from", "/path/to/cifar-10-python.tar.gz")])
def test_main_sh_missing_value_hint_names_the_flag(flag: str, example: str) -> None:
    """Found by review: `scripts/main.sh --data` was hinted with an example of --from."""
    result = subprocess.run(["bash", str(SCRIPTS / "main.sh"), flag], capture_output=True,
                            text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {flag} needs a value",
                                          f"hint: e.g. scripts/main.sh {flag} {example}"]
