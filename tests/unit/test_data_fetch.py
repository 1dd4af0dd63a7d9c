"""fetch: local archives, a loopback HTTP server, checksums, offline errors, resume."""

import builtins
import contextlib
import errno
import hashlib
import http.server
import io
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ArchiveServer as Server
from conftest import LoopbackServer, QuietHandler, closed_port_url

from dlbox.data import extract as extract_module
from dlbox.data import fetch as fetch_module
from dlbox.data.fetch import (
    ARCHIVE_NAME,
    CHECKSUMS_FILE,
    FetchConfig,
    check_source,
    data_checksum,
    fetch_cifar10,
    inspect_checksums,
    normalize_sha256,
    read_checksums,
)
from dlbox.data.loading import load_dataset
from dlbox.data.synthetic import write_fake_cifar10_archive
from dlbox.errors import DataError, UsageError


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar10_archive(tmp_path_factory.mktemp("arc") / ARCHIVE_NAME,
                                      n_train=60, n_test=20, seed=1)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(archive: Path) -> Iterator[Server]:
    running = Server(archive.read_bytes())
    yield running
    running.close()


def config(data_dir: Path, **kwargs: object) -> FetchConfig:
    return FetchConfig(data_dir=data_dir, progress=False, timeout_s=10, **kwargs)  # type: ignore[arg-type]


def test_local_file_with_sha256(tmp_path: Path, archive: Path) -> None:
    result = fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert result.status == "fetched" and result.archive_sha256 == sha256_of(archive)
    assert len(load_dataset(tmp_path / "d", "train")) == 60
    assert data_checksum(tmp_path / "d") == sha256_of(archive)
    assert data_checksum(tmp_path / "d" / "cifar-10-batches-py") == sha256_of(archive)
    record = read_checksums(tmp_path / "d")
    assert record is not None and set(record["files"]) >= {"data_batch_1", "test_batch"}
    assert archive.exists()  # a local --from file is only read


def test_local_file_checked_against_official_md5(tmp_path: Path, archive: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(archive)))
    assert "checksum mismatch" in info.value.message and "md5" in info.value.message
    assert "--sha256" in (info.value.hint or "")
    assert not (tmp_path / "d").exists()
    official = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(fetch_module, "OFFICIAL_MD5", official)
    assert fetch_cifar10(config(tmp_path / "d", source=str(archive))).status == "fetched"


def test_sha256_mismatch_writes_nothing(tmp_path: Path, archive: Path) -> None:
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256="0" * 64))
    assert "checksum mismatch" in info.value.message and "0" * 64 in info.value.message
    assert not (tmp_path / "d").exists()


def test_sha256_argument_validated(tmp_path: Path, archive: Path) -> None:
    with pytest.raises(UsageError):
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256="abc"))
    assert normalize_sha256("SHA256:" + "A" * 64) == "a" * 64


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(tmp_path / "nope.tar.gz")))
    assert "not found" in info.value.message
    with pytest.raises(DataError):
        fetch_cifar10(config(tmp_path / "d", source=tmp_path.as_uri()))  # a folder, not a file


def test_file_url(tmp_path: Path, archive: Path) -> None:
    result = fetch_cifar10(config(tmp_path / "d", source=archive.as_uri(),
                                  sha256=sha256_of(archive)))
    assert result.status == "fetched"


def test_present_then_force(tmp_path: Path, archive: Path) -> None:
    digest = sha256_of(archive)
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest))
    again = fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest))
    assert again.status == "present" and again.archive_sha256 == digest
    other = write_fake_cifar10_archive(tmp_path / "other.tar.gz", n_train=30, n_test=5, seed=9)
    forced = fetch_cifar10(config(tmp_path / "d", source=str(other), sha256=sha256_of(other),
                                  force=True))
    assert forced.status == "fetched" and len(load_dataset(tmp_path / "d", "train")) == 30
    assert data_checksum(tmp_path / "d") == sha256_of(other)


def test_incomplete_data_is_fetched_again(tmp_path: Path, archive: Path) -> None:
    digest = sha256_of(archive)
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest))
    (tmp_path / "d" / "cifar-10-batches-py" / "data_batch_3").unlink()
    result = fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest))
    assert result.status == "fetched"
    assert (tmp_path / "d" / "cifar-10-batches-py" / "data_batch_3").is_file()


def test_download_from_loopback_server(tmp_path: Path, archive: Path, server: Server) -> None:
    result = fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    assert result.status == "fetched" and result.source == server.url
    assert len(load_dataset(tmp_path / "d", "test")) == 20
    # the downloaded archive is removed once extracted; its checksum stays on record
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["cifar-10-batches-py"]
    assert (tmp_path / "d" / "cifar-10-batches-py" / CHECKSUMS_FILE).is_file()
    assert read_checksums(tmp_path / "d")["archive"]["source"] == server.url  # type: ignore[index]


def test_bad_download_is_deleted(tmp_path: Path, server: Server) -> None:
    with pytest.raises(DataError):
        fetch_cifar10(config(tmp_path / "d", source=server.url, sha256="1" * 64))
    assert not (tmp_path / "d").exists()


def test_interrupted_download_resumes(tmp_path: Path, archive: Path, server: Server) -> None:
    from dlbox.data.loading import check_data

    server.cut_after = 1000
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    assert "resume" in (info.value.hint or "")
    part = tmp_path / "d" / (ARCHIVE_NAME + ".part")
    assert part.is_file() and part.stat().st_size == 1000
    (note,) = check_data(tmp_path / "d").notes
    assert note.startswith(f"{part} is an interrupted download (1 kB): the next `dlbox data "
                           f"fetch --data {tmp_path / 'd'}` from the same URL resumes it")
    server.cut_after = None
    result = fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    assert result.status == "fetched"
    assert server.ranges[-1] == "bytes=1000-"
    assert not part.exists()


def test_a_download_resumes_only_from_the_url_and_file_that_began_it(
        tmp_path: Path, archive: Path, server: Server) -> None:
    """Found by review: a .part cut short from one mirror was resumed from another URL's file
    (a Range request to it), the two spliced, and the error blamed the second mirror."""
    from dlbox.data.synthetic import write_fake_cifar10_archive

    (tmp_path / "other").mkdir()
    other_archive = write_fake_cifar10_archive(tmp_path / "other" / ARCHIVE_NAME, seed=1)
    other = Server(other_archive.read_bytes())
    try:
        server.cut_after = 1000
        with pytest.raises(DataError):
            fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
        result = fetch_cifar10(config(tmp_path / "d", source=other.url,
                                      sha256=sha256_of(other_archive)))
        assert result.status == "fetched" and other.ranges == [None]  # from its start
        assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["cifar-10-batches-py"]
        # the same URL, whose file changed since (its ETag): If-Range gets all of the new one
        server.etag = '"one"'
        with pytest.raises(DataError):
            fetch_cifar10(config(tmp_path / "e", source=server.url, sha256=sha256_of(archive)))
        record = (tmp_path / "e" / (ARCHIVE_NAME + ".part.source")).read_text()
        assert json.loads(record)["validator"] == '"one"' and "127.0.0.1" not in record
        server.cut_after, server.etag = None, '"two"'
        server.payload = other_archive.read_bytes()
        result = fetch_cifar10(config(tmp_path / "e", source=server.url,
                                      sha256=sha256_of(other_archive)))
        assert result.status == "fetched" and server.ranges[-1] == "bytes=1000-"
        # review: a server that names no version of its file (no ETag, no Last-Modified)
        # got no If-Range, so a file changed since was spliced onto the .part: it starts over
        server.cut_after, server.etag, server.last_modified = 1000, None, None
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "f", source=server.url,
                                 sha256=sha256_of(other_archive)))
        # and its hint and data check say so, not "resume" (review)
        assert (info.value.hint or "").startswith("run the same command again (the server "
                                                  "names no version of its file, so the "
                                                  "download starts over); ")
        from dlbox.data.loading import check_data

        (note,) = check_data(tmp_path / "f").notes
        assert "from the same URL starts it over (the server named no version of its file)" \
            in note
        server.cut_after = None
        result = fetch_cifar10(config(tmp_path / "f", source=server.url,
                                      sha256=sha256_of(other_archive)))
        assert result.status == "fetched" and server.ranges[-1] is None
    finally:
        other.close()


def test_the_download_of_a_fetch_killed_before_it_extracted_is_used_then_removed(
        tmp_path: Path, archive: Path, server: Server) -> None:
    """Found by review: a fetch killed (SIGKILL) while it verified or extracted left its whole
    download (163 MB) in the data dir for good; the next fetch downloaded it all again."""
    from dlbox.data.fetch import download

    root = tmp_path / "d"
    root.mkdir()
    download(server.url, root / ARCHIVE_NAME)  # what the killed fetch had done
    assert sorted(p.name for p in root.iterdir()) == [ARCHIVE_NAME, ARCHIVE_NAME + ".source"]
    # data check says it is there and what the next fetch does with it (review: silent)
    from dlbox.data.loading import check_data

    (note,) = check_data(root).notes
    size = f"{round((root / ARCHIVE_NAME).stat().st_size / 1e3)} kB"  # not "0 MB" (review)
    assert note.startswith(f"{root / ARCHIVE_NAME} is a complete download a fetch did not "
                           f"extract ({size}): the next `dlbox data fetch --data ")
    assert note.endswith("from the same URL checks it and uses it without downloading it "
                         "again; delete it to get the space back")
    requests = len(server.ranges)
    result = fetch_cifar10(config(root, source=server.url, sha256=sha256_of(archive)))
    assert result.status == "fetched" and len(server.ranges) == requests  # not again
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]
    # a local fetch removes one such download too (nothing would ever use it)
    other = tmp_path / "e"
    other.mkdir()
    download(server.url, other / ARCHIVE_NAME)
    fetch_cifar10(config(other, source=str(archive), sha256=sha256_of(archive)))
    assert sorted(p.name for p in other.iterdir()) == ["cifar-10-batches-py"]


def test_http_404(tmp_path: Path, server: Server) -> None:
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=server.url.replace(ARCHIVE_NAME, "missing")))
    assert "HTTP 404" in info.value.message
    assert not (tmp_path / "d").exists()


def test_offline_error_says_how_to_supply_the_archive(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=url))
    message, hint = info.value.message, info.value.hint or ""
    assert "\n" not in message and url in message and "could not download" in message
    # with the data dir it was asked to fill: a bare `dlbox data fetch` fills the default one
    assert (f"dlbox data fetch --data {tmp_path / 'd'} --from /path/to/cifar-10-python.tar.gz"
            in hint)
    assert "--sha256" in hint
    assert not (tmp_path / "d").exists()


def test_data_checksum_none_without_record(tmp_path: Path, fake_cifar_dir: Path) -> None:
    assert data_checksum(fake_cifar_dir) is None
    assert data_checksum(tmp_path / "nowhere") is None


def test_md5_mismatch_offers_the_files_own_sha256_only_for_a_local_file(
        tmp_path: Path, archive: Path, server: Server) -> None:
    own = sha256_of(archive)
    with pytest.raises(DataError) as local:
        fetch_cifar10(config(tmp_path / "d", source=str(archive)))
    assert own in (local.value.hint or "")
    # a download's own hash would let a tampered or broken download pass its own check
    with pytest.raises(DataError) as downloaded:
        fetch_cifar10(config(tmp_path / "d", source=server.url))
    message, hint = downloaded.value.message, downloaded.value.hint or ""
    assert own not in message + hint
    assert server.url in message and "the mirror itself publishes" in hint
    assert "--sha256 HEX" in hint
    assert not (tmp_path / "d").exists()


def test_sha256_mismatch_shows_the_digest_only_of_a_local_file(
        tmp_path: Path, archive: Path, server: Server) -> None:
    own = sha256_of(archive)
    with pytest.raises(DataError) as local:
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256="1" * 64))
    assert own in local.value.message
    with pytest.raises(DataError) as downloaded:
        fetch_cifar10(config(tmp_path / "d", source=server.url, sha256="1" * 64))
    message = downloaded.value.message
    assert "checksum mismatch" in message and "1" * 64 in message
    assert own not in message + (downloaded.value.hint or "")
    assert not (tmp_path / "d").exists()


# ---- foreseeable failures: one clear DataError/UsageError, never a bare OSError ------------
# The tests run as root, which ignores permission bits, so a read-only folder is simulated by
# making the call that would hit it raise PermissionError.

def deny(path: object) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def refuse_mkdtemp(monkeypatch: pytest.MonkeyPatch) -> None:
    def mkdtemp(*args: object, **kwargs: object) -> str:
        raise deny(kwargs.get("dir"))
    monkeypatch.setattr(extract_module.tempfile, "mkdtemp", mkdtemp)


def test_read_only_data_dir_is_a_clear_error(tmp_path: Path, archive: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "ro"
    data.mkdir()
    refuse_mkdtemp(monkeypatch)
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(data, source=str(archive), sha256=sha256_of(archive)))
    message, hint = info.value.message, info.value.hint or ""
    assert message == f"the data dir {data} is not writable (Permission denied)"
    assert ".tmp" not in message and "--data" in hint and "DLBOX_DATA" in hint
    assert list(data.iterdir()) == []


def test_read_only_data_dir_with_force_keeps_the_old_data(tmp_path: Path, archive: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    digest = sha256_of(archive)
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest))
    refuse_mkdtemp(monkeypatch)
    with pytest.raises(DataError, match="is not writable"):
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=digest, force=True))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["cifar-10-batches-py"]
    assert len(load_dataset(tmp_path / "d", "train")) == 60


def test_data_dir_created_for_a_refused_fetch_is_removed(tmp_path: Path, archive: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_mkdtemp(monkeypatch)
    with pytest.raises(DataError, match="is not writable"):
        fetch_cifar10(config(tmp_path / "new", source=str(archive), sha256=sha256_of(archive)))
    assert not (tmp_path / "new").exists()


def test_no_space_while_extracting_names_the_data_dir(tmp_path: Path, archive: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "x")
    monkeypatch.setattr(fetch_module, "_write_record", full)
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert info.value.message.startswith(f"no space left in the data dir {tmp_path / 'd'}")
    # review: "CIFAR-10 needs about 180 MB", where a download needs 350 MB while extracted
    assert (info.value.hint or "").endswith(
        "(CIFAR-10 takes 180 MB, 350 MB while a downloaded archive is extracted, and 180 MB "
        "more for the cache training writes)")
    assert not (tmp_path / "d").exists()


def test_read_only_data_dir_for_a_download(tmp_path: Path, archive: Path, server: Server,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = builtins.open

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith(".part"):
            raise deny(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]
    monkeypatch.setattr(fetch_module, "open", fake_open, raising=False)
    data = tmp_path / "ro"
    data.mkdir()
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
    assert info.value.message == f"the data dir {data} is not writable (Permission denied)"
    assert "--data" in (info.value.hint or "")


def test_unreadable_local_archive(tmp_path: Path, archive: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = builtins.open

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(archive):
            raise deny(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]
    monkeypatch.setattr(fetch_module, "open", fake_open, raising=False)
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert info.value.message == f"cannot read the archive {archive}: Permission denied"
    assert not (tmp_path / "d").exists()


def test_force_over_an_undeletable_folder_warns_and_keeps_the_new_data(
        tmp_path: Path, archive: Path, undeletable_old_copies: None) -> None:
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    other = write_fake_cifar10_archive(tmp_path / "other.tar.gz", n_train=30, n_test=5, seed=9)
    result = fetch_cifar10(config(tmp_path / "d", source=str(other), sha256=sha256_of(other),
                                  force=True))
    assert result.status == "fetched" and result.archive_sha256 == sha256_of(other)
    assert len(load_dataset(tmp_path / "d", "train")) == 30  # the new data is in place
    leftovers = [p for p in (tmp_path / "d").iterdir() if p.name != "cifar-10-batches-py"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".cifar-10-batches-py.old.")
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert str(leftovers[0]) in warning and "Permission denied" in warning
    assert "by hand" in warning and "\n" not in warning
    assert data_checksum(tmp_path / "d") == sha256_of(other)


def test_without_force_nothing_is_warned(tmp_path: Path, archive: Path) -> None:
    result = fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert result.warnings == ()


@pytest.mark.parametrize("url, why", [
    ("http://[::1", "Invalid IPv6 URL"),
    ("http://[::1]:port/x.tar.gz", "Port could not be cast"),
    ("https:///cifar-10-python.tar.gz", "no host name"),
    ("s3://bucket/cifar-10-python.tar.gz", "unsupported scheme s3://"),
    ("file://[::1/x", "Invalid IPv6 URL"),
    # review: the host part was dropped: file://a.tar.gz read "." ("a folder"), and
    # file://sub/a.tar.gz read /a.tar.gz
    ("file://a.tar.gz", "a file:// URL names no host (file://a.tar.gz names 'a.tar.gz'): "
                        "use file:///absolute/path, or pass the path itself"),
    ("file://sub/a.tar.gz", "names 'sub'"),
])
def test_malformed_url_is_a_usage_error(tmp_path: Path, url: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        fetch_cifar10(config(tmp_path / "d", source=url))
    message = info.value.message
    assert message.startswith(f"--from {url!r} is not a valid URL") and why in message
    assert "--from" in (info.value.hint or "")
    assert not (tmp_path / "d").exists()


def test_malformed_url_refused_by_download_too(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Invalid IPv6 URL"):
        fetch_module.download("http://[::1", tmp_path / ARCHIVE_NAME)
    assert list(tmp_path.iterdir()) == []


def test_good_sources_pass_check_source(archive: Path) -> None:
    for source in ("https://example.org/cifar-10-python.tar.gz", "http://[::1]:8000/a.tar.gz",
                   "ftp://example.org/a.tar.gz", archive.as_uri(), str(archive),
                   "relative/path.tar.gz"):
        check_source(source)


def test_data_dir_that_is_a_file(tmp_path: Path, archive: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(afile, source=str(archive), sha256=sha256_of(archive)))
    assert info.value.message == f"the data dir {afile} is a file, not a folder"
    assert "--data" in (info.value.hint or "") and "DLBOX_DATA" in (info.value.hint or "")
    with pytest.raises(DataError, match="lies under .*afile, which is a file"):
        fetch_cifar10(config(afile / "sub", source=str(archive), sha256=sha256_of(archive)))
    assert afile.read_text() == "not a folder\n"


def test_inspect_checksums(tmp_path: Path, archive: Path) -> None:
    assert inspect_checksums(tmp_path / "nothing") == (None, None)
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    record, problem = inspect_checksums(tmp_path / "d")
    assert problem is None and record is not None
    assert record["archive"]["sha256"] == sha256_of(archive)
    path = tmp_path / "d" / "cifar-10-batches-py" / CHECKSUMS_FILE
    good = json.loads(path.read_text())
    bad_shapes = {
        '{"x":': "not valid JSON",
        "[]": "JSON list, not an object",
        '{"x": 1}': "no archive sha256",
        json.dumps({**good, "archive": {"sha256": "zz"}}): "no archive sha256",
        json.dumps({**good, "files": []}): "no per-file checksums",
        json.dumps({**good, "files": {**good["files"], "../x": good["files"]["test_batch"]}}):
            "names '../x'",
        json.dumps({**good, "files": {**good["files"], "test_batch": {"sha256": 1}}}):
            "entry for test_batch has no sha256",
        json.dumps({**good, "files": {k: v for k, v in good["files"].items()
                                      if k != "data_batch_2"}}): "no checksum for data_batch_2",
        "[" * 100000: "nested too deeply",
    }
    for text, why in bad_shapes.items():
        path.write_text(text)
        record, problem = inspect_checksums(tmp_path / "d")
        assert record is None and problem is not None, text[:40]
        assert problem.startswith(f"{path} is damaged: ") and why in problem, problem
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in (inspect_checksums(tmp_path / "d")[1] or "")


def test_a_download_that_fails_to_extract_leaves_nothing_behind(tmp_path: Path) -> None:
    """A download whose checksum matches but is not a tar: the error names the URL (not a
    temp path), and neither the 'downloaded archive' nor the new data dir stays behind."""
    import gzip

    payload = gzip.compress(b"not a tar archive\n" * 50)
    running = Server(payload)
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "d", source=running.url,
                                 sha256=hashlib.sha256(payload).hexdigest()))
    finally:
        running.close()
    assert "not a readable .tar.gz" in info.value.message
    assert running.url in info.value.message and str(tmp_path) not in info.value.message
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("stop", ["ctrl-c", "full disk"])
def test_a_fetch_stopped_while_extracting_a_verified_download_keeps_it_for_the_next(
        tmp_path: Path, archive: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
        stop: str) -> None:
    """Ctrl-C or a full disk after the download verified, during extraction: the archive is
    kept with its record, and the next fetch from that URL extracts it without downloading
    it again (review: a full disk deleted it, and each retry downloaded 163 MB again); the
    pre-existing data dir is left as it was, and nothing stays once the fetch succeeds."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "keep.txt").write_text("mine")
    real = fetch_module.extract_cifar10_archive

    def stopped(*args: object, **kwargs: object) -> Path:
        assert (data / ARCHIVE_NAME).is_file()  # the download did complete
        if stop == "ctrl-c":
            raise KeyboardInterrupt
        full = OSError(errno.ENOSPC, "No space left on device")
        raise extract_module.data_dir_error(data, full, "extract")

    monkeypatch.setattr(fetch_module, "extract_cifar10_archive", stopped)
    with pytest.raises((KeyboardInterrupt, DataError)) as info:
        fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
    if stop == "full disk":
        assert (getattr(info.value, "hint", None) or "").endswith(
            f"; the download is kept ({data / ARCHIVE_NAME}): the same command extracts it "
            "without downloading it again")
    assert sorted(p.name for p in data.iterdir()) == [
        ARCHIVE_NAME, ARCHIVE_NAME + ".source", "keep.txt"]
    monkeypatch.setattr(fetch_module, "extract_cifar10_archive", real)
    requests = len(server.ranges)
    assert fetch_cifar10(config(data, source=server.url,
                                sha256=sha256_of(archive))).status == "fetched"
    assert len(server.ranges) == requests
    assert sorted(p.name for p in data.iterdir()) == ["cifar-10-batches-py", "keep.txt"]


@pytest.mark.parametrize("field", ["sha256", "source"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_sha256_or_source_is_refused_not_ignored(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch,
        field: str, value: str) -> None:
    """`--sha256 "$(...)"` or `--from "$ARCHIVE"` that came out empty must not quietly mean
    "check the official md5" or "download the official URL"."""
    def no_download(*args: object, **kwargs: object) -> Path:
        raise AssertionError("an empty --from must not download anything")

    monkeypatch.setattr(fetch_module, "download", no_download)
    kwargs = {"source": str(archive), "sha256": sha256_of(archive), field: value}
    with pytest.raises(UsageError) as info:
        fetch_cifar10(config(tmp_path / "d", **kwargs))
    assert "empty" in info.value.message
    assert not (tmp_path / "d").exists()


def test_sha256_errors_say_what_was_passed_instead(archive: Path) -> None:
    digest = sha256_of(archive)
    with pytest.raises(UsageError) as info:
        normalize_sha256(f"{digest}  {archive}")  # `$(sha256sum FILE)` without the cut
    assert "whole `sha256sum` line" in info.value.message
    assert "cut -d' ' -f1" in (info.value.hint or "")
    with pytest.raises(UsageError) as info:
        normalize_sha256(hashlib.md5(archive.read_bytes()).hexdigest())
    assert "an md5" in info.value.message and "leave out --sha256" in (info.value.hint or "")


def test_a_folder_passed_to_from_gets_a_hint_for_what_it_holds(tmp_path: Path,
                                                               archive: Path) -> None:
    """--from DIR: the archive inside it, or extracted batches to use with --data."""
    holder = tmp_path / "downloads"
    holder.mkdir()
    (holder / ARCHIVE_NAME).write_bytes(archive.read_bytes())
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(holder)))
    assert info.value.message == f"archive {holder} is a folder, not a .tar.gz file"
    assert info.value.hint == f"pass the archive in it: --from {holder / ARCHIVE_NAME}"
    fetch_cifar10(config(tmp_path / "got", source=str(archive), sha256=sha256_of(archive)))
    for source in (tmp_path / "got", tmp_path / "got" / "cifar-10-batches-py"):
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "d", source=str(source)))
        assert f"use them with --data {tmp_path / 'got'} " in (info.value.hint or "")
    assert not (tmp_path / "d").exists()


class AuthServer(LoopbackServer):
    """A loopback server that serves the payload only with HTTP Basic auth for `login`."""

    def __init__(self, payload: bytes, login: str) -> None:
        import base64

        expected = "Basic " + base64.b64encode(login.encode()).decode()
        self.seen: list[str | None] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.seen.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != expected:
                    self.reply(401)
                else:
                    self.reply(200, payload)

        self.serve(Handler)


def test_a_mirror_url_with_a_login_is_fetched_and_its_password_never_shown(
        tmp_path: Path, archive: Path) -> None:
    """http://USER:PASSWORD@host/...: urllib alone looked up "user:password@host" as a host
    name ("Name or service not known") and printed the password; now the login goes as
    Basic auth and messages and the record show `***`."""
    running = AuthServer(archive.read_bytes(), "mirror user:s3cr@t")
    try:
        url = f"http://mirror%20user:s3cr%40t@{running.hostport}/{ARCHIVE_NAME}"
        result = fetch_cifar10(config(tmp_path / "d", source=url, sha256=sha256_of(archive)))
        assert result.status == "fetched"
        shown = f"http://mirror%20user:***@{running.hostport}/{ARCHIVE_NAME}"
        assert result.source == shown
        record = (tmp_path / "d" / "cifar-10-batches-py" / CHECKSUMS_FILE).read_text()
        assert "s3cr" not in record and shown in record
        wrong = url.replace("s3cr%40t", "guess")
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "e", source=wrong, sha256=sha256_of(archive)))
        assert "HTTP 401" in info.value.message and "guess" not in info.value.message
        assert "check the user name and password" in (info.value.hint or "")
        assert "on a machine with network access" not in (info.value.hint or "")
        assert not (tmp_path / "e").exists()
    finally:
        running.close()
    with pytest.raises(UsageError) as usage:
        check_source("http://user:hunter2@[::1/x")
    assert "hunter2" not in usage.value.message and "user:***@" in usage.value.message


def test_a_web_page_instead_of_the_archive_is_named_as_one(tmp_path: Path) -> None:
    """A mirror link that answers 200 with a login or download page: the checksum fails, and
    the message says it was a web page, with a hint to take the direct link."""
    running = Server(b"\n  <!DOCTYPE html>\n<html><body>Please sign in</body></html>\n")
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "d", source=running.url))
    finally:
        running.close()
    assert info.value.message.startswith(f"checksum mismatch for {running.url}")
    assert info.value.message.endswith("the server sent a web page (HTML), not the archive")
    assert "direct link" in (info.value.hint or "")
    assert not (tmp_path / "d").exists()


def test_a_second_download_into_the_same_data_dir_is_refused_at_once(
        tmp_path: Path, archive: Path, server: Server) -> None:
    """Two fetches downloading into one data dir (two terminals, parallel jobs) used to write
    the same .part; the second is now told another fetch is running, and writes nothing."""
    import fcntl
    import os

    data = tmp_path / "d"
    data.mkdir()
    holder = os.open(data, os.O_RDONLY)  # what a running fetch holds
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
        assert info.value.message == f"another `dlbox data fetch` is fetching into {data}"
        assert "wait for it to finish" in (info.value.hint or "")
        assert list(data.iterdir()) == [] and server.ranges == []
    finally:
        os.close(holder)
    assert fetch_cifar10(config(data, source=server.url,
                                sha256=sha256_of(archive))).status == "fetched"


def test_a_fetch_from_a_local_file_waits_its_turn_too(tmp_path: Path, archive: Path) -> None:
    """Found in review: only downloads took the data dir's lock, so two fetches from local
    files could swap their folders into place at the same time."""
    import fcntl
    import os

    data = tmp_path / "d"
    data.mkdir()
    holder = os.open(data, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(data, source=str(archive), sha256=sha256_of(archive)))
        assert info.value.message == f"another `dlbox data fetch` is fetching into {data}"
        assert list(data.iterdir()) == []
    finally:
        os.close(holder)
    assert fetch_cifar10(config(data, source=str(archive),
                                sha256=sha256_of(archive))).status == "fetched"


def test_a_fetch_from_a_local_file_clears_an_abandoned_partial_download(
        tmp_path: Path, archive: Path, server: Server) -> None:
    """Ctrl-C during a download, then the archive copied over and fetched with --from FILE:
    the interrupted download's .part (up to 163 MB) had nothing left to resume into and
    stayed for good."""
    server.cut_after = 1000
    with pytest.raises(DataError):
        fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    part = tmp_path / "d" / (ARCHIVE_NAME + ".part")
    assert part.is_file()
    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["cifar-10-batches-py"]
    # ... but never the very file it was given
    other = tmp_path / "e"
    other.mkdir()
    own_part = other / (ARCHIVE_NAME + ".part")
    own_part.write_bytes(archive.read_bytes())
    fetch_cifar10(config(other, source=str(own_part), sha256=sha256_of(archive)))
    assert own_part.is_file()


# ---- the archive's format and members are checked before its checksum ----------------------
# A file that could not be extracted anyway gets the error that says what it is, never a
# "checksum mismatch" whose hint offers `--sha256 <this file's sha256>` (which, pasted back,
# only led to the format error on a second run).

def zip_of_fake_cifar10(path: Path) -> Path:
    import zipfile

    from dlbox.data.synthetic import write_fake_cifar10

    directory = write_fake_cifar10(path.parent / "zip-src", n_train=10, n_test=10)
    with zipfile.ZipFile(path, "w") as zipped:
        for member in sorted(directory.iterdir()):
            zipped.write(member, f"cifar-10-batches-py/{member.name}")
    return path


def image_tree_archive(path: Path) -> Path:
    """A tiny cifar10-jpeg.tar.gz look-alike: <top>/<split>/<class>/*.jpg."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name in ("cifar10-jpeg", "cifar10-jpeg/train", "cifar10-jpeg/train/cat"):
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
        for index in range(3):
            payload = b"\xff\xd8\xff\xe0 not really a jpeg"
            image = tarfile.TarInfo(f"cifar10-jpeg/train/cat/{index:04d}.jpg")
            image.size = len(payload)
            tar.addfile(image, io.BytesIO(payload))
    return path


def archive_with_a_stray_member(path: Path, archive: Path) -> Path:
    """The fake CIFAR-10 archive plus one member the official one does not have."""
    import io
    import tarfile

    with tarfile.open(archive) as good, tarfile.open(path, "w:gz") as tar:
        for member in good.getmembers():
            tar.addfile(member, good.extractfile(member) if member.isfile() else None)
        stray = tarfile.TarInfo("cifar-10-batches-py/notes.txt")
        stray.size = 2
        tar.addfile(stray, io.BytesIO(b"hi"))
    return path


def junk_file(path: Path) -> Path:
    path.write_bytes(b"junk" * 100)
    return path


def test_a_zip_passed_with_from_gets_the_zip_error_not_a_checksum_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox import cli
    from dlbox.errors import EXIT_ERROR

    zipped = zip_of_fake_cifar10(tmp_path / "cifar-10-python.zip")
    code = cli.main(["data", "fetch", "--from", str(zipped), "--data", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR == 1
    assert f"error: archive {zipped} is a ZIP archive, not a .tar.gz\n" in err
    assert "unpack it yourself and pass --data" in err
    assert "checksum" not in err and "--sha256" not in err and sha256_of(zipped) not in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("via", ["file", "url"])
@pytest.mark.parametrize("kind", ["zip", "image_tree", "stray_member", "not_gzip"])
@pytest.mark.parametrize("with_sha256", [False, True])
def test_a_wrong_archive_gets_its_format_error_before_any_checksum(
        tmp_path: Path, archive: Path, via: str, kind: str, with_sha256: bool) -> None:
    made = tmp_path / "made"
    made.mkdir()
    wrong = {
        "zip": lambda: zip_of_fake_cifar10(made / "cifar.zip"),
        "image_tree": lambda: image_tree_archive(made / "cifar10-jpeg.tar.gz"),
        "stray_member": lambda: archive_with_a_stray_member(made / "stray.tar.gz", archive),
        "not_gzip": lambda: junk_file(made / "junk.tar.gz"),
    }[kind]()
    expected = {
        "zip": "is a ZIP archive, not a .tar.gz",
        "image_tree": "refusing the archive: member 'cifar10-jpeg' is not a CIFAR-10 file",
        "stray_member": "refusing the archive: member 'cifar-10-batches-py/notes.txt'",
        "not_gzip": "is not a readable .tar.gz",
    }[kind]
    # without --sha256 (the official md5 fails too), and with the file's own, as pasted from
    # the hint the user used to get
    sha256 = sha256_of(wrong) if with_sha256 else None
    running = Server(wrong.read_bytes()) if via == "url" else None
    source = running.url if running is not None else str(wrong)
    try:
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "d", source=source, sha256=sha256))
    finally:
        if running is not None:
            running.close()
    message, hint = info.value.message, info.value.hint or ""
    assert expected in message
    assert "checksum" not in message and sha256_of(wrong) not in message + hint
    if kind == "image_tree":
        assert "holds an image tree" in hint and "--data DIR" in hint
    assert not (tmp_path / "d").exists()  # nor a downloaded archive left in it


@pytest.mark.parametrize("via", ["file", "url"])
def test_a_right_format_archive_with_a_wrong_checksum_is_still_refused(
        tmp_path: Path, archive: Path, server: Server, via: str) -> None:
    source = str(archive) if via == "file" else server.url
    # no --sha256: the official md5
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=source))
    assert info.value.message == (
        f"checksum mismatch for {source}: md5 is {hashlib.md5(archive.read_bytes()).hexdigest()}"
        f", expected the official {fetch_module.OFFICIAL_MD5}")
    hint = info.value.hint or ""
    assert "--sha256 HEX" in hint
    assert (sha256_of(archive) in hint) == (via == "file")
    # a --sha256 that does not match
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=source, sha256="2" * 64))
    assert info.value.message.startswith(f"checksum mismatch for {source}: ")
    assert info.value.message.endswith(f"expected {'2' * 64}")
    assert "--sha256 HEX" in (info.value.hint or "")
    assert not (tmp_path / "d").exists()


def test_a_kept_download_beside_data_in_place_is_told_to_go_with_force(
        tmp_path: Path, archive: Path) -> None:
    """Review: after a `--force` fetch was cut short, data check said the next `dlbox data
    fetch` resumes the .part, which says "nothing to do" while the data is in place."""
    from dlbox.data.loading import check_data

    root = tmp_path / "d"
    fetch_cifar10(config(root, source=str(archive), sha256=sha256_of(archive)))
    part = root / (ARCHIVE_NAME + ".part")
    part.write_bytes(b"x" * 3000)
    (root / (ARCHIVE_NAME + ".part.source")).write_text(
        json.dumps({"url": "0" * 64, "validator": '"v1"'}))
    (note,) = [note for note in check_data(root).notes if ".part" in note]
    assert note == (f"{part} is an interrupted download (3 kB): the next `dlbox data fetch "
                    f"--data {root} --force` from the same URL resumes it; delete it to get "
                    "the space back")


def test_data_check_while_a_fetch_downloads_does_not_call_its_part_interrupted(
        tmp_path: Path) -> None:
    """Review: `dlbox data check` run while another `dlbox data fetch` downloaded into the same
    data dir called the live .part "an interrupted download ... delete it to get the space
    back". A .part whose data dir a fetch holds locked is that fetch's download now."""
    import fcntl
    import os

    from dlbox.data.loading import check_data

    root = tmp_path / "d"
    root.mkdir()
    part = root / (ARCHIVE_NAME + ".part")
    part.write_bytes(b"x" * 3000)
    (root / (ARCHIVE_NAME + ".part.source")).write_text(
        json.dumps({"url": "0" * 64, "validator": '"v1"'}))
    fd = os.open(root, os.O_RDONLY)  # what a running fetch holds (another process's lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (note,) = check_data(root).notes
    finally:
        os.close(fd)
    assert note == (f"another `dlbox data fetch` is fetching into {root} right now: {part} "
                    "(3 kB) is its download so far; leave it until that fetch ends")
    (note,) = check_data(root).notes  # the lock gone: an interrupted download again
    assert note.startswith(f"{part} is an interrupted download (3 kB)")


def test_a_data_dir_that_cannot_be_created_says_why_in_a_few_words(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `--data /sys/dlboxtest` printed Python's "[Errno 1] Operation not permitted:
    '/sys/dlboxtest'"; the reason is now the system's words in brackets, as for an existing
    folder that is not writable."""
    root = tmp_path / "d"
    original = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self == root:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(self))
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    for source in (str(archive), "http://127.0.0.1:9/cifar-10-python.tar.gz"):
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(root, source=source, sha256=sha256_of(archive)))
        assert info.value.message == (f"cannot create the data dir {root} (Operation not "
                                      "permitted)")
        assert info.value.hint == "pass --data DIR (or set DLBOX_DATA) to a writable folder"


def test_data_check_while_a_fetch_replaces_the_data_leaves_its_old_copy_alone(
        tmp_path: Path) -> None:
    """Found by the docs check: while a `fetch --force` swapped its folders in, data check
    told to delete its .cifar-10-batches-py.old.* copy by hand (docs/data.md says the notes
    of a running fetch's files say so instead)."""
    import fcntl
    import os

    from dlbox.data.loading import check_data
    from dlbox.data.synthetic import write_fake_cifar10

    root = write_fake_cifar10(tmp_path / "d", n_train=20, n_test=10).parent
    old = root / ".cifar-10-batches-py.old.abc"
    old.mkdir()
    fd = os.open(root, os.O_RDONLY)  # what a running fetch holds (another process's lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        notes = check_data(root).notes
    finally:
        os.close(fd)
    assert (f"another `dlbox data fetch` is fetching into {root} right now: {old} may be the "
            "copy it replaces, which it removes; if it is still there when that fetch ends, "
            "delete it by hand") in notes
    assert any(note.startswith(f"{old} is an old copy") for note in check_data(root).notes)


def test_a_download_cut_short_keeps_its_real_total_on_the_progress_bar(
        tmp_path: Path, archive: Path, server: Server,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a server that sent the full Content-Length and closed after part of it left a
    FULL download bar (`300.0/300.0 kB`) above `download ... stopped at 300000 of N bytes`:
    the bar's end set its total to what had arrived (meant for the extract bar's missing
    readme.html). A download that falls short keeps its real total."""
    seen: list[tuple[str, float | None, float]] = []
    real_task = fetch_module._Progress.task

    @contextlib.contextmanager
    def task(self: fetch_module._Progress, description: str, total: float | None,
             completed: float = 0, **kwargs: bool) -> Iterator[Callable[[int], None]]:
        with real_task(self, description, total, completed, **kwargs) as advance:
            yield advance
        bar = self._progress.tasks[-1]
        seen.append((description, bar.total, bar.completed))

    monkeypatch.setattr(fetch_module._Progress, "task", task)
    server.cut_after = 1000
    with pytest.raises(DataError, match="stopped at 1000 of"):
        fetch_module.download(server.url, tmp_path / ARCHIVE_NAME, progress=True, timeout_s=10)
    assert seen == [("downloading", archive.stat().st_size, 1000)]
    # the extract bar still ends full without the optional readme.html
    with fetch_module._Progress(True, unit="files").task("extracting", 8) as advance:
        advance(7)
    assert seen[-1] == ("extracting", 7, 7)
    # a whole download ends full, as does one whose size was not told
    server.cut_after = None
    server.send_length = False
    fetch_module.download(server.url, tmp_path / ARCHIVE_NAME, progress=True, timeout_s=10)
    size = archive.stat().st_size
    assert seen[-1] == ("downloading", size, size)


def test_a_download_cut_short_without_a_length_says_to_run_it_again(
        tmp_path: Path, archive: Path, server: Server) -> None:
    """Review: a server that sends no Content-Length and drops the connection midway: the cut
    only shows as the gzip ending early, which was reported with "use the official
    cifar-10-python.tar.gz". The hint now says the download may have been cut short and to run
    the same command again; the partial file is deleted, so that works."""
    server.send_length = False
    server.cut_after = archive.stat().st_size // 2
    root = tmp_path / "d"
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(root, source=server.url, sha256=sha256_of(archive)))
    assert info.value.message.startswith(f"archive {server.url} is not a readable .tar.gz")
    assert (info.value.hint or "").startswith("the download may have been cut short: run the "
                                              "same command again")
    assert not root.exists()
    server.cut_after = None
    assert fetch_cifar10(config(root, source=server.url,
                                sha256=sha256_of(archive))).status == "fetched"


def test_a_fetch_that_finds_the_data_in_place_clears_a_killed_fetchs_temp_folder(
        tmp_path: Path, archive: Path) -> None:
    """Review: the temp folder of a `fetch --force` killed outright (SIGKILL) stayed for good:
    a plain fetch found the data in place and returned ("nothing to do") before clearing it,
    and data check did not mention it, though docs/data.md says the next fetch deletes it.
    Now both do, by extraction's rule: a temp folder of a fetch that ran on this machine and
    has ended goes at once, one of another machine only once it is an hour old, and nothing
    while another fetch holds the data dir's lock."""
    import fcntl
    import os

    from dlbox.data.loading import check_data
    from dlbox.processes import owner_id

    root = tmp_path / "d"
    digest = sha256_of(archive)  # a copy: a fetch without it is refused (not the official one)
    fetch_cifar10(config(root, source=str(archive), sha256=digest))
    host, pid, _start, namespace = owner_id(namespace=True).split(":", 3)
    killed = root / f".cifar-10-batches-py.{host}:{pid}:1:{namespace}.abcd1234.tmp"
    elsewhere = root / f".cifar-10-batches-py.{socket.gethostname()}-other:1:1:1.x.tmp"
    for folder in (killed, elsewhere):
        folder.mkdir()
        (folder / "data_batch_1").write_bytes(b"x" * 3000)
    notes = check_data(root).notes
    assert (f"{killed} (3 kB) is the temp folder of a `dlbox data fetch` that was killed: the "
            f"next `dlbox data fetch --data {root}` deletes it (or `rm -rf {killed}`)") in notes
    (other,) = [note for note in notes if note.startswith(str(elsewhere))]
    assert "another machine" in other and "once it is an hour old" in other

    fd = os.open(root, os.O_RDONLY)  # what a running fetch holds (another process's lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert (f"another `dlbox data fetch` is fetching into {root} right now: {killed} "
                "(3 kB) is its temp folder; leave it until that fetch ends"
                ) in check_data(root).notes
        assert fetch_cifar10(config(root, source=str(archive), sha256=digest)).status == "present"
        assert killed.is_dir()  # left to the fetch that holds the lock
    finally:
        os.close(fd)
    assert fetch_cifar10(config(root, source=str(archive), sha256=digest)).status == "present"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [elsewhere.name, "cifar-10-batches-py"])
    assert not any(str(killed) in note for note in check_data(root).notes)


def test_sigterm_during_the_swap_of_a_download_removes_the_download_too(
        tmp_path: Path, archive: Path, server: Server, sigterm_as_the_old_copy_goes: None) -> None:
    """Found by review: a SIGTERM held through a --force fetch's swap was raised once the new
    data was in place, before the download was deleted: 163 MB kept, and `data check` said it
    was a download no fetch had extracted."""
    from dlbox.processes import Terminated

    data_dir = tmp_path / "d"
    fetch_cifar10(config(data_dir, source=str(archive), sha256=sha256_of(archive)))
    with pytest.raises(Terminated):  # as the copy the first fetch made is deleted
        fetch_cifar10(config(data_dir, source=server.url, sha256=sha256_of(archive),
                             force=True))
    assert not list(data_dir.glob("cifar-10-python.tar.gz*"))  # the download and its record
    assert not list(data_dir.glob(".cifar-10-batches-py.old.*"))
    assert fetch_module.kept_downloads(data_dir) == []
    assert len(load_dataset(data_dir, "train")) == 60


def test_a_sha256_other_than_the_present_datas_is_refused_not_ignored(
        tmp_path: Path, archive: Path) -> None:
    """Found by review: a second `scripts/main.sh --from OTHER --sha256 OTHERS` said "already
    there; nothing to do" and trained on the first archive's data, the --sha256 unheeded."""
    from dlbox.errors import UsageError

    fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    other = write_fake_cifar10_archive(tmp_path / "other.tar.gz", n_train=30, n_test=5, seed=9)
    with pytest.raises(UsageError) as refused:
        fetch_cifar10(config(tmp_path / "d", source=str(other), sha256=sha256_of(other)))
    target = tmp_path / "d" / "cifar-10-batches-py"
    assert refused.value.message == (
        f"{target} holds CIFAR-10 from another archive (sha256 {sha256_of(archive)}), not the "
        f"one --sha256 names ({sha256_of(other)})")
    assert refused.value.hint == "pass --force to replace it with that archive's data"
    assert data_checksum(tmp_path / "d") == sha256_of(archive)  # nothing replaced
    again = fetch_cifar10(config(tmp_path / "d", source=str(archive), sha256=sha256_of(archive)))
    assert again.status == "present"  # the same archive: nothing to do, as before


def test_a_sha256_copy_with_labels_nested_in_themselves_is_refused_by_its_file(
        tmp_path: Path, archive: Path) -> None:
    """Found by review: a --sha256 copy whose test_batch holds its labels as one list nested
    in itself (a few KB that np.asarray expands to billions of labels at depth 30; depth 2
    here, the loader's tests take depth 30) grew the fetch to many GB while its batches were
    read through. Refused by what the labels are, naming the file; nothing is extracted."""
    import pickle
    import tarfile

    import numpy as np

    labels: list[object] = [0] * 10
    for _ in range(2):
        labels = [labels, labels]
    bomb = pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": labels},
                        protocol=2)
    copy = tmp_path / ARCHIVE_NAME
    with tarfile.open(archive) as good, tarfile.open(copy, "w:gz") as tar:
        for member in good.getmembers():
            if member.name.endswith("/test_batch"):
                member.size = len(bomb)
                tar.addfile(member, io.BytesIO(bomb))
            else:
                tar.addfile(member, good.extractfile(member) if member.isfile() else None)
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=str(copy), sha256=sha256_of(copy)))
    assert info.value.message == (
        f"refusing the archive {copy}: cifar-10-batches-py/test_batch is not a CIFAR-10 batch: "
        "ValueError: labels are a list of lists, not a flat list of integers")
    assert not (tmp_path / "d").exists()


def test_a_plain_fetch_over_another_archives_data_is_refused_not_nothing_to_do(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `dlbox data fetch` without --sha256 (the official archive expected)
    said "already in ...; nothing to do" over data a `--sha256` fetch had put there from
    another archive, so a plain `scripts/main.sh` after an offline one trained on that copy
    without a word. It is refused as a --sha256 of another archive is, with what keeps it."""
    root = tmp_path / "d"
    fetch_cifar10(config(root, source=str(archive), sha256=sha256_of(archive)))
    target = root / "cifar-10-batches-py"
    for source in (None, str(archive)):  # the official URL (never asked), or a local copy
        with pytest.raises(UsageError) as refused:
            fetch_cifar10(config(root, source=source))
        assert refused.value.message == (
            f"{target} holds CIFAR-10 from another archive (sha256 {sha256_of(archive)}), not "
            f"the official one (md5 {fetch_module.OFFICIAL_MD5})")
        assert refused.value.hint == (
            "pass --force to replace it with the official archive's data, or "
            f"--sha256 {sha256_of(archive)} to keep using it" if source is None else
            f"pass --sha256 {sha256_of(archive)} (the checksum it was fetched with) to keep "
            "using it, or leave out --from and pass --force to replace it with the official "
            "archive's data")  # review: --force with the same --from FILE failed the md5
    assert data_checksum(root) == sha256_of(archive)  # nothing replaced
    # what the hint says keeps it, does
    assert fetch_cifar10(config(root, sha256=sha256_of(archive))).status == "present"
    # data fetched from the official archive (here: its md5 made this one's) is still there
    monkeypatch.setattr(fetch_module, "OFFICIAL_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    fetch_cifar10(config(root, source=str(archive), force=True))
    assert fetch_cifar10(config(root)).status == "present"


@pytest.mark.parametrize("stage", ["inspect", "verify"])
def test_a_fetch_stopped_while_it_checks_a_download_keeps_it_to_check_again(
        tmp_path: Path, archive: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
        stage: str) -> None:
    """Found by review: Ctrl-C, SIGTERM or SIGHUP just after a download completed (while it was
    inspected or its checksum computed) deleted the whole download, as if it had failed its
    check. Only a download found bad is deleted; one stopped is kept with its .source record,
    and the next fetch from the same URL checks it again (without downloading it again): a
    good one is extracted, one that fails its check then is deleted as always."""
    from dlbox.processes import Terminated

    data = tmp_path / "d"
    real = {"inspect": fetch_module.check_cifar10_archive, "verify": fetch_module.digest_file}

    def stopped(*args: object, **kwargs: object) -> object:
        assert (data / ARCHIVE_NAME).is_file()  # the download did complete
        if stage == "inspect":
            raise KeyboardInterrupt
        raise Terminated(signal.SIGHUP)

    name = {"inspect": "check_cifar10_archive", "verify": "digest_file"}[stage]
    monkeypatch.setattr(fetch_module, name, stopped)
    with pytest.raises((KeyboardInterrupt, Terminated)):
        fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
    assert sorted(p.name for p in data.iterdir()) == [ARCHIVE_NAME, ARCHIVE_NAME + ".source"]
    monkeypatch.setattr(fetch_module, name, real[stage])
    requests = len(server.ranges)
    # checked again: another --sha256 than the download's fails, and the download goes
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_cifar10(config(data, source=server.url, sha256="0" * 64))
    assert len(server.ranges) == requests and list(data.iterdir()) == []
    # stopped again, then a good one is extracted without a second download
    monkeypatch.setattr(fetch_module, name, stopped)
    with pytest.raises((KeyboardInterrupt, Terminated)):
        fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
    monkeypatch.setattr(fetch_module, name, real[stage])
    requests = len(server.ranges)
    assert fetch_cifar10(config(data, source=server.url,
                                sha256=sha256_of(archive))).status == "fetched"
    assert len(server.ranges) == requests
    assert sorted(p.name for p in data.iterdir()) == ["cifar-10-batches-py"]


def test_a_download_that_cannot_be_read_while_checked_is_kept(
        tmp_path: Path, archive: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a read error while a fresh download's checksum was computed became a
    DataError, and every DataError deleted the download as if it were bad. Only one found bad
    is deleted: an I/O error says nothing of the file, and the next fetch checks it again."""
    data = tmp_path / "d"
    real = fetch_module.digest_file

    def unreadable(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fetch_module, "digest_file", unreadable)
    with pytest.raises(DataError, match="cannot read the archive"):
        fetch_cifar10(config(data, source=server.url, sha256=sha256_of(archive)))
    assert sorted(p.name for p in data.iterdir()) == [ARCHIVE_NAME, ARCHIVE_NAME + ".source"]
    monkeypatch.setattr(fetch_module, "digest_file", real)
    requests = len(server.ranges)
    assert fetch_cifar10(config(data, source=server.url,
                                sha256=sha256_of(archive))).status == "fetched"
    assert len(server.ranges) == requests  # no second download


class TricklingServer(LoopbackServer):
    """Sends `size` bytes with their Content-Length: the first `first` of them, then nothing
    until the client's .part at `part` holds some of them (at most `wait_s`), then the rest.
    `seen_on_disk`: whether the client wrote what it had before the rest came."""

    def __init__(self, part: Path, size: int, first: int, wait_s: float = 5.0) -> None:
        import time

        self.payload = bytes(range(256)) * (size // 256)
        self.seen_on_disk: bool | None = None
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload[:first])
                self.wfile.flush()
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline and not (
                        part.exists() and part.stat().st_size >= first // 2):
                    time.sleep(0.01)
                outer.seen_on_disk = part.exists() and part.stat().st_size >= first // 2
                self.wfile.write(outer.payload[first:])

        self.serve(Handler)
        self.url = f"http://{self.hostport}/{ARCHIVE_NAME}"


def test_a_download_shows_progress_as_it_arrives_in_plain_lines_without_a_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the download read 1 MiB at a time and each read waited for the whole
    MiB (a slow link showed nothing for long stretches), and without a terminal (CI, `| tee`,
    `docker logs`) no progress was shown at all during a 163 MB download. Reads now take what
    has arrived (up to 64 KiB), and without bars a plain line is printed at every tenth of
    the download, and at its end."""
    import re

    dest = tmp_path / ARCHIVE_NAME
    running = TricklingServer(dest.with_name(ARCHIVE_NAME + ".part"), size=2 * 2**20,
                              first=256 * 2**10)
    try:
        fetch_module.download(running.url, dest, progress=False, progress_lines=True,
                              timeout_s=10)
    finally:
        running.close()
    assert running.seen_on_disk is True  # 256 KiB were written before the rest was sent
    assert dest.read_bytes() == running.payload
    lines = capsys.readouterr().err.splitlines()
    assert 3 <= len(lines) <= 11, lines
    percents, amounts = [], []
    for line in lines:
        # in the total's unit, with a decimal under 10 of it (review: "161 kB of 1 MB", and
        # "1 MB of 1 MB (81 %)")
        match = re.fullmatch(r"downloading (\d+\.\d) MB of 2\.1 MB \((\d+) %\)", line)
        assert match is not None, line
        amounts.append(float(match.group(1)))
        percents.append(int(match.group(2)))
    assert percents == sorted(set(percents)) and percents[-1] == 100
    assert amounts == sorted(set(amounts))
    assert lines[-1] == "downloading 2.1 MB of 2.1 MB (100 %)"


@pytest.mark.parametrize("done, total, shown", [
    (17_000_000, 170_498_071, "17 MB of 170 MB"),
    (161_000, 1_300_000, "0.2 MB of 1.3 MB"),
    (1_053_000, 1_300_000, "1.1 MB of 1.3 MB"),
    (40_000, 900_000, "40 kB of 900 kB"),
    (0, 500, "0 kB of 1 kB"),
    (400, 400, "1 kB of 1 kB"),
])
def test_download_amounts_are_told_in_the_units_of_the_total(done: int, total: int,
                                                              shown: str) -> None:
    assert fetch_module._amount_of(done, total) == shown


@contextlib.contextmanager
def page_server(payload: bytes, content_type: str | None) -> Iterator[str]:
    """A loopback server that answers every GET with `payload` (HTTP 200), sent as
    `content_type`; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{ARCHIVE_NAME}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


WEB_PAGES = {
    "bom": (b"\xef\xbb\xbf<!DOCTYPE html><html><body>Sign in</body></html>", None),
    "comment": (b"<!-- served by portal 2.1 -->\n<html><body>Sign in</body></html>", None),
    "html_later": (b"Content-Security-Policy: none\n<meta charset=utf-8>\n<html lang=en>", None),
    "served_as_html": (b"Please sign in to continue.\n", "text/html; charset=utf-8"),
}


@pytest.mark.parametrize("case", sorted(WEB_PAGES))
def test_a_web_page_is_named_as_one_however_it_starts_with_the_data_dir_in_the_hint(
        tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a page that begins with a byte-order mark or an <!-- comment -->, or
    has its <html> further down, or is served as text/html without any of it, was not named
    as a web page (a download got "checksum mismatch ... the download is damaged", a local
    copy "not a readable .tar.gz"); and the web-page hint's `dlbox data fetch --from ...`
    dropped the user's --data. Its first KB and the server's Content-Type are looked at."""
    import shlex

    payload, content_type = WEB_PAGES[case]
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    root = tmp_path / "my data"
    with page_server(payload, content_type) as url, pytest.raises(DataError) as info:
        fetch_cifar10(config(root, source=url))
    assert info.value.message.endswith("the server sent a web page (HTML), not the archive")
    assert (f"`dlbox data fetch --data {shlex.quote(str(root))} --from "
            "/path/to/cifar-10-python.tar.gz`") in (info.value.hint or "")
    assert not root.exists()
    if content_type is None:  # the same page saved as a file
        page = tmp_path / "saved.tar.gz"
        page.write_bytes(payload)
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(root, source=str(page)))
        assert info.value.message == f"archive {page} is a web page (HTML), not a .tar.gz"


def test_an_archive_served_as_text_html_is_still_an_archive(
        tmp_path: Path, archive: Path) -> None:
    """A misconfigured server's Content-Type does not make the archive a web page."""
    with page_server(archive.read_bytes(), "text/html") as url:
        result = fetch_cifar10(config(tmp_path / "d", source=url, sha256=sha256_of(archive)))
        assert result.status == "fetched"
        with pytest.raises(DataError) as info:
            fetch_cifar10(config(tmp_path / "e", source=url, sha256="0" * 64))
    assert "web page" not in info.value.message
