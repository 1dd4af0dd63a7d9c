import sys
from pathlib import Path

import pytest

from dlbox.data.paths import (
    DATA_ENV_VAR,
    check_data_dir_path,
    default_data_dir,
    resolve_data_dir,
)
from dlbox.errors import DataError, UsageError


def test_argument_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_env_used_without_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"


def test_default_is_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = resolve_data_dir(None)
    assert result == default_data_dir()
    assert result.parts[-2:] == ("dlbox", "data")
    if sys.platform.startswith("linux"):
        assert result == tmp_path / "cache" / "dlbox" / "data"


def test_tilde_expands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/d") == tmp_path / "d"


def test_data_dir_path_may_be_a_folder_or_not_exist_yet(tmp_path: Path) -> None:
    check_data_dir_path(tmp_path)
    check_data_dir_path(tmp_path / "new" / "deeper")
    check_data_dir_path("relative-and-missing")


def test_data_dir_path_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError) as info:
        check_data_dir_path(afile)
    assert info.value.message == f"the data dir {afile} is a file, not a folder"
    hint = info.value.hint or ""
    assert "--data" in hint and DATA_ENV_VAR in hint and "folder" in hint
    with pytest.raises(DataError) as under:
        check_data_dir_path(afile / "sub" / "deeper")
    assert under.value.message == (f"the data dir {afile / 'sub' / 'deeper'} lies under "
                                   f"{afile}, which is a file, not a folder")
    (tmp_path / "link").symlink_to(afile)
    with pytest.raises(DataError, match="is a file, not a folder"):
        check_data_dir_path(tmp_path / "link")


def test_data_dir_path_that_is_an_archive_hints_at_fetch(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"x")
    with pytest.raises(DataError) as info:
        check_data_dir_path(archive)
    assert f"dlbox data fetch --from {archive}" in (info.value.hint or "")


def test_data_dir_that_is_a_dangling_link_says_where_it_points(tmp_path: Path) -> None:
    """A symlink to a folder that is gone: `fetch` failed with a bare "cannot create the data
    dir LINK: File exists" and `check` said "no CIFAR-10 data"; now both name the link."""
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(DataError) as info:
        check_data_dir_path(link)
    assert info.value.message == (f"the data dir {link} is a symbolic link to "
                                  f"{tmp_path / 'gone'}, which does not exist")
    assert f"mkdir -p {tmp_path / 'gone'}" in (info.value.hint or "")
    with pytest.raises(DataError) as under:
        check_data_dir_path(link / "cifar")
    assert under.value.message.startswith(f"the data dir {link / 'cifar'} lies under {link}, "
                                          "which is a symbolic link to")
    (tmp_path / "gone").mkdir()
    check_data_dir_path(link)
    check_data_dir_path(link / "cifar")


@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_data_dir_argument_is_refused_not_the_default(
        empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only None means "not given" (TrainConfig(data_dir="") once trained on the default)."""
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(UsageError, match="empty path"):
        resolve_data_dir(empty)


def test_an_empty_env_var_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, "")
    assert resolve_data_dir(None) == default_data_dir()
