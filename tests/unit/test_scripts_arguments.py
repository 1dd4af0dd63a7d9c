"""scripts/setup.sh and scripts/build-base-image.sh refuse what they do not know before doing
anything, and say what they do with --help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("script, args, message", [
    # a typo passed for a full set-up: the Python part ran, the system part silently not
    ("setup.sh", ["--sytem"], "error: unknown argument(s): --sytem"),
    ("setup.sh", ["--system", "extra"], "error: unknown argument(s): --system extra"),
    # found only by `docker import`, after the ~90 s of debootstrap
    ("build-base-image.sh", ["Bad:Tag"], "error: Bad:Tag is not a valid image name"),
    ("build-base-image.sh", ["a", "b"], "error: one argument at most (the tag), got 2: a b"),
    # found by review: `--dat DIR` was fetch's --data (an abbreviation) and never reached
    # training; training flags failed only after the whole set-up
    ("main.sh", ["--dat", "mydata"], "error: scripts/main.sh takes dlbox data fetch's --data, "
     "--from, --sha256 and --force, not --dat"),
    ("main.sh", ["--epochs", "2"], "error: scripts/main.sh takes dlbox data fetch's --data, "
     "--from, --sha256 and --force, not --epochs"),
    ("main.sh", ["--from"], "error: --from needs a value"),
    # found by review: values were checked by the fetch only, after the set-up (minutes)
    ("main.sh", ["--data", ""], "error: scripts/main.sh --data was given an empty value"),
    ("main.sh", ["--from=", "--sha256", "0" * 64],
     "error: scripts/main.sh --from was given an empty value"),
    ("main.sh", ["--sha256", "abc"],
     "error: scripts/main.sh --sha256 is not a sha256 (64 hexadecimal characters)"),
    ("main.sh", ["--sha256=" + "0" * 64, "--from", "/nonexistent/c.tar.gz"],
     "error: scripts/main.sh --from names no file: /nonexistent/c.tar.gz does not exist"),
    ("main.sh", ["--from", "file:///nonexistent/c.tar.gz"],  # found by re-review
     "error: scripts/main.sh --from names no file: file:///nonexistent/c.tar.gz does not exist"),
    # found by review: `--data $UNSET --force` fetched into a folder named --force
    ("main.sh", ["--data", "--force"], "error: scripts/main.sh --data needs a value, not --force"),
])
def test_an_unknown_argument_is_refused_before_any_work(script: str, args: list[str],
                                                        message: str) -> None:
    result = run(script, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == message
    assert result.stderr.splitlines()[1].startswith("hint: ")


@pytest.mark.parametrize("script, usage", [
    ("setup.sh", "Usage: scripts/setup.sh"),
    # it printed "==> base image --help already present"
    ("build-base-image.sh", "Usage: scripts/build-base-image.sh [TAG]"),
])
def test_help_says_what_the_script_does_and_does_nothing(script: str, usage: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0 and usage in result.stdout and result.stderr == ""
    assert "==>" not in result.stdout and "set -" not in result.stdout


def _copy_script(tmp_path: Path, name: str, fakes: dict[str, str]) -> Path:
    """scripts/NAME copied into a scratch checkout, with fake executables (path: bash body)
    where it calls the venv's or another script: the script's own logic, none of the work."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / name).write_text((SCRIPTS / name).read_text())
    (repo / "scripts" / "lib.sh").write_text((SCRIPTS / "lib.sh").read_text())  # sourced
    for path, body in fakes.items():
        fake = repo / path
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text("#!/usr/bin/env bash\n" + body)
        fake.chmod(0o755)
    return repo


# The venv's python, faked: `-m pip ...` runs the fake .venv/bin/pip beside it (setup.sh calls
# pip so, not .venv/bin/pip, whose first line may name another checkout's venv: review).
PIP_VIA_PYTHON = 'if [ "$1" = -m ] && [ "$2" = pip ]; then shift 2; exec "${0%/*}/pip" "$@"; fi\n'


def test_main_sh_expands_a_tilde_and_hands_over_to_training(tmp_path: Path) -> None:
    """Found by review: `--from=~/x` (the shell leaves that ~) became CWD/~/x, and `--data=~/d`
    made a folder named ~ in the current one; a SIGTERM to main.sh left training running on
    its own (a child, not main.sh itself)."""
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "main.sh", {
        "scripts/setup.sh": "exit 0\n",
        ".venv/bin/dlbox": f'echo "$$ $*" >> {log}\n',
    })
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.tar.gz").write_bytes(b"")  # --from names a file that is there
    process = subprocess.Popen(["bash", str(repo / "scripts" / "main.sh"), "--from=~/a.tar.gz",
                                "--data", "~/d"], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.communicate(timeout=60)
    assert process.returncode == 0
    fetch, train = log.read_text().splitlines()
    assert fetch.split(" ", 1)[1] == f"data fetch --from={home}/a.tar.gz --data {home}/d"
    assert train == f"{process.pid} train --data {home}/d"  # main.sh's own process
    assert not (tmp_path / "~").exists()


def test_setup_sh_refuses_a_python_older_than_3_10(tmp_path: Path) -> None:
    """Found by review: Python 3.9 got pip's ResolutionImpossible for torch, five network
    retries and a .venv kept for good."""
    repo = _copy_script(tmp_path, "setup.sh", {
        "old/python3": 'case "$*" in *version_info*) exit 1 ;; *python_version*) echo 3.9.18 ;; '
                       'esac\n'})
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={"PATH": f"{repo / 'old'}:/usr/bin:/bin", "PYTHON": "python3"})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: dlbox needs Python 3.10 or newer; python3 is 3.9.18",
        "hint: install Python 3.10+ (or name one: PYTHON=python3.11 scripts/setup.sh)"]
    assert not (repo / ".venv").exists()


def test_setup_sh_stops_on_ctrl_c_during_the_torch_install(tmp_path: Path) -> None:
    """Found by review: pip exits 1 on Ctrl-C, which the fallback read as a failed install:
    a second install (from the PyTorch index) started after the user asked to stop."""
    log = tmp_path / "pip.log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON
        + 'case "$*" in *"import torch"*) exit 1 ;; esac\nexit 0\n',
        # the terminal's Ctrl-C reaches the whole foreground group; pip exits 1 on it
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\necho "$*" >> {log}\n'
                         "trap 'exit 1' INT\nkill -INT 0\nsleep 5\nexit 1\n",
    })
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False, start_new_session=True)
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1] == "interrupted"
    [install] = log.read_text().splitlines()  # the first install only, no fallback
    assert "torch==" in install


def test_main_sh_passes_a_sigterm_on_to_the_fetch(tmp_path: Path) -> None:
    """Found by review: a SIGTERM to main.sh (kill, timeout) during the set-up or the fetch
    ended main.sh and left that step running on its own, writing to a log whose command had
    ended. The step gets the signal, and main.sh ends with its status."""
    import signal
    import time

    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "main.sh", {
        "scripts/setup.sh": "exit 0\n",
        # the fetch: stops cleanly on SIGTERM, as dlbox does (143)
        ".venv/bin/dlbox": f"trap 'echo \"$1 stopped\" >> {log}; exit 143' TERM\n"
                           f'echo "$1 started" >> {log}\n'
                           "for _ in $(seq 100); do sleep 0.1; done\n",
    })
    process = subprocess.Popen(["bash", str(repo / "scripts" / "main.sh")], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while "data started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the fetch never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 143
    assert log.read_text().splitlines() == ["data started", "data stopped"]  # no training


@pytest.mark.parametrize("stop, code", [("TERM", 143), ("HUP", 129)])
def test_setup_sh_passes_a_stop_signal_on_to_pip_at_once(tmp_path: Path, stop: str,
                                                         code: int) -> None:
    """Found by review: a SIGTERM to setup.sh waited for the pip install running (minutes for
    torch) before it acted, and a SIGHUP left pip running alone."""
    import signal
    import time

    log = tmp_path / "pip.log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON
        + 'case "$*" in *"import torch"*) exit 1 ;; esac\nexit 0\n',
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\n'
                         f"trap 'echo stopped >> {log}; exit 1' {stop}\n"
                         f"echo started >> {log}\nfor _ in $(seq 300); do sleep 0.1; done\n",
    })
    process = subprocess.Popen(["bash", str(repo / "scripts" / "setup.sh")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "pip never started"
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(getattr(signal, f"SIG{stop}"))
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 10  # not after pip's 30 s
    assert process.returncode == code
    assert log.read_text().splitlines() == ["started", "stopped"]  # no fallback install
    assert err.splitlines()[-1] == f"stopped (SIG{stop})"


def test_setup_sh_does_not_interrupt_pip_twice_on_ctrl_c(tmp_path: Path) -> None:
    """Found by review: a terminal's Ctrl-C reaches pip itself (the whole foreground group),
    and setup.sh sent it a second SIGINT, which landed in pip's clean-up: a 40-line
    traceback. A step still running a while after the Ctrl-C gets it from setup.sh."""
    log = tmp_path / "pip.log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON
        + 'case "$*" in *"import torch"*) exit 1 ;; esac\nexit 0\n',
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\n'
                         f"trap '[ -n \"$got\" ] && echo second >> {log}; got=1' INT\n"
                         # the terminal's Ctrl-C reaches both: pip first, as it was here
                         "kill -INT $$\nkill -INT $PPID\n"
                         f"echo cleaning >> {log}\nfor _ in $(seq 10); do sleep 0.1; done\n"
                         "exit 1\n",
    })
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False, start_new_session=True)
    assert result.returncode == 130, result.stderr
    assert log.read_text().splitlines() == ["cleaning"]  # no second SIGINT in the clean-up


def test_setup_sh_installs_dlbox_once_per_pyproject(tmp_path: Path) -> None:
    """Found by review: every run (so every scripts/main.sh) re-made the editable install,
    with no dlbox in the venv for those seconds. Again only when pyproject.toml changed."""
    log = tmp_path / "pip.log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON + "exit 0\n",  # torch, dlbox and pytest import
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\necho "$*" >> {log}\n',
        ".venv/bin/dlbox": "exit 0\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")

    def installs() -> int:
        result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return len(log.read_text().splitlines()) if log.exists() else 0

    assert installs() == 1
    assert installs() == 1  # nothing changed: no second install
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\nversion = '2'\n")
    assert installs() == 2


def test_main_sh_takes_values_ending_in_a_colon(tmp_path: Path) -> None:
    """Found by re-review: `--data 'data:'` (a folder's real name) was "given an empty value":
    the check matched "$flag:$value" against `*:`."""
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "main.sh", {
        "scripts/setup.sh": "exit 0\n",
        ".venv/bin/dlbox": f'echo "$*" >> {log}\n',
    })
    (tmp_path / "data:").mkdir()
    result = subprocess.run(["bash", str(repo / "scripts" / "main.sh"), "--data", "data:",
                             "--from", "https://example.com:"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[0] == (
        f"data fetch --data {tmp_path}/data: --from https://example.com:")


@pytest.mark.parametrize("train_args, message", [
    # found by review: a --data there trained on another folder than the one fetched into
    ("--epochs 1 --data d3", "error: DLBOX_TRAIN_ARGS has --data: scripts/main.sh fetches into "
     "its own --data and trains on it"),
    # found by review: quotes are not honoured (the value is split on white space), and
    # `--run-dir "my runs/x"` failed only after the set-up and the fetch
    ('--run-dir "my runs/x"', "error: DLBOX_TRAIN_ARGS has quotes, which main.sh does not "
     "honour: it splits the value on white space"),
])
def test_main_sh_refuses_train_args_it_cannot_pass_on_before_any_work(
        train_args: str, message: str) -> None:
    result = subprocess.run(["bash", str(SCRIPTS / "main.sh")], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": "/usr/bin:/bin",
                                                          "DLBOX_TRAIN_ARGS": train_args})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == message
    assert result.stderr.splitlines()[1].startswith("hint: ")


def test_main_sh_runs_through_a_link_and_takes_a_relative_dlbox_data_as_the_callers(
        tmp_path: Path) -> None:
    """Found by review: started through a symlink it looked for scripts/ beside the link; a
    relative DLBOX_DATA was read in the checkout, not where the user ran main.sh."""
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "main.sh", {
        "scripts/setup.sh": "exit 0\n",
        ".venv/bin/dlbox": f'echo "$* DLBOX_DATA=$DLBOX_DATA" >> {log}\n',
    })
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cifar-main").symlink_to(repo / "scripts" / "main.sh")
    result = subprocess.run(["bash", str(bin_dir / "cifar-main")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "DLBOX_DATA": "d7"})
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [f"data fetch DLBOX_DATA={tmp_path}/d7",
                                            f"train DLBOX_DATA={tmp_path}/d7"]


def test_main_sh_says_how_to_call_the_dlbox_its_steps_name(tmp_path: Path) -> None:
    """Found by review: the hints a failed fetch and a stopped training print name `dlbox
    data fetch --from ...`, `dlbox train --resume ...`, which a fresh shell has no `dlbox`
    for (it is the checkout's .venv/bin/dlbox), and a failed fetch's did not say that
    main.sh itself takes that --from."""
    repo = _copy_script(tmp_path, "main.sh", {
        "scripts/setup.sh": "exit 0\n",
        ".venv/bin/dlbox": 'if [ "$1" = data ]; then echo "error: offline" >&2; '
                           'echo "hint: dlbox data fetch --from FILE" >&2; exit 1; fi\n'
                           'echo "resume with: dlbox train --resume R" >&2; exit 130\n',
    })
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no dlbox on the PATH
    for cwd, shown in ((repo, ".venv/bin/dlbox"), (tmp_path, f"{repo}/.venv/bin/dlbox")):
        failed = subprocess.run(["bash", str(repo / "scripts" / "main.sh")], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert failed.returncode == 1
        assert failed.stderr.splitlines()[-2:] == [
            "hint: dlbox data fetch --from FILE",
            "note: scripts/main.sh takes the same --from, --sha256 and --force; the `dlbox` "
            f"in the hint above is {shown} (`source .venv/bin/activate` in {repo} puts it "
            "on your PATH)"], failed.stderr
    (repo / ".venv/bin/dlbox").write_text(
        '#!/usr/bin/env bash\n[ "$1" = data ] && exit 0\n'
        'echo "resume with: dlbox train --resume R" >&2; exit 130\n')
    stopped = subprocess.run(["bash", str(repo / "scripts" / "main.sh")], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 130
    assert ("note: the `dlbox ...` commands training prints are .venv/bin/dlbox here "
            f"(`source .venv/bin/activate` in {repo} puts dlbox on your PATH)"
            in stopped.stderr.splitlines()), stopped.stderr
    # with the venv's dlbox on the PATH (activated), no note
    on_path = {**env, "PATH": f"{repo}/.venv/bin:/usr/bin:/bin"}
    quiet = subprocess.run(["bash", str(repo / "scripts" / "main.sh")], cwd=repo, env=on_path,
                           capture_output=True, text=True, timeout=60, check=False)
    assert "note:" not in quiet.stderr, quiet.stderr


@pytest.mark.parametrize("python, pip, why", [
    # found by review: `cp -a clone copy`: copy/.venv/bin/pip starts `#!/.../clone/.venv/bin/
    # python3`, which runs, so dlbox went into clone's venv and copy's venv imported clone's src
    ("exit 0\n", 'echo "pip 23.2.1 from /elsewhere/.venv/lib/python3.11/site-packages/pip '
     '(python 3.11)"\n', "its pip runs from /elsewhere/.venv/lib/python3.11/site-packages/pip"),
    ('case "$*" in *sys.prefix*) echo /elsewhere/.venv ;; esac\n', "exit 0\n",
     "its Python's sys.prefix is /elsewhere/.venv"),
])
def test_setup_sh_makes_a_new_venv_in_place_of_another_checkouts(tmp_path: Path, python: str,
                                                                 pip: str, why: str) -> None:
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON + python,
        ".venv/bin/pip": pip,
        # the Python for the new one: records that it was asked for a venv
        "new/python3": f'case "$*" in *"-m venv"*) echo "$*" >> {log}; exit 1 ;; esac\n',
    })
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={"PATH": f"{repo / 'new'}:/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        f"==> .venv is not this checkout's ({why}): making a new one", "==> creating .venv"]
    assert log.read_text().splitlines() == ["-m venv .venv"]


def test_setup_sh_installs_dlbox_again_where_the_venv_imports_another_checkouts(
        tmp_path: Path) -> None:
    """Found by review: a copied checkout's .venv imported the original's src/dlbox, and
    setup.sh said "installed (pyproject.toml unchanged)"; pip ran as .venv/bin/pip, the
    original venv's."""
    log = tmp_path / "pip.log"
    elsewhere = tmp_path / "elsewhere"
    repo = _copy_script(tmp_path, "setup.sh", {
        # torch, dlbox and pytest import; dlbox from another checkout once `elsewhere` exists
        ".venv/bin/python": PIP_VIA_PYTHON + f'case "$*" in *__file__*) [ -e {elsewhere} ] && '
                            "exit 1 ;; esac\nexit 0\n",
        ".venv/bin/pip": f'[ "$1" = --version ] && exit 0\necho "$*" >> {log}\n',
        ".venv/bin/dlbox": "exit 0\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")

    def setup() -> list[str]:
        result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert setup() == ["==> installing dlbox with its dev extras"]
    assert setup() == ["==> dlbox is installed in .venv (pyproject.toml unchanged)"]
    elsewhere.mkdir()
    assert setup() == ["==> installing dlbox with its dev extras"]
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.parametrize("index", ["", "https://download.pytorch.org/whl/cpu"])
def test_setup_sh_keeps_the_torch_there_until_another_one_is_installed(tmp_path: Path,
                                                                        index: str) -> None:
    """Found by review: DLBOX_TORCH_SPEC=torch==2.13.5 (no such torch) uninstalled the torch
    there before trying it, and dlbox then failed with "unexpected ModuleNotFoundError". The
    new torch replaces the old one (a CPU build of the same version too: pip keeps a torch
    that meets the spec, whatever index it came from)."""
    log = tmp_path / "pip.log"
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON + 'case "$*" in *"m.version"*) echo 2.13.0 ;; esac\n',
        ".venv/bin/pip": '[ "$1" = --version ] && exit 0\n'
                         f'echo "$*" >> {log}\n'
                         'prev=""; for a; do [ "$prev" = --log ] && out=$a; prev=$a; done\n'
                         'case "$*" in *torch==2.13.5*) echo "ERROR: No matching distribution '
                         'found for torch==2.13.5" >> "$out"; exit 1 ;; esac\n',
        ".venv/bin/dlbox": "exit 0\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    (repo / ".venv/.dlbox-torch-from").write_text("torch==2.13.0 \n")
    spec = "torch==2.13.0" if index else "torch==2.13.5"
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "DLBOX_TORCH_SPEC": spec,
                                 **({"DLBOX_TORCH_INDEX": index} if index else {})})
    calls = log.read_text().splitlines()
    assert not any(call.startswith("uninstall") for call in calls)
    assert "--force-reinstall --no-deps" in calls[0] and calls[0].endswith(spec)
    if index:  # the CPU build: installed in place of the one there, its dependencies kept
        assert result.returncode == 0, result.stderr
        assert f"--index-url {index}" in calls[0]
        assert (repo / ".venv/.dlbox-torch-from").read_text() == f"{spec} {index}\n"
    else:
        assert result.returncode == 1 and len(calls) == 1  # no fallback either
        assert result.stderr.splitlines()[:2] == [
            "error: installing torch failed: No matching distribution found for torch==2.13.5",
            "note: .venv keeps the torch it had (2.13.0)"]


@pytest.mark.parametrize("python, message", [
    # found by review: its hint, `rm -rf .venv && PYTHON=python3.12 scripts/setup.sh`, removed
    # the working venv, and the set-up then failed
    ("no-such-python3", "==> keeping .venv (Python 3.11): PYTHON=no-such-python3 is not found "
     "(install it, or name a Python that is there)"),
    # (a relative path is the caller's: here the checkout's)
    ("old/python3", "==> keeping .venv (Python 3.11): PYTHON={repo}/old/python3 is 3.9, and "
     "dlbox needs Python 3.10 or newer"),
])
def test_setup_sh_gives_no_rebuild_hint_for_a_python_it_cannot_use(tmp_path: Path, python: str,
                                                                   message: str) -> None:
    repo = _copy_script(tmp_path, "setup.sh", {
        ".venv/bin/python": PIP_VIA_PYTHON + 'case "$*" in *"print(*sys.version_info"*) '
                            "echo 3.11 ;; esac\nexit 0\n",
        ".venv/bin/pip": "exit 0\n",
        ".venv/bin/dlbox": "exit 0\n",
        "old/python3": 'case "$*" in *"print(*sys.version_info"*) echo 3.9 ;; *version_info*) '
                       "exit 1 ;; esac\n",
    })
    (repo / "pyproject.toml").write_text("[project]\nname = 'dlbox'\n")
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False, cwd=repo,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": python})
    assert result.returncode == 0, result.stderr
    assert message.format(repo=repo) in result.stdout.splitlines(), result.stdout
    assert "rm -rf" not in result.stdout + result.stderr


def test_setup_sh_takes_a_relative_python_as_the_callers(tmp_path: Path) -> None:
    """Found by review: PYTHON=./py311 was looked for in the checkout (setup.sh cds there),
    and the error said "dlbox needs Python 3.10 or newer; ./py311 is not found"."""
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "setup.sh", {})
    py = tmp_path / "py311"
    py.write_text(f'#!/usr/bin/env bash\ncase "$*" in *"-m venv"*) echo "$*" >> {log}; exit 1 ;; '
                  "esac\n")
    py.chmod(0o755)
    result = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": "./py311"})
    assert result.returncode == 1
    assert "needs Python" not in result.stderr, result.stderr
    assert log.read_text().splitlines() == ["-m venv .venv"]


@pytest.mark.parametrize("stop, code", [("TERM", 143), ("HUP", 129), ("INT", 130)])
def test_test_sh_passes_a_stop_signal_on_to_pytest(tmp_path: Path, stop: str, code: int) -> None:
    """Found by review: a SIGTERM to scripts/test.sh (a CI timeout, kill) ended it and left
    pytest running on its own."""
    import signal
    import time

    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "test.sh", {
        "scripts/setup.sh": "exit 0\n",
        # pytest: stops on the signal (pytest exits 2 on Ctrl-C)
        ".venv/bin/python": f"trap 'echo stopped >> {log}; exit 2' {stop}\n"
                            f'echo "started $*" >> {log}\n'
                            "for _ in $(seq 300); do sleep 0.1; done\n"
                            f"echo ended >> {log}\n",
    })
    process = subprocess.Popen(["bash", str(repo / "scripts" / "test.sh"), "-x", "tests/unit"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "DLBOX_WHEELHOUSE": str(tmp_path)})
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "pytest never started"
        time.sleep(0.05)
    process.send_signal(getattr(signal, f"SIG{stop}"))
    process.communicate(timeout=30)
    assert process.returncode == code
    assert log.read_text().splitlines() == ["started -m pytest -x tests/unit", "stopped"]


def test_ci_run_passes_its_arguments_on_to_test_sh(tmp_path: Path) -> None:
    log = tmp_path / "log"
    repo = _copy_script(tmp_path, "test.sh", {"scripts/test.sh": f'echo "$CI $*" >> {log}\n'})
    (repo / ".ci").mkdir()
    (repo / ".ci" / "run").write_text((SCRIPTS.parent / ".ci" / "run").read_text())
    result = subprocess.run(["bash", str(repo / ".ci" / "run"), "-x", "tests/unit"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "true -x tests/unit\n"
