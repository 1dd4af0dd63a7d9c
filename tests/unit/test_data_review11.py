"""Review 11 of `dlbox data fetch`'s hints: the command a hint gives repeats what the user
asked (--data, --force, --sha256) and names the URL that failed, so that pasting it does what
the failed command was meant to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import ArchiveServer, closed_port_url

from dlbox.data.fetch import ARCHIVE_NAME, FetchConfig, fetch_cifar10
from dlbox.data.synthetic import write_fake_cifar10_archive
from dlbox.errors import DataError


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar10_archive(tmp_path_factory.mktemp("arc") / ARCHIVE_NAME,
                                      n_train=60, n_test=20, seed=3)


def fetch(data_dir: Path, **kwargs: object) -> None:
    fetch_cifar10(FetchConfig(data_dir=data_dir, progress=False, timeout_s=10, **kwargs))  # type: ignore[arg-type]


def test_the_offline_hint_repeats_force_and_sha256_and_names_the_mirror(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `fetch --force --sha256 X` from an unreachable mirror hinted `--from FILE` with
    neither flag: pasted, it said "nothing to do" over the damaged data it was to replace;
    and it said to download the official URL, not the mirror that failed."""
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    data = tmp_path / "d11"
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    fetch(data, source=str(archive), sha256=sha)
    batch = data / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:100])  # damaged
    url = closed_port_url(f"mirror/{ARCHIVE_NAME}")
    with pytest.raises(DataError) as info:
        fetch(data, source=url, sha256=sha, force=True)
    hint = info.value.hint or ""
    assert f"download {url}," in hint, hint
    assert (f"`dlbox data fetch --data {data} --force --from /path/to/cifar-10-python.tar.gz "
            f"--sha256 {sha}`") in hint, hint
    assert "HEX" not in hint  # the checksum is known: no placeholder to fill in


def test_a_bad_archives_hint_keeps_the_data_dir(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `fetch --data d3 --from bad.tar.gz` hinted a bare `dlbox data fetch --from ...`,
    which fetched into the default data dir instead of d3."""
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "d3", source=str(bad))
    hint = info.value.hint or ""
    assert f"`dlbox data fetch --data {tmp_path / 'd3'} --from /path/to/" in hint, hint
    assert not (tmp_path / "d3").exists()


def test_a_404s_hint_asks_the_other_copy_for_its_own_checksum(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-review: after a 404 (no file at that URL) the hint sent the user to another mirror
    or copy with the --sha256 of the missing file, which refuses every other copy."""
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    server = ArchiveServer(archive.read_bytes())
    try:
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", source=f"{server.url.rsplit('/', 1)[0]}/gone.tar.gz",
                  sha256="a" * 64)
    finally:
        server.close()
    hint = info.value.hint or ""
    assert "another mirror" in hint and "a" * 64 not in hint, hint
    assert "add `--sha256 HEX` for a copy" in hint
