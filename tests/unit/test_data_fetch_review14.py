"""Review 14 of `dlbox data fetch`: an archive refused by its first member headers is refused
as soon as they arrive, not after the whole download (the CIFAR-100 URL, 161 MB, or an image
tree's .tar.gz were downloaded in full to be told so)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest
from conftest import LoopbackServer, QuietHandler

from dlbox.data.extract import HEAD_CHECK_BYTES
from dlbox.data.fetch import ARCHIVE_NAME, FetchConfig, fetch_cifar10
from dlbox.data.synthetic import write_fake_cifar10_archive
from dlbox.errors import DataError


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


class HoldingServer(LoopbackServer):
    """Serves `payload` at /cifar-10-python.tar.gz: its first `first` bytes, then nothing more
    until `release()` (or 30 s); `sent_all` says whether the rest went out."""

    def __init__(self, payload: bytes, first: int) -> None:
        self.released = threading.Event()
        self.sent_all = False
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:first])
                self.wfile.flush()
                outer.released.wait(30)
                try:
                    self.wfile.write(payload[first:])
                    outer.sent_all = True
                except OSError:  # the client hung up: fine
                    pass

        self.serve(Handler)
        self.url = f"http://{self.hostport}/{ARCHIVE_NAME}"

    def release(self) -> None:
        self.released.set()
        self.close()


def tar_gz(members: list[tuple[str, bytes | None]]) -> bytes:
    """A .tar.gz of (name, content) members; None: a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def refused_while_held(tmp_path: Path, payload: bytes) -> DataError:
    assert len(payload) > 2 * HEAD_CHECK_BYTES  # (random bytes: gzip keeps their size)
    server = HoldingServer(payload, first=HEAD_CHECK_BYTES + 4096)
    data = tmp_path / "data"
    try:
        with pytest.raises(DataError) as refused:
            # 5 s without data would end a download that waits for the rest: "no data in 5 s"
            fetch_cifar10(FetchConfig(data_dir=data, source=server.url, progress=False,
                                      timeout_s=5))
        assert not server.sent_all
    finally:
        server.release()
    # nothing of the download is left: no .part, no .source record, no archive
    assert not data.exists() or not [p.name for p in data.iterdir()
                                     if p.name.startswith(ARCHIVE_NAME)]
    return refused.value


def test_a_foreign_archive_is_refused_by_its_first_headers_not_after_the_whole_download(
        tmp_path: Path) -> None:
    payload = tar_gz([("cifar-100-python", None),
                      ("cifar-100-python/train", os.urandom(3 * HEAD_CHECK_BYTES))])
    error = refused_while_held(tmp_path, payload)
    assert error.message.startswith("refusing the archive: member 'cifar-100-python' is not a "
                                    "CIFAR-10 file (a directory), in http://"), error.message
    assert f"seen in its first {HEAD_CHECK_BYTES // 1024} KiB" in error.message
    assert "official cifar-10-python.tar.gz" in (error.hint or "")


def test_an_image_tree_archive_is_refused_early_with_the_image_tree_hint(
        tmp_path: Path) -> None:
    images = [(f"cifar10-jpeg/train/cat/{i:04d}.jpg", b"\xff\xd8" + os.urandom(3000))
              for i in range(300)]
    payload = tar_gz([("cifar10-jpeg", None), ("cifar10-jpeg/train", None),
                      ("cifar10-jpeg/train/cat", None), *images])
    error = refused_while_held(tmp_path, payload)
    assert error.message.startswith("refusing the archive: member 'cifar10-jpeg'"), error.message
    assert "holds an image tree" in (error.hint or ""), error.hint


def test_a_good_archive_larger_than_the_head_still_downloads_and_extracts(
        tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / ARCHIVE_NAME, n_train=150, n_test=50,
                                         seed=14)
    payload = archive.read_bytes()
    assert len(payload) > 2 * HEAD_CHECK_BYTES
    server = HoldingServer(payload, first=len(payload))
    server.released.set()
    try:
        fetch_cifar10(FetchConfig(data_dir=tmp_path / "data", source=server.url,
                                  progress=False, timeout_s=10,
                                  sha256=hashlib.sha256(payload).hexdigest()))
    finally:
        server.close()
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()
