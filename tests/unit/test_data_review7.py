"""Review 7 of the data commands: batch contents checked before a fetch swaps them in, hints
that keep --data, URL and data-dir edge cases."""

from __future__ import annotations

import errno
import hashlib
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ArchiveServer

from dlbox.cli import main
from dlbox.data import fetch as fetch_module
from dlbox.data.fetch import ARCHIVE_NAME, FetchConfig, fetch_cifar10
from dlbox.data.synthetic import (
    write_fake_cifar10,
    write_fake_cifar10_archive,
    write_fake_image_folder,
)
from dlbox.errors import EXIT_USAGE, DataError, UsageError


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config(data_dir: Path, **kwargs: Any) -> FetchConfig:
    return FetchConfig(data_dir=data_dir, progress=False, timeout_s=10, **kwargs)


def archive_with_batch(tmp_path: Path, change: Callable[[dict[bytes, Any]], None],
                       name: str = "data_batch_2") -> Path:
    """A fake archive whose batch `name` was rewritten by `change`."""
    folder = write_fake_cifar10(tmp_path / "src", 100, 20)
    with open(folder / name, "rb") as handle:
        record = pickle.load(handle, encoding="bytes")
    change(record)
    with open(folder / name, "wb") as handle:
        pickle.dump(record, handle, protocol=2)
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, recursive=False)
        for member in sorted(folder.iterdir()):
            tar.add(member, arcname=f"{folder.name}/{member.name}")
    return path


def narrow(record: dict[bytes, Any]) -> None:
    record[b"data"] = record[b"data"][:, :1000]


def labels_out_of_range(record: dict[bytes, Any]) -> None:
    record[b"labels"] = [12] * len(record[b"labels"])


def float_pixels(record: dict[bytes, Any]) -> None:
    record[b"data"] = record[b"data"].astype(np.float32) / 255


@pytest.fixture()
def good_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    archive = write_fake_cifar10_archive(tmp_path / "good.tar.gz", 100, 20)
    fetch_cifar10(config(data, source=str(archive), sha256=sha256_of(archive)))
    return data


# ---- 1. batch contents are checked before the new folder replaces the old one ------------

@pytest.mark.parametrize("change, why", [
    (narrow, "shape"), (labels_out_of_range, "labels outside 0..9"), (float_pixels, "float32")])
def test_a_bad_batch_is_refused_and_the_old_data_kept(tmp_path: Path, good_data: Path,
                                                      change: Callable[..., None],
                                                      why: str) -> None:
    before = sorted(p.name for p in good_data.iterdir())
    old = sha256_of(good_data / "cifar-10-batches-py" / "data_batch_2")
    bad = archive_with_batch(tmp_path, change)
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(good_data, source=str(bad), sha256=sha256_of(bad), force=True))
    message = info.value.message
    assert "\n" not in message
    assert "data_batch_2" in message and why in message
    assert ".tmp" not in message
    assert "not CIFAR-10's python version" in (info.value.hint or "")
    assert sha256_of(good_data / "cifar-10-batches-py" / "data_batch_2") == old
    assert sorted(p.name for p in good_data.iterdir()) == before


def test_a_downloaded_bad_archive_is_not_kept(tmp_path: Path) -> None:
    bad = archive_with_batch(tmp_path, narrow)
    running = ArchiveServer(bad.read_bytes())
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "d", source=running.url,
                                 sha256=sha256_of(bad)))
    finally:
        running.close()
    assert "data_batch_2" in info.value.message
    assert "download is kept" not in (info.value.hint or "")
    assert not (tmp_path / "d").exists()


def test_the_official_archive_is_not_read_through_again(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is skipped for an archive that matched the official md5 (its contents are
    known): here a bad archive passes for the official one."""
    bad = archive_with_batch(tmp_path, narrow)
    monkeypatch.setattr(fetch_module, "OFFICIAL_MD5",
                        hashlib.md5(bad.read_bytes(), usedforsecurity=False).hexdigest())
    assert fetch_cifar10(config(tmp_path / "d", source=str(bad))).status == "fetched"


# ---- 2. hints keep the user's --data -----------------------------------------------------

def test_http_error_hint_names_the_data_dir(tmp_path: Path) -> None:
    running = ArchiveServer(b"")  # a 404 for any other path
    data = tmp_path / "my data"
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(data, source=running.url + ".gone"))
    finally:
        running.close()
    assert f"dlbox data fetch --data '{data}' --from" in (info.value.hint or "")


def test_a_missing_batch_hint_names_the_data_dir(tmp_path: Path) -> None:
    from dlbox.data.cifar10 import read_batch_file

    folder = write_fake_cifar10(tmp_path / "d d", 50, 10)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        read_batch_file(folder / "data_batch_3")
    assert f"dlbox data fetch --data '{tmp_path / 'd d'}'" in (info.value.hint or "")


def test_image_tree_check_hint_names_the_data_dir(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tree"
    write_fake_image_folder(data / "train", per_class=2, classes=2)
    (data / "test").mkdir()
    assert main(["data", "check", "--data", str(data)]) != 0
    err = capsys.readouterr().err
    assert f"then run `dlbox data check --data {data}` again" in err


def test_cifar_check_hint_repeats_the_sha256_of_a_non_official_fetch(
        tmp_path: Path, good_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = good_data / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:-10])
    assert main(["data", "check", "--data", str(good_data)]) != 0
    err = capsys.readouterr().err
    sha = sha256_of(tmp_path / "good.tar.gz")
    assert f"dlbox data fetch --force --data {good_data}" in err
    assert f"--sha256 {sha}" in err
    assert f"--from {tmp_path / 'good.tar.gz'}" in err


# ---- 3. an image-tree archive from a URL ---------------------------------------------------

def test_image_tree_hint_for_a_url_says_to_download_it_first() -> None:
    from dlbox.data.extract import _image_tree_hint

    hint = _image_tree_hint("http://host/my x.tar.gz")
    assert "curl -L -o" in hint
    assert "tar -xzf http" not in hint
    local = _image_tree_hint("/tmp/my x.tar.gz")
    assert "tar -xzf '/tmp/my x.tar.gz'" in local


# ---- 4. fetch into a data dir that holds an image tree --------------------------------------

def test_fetch_into_an_image_tree_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "tree"
    write_fake_image_folder(data / "train", per_class=1, classes=2)
    write_fake_image_folder(data / "test", per_class=1, classes=2)
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 50, 10)
    with pytest.raises(UsageError) as info:
        fetch_cifar10(config(data, source=str(archive), sha256=sha256_of(archive)))
    assert "image tree" in info.value.message and str(data) in info.value.message
    assert "--data" in (info.value.hint or "")
    assert not (data / "cifar-10-batches-py").exists()
    assert main(["data", "fetch", "--data", str(data), "--from", str(archive),
                 "--sha256", sha256_of(archive)]) == EXIT_USAGE


# ---- 5. a URL with a space ------------------------------------------------------------------

def test_a_url_with_a_space_is_not_a_valid_url() -> None:
    with pytest.raises(UsageError) as info:
        fetch_module.check_source("http://127.0.0.1:8766/my copy.tar.gz")
    assert "is not a valid URL" in info.value.message
    assert "%20" in (info.value.hint or "")
    fetch_module.check_source("file:///tmp/my copy.tar.gz")  # a local path may hold one


# ---- 6. a blank DLBOX_DATA --------------------------------------------------------------------

def test_a_blank_dlbox_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.data.paths import resolve_data_dir

    monkeypatch.setenv("DLBOX_DATA", " ")
    with pytest.raises(UsageError) as info:
        resolve_data_dir(None)
    assert "DLBOX_DATA" in info.value.message


# ---- 7. no space while downloading from a server that names no version -----------------------

def test_a_full_disk_deletes_an_unresumable_part(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 50, 10)
    running = ArchiveServer(archive.read_bytes())
    running.etag = running.last_modified = None  # names no version: a .part it cannot resume
    real_open = open

    class Full(io.FileIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".part") and "b" in mode and ("a" in mode or "w" in mode):
            real_open(file, mode).close()
            return Full(file, "a")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    data = tmp_path / "d"
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(data, source=running.url,
                                 sha256=sha256_of(archive)))
    finally:
        running.close()
    assert "no space left" in info.value.message
    assert "partial download was deleted" in (info.value.hint or "")
    assert not (data / (ARCHIVE_NAME + ".part")).exists()
    assert not (data / (ARCHIVE_NAME + ".part.source")).exists()


# ---- 8. a local file that is a web page --------------------------------------------------------

def test_a_local_web_page_is_named_as_one(tmp_path: Path) -> None:
    page = tmp_path / ARCHIVE_NAME
    page.write_text("<!DOCTYPE html>\n<html><body>Sign in</body></html>\n")
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(page)))
    assert "web page" in info.value.message
    assert "truncated" not in info.value.message


# ---- 9. a split that is a file -------------------------------------------------------------------

def test_a_split_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    from dlbox.data.loading import check_data

    write_fake_image_folder(tmp_path / "train", per_class=1, classes=2)
    (tmp_path / "test").write_text("oops")
    report = check_data(tmp_path)
    assert any("is a file, not a folder" in problem for problem in report.problems)
    test_line = next(f for f in report.files if f.name == "test/")
    assert "file" in test_line.detail


# ---- 10. out-of-range labels in data check ---------------------------------------------------

def test_out_of_range_labels_are_named_on_the_file_line(tmp_path: Path) -> None:
    from dlbox.data.loading import check_data

    folder = write_fake_cifar10(tmp_path, 100, 20)
    with open(folder / "data_batch_1", "rb") as handle:
        record = pickle.load(handle, encoding="bytes")
    labels_out_of_range(record)
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(record, handle, protocol=2)
    report = check_data(tmp_path)
    line = next(f for f in report.files if f.name == "data_batch_1")
    assert not line.ok and "labels outside" in line.detail
    assert sum(report.splits["train"].per_class) == 80  # the 20 bad labels are not counted


def test_a_meta_file_short_of_classes_is_the_one_problem(tmp_path: Path) -> None:
    """Found by a docs check: with 9 names in batches.meta, every good batch (labels 0..9)
    was failed too, "labels outside 0..8"; the docs say labels lie in 0..9 and the meta file
    names 10 classes."""
    from dlbox.data.loading import check_data

    folder = write_fake_cifar10(tmp_path, 100, 20)
    meta_path = folder / "batches.meta"
    with open(meta_path, "rb") as handle:
        meta = pickle.load(handle, encoding="bytes")
    meta[b"label_names"] = meta[b"label_names"][:9]
    with open(meta_path, "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    report = check_data(tmp_path)
    assert list(report.problems) == ["batches.meta names 9 classes, expected 10"]
    assert all(f.ok for f in report.files if f.name != "batches.meta")
    assert sum(report.splits["train"].per_class) == 100


# ---- data check of a tree with one split under another name (Train/, val/) -------------------

@pytest.mark.parametrize(("folder", "split"), [("Train", "train"), ("val", "test")])
def test_check_names_a_split_under_another_name(tmp_path: Path, folder: str, split: str) -> None:
    """Found by review: `data check` said "train is missing", with a hint to add the split (a
    second copy of the data), where `dlbox train` names Train/ and the `mv` that fixes it."""
    from dlbox.cli.data import check_hint
    from dlbox.data.loading import check_data

    other = "test" if split == "train" else "train"
    write_fake_image_folder(tmp_path / folder, per_class=1, classes=2)
    write_fake_image_folder(tmp_path / other, per_class=1, classes=2)
    report = check_data(tmp_path)
    message = f"image folder {tmp_path} has no '{split}' split: it holds {folder}/ instead"
    assert message in report.problems
    line = next(f for f in report.files if f.name == f"{split}/")
    assert not line.ok and line.detail == message
    assert f"mv {tmp_path / folder} {tmp_path / split}" in check_hint(report)


# ---- found by the re-review of the fixes above ------------------------------------------------

def test_force_repairs_cifar_beside_an_image_tree_and_a_tree_one_folder_down_is_kept(
        tmp_path: Path) -> None:
    """`data check`'s hint for damaged batches, a `fetch --force`, was refused when the data
    dir also held an image tree: a dead end. A tree one folder down (read by `--data` that
    folder) no longer blocks a first fetch either."""
    data = tmp_path / "shared"
    write_fake_image_folder(data / "flowers" / "train", per_class=1, classes=2)
    archive = write_fake_cifar10_archive(tmp_path / "a.tar.gz", 50, 10)
    flags = ["--data", str(data), "--from", str(archive), "--sha256", sha256_of(archive)]
    assert main(["data", "fetch", *flags]) == 0
    write_fake_image_folder(data / "train", per_class=1, classes=2)  # a tree at the top too
    batch = data / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1000])
    assert main(["data", "fetch", "--force", *flags]) == 0
    assert (data / "flowers" / "train").is_dir() and batch.stat().st_size > 1000


def test_a_url_with_whitespace_at_its_ends_is_taken_as_urllib_takes_it() -> None:
    """A pasted trailing space, or a CRLF file's \\r, worked before the whitespace check (urllib
    strips the ends) and must still; whitespace inside is still refused."""
    fetch_module.check_source("http://127.0.0.1:8766/a.tar.gz ")
    fetch_module.check_source("http://127.0.0.1:8766/a.tar.gz\r")
    with pytest.raises(UsageError):
        fetch_module.check_source("http://127.0.0.1:8766/a b.tar.gz\r")


def test_the_download_hint_of_a_url_with_a_hidden_password_leaves_the_url_to_fill_in() -> None:
    from dlbox.data.extract import _image_tree_hint

    hint = _image_tree_hint("http://bob:***@host/images.tar.gz?token=1")
    assert "***" not in hint.split("(`", 1)[1] and "curl -L -o images.tar.gz URL" in hint
