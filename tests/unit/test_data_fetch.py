"""fetch: local archives, a loopback HTTP server, checksums, offline errors, resume."""

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlbox.data import fetch as fetch_module
from dlbox.data.fetch import (
    ARCHIVE_NAME,
    CHECKSUMS_FILE,
    FetchConfig,
    data_checksum,
    fetch_cifar10,
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


class Server:
    """A loopback HTTP server for one payload; honours Range; can cut the body short."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut_after: int | None = None  # send only this many bytes of a full response
        self.ranges: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/" + ARCHIVE_NAME:
                    self.send_error(404, "Not Found")
                    return
                requested = self.headers.get("Range")
                outer.ranges.append(requested)
                start = int(requested.split("=")[1].split("-")[0]) if requested else 0
                body = outer.payload[start:]
                self.send_response(206 if requested else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None and not requested:
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{ARCHIVE_NAME}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture()
def server(archive: Path) -> Iterator[Server]:
    running = Server(archive.read_bytes())
    yield running
    running.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"


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
    server.cut_after = 1000
    with pytest.raises(DataError) as info:
        fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    assert "resume" in (info.value.hint or "")
    part = tmp_path / "d" / (ARCHIVE_NAME + ".part")
    assert part.is_file() and part.stat().st_size == 1000
    server.cut_after = None
    result = fetch_cifar10(config(tmp_path / "d", source=server.url, sha256=sha256_of(archive)))
    assert result.status == "fetched"
    assert server.ranges[-1] == "bytes=1000-"
    assert not part.exists()


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
    assert "dlbox data fetch --from /path/to/cifar-10-python.tar.gz" in hint
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
