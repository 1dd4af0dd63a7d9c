"""`dlbox image build|run` against a real Docker engine (required when CI=true).

The CPU image of the built-in project is built for real (torch from a local wheelhouse, on
the registry-free base image that scripts/build-base-image.sh makes), then:
- its user is not root;
- `dlbox image run -- dlbox train` trains one epoch on tiny data inside it and leaves the
  run folder on the host;
- a code-only change rebuilds with the dependency layer from the cache, and the image it
  replaced is removed (kept while a container uses it);
- `docker stop` mid-training reaches the training process (SIGTERM) and the checkpoint it
  leaves loads and resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import require

from dlbox.data.synthetic import write_fake_cifar10

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TAG = os.environ.get("DLBOX_TEST_IMAGE", "dlbox:cpu")
BASE = os.environ.get("DLBOX_BASE_IMAGE", "dlbox-base:bookworm")
WHEELHOUSE = Path(os.environ.get("DLBOX_WHEELHOUSE", "/opt/wheels"))
BUILD_TIMEOUT_S = 1800


def dlbox(*args: str, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlbox", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def torch_wheels() -> list[Path]:
    return sorted(WHEELHOUSE.glob("torch-*+cpu-*.whl")) if WHEELHOUSE.is_dir() else []


@pytest.fixture(scope="module")
def engine() -> Any:
    client = None
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception:  # noqa: BLE001 - no engine: skipped here, a failure in CI
        client = None
    require(client is not None, "a Docker engine")
    return client


@pytest.fixture(scope="module")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lock")


@pytest.fixture(scope="module")
def cpu_image(engine: Any, lock_dir: Path) -> dict[str, Any]:
    """Build the built-in project's CPU image (lock written to a temp folder, not the repo)."""
    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    try:
        engine.images.get(BASE)
        have_base = True
    except Exception:  # noqa: BLE001
        have_base = False
    require(have_base, f"the base image {BASE} (scripts/build-base-image.sh)")
    result = dlbox("image", "build", "--cpu", "--tag", TAG, "--wheelhouse", str(WHEELHOUSE),
                   "--base-image", BASE, "--lock", str(lock_dir / "dlbox.lock"), "--json",
                   timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["variant"] == "cpu" and outcome["framework"] == "torch"
    assert outcome["smoke"].startswith("smoke test passed on CPU"), outcome["smoke"]
    assert (lock_dir / "dlbox.lock").is_file()
    return outcome


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "cifar"
    write_fake_cifar10(root, n_train=1000, n_test=100, seed=0)
    for path in [root, *root.rglob("*")]:  # readable by the container's uid 1000
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def test_image_user_is_not_root_and_labels_record_the_build(engine: Any,
                                                          cpu_image: dict[str, Any]) -> None:
    image = engine.images.get(TAG)
    assert image.attrs["Config"]["User"] == "1000:1000"
    labels = image.attrs["Config"]["Labels"]
    assert labels["dlbox.framework.version"] == cpu_image["framework_version"]
    assert labels["dlbox.device"] == "cpu"
    assert labels["org.opencontainers.image.base.name"] == BASE
    assert image.attrs["Config"]["Entrypoint"] == ["/usr/bin/tini", "--"]
    out = engine.containers.run(TAG, ["id", "-u"], remove=True).decode().strip()
    assert out == "1000"
    # The lock pins torch to the exact build in the image, and records the extras.
    lock = json.loads(Path(cpu_image["lock"]).read_text())
    assert "torch-cpu" in json.dumps(lock)
    assert lock["builds"]["torch-cpu"]["extras"] == ["notebook"]


def test_the_image_venv_is_consistent_and_pip_check_passes(engine: Any,
                                                          cpu_image: dict[str, Any]) -> None:
    # The image's venv was the system stage's with the deps stage's copied over it: what
    # pip had removed in deps came back (setuptools 66's files beside the pinned 84), and
    # `pip check` failed in every image (torch wants setuptools>=77).
    out = engine.containers.run(TAG, ["pip", "check"], remove=True).decode()
    assert "No broken requirements found" in out, out
    listing = engine.containers.run(
        TAG, ["sh", "-c", "ls /opt/venv/lib/python3*/site-packages"], remove=True).decode()
    dists = [name.rsplit("-", 1)[0].lower().replace("_", "-")
             for name in listing.split() if name.endswith(".dist-info")]
    assert dists and len(dists) == len(set(dists)), sorted(dists)  # one version of each
    # The smoke test runs pip check too (a broken venv fails the build).
    from types import SimpleNamespace

    from dlbox.container.smoke import run_smoke

    spec = SimpleNamespace(project_kind="builtin", framework=SimpleNamespace(
        name="torch", version=cpu_image["framework_version"], cuda=None))
    result = run_smoke(engine, TAG, spec, gpu=False)  # type: ignore[arg-type]
    checks = {check.name: check for check in result.checks}
    assert result.ok and checks["pip_check"].ok, result.summary()
    assert "No broken requirements found" in checks["pip_check"].detail


def test_train_inside_the_image_leaves_the_run_on_the_host(cpu_image: dict[str, Any],
                                                           data_dir: Path,
                                                           tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = dlbox("image", "run", "--tag", TAG, "--data", str(data_dir), "--runs", str(runs),
                   "--", "dlbox", "train", "--model", "tiny", "--epochs", "1",
                   "--num-train", "500", "--run-dir", "runs/one", "--no-progress")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test accuracy" in result.stdout
    run = runs / "one"
    for name in ("config.json", "manifest.json", "metrics.json", "predictions.csv",
                 "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["torch"].startswith(cpu_image["framework_version"].split("+")[0])
    config = json.loads((run / "config.json").read_text())
    assert config["data_dir"] == "/data"
    rows = (run / "predictions.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 100
    # Files written in the container belong to the caller (uid 1000 for a root caller).
    expected_uid = 1000 if os.geteuid() == 0 else os.geteuid()
    assert (run / "metrics.json").stat().st_uid == expected_uid


def test_run_refuses_a_gpu_the_host_cannot_give(cpu_image: dict[str, Any],
                                                tmp_path: Path) -> None:
    from dlbox.hostenv.probe import probe_host

    if probe_host(deep=False).nvidia.gpus:
        pytest.skip("this host has an NVIDIA GPU")
    result = dlbox("image", "run", "--tag", TAG, "--gpus", "all", "--runs",
                   str(tmp_path / "runs"), "--", "python", "-c", "print('ran')")
    assert result.returncode == 1
    assert "ran" not in result.stdout
    assert "error: --gpus asks for all GPUs" in result.stderr
    assert "NVIDIA driver" in result.stderr and "hint:" in result.stderr


def run_containers(engine: Any) -> list[Any]:
    return engine.containers.list(all=True, filters={"label": "dlbox.image-run"})


def test_a_command_that_exits_at_once_keeps_its_output_and_exit_code(
        engine: Any, cpu_image: dict[str, Any], tmp_path: Path) -> None:
    # The output stream is attached before start: before, one run in a few lost its output
    # or waited forever on a stream that opened after the container had exited.
    before = {c.id for c in run_containers(engine)}
    for attempt in range(6):
        result = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "--",
                       "sh", "-c", f"echo out{attempt}; echo err{attempt} >&2; exit 7",
                       timeout=60, cwd=tmp_path)  # no project here: no notes of its own
        assert (result.returncode, result.stdout, result.stderr) == (
            7, f"out{attempt}\n", f"err{attempt}\n")
    result = dlbox("image", "run", "--tag", TAG, "--runs", str(tmp_path / "runs"), "--",
                   "true", timeout=60, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert {c.id for c in run_containers(engine)} <= before  # each one removed


def test_the_runs_folder_a_killed_image_run_made_goes_with_its_container(
        engine: Any, cpu_image: dict[str, Any], tmp_path: Path) -> None:
    """Review: `dlbox image run -- CMD` SIGKILLed left the empty ./runs it made for good (one
    that ends removes it): the next image run removes the container and that folder."""
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--", "sh", "-c",
         "echo ready; sleep 2"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        assert (tmp_path / "runs").is_dir()
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(4)  # the container's command ends; its container stays, exited
    result = dlbox("image", "run", "--tag", TAG, "--", "true", timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "left behind by a dlbox image run that was killed" in result.stderr
    assert not (tmp_path / "runs").exists(), result.stderr


def test_a_runs_folder_a_running_image_run_mounts_is_not_removed_with_an_orphan(
        engine: Any, cpu_image: dict[str, Any], tmp_path: Path) -> None:
    """Re-review: a killed run's container, labelled with the ./runs it made, was removed by
    a later image run with that folder, empty, while another dlbox's running container had
    it mounted (its writes then failed: 'Directory nonexistent')."""
    gone = subprocess.run([sys.executable, "-c", "from dlbox.processes import owner_id; "
                           "print(owner_id())"], capture_output=True, text=True, check=True)
    runs = tmp_path / "p" / "runs"
    runs.mkdir(parents=True)
    name = f"dlbox-test-{uuid.uuid4().hex[:8]}"
    orphan = engine.containers.create(TAG, ["true"], name=f"{name}-orphan", labels={
        "dlbox.image-run": "1", "dlbox.owner": gone.stdout.strip(),
        "dlbox.runs-made": str(runs)})
    user = engine.containers.run(TAG, ["sleep", "120"], name=f"{name}-user", detach=True,
                                 labels={"dlbox.image-run": "1"},
                                 volumes={str(runs): {"bind": "/workspace/runs", "mode": "rw"}})
    try:
        orphan.start()
        orphan.wait(timeout=60)
        (tmp_path / "q").mkdir()
        result = dlbox("image", "run", "--tag", TAG, "--", "true", timeout=120,
                       cwd=tmp_path / "q")
        assert result.returncode == 0, result.stderr
        assert "left behind by a dlbox image run that was killed" in result.stderr
        assert runs.is_dir()  # still the running container's
    finally:
        for container in (user, orphan):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_a_second_ctrl_c_kills_a_command_that_ignores_sigterm(
        engine: Any, cpu_image: dict[str, Any], tmp_path: Path) -> None:
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--runs",
         str(tmp_path / "runs"), "--", "sh", "-c", "trap '' TERM; echo ready; sleep 300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)
        time.sleep(2)
        assert process.poll() is None  # the command ignores SIGTERM; the grace period runs
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=25)
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 137, err  # 128 + SIGKILL
    assert seconds < 20, seconds  # not the 30 s grace period
    assert "stopping the container" in err and "killing the container (SIGKILL)" in err
    assert not [c for c in run_containers(engine) if "sleep 300" in " ".join(
        c.attrs["Config"]["Cmd"] or [])]


SAVES_ON_SIGTERM = """
import signal, sys, time
def save(*_):
    open("/workspace/runs/saved", "w").write("saved")
    sys.exit(143)
signal.signal(signal.SIGTERM, save)
print("training", flush=True)
time.sleep(300)
"""


def test_a_stop_reaches_a_training_a_shell_execs_and_a_shell_wrapper_is_noted(
        cpu_image: dict[str, Any], tmp_path: Path) -> None:
    """Review: through `sh -c 'cd ... && python t.py; echo done'` SIGTERM reached the shell
    alone, and the training was killed unsaved. The docs' way (`exec`) is shown to work,
    and the other form is noted before the run."""
    import signal

    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)  # for the container's user (uid 1000 under a root caller)
    (runs / "t.py").write_text(SAVES_ON_SIGTERM)
    notes = []
    for shell, script in (("sh", "cd /workspace/runs && exec python3 t.py"),
                          ("sh", "cd /workspace/runs && python3 t.py; echo done")):
        process = subprocess.Popen(
            [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--runs", str(runs),
             "--", shell, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL, cwd=tmp_path)
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "training\n"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 143, err
        notes.append("start the long command with exec" in err)
        if "echo done" not in script:
            assert (runs / "saved").read_text() == "saved"
            (runs / "saved").unlink()
    assert notes == [False, True]


def test_code_only_change_rebuilds_with_the_dependency_layer_cached(
        engine: Any, cpu_image: dict[str, Any], lock_dir: Path, tmp_path: Path) -> None:
    from dlbox.container.build import BuildRequest, build_image
    from dlbox.container.context import copy_project
    from dlbox.container.project import detect_project

    project = copy_project(detect_project(None), tmp_path / "dlbox-copy")
    shutil.copy2(lock_dir / "dlbox.lock", project / "dlbox.lock")
    request = BuildRequest(project_dir=project, device="cpu", base_image=BASE,
                           wheelhouse=WHEELHOUSE, extras=("notebook",), tag="dlbox-copy:test",
                           smoke=False)
    first = build_image(request, log=lambda line: None)
    changed = project / "src" / "dlbox" / "cli" / "models.py"
    # a change no earlier run made: the engine keeps layers across runs, and a COPY of the
    # same files as an earlier test run's is cached (the lock, once in it, made each unique)
    changed.write_text(changed.read_text() + f"\n# a code-only change {uuid.uuid4()}\n")
    start = time.monotonic()
    outcome = build_image(request, log=lambda line: None)
    seconds = time.monotonic() - start
    # The image the rebuild took the tag from is gone, not left dangling.
    assert outcome.image_id != first.image_id
    assert _image_gone(engine, first.image_id)
    assert any(note.startswith("removed the image this build replaced") for note in
               outcome.notes), outcome.notes
    assert outcome.build is not None
    steps = outcome.build.steps
    deps = [s for s in steps if s.instruction.startswith("RUN pip install --no-deps")
            and "requirements.lock" in s.instruction]
    code = [s for s in steps if s.instruction.startswith("COPY --chown")]
    assert deps and all(s.cached for s in deps), [(s.instruction[:50], s.cached) for s in steps]
    assert code and not any(s.cached for s in code)
    assert seconds < 300, seconds  # generous: the point is that torch was not reinstalled

    # An image that a container still uses is kept, and the note says how to clear it.
    container = engine.containers.create(outcome.image_id, ["true"])
    try:
        changed.write_text(changed.read_text() + f"\n# another change {uuid.uuid4()}\n")
        third = build_image(request, log=lambda line: None)
        assert not _image_gone(engine, outcome.image_id)
        assert any("is kept: a container uses it" in note for note in third.notes), \
            third.notes
    finally:
        container.remove(force=True)


def _remove_images(engine: Any, *names: str | None, force: bool = False) -> None:
    """A test's clean-up: remove each image named (None: none), those already gone too."""
    import docker

    for name in names:
        if name is None:
            continue
        try:
            engine.images.remove(name, force=force)
        except docker.errors.ImageNotFound:
            pass


def _image_gone(engine: Any, image_id: str) -> bool:
    import docker

    try:
        engine.images.get(image_id)
    except docker.errors.ImageNotFound:
        return True
    return False


def test_docker_stop_reaches_training_and_the_checkpoint_survives(
        engine: Any, cpu_image: dict[str, Any], data_dir: Path, tmp_path: Path) -> None:
    import torch

    runs = tmp_path / "runs"
    label = f"dlbox-test-{os.getpid()}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "dlbox", "image", "run", "--tag", TAG, "--data",
               str(data_dir), "--runs", str(runs), "--env", f"DLBOX_TEST_LABEL={label}", "--",
               "dlbox", "train", "--model", "tiny", "--epochs", "500", "--run-dir",
               "runs/long", "--no-progress", "--no-evaluate"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    checkpoint = runs / "long" / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 180
        while not checkpoint.is_file() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
        assert checkpoint.is_file(), "no checkpoint within 180 s"
        containers = [c for c in engine.containers.list()
                      if f"DLBOX_TEST_LABEL={label}" in (c.attrs["Config"]["Env"] or [])]
        assert len(containers) == 1
        containers[0].stop(timeout=30)  # what `docker stop` does: SIGTERM, SIGKILL after 30 s
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, (out[-1500:], err[-1500:])  # 128 + SIGTERM, from train
    assert "SIGTERM" in out + err
    assert "resume with: dlbox train --resume" in out + err
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    assert state["model"] and 0 < len(json.loads((runs / "long" / "metrics.json").read_text())
                                      .get("history", [])) < 500
    metrics = json.loads((runs / "long" / "metrics.json").read_text())
    assert metrics["history"][-1]["epoch"] >= 1


def test_a_projects_syntax_error_fails_the_build_and_a_relock_frees_the_old_deps_stage(
        engine: Any, tmp_path: Path) -> None:
    # Two defects, one project: code with a syntax error passed the smoke test (it only
    # imported torch), and every dependency change left the old deps stage (the venv,
    # gigabytes) as an untagged image nothing referred to.

    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    project = tmp_path / "dlbox-smoke-syntax"
    project.mkdir()
    (project / "requirements.txt").write_text("torch\n")
    (project / "train.py").write_text("import torch\n\ndef main(:\n    pass\n")
    tag = "dlbox-test-smoke:cpu"
    build = ("image", "build", str(project), "--cpu", "--tag", tag, "--base-image", BASE,
             "--wheelhouse", str(WHEELHOUSE))
    try:
        failed = dlbox(*build, timeout=BUILD_TIMEOUT_S)
        assert failed.returncode == 1, failed.stderr[-3000:]
        assert "error: the project's code does not compile: train.py:3: invalid syntax" \
            in failed.stderr, failed.stderr[-3000:]
        assert not (project / "dlbox.lock").exists()
        assert not engine.images.list(filters={"dangling": True,
                                               "label": "dlbox.project=dlbox-smoke-syntax"})

        (project / "train.py").write_text("import torch\n\ndef main():\n    pass\n")
        first = dlbox(*build, timeout=BUILD_TIMEOUT_S)
        assert first.returncode == 0, first.stderr[-3000:]
        old_deps = engine.images.get(f"{tag}-deps").id

        (project / "requirements.txt").write_text("torch\nsix\n")
        relocked = dlbox(*build, "--relock", timeout=BUILD_TIMEOUT_S)
        assert relocked.returncode == 0, relocked.stderr[-3000:]
        assert engine.images.get(f"{tag}-deps").id != old_deps
        assert _image_gone(engine, old_deps)
        assert "removed the dependency stage this build replaced" in relocked.stdout
    finally:
        _remove_images(engine, tag, f"{tag}-deps")


def test_an_image_that_fails_its_smoke_test_is_kept_under_one_name_until_a_build_passes(
        engine: Any, tmp_path: Path) -> None:
    # An image that failed its smoke test (here: the project's package does not import) was
    # kept untagged, one more per attempt, named only by an id in the error's hint.
    import docker

    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    project = tmp_path / "dlbox-smoke-import"
    (project / "brokenpkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "dlbox-smoke-import"\nversion = "0.1"\ndependencies = ["torch"]\n\n'
        '[tool.setuptools]\npackages = ["brokenpkg"]\n')
    init = project / "brokenpkg" / "__init__.py"
    init.write_text('raise ImportError("brokenpkg needs a module it does not list")\n')
    (project / "data").mkdir()  # a package dlbox leaves out: a note the build says once
    (project / "data" / "__init__.py").write_text("")
    tag = "dlbox-test-failed:cpu"
    failed_tag = f"{tag}-failed"
    build = ("image", "build", str(project), "--cpu", "--tag", tag, "--base-image", BASE,
             "--wheelhouse", str(WHEELHOUSE))
    try:
        first = dlbox(*build, timeout=BUILD_TIMEOUT_S)
        assert first.returncode == 1, first.stderr[-3000:]
        assert "fails its smoke test" in first.stderr and "import brokenpkg" in first.stderr, \
            first.stderr[-3000:]
        assert f"kept as {failed_tag} for a look, its dependency stage as {failed_tag}-deps " \
               "(the next build replaces them)" in first.stderr, first.stderr[-3000:]
        assert f"docker run --rm -it {failed_tag} bash" in first.stderr
        assert "==> note: data/ is a Python package" in first.stderr, first.stderr[-3000:]
        kept = engine.images.get(failed_tag)
        assert kept.labels.get("dlbox.project") == "dlbox-smoke-import"
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(tag)  # the name is given only to an image that passed
        assert not (project / "dlbox.lock").exists()
        # its deps stage beside it (review: left untagged for good, 1.27 GB, once the fix
        # changed the dependencies), removed by the build that passes (below)
        failed_deps = engine.images.get(f"{failed_tag}-deps")
        assert failed_deps.labels.get("dlbox.stage") == "deps"

        init.write_text('raise ImportError("still broken")\n')  # another image, same fault
        second = dlbox(*build, timeout=BUILD_TIMEOUT_S)
        assert second.returncode == 1, second.stderr[-3000:]
        assert engine.images.get(failed_tag).id != kept.id
        assert _image_gone(engine, kept.id)  # replaced, not piled up

        init.write_text("VALUE = 1\n")
        fixed = dlbox(*build, timeout=BUILD_TIMEOUT_S)
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        # said as the build started, not again at its end
        assert (fixed.stdout + fixed.stderr).count("data/ is a Python package") == 1, \
            fixed.stdout[-2000:]
        assert f"removed {failed_tag}" in fixed.stdout, fixed.stdout[-2000:]
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(failed_tag)
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(f"{failed_tag}-deps")
        # the same dependencies: the failed builds' deps stage is this one's, kept as its own
        assert engine.images.get(f"{tag}-deps").id == failed_deps.id
        assert not engine.images.list(filters={"dangling": True,
                                               "label": "dlbox.project=dlbox-smoke-import"})
    finally:
        _remove_images(engine, tag, f"{tag}-deps", failed_tag, f"{failed_tag}-deps")


def test_a_folder_of_the_same_name_elsewhere_does_not_remove_this_ones_image(
        engine: Any, tmp_path: Path) -> None:
    # Two project folders called the same get the same default tag: building the second
    # removed the first one's image, and `image run` in the first folder then ran the second
    # one's code without a word.

    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    folders = [tmp_path / "a" / "dlbox-twin", tmp_path / "b" / "dlbox-twin"]
    for folder, word in zip(folders, ("first", "second"), strict=True):
        folder.mkdir(parents=True)
        (folder / "requirements.txt").write_text("torch\n")
        (folder / "main.py").write_text(f"print('I am the {word} twin')\n")
    build = ("image", "build", "--base-image", BASE, "--wheelhouse", str(WHEELHOUSE))
    first_id = None
    try:
        first = dlbox(*build, cwd=folders[0], timeout=BUILD_TIMEOUT_S)
        assert first.returncode == 0, first.stderr[-3000:]
        first_id = engine.images.get("dlbox-twin:latest").id
        second = dlbox(*build, cwd=folders[1], timeout=BUILD_TIMEOUT_S)
        assert second.returncode == 0, second.stderr[-3000:]
        assert engine.images.get("dlbox-twin:latest").id != first_id
        assert not _image_gone(engine, first_id), "the other folder's image was removed"
        assert "named the image of another project folder called 'dlbox-twin'" \
            in second.stdout, second.stdout[-2000:]

        ran = dlbox("image", "run", "--no-tty", "--", "python3", "main.py", cwd=folders[0],
                    timeout=300)
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert "I am the second twin" in ran.stdout  # the tag's image: the second build's
        assert "warning: dlbox-twin:latest was built from another project folder" \
            in ran.stderr, ran.stderr[-2000:]
        same = dlbox("image", "run", "--no-tty", "--", "python3", "main.py", cwd=folders[1],
                     timeout=300)
        assert same.returncode == 0 and "warning" not in same.stderr, same.stderr[-2000:]
        # A runs folder with a run in it is no project file: still no warning. An edit is:
        # the image runs the code of its build, and dlbox says so.
        made = dlbox("image", "run", "--no-tty", "--", "sh", "-c", "mkdir /workspace/runs/r1",
                     cwd=folders[1], timeout=300)
        assert made.returncode == 0 and (folders[1] / "runs" / "r1").is_dir(), made.stderr
        again = dlbox("image", "run", "--no-tty", "--", "true", cwd=folders[1], timeout=300)
        assert again.returncode == 0 and "warning" not in again.stderr, again.stderr[-2000:]
        (folders[1] / "main.py").write_text("print('I am the edited twin')\n")
        edited = dlbox("image", "run", "--no-tty", "--tag", "dlbox-twin:latest", "--",
                       "python3", "main.py", cwd=folders[1], timeout=300)
        assert edited.returncode == 0 and "I am the second twin" in edited.stdout
        assert "warning: the project's files changed since dlbox-twin:latest was built" \
            in edited.stderr, edited.stderr[-2000:]
    finally:
        _remove_images(engine, "dlbox-twin:cpu", "dlbox-twin:latest", "dlbox-twin:cpu-deps",
                       first_id, force=True)


def test_the_resolve_goes_through_the_proxy_the_build_is_given(engine: Any,
                                                               tmp_path: Path) -> None:
    """Found by review: HTTP(S)_PROXY reached `docker build` but not the container in which
    pip resolves a new project's requirements, which went round the proxy (and failed where
    only the proxy reaches the index); a proxy that refuses got "offline?" as its hint.
    A proxy of this test's own, which refuses every CONNECT, shows what pip asked it."""
    import ipaddress
    import socketserver
    import threading

    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    asked: list[str] = []

    class Refusing(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            asked.append(self.rfile.readline().decode("latin-1").strip())
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", 0), Refusing) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        ipam = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
        # an engine that names no gateway (Docker 20.10) gives the subnet's first address
        gateway = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
        url = f"http://{gateway}:{proxy.server_address[1]}"
        project = tmp_path / "dlbox-proxied"
        project.mkdir()
        (project / "requirements.txt").write_text("torch\nsix\n")  # six: not in the wheelhouse
        env = {name: value for name, value in os.environ.items()
               if name.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
        env.update(HTTPS_PROXY=url, HTTP_PROXY=url)
        try:
            built = dlbox("image", "build", str(project), "--cpu", "--tag", "dlbox-test-proxy:cpu",
                          "--base-image", BASE, "--wheelhouse", str(WHEELHOUSE),
                          timeout=BUILD_TIMEOUT_S, env=env)
        finally:
            proxy.shutdown()
            _remove_images(engine, "dlbox-test-proxy:cpu", "dlbox-test-proxy:cpu-deps")
    assert built.returncode == 1, built.stderr[-3000:]
    assert any(line.startswith("CONNECT ") for line in asked), asked
    assert ("error: pip could not reach the package index through the proxy while resolving "
            "the requirements inside the image") in built.stderr, built.stderr[-3000:]
    assert "hint: pip could not get through the proxy that HTTP_PROXY / HTTPS_PROXY name" \
        in built.stderr
    assert not (project / "dlbox.lock").exists()


def test_a_build_that_fails_has_already_said_the_projects_notes(engine: Any,
                                                                tmp_path: Path) -> None:
    # Found by review: the project's notes (a left-out `data/` package, a link outside the
    # project) were printed only after a build that passed; a failed or long build never
    # showed them. A base image that is not there fails the build at its first step.
    project = tmp_path / "dlbox-noted"
    (project / "data").mkdir(parents=True)
    (project / "data" / "__init__.py").write_text("")
    (project / "requirements.txt").write_text("torch\n")
    (tmp_path / "shared.py").write_text("X = 1\n")
    (project / "shared.py").symlink_to(tmp_path / "shared.py")
    failed = dlbox("image", "build", str(project), "--cpu", "--tag", "dlbox-test-noted:cpu",
                   "--base-image", "dlbox-test-no-such-base:1", "--wheelhouse", str(WHEELHOUSE))
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "error: image build failed" in failed.stderr, failed.stderr[-3000:]
    notes = [line for line in failed.stderr.splitlines() if line.startswith("==> note: ")]
    assert any("data/ is a Python package" in note for note in notes), failed.stderr[-3000:]
    assert any("shared.py is a link to" in note for note in notes), failed.stderr[-3000:]


def test_a_build_that_fails_after_the_deps_stage_leaves_it_tagged_and_nothing_dangling(
        engine: Any, tmp_path: Path) -> None:
    # Found by review: a build whose project install failed (setuptools refused the
    # project's pyproject.toml) left its deps stage (the venv, gigabytes) untagged, and the
    # last image of the failed stage dangling: `docker image prune` was the only way out.
    # Here setuptools finds no folder for the package the project lists.
    require(bool(torch_wheels()), f"a CPU torch wheel in {WHEELHOUSE} (DLBOX_WHEELHOUSE)")
    project = tmp_path / "dlbox-typo"
    (project / "typopkg").mkdir(parents=True)
    (project / "typopkg" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "dlbox-typo"\nversion = "0.1"\ndependencies = ["torch"]\n\n'
        f'[tool.setuptools]\npackages = ["typopkgs"]\n# {uuid.uuid4()}\n')
    tag = "dlbox-test-typo:cpu"
    before = {image.id for image in engine.images.list(all=True)}
    try:
        failed = dlbox("image", "build", str(project), "--cpu", "--tag", tag, "--base-image",
                       BASE, "--wheelhouse", str(WHEELHOUSE), timeout=BUILD_TIMEOUT_S)
        assert failed.returncode == 1, failed.stderr[-3000:]
        assert "installing the project dlbox-typo failed" in failed.stderr, \
            failed.stderr[-3000:]
        deps = engine.images.get(f"{tag}-failed-deps")
        assert deps.labels.get("dlbox.stage") == "deps"
        assert f"{tag}-failed-deps" in failed.stderr.split("hint:", 1)[-1], \
            failed.stderr[-3000:]
        # what the build added is the deps stage and its steps (`docker images -a`): the
        # image stage's steps, the copy of the venv among them, are gone
        chain = {layer["Id"] for layer in deps.history()}
        added = {image.id for image in engine.images.list(all=True)} - before
        assert added <= chain, added - chain
        assert not (project / "dlbox.lock").exists()
    finally:
        _remove_images(engine, f"{tag}-failed-deps")
