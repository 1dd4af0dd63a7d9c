"""benchmarks/gpu_session.sh: its time budget, what each step leaves to the later ones
(`--print-reserves` prints it and exits; no step runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_session.sh"


def reserves(tmp_path: Path, only: str = "", budget: int | None = None) -> dict[str, int]:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "ONLY": only}
    env.pop("BUDGET_S", None)
    if budget is not None:
        env["BUDGET_S"] = str(budget)
    out = subprocess.run(["bash", str(SCRIPT), "--print-reserves"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {name: int(value) for name, value in
            (line.split("=") for line in out.splitlines())}


def test_the_full_session_keeps_each_step_its_share(tmp_path: Path) -> None:
    assert reserves(tmp_path) == {
        "env": 510, "data": 20, "gpu": 430, "speedrun": 370, "e2e1": 330, "e2e2": 310,
        "airbench": 60, "resnet": 20, "compiled": 20, "long": 20, "airbench96": 20}
    # airbench (g) runs before resnet (f): the ratio needs it in the same call, and
    # its max-autotune compile takes minutes; resnet is kept 40 s after it. The data step is
    # kept only the summary's 20 s: every later step reads the data (found by review: a
    # BUDGET_S under 175 skipped it, and every later step failed on "no data")


def test_a_subset_keeps_time_only_for_the_steps_it_names(tmp_path: Path) -> None:
    full = reserves(tmp_path, "env data speedrun airbench")
    # env keeps data's 60, speedrun's 60, airbench's 250 and the summary's 20
    assert (full["env"], full["data"], full["speedrun"], full["airbench"]) == (390, 20, 270, 20)
    short = reserves(tmp_path, "env data speedrun airbench", budget=140)
    # scaled by 140/540, the summary's 20 s not: env still gets 30 s of the 140
    assert (short["env"], short["data"], short["speedrun"], short["airbench"]) == (
        20 + int(370 * 140 / 540), 20, 20 + int(250 * 140 / 540), 20)
    assert all(140 - short[name] >= 15 for name in ("env", "data", "speedrun", "airbench"))


def test_named_optional_steps_are_kept_their_minimum(tmp_path: Path) -> None:
    # compiled and long use only what is left over in a full session (resnet, the last kept
    # step, keeps only the summary's 20 s), but their minimum, 120 s and 60 s, when ONLY
    # names them
    assert reserves(tmp_path)["resnet"] == 20
    assert reserves(tmp_path, "env data long")["env"] == 60 + 20 + 60
    assert reserves(tmp_path, "env data speedrun compiled long")["env"] == (
        60 + 60 + 20 + 120 + 60)
    # the minimum is not scaled down with a short budget: long still gets its 60 s
    short = reserves(tmp_path, "env data long", budget=150)
    assert short["env"] == 20 + 60 + int(60 * 150 / 540) and 150 - short["env"] >= 15


def test_an_unknown_step_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as error:
        reserves(tmp_path, "env dat")
    assert error.value.returncode == 2
    assert "ONLY names an unknown step: dat" in error.value.stderr
    # step h compiles step d's runs: without d in the same call it could never run
    with pytest.raises(subprocess.CalledProcessError) as error:
        reserves(tmp_path, "env data compiled")
    assert "compiled without speedrun" in error.value.stderr


def test_a_missing_carried_folder_stops_the_call_before_any_step(tmp_path: Path) -> None:
    # A repo copy without .data and .airbench: every step would fail, the device time spent.
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_session.sh").write_bytes(SCRIPT.read_bytes())
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK_DIR": str(tmp_path / "work"),
           "PYTHON": sys.executable, "GPU_DATA": str(tmp_path / "cifar10")}
    for name in ("ONLY", "BUDGET_S", "SMOKE_BLOCK"):
        env.pop(name, None)
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.splitlines()[0] == (
        "error: gpu_session.sh: missing .data/jpeg_to_cifar_batches.py "
        ".data/cifar10-jpeg.tar.gz .airbench/airbench94_muon.py")
    assert message.splitlines()[1].startswith("hint: make .data and .airbench")
    assert "docs/gpu-session.md" in message
    assert not (tmp_path / "work").exists()  # no step ran
    assert message in (tmp_path / "out" / "session.log").read_text()
    # The smoke mode needs the converter and platformdirs' stand-in (it blocks the real one),
    # not airbench
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "missing .data/jpeg_to_cifar_batches.py .data/pylib/platformdirs\n" in \
        result.stderr
    # An earlier session's results in OUT stay where the call is refused (review: removed)
    (tmp_path / "out" / "speedrun.json").write_text("{}")
    kept = (tmp_path / "out" / "session.log").read_text()
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "error: gpu_session.sh: missing" in result.stderr
    assert (tmp_path / "out" / "speedrun.json").read_text() == "{}"
    assert (tmp_path / "out" / "session.log").read_text() == kept


@pytest.mark.parametrize("args", [["--smok"], ["--help", "extra"], ["-x"]])
def test_an_unknown_argument_is_refused_before_anything_runs(tmp_path: Path,
                                                             args: list[str]) -> None:
    """Found in review: any first argument but --smoke and --print-reserves started the full
    GPU session (540 s of device time for a typo)."""
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert not (tmp_path / "out").exists()
    helped = subprocess.run(["bash", str(SCRIPT), "--help"], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert "--smoke" in helped.stdout and "ONLY=" in helped.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("budget", ["abc", "-5", "30", "1e3", "08", "0099"])  # bash reads
# a leading 0 as octal: "08" slipped past the check
def test_a_budget_that_is_not_whole_seconds_is_refused(tmp_path: Path, budget: str) -> None:
    """Found by review: BUDGET_S=abc skipped every step and still exited 0 with no summary."""
    env = {**os.environ, "OUT": str(tmp_path / "out"), "BUDGET_S": budget}
    env.pop("ONLY", None)
    proc = subprocess.run(["bash", str(SCRIPT), "--print-reserves"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == (f"error: BUDGET_S={budget} is not a number of "
                                           "seconds, 60 or more")


def test_a_relative_out_is_the_callers_folder(tmp_path: Path) -> None:
    """Found by review: a relative OUT was made in the caller's folder, then the script moved
    to the repo, where its steps wrote a second OUT, and session.log failed to open."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_session.sh").write_bytes(SCRIPT.read_bytes())
    caller = tmp_path / "caller"
    caller.mkdir()
    env = {**os.environ, "OUT": "rel-out", "WORK_DIR": "rel-work", "PYTHON": sys.executable}
    for name in ("ONLY", "BUDGET_S", "SMOKE_BLOCK"):
        env.pop(name, None)
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh")], env=env,
                            cwd=caller, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "missing" in result.stderr  # stops at the pre-flight
    assert "error: gpu_session.sh: missing" in (caller / "rel-out" / "session.log").read_text()
    assert not (repo / "rel-out").exists() and "No such file" not in result.stderr


def _repo_copy(tmp_path: Path) -> Path:
    """The script and its summary in a repo of its own, with the carried files --smoke's
    pre-flight asks for (the converter is not run by the steps these tests select)."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_session.sh").write_bytes(SCRIPT.read_bytes())
    (repo / "benchmarks" / "gpu_summary.py").write_bytes(
        (SCRIPT.parent / "gpu_summary.py").read_bytes())
    import platformdirs  # --smoke blocks it, as on the GPU image: the carried copy stands in

    shutil.copytree(Path(platformdirs.__file__).parent, repo / ".data" / "pylib" / "platformdirs")
    (repo / ".data" / "jpeg_to_cifar_batches.py").write_text("")
    return repo


def _session_env(tmp_path: Path, python: Path, only: str) -> dict[str, str]:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK_DIR": str(tmp_path / "work"),
           "PYTHON": str(python), "ONLY": only}
    for name in ("BUDGET_S", "SMOKE_BLOCK"):
        env.pop(name, None)
    return env


def test_a_python_path_with_a_space_runs_the_steps(tmp_path: Path) -> None:
    """Found by review: PYTHON was split at its spaces ("$PY" unquoted), so a venv under
    "my envs/" failed every step with "No such file or directory"."""
    repo = _repo_copy(tmp_path)
    python = tmp_path / "my envs" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, python, "env"), cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = (tmp_path / "work" / "steps.jsonl").read_text()
    assert '"step": "env", "rc": 0,' in steps
    assert "dlbox" in (tmp_path / "out" / "session.log").read_text()


def test_an_earlier_sessions_files_in_out_are_not_read_as_this_ones(tmp_path: Path) -> None:
    """Found by review: a second session into the same OUT left the first one's
    speedrun.json there, and the summary reported it as measured now."""
    repo = _repo_copy(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "speedrun.json").write_text('{"stale": true}')
    (out / "notes.txt").write_text("mine")  # not the script's: left alone
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, Path(sys.executable), "env"), cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "speedrun.json").exists()
    assert (out / "notes.txt").read_text() == "mine"
    log = (out / "session.log").read_text()
    assert f"removed an earlier session's files from {out}: speedrun.json" in log


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_the_step_under_way_and_skips_the_later_ones(tmp_path: Path,
                                                                   signame: str,
                                                                   code: int) -> None:
    """Found by review: Ctrl-C reached neither the step (timeout runs it in a process group
    of its own) nor the script (bash waits for a foreground command before its trap), so
    every remaining step ran on; and tee died, losing the log. SIGTERM to the whole group
    (`timeout 500 bash gpu_session.sh`) killed the tee, and the script with it."""
    import signal
    import time

    repo = _repo_copy(tmp_path)
    python = tmp_path / "python"  # a step that never ends; the summary answers at once
    python.write_text("#!/bin/sh\n"
                      'case "$*" in *gpu_summary.py*) echo summary ran; exit 0 ;; esac\n'
                      'case "$1" in -c) exit 0 ;; esac\n'
                      f'echo $$ > "{tmp_path}/step.pid"\n'
                      "exec sleep 300\n")
    python.chmod(0o755)
    process = subprocess.Popen(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                               env=_session_env(tmp_path, python, "env gpu"), cwd=repo,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # its own group, as at a terminal
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "step.pid").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        step_pid = int((tmp_path / "step.pid").read_text())
        os.killpg(process.pid, getattr(signal, signame))  # as a terminal's Ctrl-C does
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == code, output
    assert "step env: rc=143" in output  # stopped with SIGTERM, as a training saves on
    assert f"step gpu: SKIPPED (the session was stopped: {signame})" in output
    assert "summary ran" in output
    log = (tmp_path / "out" / "session.log").read_text()
    assert "step gpu: SKIPPED" in log and "summary ran" in log
    deadline = time.monotonic() + 10  # the step's process ended too (or awaits its reaping)
    while Path(f"/proc/{step_pid}").exists():
        state = Path(f"/proc/{step_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        assert time.monotonic() < deadline, f"the step's process {step_pid} still runs"
        time.sleep(0.1)


def _fake_python(tmp_path: Path, steps: str) -> Path:
    """A PYTHON whose `-c` (the pre-flight's checks, the e2e stamper) and gpu_summary.py are
    the real Python's, and whose other commands are the shell lines `steps`."""
    python = tmp_path / "python"
    python.write_text("#!/bin/bash\n"
                      f'case "$1 $2" in -c* | "-u -c" | *gpu_summary.py*) '
                      f'exec "{sys.executable}" "$@" ;; esac\n' + steps)
    python.chmod(0o755)
    return python


def test_print_reserves_makes_no_folder(tmp_path: Path) -> None:
    """Found by review: --print-reserves made OUT (/tmp/gpu-reserves unless set), though it
    only prints."""
    assert reserves(tmp_path)["data"] == 20
    assert not (tmp_path / "out").exists()
    env = {**os.environ}
    for name in ("OUT", "ONLY", "BUDGET_S"):
        env.pop(name, None)
    proc = subprocess.run(["bash", str(SCRIPT), "--print-reserves"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.startswith("env=510\n") and proc.stderr == ""


@pytest.mark.parametrize("kind", ["a folder of files", "a file"])
def test_a_work_dir_the_script_did_not_make_is_refused(tmp_path: Path, kind: str) -> None:
    """Found by review: WORK_DIR was removed whatever it held (WORK_DIR=$HOME would be
    wiped). Only an empty folder, or one a session made (its marker file), is replaced."""
    repo = _repo_copy(tmp_path)
    work = tmp_path / "work"
    if kind == "a file":
        work.write_text("mine")
    else:
        work.mkdir()
        (work / "notes.txt").write_text("mine")
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, Path(sys.executable), "env"), cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0] == (f"error: gpu_session.sh: WORK_DIR {work} is not a folder this script "
                        "made (no .dlbox-gpu-session in it): it would be removed")
    assert lines[1].startswith("hint: ") and "WORK_DIR" in lines[1]
    assert (work / "notes.txt" if kind != "a file" else work).read_text() == "mine"
    assert not (tmp_path / "work" / "steps.jsonl").exists()


def test_a_work_dir_a_session_made_or_an_empty_one_is_used(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    (tmp_path / "work").mkdir()  # empty: taken
    python = _fake_python(tmp_path, "exit 0\n")
    for _ in range(2):  # the second time the first session's folder, with its marker
        result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"),
                                 "--smoke"], env=_session_env(tmp_path, python, "env"),
                                cwd=repo, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (tmp_path / "work" / ".dlbox-gpu-session").is_file()
        assert '"step": "env", "rc": 0,' in (tmp_path / "work" / "steps.jsonl").read_text()


def test_a_python_that_does_not_run_is_refused_before_any_step(tmp_path: Path) -> None:
    """Found by review: PYTHON=/no/such ran every step to its failure, logged "no
    platformdirs in this Python: using the copy...", and exited 0."""
    repo = _repo_copy(tmp_path)
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, Path("/no/such"), "env"), cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == ("error: gpu_session.sh: PYTHON=/no/such does not run: "
                        "'/no/such -c 1' failed")
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("summary", [True, False])
def test_a_session_where_no_step_passed_exits_3(tmp_path: Path, summary: bool) -> None:
    """Found by review: the session exited 0 when every step, and the summary, failed. A
    partial session still writes its summary."""
    repo = _repo_copy(tmp_path)
    if not summary:  # the summary fails too (its script is not there)
        (repo / "benchmarks" / "gpu_summary.py").unlink()
    python = _fake_python(tmp_path, "exit 1\n")  # every step fails
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, python, "env data"), cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert (tmp_path / "out" / "summary.json").is_file() == summary
    why = "no step ended with rc 0" if summary else "no summary.json was written"
    assert f"exit 3: {why}" in (tmp_path / "out" / "session.log").read_text()


@pytest.mark.parametrize("accuracy_line", [True, False])
def test_a_stopped_e2e_step_keeps_its_accuracy_line_time(tmp_path: Path,
                                                         accuracy_line: bool) -> None:
    """Found by review: the e2e stamper wrote its record only at the end of its input, so a
    step stopped by its limit (SIGTERM to its process group, as here) lost the time of an
    accuracy line it had printed, and the summary read that target as missing."""
    import signal
    import time

    repo = _repo_copy(tmp_path)
    line = 'echo "test accuracy: 50.00% on 100 test images"\n' if accuracy_line else ""
    python = _fake_python(tmp_path, 'case "$*" in *"dlbox train"*) echo "epoch 1/1"\n'
                          + line + "exec sleep 300 ;; esac\nexit 0\n")
    process = subprocess.Popen(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                               env=_session_env(tmp_path, python, "e2e1"), cwd=repo,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    log = tmp_path / "out" / "session.log"
    stamped = "] test accuracy:" if accuracy_line else "] epoch 1/1"
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and stamped in log.read_text()):  # the stamper has read it
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 143, output
    record = json.loads((tmp_path / "work" / "e2e1.e2e.json").read_text())
    assert record["stopped"] is True and list(record) == ["accuracy_line_s", "stopped"]
    if accuracy_line:
        assert 0 <= record["accuracy_line_s"] < 30
    else:
        assert record["accuracy_line_s"] is None
    assert not list((tmp_path / "work").glob("*.tmp"))


@pytest.mark.parametrize("time_mean, compared", [(None, False), (1.5, True)])
def test_airbench_is_measured_alone_when_every_speedrun_run_failed(
        tmp_path: Path, time_mean: float | None, compared: bool) -> None:
    """Found by review: step airbench passed --dlbox-json whenever speedrun.json was there,
    and when every speedrun run failed (its mean time null) the harness refused it (rc 2):
    airbench was not measured at all."""
    repo = _repo_copy(tmp_path)
    speedrun = json.dumps({"benchmark": "time_to_accuracy",
                           "summary": {"time_seconds": {"mean": time_mean}}})
    args = tmp_path / "airbench_args"
    python = _fake_python(tmp_path, 'case "$*" in\n'
                          '  *time_to_accuracy.py*) while [ $# -gt 0 ]; do\n'
                          f"    [ \"$1\" = --json ] && echo '{speedrun}' > \"$2\"; shift; done ;;\n"
                          f'  *"airbench_side_by_side.py --script"*) echo "$*" > "{args}" ;;\n'
                          "esac\nexit 0\n")
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_session.sh"), "--smoke"],
                            env=_session_env(tmp_path, python, "speedrun airbench"), cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "out" / "speedrun.json").read_text())["summary"] == {
        "time_seconds": {"mean": time_mean}}
    assert ("--dlbox-json" in args.read_text()) is compared  # airbench ran either way
    if not compared:
        assert "no mean time in" in (tmp_path / "out" / "session.log").read_text()
