"""`dlbox data fetch|check` end to end: exit codes, messages, files on disk."""

import errno
import hashlib
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlbox.cli import main
from dlbox.data import extract as extract_module
from dlbox.data.synthetic import (
    write_fake_cifar10,
    write_fake_cifar10_archive,
    write_fake_image_folder,
)
from dlbox.training.config import build_config
from dlbox.training.loop import TrainingStopped, resume, train


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = write_fake_cifar10_archive(tmp_path_factory.mktemp("arc") / "cifar-10-python.tar.gz",
                                      n_train=50, n_test=10)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def dlbox_command() -> list[str]:
    script = Path(sys.executable).parent / "dlbox"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dlbox"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*dlbox_command(), *args], capture_output=True, text=True,
                          env=full_env, timeout=120, check=False)


def test_fetch_check_flow(tmp_path: Path, archive: tuple[Path, str],
                          capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    data = str(tmp_path / "data")
    assert main(["data", "fetch", "--data", data, "--from", str(path), "--sha256", digest]) == 0
    out = capsys.readouterr().out
    assert "fetched CIFAR-10" in out and digest in out
    assert main(["data", "fetch", "--data", data, "--from", str(path), "--sha256", digest]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["data", "check", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "train     50 images" in out and out.rstrip().endswith("ok") and digest in out
    assert main(["data", "check", "--data", data, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["archive_sha256"] == digest
    assert report["splits"]["train"]["count"] == 50 and report["splits"]["test"]["count"] == 10
    train = report["splits"]["train"]
    assert train["label_min"] >= 0 and train["label_max"] <= 9 and sum(train["per_class"]) == 50
    assert any("full CIFAR-10" in note for note in report["notes"])


def test_no_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 2
    assert "fetch" in capsys.readouterr().err


def test_checksum_mismatch_exit_code(tmp_path: Path, archive: tuple[Path, str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = archive
    code = main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", str(path)])
    err = capsys.readouterr().err
    assert code == 1 and "error: checksum mismatch" in err and "hint:" in err
    assert not (tmp_path / "d").exists()


def test_bad_sha256_is_usage_error(tmp_path: Path, archive: tuple[Path, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", str(archive[0]),
                 "--sha256", "xyz"])
    assert code == 2 and "--sha256" in capsys.readouterr().err


def test_offline_fetch_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    assert main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    error_lines = [line for line in err if line.startswith("error:")]
    assert len(error_lines) == 1 and url in error_lines[0]
    assert any(line.startswith("hint:") and "--from /path/to/cifar-10-python.tar.gz" in line
               for line in err)


def test_check_empty_dir_fails_with_hint(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    assert "dlbox data fetch" in capsys.readouterr().err


def test_check_finds_corrupt_and_missing_batches(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=20, n_test=10)
    (directory / "data_batch_2").write_bytes(b"\x80\x02garbage")
    (directory / "test_batch").unlink()
    assert main(["data", "check", "--data", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    failed = {f["name"] for f in report["files"] if not f["ok"]}
    assert failed == {"data_batch_2", "test_batch"} and len(report["problems"]) == 2
    assert "2 problem(s)" in captured.err


def test_check_detects_file_changed_since_fetch(tmp_path: Path, archive: tuple[Path, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    data = tmp_path / "data"
    fetch = ["data", "fetch", "--data", str(data), "--from", str(path), "--sha256", digest]
    assert main(fetch) == 0
    batch = data / "cifar-10-batches-py" / "data_batch_1"
    write_fake_cifar10(tmp_path / "other", n_train=20, n_test=5, seed=5)  # valid, but different
    batch.write_bytes((tmp_path / "other" / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    capsys.readouterr()
    assert main(["data", "check", "--data", str(data)]) == 1
    assert "data_batch_1 differs" in capsys.readouterr().out


def test_check_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_image_folder(tmp_path / "tree" / "train", per_class=2, classes=3, fmt="jpg")
    write_fake_image_folder(tmp_path / "tree" / "test", per_class=1, classes=3, fmt="png")
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    assert "image folder" in capsys.readouterr().out


def test_check_names_each_class_with_its_counts(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Review: data check printed only "4 classes, 0..5 per class": a stray folder taken for
    a class (an empty one, a NAS's @eaDir) showed as a number; docs/data.md says it counts
    images per class."""
    write_fake_image_folder(tmp_path / "train", per_class=2, classes=3)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=3)
    (tmp_path / "train" / "@eaDir").mkdir()
    (tmp_path / "test" / "@eaDir").mkdir()
    main(["data", "check", "--data", str(tmp_path)])
    out = capsys.readouterr().out
    assert ("classes   (train/test images) @eaDir 0/0, class_0 2/1, class_1 2/1, class_2 2/1"
            in out), out


def test_subprocess_fetch_and_check_with_env(tmp_path: Path, archive: tuple[Path, str]) -> None:
    path, digest = archive
    env = {"DLBOX_DATA": str(tmp_path / "envdata")}
    fetched = run_cli("data", "fetch", "--from", str(path), "--sha256", digest, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert str(tmp_path / "envdata") in fetched.stdout
    checked = run_cli("data", "check", env=env)
    assert checked.returncode == 0 and checked.stdout.rstrip().endswith("ok")
    bad = run_cli("data", "fetch", "--data", str(tmp_path / "x"), "--from",
                  str(tmp_path / "missing.tar.gz"))
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not found" in errors[0] and "hint:" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_check_a_batch_that_names_a_module_fails_cleanly(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=20, n_test=10)
    (directory / "data_batch_3").write_bytes(b"cnosuchmod\nX\n.")
    (directory / "test_batch").write_bytes(
        pickle.dumps({b"data": b"", b"labels": ["cat"]}, protocol=2))
    assert main(["data", "check", "--data", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    failed = {f["name"]: f["detail"] for f in report["files"] if not f["ok"]}
    assert set(failed) == {"data_batch_3", "test_batch"}
    assert "nosuchmod.X" in failed["data_batch_3"]
    assert "is not a CIFAR-10 batch" in failed["test_batch"]
    assert "Traceback" not in captured.err and "dlbox data fetch --force" in captured.err


def test_check_image_folder_with_a_broken_image_hints_at_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_image_folder(tmp_path / "tree" / "train", per_class=2, classes=3, fmt="png")
    write_fake_image_folder(tmp_path / "tree" / "test", per_class=1, classes=3, fmt="png")
    (tmp_path / "tree" / "test" / "class_1" / "broken.png").write_bytes(b"not an image")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    hints = [line for line in err if line.startswith("hint:")]
    assert len(errors) == 1 and "broken.png" in errors[0]
    assert len(hints) == 1 and "convert it to PNG or JPEG" in hints[0] and "remove" in hints[0]
    assert "fetch --force" not in hints[0]


def test_check_image_folder_missing_a_split_hints_at_adding_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_image_folder(tmp_path / "tree" / "train", per_class=2, classes=3, fmt="png")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    hints = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and "add the test split" in hints[0]
    assert "fetch --force" not in hints[0]


# ---- foreseeable failures end as one error line and a hint, never "unexpected" ----------------

def error_lines(err: str) -> tuple[list[str], list[str]]:
    lines = err.strip().splitlines()
    return ([line for line in lines if line.startswith("error:")],
            [line for line in lines if line.startswith("hint:")])


def assert_clean_error(err: str, *needles: str) -> str:
    errors, hints = error_lines(err)
    assert len(errors) == 1 and len(hints) == 1, err
    assert "unexpected" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return hints[0]


def denied(path: object) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


@pytest.mark.parametrize("force", [False, True])
def test_fetch_into_a_read_only_data_dir(tmp_path: Path, archive: tuple[Path, str], force: bool,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    data = tmp_path / "ro"
    data.mkdir()
    fetch = ["data", "fetch", "--data", str(data), "--from", str(path), "--sha256", digest]
    if force:
        assert main(fetch) == 0
        fetch.append("--force")
    capsys.readouterr()

    def mkdtemp(*args: object, **kwargs: object) -> str:  # as for a folder root can't bypass
        raise denied(Path(str(kwargs.get("dir"))) / ".cifar-10-batches-py.x.tmp")
    monkeypatch.setattr(extract_module.tempfile, "mkdtemp", mkdtemp)
    assert main(fetch) == 1
    hint = assert_clean_error(capsys.readouterr().err,
                              f"the data dir {data} is not writable (Permission denied)")
    assert "--data" in hint and "DLBOX_DATA" in hint
    monkeypatch.undo()
    assert [p.name for p in data.iterdir()] == (["cifar-10-batches-py"] if force else [])


def test_force_over_an_undeletable_old_folder_warns_and_succeeds(
        tmp_path: Path, archive: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    data = tmp_path / "data"
    fetch = ["data", "fetch", "--data", str(data), "--from", str(path), "--sha256", digest]
    assert main(fetch) == 0
    capsys.readouterr()
    real_rmtree = shutil.rmtree

    def rmtree(target: object, *args: object, **kwargs: object) -> None:
        if ".old." in str(target):  # e.g. the old copy holds another user's files
            raise denied(Path(str(target)) / "batches.meta")
        real_rmtree(target, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(extract_module.shutil, "rmtree", rmtree)
    assert main([*fetch, "--force"]) == 0
    captured = capsys.readouterr()
    leftover = [p for p in data.iterdir() if p.name.startswith(".cifar-10-batches-py.old.")]
    assert len(leftover) == 1
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(leftover[0]) in warnings[0] and "by hand" in warnings[0]
    assert "error:" not in captured.err and "fetched CIFAR-10" in captured.out
    monkeypatch.undo()
    assert main(["data", "check", "--data", str(data)]) == 0


@pytest.mark.parametrize("content", [
    '{"x":\n',  # cut short
    '{"x": 1}\n',  # valid JSON, wrong shape
    "[]\n",
])
def test_check_reports_a_damaged_checksum_record(tmp_path: Path, archive: tuple[Path, str],
                                                 content: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    data = tmp_path / "f6"
    assert main(["data", "fetch", "--data", str(data), "--from", str(path),
                 "--sha256", digest]) == 0
    record = data / "cifar-10-batches-py" / "dlbox-checksums.json"
    record.write_text(content)
    capsys.readouterr()
    assert main(["data", "check", "--data", str(data)]) == 1
    captured = capsys.readouterr()
    hint = assert_clean_error(captured.err, f"{record} is damaged")
    assert "dlbox data fetch --force" in hint
    assert "no archive checksum recorded" not in captured.out
    assert not captured.out.rstrip().endswith("ok")
    assert main(["data", "check", "--data", str(data), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["archive_sha256"] is None
    assert any("is damaged" in problem for problem in report["problems"])


def test_check_record_missing_a_file_entry_is_a_problem(tmp_path: Path,
                                                        archive: tuple[Path, str],
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    path, digest = archive
    data = tmp_path / "data"
    assert main(["data", "fetch", "--data", str(data), "--from", str(path),
                 "--sha256", digest]) == 0
    record_path = data / "cifar-10-batches-py" / "dlbox-checksums.json"
    record = json.loads(record_path.read_text())
    del record["files"]["data_batch_1"]  # its check would silently stop
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["data", "check", "--data", str(data)]) == 1
    assert_clean_error(capsys.readouterr().err, "no checksum for data_batch_1")


@pytest.mark.parametrize("url", ["http://[::1", "http://example.org:port/x.tar.gz",
                                 "gopher://example.org/x.tar.gz"])
def test_fetch_from_a_malformed_url_is_a_usage_error(tmp_path: Path, url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", url]) == 2
    captured = capsys.readouterr()
    hint = assert_clean_error(captured.err, f"--from {url!r} is not a valid URL")
    assert "--from" in hint and "fetching" not in captured.err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("how", ["--data", "DLBOX_DATA"])
def test_data_dir_that_is_a_file(tmp_path: Path, archive: tuple[Path, str], how: str,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path, digest = archive
    afile = tmp_path / "afile"
    afile.write_text("x")
    where = ["--data", str(afile)] if how == "--data" else []
    if how == "DLBOX_DATA":
        monkeypatch.setenv("DLBOX_DATA", str(afile))
    assert main(["data", "fetch", *where, "--from", str(path), "--sha256", digest]) == 1
    hint = assert_clean_error(capsys.readouterr().err,
                              f"the data dir {afile} is a file, not a folder")
    assert "--data" in hint and "DLBOX_DATA" in hint and "folder" in hint
    assert main(["data", "check", *where]) == 1
    captured = capsys.readouterr()
    assert_clean_error(captured.err, f"the data dir {afile} is a file, not a folder")
    # --json printed nothing at all here (a missing data dir had its JSON)
    assert main(["data", "check", *where, "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert not report["ok"] and report["problems"] == [
        f"the data dir {afile} is a file, not a folder"]
    assert_clean_error(captured.err, f"the data dir {afile} is a file, not a folder")
    # train and evaluate said "no CIFAR-10 data found" with the hint to fetch, which refuses
    assert main(["train", *where, "--model", "tiny", "--device", "cpu",
                 "--run-dir", str(tmp_path / "run")]) == 1
    hint = assert_clean_error(capsys.readouterr().err,
                              f"the data dir {afile} is a file, not a folder")
    assert "fetch --from" not in hint and not (tmp_path / "run").exists()
    assert afile.read_text() == "x"


def test_subprocess_malformed_url_and_file_data_dir(tmp_path: Path) -> None:
    bad_url = run_cli("data", "fetch", "--data", str(tmp_path / "d"), "--from", "http://[::1")
    assert bad_url.returncode == 2, bad_url.stderr
    assert_clean_error(bad_url.stderr, "not a valid URL")
    (tmp_path / "afile").write_text("x")
    as_file = run_cli("data", "fetch", "--from", "http://example.invalid/x.tar.gz",
                      env={"DLBOX_DATA": str(tmp_path / "afile")})
    assert as_file.returncode == 1, as_file.stderr
    assert_clean_error(as_file.stderr, "is a file, not a folder")


@pytest.mark.parametrize(("option", "value"), [("--sha256", ""), ("--from", "")])
def test_an_empty_sha256_or_from_is_a_usage_error(tmp_path: Path, archive: tuple[Path, str],
                                                  option: str, value: str) -> None:
    """As the shell passes `--sha256 "$(sha256sum missing.tar.gz | cut ...)"` or
    `--from "$UNSET"`: exit 2 before anything is fetched, not the md5 / official URL."""
    path, digest = archive
    args = {"--from": str(path), "--sha256": digest, option: value}
    result = run_cli("data", "fetch", "--data", str(tmp_path / "d"),
                     *[item for pair in args.items() for item in pair])
    assert result.returncode == 2, result.stderr
    assert f"error: {option} '' is empty" in result.stderr and "hint:" in result.stderr
    assert "fetching" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_check_notes_the_files_an_image_tree_passes_over(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    (tmp_path / "train" / "class_0" / "cat.heic").write_bytes(b"x")
    (tmp_path / "train" / "class_1" / "more").mkdir()
    # .webp was passed over too, though read_image reads it and `dlbox predict DIR` finds it
    Image.new("RGB", (40, 40)).save(tmp_path / "train" / "class_0" / "cat.webp", format="WEBP")
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("note: train: skipped 1 file without an image extension (class_0/cat.heic); only "
            "train/<class>/<image> ending in .png, .jpg, .jpeg, .jfif, .jpe, .gif, .bmp, .webp, "
            ".tif, .tiff, .ppm, .pgm, .pbm, .pnm is read") in out
    assert "note: train: skipped 1 folder inside a class folder (class_1/more/)" in out
    assert "train     5 images" in out and "cat.webp" not in out
    assert "test: skipped" not in out and out.rstrip().endswith("ok")


def test_check_notes_the_passed_over_files_beside_an_unreadable_image_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: one unreadable image in a split dropped its `note: ... skipped`
    lines (and --json's notes); and a split folder that is not there was said to hold no
    class folders."""
    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    (tmp_path / "train" / "class_0" / "notes.txt").write_text("mine")
    (tmp_path / "train" / "class_1" / "zz_text.jpg").write_text("not a JPEG")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "note: train: skipped 1 file without an image extension (class_0/notes.txt)" in said
    assert "zz_text.jpg" in said
    assert f"{tmp_path / 'test'} is missing" in said
    # a split folder without class folders: said so, with where its images go (review)
    (tmp_path / "train" / "class_1" / "zz_text.jpg").unlink()
    (tmp_path / "test").mkdir()
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    said = "".join(capsys.readouterr())
    assert f"{tmp_path / 'test'} holds no class folders" in said
    assert f"hint: add the test split as {tmp_path}/test/<class>/<image>" in said


def test_check_a_tree_without_splits(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_image_folder(tmp_path / "pets", per_class=1, classes=2)
    assert main(["data", "check", "--data", str(tmp_path / "pets")]) == 1
    captured = capsys.readouterr()
    assert "no train/ or test/ split folder" in captured.out
    assert "error: no CIFAR-10 data found" in captured.err and "split folder" in captured.err
    assert f"hint: an image tree needs one folder per split: move the class folders into " \
           f"{tmp_path / 'pets' / 'train'}/" in captured.err


def test_check_a_meta_file_naming_no_classes_reports_it_without_crashing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """batches.meta with an empty label_names once crashed the report (min() of nothing,
    exit 70); it is a problem like any other, exit 1."""
    directory = write_fake_cifar10(tmp_path, n_train=20, n_test=10)
    (directory / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "unexpected" not in captured.err
    assert "error: data check found 7 problem(s)" in captured.err
    assert "problem: batches.meta names 0 classes, expected 10" in captured.out
    assert "problem: test_batch has labels, but batches.meta names no classes" in captured.out
    assert "train     20 images, 0 classes, labels 0..9, no class to count them in" in captured.out


def test_check_notes_an_image_tree_that_the_batches_shadow(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dlbox data fetch --data MYTREE` by mistake: from then on the batches are read, not the
    user's images; `data check` says so instead of staying silent."""
    write_fake_image_folder(tmp_path / "train", per_class=1, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (f"note: the image tree in {tmp_path} is not read: the CIFAR-10 batches in "
            f"{tmp_path / 'cifar-10-batches-py'} come first") in out
    assert "layout    CIFAR-10 batches" in out
    # ... and training and evaluating, which read the batches, say it too (review: silent)
    run = tmp_path / "run"
    assert main(["train", "--model", "tiny", "--epochs", "1", "--device", "cpu", "--data",
                 str(tmp_path), "--run-dir", str(run), "--no-progress", "--no-evaluate"]) == 0
    note = (f"note: the image tree in {tmp_path} is not read: the CIFAR-10 batches in "
            f"{tmp_path / 'cifar-10-batches-py'} come first (move that folder out to read the "
            "tree)")
    assert note in capsys.readouterr().err.splitlines()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    assert note in capsys.readouterr().err.splitlines()
    stopped = tmp_path / "stopped"  # a resume reads the data too
    with pytest.raises(TrainingStopped):
        train(build_config("tiny", device="cpu", epochs=3, data_dir=str(tmp_path),
                           run_dir=str(stopped)), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2)
    capsys.readouterr()
    resume(stopped, progress=False, evaluate_at_end=False)
    assert note in capsys.readouterr().err.splitlines()


def test_help_names_every_source_form_and_both_layouts() -> None:
    fetch_help = " ".join(run_cli("data", "fetch", "--help").stdout.split())
    assert "file:// URL" in fetch_help and "ftp://" in fetch_help
    assert "https://USER:PASSWORD@host/" in fetch_help
    check_help = " ".join(run_cli("data", "check", "--help").stdout.split())
    assert "CIFAR-10 batches or an image tree" in check_help


def test_check_notes_an_old_copy_a_forced_fetch_left(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one-time `warning:` of `fetch --force` scrolls away; `data check` keeps saying
    that the undeletable old copy (up to 180 MB) is still there."""
    write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    old_copy = tmp_path / ".cifar-10-batches-py.old.k2j4"
    old_copy.mkdir()
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    assert (f"note: {old_copy} is an old copy that a `dlbox data fetch --force` could not "
            "delete; delete it by hand") in capsys.readouterr().out


def test_check_lists_every_unreadable_image_not_only_the_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three bad files: all three are problems (one per line), so one `data check` run finds
    them all instead of one per run; past MAX_LISTED_FAILURES the rest is counted."""
    from dlbox.data import loading

    write_fake_image_folder(tmp_path / "train", per_class=3, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    bad = [tmp_path / "train" / "class_0" / "0001.png", tmp_path / "train" / "class_1" / "0002.png",
           tmp_path / "test" / "class_1" / "0000.png"]
    for path in bad:
        path.write_bytes(b"not an image")
    assert main(["data", "check", "--data", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [p.split(":")[0] for p in report["problems"]] == [f"image {p}" for p in bad]
    train = next(f for f in report["files"] if f["name"] == "train/")
    assert not train["ok"] and train["detail"].startswith("2 of 6 images unreadable, first: ")
    monkeypatch.setattr(loading, "MAX_LISTED_FAILURES", 1)
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"problem: image {bad[0]}: " in out and f"image {bad[1]}" not in out
    assert f"problem: ... and 1 more unreadable image(s) in {tmp_path / 'train'}" in out


def test_an_empty_data_path_is_the_same_usage_error_in_every_command(
        tmp_path: Path, archive: tuple[Path, str]) -> None:
    """Found by reading: `dlbox data fetch --data "$DIR"` with DIR unset fetched into the
    default data dir (and `data check` checked it), where train and evaluate refuse it."""
    path, digest = archive
    env = {"DLBOX_DATA": str(tmp_path / "env-data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    results = [run_cli(*argv, env=env) for argv in (
        ["data", "fetch", "--data", "", "--from", str(path), "--sha256", digest],
        ["data", "check", "--data", " "],
        ["train", "--data", ""],
        ["evaluate", str(tmp_path / "run"), "--data", ""],
    )]
    for result in results:
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr == results[0].stderr  # one message, whichever command
    hint = assert_clean_error(results[0].stderr, "--data was given an empty path")
    assert "leave the flag out" in hint
    assert not (tmp_path / "env-data").exists() and not (tmp_path / "cache").exists()


def test_an_empty_dlbox_data_variable_counts_as_unset(tmp_path: Path,
                                                      archive: tuple[Path, str]) -> None:
    """Unlike an empty --data: `DLBOX_DATA= dlbox ...` is how a shell clears a variable."""
    path, digest = archive
    env = {"DLBOX_DATA": "", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    fetched = run_cli("data", "fetch", "--from", str(path), "--sha256", digest, env=env)
    assert fetched.returncode == 0, fetched.stderr
    default = tmp_path / "cache" / "dlbox" / "data" / "cifar-10-batches-py"
    assert f"fetched CIFAR-10 into {default}" in fetched.stdout
    checked = run_cli("data", "check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- found by review: an image tree's permissions, and a split with no images ---------------

def test_check_an_empty_split_hints_where_the_images_go(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hint was "replace each image file named above" when no image was named: a split
    whose class folders hold no image says where they go and which extensions are read."""
    write_fake_image_folder(tmp_path / "train", per_class=1, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    for image in (tmp_path / "train").glob("*/*.png"):
        image.rename(image.with_suffix(".heic"))
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    hint = assert_clean_error(captured.err, f"image folder {tmp_path / 'train'} holds no images")
    assert "replace" not in hint and "named above" not in hint
    assert f"{tmp_path / 'train'}/<class>/<image>" in hint
    assert ".png, .jpg, .jpeg, .jfif, .jpe, .gif, .bmp, .webp, .tif, .tiff" in hint
    assert "2 files without an image extension (class_0/0000.heic, class_1/0000.heic)" in hint
    assert hint.endswith(f"then run `dlbox data check --data {tmp_path}` again")


def run_refused(prefix: list[str], *args: str, chmod: dict[Path, int]
                ) -> subprocess.CompletedProcess[str]:
    """The CLI, run with `chmod` applied (path: mode) and undone afterwards."""
    modes = {path: path.stat().st_mode & 0o7777 for path in chmod}
    for path, mode in chmod.items():
        path.chmod(mode)
    try:
        return subprocess.run([*prefix, *dlbox_command(), *args], capture_output=True,
                              text=True, timeout=300, check=False)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def image_tree(root: Path) -> Path:
    write_fake_image_folder(root / "train", per_class=2, classes=2)
    write_fake_image_folder(root / "test", per_class=1, classes=2)
    return root


@pytest.mark.parametrize("mode", [0o000, 0o644], ids=["no-read", "read-without-search"])
@pytest.mark.parametrize("command", ["data check", "train"])
def test_a_class_folder_that_may_not_be_read_is_a_clear_error(
        tmp_path: Path, refused_prefix: list[str], mode: int, command: str) -> None:
    """Found by review: a class folder without read or search permission was the generic
    "cannot use ...: Permission denied" with "please report it", in `data check` and in
    training alike. It is one error naming the folder and a hint to fix its permissions."""
    data = image_tree(tmp_path / "data")
    folder = data / "train" / "class_1"
    argv = {"data check": ["data", "check", "--data", str(data)],
            "train": ["train", "--data", str(data), "--model", "tiny", "--epochs", "1",
                      "--device", "cpu", "--no-progress", "--run-dir", str(tmp_path / "run")]}
    result = run_refused(refused_prefix, *argv[command], chmod={folder: mode})
    assert result.returncode == 1, result.stderr
    message = f"cannot read the class folder {folder}: permission denied"
    hint = assert_clean_error(result.stderr, message)
    assert "please report" not in result.stderr and "DLBOX_DEBUG" not in result.stderr
    assert f"`chmod u+rx {folder}`" in hint and f"`ls -ld {folder}`" in hint
    assert "chown" in hint and "replace" not in hint
    if command == "data check":
        assert f"problem: {message}" in result.stdout
    else:
        assert not (tmp_path / "run").exists()


def test_check_hints_at_permissions_for_images_that_may_not_be_read(
        tmp_path: Path, refused_prefix: list[str]) -> None:
    """Found by review: an image refused for its permissions got the hint "replace the file".
    One such image: `chmod u+r` it; several: the whole split; beside damaged ones: both."""
    data = image_tree(tmp_path / "data")
    first, second = data / "train" / "class_0" / "0000.png", data / "train" / "class_1" / "0001.png"
    check = ["data", "check", "--data", str(data)]

    one = run_refused(refused_prefix, *check, chmod={first: 0})
    assert one.returncode == 1, one.stderr
    hint = assert_clean_error(one.stderr, f"image {first}: permission denied")
    assert f"`chmod u+r {first}`" in hint and f"`ls -l {first}`" in hint
    assert "replace" not in hint
    assert hint.endswith(f"then run `dlbox data check --data {data}` again")

    both = run_refused(refused_prefix, *check, chmod={first: 0, second: 0})
    assert both.returncode == 1, both.stderr
    hint = assert_clean_error(both.stderr, "data check found 2 problem(s)")
    assert f"`chmod -R u+rX {data / 'train'}`" in hint and "replace" not in hint
    assert f"problem: image {second}: permission denied" in both.stdout

    second.write_bytes(b"damaged")
    mixed = run_refused(refused_prefix, *check, chmod={first: 0})
    assert mixed.returncode == 1, mixed.stderr
    hint = assert_clean_error(mixed.stderr, "data check found 2 problem(s)")
    assert f"`chmod -R u+rX {data / 'train'}`" in hint
    assert "replace each other image named above" in hint


@pytest.mark.parametrize("command", ["data check", "train"])
def test_a_data_dir_that_may_not_be_read_names_the_folder_and_the_fix(
        tmp_path: Path, refused_prefix: list[str], command: str) -> None:
    """Found by review: a --data folder without read or search permission ended in `cannot
    use DIR/cifar-10-batches-py: Permission denied`, a hint about disk space, and "please
    report it". It names the folder that keeps the data out of reach and its chmod."""
    data = tmp_path / "data"
    data.mkdir()
    argv = {"data check": ["data", "check", "--data", str(data)],
            "train": ["train", "--data", str(data), "--run-dir", str(tmp_path / "run"),
                      "--epochs", "1", "--no-progress"]}[command]
    result = run_refused(refused_prefix, *argv, chmod={data: 0})
    assert result.returncode == 1, result.stderr
    assert f"permission denied on the folder {data}\n" in result.stderr
    assert f"chmod u+rx {data}" in result.stderr
    assert "please report it" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["the run dir", "the folder above"])
def test_a_run_dir_that_may_not_be_written_names_the_folder_to_chmod(
        tmp_path: Path, refused_prefix: list[str], where: str) -> None:
    """Found by reading: `--run-dir X` that could not be made said only "pass a writable
    --run-dir"; the folder that refused (X itself, or the one above a new X) and its chmod
    are named now."""
    data = image_tree(tmp_path / "data")
    locked = tmp_path / "locked"
    locked.mkdir()
    run_dir = locked if where == "the run dir" else locked / "run"
    result = run_refused(refused_prefix, "train", "--data", str(data), "--model", "tiny",
                         "--epochs", "1", "--device", "cpu", "--no-progress",
                         "--run-dir", str(run_dir), chmod={locked: 0o555})
    assert result.returncode == 1, result.stderr
    verb = "cannot write in" if run_dir == locked else "cannot create"  # it is there, or not
    hint = assert_clean_error(result.stderr,
                              f"{verb} run directory {run_dir} (Permission denied)")
    assert hint == (f"hint: make {locked} writable for you (`chmod u+rwx {locked}`), or pass "
                    "another --run-dir")
    assert list(locked.iterdir()) == []


def test_check_an_image_too_large_hints_to_downscale_it_in_text_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An image over the pixel limit in a tree was told to "replace that file with a readable
    PNG or JPEG" (it is readable: it is too large), and `--json` carried no fix at all. The
    image's own fix (downscale it) is the hint now, in the error and in the split's entry."""
    from PIL import Image

    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    huge = tmp_path / "train" / "class_0" / "huge.png"
    Image.new("L", (8000, 8000)).save(huge)  # 64 megapixels, a few hundred KB
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    hint = assert_clean_error(capsys.readouterr().err, f"image {huge}: image claims 8000x8000")
    assert hint.startswith("hint: downscale it to a few megapixels first")
    assert "remove it from the image folder" in hint and "replace" not in hint
    assert main(["data", "check", "--data", str(tmp_path), "--json"]) == 1
    files = {f["name"]: f for f in json.loads(capsys.readouterr().out)["files"]}
    assert files["train/"]["hint"].startswith("downscale it to a few megapixels first")
    assert files["test/"]["ok"] and files["test/"]["hint"] is None


def test_train_on_a_data_dir_that_links_to_nothing_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train read the folder the link points to: "no CIFAR-10 data found in .../nowhere" with
    the hint to run `dlbox data fetch`, which refuses that link with its own hint."""
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "nowhere")
    assert main(["train", "--data", str(link), "--model", "tiny", "--device", "cpu",
                 "--run-dir", str(tmp_path / "run")]) == 1
    hint = assert_clean_error(capsys.readouterr().err,
                              f"the data dir {link} is a symbolic link to {tmp_path / 'nowhere'}")
    assert f"mkdir -p {tmp_path / 'nowhere'}" in hint and not (tmp_path / "run").exists()


def test_class_folders_that_differ_only_in_unicode_form_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: train/café (composed, NFC) beside test/café (decomposed, NFD, as a
    Mac writes it) trained as two classes that print alike: 0 % for café, `data check`
    said ok. Refused, with the rename that makes them one."""
    import unicodedata

    composed, decomposed = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=2, classes=2)
    (tmp_path / "train" / "class_0").rename(tmp_path / "train" / composed)
    (tmp_path / "test" / "class_0").rename(tmp_path / "test" / decomposed)
    message = (f"class folders train/{composed} and test/{decomposed} are one name written in "
               "two Unicode forms (composed and decomposed, as macOS writes names): dlbox "
               "would read two classes that print alike")
    hint = (f"rename the tree's names to one form: convmv -r -f utf8 -t utf8 --nfc --notest "
            f"{tmp_path} (Debian: apt-get install convmv)")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    assert f"problem: {message}" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path), "--model", "tiny", "--device", "cpu",
                 "--run-dir", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {message}", f"hint: {hint}"]
    assert not (tmp_path / "run").exists()
    (tmp_path / "test" / decomposed).rename(tmp_path / "test" / composed)  # as convmv does
    assert main(["data", "check", "--data", str(tmp_path)]) == 0


def test_check_notes_class_folders_that_differ_only_in_case(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: train/Cat beside test/cat passed data check ("ok"): two classes to
    dlbox, each missing from the other split, so the model never meets its test class."""
    write_fake_image_folder(tmp_path / "train", per_class=1, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    (tmp_path / "train" / "class_0").rename(tmp_path / "train" / "Cat")
    (tmp_path / "test" / "class_0").rename(tmp_path / "test" / "cat")
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (f"note: class folders train/Cat and test/cat differ only in case: dlbox reads two "
            f"classes, each missing from the other split; rename one: mv "
            f"{tmp_path / 'test' / 'cat'} {tmp_path / 'test' / 'Cat'}") in out
    (tmp_path / "test" / "cat").rename(tmp_path / "test" / "Cat")  # as it says
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    assert "differ only in case" not in capsys.readouterr().out


def test_fetch_without_a_terminal_prints_download_progress_as_plain_lines(
        tmp_path: Path, archive: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: with stderr not a terminal (CI, `| tee`, `docker logs`) a download
    printed nothing between "fetching ..." and its end. It now prints plain lines (no bar, no
    escape codes), the last one at 100 %."""
    from conftest import ArchiveServer

    path, digest = archive
    server = ArchiveServer(path.read_bytes())
    try:
        assert main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", server.url,
                     "--sha256", digest]) == 0
    finally:
        server.close()
    first, *lines, last = capsys.readouterr().err.splitlines()
    assert first == f"fetching CIFAR-10 from {server.url} into {tmp_path / 'd'}"
    size = f"{round(path.stat().st_size / 1e3)} kB"
    assert 1 <= len(lines) <= 10 and lines[-1] == f"downloading {size} of {size} (100 %)"
    assert all(line.startswith("downloading ") and line.endswith(" %)") for line in lines)
    # (a copy, not the official archive: its batches are read through, which takes seconds)
    assert last == ("checking the batches (not the official archive: its contents are read "
                    "through)")


def test_check_json_names_its_folders_as_evaluate_does(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `data check --json` gave data_dir and root as typed (relative) and a
    name that is not UTF-8 as lone surrogates ("\\udcff": jq turns them into U+FFFD), where
    `dlbox evaluate --json` gives them absolute and as $'...' (text.json_path)."""
    import os

    from dlbox.data.synthetic import write_fake_cifar10

    data = tmp_path / os.fsdecode(b"d\xffata")
    write_fake_cifar10(data, 20, 10)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "--data", os.fsdecode(b"d\xffata"), "--json"]) == 0
    out = capsys.readouterr().out
    assert "\\udc" not in out
    report = json.loads(out)
    assert report["data_dir"] == f"$'{tmp_path}/d\\xffata'"
    assert report["root"] == f"$'{tmp_path}/d\\xffata/cifar-10-batches-py'"
