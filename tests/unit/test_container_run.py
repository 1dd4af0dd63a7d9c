"""`dlbox image run` policy (GPUs, user, mounts) and the engine wrapper's error mapping.

Nothing here needs a Docker engine: the host is described with hostenv facts, and engine
errors are stand-in exceptions carrying the engine's message.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import sys
import threading
from pathlib import Path

import pytest

from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.container.run import (
    RunOptions,
    check_gpus_available,
    check_ports_free,
    check_shm_size,
    container_user,
    folder_names,
    made_here_note,
    parse_gpus,
    parse_publish,
    parse_volumes,
    prepare_runs_dir,
    run_request,
    runs_go_into_the_image_note,
    shell_wrapper_note,
)
from dlbox.errors import ContainerError, HostEnvError, UsageError
from dlbox.hostenv.facts import DockerFacts, GpuFacts, HostFacts, NvidiaFacts

TWO_GPUS = (GpuFacts(0, "NVIDIA A100", "8.0"), GpuFacts(1, "NVIDIA A100", "8.0"))


def host(*, driver: str | None = "560.35.03", gpus: tuple[GpuFacts, ...] = TWO_GPUS,
         error: str | None = None, reachable: bool = True,
         runtimes: tuple[str, ...] = ("nvidia", "runc"), cdi: bool = False) -> HostFacts:
    return HostFacts(
        nvidia=NvidiaFacts(source="nvml", driver_version=driver, gpus=gpus, error=error),
        docker=DockerFacts(reachable=reachable, runtimes=runtimes, cdi_nvidia=cdi),
    )


# ---- --gpus ------------------------------------------------------------------------------

def test_parse_gpus_defaults_follow_the_image() -> None:
    assert parse_gpus(None, "gpu") == engine.GpuRequest(count=-1)
    assert parse_gpus(None, "cpu") is None
    assert parse_gpus(None, None) is None  # not a dlbox image: no GPU unless asked


@pytest.mark.parametrize("value, expected", [
    ("all", engine.GpuRequest(count=-1)),
    (" ALL ", engine.GpuRequest(count=-1)),
    ("2", engine.GpuRequest(count=2)),
    ("0,1", engine.GpuRequest(device_ids=("0", "1"))),
    ("device=1", engine.GpuRequest(device_ids=("1",))),
    ("0, 2", engine.GpuRequest(device_ids=("0", "2"))),
    ("none", None), ("", None), ("device=0", engine.GpuRequest(device_ids=("0",))),
])
def test_parse_gpus_values(value: str, expected: engine.GpuRequest | None) -> None:
    assert parse_gpus(value, "gpu") == expected
    # An explicit value wins over the image's label, in both directions.
    assert parse_gpus(value, "cpu") == expected


def test_parse_gpus_uuid_and_garbage() -> None:
    # The UUID goes to the NVIDIA runtime as nvidia-smi prints it ("GPU-..."), not lowercased.
    uuid = "GPU-0A1B2C3D-4e5f-6789-abcd-ef0123456789"
    assert parse_gpus(uuid, "gpu") == engine.GpuRequest(device_ids=(uuid,))
    assert parse_gpus(f"Device={uuid},1", "cpu") == engine.GpuRequest(device_ids=(uuid, "1"))
    for bad in ("many", "-1", "1.5", "0,x"):
        with pytest.raises(UsageError) as info:
            parse_gpus(bad, "gpu")
        assert "all" in (info.value.hint or "")


def test_parse_gpus_mig_devices_pass_through_as_docker_takes_them() -> None:
    # `docker run --gpus device=ID` hands each id to the runtime unchanged: case and the
    # legacy form's /<gpu instance>/<compute instance> stay as nvidia-smi -L prints them.
    mig = "MIG-4f4c8b9e-1d2a-5c3b-9e8f-0a1b2c3d4e5f"
    legacy = "MIG-GPU-0A1B2C3D-4e5f-6789-abcd-ef0123456789/1/0"
    assert parse_gpus(mig, "gpu") == engine.GpuRequest(device_ids=(mig,))
    assert parse_gpus(legacy, "cpu") == engine.GpuRequest(device_ids=(legacy,))
    request = parse_gpus(f"device={mig},{legacy},0", "gpu")
    assert request == engine.GpuRequest(device_ids=(mig, legacy, "0"))
    assert request.device_request()["DeviceIDs"] == [mig, legacy, "0"]
    for bad in ("MIG-", "MIG-xyz", "MIG-GPU-0a1b/1", "MIG-GPU-0a1b/1/x", "MIG-0a1b/1/0"):
        with pytest.raises(UsageError) as info:
            parse_gpus(bad, "gpu")
        assert "MIG-" in (info.value.hint or "")


def test_gpu_request_describe() -> None:
    assert engine.GpuRequest(count=-1).describe() == "all GPUs"
    assert engine.GpuRequest().describe() == "all GPUs"
    assert engine.GpuRequest(count=2).describe() == "2 GPU(s)"
    assert engine.GpuRequest(device_ids=("0", "1")).describe() == "GPU 0,1"


def test_gpu_device_request() -> None:
    pytest.importorskip("docker")
    assert engine.GpuRequest(count=-1).device_request()["Count"] == -1
    ids = engine.GpuRequest(device_ids=("1",)).device_request()
    assert ids["DeviceIDs"] == ["1"] and ids["Capabilities"] == [["gpu"]]


# ---- can this host give the GPUs? ----------------------------------------------------------

def test_healthy_host_passes() -> None:
    check_gpus_available(engine.GpuRequest(count=-1), host())
    check_gpus_available(engine.GpuRequest(count=2), host())
    check_gpus_available(engine.GpuRequest(device_ids=("1",)), host())
    # CDI instead of the nvidia runtime is fine too.
    check_gpus_available(engine.GpuRequest(count=1), host(runtimes=("runc",), cdi=True))
    # An engine the probe could not reach is not judged here (connect() reports it).
    check_gpus_available(engine.GpuRequest(count=1), host(reachable=False, runtimes=()))


def test_no_driver() -> None:
    with pytest.raises(HostEnvError) as info:
        check_gpus_available(engine.GpuRequest(count=-1), host(driver=None, gpus=()))
    assert "no working NVIDIA driver" in info.value.message
    assert "--gpus none" in (info.value.hint or "")


def test_broken_driver_names_the_error() -> None:
    with pytest.raises(HostEnvError) as info:
        check_gpus_available(engine.GpuRequest(count=-1),
                             host(error="Failed to initialize NVML: Driver/library version "
                                        "mismatch"))
    assert "Driver/library version mismatch" in info.value.message


def test_driver_without_gpus() -> None:
    with pytest.raises(HostEnvError, match="sees no GPU"):
        check_gpus_available(engine.GpuRequest(count=-1), host(gpus=()))


def test_more_gpus_than_the_host_has() -> None:
    with pytest.raises(HostEnvError) as info:
        check_gpus_available(engine.GpuRequest(count=3), host())
    assert "asks for 3 GPUs; this host has 2" in info.value.message
    assert "--gpus 2" in (info.value.hint or "")


def test_engine_without_nvidia_runtime() -> None:
    with pytest.raises(HostEnvError) as info:
        check_gpus_available(engine.GpuRequest(count=-1), host(runtimes=("runc",)))
    assert "no NVIDIA runtime" in info.value.message
    assert "nvidia-container-toolkit" in (info.value.hint or "")


# ---- user, shm, mounts ---------------------------------------------------------------------

def test_container_user() -> None:
    assert container_user(0, 0) == (S.IMAGE_UID, S.IMAGE_GID) == (1000, 1000)
    assert container_user(1234, 5678) == (1234, 5678)
    assert container_user(1000, 1000) == (1000, 1000)


def test_check_shm_size() -> None:
    assert check_shm_size(" 2g ") == "2g"
    assert check_shm_size("512M") == "512M" and check_shm_size("1073741824") == "1073741824"
    with pytest.raises(UsageError):
        check_shm_size("lots")
    assert check_shm_size("1.5g") == "1.5g" and check_shm_size("1m") == "1m"
    # 0 would silently be the engine's 64 MB default; a few KiB kills any DataLoader worker.
    for small in ("0", "0g", "100k", "1000"):
        with pytest.raises(UsageError, match="under 1 MiB"):
            check_shm_size(small)


@pytest.mark.parametrize("tag", ["dlbox:cpu", "myproj", "registry:5000/team/app:v1.2_rc-1",
                                 "localhost/a_b__c-d:1.0", "a.b/c:" + "x" * 128])
def test_valid_image_tags(tag: str) -> None:
    assert S.check_tag(tag) == tag


@pytest.mark.parametrize("tag, why", [
    ("Bad Tag", "expected NAME"), ("Dlbox:cpu", "lowercase"), ("a:", "expected NAME"),
    ("a:b:c", "expected NAME"), ("-a", "expected NAME"), ("a..b", "expected NAME"),
    ("a:" + "x" * 129, "expected NAME"), ("a:é", "expected NAME"), ("", "expected NAME"),
])
def test_invalid_image_tags_are_usage_errors(tag: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        S.check_tag(tag)


def test_an_image_to_run_may_also_be_an_id_or_a_digest() -> None:
    digest = "sha256:" + "a" * 64
    for reference in (digest, "abcdef123456", f"dlbox@{digest}", "dlbox:cpu"):
        assert S.check_image_reference(reference) == reference
    with pytest.raises(UsageError, match="--base-image 'A B'"):
        S.check_image_reference("A B", "--base-image")


def test_run_request_labels_the_container() -> None:
    request = run_request(RunOptions(image="x"), None, 1000, 1000, None, None)
    assert ("dlbox.image-run", "1") in request.labels


def test_notebook_style_hardening_reaches_the_engine() -> None:
    pytest.importorskip("docker")
    request = engine.RunRequest(image="x", ports=((8888, 9999),), host_ip="0.0.0.0",
                                cap_drop=("ALL",), no_new_privileges=True)
    kwargs = engine._run_kwargs(request)
    assert kwargs["ports"] == {"8888/tcp": ("0.0.0.0", 9999)}
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    assert "cap_drop" not in engine._run_kwargs(engine.RunRequest(image="x"))


def test_run_request_mounts_and_environment(tmp_path: Path) -> None:
    options = RunOptions(image="demo:cu126", command=("dlbox", "train"),
                         environment=(("WANDB_MODE", "offline"),))
    gpus = engine.GpuRequest(count=-1)
    request = run_request(options, gpus, 1234, 1234, tmp_path / "data", tmp_path / "runs")
    assert request.image == "demo:cu126" and request.command == ("dlbox", "train")
    assert request.gpus == gpus and request.shm_size == "2g"
    assert request.user == "1234:1234" and request.workdir == "/workspace"
    assert request.mounts == (engine.Mount(str(tmp_path / "data"), "/data"),
                              engine.Mount(str(tmp_path / "runs"), "/workspace/runs"))
    env = dict(request.environment)
    assert env == {"DLBOX_DATA": "/data", "HOME": "/tmp", "WANDB_MODE": "offline"}
    assert [key for key, _ in request.environment] == sorted(env)
    assert not request.init  # the image's tini is PID 1 already


def test_run_request_home_and_no_mounts() -> None:
    image_user = run_request(RunOptions(image="x"), None, 1000, 1000, None, None)
    # an image dlbox did not build, no --gpus: its own NVIDIA_VISIBLE_DEVICES, if any
    assert dict(image_user.environment) == {"HOME": "/home/dlbox"}
    assert image_user.mounts == () and image_user.gpus is None
    own_home = run_request(RunOptions(image="x", environment=(("HOME", "/work"),)), None,
                           1234, 1234, None, None)
    assert dict(own_home.environment)["HOME"] == "/work"


def test_run_kwargs_for_the_engine(tmp_path: Path) -> None:
    pytest.importorskip("docker")
    request = run_request(RunOptions(image="x", command=("python3", "-V")),
                          engine.GpuRequest(count=1), 1234, 1234, tmp_path, None)
    kwargs = engine._run_kwargs(request)
    assert "volumes" not in kwargs
    assert kwargs["mounts"] == [{"Target": "/data", "Source": str(tmp_path), "Type": "bind",
                                 "ReadOnly": False}]
    assert kwargs["user"] == "1234:1234" and kwargs["shm_size"] == "2g"
    assert kwargs["working_dir"] == "/workspace" and kwargs["detach"] is True
    assert kwargs["device_requests"][0]["Count"] == 1
    assert "init" not in kwargs and "ports" not in kwargs and "name" not in kwargs


# ---- bug: a host path holding ':' (or ',') could not be mounted ----------------------------

def test_mounts_keep_source_and_target_apart(tmp_path: Path) -> None:
    """A bind string "src:dst:mode" is split at each ':' by the engine; a Mount is not."""
    pytest.importorskip("docker")
    odd = tmp_path / "a:b,c=d"
    request = engine.RunRequest(image="x", mounts=(engine.Mount(str(odd), "/data"),
                                                   engine.Mount("/t", "/run/t", read_only=True)))
    mounts = engine._run_kwargs(request)["mounts"]
    assert [(m["Source"], m["Target"], m["Type"], m["ReadOnly"]) for m in mounts] == [
        (str(odd), "/data", "bind", False), ("/t", "/run/t", "bind", True)]
    assert "mounts" not in engine._run_kwargs(engine.RunRequest(image="x"))


def test_a_missing_mount_source_is_named_before_the_engine_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    (tmp_path / "a:b").mkdir()
    present = engine.Mount(str(tmp_path / "a:b"), "/data")
    engine.check_mount_sources(engine.RunRequest(image="x", mounts=(present,)))
    gone = engine.Mount(str(tmp_path / "gone"), "/workspace/runs")
    with pytest.raises(ContainerError) as missing:
        engine.check_mount_sources(engine.RunRequest(image="x", mounts=(present, gone)))
    assert missing.value.message == (f"cannot mount {tmp_path / 'gone'} at /workspace/runs: "
                                     "it does not exist")
    assert missing.value.hint and "create it" in missing.value.hint
    with pytest.raises(ContainerError, match="not an absolute path"):
        engine.check_mount_sources(engine.RunRequest(image="x",
                                                     mounts=(engine.Mount("data", "/data"),)))
    # A remote engine's paths are not ours to look at: its own refusal is mapped instead.
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-box:2376")
    engine.check_mount_sources(engine.RunRequest(image="x", mounts=(gone,)))


def test_run_error_names_a_mount_source_the_engine_does_not_have() -> None:
    request = engine.RunRequest(image="x", mounts=(engine.Mount("/srv/a:b", "/data"),))
    error = engine.run_error(FakeAPIError(
        'invalid mount config for type "bind": bind source path does not exist: /srv/a:b'),
        request)
    assert isinstance(error, ContainerError)
    assert error.message == ("cannot mount /srv/a:b at /data: it does not exist on the "
                             "engine's machine")
    assert error.hint and "DOCKER_HOST" in error.hint


@pytest.mark.parametrize("said, where", [
    ("driver failed programming external connectivity on endpoint happy_turing (3f1c0e8a9b2d"
     "4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2): Error starting userland proxy: "
     "listen tcp4 127.0.0.1:8888: bind: address already in use", "8888 is in use on 127.0.0.1"),
    ("driver failed programming external connectivity on endpoint x (ab12): Bind for "
     "0.0.0.0:5000 failed: port is already allocated", "5000 is in use on 0.0.0.0"),
])
def test_run_error_names_the_busy_host_port(said: str, where: str) -> None:
    """Review: the engine's words were cut at 200 characters, before the port and "address
    already in use". (Which flag picks the port is the caller's: image run's -p, notebook's
    --port, each checked before the engine is asked.)"""
    error = engine.run_error(FakeAPIError(said), engine.RunRequest(image="x"))
    assert isinstance(error, ContainerError)
    assert error.message == f"cannot start the container: host port {where}"
    assert error.hint == "pick another port, or stop what uses it"


# ---- the runs folder -----------------------------------------------------------------------

def test_prepare_runs_dir_creates_it(tmp_path: Path) -> None:
    uid, gid = os.geteuid(), os.getegid()
    path = prepare_runs_dir(tmp_path / "a" / "runs", uid, gid, as_root=False)
    assert path.is_dir() and path == (tmp_path / "a" / "runs").resolve()
    assert prepare_runs_dir(path, uid, gid, as_root=False) == path  # existing is fine


def test_prepare_runs_dir_rejects_a_file(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("")
    with pytest.raises(UsageError, match="is not a folder"):
        prepare_runs_dir(tmp_path / "runs", os.geteuid(), os.getegid(), as_root=False)


@pytest.mark.parametrize("command, noted", [
    (["bash", "-c", "cd /workspace && python3 train.py; echo done"], True),
    (["/bin/sh", "-ec", ". ./env.sh && dlbox train"], True),
    (["sh", "-c", "python train.py"], True),  # dash runs even a lone command as its child
    (["bash", "-c", "cd src && python train.py > log"], True),
    (["sh", "-c", "cd src && exec python train.py"], False),  # the fix the note gives
    (["sh", "-c", "set -e\nexec /opt/venv/bin/python3 train.py 2>&1"], False),
    (["bash", "-lc", "source env.sh && exec dlbox train"], False),
    # review: an exec that does not hand the training the shell's place
    (["sh", "-c", "(cd src && exec python train.py)"], True),  # in a subshell
    (["sh", "-c", "exec 2>&1; python3 train.py"], True),  # a redirection only
    (["sh", "-c", "python3 train.py; exec echo done"], True),  # of another command
    (["sh", "-c", "exec python3 train.py | tee log"], True),  # in a pipe
    (["sh", "-c", "echo a; ls"], False),  # nothing that saves
    (["python3", "-c", "import a; a.b()"], False),
    (["sh", "-c"], False),
])
def test_a_shell_that_starts_a_training_it_does_not_exec_is_noted(
        command: list[str], noted: bool) -> None:
    assert (shell_wrapper_note(command) is not None) == noted


def test_a_runs_folder_the_image_would_take_is_noted(tmp_path: Path) -> None:
    """Review: `image run --runs out` in a project put out/ into the next build, and each
    later run warned that the project's files had changed."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("six\n")
    note = runs_go_into_the_image_note(project, project / "out")
    assert note is not None and note.startswith("note: --runs out is in the project")
    assert note.endswith("add the line out to .dockerignore")
    assert runs_go_into_the_image_note(project, project / "runs") is None  # left out already
    assert runs_go_into_the_image_note(project, tmp_path / "elsewhere") is None
    assert runs_go_into_the_image_note(None, tmp_path / "out") is None  # in no project
    (project / ".dockerignore").write_text("out\n")
    assert runs_go_into_the_image_note(project, project / "out") is None
    (project / ".dockerignore").write_text("out\n!out/keep.txt\n")  # something re-included
    assert runs_go_into_the_image_note(project, project / "out") is None


def test_a_runs_dir_under_a_file_is_a_usage_error(tmp_path: Path) -> None:
    """Review: `--runs main.py/sub` was "cannot use ...: Not a directory", exit 1, with the
    hint to report it as a bug."""
    (tmp_path / "main.py").write_text("print(1)\n")
    with pytest.raises(UsageError) as error:
        prepare_runs_dir(tmp_path / "main.py" / "sub", 1000, 1000, as_root=False)
    assert error.value.message == (f"--runs {tmp_path / 'main.py' / 'sub'} cannot be made: "
                                   f"{tmp_path / 'main.py'} is a file")
    assert (tmp_path / "main.py").read_text() == "print(1)\n"


def _refuse_mkdir_in(locked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Making a folder in `locked` is refused, as a folder the user may not write refuses it
    (root writes anywhere: the refusal is the system's, recorded)."""
    real_mkdir = Path.mkdir

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent == locked:
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", refused)


def test_a_runs_dir_that_may_not_be_made_names_the_folder_that_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `--runs ro/sub` under a folder the user may not write got the generic
    "give yourself access (chmod u+rw ro/sub ...)", a folder that does not exist; the one to
    make writable is `ro`. (Root writes anywhere: the refusal is the system's, recorded.)"""
    locked = tmp_path / "read only"  # a space: the chmod in the hint is quoted to paste
    locked.mkdir()
    _refuse_mkdir_in(locked, monkeypatch)
    with pytest.raises(UsageError) as info:
        prepare_runs_dir(locked / "sub" / "runs", os.geteuid(), os.getegid(), as_root=False)
    assert info.value.message == (f"cannot create --runs {locked.resolve() / 'sub' / 'runs'} "
                                  "(Permission denied)")
    assert info.value.hint == (f"make {locked.resolve()} writable for you (`chmod u+rwx "
                               f"'{locked.resolve()}'`), or pass --runs a folder you can write "
                               "to")


def test_a_runs_folder_that_cannot_be_made_in_a_folder_of_another_user_hints_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: in / the hint was `chmod u+rwx /`, a folder the user does not own."""
    locked = tmp_path / "theirs"
    locked.mkdir()
    _refuse_mkdir_in(locked, monkeypatch)
    # the folder is the user's when its owner is the caller: the owner here is not
    owner = locked.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(UsageError) as info:
        prepare_runs_dir(locked / "runs", 4242, 4242, as_root=False)
    assert "chmod" not in (info.value.hint or "")
    assert info.value.hint == "pass --runs a folder you can write to"


def test_prepare_runs_dir_the_container_user_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.mkdir()
    path.chmod(0o755)
    other_uid, other_gid = os.geteuid() + 4321, os.getegid() + 4321
    with pytest.raises(UsageError) as info:
        prepare_runs_dir(path, other_uid, other_gid, as_root=False)
    assert f"uid {other_uid}" in info.value.message
    assert f"chown {other_uid}:{other_gid}" in (info.value.hint or "")
    path.chmod(0o777)  # world-writable: anyone can write
    assert prepare_runs_dir(path, other_uid, other_gid, as_root=False) == path.resolve()
    path.chmod(0o775)  # group-writable and the container's group owns it: fine
    if os.geteuid() == 0:
        os.chown(path, -1, other_gid)
        assert prepare_runs_dir(path, other_uid, other_gid, as_root=False) == path.resolve()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_prepare_runs_dir_as_root_hands_a_new_folder_over(tmp_path: Path) -> None:
    new = prepare_runs_dir(tmp_path / "runs", 1000, 1000, as_root=True)
    info = new.stat()
    assert (info.st_uid, info.st_gid) == (1000, 1000) and stat.S_ISDIR(info.st_mode)
    # An existing folder is not taken over: the container's user must already be able to write.
    existing = tmp_path / "mine"
    existing.mkdir(mode=0o755)
    with pytest.raises(UsageError):
        prepare_runs_dir(existing, 1000, 1000, as_root=True)
    assert existing.stat().st_uid == 0


# ---- engine errors -------------------------------------------------------------------------

class FakeAPIError(Exception):
    """Stands in for docker.errors.APIError: the engine's text is in `explanation`."""

    def __init__(self, explanation: str | bytes) -> None:
        super().__init__("500 Server Error")
        self.explanation = explanation


def test_engine_error_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    denied = engine.engine_error(Exception(
        "Error while fetching server API version: ('Connection aborted.', "
        "PermissionError(13, 'Permission denied'))"))
    assert "no permission" in denied.message and "/run/user/1000/docker.sock" in denied.message
    assert "docker group" in (denied.hint or "")
    missing = engine.engine_error(Exception("('Connection aborted.', FileNotFoundError(2, "
                                            "'No such file or directory'))"))
    assert "not running" in missing.message and "systemctl start docker" in (missing.hint or "")
    other = engine.engine_error(TimeoutError("read timed out\nsecond line"))
    assert other.message.endswith(": read timed out") and "dockerd" in (other.hint or "")
    monkeypatch.delenv("DOCKER_HOST")
    assert "unix:///var/run/docker.sock" in engine.engine_error(Exception("")).message


def test_connect_to_a_missing_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ContainerError) as info:
        engine.connect(timeout=5)
    assert "unix:///nonexistent/docker.sock" in info.value.message
    assert "not running" in info.value.message
    assert "DOCKER_HOST" in (info.value.hint or "")
    assert info.value.__cause__ is None  # the SDK's traceback is not shown to the user


def test_is_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine.is_local_engine()
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert engine.is_local_engine()
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-box:2376")
    assert not engine.is_local_engine()


ALL_GPUS = engine.GpuRequest(count=-1)


def gpu_run(gpus: engine.GpuRequest | None = ALL_GPUS) -> engine.RunRequest:
    return engine.RunRequest(image="demo:cu126", gpus=gpus)


def test_run_error_without_nvidia_runtime() -> None:
    error = engine.run_error(FakeAPIError(
        b'could not select device driver "" with capabilities: [[gpu]]'), gpu_run())
    assert isinstance(error, HostEnvError)
    assert "all GPUs" in error.message and "no NVIDIA runtime" in error.message
    assert "nvidia-ctk runtime configure" in (error.hint or "")
    # The same text without a GPU request is not blamed on the toolkit.
    plain = engine.run_error(FakeAPIError("could not select device driver"), gpu_run(None))
    assert isinstance(plain, ContainerError) and "cannot start" in plain.message


def test_run_error_from_the_nvidia_runtime() -> None:
    error = engine.run_error(FakeAPIError(
        "failed to create task: OCI runtime create failed: nvidia-container-cli: "
        "initialization error: nvml error: driver not loaded"),
        gpu_run(engine.GpuRequest(device_ids=("1",))))
    assert isinstance(error, HostEnvError)
    assert "GPU 1" in error.message and "driver not loaded" in error.message
    assert "nvidia-smi" in (error.hint or "")


def test_run_error_other_causes() -> None:
    missing = engine.run_error(FakeAPIError("No such image: demo:cu126"), gpu_run(None))
    assert isinstance(missing, ContainerError) and "not on this machine" in missing.message
    assert "dlbox image build" in (missing.hint or "")
    port = engine.run_error(FakeAPIError("Bind for 127.0.0.1:8888 failed: port is already "
                                         "allocated"), gpu_run(None))
    assert "another port" in (port.hint or "")
    other = engine.run_error(FakeAPIError("something odd"), gpu_run(None))
    assert isinstance(other, ContainerError) and "something odd" in other.message


def test_build_error_hints() -> None:
    step = {"number": 2, "total": 9, "instruction": "FROM nvidia/cuda:12.6.0 AS system"}
    pull = engine.build_error("pull access denied for nvidia/cuda", step, [])
    assert "at step 2/9 (FROM nvidia/cuda" in pull.message and "--base-image" in pull.hint
    pip = engine.build_error("The command returned a non-zero code: 1", step,
                             ["ERROR: No matching distribution found for torch==9.9"])
    assert "--wheelhouse" in (pip.hint or "")
    tls = engine.build_error("exit 1", None, ["SSLError(CERTIFICATE_VERIFY_FAILED)"])
    assert tls.message == "image build failed: exit 1" and "--ca-cert" in (tls.hint or "")
    disk = engine.build_error("write /var/lib/docker: no space left on device", None, [])
    assert "prune" in (disk.hint or "")


def test_split_tag_and_digest() -> None:
    assert engine.split_tag("demo") == ("demo", "latest")
    assert engine.split_tag("demo:cu126") == ("demo", "cu126")
    assert engine.split_tag("registry:5000/team/app") == ("registry:5000/team/app", "latest")
    assert engine.split_tag("registry:5000/team/app:v1") == ("registry:5000/team/app", "v1")
    assert engine.image_digest({"RepoDigests": ["python@sha256:abc"]}) == "sha256:abc"
    assert engine.image_digest({"RepoDigests": []}) is None and engine.image_digest(None) is None
    assert engine.api_error_text(FakeAPIError(b"bytes text ")) == "bytes text"


def test_build_result_counts_cached_steps() -> None:
    result = engine.BuildResult("sha256:1", steps=[
        engine.BuildStep(1, 2, "FROM x", True, 0.0), engine.BuildStep(2, 2, "RUN y", False, 1.0)])
    assert result.cached_steps == 1


def test_the_run_it_line_fits_the_project(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dlbox.container.build import example_command

    def outcome(kind: str, root: Path | None) -> SimpleNamespace:
        return SimpleNamespace(spec=SimpleNamespace(project_kind=kind),
                               project=SimpleNamespace(root=root) if root else None)

    assert example_command(outcome("builtin", None)) == "dlbox train --epochs 1"
    assert example_command(outcome("requirements", tmp_path)) == "python3 YOUR_SCRIPT.py"
    (tmp_path / "main.py").write_text("print('hi')\n")
    assert example_command(outcome("pyproject", tmp_path)) == "python3 main.py"
    # Found by review: a script .dockerignore leaves out (`*`, then `!src`) is not in the
    # image, and `python3 main.py` there failed with "can't open file"
    (tmp_path / ".dockerignore").write_text("*\n!src\n")
    assert example_command(outcome("pyproject", tmp_path)) == "python3 YOUR_SCRIPT.py"


def test_gpus_0_is_refused_as_ambiguous() -> None:
    # docker reads --gpus 0 as a count (no GPU); the docs call 0 the first GPU's index.
    with pytest.raises(UsageError, match="--gpus 0 is ambiguous") as caught:
        parse_gpus("0", "gpu")
    assert "device=0" in (caught.value.hint or "")


def test_terminal_mode_follows_what_stdin_and_stdout_are(tmp_path: Path) -> None:
    import pty

    from dlbox.container.run import terminal_mode

    read_end, write_end = os.pipe()
    try:
        assert terminal_mode(False, read_end, write_end) == (True, False)  # a pipe: passed on
        assert terminal_mode(True, read_end, write_end) == (True, False)
    finally:
        os.close(read_end)
        os.close(write_end)
    master, slave = pty.openpty()
    try:
        # A terminal that is not ours (not the controlling one): its input stays with it.
        assert terminal_mode(False, slave, slave) == (False, False)
    finally:
        os.close(master)
        os.close(slave)
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    # No stdin at all: nothing to pass on (and the fd must not be read later, when the
    # engine's connection may have taken it).
    assert terminal_mode(False, closed, 1) == (False, False)


def test_a_command_the_image_cannot_start_is_named() -> None:
    from dlbox.container.run import not_runnable

    options = RunOptions(image="proj:latest")
    missing = not_runnable(b"...\n[FATAL tini (7)] exec trian.py failed: No such file or "
                           b"directory\n", options)
    assert missing is not None and missing.message.startswith(
        "there is no command trian.py in proj:latest")
    assert missing.hint and "\n" not in missing.message
    denied = not_runnable(b"[FATAL tini (7)] exec ./run.sh failed: Permission denied\n", options)
    assert denied is not None and "chmod +x" in (denied.hint or "")
    assert not_runnable(b"sh: 1: foo: not found\n", options) is None  # the command's own 127


def test_a_folder_of_the_project_run_as_the_command_is_named_a_folder(tmp_path: Path) -> None:
    """Found by review: `dlbox image run -- /workspace/src` (a folder) was told to run it
    through python3 or sh, or to chmod +x it: tini says "Permission denied" of a folder
    too, so the project's own copy tells them apart."""
    from dlbox.container.run import not_runnable

    (tmp_path / "src").mkdir()
    (tmp_path / "run.sh").write_text("echo\n")
    options = RunOptions(image="proj:latest", here=tmp_path)
    folder = not_runnable(b"[FATAL tini (7)] exec /workspace/src failed: Permission denied\n",
                          options)
    assert folder is not None and folder.exit_code == 126
    assert folder.message.startswith("/workspace/src is a folder in proj:latest, not a command")
    assert "chmod" not in (folder.hint or "") and "-- ls /workspace/src" in (folder.hint or "")
    script = not_runnable(b"[FATAL tini (7)] exec ./run.sh failed: Permission denied\n",
                          options)
    assert script is not None and "chmod +x" in (script.hint or "")


def test_image_run_defaults_to_the_current_projects_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.container.run import default_run_image

    monkeypatch.chdir(tmp_path)
    assert default_run_image() == ("dlbox:latest", None)
    project = tmp_path / "My_Proj"
    project.mkdir()
    (project / "requirements.txt").write_text("numpy\n")
    monkeypatch.chdir(project)
    assert default_run_image() == ("my_proj:latest", project)
    # review: a requirements.txt that cannot be read ran dlbox:latest without a word
    (project / "requirements.txt").write_text("six==1.16.0\nnumpy==\n")
    with pytest.raises(UsageError) as error:
        default_run_image()
    assert error.value.message.startswith(
        "the project in this folder cannot be read, so its image is not known: "
        "requirements.txt:2: 'numpy==' is not a valid requirement")
    assert (error.value.hint or "").endswith("; or pass --tag IMAGE to run an image you built")


def test_a_tag_runs_though_the_project_here_cannot_be_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `image run --tag IMAGE` in such a folder was refused too, with a hint to pass
    the --tag it had. What the engine would run is taken where it is handed over."""
    from dlbox.cli import main
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy\nthis is not a requirement!!\n")
    assert main(["image", "run", "--tag", "mine:cpu", "--runs", str(tmp_path / "runs"), "--",
                 "true"]) == 0
    assert (handed[0].image, handed[0].command, handed[0].here) == ("mine:cpu", ("true",), None)
    assert main(["image", "run", "--", "true"]) == 2
    assert "cannot be read, so its image is not known" in capsys.readouterr().err
    assert len(handed) == 1
    # review: in a removed current folder --tag went on, to an internal error
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["image", "run", "--tag", "mine:cpu", "--", "true"]) == 2
    assert "the current folder no longer exists" in capsys.readouterr().err
    assert len(handed) == 1


def test_the_builtin_images_name_given_with_tag_is_checked_not_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `image run --tag dlbox:latest` outside a project, that image not here, got
    the hint "pass --tag IMAGE", as if no --tag had been given: the hint told the two apart
    by the name, not by whether one was given."""
    from dlbox.cli import main
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    for argv in (["--tag", "dlbox:latest"], []):
        assert main(["image", "run", *argv, "--runs", str(tmp_path / "runs"), "--",
                     "true"]) == 0
    named, bare = handed
    assert (named.image, bare.image) == ("dlbox:latest", "dlbox:latest")
    assert run.missing_image_hint(None, named) == (
        "check the name (docker images lists those here), or build it: dlbox image build "
        "--tag dlbox:latest")
    assert run.missing_image_hint(None, bare) == (
        "build it first: dlbox image build (or pass --tag IMAGE)")


def _in_a_project_subfolder(project: Path, monkeypatch: pytest.MonkeyPatch
                            ) -> tuple[list[RunOptions], Path]:
    """A project (requirements.txt) with the current folder in its src/pkg, and the options
    `image run` hands the engine, collected instead of run."""
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "requirements.txt").write_text("numpy\n")
    monkeypatch.chdir(project / "src" / "pkg")
    return handed, project


def test_image_run_in_a_subfolder_of_a_project_warns_that_it_runs_dlboxs_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `image run` in my_proj/src ran dlbox's own image, dlbox:latest,
    without a word (and made runs/ in the project's code)."""
    from dlbox.cli import main

    handed, project = _in_a_project_subfolder(tmp_path / "My Proj", monkeypatch)
    assert main(["image", "run", "--runs", str(tmp_path / "runs"), "--", "true"]) == 0
    assert handed[-1].image == "dlbox:latest"
    assert capsys.readouterr().err.splitlines() == [
        "warning: no project in this folder, so this runs dlbox's own image, dlbox:latest; "
        f"for the project in {project}, run from there (cd '{project}') or pass --tag "
        "my-proj:latest"]
    monkeypatch.chdir(project)  # the project's own folder: its image, no warning
    assert main(["image", "run", "--runs", str(tmp_path / "runs"), "--", "true"]) == 0
    assert handed[-1].image == "my-proj:latest" and capsys.readouterr().err == ""
    checkout = tmp_path / "dlbox-copy"  # dlbox's own checkout: its image is the one run
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "dlbox"\nversion = "1"\n')
    monkeypatch.chdir(checkout / "notebooks")
    assert main(["image", "run", "--runs", str(tmp_path / "runs"), "--", "true"]) == 0
    assert handed[-1].image == "dlbox:latest" and capsys.readouterr().err == ""
    monkeypatch.chdir(tmp_path)  # no project here or above: dlbox's image, as documented
    assert main(["image", "run", "--runs", str(tmp_path / "runs"), "--", "true"]) == 0
    assert handed[-1].image == "dlbox:latest" and capsys.readouterr().err == ""


def test_a_dlbox_data_that_is_no_folder_is_said_not_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `DLBOX_DATA=<a typo> dlbox image run -- dlbox train` mounted nothing
    without a word; in the container, "no CIFAR-10 data in /data: run dlbox data fetch"
    then sent the download into the container's own /data, gone with it."""
    from dlbox.cli import main
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    argv = ["image", "run", "--runs", str(tmp_path / "runs"), "--", "true"]
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "typo"))
    assert main(argv) == 0
    assert handed[-1].data_dir is None
    assert capsys.readouterr().err.splitlines() == [
        f"warning: DLBOX_DATA is {tmp_path / 'typo'}, which is not a folder, so no data is "
        "mounted at /data: fetch into it first (dlbox data fetch), or set DLBOX_DATA to the "
        "folder that holds the data (or pass --data DIR)"]
    (tmp_path / "typo").mkdir()
    assert main(argv) == 0
    assert handed[-1].data_dir == tmp_path / "typo" and capsys.readouterr().err == ""
    # the user cache dir, the default without DLBOX_DATA, is mounted when it is there only
    monkeypatch.delenv("DLBOX_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    assert main(argv) == 0
    assert handed[-1].data_dir is None and capsys.readouterr().err == ""


def test_the_default_data_mount_returns_its_notice_for_the_cli_to_print(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The library says why nothing is mounted; printing it is the CLI's part."""
    from dlbox.container.run import default_data_mount, default_runs_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "typo"))
    folder, notice = default_data_mount(["dlbox", "train"])
    assert folder is None and notice is not None
    assert notice.startswith(f"warning: DLBOX_DATA is {tmp_path / 'typo'}, which is not a "
                             "folder")
    assert default_data_mount(["dlbox", "data", "fetch"]) == (tmp_path / "typo", None)
    (tmp_path / "typo").write_text("")
    with pytest.raises(UsageError, match="DLBOX_DATA is .* which is not a folder"):
        default_data_mount(["dlbox", "data", "fetch"])
    assert capsys.readouterr().err == ""
    assert default_runs_dir() == Path("runs")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    assert default_runs_dir() == tmp_path / "runs"


@pytest.mark.parametrize("command", [["dlbox", "train", "--help"], ["dlbox", "evaluate", "-h"],
                                     ["dlbox", "data", "fetch", "--help"]])
def test_no_data_warning_for_a_dlbox_command_asked_for_its_help(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Review: `DLBOX_DATA=FILE dlbox image run -- dlbox train --help` warned that no data
    is mounted, which docs/image.md says is not done for a command's -h/--help."""
    from dlbox.container.run import default_data_mount

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "afile"))
    assert default_data_mount(command) == (None, None)
    assert default_data_mount(["bash"])[1] is not None  # a shell may want /data: said


def test_an_owner_killed_but_not_yet_reaped_is_gone() -> None:
    # A dlbox killed with SIGKILL stays a zombie until its parent reaps it: its containers
    # are orphans already, or the next launch on the same port is refused as "in use".
    import subprocess
    import time

    from dlbox.container.owner import owner_gone, owner_id

    child = subprocess.Popen(["sleep", "30"])
    try:
        owner = owner_id(child.pid)
        assert not owner_gone(owner)
        child.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # not reaped: we do not wait() yet
            state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            time.sleep(0.05)
        assert state == "Z"
        assert owner_gone(owner)
    finally:
        child.kill()
        child.wait()


def test_the_owner_label_keeps_the_form_older_dlbox_versions_read() -> None:
    """Found in review: an owner id of four parts (with the pid namespace) read by an older
    dlbox, which takes everything after the pid as the start time, never matched, so that
    dlbox judged a live owner gone and removed its notebook container on a shared engine.
    Labels keep HOST:PID:START; only names no other version reads carry the namespace."""
    import os

    from dlbox.container.owner import owner_gone, owner_id

    label = owner_id()
    host, pid, start = label.split(":")  # exactly three parts
    assert pid == str(os.getpid())
    older_reads_start = label.partition(":")[2].partition(":")[2]  # the old parser's split
    assert older_reads_start == start and start.isdigit()
    assert not owner_gone(label)
    with_namespace = owner_id(namespace=True)
    assert with_namespace.startswith(label + ":") and not owner_gone(with_namespace)
    # another pid namespace's owner is never judged, even where its pid is free here
    assert not owner_gone(f"{host}:{2**22 + 1}:1:1")
    assert owner_gone(f"{host}:{2**22 + 1}:1")
    here = with_namespace.split(":", 3)[3]
    assert owner_gone(f"{host}:{2**22 + 1}:1:{here}")
    # nor another machine's of the same name whose first pid namespace has our inode
    inode = here.split("-")[0]
    if "-" in here:
        assert not owner_gone(f"{host}:{2**22 + 1}:1:{inode}-0123456789abcdef")


def test_the_runs_a_command_made_are_named_by_their_path_here(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert folder_names(runs) == set() and folder_names(None) == set()  # not there yet
    runs.mkdir()
    (runs / "old").mkdir()
    before = folder_names(runs)
    for name in ("b-run", "a-run"):
        (runs / name).mkdir()
    made = sorted(folder_names(runs) - before)
    assert made_here_note(runs, made) == (
        f"note: /workspace/runs in the container is {runs} here: {runs}/a-run, {runs}/b-run")
    many = made_here_note(runs, [f"r{i}" for i in range(5)])
    assert many is not None and many.endswith(f"{runs}/r2 (and 2 more)")
    assert made_here_note(runs, []) is None


def test_image_run_in_a_subfolder_of_a_project_puts_runs_in_the_projects_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `image run` in my_proj/src made my_proj/src/runs/, in the code: the
    next build took it, and each run warned that the project's files had changed."""
    from dlbox.cli import main

    handed, project = _in_a_project_subfolder(tmp_path / "proj", monkeypatch)
    for argv in ([], ["--tag", "proj:latest"]):
        assert main(["image", "run", *argv, "--", "true"]) == 0
        assert handed[-1].runs_dir == project.resolve() / "runs"
    monkeypatch.chdir(project)  # at the project's top: ./runs, as before
    assert main(["image", "run", "--", "true"]) == 0
    assert handed[-1].runs_dir == Path("runs")
    monkeypatch.chdir(tmp_path)  # no project here or above: ./runs for a command that trains
    assert main(["image", "run", "--", "dlbox", "train"]) == 0
    assert handed[-1].runs_dir == Path("runs")
    capsys.readouterr()


def test_a_runs_folder_in_a_project_is_noted_from_a_subfolder_too(tmp_path: Path) -> None:
    """Found by review: the note fired only when dlbox ran in the project's top folder."""
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "requirements.txt").write_text("six\n")
    note = runs_go_into_the_image_note(None, project / "src" / "out")
    assert note is not None and note.startswith("note: --runs src/out is in the project")
    assert runs_go_into_the_image_note(None, project / "runs") is None  # left out already
    assert runs_go_into_the_image_note(None, tmp_path / "elsewhere") is None


def test_no_data_mounted_for_a_dlbox_command_that_reads_data_is_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `dlbox image run -- dlbox train` with no data folder on the host
    mounted nothing without a word; the container then said "no CIFAR-10 data found in
    /data; hint: run dlbox data fetch", and that fetch filled the container's own /data,
    gone with it."""
    from dlbox.cli import main
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "cache" / "dlbox" / "data"
    runs = ["--runs", str(tmp_path / "runs")]
    for command in (["dlbox", "train", "--epochs", "1"], ["/opt/venv/bin/dlbox", "evaluate",
                                                          "runs/x"], ["dlbox", "data", "check"]):
        assert main(["image", "run", *runs, "--", *command]) == 0
        assert handed[-1].data_dir is None
        assert capsys.readouterr().err.splitlines() == [
            "note: no data folder is mounted at /data: fetch the data on this machine with "
            f"`dlbox data fetch` (it lands in {data}), or pass --data DIR"]
    # a command that reads no data, or reads its own, is not noted
    for command in (["true"], ["python3", "train.py"], ["dlbox", "predict", "r", "a.png"],
                    ["dlbox", "train", "--data", "/workspace/runs/d"], []):
        assert main(["image", "run", *runs, "--", *command]) == 0
        assert handed[-1].data_dir is None and capsys.readouterr().err == ""
    # a fetch gets the default data folder, made by image run, so the data lands here
    assert main(["image", "run", *runs, "--", "dlbox", "data", "fetch"]) == 0
    assert handed[-1].data_dir == data and not data.exists()
    assert capsys.readouterr().err == ""


def test_a_data_fetch_in_the_image_makes_the_missing_data_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import functools
    import sys

    from dlbox.container.run import data_mount

    log = functools.partial(print, file=sys.stderr)  # as `dlbox image run` says its notes
    fetch = ("dlbox", "data", "fetch")
    where = tmp_path / "cache" / "data"
    made = data_mount(where, fetch, os.geteuid(), os.getegid(), as_root=False, log=log)
    assert made == where.resolve() and where.is_dir()
    assert capsys.readouterr().err.splitlines() == [
        f"note: made the data folder {where.resolve()}, mounted at /data: the data "
        "`dlbox data fetch` downloads lands there"]
    assert data_mount(where, fetch, 1, 1, as_root=False, log=log) == where.resolve()  # as is
    assert capsys.readouterr().err == ""
    with pytest.raises(UsageError, match="is not a folder"):  # any other command: an error
        data_mount(tmp_path / "nope", ("dlbox", "train"), 1, 1, as_root=False, log=log)
    assert not (tmp_path / "nope").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        data_mount(tmp_path / "file", fetch, 1, 1, as_root=False, log=log)


def test_a_script_whose_interpreter_the_image_lacks_is_named_so(tmp_path: Path) -> None:
    """Found by review: a project script with `#!/usr/bin/python` (none in the image), or
    whose #! line ends in a CR (Windows line endings), was "there is no command ./oldpy.py
    in IMG; hint: check the name", though the file is there."""
    from dlbox.container.run import not_runnable

    (tmp_path / "tools").mkdir()
    (tmp_path / "oldpy.py").write_bytes(b"#!/usr/bin/python -u\nprint(1)\n")
    (tmp_path / "tools" / "crlf.py").write_bytes(b"#!/usr/bin/python3\r\nprint(1)\r\n")
    (tmp_path / "envcr.py").write_bytes(b"#!/usr/bin/env python3\r\nprint(1)\r\n")
    (tmp_path / "plain.sh").write_bytes(b"echo hi\n")
    options = RunOptions(image="proj:latest", here=tmp_path)

    def tini(command: str) -> bytes:
        return f"[FATAL tini (7)] exec {command} failed: No such file or directory\n".encode()

    for command in ("./oldpy.py", "/workspace/oldpy.py"):
        error = not_runnable(tini(command), options)
        assert error is not None and error.exit_code == 127
        assert error.message == (f"{command} starts with #!/usr/bin/python, an interpreter "
                                 "that is not in proj:latest")
        assert error.hint == (f"run it through one the image has (-- python3 {command}), or "
                              "change its #! line (#!/usr/bin/env python3) and build again")
    for command, host in (("./tools/crlf.py", tmp_path / "tools" / "crlf.py"),
                          ("./envcr.py", tmp_path / "envcr.py")):
        tail = tini(command) if "crlf" in command else \
            b"/usr/bin/env: 'python3\\r': No such file or directory\n"  # env's own 127
        error = not_runnable(tail, RunOptions(image="proj:latest", command=(command,),
                                              here=tmp_path), exit_code=127)
        assert error is not None and error.exit_code == 127
        assert error.message == (f"{command} cannot start: its #! line ends in a carriage "
                                 "return (Windows line endings), so the interpreter looked "
                                 "for has a CR at the end of its name")
        assert error.hint == (f"convert it to Unix line endings: sed -i 's/\\r$//' {host} "
                              f"(or dos2unix {host}), and build again")
    # no #! line, no such file here, or no project here: the error as before
    # (a bare name is looked up on PATH, not in /workspace)
    for command, here in (("./plain.sh", tmp_path), ("./gone.py", tmp_path),
                          ("./oldpy.py", None), ("oldpy.py", tmp_path)):
        error = not_runnable(tini(command), RunOptions(image="proj:latest", here=here))
        assert error is not None and error.message.startswith(
            f"there is no command {command} in proj:latest")
    # a 127 of the command's own, with no CR in its #! line, is the command's
    assert not_runnable(b"sh: 1: foo: not found\n", RunOptions(
        image="proj:latest", command=("./oldpy.py",), here=tmp_path), exit_code=127) is None


def test_image_build_in_a_subfolder_of_a_project_warns_that_it_builds_dlboxs_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `cd proj/src && dlbox image build` built dlbox's own CIFAR-10
    project, saying only that the current folder has no requirements.txt; `image run` there
    names the project above."""
    from dlbox.cli import main
    from dlbox.container import build

    built: list[object] = []
    monkeypatch.setattr(build, "dry_run",
                        lambda request: built.append(request.project_dir) or ("FROM x\n", []))
    _, project = _in_a_project_subfolder(tmp_path / "My Proj", monkeypatch)
    assert main(["image", "build", "--dry-run"]) == 0
    assert built[-1] is None  # still dlbox's own, as documented, but said
    assert capsys.readouterr().err.splitlines() == [
        "warning: no project in this folder, so this builds dlbox's own CIFAR-10 project; "
        f"for the project in {project}, build it from there (cd '{project}') or pass its "
        "folder: dlbox image build ../.."]
    assert main(["image", "build", "--dry-run", "../.."]) == 0  # a folder given: no warning
    assert built[-1] == Path("../..") and capsys.readouterr().err == ""
    monkeypatch.chdir(project)
    assert main(["image", "build", "--dry-run"]) == 0
    assert built[-1] == project and capsys.readouterr().err == ""
    checkout = tmp_path / "dlbox-copy"  # dlbox's own checkout: its project is the one built
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "dlbox"\nversion = "1"\n')
    monkeypatch.chdir(checkout / "notebooks")
    assert main(["image", "build", "--dry-run"]) == 0
    assert built[-1] is None and capsys.readouterr().err == ""


@pytest.mark.parametrize("code, why", [(30, "Read-only file system"),  # EROFS
                                       (2, "No such file or directory")])  # /proc/runs
def test_a_runs_dir_the_system_will_not_make_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, why: str) -> None:
    """Found by review: `image run` in a read-only folder (or in /proc) was "error: cannot
    use .../runs: Read-only file system" with the hint to report a bug."""
    def refused(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(code, why, str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(UsageError) as info:
        prepare_runs_dir(tmp_path / "runs", os.geteuid(), os.getegid(), as_root=False)
    assert info.value.message == f"cannot create --runs {tmp_path.resolve() / 'runs'} ({why})"
    assert info.value.hint == "pass --runs a folder you can write to"


@pytest.mark.parametrize("value, engine_takes", [
    ("2gb", "2147483648"), ("1GiB", "1073741824"), ("512MB", "536870912"),
    ("512 m", "536870912"), ("1t", str(2**40)), ("1.5Gi", str(3 * 2**29)),
    ("2g", "2g"), ("512M", "512M"),  # as the engine's client takes them: passed as given
])
def test_shm_sizes_docker_run_takes_are_taken(value: str, engine_takes: str) -> None:
    """Found by review: `--shm-size 2gb` and `1GiB` were refused, though `docker run
    --shm-size` takes both (go-units' RAMInBytes: b, k, m, g, t, p in any case, then an
    optional i and b). The Docker SDK takes fewer, so the others reach it in bytes."""
    assert check_shm_size(value) == engine_takes
    from docker.utils import parse_bytes

    assert parse_bytes(engine_takes) >= 2**29


@pytest.mark.parametrize("value", ["2x", "gb", "2 gb b", "1.2.3g", "-1g", "2e9"])
def test_shm_sizes_docker_run_refuses_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="is not a size"):
        check_shm_size(value)


@pytest.mark.parametrize("command, noted", [
    # review: python only named, not run, got the note on exec
    (["sh", "-c", "ls /usr/bin/python"], False),
    (["sh", "-c", "which python3 && echo dlbox"], False),
    (["bash", "-c", "echo python; cat dlbox.lock"], False),
    # run, at the start of any command of the script
    (["sh", "-c", "ls /usr/bin/python\npython3 train.py"], True),
    (["sh", "-c", "true || CUDA_VISIBLE_DEVICES=0 python train.py"], True),
    (["sh", "-c", "if python3 check.py; then echo ok; fi"], True),
    (["sh", "-c", "echo go && nohup dlbox train"], True),
    # review: missed since the note fired for python run by the shell only
    (["sh", "-c", "cd src && timeout 2h python train.py"], True),
    (["sh", "-c", "nice -n 10 python train.py"], True),
    (["sh", "-c", "uv run python train.py"], True),
    (["sh", "-c", "cd src\n\npython train.py"], True),
    (["sh", "-c", "cd src;\npython train.py"], True),
    (["sh", "-c", "env -i PATH=/opt/venv/bin python x.py"], True),
    (["sh", "-c", "env -u CUDA_VISIBLE_DEVICES dlbox train"], True),
    (["sh", "-c", "stdbuf -oL python3 train.py | tee log"], True),
    (["sh", "-c", "cd src;\nexec python train.py"], False),
    (["sh", "-c", "cd src &&\nexec timeout 2h python train.py"], False),
    (["sh", "-c", "echo python"], False),
    (["sh", "-c", "timeout 5 ls /usr/bin/python"], False),
])
def test_the_exec_note_fires_only_for_python_run_by_the_shell(
        command: list[str], noted: bool) -> None:
    assert (shell_wrapper_note(command) is not None) == noted


def test_a_scripts_interpreter_is_blamed_only_in_the_image_built_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project here is the image's /workspace only when the image was built from it:
    in another folder's image, the file here says nothing of the image's."""
    from types import SimpleNamespace

    from dlbox.container import run

    (tmp_path / "oldpy.py").write_bytes(b"#!/usr/bin/python\nprint(1)\n")
    tail = b"[FATAL tini (7)] exec ./oldpy.py failed: No such file or directory\n"
    source = {"here": S.source_id(tmp_path)}
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {
        "Config": {"Labels": {S.SOURCE_LABEL: source["here"]}}})
    monkeypatch.setattr(engine, "run_streaming", lambda *args, **kwargs: SimpleNamespace(
        exit_code=127, stderr_tail=tail))
    monkeypatch.setattr(run, "remove_orphaned", lambda *args, **kwargs: [])
    options = RunOptions(image="p:latest", command=("./oldpy.py",), here=tmp_path)
    outcome = run.run_in_image(options, log=print, client=object())
    assert outcome.exit_code == 127 and outcome.problem is not None
    assert outcome.problem.message.startswith("./oldpy.py starts with #!/usr/bin/python")
    source["here"] = "0123456789abcdef"  # another folder's image
    outcome = run.run_in_image(options, log=print, client=object())
    assert outcome.problem is not None
    assert outcome.problem.message.startswith("there is no command ./oldpy.py in p:latest")


def test_a_script_added_since_the_build_is_not_blamed_on_its_interpreter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `new.py` (#!/usr/bin/env python3) added after the build was "./new.py
    starts with #!/usr/bin/env, an interpreter that is not in IMG": the file here is not the
    image's when the project's files changed since the build."""
    from types import SimpleNamespace

    from dlbox.container import run
    from dlbox.container.context import project_digest
    from dlbox.container.project import detect_project

    (tmp_path / "requirements.txt").write_text("numpy\n")
    built = project_digest(detect_project(tmp_path))
    (tmp_path / "new.py").write_bytes(b"#!/usr/bin/env python3\nprint(1)\n")
    tail = b"[FATAL tini (7)] exec ./new.py failed: No such file or directory\n"
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {"Config": {"Labels": {
        S.SOURCE_LABEL: S.source_id(tmp_path), S.FILES_LABEL: built}}})
    monkeypatch.setattr(engine, "run_streaming", lambda *args, **kwargs: SimpleNamespace(
        exit_code=127, stderr_tail=tail))
    monkeypatch.setattr(run, "remove_orphaned", lambda *args, **kwargs: [])
    options = RunOptions(image="p:latest", command=("./new.py",), here=tmp_path, named=True)
    outcome = run.run_in_image(options, log=print, client=object())
    assert outcome.exit_code == 127 and outcome.problem is not None
    assert "interpreter" not in outcome.problem.message
    assert outcome.problem.message == (
        "./new.py cannot start in p:latest (No such file or directory): the project's files "
        "changed since p:latest was built, so it may lack the file, or have another version "
        "of it")
    assert outcome.problem.hint == ("rebuild it first: dlbox image build --tag p:latest (with "
                                    "the flags it was built with)")
    # the files as they were built: the file here is the image's, its interpreter is named
    (tmp_path / "new.py").unlink()
    (tmp_path / "old.py").write_bytes(b"#!/usr/bin/python\nprint(1)\n")
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {"Config": {"Labels": {
        S.SOURCE_LABEL: S.source_id(tmp_path),
        S.FILES_LABEL: project_digest(detect_project(tmp_path))}}})
    tail = b"[FATAL tini (7)] exec ./old.py failed: No such file or directory\n"
    options = RunOptions(image="p:latest", command=("./old.py",), here=tmp_path, named=True)
    outcome = run.run_in_image(options, log=print, client=object())
    assert outcome.problem is not None and outcome.problem.message == (
        "./old.py starts with #!/usr/bin/python, an interpreter that is not in p:latest")


def test_an_env_shebangs_missing_interpreter_is_the_name_env_looks_for(
        tmp_path: Path) -> None:
    """Found by review: `#!/usr/bin/env python2` was blamed on /usr/bin/env, which the image
    has; env itself says the name it did not find (exit 127)."""
    from dlbox.container.run import not_runnable

    (tmp_path / "old.py").write_bytes(b"#!/usr/bin/env python2\nprint 1\n")
    (tmp_path / "split.py").write_bytes(b"#!/usr/bin/env -S ruby -w\nputs 1\n")
    for command, name, run_with, said in (
            ("./old.py", "python2", "python3", "/usr/bin/env: 'python2': No such file or "
                                               "directory\n"),
            ("./split.py", "ruby", "ruby", "/usr/bin/env: \u2018ruby\u2019: No such file or "
                                           "directory\n")):
        error = not_runnable(said.encode(), RunOptions(
            image="proj:latest", command=(command,), here=tmp_path), exit_code=127)
        assert error is not None and error.exit_code == 127
        assert error.message == (f"{command} starts with #!/usr/bin/env {name}, an "
                                 f"interpreter that is not in proj:latest")
        assert error.hint == (f"run it through one the image has (-- {run_with} {command}), "
                              "or change its #! line (#!/usr/bin/env python3) and build again")
    # a 127 of the script's own (env found python2, which then found no command): its own
    assert not_runnable(b"sh: 1: foo: not found\n", RunOptions(
        image="proj:latest", command=("./old.py",), here=tmp_path), exit_code=127) is None


def test_a_dlbox_data_that_is_a_file_is_named_for_a_fetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `DLBOX_DATA=<a file> dlbox image run -- dlbox data fetch` was
    "--data <the file> is not a folder", though no --data was passed."""
    from dlbox.cli import main
    from dlbox.container import run

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "f"))
    runs = ["--runs", str(tmp_path / "runs")]
    assert main(["image", "run", *runs, "--", "dlbox", "data", "fetch"]) == 2
    err = capsys.readouterr().err
    assert f"error: DLBOX_DATA is {tmp_path / 'f'}, which is not a folder" in err
    assert "--data" not in err.split("hint:")[0] and not handed
    assert main(["image", "run", *runs, "--", "dlbox", "train"]) == 0  # the warning, as before
    assert handed[-1].data_dir is None
    assert capsys.readouterr().err.startswith(
        f"warning: DLBOX_DATA is {tmp_path / 'f'}, which is not a folder")


def test_help_of_a_dlbox_command_neither_makes_the_data_folder_nor_is_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `-- dlbox data fetch --help` made the data folder on the host, and
    `-- dlbox train --help` got the no-data note."""
    from dlbox.cli import main
    from dlbox.container import run
    from dlbox.container.run import dlbox_data_use

    for command in (["dlbox", "data", "fetch", "--help"], ["dlbox", "train", "-h"],
                    ["dlbox", "data", "check", "--help"]):
        assert dlbox_data_use(command) is None
    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLBOX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for command in (["dlbox", "data", "fetch", "--help"], ["dlbox", "train", "--help"]):
        assert main(["image", "run", "--runs", str(tmp_path / "runs"), "--", *command]) == 0
        assert handed[-1].data_dir is None and capsys.readouterr().err == ""


def test_image_runs_notes_go_to_the_log_it_is_given_before_the_commands_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """run_in_image says its notes and warnings through `log`, as build_image does (the CLI
    hands it a stderr printer): library code prints nothing itself. Those before the run come
    before the command's output, the one on the runs it made after it."""
    from types import SimpleNamespace

    from dlbox.container import run

    logged: list[str] = []
    runs = tmp_path / "runs"

    def run_streaming(client: object, request: object, **kwargs: object) -> SimpleNamespace:
        logged.append("<the command's output>")
        (runs / "new-run").mkdir()
        return SimpleNamespace(exit_code=0, stderr_tail=b"")

    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {"Config": {}})
    monkeypatch.setattr(engine, "run_streaming", run_streaming)
    monkeypatch.setattr(run, "remove_orphaned", lambda *args, **kwargs: ["old_one"])
    fetch = ("dlbox", "data", "fetch")
    options = RunOptions(image="p:latest", command=("sh", "-c", "cd src && python x.py"),
                         runs_dir=runs)
    outcome = run.run_in_image(options, log=logged.append, client=object())
    assert outcome.exit_code == 0
    assert [line.split(" ", 2)[:2] for line in logged] == [
        ["note:", "through"], ["note:", "removed"], ["<the", "command's"],
        ["note:", "/workspace/runs"]]
    assert logged[-1] == (f"note: /workspace/runs in the container is {runs.resolve()} here: "
                          f"{runs.resolve() / 'new-run'}")
    made = run.data_mount(tmp_path / "data", fetch, os.geteuid(), os.getegid(), False,
                          log=logged.append)
    assert made.is_dir() and logged[-1].startswith(f"note: made the data folder {made}")
    assert capsys.readouterr().err == ""


class _SignalledMidWrite(io.RawIOBase):
    """A stderr whose next write is cut by `signum`, as a signal cuts into whatever the main
    thread does: here, writing the command's output (run_streaming's err.write / flush)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.signum: int | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        signum, self.signum = self.signum, None
        if signum is not None:
            signal.raise_signal(signum)  # its handler runs now, in the middle of this write
        self.data.extend(data)
        return len(data)


def test_a_stop_signal_during_the_commands_output_stops_the_container_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C / SIGTERM that lands while the command's output is written to stderr: the
    handler printed its "stopping the container" line itself, into the write under way,
    which Python refuses (RuntimeError: reentrant call), so the stop failed. The lines come
    after that output, and the container is stopped, then killed on a second signal."""
    from dlbox.container.engine import _signals_stop

    class Container:
        def __init__(self) -> None:
            self.calls: list[str] = []
            self.done = threading.Event()

        def stop(self, timeout: int) -> None:
            self.calls.append(f"stop {timeout}")
            self.done.set()

        def kill(self) -> None:
            self.calls.append("kill")
            self.done.set()

    raw = _SignalledMidWrite()
    stderr = io.TextIOWrapper(io.BufferedWriter(raw), line_buffering=True)
    monkeypatch.setattr(sys, "stderr", stderr)
    container = Container()
    with _signals_stop(container, 5.0):
        for signum, call in ((signal.SIGTERM, "stop 5"), (signal.SIGINT, "kill")):
            container.done.clear()
            raw.signum = signum
            stderr.buffer.write(b"output\n")  # as run_streaming writes the command's stderr
            stderr.buffer.flush()
            assert container.done.wait(10) and container.calls[-1] == call
    assert raw.data.decode() == (
        "output\n\nstopping the container (SIGTERM, SIGKILL after 5 s; press Ctrl-C again to "
        "kill it now)...\noutput\n\nkilling the container (SIGKILL)...\n")


# ---- review: `image run` could not publish a port (-p) or mount a folder (-v) --------------

@pytest.mark.parametrize("values, expected", [
    (["8000"], ("127.0.0.1", ((8000, 8000),))),
    (["8001:8000"], ("127.0.0.1", ((8000, 8001),))),  # docker's order: host first
    (["8888", "7860:7861/tcp"], ("127.0.0.1", ((8888, 8888), (7861, 7860)))),
    (["0.0.0.0:8000:80", "0.0.0.0:9000:90"], ("0.0.0.0", ((80, 8000), (90, 9000)))),
    (["[::1]:8000:80"], ("::1", ((80, 8000),))),
    ([], ("127.0.0.1", ())),
])
def test_parse_publish(values: list[str], expected: tuple[str, tuple[tuple[int, int], ...]]
                       ) -> None:
    assert parse_publish(values) == expected


@pytest.mark.parametrize("values, says", [
    (["0"], "1 to 65535"),
    (["70000:80"], "1 to 65535"),
    (["http"], "a port number"),
    (["8000-8010"], "a port number"),
    (["::8000"], "not an IP address"),
    (["0.0.0.0::8000"], "a port number"),
    (["1:2:3:4"], "not an IP address"),
    (["nohost:8000:80"], "not an IP address"),
    (["5353/udp"], "TCP"),
    (["8000:80", "8000:81"], "host port 8000 twice"),
    (["8000:80", "8001:80"], "container port 80 twice"),
    (["0.0.0.0:8000:80", "9000:90"], "one address"),
    ([""], "a port number"),
])
def test_parse_publish_refuses(values: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        parse_publish(values)
    assert "\n" not in caught.value.message and caught.value.hint


def test_parse_publish_udp_hint() -> None:
    with pytest.raises(UsageError) as caught:
        parse_publish(["5353/udp"])
    assert "TCP" in caught.value.message and "udp" in caught.value.hint.lower()


def test_a_host_port_in_use_is_refused_before_any_container(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"host port {port} is in use") as caught:
            check_ports_free("127.0.0.1", ((80, port),))
        assert "-p OTHER:80" in caught.value.hint
    check_ports_free("127.0.0.1", ((80, port),))  # free again


def test_parse_volumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "ds").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    mounts = parse_volumes(["weights:/models:ro", "~/ds:/datasets/", f"{tmp_path}:/srv"],
                           data_mounted=True)
    assert mounts == (engine.Mount(str(tmp_path / "weights"), "/models", read_only=True),
                      engine.Mount(str(tmp_path / "ds"), "/datasets"),
                      engine.Mount(str(tmp_path), "/srv"))
    # /data is free for -v when no data folder is mounted there; /workspace/x is no clash
    assert parse_volumes(["ds:/data", "weights:/workspace/weights"], data_mounted=False) == (
        engine.Mount(str(tmp_path / "ds"), "/data"),
        engine.Mount(str(tmp_path / "weights"), "/workspace/weights"))


@pytest.mark.parametrize("value, says", [
    ("missing:/x", "does not exist"),
    ("ds", "HOST_DIR:CONTAINER_PATH"),
    (":/x", "HOST_DIR:CONTAINER_PATH"),
    ("ds:", "HOST_DIR:CONTAINER_PATH"),
    ("ds:x", "not an absolute path"),
    ("ds:/x:rw", "'rw' is not ro"),  # not just "ro", which the value echoed holds (review)
    ("ds:/x:ro:z", "is not HOST_DIR:CONTAINER_PATH"),
    ("ds:/data", "--data"),
    ("ds:/data/sub", "--data"),
    ("ds:/workspace/runs", "--runs"),
    ("ds:/workspace/runs/a", "--runs"),
    ("ds:/workspace", "project's code"),
    ("ds:/workspace/", "project's code"),
    ("ds:/", "project's code"),
])
def test_parse_volumes_refuses(value: str, says: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ds").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=says) as caught:
        parse_volumes([value], data_mounted=True)
    assert "\n" not in caught.value.message and caught.value.hint


def test_parse_volumes_refuses_one_path_twice(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ds").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="/x twice"):
        parse_volumes(["ds:/x", "ds:/x/:ro"], data_mounted=False)


def test_run_request_publishes_and_mounts(tmp_path: Path) -> None:
    extra = engine.Mount(str(tmp_path / "w"), "/models", read_only=True)
    options = RunOptions(image="x", ports=((8000, 8001),), host_ip="0.0.0.0", volumes=(extra,))
    request = run_request(options, None, 1000, 1000, tmp_path / "data", None)
    assert request.ports == ((8000, 8001),) and request.host_ip == "0.0.0.0"
    assert request.mounts == (engine.Mount(str(tmp_path / "data"), "/data"), extra)
    assert run_request(RunOptions(image="x"), None, 1000, 1000, None, None).host_ip == \
        "127.0.0.1"
