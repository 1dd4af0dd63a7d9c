"""Safe extraction: only the official members, all or nothing."""

import errno
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dlbox.data import extract as extract_module
from dlbox.data.cifar10 import load_cifar10
from dlbox.data.extract import check_cifar10_archive, classify_member, extract_cifar10_archive
from dlbox.data.synthetic import write_fake_cifar10, write_fake_cifar10_archive
from dlbox.errors import DataError


def file_member(name: str, payload: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def link_member(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def make_archive(path: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]],
                 with_good: bool = True) -> Path:
    """A tar.gz with the real synthetic members first (if `with_good`), then `extra`."""
    with tarfile.open(path, "w:gz") as tar:
        if with_good:
            directory = write_fake_cifar10(path.parent / "src", n_train=20, n_test=10)
            tar.add(directory, arcname="cifar-10-batches-py", recursive=False)
            for member in sorted(directory.iterdir()):
                tar.add(member, arcname=f"cifar-10-batches-py/{member.name}")
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def assert_nothing_written(data_dir: Path) -> None:
    assert not data_dir.exists() or list(data_dir.iterdir()) == []


def test_good_archive_extracts_and_loads(tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", n_train=50, n_test=10)
    target = extract_cifar10_archive(archive, tmp_path / "data")
    assert target == tmp_path / "data" / "cifar-10-batches-py"
    assert len(load_cifar10(tmp_path / "data", "train")) == 50
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["cifar-10-batches-py"]


BAD_MEMBERS = {
    "dotdot": [file_member("cifar-10-batches-py/../x")],
    "dotdot_top": [file_member("../x")],
    "absolute": [file_member("/tmp/dlbox-evil")],
    "symlink": [link_member("cifar-10-batches-py/readme.html", "/etc/passwd", tarfile.SYMTYPE)],
    "hardlink": [link_member("cifar-10-batches-py/readme.html", "/etc/passwd", tarfile.LNKTYPE)],
    "unexpected": [file_member("cifar-10-batches-py/evil.py")],
    "unexpected_top": [file_member("setup.py")],
    "nested": [file_member("cifar-10-batches-py/sub/data_batch_1")],
    "dlbox_cache": [file_member("cifar-10-batches-py/dlbox-cache-test.pt")],
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_bad_member_refused_and_nothing_written(tmp_path: Path, case: str) -> None:
    archive = make_archive(tmp_path / "bad.tar.gz", BAD_MEMBERS[case])  # type: ignore[arg-type]
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, data_dir)
    assert "refusing the archive" in info.value.message
    assert info.value.hint
    assert_nothing_written(data_dir)
    assert not (tmp_path / "x").exists() and not Path("/tmp/dlbox-evil").exists()


@pytest.mark.parametrize("member, what", [
    # packed from a data dir that dlbox trained from: its decoded-tensor caches
    ("dlbox-cache-train.pt", "decoded-data cache"),
    # packed from one `dlbox data fetch` filled: tar puts dlbox-checksums.json first
    ("dlbox-checksums.json", "dlbox's own file"),
])
def test_an_archive_packed_with_dlbox_files_says_how_to_repack(
        tmp_path: Path, member: str, what: str) -> None:
    archive = make_archive(tmp_path / "packed.tar.gz",
                           [file_member(f"cifar-10-batches-py/{member}")])
    with pytest.raises(DataError, match=what) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert "without the dlbox-* files" in (info.value.hint or "")
    assert_nothing_written(tmp_path / "data")


def test_device_and_fifo_members_refused() -> None:
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.type = kind
        with pytest.raises(DataError):
            classify_member(info)
    directory = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    directory.type = tarfile.DIRTYPE
    with pytest.raises(DataError):
        classify_member(directory)


def test_duplicate_member_refused(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "dup.tar.gz", [file_member("cifar-10-batches-py/test_batch")])
    with pytest.raises(DataError):
        extract_cifar10_archive(archive, tmp_path / "data")
    assert_nothing_written(tmp_path / "data")


def test_missing_member_refused(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "few.tar.gz",
                           [file_member("cifar-10-batches-py/data_batch_1", b"x")],
                           with_good=False)
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert "lacks" in info.value.message
    assert_nothing_written(tmp_path / "data")


@pytest.mark.parametrize("payload", [b"", b"this is not gzip", b"\x1f\x8b\x08\x00garbage"])
def test_not_an_archive(tmp_path: Path, payload: bytes) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(payload)
    with pytest.raises(DataError):
        extract_cifar10_archive(tmp_path / "junk.tar.gz", tmp_path / "data")
    assert_nothing_written(tmp_path / "data")


def test_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", n_train=200, n_test=50)
    data = archive.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError):
        extract_cifar10_archive(tmp_path / "cut.tar.gz", tmp_path / "data")
    assert_nothing_written(tmp_path / "data")


def test_existing_data_kept_on_failure_and_replaced_on_success(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir)
    bad = make_archive(tmp_path / "bad.tar.gz", BAD_MEMBERS["dotdot"])  # type: ignore[arg-type]
    with pytest.raises(DataError):
        extract_cifar10_archive(bad, data_dir, replace=True)
    assert len(load_cifar10(data_dir, "train")) == 20  # untouched
    with pytest.raises(DataError):  # without replace an existing folder is an error
        extract_cifar10_archive(tmp_path / "a.tar.gz", data_dir)
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "b.tar.gz", 40, 10), data_dir,
                            replace=True)
    assert len(load_cifar10(data_dir, "train")) == 40
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]


# ---- the disk says no: one DataError naming the data dir, old data kept, no temp left -------
# Root ignores permission bits, so the refusing call is simulated (the tests run as root).

def denied(path: object) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def test_unwritable_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10)

    def mkdtemp(*args: object, **kwargs: object) -> str:
        raise denied(kwargs.get("dir"))
    monkeypatch.setattr(extract_module.tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert info.value.message == f"the data dir {tmp_path / 'data'} is not writable " \
                                 "(Permission denied)"
    assert "--data" in (info.value.hint or "")
    assert not (tmp_path / "data").exists()


def fail_renames(monkeypatch: pytest.MonkeyPatch, when: Callable[[str], bool],
                 error: Callable[[str], OSError]) -> None:
    """os.rename (as extract uses it) raises error(src) for the sources `when` picks."""
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if when(str(src)):
            raise error(str(src))
        real_rename(src, dst)  # type: ignore[arg-type]
    monkeypatch.setattr(extract_module.os, "rename", rename)


def test_old_folder_that_cannot_be_moved_aside(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir)
    fail_renames(monkeypatch, lambda src: Path(src) == data_dir / "cifar-10-batches-py",
                 denied)
    with pytest.raises(DataError, match="cannot replace the existing") as info:
        extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "b.tar.gz", 40, 10),
                                data_dir, replace=True)
    assert "delete" in (info.value.hint or "")
    monkeypatch.undo()
    assert len(load_cifar10(data_dir, "train")) == 20
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]


def test_failed_final_rename_puts_the_old_folder_back(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir)
    fail_renames(monkeypatch, lambda src: src.endswith(".tmp"),
                 lambda src: OSError(errno.EIO, "Input/output error", src))
    with pytest.raises(DataError, match="cannot move the extracted files into place"):
        extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "b.tar.gz", 40, 10),
                                data_dir, replace=True)
    monkeypatch.undo()
    assert len(load_cifar10(data_dir, "train")) == 20
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]


def test_old_folder_that_cannot_be_deleted_is_reported_not_raised(
        tmp_path: Path, undeletable_old_copies: None) -> None:
    data_dir = tmp_path / "data"
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir)
    heard: list[tuple[Path, OSError]] = []
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "b.tar.gz", 40, 10), data_dir,
                            replace=True,
                            on_leftover=lambda path, error: heard.append((path, error)))
    assert len(load_cifar10(data_dir, "train")) == 40
    assert len(heard) == 1 and heard[0][0].parent == data_dir and heard[0][0].exists()
    assert heard[0][0].name.startswith(".cifar-10-batches-py.old.")
    # without a listener, a warning says the same
    with pytest.warns(RuntimeWarning, match="could not delete the old copy .*by hand"):
        extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "c.tar.gz", 30, 10),
                                data_dir, replace=True)
    assert len(load_cifar10(data_dir, "train")) == 30


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        extract_cifar10_archive(archive, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "x"


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tif", ".gif"])
def test_an_image_tree_of_any_format_dlbox_reads_is_named_as_one(tmp_path: Path,
                                                               suffix: str) -> None:
    """Review: an image tree of .webp files got "use the official archive", a .jpg one the
    image-tree hint: the archive check kept its own list of 3 suffixes, not the 14 an image
    tree is read with."""
    archive = make_archive(tmp_path / "tree.tar.gz", [
        dir_member("tree"), dir_member("tree/train"), dir_member("tree/train/cat"),
        file_member(f"tree/train/cat/0001{suffix}", b"image"),
    ], with_good=False)
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert f"{archive} holds an image tree" in (info.value.hint or ""), info.value.hint


def test_an_image_tree_archive_is_named_as_one(tmp_path: Path) -> None:
    """The shared cifar10-jpeg.tar.gz passed to `fetch`: refused, with a hint to unpack it and
    use it as an image folder rather than "use the official archive"."""
    archive = make_archive(tmp_path / "cifar10-jpeg.tar.gz", [
        dir_member("cifar10-jpeg"), dir_member("cifar10-jpeg/test"),
        dir_member("cifar10-jpeg/test/airplane"),
        file_member("cifar10-jpeg/test/airplane/0001.JPG", b"\xff\xd8jpeg"),
    ], with_good=False)
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert info.value.message == ("refusing the archive: member 'cifar10-jpeg' is not a "
                                  f"CIFAR-10 file (a directory), in {archive}")
    hint = info.value.hint or ""
    assert f"{archive} holds an image tree" in hint and f"tar -xzf {archive} -C DIR" in hint
    assert_nothing_written(tmp_path / "data")
    # an archive with a stray non-image member keeps the usual hint
    other = make_archive(tmp_path / "other.tar.gz", [file_member("cifar-10-batches-py/x.txt")])
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(other, tmp_path / "data")
    assert "image tree" not in (info.value.hint or "")
    assert "official cifar-10-python.tar.gz" in (info.value.hint or "")


def test_temp_folders_of_a_killed_fetch_are_cleared_by_the_next(tmp_path: Path) -> None:
    """SIGKILL (or power loss) mid-extraction leaves DATA_DIR/.cifar-10-batches-py.*.tmp with
    up to 180 MB in it; the next extraction deletes such folders once over an hour old, and
    leaves a fresh one (a fetch running in another terminal) alone."""
    data_dir = tmp_path / "data"
    stale = data_dir / ".cifar-10-batches-py.abc123.tmp"
    fresh = data_dir / ".cifar-10-batches-py.def456.tmp"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "data_batch_1").write_bytes(b"x" * 100)
    two_hours_ago = os.path.getmtime(stale) - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == [fresh.name, "cifar-10-batches-py"]


def test_the_old_copy_a_killed_force_fetch_swapped_out_is_cleared_by_the_next(
        tmp_path: Path) -> None:
    """Found in review: killed while the old folder it had moved aside was deleted, a --force
    fetch left DATA_DIR/.cifar-10-batches-py.old.* (180 MB) for good. (One killed before the
    new data was in place left no cifar-10-batches-py: that old copy is the user's data, put
    back, test_data_crash_review11.)"""
    data_dir = write_fake_cifar10(tmp_path / "data", n_train=20, n_test=10).parent
    aside = data_dir / ".cifar-10-batches-py.old.k1ll3d"
    (aside / "cifar-10-batches-py").mkdir(parents=True)
    (aside / "data_batch_1").write_bytes(b"x" * 100)
    unrelated = data_dir / ".cifar-10-batches-py.older-notes"  # not the pattern: kept
    unrelated.write_text("mine")
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10), data_dir,
                            replace=True)
    assert sorted(p.name for p in data_dir.iterdir()) == [unrelated.name, "cifar-10-batches-py"]


def test_a_zip_archive_is_named_as_one(tmp_path: Path) -> None:
    import zipfile

    directory = write_fake_cifar10(tmp_path / "src", n_train=10, n_test=10)
    archive = tmp_path / "cifar-10-python.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for member in directory.iterdir():
            zipped.write(member, f"cifar-10-batches-py/{member.name}")
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert info.value.message == f"archive {archive} is a ZIP archive, not a .tar.gz"
    assert "unpack it yourself and pass --data" in (info.value.hint or "")
    assert_nothing_written(tmp_path / "data")


@pytest.mark.parametrize("name", ["cifar-10-batches-py/._data_batch_1",
                                  "cifar-10-batches-py/.DS_Store", "._cifar-10-batches-py",
                                  "__MACOSX/cifar-10-batches-py/._test_batch"])
def test_macos_metadata_members_are_refused_with_the_repack_command(tmp_path: Path,
                                                                    name: str) -> None:
    """An archive re-packed with a Mac's tar carries ._ files (and .DS_Store): still refused,
    but the hint gives the command that packs it without them."""
    archive = make_archive(tmp_path / "mac.tar.gz", [file_member(name)])
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert info.value.message == f"refusing the archive: member {name!r} is macOS metadata, " \
                                 f"not a CIFAR-10 file, in {archive}"
    assert "COPYFILE_DISABLE=1 tar" in (info.value.hint or "")
    assert_nothing_written(tmp_path / "data")


def test_the_temp_folder_of_a_fetch_killed_outright_goes_at_once(tmp_path: Path) -> None:
    """A temp folder names the process extracting into it; once that process has ended (here
    a real one, killed with SIGKILL while it extracts), the next extraction clears it without
    waiting an hour. One of a live process, or of another machine sharing the data dir, stays."""
    import signal
    import socket
    import subprocess
    import sys

    from dlbox.processes import owner_id, owner_in_name

    data_dir = tmp_path / "data"
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10)
    script = (
        "import sys, time\n"
        "from dlbox.data import extract\n"
        "def hang(*args, **kwargs):\n"
        "    print('extracting', flush=True)\n"
        "    time.sleep(600)\n"
        "extract._extract_members = hang\n"
        "extract.extract_cifar10_archive(sys.argv[1], sys.argv[2])\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(archive), str(data_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "extracting\n"
        (killed,) = data_dir.glob(".cifar-10-batches-py.*.tmp")
        assert owner_in_name(killed.name, ".cifar-10-batches-py.") \
            == owner_id(child.pid, namespace=True)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    live = data_dir / f".cifar-10-batches-py.{owner_id(namespace=True)}.abcd1234.tmp"
    elsewhere = data_dir / f".cifar-10-batches-py.{socket.gethostname()}-other:1:1:1.x.tmp"
    for folder in (live, elsewhere):
        folder.mkdir()
    extract_cifar10_archive(archive, data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [live.name, elsewhere.name, "cifar-10-batches-py"])



def test_a_temp_folder_or_file_is_stale_when_its_owner_ended_or_after_an_hour(
        tmp_path: Path) -> None:
    """The one rule for what a killed writer left (a fetch's temp folder, a data cache's temp
    file): its owner, as its name gives, has ended; or, whoever its owner (live, another
    machine's, none named), it is over an hour old. A missing one is an OSError for the
    caller to judge, unless its owner has ended."""
    import socket
    import time

    from dlbox.processes import STALE_AFTER_S, left_by_dead_writer, owner_id

    live = owner_id(namespace=True)
    host, pid, _, namespace = live.split(":", 3)
    ended = f"{host}:{pid}:1:{namespace}"  # this pid, started at another time: a reused pid
    other = f"{socket.gethostname()}-other:1:1:1"
    prefix = ".cifar-10-batches-py."
    an_hour_ago = time.time() - STALE_AFTER_S - 60

    def folder(name: str, mtime: float | None = None) -> Path:
        path = tmp_path / f"{prefix}{name}.tmp"
        path.mkdir()
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    stale = extract_module.staging_is_stale
    assert stale(folder(f"{ended}.aaaa1111"))
    assert not stale(folder(f"{live}.bbbb2222"))
    assert not stale(folder(f"{other}.cccc3333"))
    assert not stale(folder("dddd4444"))  # an older dlbox's: no owner in the name
    assert stale(folder(f"{live}.eeee5555", an_hour_ago))
    assert stale(folder(f"{other}.ffff6666", an_hour_ago))
    assert stale(folder("gggg7777", an_hour_ago))
    # a file (fileio.atomic_open(tag=OWNER)'s), and another max age
    cache = tmp_path / f".dlbox-cache-test.pt.{live}.x1y2z3.tmp"
    cache.write_bytes(b"")
    assert not left_by_dead_writer(cache, ".dlbox-cache-test.pt.")
    assert left_by_dead_writer(cache, ".dlbox-cache-test.pt.", max_age_s=-1)
    assert left_by_dead_writer(tmp_path / f"{prefix}{ended}.hhhh8888.tmp", prefix)
    with pytest.raises(OSError):
        stale(tmp_path / f"{prefix}{live}.iiii9999.tmp")

# ---- check_cifar10_archive: extraction's checks, reading member headers only -----------------

def _refusal(call: Callable[[], object]) -> tuple[str, str | None]:
    with pytest.raises(DataError) as info:
        call()
    return info.value.message, info.value.hint


def _bad_archives(tmp_path: Path) -> dict[str, Path]:
    import zipfile

    tmp_path.mkdir()
    cases = {f"member_{case}": make_archive(tmp_path / f"{case}.tar.gz", extra)  # type: ignore[arg-type]
             for case, extra in BAD_MEMBERS.items()}
    cases["duplicate"] = make_archive(tmp_path / "dup.tar.gz",
                                      [file_member("cifar-10-batches-py/test_batch")])
    cases["missing"] = make_archive(tmp_path / "few.tar.gz",
                                    [file_member("cifar-10-batches-py/data_batch_1")],
                                    with_good=False)
    cases["image_tree"] = make_archive(tmp_path / "jpeg.tar.gz", [
        dir_member("jpeg"), file_member("jpeg/train/cat/0001.jpg", b"\xff\xd8")],
        with_good=False)
    good = write_fake_cifar10_archive(tmp_path / "good.tar.gz", n_train=20, n_test=10)
    cases["truncated"] = tmp_path / "cut.tar.gz"
    cases["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["not_gzip"] = tmp_path / "junk.tar.gz"
    cases["not_gzip"].write_bytes(b"this is not gzip")
    cases["zip"] = tmp_path / "cifar.zip"
    with zipfile.ZipFile(cases["zip"], "w") as zipped:
        zipped.writestr("cifar-10-batches-py/test_batch", b"x")
    return cases


def test_check_archive_refuses_what_extraction_refuses_with_the_same_error(
        tmp_path: Path) -> None:
    for case, archive in _bad_archives(tmp_path / "arcs").items():
        checked = _refusal(lambda archive=archive: check_cifar10_archive(archive))  # type: ignore[misc]
        extracted = _refusal(lambda archive=archive: extract_cifar10_archive(
            archive, tmp_path / "data"))  # type: ignore[misc]
        assert checked == extracted, case
        assert_nothing_written(tmp_path / "data")


def test_check_archive_passes_a_good_one_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    archive = write_fake_cifar10_archive(tmp_path / "a" / "a.tar.gz", n_train=20, n_test=10)
    check_cifar10_archive(archive, label="https://mirror.example/a.tar.gz")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["a.tar.gz"]


def test_check_archive_names_the_label_not_the_path(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"PK\x03\x04rest")
    message, _hint = _refusal(lambda: check_cifar10_archive(tmp_path / "junk",
                                                            label="https://m.example/a"))
    assert message == "archive https://m.example/a is a ZIP archive, not a .tar.gz"


def _pack_with_tar(tmp_path: Path, name: str, root: Path) -> Path:
    """`tar -czf NAME -C ROOT .` as Python's tarfile writes it: the root entry `.` first, then
    `./...` for everything in ROOT (what shutil.make_archive and GNU tar write alike)."""
    archive = tmp_path / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=".")
    return archive


def test_an_archive_packed_from_inside_its_parent_folder_is_accepted(tmp_path: Path) -> None:
    """Review: `tar -czf a.tar.gz -C x .` (and shutil.make_archive(..., root_dir='x')) put a
    root entry `.` (or `./`) first; it was refused as "not a CIFAR-10 file (a directory)"."""
    import shutil

    parent = tmp_path / "x"
    write_fake_cifar10(parent, n_train=20, n_test=10)
    dotted = _pack_with_tar(tmp_path, "dot.tar.gz", parent)
    made = Path(shutil.make_archive(str(tmp_path / "sh"), "gztar", root_dir=parent))
    with tarfile.open(made) as tar:
        assert tar.getnames()[0] in (".", "./")
    for index, archive in enumerate((dotted, made)):
        check_cifar10_archive(archive)
        extract_cifar10_archive(archive, tmp_path / f"data{index}")
        assert len(load_cifar10(tmp_path / f"data{index}", "train")) == 20
    for name in (".", "./"):
        assert classify_member(dir_member(name)[0]) == ""
        with pytest.raises(DataError):  # the root entry is a folder, or the archive is refused
            classify_member(file_member(name)[0])


def test_a_flat_archive_says_the_batches_go_in_their_folder(tmp_path: Path) -> None:
    """Review: an archive of the batches without their folder (`tar -czf flat.tar.gz -C
    x/cifar-10-batches-py .`) got "use the official archive"; the hint now names the folder and
    the tar command that packs the batches inside it."""
    batches = write_fake_cifar10(tmp_path / "x", n_train=20, n_test=10)
    flat = _pack_with_tar(tmp_path, "flat.tar.gz", batches)
    for call in (lambda: check_cifar10_archive(flat),
                 lambda: extract_cifar10_archive(flat, tmp_path / "data")):
        with pytest.raises(DataError) as info:
            call()
        assert info.value.message.startswith("refusing the archive: member './")
        assert "not inside a folder named cifar-10-batches-py" in info.value.message
        hint = info.value.hint or ""
        assert "inside a folder named cifar-10-batches-py" in hint
        assert "tar -czf cifar-10-python.tar.gz -C PARENT cifar-10-batches-py" in hint
    assert_nothing_written(tmp_path / "data")
    # a stray top-level file that is no batch keeps the usual hint
    with pytest.raises(DataError) as info:
        classify_member(file_member("./notes.txt")[0])
    assert "official cifar-10-python.tar.gz" in (info.value.hint or "")


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "unexpected_top"])
def test_the_root_entry_does_not_loosen_the_other_rules(tmp_path: Path, case: str) -> None:
    """An archive that starts with `.` is held to every other rule as strictly."""
    archive = make_archive(tmp_path / "bad.tar.gz",
                           [dir_member("."), *BAD_MEMBERS[case]])  # type: ignore[list-item]
    with pytest.raises(DataError, match="refusing the archive"):
        extract_cifar10_archive(archive, tmp_path / "data")
    assert_nothing_written(tmp_path / "data")
    for info in (file_member("./../x")[0], link_member(".", "/etc", tarfile.SYMTYPE)[0]):
        with pytest.raises(DataError, match="refusing the archive"):
            classify_member(info)


def test_a_cut_short_download_says_to_download_it_again(tmp_path: Path) -> None:
    """Review: a download cut short by a server that sends no Content-Length (so the cut goes
    unnoticed until the gzip ends early) was told to "use the official cifar-10-python.tar.gz".
    For a URL the hint says the download may have been cut short: run the same command again.
    A local file keeps the local-file wording."""
    good = write_fake_cifar10_archive(tmp_path / "good.tar.gz", n_train=200, n_test=50)
    cut = tmp_path / "cifar-10-python.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"
    for call in (lambda: check_cifar10_archive(cut, label=url),
                 lambda: extract_cifar10_archive(cut, tmp_path / "data", label=url)):
        with pytest.raises(DataError) as info:
            call()
        assert info.value.message.startswith(f"archive {url} is not a readable .tar.gz")
        hint = info.value.hint or ""
        assert "cut short" in hint and "run the same command again" in hint, hint
    with pytest.raises(DataError) as info:
        check_cifar10_archive(cut)
    assert info.value.hint == extract_module.BAD_ARCHIVE_HINT


def test_sigterm_while_the_old_copy_is_deleted_lets_the_deletion_finish(
        tmp_path: Path, sigterm_as_the_old_copy_goes: None) -> None:
    """Review: SIGTERM while a --force fetch deleted the old copy it had swapped out (the new
    data already in place) stopped the deletion and left `.cifar-10-batches-py.old.*` (180 MB).
    The signal is held while the folders are swapped and the old one deleted, then raised."""
    from dlbox.processes import Terminated

    data_dir = tmp_path / "data"
    extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "a.tar.gz", 20, 10),
                            data_dir)  # no old copy: no signal
    with pytest.raises(Terminated):
        extract_cifar10_archive(write_fake_cifar10_archive(tmp_path / "b.tar.gz", 40, 10),
                                data_dir, replace=True)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]
    assert len(load_cifar10(data_dir, "train")) == 40



@pytest.mark.parametrize("entry", [".", "./", "cifar-10-batches-py", "./cifar-10-batches-py/"])
def test_a_folder_entry_repeated_refuses_the_archive_at_once(tmp_path: Path,
                                                             entry: str) -> None:
    """Found by review: the root entry `.` and the batches' folder were passed over without a
    count, and tarfile's stream mode keeps every header it reads: 1,000,000 `.` entries (a
    2.2 MB .tar.gz) took 70 s and 423 MB before Inspect let the archive through. A folder
    entry is accepted once, like each file; the second refuses the archive."""
    good = write_fake_cifar10_archive(tmp_path / "good.tar.gz", n_train=20, n_test=10)
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(good) as source, tarfile.open(archive, "w:gz") as tar:
        for _ in range(200):
            tar.addfile(dir_member(entry)[0])
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
    for call in (lambda: check_cifar10_archive(archive),
                 lambda: extract_cifar10_archive(archive, tmp_path / "data")):
        message, hint = _refusal(call)
        assert message == (f"refusing the archive: member {entry.rstrip('/')!r} appears twice, "
                           f"in {archive}")
        assert "official cifar-10-python.tar.gz" in (hint or "")
    assert_nothing_written(tmp_path / "data")


def _extension_headers(path: Path, kind: bytes, count: int, size: int | None = None) -> Path:
    """`count` pax or GNU long-name headers (tar's own extension records, which tarfile reads
    into memory and follows by calling itself), then one folder entry: raw, as a hand-made
    archive may hold them. `size`: the size the (last) header declares, its data cut short."""
    import gzip

    body = b"20 comment=xxxxxxxx\n" if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE) else b"x\0"
    blocks = []
    for index in range(count):
        info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
        info.type = kind
        info.size = size if size is not None and index == count - 1 else len(body)
        blocks.append(info.tobuf(format=tarfile.USTAR_FORMAT) + body.ljust(512, b"\0"))
    blocks.append(dir_member("cifar-10-batches-py")[0].tobuf(format=tarfile.USTAR_FORMAT))
    path.write_bytes(gzip.compress(b"".join(blocks) + b"\0" * 1024))
    return path


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_chain_of_extension_headers_is_an_unreadable_archive_not_a_crash(
        tmp_path: Path, kind: bytes) -> None:
    """Found while fixing the above: 5,000 pax (or GNU long-name) headers in a row, 20 KB of
    .tar.gz, ended `dlbox data fetch --from` with "unexpected RecursionError" (exit 70): tarfile
    reads each one by calling itself. It is an archive tar cannot read, said as such."""
    archive = _extension_headers(tmp_path / "chain.tar.gz", kind, 5000)
    for call in (lambda: check_cifar10_archive(archive),
                 lambda: extract_cifar10_archive(archive, tmp_path / "data")):
        message, _hint = _refusal(call)
        assert message.startswith(f"archive {archive} is not a readable .tar.gz (")
    assert_nothing_written(tmp_path / "data")


def test_an_oversized_extension_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Found while fixing the above: tarfile reads a pax header's data into memory whole; one
    that declares 300 MB (a 300 KB .tar.gz of zeros) took 938 MB to inspect. Tar's own
    records are a few hundred bytes: one over 64 KiB refuses the archive at its header (here
    one declaring 100 MiB whose data is not even there)."""
    archive = _extension_headers(tmp_path / "big.tar.gz", tarfile.XHDTYPE, 1,
                                 size=100 * 2**20)
    for call in (lambda: check_cifar10_archive(archive),
                 lambda: extract_cifar10_archive(archive, tmp_path / "data")):
        message, _hint = _refusal(call)
        assert message == (f"archive {archive} is not a readable .tar.gz (an extended header "
                           f"of {100 * 2**20} bytes, more than tar writes)")
    assert_nothing_written(tmp_path / "data")


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    return f"{length + (len(str(length)) - len(str(len(body))))}".encode() + body


@pytest.mark.parametrize("how", ["gnu", "pax"])
def test_a_sparse_member_is_refused_at_its_header(tmp_path: Path, how: str) -> None:
    """Found while fixing the above: tarfile reads a sparse member's map (GNU's extension
    blocks, or pax's GNU.sparse 1.0 list) block after block into memory, for as long as the
    archive says it goes on, and a map cut short crashed `dlbox data fetch` (IndexError or
    ValueError, exit 70). CIFAR-10 holds no sparse file: its header refuses the archive."""
    import gzip

    member = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    member.size = 512
    if how == "gnu":
        member.type = tarfile.GNUTYPE_SPARSE
        header = bytearray(member.tobuf(format=tarfile.GNU_FORMAT))
        header[482] = 1  # "isextended": a block of the map follows (it is not there)
        header[148:156] = b" " * 8  # the header's checksum, again
        header[148:156] = b"%06o\0 " % sum(header[:512])
        blocks = bytes(header)
    else:
        records = b"".join(_pax_record(key, value) for key, value in (
            ("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "cifar-10-batches-py/test_batch"),
            ("GNU.sparse.realsize", "512")))
        pax = tarfile.TarInfo("pax")
        pax.type = tarfile.XHDTYPE
        pax.size = len(records)
        blocks = (pax.tobuf(format=tarfile.USTAR_FORMAT) + records.ljust(512, b"\0")
                  + member.tobuf(format=tarfile.USTAR_FORMAT) + b"1000000000\n0\n")
    archive = tmp_path / "sparse.tar.gz"
    archive.write_bytes(gzip.compress(dir_member("cifar-10-batches-py")[0].tobuf() + blocks))
    for call in (lambda: check_cifar10_archive(archive),
                 lambda: extract_cifar10_archive(archive, tmp_path / "data")):
        message, _hint = _refusal(call)
        assert message == (f"archive {archive} is not a readable .tar.gz (a sparse file, which "
                           "CIFAR-10 never holds)")
    assert_nothing_written(tmp_path / "data")


@pytest.mark.parametrize(("name", "limit"), [
    ("readme.html", 2**20), ("batches.meta", 2**20), ("data_batch_3", 64 * 2**20),
    ("test_batch", 64 * 2**20)])
def test_each_member_has_a_size_cap_of_its_own(tmp_path: Path, name: str, limit: int) -> None:
    """Found by review: every member was allowed 256 MiB, readme.html (88 bytes in the official
    archive) and batches.meta (a few hundred) too. The small files may now have 1 MiB, a batch
    (about 31 MB, the same from the converter in ../shared/data) 64 MiB; a header that claims
    more refuses the archive before any of its data is read (none is there)."""
    import gzip

    member = f"cifar-10-batches-py/{name}"
    assert classify_member(tarfile.TarInfo(member)) == name  # (an empty one: fine)
    at_limit = tarfile.TarInfo(member)
    at_limit.size = limit
    assert classify_member(at_limit) == name
    over = tarfile.TarInfo(member)
    over.size = limit + 1
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(gzip.compress(dir_member("cifar-10-batches-py")[0].tobuf()
                                      + over.tobuf()))
    for call in (lambda: check_cifar10_archive(archive),
                 lambda: extract_cifar10_archive(archive, tmp_path / "data")):
        message, hint = _refusal(call)
        assert message == (f"refusing the archive: member {member!r} is {limit + 1} bytes, "
                           f"too large for CIFAR-10 (its {name} is at most {limit}), "
                           f"in {archive}")
        assert "official cifar-10-python.tar.gz" in (hint or "")
    assert_nothing_written(tmp_path / "data")
