"""dlbox.lock: round-trip, schema checks, staleness, and plan() refusing a stale lock."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dlbox.container import build as B
from dlbox.container.lock import (
    LOCK_FILE,
    LOCK_SCHEMA,
    LockEntry,
    lock_key,
    pinned_version,
    pins_from_report,
    read_lock,
    stale_reasons,
    target_archs,
    write_lock,
)
from dlbox.container.project import detect_project
from dlbox.errors import ContainerError, UsageError

PROJECT_REQS = ("numpy>=1.24", "torch>=2.0")


def make_entry(**overrides: object) -> LockEntry:
    values: dict[str, object] = dict(
        key="torch-gpu",
        framework="torch",
        framework_version="2.14.1+cu126",
        variant="cu126",
        cuda="12.6",
        cudnn="9.10",
        wheel_index="https://download.pytorch.org/whl/cu126",
        min_driver="525.60.13",
        python="3.11.2",
        base_image="python:3.11-slim-bookworm",
        base_id="sha256:" + "1" * 64,
        project_requirements=PROJECT_REQS,
        project_pip_options=("--extra-index-url=https://extra.example/simple",),
        requirements_in=("numpy>=1.24", "torch==2.14.1+cu126"),
        pinned=("numpy==2.1.0", "torch==2.14.1+cu126", "typing-extensions==4.12.2"),
        reasons=("driver 560.35.03",),
        locked_at="2026-11-22T10:00:00+00:00",
        dlbox_version="0.1.0",
        resolved={"framework": "torch", "version": "2.14.1"},
    )
    values.update(overrides)
    return LockEntry(**values)  # type: ignore[arg-type]


# ---- round trip ------------------------------------------------------------------------------

def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    gpu = make_entry()
    cpu = make_entry(key="torch-cpu", framework_version="2.15.0+cpu", variant="cpu", cuda=None,
                     cudnn=None, min_driver=None,
                     wheel_index="https://download.pytorch.org/whl/cpu")
    write_lock(path, {"torch-gpu": gpu, "torch-cpu": cpu})
    entries = read_lock(path)
    assert list(entries) == ["torch-cpu", "torch-gpu"]  # sorted
    assert entries["torch-gpu"] == gpu and entries["torch-cpu"] == cpu
    assert entries["torch-gpu"].pinned == gpu.pinned  # lists come back as tuples
    assert isinstance(entries["torch-gpu"].project_requirements, tuple)
    assert entries["torch-gpu"].resolved == gpu.resolved
    assert entries["torch-gpu"].sha256() == gpu.sha256()
    assert entries["torch-gpu"].gpu and not entries["torch-cpu"].gpu
    data = json.loads(path.read_text())
    assert data["schema"] == LOCK_SCHEMA and "--relock" in data["comment"]
    assert data["builds"]["torch-gpu"]["pinned"] == list(gpu.pinned)
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file


def test_rewrite_is_byte_identical(tmp_path: Path) -> None:
    # A lock committed to git must not change when nothing in it changed.
    path = tmp_path / LOCK_FILE
    write_lock(path, {"torch-gpu": make_entry()})
    first = path.read_bytes()
    write_lock(path, read_lock(path))
    assert path.read_bytes() == first


def test_missing_lock_is_empty(tmp_path: Path) -> None:
    assert read_lock(tmp_path / LOCK_FILE) == {}


def test_unknown_keys_are_ignored_and_missing_keys_fail(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    data = make_entry().to_dict()
    data["written_by_a_newer_dlbox"] = True
    path.write_text(json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-gpu": data}}))
    assert read_lock(path)["torch-gpu"] == make_entry()
    del data["pinned"]
    path.write_text(json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-gpu": data}}))
    with pytest.raises(ContainerError) as info:
        read_lock(path)
    assert "pinned" in info.value.message and "--relock" in (info.value.hint or "")


CORRUPT_LOCKS = [
    "{not json", json.dumps({"schema": 99, "builds": {}}), json.dumps(["a", "list"]),
    # Found in review: these crashed with AttributeError / TypeError ("please report it").
    json.dumps({"schema": LOCK_SCHEMA, "builds": [1]}),
    json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-cpu": 5}}),
    json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-cpu": {
        **make_entry().to_dict(), "project_requirements": 5}}}),
    json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-cpu": {
        **make_entry().to_dict(), "python": ["3.11"]}}}),
]


@pytest.mark.parametrize("text", CORRUPT_LOCKS)
def test_corrupt_or_foreign_lock_fails_with_hint(tmp_path: Path, text: str) -> None:
    path = tmp_path / LOCK_FILE
    path.write_text(text)
    with pytest.raises(ContainerError) as info:
        read_lock(path)
    assert "--relock" in (info.value.hint or "")


def test_a_lock_with_merge_conflict_markers_says_so(tmp_path: Path) -> None:
    """Found by review: a dlbox.lock two branches changed read "cannot read ...: Expecting
    value: line 1 column 1 (char 0)", with no word of the merge."""
    path = tmp_path / LOCK_FILE
    entry = json.dumps({"schema": LOCK_SCHEMA, "builds": {}}, indent=2)
    path.write_text(f"<<<<<<< HEAD\n{entry}\n=======\n{entry}\n>>>>>>> other\n")
    with pytest.raises(ContainerError) as info:
        read_lock(path)
    assert info.value.message == f"{path} holds git merge conflict markers (<<<<<<<)"
    assert "resolve the conflict" in (info.value.hint or "")
    path.write_text("{not json")
    with pytest.raises(ContainerError) as plain:
        read_lock(path)
    assert plain.value.message.startswith(f"{path} is not valid JSON (")


@pytest.mark.parametrize("text", CORRUPT_LOCKS)
def test_relock_is_the_way_out_of_a_lock_it_cannot_read(tmp_path: Path, text: str) -> None:
    """The hint says --relock; it read the lock first and failed the same way."""
    root = write_project(tmp_path / "proj")
    (root / LOCK_FILE).write_text(text)
    request = B.BuildRequest(project_dir=root, device="cpu")
    with pytest.raises(ContainerError, match="lock"):
        B.plan(request, facts=no_probe)
    relocked = B.plan(dataclasses.replace(request, relock=True), facts=no_probe)
    assert relocked.entry is None and relocked.entries == {}
    assert any(note.startswith("--relock: ") and "writes a new dlbox.lock" in note
               for note in relocked.lock_notes), relocked.lock_notes


def test_sha256_depends_on_what_the_image_installs() -> None:
    entry = make_entry()
    assert entry.sha256() == make_entry(locked_at="later", reasons=()).sha256()
    assert entry.sha256() == make_entry(pinned=tuple(reversed(entry.pinned))).sha256()
    assert entry.sha256() != make_entry(pinned=entry.pinned + ("rich==13.7.1",)).sha256()
    assert entry.sha256() != make_entry(base_image="debian:12").sha256()
    assert entry.sha256() != make_entry(python="3.12.1").sha256()
    assert len(entry.sha256()) == 64


def test_lock_key() -> None:
    assert lock_key("torch", True) == "torch-gpu"
    assert lock_key("jax", False) == "jax-cpu"


def test_pins_from_report() -> None:
    report = {"install": [
        {"metadata": {"name": "Torch", "version": "2.14.1+cu126"}},
        {"metadata": {"name": "numpy", "version": "2.1.0"}, "is_direct": False},
        {"metadata": {"name": "mylib", "version": "0.1"}, "is_direct": True,
         "download_info": {"url": "https://git.example/mylib.tar.gz"}},
        {"metadata": {"name": "localwheel", "version": "1.0"}, "is_direct": True,
         "download_info": {"url": "file:///tmp/dlbox-resolve/wheelhouse/localwheel.whl"}},
        {"metadata": {"name": "broken"}},
    ]}
    assert pins_from_report(report) == (
        "localwheel==1.0", "mylib @ https://git.example/mylib.tar.gz", "numpy==2.1.0",
        "Torch==2.14.1+cu126")
    assert pinned_version(pins_from_report(report), "torch") == "2.14.1+cu126"
    assert pinned_version(("Typing_Extensions==4.12.2",), "typing-extensions") == "4.12.2"
    assert pinned_version(("numpy==2.1.0",), "torch") is None


# ---- staleness -------------------------------------------------------------------------------

def test_fresh_entry_has_no_reasons() -> None:
    entry = make_entry()
    assert stale_reasons(entry, PROJECT_REQS, entry.project_pip_options) == []
    # Asking for exactly what is locked is not a change either.
    assert stale_reasons(entry, PROJECT_REQS, entry.project_pip_options,
                         base_image=entry.base_image, framework_version="2.14.1",
                         cuda="12.6", driver="560.35.03") == []
    assert stale_reasons(entry, PROJECT_REQS, entry.project_pip_options,
                         framework_version="2.14.1+cu126") == []


def test_changed_requirements_are_stale() -> None:
    entry = make_entry()
    reasons = stale_reasons(entry, ("numpy>=1.24", "rich", "torch>=2.0"),
                            entry.project_pip_options)
    assert len(reasons) == 1
    assert "requirements changed" in reasons[0] and "+rich" in reasons[0]
    removed = stale_reasons(entry, ("torch>=2.0",), entry.project_pip_options)
    assert "-numpy>=1.24" in removed[0]


def test_changed_pip_options_are_stale() -> None:
    entry = make_entry()
    reasons = stale_reasons(entry, PROJECT_REQS, ())
    assert len(reasons) == 1 and "pip options" in reasons[0]
    assert "-" + entry.project_pip_options[0] in reasons[0]


def test_other_base_image_is_stale() -> None:
    entry = make_entry()
    reasons = stale_reasons(entry, PROJECT_REQS, entry.project_pip_options,
                            base_image="nvidia/cuda:12.6.0-runtime-ubuntu22.04")
    assert reasons == ["the base image is now nvidia/cuda:12.6.0-runtime-ubuntu22.04 "
                       "(locked: python:3.11-slim-bookworm)"]


def test_other_framework_version_cuda_or_too_old_driver_is_stale() -> None:
    entry = make_entry()
    options = entry.project_pip_options
    assert "torch 2.13.0 was asked for" in stale_reasons(
        entry, PROJECT_REQS, options, framework_version="2.13.0")[0]
    assert "CUDA 13.0 was asked for" in stale_reasons(entry, PROJECT_REQS, options,
                                                      cuda="13.0")[0]
    # 470 cannot run CUDA 12.x at all (12.x needs >= 525.60.13): the locked build is useless.
    driver = stale_reasons(entry, PROJECT_REQS, options, driver="470.82.01")
    assert len(driver) == 1 and "below the locked build's minimum 525.60.13" in driver[0]
    # A driver at the minimum is fine.
    assert stale_reasons(entry, PROJECT_REQS, options, driver="525.60.13") == []


def test_many_changes_are_all_reported_and_truncated() -> None:
    entry = make_entry()
    new = tuple(f"pkg{i}" for i in range(10))
    reasons = stale_reasons(entry, new, (), base_image="debian:12")
    assert len(reasons) == 3
    assert "more)" in reasons[0]  # 12 differences, 6 shown


# ---- plan() with a lock on disk --------------------------------------------------------------

def no_probe() -> object:
    raise AssertionError("a --cpu build must not probe the host")


def write_project(root: Path, requirements: str = "numpy>=1.24\ntorch>=2.0\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "train.py").write_text("print('hi')\n")
    return root


def locked_cpu_entry(project_dir: Path) -> LockEntry:
    project = detect_project(project_dir)
    return make_entry(key="torch-cpu", framework_version="2.15.0+cpu", variant="cpu",
                      cuda=None, cudnn=None, min_driver=None,
                      wheel_index="https://download.pytorch.org/whl/cpu",
                      project_requirements=project.input_requirements(),
                      project_pip_options=project.pip_options)


def test_plan_uses_a_fresh_lock(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    entry = locked_cpu_entry(root)
    write_lock(root / LOCK_FILE, {"torch-cpu": entry})
    p = B.plan(B.BuildRequest(project_dir=root, device="cpu"), facts=no_probe)
    assert p.key == "torch-cpu" and p.entry == entry
    assert p.lock_path == (root / LOCK_FILE).resolve()
    # --relock ignores the entry (and so does a GPU build, which has its own key).
    assert B.plan(B.BuildRequest(project_dir=root, device="cpu", relock=True),
                  facts=no_probe).entry is None
    gpu = B.plan(B.BuildRequest(project_dir=root, device="gpu", driver="560.35.03"),
                 facts=no_probe)
    assert gpu.key == "torch-gpu" and gpu.entry is None and "torch-cpu" in gpu.entries


def test_plan_refuses_a_stale_lock_with_relock_hint(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    write_lock(root / LOCK_FILE, {"torch-cpu": locked_cpu_entry(root)})
    (root / "requirements.txt").write_text("numpy>=1.24\ntorch>=2.0\nrich\n")
    request = B.BuildRequest(project_dir=root, device="cpu")
    with pytest.raises(ContainerError) as info:
        B.plan(request, facts=no_probe)
    assert "no longer matches the project (torch-cpu)" in info.value.message
    assert "+rich" in info.value.message
    assert "--relock" in (info.value.hint or "")
    assert str(root) in (info.value.hint or "")
    # --relock is the way out, and dry_run fails the same way without it.
    assert B.plan(dataclasses.replace(request, relock=True), facts=no_probe).entry is None
    with pytest.raises(ContainerError, match="no longer matches"):
        B.dry_run(request, facts=no_probe)


def test_a_relock_keeps_the_base_image_the_user_chose(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The relock hint (and --relock typed by hand) swapped a lock made on the user's own base
    # (a registry-free one) for dlbox's default: offline the pasted hint failed to pull it.
    monkeypatch.delenv("DLBOX_BASE_IMAGE", raising=False)
    root = write_project(tmp_path / "proj")
    chosen = dataclasses.replace(locked_cpu_entry(root), base_image="dlbox-base:bookworm")
    write_lock(root / LOCK_FILE, {"torch-cpu": chosen})
    (root / "requirements.txt").write_text("numpy>=1.24\ntorch>=2.0\nrich\n")
    relock = B.BuildRequest(project_dir=root, device="cpu", relock=True)
    p = B.plan(relock, facts=no_probe)
    assert p.entry is None and p.base_image == "dlbox-base:bookworm"
    dockerfile, notes = B.dry_run(relock, facts=no_probe)
    assert "FROM dlbox-base:bookworm" in dockerfile
    assert any("--relock keeps the base image" in note for note in notes), notes
    assert any(note.startswith("--relock: the build resolves a new torch-cpu entry")
               for note in notes), notes
    # --base-image still changes it; a base dlbox chose itself is chosen again
    other = dataclasses.replace(relock, base_image="debian:12-slim")
    assert B.plan(other, facts=no_probe).base_image == "debian:12-slim"
    write_lock(root / LOCK_FILE, {"torch-cpu": dataclasses.replace(
        chosen, base_image="python:3.11-slim-bookworm")})
    assert B.plan(relock, facts=no_probe).base_image is None


def test_plan_refuses_lock_when_base_image_changes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    write_lock(root / LOCK_FILE, {"torch-cpu": locked_cpu_entry(root)})
    with pytest.raises(ContainerError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="cpu", base_image="debian:12-slim"),
               facts=no_probe)
    assert "base image is now debian:12-slim" in info.value.message
    assert "--relock" in (info.value.hint or "")


def test_plan_refuses_gpu_lock_for_a_too_old_driver(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    project = detect_project(root)
    entry = make_entry(project_requirements=project.input_requirements(),
                       project_pip_options=project.pip_options)
    write_lock(root / LOCK_FILE, {"torch-gpu": entry})
    ok = B.plan(B.BuildRequest(project_dir=root, device="gpu", driver="560.35.03"),
                facts=no_probe)
    assert ok.entry == entry
    with pytest.raises(ContainerError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="gpu", driver="470.82.01",
                              compute_capabilities=("7.5",)), facts=no_probe)
    assert "driver 470.82.01 is below" in info.value.message


def test_plan_with_lock_path_elsewhere(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    other = tmp_path / "locks" / "custom.lock"
    other.parent.mkdir()
    write_lock(other, {"torch-cpu": locked_cpu_entry(root)})
    p = B.plan(B.BuildRequest(project_dir=root, device="cpu", lock_path=other), facts=no_probe)
    assert p.entry is not None and p.lock_path == other.resolve()


def test_dry_run_from_lock_renders_the_locked_build(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    entry = locked_cpu_entry(root)
    write_lock(root / LOCK_FILE, {"torch-cpu": entry})
    dockerfile, notes = B.dry_run(B.BuildRequest(project_dir=root, device="cpu"),
                                  facts=no_probe)
    assert "dlbox.framework.version=\"2.15.0+cpu\"" in dockerfile
    assert f'dlbox.lock.sha256="{entry.sha256()}"' in dockerfile
    assert 'dlbox.python="3.11.2"' in dockerfile
    assert "--extra-index-url=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "torch-cpu locked (3 pins, Python 3.11.2" in notes[1]
    assert "NVIDIA_VISIBLE_DEVICES" not in dockerfile


def test_a_companion_missing_from_the_wheelhouse_keeps_the_frameworks_index(
        tmp_path: Path) -> None:
    """Found by review: with torch's wheel in the wheelhouse, the CPU index was dropped, and
    torchvision came from PyPI, a CUDA build, whose import failed beside torch+cpu."""
    root = write_project(tmp_path / "proj", "torch\ntorchvision\n")
    house = tmp_path / "wheels"
    house.mkdir()
    (house / "torch-2.15.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    index = "--extra-index-url=https://download.pytorch.org/whl/cpu"

    def dockerfile(pinned: tuple[str, ...]) -> str:
        entry = dataclasses.replace(locked_cpu_entry(root), pinned=pinned)
        write_lock(root / LOCK_FILE, {"torch-cpu": entry})
        return B.dry_run(B.BuildRequest(project_dir=root, device="cpu", wheelhouse=house),
                         facts=no_probe)[0]

    write_project(root, "torch\n")  # torch alone: the wheelhouse's
    assert index not in dockerfile(("torch==2.15.0+cpu",))
    write_project(root, "torch\ntorchvision\n")
    assert index in dockerfile(("torch==2.15.0+cpu", "torchvision==0.30.0+cpu"))
    (house / "torchvision-0.30.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert index not in dockerfile(("torch==2.15.0+cpu", "torchvision==0.30.0+cpu"))
    assert B.companions_in("torch", ("numpy==2.1.0", "TorchVision[x]>=0.2", "torchaudio")) \
        == ("torchvision", "torchaudio")
    # without a lock: the project's own lines say torchvision (review: the dry run showed no
    # index, which the build then kept)
    (root / LOCK_FILE).unlink()
    (house / "torchvision-0.30.0+cpu-cp311-cp311-linux_x86_64.whl").unlink()
    request = B.BuildRequest(project_dir=root, device="cpu", wheelhouse=house)
    dockerfile_text, notes = B.dry_run(request, facts=no_probe)
    assert "torch 2.15.0+cpu (cpu)" in notes[0]
    assert index in dockerfile_text
    write_project(root, "torch\n")
    dockerfile_text, notes = B.dry_run(request, facts=no_probe)
    assert index not in dockerfile_text
    assert not [note for note in notes if "brings in" in note]
    # a dependency may bring torchvision in, which only pip's resolution shows: said (review)
    write_project(root, "torch\ntimm\n")
    dockerfile_text, notes = B.dry_run(request, facts=no_probe)
    assert index not in dockerfile_text
    assert ("if a dependency brings in torchvision or torchaudio and the wheelhouse lacks it, "
            "the build resolves it from https://download.pytorch.org/whl/cpu, with that index "
            "in the Dockerfile") in notes


def test_a_companion_pulled_in_by_another_package_is_resolved_from_the_frameworks_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: torch in the wheelhouse dropped torch's index when the project named no
    torchvision, and timm's torchvision then came from PyPI (a CUDA build beside torch+cpu)."""
    from types import SimpleNamespace

    root = write_project(tmp_path / "proj", "torch\ntimm\n")
    house = tmp_path / "wheels"
    house.mkdir()
    (house / "torch-2.15.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    request = B.BuildRequest(project_dir=root, device="cpu", wheelhouse=house)
    p = B.plan(request, facts=no_probe)
    monkeypatch.setattr(B.engine, "build", lambda *a, **k: SimpleNamespace(image_id="sha256:s"))
    monkeypatch.setattr(B.engine, "inspect_image", lambda client, name: {"Id": "sha256:b"})
    monkeypatch.setattr(B, "probe_python", lambda client, image: "3.11.2")
    asked: list[tuple[str, ...]] = []

    def pins(client: object, image: str, requirements: object, pip_args: tuple[str, ...],
             wheels: object, log: object, **kwargs: object) -> tuple[str, tuple[str, ...]]:
        asked.append(pip_args)
        # PyPI's (no +cpu) until the framework's index or the wheelhouse has the +cpu one
        in_house = (house / "torchvision-0.30.0+cpu-cp311-cp311-linux_x86_64.whl").exists()
        vision = "torchvision==0.30.0" + ("+cpu" if len(asked) > 1 or in_house else "")
        return "3.11.2", ("timm==1.0.0", "torch==2.15.0+cpu", vision)

    monkeypatch.setattr(B, "resolve_pins", pins)
    entry = B._lock(request, p, None, tmp_path, None, {}, lambda line: None, None)
    index = "--extra-index-url=https://download.pytorch.org/whl/cpu"
    assert len(asked) == 2 and index not in asked[0] and index in asked[1]
    assert "torchvision==0.30.0+cpu" in entry.pinned
    # with the companion in the wheelhouse too, one resolution from it is enough
    (house / "torchvision-0.30.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    asked.clear()
    B._lock(request, B.plan(request, facts=no_probe), None, tmp_path, None, {},
            lambda line: None, None)
    assert len(asked) == 1 and index not in asked[0]


def test_release_request_matches_any_patch_version_it_locked() -> None:
    # `--framework-version 2.1` locks the newest 2.1.x the matrix knows (2.1.2+cu121); the
    # same flag on the next build must not call that lock stale, nor an older lock of 2.1.0.
    # A patch version asks for exactly that patch.
    newest = make_entry(framework_version="2.1.2+cu121", variant="cu121", cuda="12.1")
    options = newest.project_pip_options
    assert stale_reasons(newest, PROJECT_REQS, options, framework_version="2.1") == []
    assert stale_reasons(newest, PROJECT_REQS, options, framework_version="2.1.2") == []
    assert stale_reasons(newest, PROJECT_REQS, options, framework_version="2.1.0") != []
    assert stale_reasons(newest, PROJECT_REQS, options, framework_version="2.2") != []
    assert stale_reasons(newest, PROJECT_REQS, options, framework_version="2") == []
    entry = make_entry(framework_version="2.1.0+cu121", variant="cu121", cuda="12.1")
    assert stale_reasons(entry, PROJECT_REQS, options, framework_version="2.1") == []
    assert stale_reasons(entry, PROJECT_REQS, options, framework_version="2.1.0") == []
    assert stale_reasons(entry, PROJECT_REQS, options, framework_version="2.1.2") != []
    assert stale_reasons(entry, PROJECT_REQS, options, framework_version="2.1.0+cu118") != []


# ---- the GPU architectures a lock was resolved for -------------------------------------------

def test_target_archs_are_normalised_and_sorted() -> None:
    assert target_archs(("sm_90", "8.6", "86", "7.5")) == ("7.5", "8.6", "9.0")
    assert target_archs(("12.0", "9.0")) == ("9.0", "12.0")  # numerically, not as text
    assert target_archs(()) == ()
    assert target_archs(("8.6", "ampere")) == ("8.6", "ampere")  # junk kept, for the message


def test_archs_round_trip_and_an_older_lock_reads_as_unrecorded(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    entry = make_entry(compute_capabilities=("8.6",))
    write_lock(path, {"torch-gpu": entry})
    assert json.loads(path.read_text())["builds"]["torch-gpu"]["compute_capabilities"] == ["8.6"]
    assert read_lock(path)["torch-gpu"].compute_capabilities == ("8.6",)
    first = path.read_bytes()
    write_lock(path, read_lock(path))
    assert path.read_bytes() == first
    old = entry.to_dict()
    del old["compute_capabilities"]  # written before dlbox recorded the architectures
    path.write_text(json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-gpu": old}}))
    assert read_lock(path)["torch-gpu"].compute_capabilities is None
    # The architecture does not change what the image installs: the label digest stays.
    assert entry.sha256() == make_entry().sha256()


def test_another_gpu_architecture_is_stale_naming_old_and_new() -> None:
    entry = make_entry(compute_capabilities=("8.6",))
    options = entry.project_pip_options
    assert stale_reasons(entry, PROJECT_REQS, options, driver="560.35.03",
                         compute_capabilities=("8.6",)) == []
    assert stale_reasons(entry, PROJECT_REQS, options, compute_capabilities=("sm_86",)) == []
    # Another GPU the locked build (torch 2.14 cu126: SASS 5.0 to 9.0) runs: still good.
    assert stale_reasons(entry, PROJECT_REQS, options, driver="560.35.03",
                         compute_capabilities=("9.0",)) == []
    reasons = stale_reasons(entry, PROJECT_REQS, options, driver="560.35.03",
                            compute_capabilities=("3.7",))
    assert reasons == ["the target's GPU architecture is sm_37, which the locked build does "
                       "not run (locked for sm_86)"]
    # One more GPU of a kind CUDA 12.6 does not know (Blackwell): only that one is named.
    assert stale_reasons(entry, PROJECT_REQS, options, compute_capabilities=("8.6", "12.0")) == [
        "the target's GPU architecture is sm_120, which the locked build does not run "
        "(locked for sm_86)"]


def test_a_lock_for_more_architectures_covers_fewer() -> None:
    # Resolved for a machine with two kinds of GPU: its build runs on each of them.
    entry = make_entry(compute_capabilities=("7.5", "8.6"))
    assert stale_reasons(entry, PROJECT_REQS, entry.project_pip_options,
                         compute_capabilities=("8.6",)) == []


def test_a_lock_resolved_without_architecture_is_kept() -> None:
    # Resolved from --driver alone: never checked against an architecture, so the other
    # settings decide (as for a lock from before the record).
    entry = make_entry(compute_capabilities=())
    assert stale_reasons(entry, PROJECT_REQS, entry.project_pip_options,
                         compute_capabilities=("3.7",)) == []


def test_no_architecture_named_or_none_recorded_keeps_the_lock() -> None:
    options = make_entry().project_pip_options
    # No architecture named this time (--driver alone): the lock decides.
    assert stale_reasons(make_entry(compute_capabilities=("8.6",)), PROJECT_REQS, options,
                         compute_capabilities=()) == []
    # A lock from before the record cannot tell which architecture it was for.
    assert stale_reasons(make_entry(), PROJECT_REQS, options,
                         compute_capabilities=("9.0",)) == []


def gpu_facts(*caps: str) -> object:
    from dlbox.hostenv.facts import DockerFacts, GpuFacts, HostFacts, NvidiaFacts

    gpus = tuple(GpuFacts(index=i, name=f"GPU {i}", compute_capability=cc)
                 for i, cc in enumerate(caps))
    return HostFacts(nvidia=NvidiaFacts(source="nvml", driver_version="560.35.03", gpus=gpus),
                     docker=DockerFacts(reachable=True, runtimes=("nvidia", "runc")))


def test_plan_refuses_a_gpu_lock_for_another_architecture(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    project = detect_project(root)
    entry = make_entry(project_requirements=project.input_requirements(),
                       project_pip_options=project.pip_options, compute_capabilities=("8.6",))
    write_lock(root / LOCK_FILE, {"torch-gpu": entry})
    same = B.plan(B.BuildRequest(project_dir=root, device="gpu", driver="560.35.03",
                                 compute_capabilities=("8.6",)), facts=no_probe)
    assert same.entry == entry
    # Same driver, a GPU the locked build has no kernels for: the lock must not be reused.
    with pytest.raises(ContainerError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="gpu", driver="560.35.03",
                              compute_capabilities=("12.0",)), facts=no_probe)
    assert "no longer matches the project (torch-gpu)" in info.value.message
    assert "GPU architecture is sm_120, which the locked build does not run (locked for " \
        "sm_86)" in info.value.message
    assert "--relock" in (info.value.hint or "")
    # The host's GPUs count when the build follows this host.
    assert B.plan(B.BuildRequest(project_dir=root),
                  facts=lambda: gpu_facts("8.6")).entry == entry
    assert B.plan(B.BuildRequest(project_dir=root),
                  facts=lambda: gpu_facts("9.0")).entry == entry  # the build runs sm_90
    with pytest.raises(ContainerError, match="sm_120, which the locked build"):
        B.plan(B.BuildRequest(project_dir=root), facts=lambda: gpu_facts("12.0"))
    with pytest.raises(ContainerError, match="sm_120"):
        B.dry_run(B.BuildRequest(project_dir=root), facts=lambda: gpu_facts("12.0"))


def test_a_new_lock_records_the_target_architectures(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # _lock with the engine stood in: what it writes must carry the target's architectures.
    from types import SimpleNamespace

    root = write_project(tmp_path / "proj")
    request = B.BuildRequest(project_dir=root, device="gpu", driver="560.35.03",
                             compute_capabilities=("sm_89", "8.6"))
    p = B.plan(request, facts=no_probe)
    assert p.entry is None
    monkeypatch.setattr(B.engine, "build", lambda *a, **k: SimpleNamespace(image_id="sha256:s"))
    monkeypatch.setattr(B.engine, "inspect_image", lambda client, name: {"Id": "sha256:b"})
    monkeypatch.setattr(B, "probe_python", lambda client, image: "3.11.2")

    def pins(client: object, image: str, requirements: object, pip_args: object,
             wheels: object, log: object, **kwargs: object) -> tuple[str, tuple[str, ...]]:
        return "3.11.2", ("numpy==2.1.0", "torch==2.14.1+cu126")

    monkeypatch.setattr(B, "resolve_pins", pins)
    entry = B._lock(request, p, None, tmp_path, None, {}, lambda line: None, None)
    assert entry.compute_capabilities == ("8.6", "8.9")
    assert stale_reasons(entry, entry.project_requirements, entry.project_pip_options,
                         compute_capabilities=("8.9",)) == []
    assert stale_reasons(entry, entry.project_requirements, entry.project_pip_options,
                         compute_capabilities=("12.0",)) != []


# ---- extras, requirements the pins meet, the --relock hint, --lock FOLDER --------------------

def write_pyproject(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "vizproj"\nversion = "0.1"\ndependencies = ["torch>=2.0", "numpy"]\n'
        '[project.optional-dependencies]\nviz = ["pyyaml>=6"]\n')
    return root


def pyproject_entry(root: Path, extras: tuple[str, ...]) -> LockEntry:
    project = detect_project(root, extras)
    return make_entry(key="torch-cpu", framework_version="2.15.0+cpu", variant="cpu",
                      cuda=None, cudnn=None, min_driver=None,
                      project_requirements=project.input_requirements(),
                      project_pip_options=project.pip_options, extras=extras,
                      pinned=("numpy==2.1.0", "pyyaml==6.0.2", "setuptools==75.1.0",
                              "torch==2.15.0+cpu", "wheel==0.44.0"))


def test_other_extras_than_the_locks_are_named_as_such(tmp_path: Path) -> None:
    # Before: "the project's requirements changed (-pyyaml>=6)", which the user never touched.
    root = write_pyproject(tmp_path / "proj")
    write_lock(root / LOCK_FILE, {"torch-cpu": pyproject_entry(root, ("viz",))})
    with pytest.raises(ContainerError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="cpu"), facts=no_probe)
    assert info.value.message == (
        "dlbox.lock no longer matches the project (torch-cpu): the extras differ from the "
        "lock's: it was resolved with --extras viz, this build has no extras")
    assert (info.value.hint or "").startswith("build with the lock's extras (--extras viz), or "
                                              "re-resolve and rewrite it: dlbox image build ")
    assert B.plan(B.BuildRequest(project_dir=root, device="cpu", extras=("viz",)),
                  facts=no_probe).entry is not None
    write_lock(root / LOCK_FILE, {"torch-cpu": pyproject_entry(root, ())})
    with pytest.raises(ContainerError, match="resolved with no extras, this build has "
                                             "--extras viz"):
        B.plan(B.BuildRequest(project_dir=root, device="cpu", extras=("viz",)),
               facts=no_probe)
    # A lock from before the record: the requirements that differ, as before.
    old = dataclasses.replace(pyproject_entry(root, ("viz",)), extras=None)
    assert stale_reasons(old, detect_project(root).input_requirements(),
                         ()) == ["the project's requirements changed (-pyyaml>=6)"]


def test_the_relock_hint_repeats_the_users_flags(tmp_path: Path) -> None:
    import shlex

    root = write_pyproject(tmp_path / "my proj")  # a space: the hint must be quoted
    lock = tmp_path / "locks" / "cpu.lock"
    lock.parent.mkdir()
    write_lock(lock, {"torch-cpu": pyproject_entry(root, ("viz",))})
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace(
        '"numpy"', '"numpy", "rich"'))
    request = B.BuildRequest(project_dir=root, device="cpu", base_image="dlbox-base:bookworm",
                             wheelhouse=Path("/opt/wheels"), extras=("viz",),
                             tag="viz:test", lock_path=lock, smoke=False)
    with pytest.raises(ContainerError) as info:
        B.plan(request, facts=no_probe)
    assert "+rich (not in the lock)" in info.value.message
    command = (info.value.hint or "").split("re-resolve and rewrite it: ", 1)[1]
    assert shlex.split(command) == [
        "dlbox", "image", "build", str(root), "--cpu", "--tag", "viz:test",
        "--base-image", "dlbox-base:bookworm", "--wheelhouse", "/opt/wheels",
        "--extras", "viz", "--lock", str(lock), "--no-smoke", "--relock"]
    assert f"'{root}'" in command
    gpu = B.relock_command(B.BuildRequest(device="gpu", driver="550.54.15", cuda="12.4",
                                          compute_capabilities=("8.6", "9.0"),
                                          framework="torch", framework_version="2.13"))
    assert gpu == ("dlbox image build --gpu --framework torch --framework-version 2.13 "
                   "--driver 550.54.15 --cuda 12.4 --compute-capability 8.6 "
                   "--compute-capability 9.0 --relock")


def test_new_requirements_the_pins_meet_keep_the_lock(tmp_path: Path) -> None:
    # Before: adding requests>=2 to a project whose lock pins requests 2.32.3 forced --relock.
    root = write_project(tmp_path / "proj")
    entry = dataclasses.replace(locked_cpu_entry(root), pinned=(
        "numpy==2.1.0", "requests==2.32.3", "torch==2.15.0+cpu"))
    write_lock(root / LOCK_FILE, {"torch-cpu": entry})
    request = B.BuildRequest(project_dir=root, device="cpu")
    for requirements in ("numpy>=1.24\ntorch>=2.0\nrequests>=2\n",
                         "numpy>=2.1\ntorch==2.15.0\n",  # changed lines, still met
                         'numpy>=1.24\ntorch>=2.0\nrequests>=3; python_version < "3.8"\n'):
        (root / "requirements.txt").write_text(requirements)
        p = B.plan(request, facts=no_probe)
        assert p.entry == entry, requirements
        assert p.lock_notes and "its pins meet them" in p.lock_notes[0]
    (root / "requirements.txt").write_text("numpy>=1.24\ntorch>=2.0\nrequests>=2\n")
    notes = B.dry_run(request, facts=no_probe)[1]
    assert any("+requests>=2), and its pins meet them" in note for note in notes)
    # What the pins do not meet is refused, naming the line and what the lock pins.
    for requirements, shown in [
            ("numpy>=1.24\ntorch>=2.0\nrequests>=3\n",
             "+requests>=3 (the lock pins requests 2.32.3)"),
            ("numpy>=3\ntorch>=2.0\n", "numpy>=1.24 -> numpy>=3 (the lock pins numpy 2.1.0)"),
            ("numpy>=1.24\ntorch>=2.0\nrequests[socks]>=2\n",
             "+requests[socks]>=2 (its extras [socks] may need more packages)"),
            ("torch>=2.0\n", "-numpy>=1.24")]:
        (root / "requirements.txt").write_text(requirements)
        with pytest.raises(ContainerError) as info:
            B.plan(request, facts=no_probe)
        assert f"the project's requirements changed ({shown})" in info.value.message


def test_a_lock_path_that_is_a_folder(tmp_path: Path) -> None:
    from dlbox.cli import main
    from dlbox.errors import UsageError

    root = write_project(tmp_path / "proj")
    folder = tmp_path / "locks"
    folder.mkdir()
    with pytest.raises(UsageError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="cpu", lock_path=folder),
               facts=no_probe)
    assert info.value.message == f"--lock {folder} is a folder; pass a file path"
    assert info.value.hint == f"e.g. --lock {folder / LOCK_FILE}"
    assert main(["image", "build", str(root), "--cpu", "--dry-run", "--lock",
                 str(folder)]) == 2
    # The default path taken by a folder: no "[Errno 21] Is a directory".
    with pytest.raises(ContainerError, match="is a folder, not a lock file"):
        read_lock(folder)


def test_a_new_lock_records_the_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    root = write_pyproject(tmp_path / "proj")
    request = B.BuildRequest(project_dir=root, device="cpu", extras=("viz",))
    p = B.plan(request, facts=no_probe)
    monkeypatch.setattr(B.engine, "build", lambda *a, **k: SimpleNamespace(image_id="sha256:s"))
    monkeypatch.setattr(B.engine, "inspect_image", lambda client, name: {"Id": "sha256:b"})
    monkeypatch.setattr(B, "probe_python", lambda client, image: "3.11.2")
    monkeypatch.setattr(B, "resolve_pins", lambda *args, **kwargs: (
        "3.11.2", ("numpy==2.1.0", "pyyaml==6.0.2", "torch==2.15.0+cpu")))
    entry = B._lock(request, p, None, tmp_path, None, {}, lambda line: None, None)
    assert entry.extras == ("viz",)
    write_lock(tmp_path / LOCK_FILE, {"torch-cpu": entry})
    assert read_lock(tmp_path / LOCK_FILE)["torch-cpu"].extras == ("viz",)


def test_an_unknown_framework_version_is_refused_before_the_lock_is_compared(
        tmp_path: Path) -> None:
    # On a locked project, --framework-version 1.0 said the lock was stale and to --relock,
    # which then failed: 1.0 is not in dlbox's matrix.
    root = write_project(tmp_path / "proj")
    write_lock(root / LOCK_FILE, {"torch-cpu": locked_cpu_entry(root)})
    with pytest.raises(UsageError) as info:
        B.plan(B.BuildRequest(project_dir=root, device="cpu", framework_version="1.0"),
               facts=no_probe)
    assert info.value.message == "torch 1.0 is not in dlbox's compatibility matrix"
    assert "--relock" not in (info.value.hint or "")


class NoEngine:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the build reached the engine ({name})")


def test_a_lock_that_cannot_be_written_is_refused_before_the_build(tmp_path: Path) -> None:
    """Found by review: `image build --lock` in a folder the user may not write built the
    image and ran its smoke test (minutes), and only then failed to write the lock, leaving
    the image untagged. The lock's place is checked before the engine is asked anything."""
    from dlbox.container.build import BuildRequest, build_image
    from dlbox.errors import FileWriteError

    project = write_project(tmp_path / "p")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    lock = blocker / "dlbox.lock"  # under a file: never writable, root or not
    with pytest.raises(FileWriteError) as caught:
        build_image(BuildRequest(project_dir=project, device="cpu", lock_path=lock),
                    log=lambda line: None, facts=no_probe, client=NoEngine())
    assert caught.value.message == f"cannot write {lock}: {blocker} is not a folder"
    assert caught.value.hint == "pass --lock a file path in a folder you can write to"
    assert not lock.exists()


def test_offline_with_pins_missing_from_the_wheelhouse_pastes_the_download(
        tmp_path: Path) -> None:
    """Found by review: the hint was `pip download --no-deps -d DIR -r <(the pins in
    dlbox.lock)`, not a command one can paste; it names the missing pins, the image's Python
    and the framework's wheel index now, and comes before the engine is asked anything."""
    import shlex

    from dlbox.container.build import BuildRequest, build_image
    from dlbox.errors import UsageError

    root = write_project(tmp_path / "proj")
    entry = locked_cpu_entry(root)
    write_lock(root / LOCK_FILE, {"torch-cpu": entry})
    house = tmp_path / "wheel house"
    house.mkdir()
    with pytest.raises(UsageError) as caught:
        build_image(BuildRequest(project_dir=root, device="cpu", offline=True, wheelhouse=house),
                    log=lambda line: None, facts=no_probe, client=NoEngine())
    assert caught.value.message.startswith(
        f"--offline, but the wheelhouse lacks {len(entry.pinned)} pinned packages: ")
    hint = caught.value.hint or ""
    command = hint.split("fill it on a machine with network: ", 1)[1].rsplit("; or drop", 1)[0]
    words = shlex.split(command)
    assert words[:2] == ["pip", "download"] and str(house) in words
    assert "--extra-index-url" in words and entry.wheel_index in words
    assert words[words.index("--python-version") + 1] == ".".join(entry.python.split(".")[:2])
    assert set(entry.pinned) <= set(words)
    # pip matches only the platform tags named: torch 2.7 on ships manylinux_2_28 wheels
    platforms = {words[i + 1] for i, word in enumerate(words) if word == "--platform"}
    assert any(tag.startswith("manylinux_2_28_") for tag in platforms)
    assert any(tag.startswith("manylinux2014_") for tag in platforms)
    # found by review: the dry run said nothing of what the build then refused at once
    from dlbox.container.build import dry_run

    _, notes = dry_run(BuildRequest(project_dir=root, device="cpu", offline=True,
                                    wheelhouse=house), facts=no_probe)
    [warning] = [note for note in notes if "wheelhouse lacks" in note]
    assert warning.startswith(f"warning: --offline, but the wheelhouse lacks "
                              f"{len(entry.pinned)} pinned packages (")
    assert warning.endswith(command)  # the same pasteable download


@pytest.mark.parametrize("name, text", [
    ("requirements.txt", "torch==2.13.0\nsix\n"),
    ("package.json", json.dumps({"name": "web", "$schema": "x"})),
])
def test_a_file_that_is_no_lock_is_never_relocked_over(tmp_path: Path, name: str,
                                                       text: str) -> None:
    """Found by review: `--lock requirements.txt` said "not valid JSON", hint "build with
    --relock", and the relock replaced the project's requirements with lock JSON."""
    root = write_project(tmp_path / "proj")
    path = root / name
    path.write_text(text)
    for relock in (False, True):
        request = B.BuildRequest(project_dir=root, device="cpu", lock_path=path, relock=relock)
        with pytest.raises(ContainerError) as info:
            B.plan(request, facts=no_probe)
        assert info.value.message == (f"{path} is not a dlbox lock, and the build would "
                                      "replace it with one")
        assert "--relock" not in (info.value.hint or "")
    assert path.read_text() == text
    # a damaged lock under another name is still one: --relock is its way out
    damaged = root / "ci.lock"
    damaged.write_text('{"schema": 1, "builds": {')
    assert B.plan(B.BuildRequest(project_dir=root, device="cpu", lock_path=damaged,
                                 relock=True), facts=no_probe).entries == {}


def test_a_lock_path_that_is_no_regular_file_is_refused(tmp_path: Path) -> None:
    """`--lock /dev/null --relock` ("no lock, please") replaced the device with a file."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ContainerError, match="is not a regular file"):
        read_lock(fifo)
    assert not fifo.is_file()


# ---- pins that no longer cover the requirements (review) ---------------------------------------

def test_pins_that_no_longer_cover_the_requirements_are_stale() -> None:
    """Found by review: a hand-edited lock whose pins lack a requirement (six removed from
    `pinned`) passed, and the image lacked six (ModuleNotFoundError at run)."""
    reqs = ("numpy>=1.24", "six", "torch>=2.0")
    entry = make_entry(project_requirements=reqs,
                       pinned=("numpy==2.1.0", "Six==1.17.0", "torch==2.14.1+cu126"))
    assert stale_reasons(entry, reqs, entry.project_pip_options) == []
    dropped = dataclasses.replace(entry, pinned=("numpy==2.1.0", "torch==2.14.1+cu126"))
    reasons = stale_reasons(dropped, reqs, entry.project_pip_options)
    assert len(reasons) == 1 and "six (not in the lock)" in reasons[0], reasons
    edited = dataclasses.replace(entry, pinned=("numpy==1.20.0", "six==1.17.0",
                                                "torch==2.14.1+cu126"))
    reasons = stale_reasons(edited, reqs, entry.project_pip_options)
    assert len(reasons) == 1 and "numpy>=1.24 (the lock pins numpy 1.20.0)" in reasons[0]


def test_pin_coverage_is_lenient_where_it_cannot_tell() -> None:
    # markers that do not hold in the image (or that dlbox cannot evaluate), URLs, a pin
    # written `name @ url`, extras (the base package is still checked), the framework's
    # family (its line is replaced by the resolved build's) and PEP 503 names
    reqs = ("colorama; sys_platform == 'win32'", "uvloop; platform_machine == 'x86_64'",
            "tomli; python_version < '3.11'", "mylib @ https://git.example/mylib.tar.gz",
            "otherlib", "Typing_Extensions[x]>=4", "torch>=2.0")
    entry = make_entry(project_requirements=reqs,
                       pinned=("mylib @ https://git.example/mylib.tar.gz",
                               "otherlib @ https://git.example/otherlib.tar.gz",
                               "torch==2.14.1+cu126", "typing-extensions==4.12.2"))
    assert stale_reasons(entry, reqs, entry.project_pip_options) == []
    needed = ("tomli; python_version >= '3.11'", "torch>=2.0")
    entry = make_entry(project_requirements=needed, pinned=("torch==2.14.1+cu126",))
    assert "tomli" in stale_reasons(entry, needed, entry.project_pip_options)[0]


def test_plan_refuses_a_lock_whose_pins_lack_a_requirement(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", "torch==2.13.0\nsix\n")
    entry = dataclasses.replace(locked_cpu_entry(root), framework_version="2.13.0+cpu",
                                pinned=("six==1.17.0", "torch==2.13.0+cpu"))
    write_lock(root / LOCK_FILE, {"torch-cpu": entry})
    request = B.BuildRequest(project_dir=root, device="cpu")
    assert B.plan(request, facts=no_probe).entry == entry
    write_lock(root / LOCK_FILE, {"torch-cpu": dataclasses.replace(
        entry, pinned=("torch==2.13.0+cpu",))})
    with pytest.raises(ContainerError) as info:
        B.plan(request, facts=no_probe)
    assert "no longer matches the project (torch-cpu)" in info.value.message
    assert "six (not in the lock)" in info.value.message
    assert "--relock" in (info.value.hint or "")


@pytest.mark.parametrize("pin", ["not a pin!!", "six", "six>=1.0", "", "six==1.0; junk",
                                 "wheel==0.*", 'requests==2.34.2; python_version >= "3.8"',
                                 "six==1.0,<2"])
def test_a_malformed_pin_is_refused_when_the_lock_is_read(tmp_path: Path, pin: str) -> None:
    """Found by review: a pin pip cannot read passed read_lock and --dry-run, and the build
    failed at pip install with "Invalid requirement" and a generic hint."""
    path = tmp_path / "other.lock"
    data = make_entry().to_dict()
    data["pinned"] = [*data["pinned"], pin]
    path.write_text(json.dumps({"schema": LOCK_SCHEMA, "builds": {"torch-gpu": data}}))
    with pytest.raises(ContainerError) as info:
        read_lock(path)
    assert str(path) in info.value.message and repr(pin) in info.value.message
    assert "\n" not in info.value.message
    assert "--relock" in (info.value.hint or "")


def test_an_arbitrary_equality_pin_is_read_as_its_version(tmp_path: Path) -> None:
    """Found by review: `name===version` passed read_lock, but its version was read as
    "=4.16.0", so a good lock was called stale."""
    reqs = ("typing-extensions>=4", "torch>=2.0")
    entry = make_entry(project_requirements=reqs,
                       pinned=("torch==2.14.1+cu126", "typing-extensions===4.16.0"))
    path = tmp_path / LOCK_FILE
    write_lock(path, {"torch-gpu": entry})
    assert read_lock(path)["torch-gpu"] == entry
    assert pinned_version(entry.pinned, "typing-extensions") == "4.16.0"
    assert stale_reasons(entry, reqs, entry.project_pip_options) == []


def test_a_legacy_version_pin_dlbox_wrote_is_read_back(tmp_path: Path) -> None:
    """Found by review: the image's pip (<24.1) may lock a version that is not PEP 440
    (`foo==1.0-SNAPSHOT`); refusing it on the next read made every relock write it again."""
    reqs = ("foo>=1", "torch>=2.0")
    pins = pins_from_report({"install": [
        {"metadata": {"name": "foo", "version": "1.0-SNAPSHOT"}},
        {"metadata": {"name": "torch", "version": "2.14.1+cu126"}}]})
    assert pins == ("foo==1.0-SNAPSHOT", "torch==2.14.1+cu126")
    entry = make_entry(project_requirements=reqs, pinned=pins)
    path = tmp_path / LOCK_FILE
    write_lock(path, {"torch-gpu": entry})
    assert read_lock(path)["torch-gpu"] == entry
    assert pinned_version(entry.pinned, "foo") == "1.0-SNAPSHOT"
    assert stale_reasons(entry, reqs, entry.project_pip_options) == []  # cannot tell: kept
