"""scripts/test.sh, setup.sh, provision-system.sh and build-base-image.sh (review 10): the CPU
torch wheelhouse the docker tests need, a torch install that fails for another reason than a
missing version, a user who is not root and has no passwordless sudo. Each script runs copied
into a scratch checkout with fake executables on PATH: its own logic, none of the work."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_scripts_arguments import SCRIPTS, _copy_script

WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
# what the scripts run besides the fakes (a PATH of these alone: no sudo, no python3.11)
TOOLS = ("bash", "sh", "dirname", "basename", "cat", "rm", "mkdir", "mktemp", "tail", "seq",
         "sleep", "sed", "grep", "cksum", "readlink", "env", "id", "tr", "head")


def bin_dir(tmp_path: Path, fakes: dict[str, str]) -> Path:
    """A folder for PATH: links to TOOLS and fake executables (name: bash body)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in TOOLS:
        real = shutil.which(tool, path="/usr/bin:/bin")
        if real and not (folder / tool).exists():
            (folder / tool).symlink_to(real)
    for name, body in fakes.items():
        fake = folder / name
        fake.unlink(missing_ok=True)
        fake.write_text("#!/bin/bash\n" + body)
        fake.chmod(0o755)
    return folder


def copy_scripts(tmp_path: Path, names: tuple[str, ...], fakes: dict[str, str]) -> Path:
    """_copy_script for names[0], then the other scripts named and the scripts' shared
    lib.sh beside it (real copies: they call or source one another)."""
    repo = _copy_script(tmp_path, names[0], fakes)
    for name in (*names[1:], "lib.sh"):
        if (SCRIPTS / name).exists():
            shutil.copy(SCRIPTS / name, repo / "scripts" / name)
    return repo


def run_script(repo: Path, name: str, *args: str, env: dict[str, str],
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(repo / "scripts" / name), *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env, cwd=cwd)


# --- scripts/test.sh ---------------------------------------------------------------------

def _test_sh_repo(tmp_path: Path, pip_body: str) -> tuple[Path, Path]:
    """test.sh in a scratch checkout: setup.sh does nothing, the venv's python answers torch's
    version and logs pytest's DLBOX_WHEELHOUSE, pip is `pip_body`."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("test.sh",), {
        "scripts/setup.sh": f'echo "setup $*" >> {log}\n',
        ".venv/bin/python": 'if [ "$1" = -c ]; then echo 2.13.0+cpu; exit 0; fi\n'
                            f'echo "pytest DLBOX_WHEELHOUSE=$DLBOX_WHEELHOUSE" >> {log}\n',
        ".venv/bin/pip": f'echo "pip $*" >> {log}\n' + pip_body,
    })
    return repo, log


# pip download: the wheel into -d's folder, as pip's config finds it on disk
DOWNLOADS = 'while [ $# -gt 0 ]; do [ "$1" = -d ] && d=$2; shift; done\n' \
            f'mkdir -p "$d" && : > "$d/{WHEEL}"\n'


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DLBOX_OPT_WHEELS": str(tmp_path / "no")}
    env.update(extra)
    return env


def test_test_sh_fetches_a_cpu_torch_wheel_for_the_docker_tests_once(tmp_path: Path) -> None:
    """Found by review: the docker tests need a CPU torch wheel in /opt/wheels (or
    DLBOX_WHEELHOUSE) and nothing made or found one."""
    repo, log = _test_sh_repo(tmp_path, DOWNLOADS)
    for _ in range(2):
        result = run_script(repo, "test.sh", "-x", env=env_for(tmp_path))
        assert result.returncode == 0, result.stderr
    pips = [line for line in log.read_text().splitlines() if line.startswith("pip ")]
    assert len(pips) == 1  # the second run finds the first one's wheel
    assert "download" in pips[0] and "--no-deps" in pips[0] and "torch==2.13.0+cpu" in pips[0]
    assert (repo / ".cache" / "wheelhouse" / WHEEL).is_file()
    assert log.read_text().splitlines().count(
        f"pytest DLBOX_WHEELHOUSE={repo}/.cache/wheelhouse") == 2


def test_test_sh_takes_opt_wheels_or_the_users_wheelhouse(tmp_path: Path) -> None:
    repo, log = _test_sh_repo(tmp_path, "exit 1\n")
    opt = tmp_path / "opt-wheels"
    opt.mkdir()
    (opt / WHEEL).write_bytes(b"")
    assert run_script(repo, "test.sh", env=env_for(tmp_path, DLBOX_OPT_WHEELS=str(opt))
                      ).returncode == 0
    assert run_script(repo, "test.sh", env=env_for(tmp_path, DLBOX_WHEELHOUSE="/mine")
                      ).returncode == 0
    assert [line for line in log.read_text().splitlines() if line.startswith(("pip", "pytest"))
            ] == [f"pytest DLBOX_WHEELHOUSE={opt}", "pytest DLBOX_WHEELHOUSE=/mine"]


@pytest.mark.parametrize("ci", ["true", ""])
def test_test_sh_without_any_cpu_torch_wheel_says_so_and_stops_in_ci(tmp_path: Path,
                                                                      ci: str) -> None:
    """CI=true: the docker tests require the wheel, so one clear line at once instead of 13
    failures after the set-up; elsewhere they skip, and the run goes on."""
    repo, log = _test_sh_repo(tmp_path, "echo 'ERROR: No matching distribution found for "
                                       "torch==2.13.0+cpu' >&2\nexit 1\n")
    result = run_script(repo, "test.sh", env=env_for(tmp_path, CI=ci))
    pips = [line for line in log.read_text().splitlines() if line.startswith("pip ")]
    assert len(pips) == 2 and "--index-url https://download.pytorch.org/whl/cpu" in pips[1]
    kind = "error" if ci else "warning"
    lines = result.stderr.splitlines()
    assert lines[-2] == (f"{kind}: no CPU torch wheel for the docker tests: none in "
                         f"{tmp_path}/no, and pip download torch==2.13.0+cpu failed: "
                         "No matching distribution found for torch==2.13.0+cpu")
    assert lines[-1].startswith("hint: set DLBOX_WHEELHOUSE to a folder holding a CPU torch "
                                "wheel (pip download --no-deps -d DIR torch==2.13.0+cpu")
    ran_pytest = any(line.startswith("pytest") for line in log.read_text().splitlines())
    assert (result.returncode, ran_pytest) == ((1, False) if ci else (0, True))
    assert not list((repo / ".cache" / "wheelhouse").glob("*.whl"))


# pip 23.2's own output (--retries 1) for each index, the network cut off
NO_NETWORK = """WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, \
status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.\
HTTPSConnection object at 0x7f8fca7dc9d0>: Failed to establish a new connection: [Errno -2] \
Name or service not known')': /whl/cpu/torch/
ERROR: Could not find a version that satisfies the requirement torch==2.13.0+cpu (from \
versions: none)
ERROR: No matching distribution found for torch==2.13.0+cpu
"""


def test_test_sh_without_a_network_says_so(tmp_path: Path) -> None:
    """Found by review: with no network the reason given was pip's last line, "No matching
    distribution found" as if PyTorch had no such wheel; setup.sh tells the two apart."""
    (tmp_path / "pip-output").write_text(NO_NETWORK)
    repo, _ = _test_sh_repo(tmp_path, f"cat {tmp_path / 'pip-output'} >&2\nexit 1\n")
    result = run_script(repo, "test.sh", env=env_for(tmp_path))
    assert result.returncode == 0  # the other tests run
    assert result.stderr.splitlines()[-2] == (
        f"warning: no CPU torch wheel for the docker tests: none in {tmp_path}/no, and pip "
        "download torch==2.13.0+cpu failed: no connection to https://download.pytorch.org/whl/cpu"
        " (No matching distribution found for torch==2.13.0+cpu)")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_test_sh_help_prints_usage_and_sets_up_nothing(tmp_path: Path, flag: str) -> None:
    """Found by review: --help went to pytest, after the whole set-up (root, Docker)."""
    repo, log = _test_sh_repo(tmp_path, "exit 1\n")
    result = run_script(repo, "test.sh", flag, env=env_for(tmp_path))
    assert result.returncode == 0 and result.stderr == ""
    assert "Usage: scripts/test.sh [PYTEST-ARGUMENTS...]" in result.stdout
    assert "go to pytest" in result.stdout and "set -" not in result.stdout
    assert not log.exists()


# --- scripts/setup.sh: the torch install ------------------------------------------------

def setup_repo(tmp_path: Path, first_error: str) -> tuple[Path, Path]:
    """setup.sh with a venv without torch; pip's first install fails with `first_error` on
    stderr and in its --log file, a later one succeeds."""
    log = tmp_path / "pip.log"
    (tmp_path / "error").write_text(first_error + "\n")
    repo = copy_scripts(tmp_path, ("setup.sh",), {
        ".venv/bin/python": 'case "$*" in *"import torch"*) exit 1 ;; esac\nexit 0\n',
        ".venv/bin/pip": '[ "$1" = --version ] && exit 0\n'
                         f'echo "$*" >> {log}\n'
                         f'[ "$(wc -l < {log})" -gt 1 ] && exit 0\n'
                         'while [ $# -gt 0 ]; do [ "$1" = --log ] && l=$2; shift; done\n'
                         f'tee -a "${{l:-/dev/null}}" < {tmp_path / "error"} >&2\nexit 1\n',
        ".venv/bin/dlbox": "exit 0\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    return repo, log


@pytest.mark.parametrize("spec, error", [
    ("", "torch==2.13.0"),
    # found by review: pip names the requirement as it reads it, not as it was written
    ("torch>=2.13,<2.14", "torch<2.14,>=2.13"),
    ("torch == 2.13.0", "torch==2.13.0"),
    ("Torch==2.13.0", "Torch==2.13.0"),
])
def test_setup_sh_falls_back_to_the_cpu_index_when_no_torch_matches(
        tmp_path: Path, spec: str, error: str) -> None:
    repo, log = setup_repo(tmp_path, f"ERROR: No matching distribution found for {error}")
    result = run_script(repo, "setup.sh", env={**os.environ, "DLBOX_TORCH_SPEC": spec})
    assert result.returncode == 0, result.stderr
    first, fallback = log.read_text().splitlines()[:2]
    assert first.endswith(spec or "torch==2.13.0")
    assert "--index-url https://download.pytorch.org/whl/cpu" in fallback
    assert "torch>=2.10" in fallback


@pytest.mark.parametrize("index", ["", "https://download.pytorch.org/whl/cpu"])
def test_setup_sh_takes_torch_from_dlbox_torch_index(tmp_path: Path, index: str) -> None:
    """Review: on a machine without a GPU, PyPI's torch is the CUDA build (gigabytes), and
    setup.sh had no way to take the CPU build; DLBOX_TORCH_INDEX is the index of torch alone
    (the rest of dlbox's dependencies still come from pip's own index)."""
    log = tmp_path / "pip.log"
    repo = copy_scripts(tmp_path, ("setup.sh",), {
        ".venv/bin/python": 'case "$*" in *"import torch"*) exit 1 ;; esac\nexit 0\n',
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\necho "$*" >> {log}\nexit 0\n',
        ".venv/bin/dlbox": "exit 0\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    result = run_script(repo, "setup.sh", env={**os.environ, "DLBOX_TORCH_INDEX": index})
    assert result.returncode == 0, result.stderr
    torch_line, *others = log.read_text().splitlines()
    assert torch_line.endswith("torch==2.13.0")
    assert ("--index-url" in torch_line) == bool(index)
    if index:
        assert f"--index-url {index} torch==2.13.0" in torch_line
    assert others and not any("--index-url" in line for line in others)


def test_setup_sh_takes_no_other_torch_than_dlbox_torch_index_has(tmp_path: Path) -> None:
    """Re-review: DLBOX_TORCH_INDEX naming a CUDA index without the version fell back to the
    newest CPU build from download.pytorch.org, exit 0: the user's index is theirs."""
    repo, log = setup_repo(tmp_path, "ERROR: No matching distribution found for torch==2.13.0")
    index = "https://download.pytorch.org/whl/cu128"
    result = run_script(repo, "setup.sh", env={**os.environ, "DLBOX_TORCH_INDEX": index})
    assert result.returncode == 1
    assert len(log.read_text().splitlines()) == 1  # no fallback install
    assert result.stderr.splitlines()[-2:] == [
        "error: installing torch failed: No matching distribution found for torch==2.13.0",
        f"hint: DLBOX_TORCH_INDEX={index} has no torch==2.13.0: check the index URL, or set "
        "DLBOX_TORCH_SPEC to a torch it has"]


@pytest.mark.parametrize("error, reason, hint", [
    # found by review: a full disk sent the install to the fallback, whose last line blamed
    # a missing version
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
     "Could not install packages due to an OSError: [Errno 28] No space left on device",
     "hint: free disk space (pip unpacks into $TMPDIR, or /tmp), then run this again"),
    # no network: pip says no version matches, after its connection retries
    ("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(Failed "
     "to establish a new connection: [Errno 111] Connection refused)': /simple/torch/\n"
     "ERROR: No matching distribution found for torch==2.13.0",
     "no connection to the package index (No matching distribution found for torch==2.13.0)",
     "hint: check the network, PIP_INDEX_URL and HTTP(S)_PROXY, then run this again"),
    # a package torch needs, not torch itself: not the fallback's case
    ("ERROR: No matching distribution found for torchvision==0.28.0",
     "No matching distribution found for torchvision==0.28.0",
     "hint: check the network, PIP_INDEX_URL and HTTP(S)_PROXY, and the free disk space, then "
     "run this again"),
    # pip killed (memory): no ERROR line at all
    ("Killed", "pip gave no reason (see above)",
     "hint: check the network, PIP_INDEX_URL and HTTP(S)_PROXY, and the free disk space, then "
     "run this again"),
])
def test_setup_sh_stops_on_a_torch_install_that_failed_for_another_reason(
        tmp_path: Path, error: str, reason: str, hint: str) -> None:
    repo, log = setup_repo(tmp_path, error)
    result = run_script(repo, "setup.sh", env=dict(os.environ))
    assert result.returncode == 1
    assert error.splitlines()[-1] in result.stderr  # pip's own output is still shown
    assert result.stderr.splitlines()[-2:] == [f"error: installing torch failed: {reason}", hint]
    assert len(log.read_text().splitlines()) == 1  # no fallback install


# --- scripts/setup.sh: which Python -----------------------------------------------------

OLD_PYTHON = 'case "$*" in *version_info*) exit 1 ;; *python_version*) echo 3.9.18 ;; esac\n'


def test_setup_sh_takes_a_newer_python3_x_when_python3_is_too_old(tmp_path: Path) -> None:
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "setup.sh", {})
    path = bin_dir(tmp_path, {"python3": OLD_PYTHON, "python3.13": OLD_PYTHON,
                              "python3.12": f'echo "python3.12 $*" >> {log}\n'
                                            '[ "$1" = -m ] && exit 1\nexit 0\n'})
    result = run_script(repo, "setup.sh", env={"PATH": str(path)})
    assert result.returncode == 1  # the fake makes no venv
    assert "==> python3 is 3.9.18: taking python3.12" in result.stdout
    assert log.read_text().splitlines()[-1] == "python3.12 -m venv .venv"
    assert not (repo / ".venv").exists()


def test_setup_sh_without_any_python_3_10_says_so(tmp_path: Path) -> None:
    repo = _copy_script(tmp_path, "setup.sh", {})
    path = bin_dir(tmp_path, {"python3": OLD_PYTHON, "python3.10": OLD_PYTHON})
    result = run_script(repo, "setup.sh", env={"PATH": str(path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: dlbox needs Python 3.10 or newer; python3 is 3.9.18",
        "hint: install Python 3.10+ (or name one: PYTHON=python3.11 scripts/setup.sh)"]


# --- provision-system.sh and build-base-image.sh as a user -----------------------------

USER_ID = 'case "$1" in -u) echo 1000 ;; *) echo uid=1000 ;; esac\n'
PRESENT = "exit 0\n"


def system_fakes(log: Path, docker: str, sudo: str | None) -> dict[str, str]:
    fakes = {"id": USER_ID, "dockerd": PRESENT, "debootstrap": PRESENT, "chromium": PRESENT,
             "chromedriver": PRESENT, "docker": f'echo "docker $*" >> {log}\n' + docker}
    if sudo is not None:
        fakes["sudo"] = f'echo "sudo $*" >> {log}\n' + sudo
    return fakes


@pytest.mark.parametrize("sudo", [None, "exit 1\n"])  # no sudo; sudo wants a password
def test_provision_without_root_or_sudo_says_so(tmp_path: Path, sudo: str | None) -> None:
    """Found by review: `sudo docker info` ran even for a user whose docker works, its error
    hidden, and the end was `sudo: command not found` (127)."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("provision-system.sh",),
                        {"scripts/build-base-image.sh": f'echo "build" >> {log}\n'})
    path = bin_dir(tmp_path, system_fakes(log, "exit 1\n", sudo))  # no engine answers
    result = run_script(repo, "provision-system.sh", env={"PATH": str(path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: scripts/provision-system.sh needs root (or passwordless sudo) to use or start "
        "Docker", "hint: run it as root: sudo scripts/provision-system.sh"]
    assert "build" not in log.read_text()


# what setup.sh runs in the venv: torch, dlbox and pytest import
SET_UP = {".venv/bin/python": "exit 0\n", ".venv/bin/pip": "exit 0\n",
          ".venv/bin/dlbox": "exit 0\n"}


@pytest.mark.parametrize("ran", [("setup.sh", "--system"), ("test.sh",)])
def test_provision_names_the_command_the_user_ran_when_it_needs_root(
        tmp_path: Path, ran: tuple[str, ...]) -> None:
    """Found by review: run by `scripts/setup.sh --system`, the error named scripts/test.sh,
    a command the user had not run (and sudo scripts/test.sh runs every test)."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, (ran[0], "setup.sh", "provision-system.sh"),
                        {**SET_UP, "scripts/build-base-image.sh": f'echo "build" >> {log}\n'})
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    path = bin_dir(tmp_path, system_fakes(log, "exit 1\n", None))  # no engine, no sudo
    result = run_script(repo, ran[0], *ran[1:], env={"PATH": str(path)})
    assert result.returncode == 1
    command = " ".join((f"scripts/{ran[0]}", *ran[1:]))
    assert result.stderr.splitlines()[-2:] == [
        f"error: {command} needs root (or passwordless sudo) to use or start Docker",
        f"hint: run it as root: sudo {command}"]
    assert "build" not in log.read_text()


def test_provision_uses_the_users_own_docker_without_sudo(tmp_path: Path) -> None:
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("provision-system.sh",),
                        {"scripts/build-base-image.sh": f'echo "build" >> {log}\n'})
    path = bin_dir(tmp_path, system_fakes(log, PRESENT, None))
    result = run_script(repo, "provision-system.sh", env={"PATH": str(path)})
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["docker info", "build"]


def test_build_base_image_finds_an_image_present_without_sudo(tmp_path: Path) -> None:
    """Found by review: without sudo an existing image counted as missing."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("build-base-image.sh",), {})
    path = bin_dir(tmp_path, system_fakes(log, PRESENT, None))
    result = run_script(repo, "build-base-image.sh", env={"PATH": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "==> base image dlbox-base:bookworm already present\n"


def test_build_base_image_missing_without_root_or_sudo_says_so(tmp_path: Path) -> None:
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("build-base-image.sh",), {})
    docker = 'case "$1" in image) exit 1 ;; esac\nexit 0\n'  # the engine answers, no image
    path = bin_dir(tmp_path, system_fakes(log, docker, "exit 1\n"))
    result = run_script(repo, "build-base-image.sh", env={"PATH": str(path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: scripts/build-base-image.sh needs root (or passwordless sudo) to debootstrap "
        "the base image", "hint: run it as root: sudo scripts/build-base-image.sh"]


def test_build_base_image_failed_debootstrap_gives_a_hint_and_cleans_up(tmp_path: Path) -> None:
    """Found by review: no hint after debootstrap's log; a failing `sudo rm` in the EXIT trap
    (set -e) left the log behind and replaced the exit status."""
    log = tmp_path / "log"
    repo = copy_scripts(tmp_path, ("build-base-image.sh",), {})
    docker = 'case "$1" in image) exit 1 ;; esac\nexit 0\n'
    path = bin_dir(tmp_path, system_fakes(
        log, docker,
        'case "$1" in\n'
        '  -n) exit 0 ;;\n'
        '  rm) exit 3 ;;\n'  # the trap's clean-up as root fails
        f'  debootstrap) readlink /proc/$$/fd/1 > {tmp_path}/debootstrap-log\n'
        '    echo "E: Failed getting release file"; exit 1 ;;\n'
        'esac\nexec "$@"\n'))
    result = run_script(repo, "build-base-image.sh",
                        env={"PATH": str(path), "TMPDIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "E: Failed getting release file",
        "error: debootstrap bookworm from http://deb.debian.org/debian failed (its log's end "
        "is above)",
        "hint: check the network to the Debian mirror (DEBIAN_MIRROR=URL picks another one), "
        "or HTTP(S)_PROXY"]
    debootstrap_log = Path((tmp_path / "debootstrap-log").read_text().strip())
    assert debootstrap_log.parent == tmp_path and not debootstrap_log.exists()
