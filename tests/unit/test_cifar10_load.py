import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbox.data import cifar10
from dlbox.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from dlbox.data.dataset import ImageDataset
from dlbox.data.synthetic import make_synthetic_images, write_fake_cifar10
from dlbox.errors import DataError


@pytest.mark.parametrize("str_keys", [False, True])
def test_load_both_key_encodings(tmp_path: Path, str_keys: bool) -> None:
    write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=3, str_keys=str_keys)
    train = load_cifar10(tmp_path, "train")
    test = load_cifar10(tmp_path, "test")
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.labels.shape == (20,) and test.labels.dtype == torch.int64
    assert train.classes == CIFAR10_CLASSES
    expected, labels = make_synthetic_images(20, seed=4)
    assert np.array_equal(test.images.numpy(), expected)
    assert np.array_equal(test.labels.numpy(), labels)


def test_missing_dir_is_a_data_error_with_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "nowhere")
    assert "dlbox data fetch" in (info.value.hint or "")


def test_corrupt_batch_is_a_data_error(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    (directory / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, "test")


# --- the decoded-tensor cache beside the batches ----------------------------------------------


def _same(a: ImageDataset, b: ImageDataset) -> bool:
    return (torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
            and a.classes == b.classes and a.source == b.source)


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    original = cifar10.read_batch

    def counting(path: Path) -> tuple[np.ndarray, np.ndarray]:
        decoded.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(cifar10, "read_batch", counting)
    return decoded


def test_the_second_load_reads_the_cache_not_the_batches(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cifar10.CACHE_ENV_VAR, raising=False)
    write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=3)
    decoded = _count_decodes(monkeypatch)
    first = load_cifar10(tmp_path, "train")
    assert len(decoded) == 5 and cifar10.cache_path(tmp_path, "train").is_file()
    again = load_cifar10(tmp_path, "train")
    assert len(decoded) == 5 and _same(first, again)  # no batch decoded the second time
    assert _same(again, load_cifar10(tmp_path, "train", cache=False))
    # the test split has its own cache
    load_cifar10(tmp_path, "test")
    assert decoded[-1] == "test_batch" and cifar10.cache_path(tmp_path, "test").is_file()


def test_a_changed_batch_file_or_a_damaged_cache_is_decoded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv(cifar10.CACHE_ENV_VAR, raising=False)
    directory = write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=3)
    load_cifar10(tmp_path, "test")
    decoded = _count_decodes(monkeypatch)
    # the batch rewritten with other images (a newer mtime): the cache no longer applies
    write_fake_cifar10(tmp_path / "other", n_train=10, n_test=20, seed=9)
    (directory / "test_batch").write_bytes((tmp_path / "other" / cifar10.BATCHES_DIRNAME
                                            / "test_batch").read_bytes())
    stat = (directory / "test_batch").stat()
    os.utime(directory / "test_batch", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = load_cifar10(tmp_path, "test")
    assert decoded == ["test_batch"]
    expected, _ = make_synthetic_images(20, seed=10)
    assert np.array_equal(changed.images.numpy(), expected)
    assert decoded == ["test_batch"] and _same(changed, load_cifar10(tmp_path, "test"))
    cifar10.cache_path(tmp_path, "test").write_bytes(b"half a file")
    assert _same(changed, load_cifar10(tmp_path, "test")) and len(decoded) == 2
    # replaced by a file of the same size and mtime (as `cp -p` or `rsync -a` copy one):
    # still noticed, by its inode and ctime
    import pickle

    path = directory / "test_batch"
    record = pickle.loads(path.read_bytes(), encoding="bytes")
    # the images in reverse order: the same bytes in another order, so the same size
    record[b"data"] = record[b"data"][::-1].copy()
    record[b"labels"] = record[b"labels"][::-1]
    before = path.stat()
    copy = tmp_path / "negative"
    with open(copy, "wb") as handle:
        pickle.dump(record, handle, protocol=2)
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert copy.stat().st_size == before.st_size
    os.replace(copy, path)
    negative = load_cifar10(tmp_path, "test")
    assert torch.equal(negative.images, changed.images.flip(0))
    assert len(decoded) == 3


def test_the_cache_can_be_turned_off_and_a_failed_write_costs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    monkeypatch.setenv(cifar10.CACHE_ENV_VAR, "0")
    load_cifar10(tmp_path, "test")
    assert not cifar10.cache_path(tmp_path, "test").exists()
    monkeypatch.delenv(cifar10.CACHE_ENV_VAR)

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Read-only file system")

    # a temp file left by a load killed mid-write is cleared once it is an hour old
    import os

    left = cifar10.cache_path(tmp_path, "test").parent / ".dlbox-cache-test.pt.x1.tmp"
    fresh = left.with_name(".dlbox-cache-test.pt.x2.tmp")
    left.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(left, (0, 0))
    load_cifar10(tmp_path, "test")
    assert not left.exists() and fresh.exists()
    assert cifar10.cache_path(tmp_path, "test").is_file()
    # ... and by a load that reads the cache, which writes none (review: one left after the
    # cache was in place stayed for good)
    os.utime(fresh, (0, 0))
    load_cifar10(tmp_path, "test")
    assert not fresh.exists()
    cifar10.cache_path(tmp_path, "test").unlink()

    monkeypatch.setattr(cifar10, "write_through_memory", read_only)
    assert load_cifar10(tmp_path, "test").images.shape == (10, 3, 32, 32)
    assert not cifar10.cache_path(tmp_path, "test").exists()


# --- untrusted batch files: a restricted Unpickler, every failure a DataError ------------------


def _write_record(path: Path, record: object, protocol: int = 2) -> None:
    import pickle

    path.write_bytes(pickle.dumps(record, protocol=protocol))


def test_a_batch_naming_an_unknown_module_is_a_data_error(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    (directory / "test_batch").write_bytes(b"cnosuchmod\nX\n.")
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, "test", cache=False)
    assert "test_batch" in info.value.message and "nosuchmod.X" in info.value.message
    assert "dlbox data fetch --force" in (info.value.hint or "")


def test_a_batch_that_would_run_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    for protocol in (0, 2, 4, 5):
        _write_record(directory / "test_batch",
                      {b"data": np.zeros((1, 3072), np.uint8), b"labels": [Payload()]}, protocol)
        with pytest.raises(DataError, match="test_batch is not a CIFAR-10 batch"):
            load_cifar10(tmp_path, "test", cache=False)
        assert not marker.exists()


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    labels = np.array([1, "two"], dtype=object)
    _write_record(directory / "test_batch",
                  {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
    with pytest.raises(DataError, match="object dtype"):
        load_cifar10(tmp_path, "test", cache=False)


@pytest.mark.parametrize(("labels", "data"), [
    (["cat"] * 2, np.zeros((2, 3072), np.uint8)),  # labels that are not numbers
    (None, np.zeros((2, 3072), np.uint8)),
    ([1, 2], {"not": "an array"}),
    ([[1], [2]], np.zeros((2, 3072), np.uint8)),  # labels of the wrong shape
])
def test_a_batch_of_wrong_types_is_a_data_error(tmp_path: Path, labels: object,
                                                data: object) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    _write_record(directory / "test_batch", {b"data": data, b"labels": labels})
    with pytest.raises(DataError, match="test_batch") as info:
        load_cifar10(tmp_path, "test", cache=False)
    assert "dlbox data fetch --force" in (info.value.hint or "")


def test_a_damaged_meta_file_is_a_data_error(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    _write_record(directory / "batches.meta", {b"num_vis": 3072})
    with pytest.raises(DataError, match="label_names"):
        load_cifar10(tmp_path, "test", cache=False)
    _write_record(directory / "batches.meta", {b"label_names": 7})
    with pytest.raises(DataError, match="batches.meta is not a CIFAR-10 batch"):
        load_cifar10(tmp_path, "test", cache=False)


def test_a_meta_file_naming_a_class_twice_is_a_data_error_and_a_data_check_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: batches.meta naming "cat" ten times passed `data check`, trained,
    and reported one class, "cat", at 0 %, with ten prob_cat columns in predictions.csv."""
    from dlbox.cli import main

    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    _write_record(directory / "batches.meta",
                  {b"label_names": [b"cat"] * 8 + [b"dog", b"dog"], b"num_vis": 3072})
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, "test", cache=False)
    assert info.value.message == (f"CIFAR-10 batch file {directory / 'batches.meta'} names "
                                  "the classes 'cat' and 'dog' more than once: each class needs a "
                                  "name of its own")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    assert "names the classes 'cat' and 'dog' more than once" in capsys.readouterr().out


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("encoding", ["bytes", "latin1"])
def test_re_pickled_batches_still_load(tmp_path: Path, protocol: int, encoding: str) -> None:
    """What Python 3 writes back (str or bytes keys, any protocol) passes the restrictions."""
    import pickle

    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10, seed=2)
    expected = load_cifar10(tmp_path, "test", cache=False)
    for name in ("test_batch", "batches.meta"):
        record = pickle.loads((directory / name).read_bytes(), encoding=encoding)
        _write_record(directory / name, record, protocol)
    again = load_cifar10(tmp_path, "test", cache=False)
    assert torch.equal(again.images, expected.images)
    assert torch.equal(again.labels, expected.labels) and again.classes == expected.classes


def test_the_official_batches_load_when_present() -> None:
    """The real files (numpy.core pickles of Python 2), where a machine has them."""
    real = Path("/tmp/cifar10")
    if not (real / "cifar-10-batches-py" / "test_batch").is_file():
        pytest.skip("no real CIFAR-10 batches at /tmp/cifar10")
    test = load_cifar10(real, "test", cache=False)
    assert test.images.shape == (10000, 3, 32, 32) and test.classes == CIFAR10_CLASSES
    assert int(test.labels.min()) == 0 and int(test.labels.max()) == 9


@pytest.mark.parametrize(("data", "labels", "why"), [
    (np.full((2, 3072), 0.5, np.float32), [1, 2], "float32"),  # pixels scaled to [0, 1]
    (np.full((2, 3072), 300, np.int64), [1, 2], "outside the pixel range"),
    (np.full((2, 3072), -1, np.int16), [1, 2], "outside the pixel range"),
    (np.zeros((2, 3072), np.uint8), [1.7, 2.0], "not integers"),
    (np.zeros((2, 3072), np.uint8), ["3", "4"], "not integers"),
    (np.zeros((2, 3072), np.uint8), [True, False], "not integers"),
])
def test_pixels_and_labels_are_never_silently_cast(tmp_path: Path, data: object, labels: object,
                                                   why: str) -> None:
    """A cast to uint8 / int64 would load float pixels as a black image, wrap 300 to 44 and
    round label 1.7 to 1; each is refused instead, naming the file."""
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    _write_record(directory / "test_batch", {b"data": data, b"labels": labels})
    with pytest.raises(DataError, match=why) as info:
        load_cifar10(tmp_path, "test", cache=False)
    assert "test_batch is not a CIFAR-10 batch" in info.value.message


def test_integer_pixels_in_range_and_empty_batches_still_load(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    pixels = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072) % 256
    _write_record(directory / "test_batch", {b"data": pixels, b"labels": np.array([3, 4])})
    test = load_cifar10(tmp_path, "test", cache=False)
    assert test.images.dtype == torch.uint8 and test.labels.tolist() == [3, 4]
    assert np.array_equal(test.images.numpy().reshape(2, -1), pixels)
    _write_record(directory / "test_batch", {b"data": np.zeros((0, 3072), np.uint8),
                                             b"labels": []})
    assert len(load_cifar10(tmp_path, "test", cache=False)) == 0


def test_protocol_2_empty_bytes_load_but_bytes_with_arguments_do_not(tmp_path: Path) -> None:
    """Protocol 2 writes b"" as a call to __builtin__.bytes(): a Python 3 re-pickle with an
    empty filename loads; bytes called with anything (a way to build data) is refused."""
    import pickle

    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    record = pickle.loads((directory / "test_batch").read_bytes(), encoding="bytes")
    record[b"filenames"][0] = b""
    _write_record(directory / "test_batch", record, protocol=2)
    assert b"__builtin__\nbytes" in (directory / "test_batch").read_bytes()
    assert len(load_cifar10(tmp_path, "test", cache=False)) == 10
    (directory / "test_batch").write_bytes(b"\x80\x02c__builtin__\nbytes\nK\x05\x85R.")
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 batch"):
        load_cifar10(tmp_path, "test", cache=False)


@pytest.mark.parametrize("n_train, n_test", [(1, 1), (3, 1), (4, 2)])
def test_fake_cifar_with_fewer_images_than_batches_loads(tmp_path: Path, n_train: int,
                                                         n_test: int) -> None:
    """Review: the notebook's NUM_TRAIN = 4 on made-up data failed with a reshape traceback
    (a training batch of 0 images could not be written)."""
    from dlbox.data.synthetic import write_fake_cifar10

    write_fake_cifar10(tmp_path, n_train=n_train, n_test=n_test)
    train = load_cifar10(tmp_path, "train", cache=False)
    assert len(train) == n_train and tuple(train.images.shape[1:]) == (3, 32, 32)
    assert len(load_cifar10(tmp_path, "test", cache=False)) == n_test


@pytest.mark.parametrize("name", ["d", "my data"])
def test_the_refetch_hint_names_the_data_dir_it_looked_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Review: the hint said `dlbox data check` "(with the same --data ...)": pasted as it was,
    it checked the default data dir. It now carries `--data DIR`, quoted for the shell."""
    import shlex

    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    data_dir = tmp_path / name
    directory = write_fake_cifar10(data_dir, n_train=10, n_test=10)
    (directory / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError) as info:
        load_cifar10(data_dir, "test")
    flag = f"--data {shlex.quote(str(data_dir))}"
    assert info.value.hint == (f"run `dlbox data check {flag}`, then `dlbox data fetch --force "
                               f"{flag}` (with the same --from) to extract it again")
    # the default data dir needs no --data
    monkeypatch.setenv("DLBOX_DATA", str(data_dir))
    with pytest.raises(DataError) as info:
        load_cifar10(data_dir, "test")
    assert info.value.hint == ("run `dlbox data check`, then `dlbox data fetch --force` (with "
                               "the same --from) to extract it again")


def _nested_in_itself(depth: int, leaf: object = 0) -> list[object]:
    """One list, each level holding the level below twice ("billion laughs"): a pickle of it
    is a few hundred bytes per level, what it stands for is 10 * 2**depth items."""
    nested: list[object] = [leaf] * 10
    for _ in range(depth):
        nested = [nested, nested]
    return nested


@contextlib.contextmanager
def _memory_capped(extra: int = 2**30) -> Iterator[None]:
    """Allow this process about `extra` more bytes of address space for the block: code that
    expands what it reads fails with a MemoryError there, in seconds, rather than taking the
    machine's memory (where /proc tells the current size; elsewhere no cap)."""
    import resource

    try:
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(hard, size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("depth", [2, 30])
@pytest.mark.parametrize(("field", "why"), [
    ("labels", "labels are a list of lists, not a flat list of integers"),
    ("data", "data is a list, not an array of pixels"),
    ("label_names", "label_names holds a list, not a class name"),
])
def test_a_list_nested_in_itself_is_refused_before_it_is_expanded(
        tmp_path: Path, field: str, why: str, depth: int) -> None:
    """Found by review: a 31 KB batch whose labels were one list nested 30 deep, each level
    the same list twice, passed the restricted unpickler, and np.asarray expanded it to
    10 * 2**30 labels: `data check` (and a --sha256 fetch, which runs its checks) grew to many
    GB. Each field is now checked for what it is (labels a flat list of integers or an
    integer array, data an array, class names str or bytes) before numpy or str() sees it:
    at depth 30 the refusal is as quick as at depth 2, and it comes before any expansion (a
    1 GiB cap on the address space, which 10 * 2**30 labels would need 80 GiB of)."""
    import pickle

    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    if field == "label_names":
        path = directory / "batches.meta"
        record: dict[bytes, object] = {b"label_names": _nested_in_itself(depth, b"cat")}
    else:
        path = directory / "test_batch"
        record = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
        record[field.encode()] = _nested_in_itself(depth)
    path.write_bytes(pickle.dumps(record, protocol=2))
    assert path.stat().st_size < 40_000
    with _memory_capped(), pytest.raises(DataError) as info:
        load_cifar10(tmp_path, "test", cache=False)
    assert info.value.message == f"{path} is not a CIFAR-10 batch: ValueError: {why}"
    assert "dlbox data fetch --force" in (info.value.hint or "")


@pytest.mark.parametrize("labels", [(3, 4), np.array([3, 4], np.int16)])
def test_labels_as_a_tuple_or_an_integer_array_still_load(tmp_path: Path,
                                                          labels: object) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    _write_record(directory / "test_batch", {b"data": np.zeros((2, 3072), np.uint8),
                                             b"labels": labels})
    assert load_cifar10(tmp_path, "test", cache=False).labels.tolist() == [3, 4]


def test_the_no_data_hint_asks_no_checksum_of_the_official_archive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the hint of every command finding no data asked for `--from ... --sha256 HEX`,
    which the official archive copied by hand does not need (and the placeholder pasted as
    it was is refused); data fetch's own offline hint said it right. One wording now."""
    from dlbox.data.fetch import offline_hint
    from dlbox.data.paths import fetch_from_copy

    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "default"))
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "empty", "train")
    hint = info.value.hint or ""
    offline = (f"dlbox data fetch --data {tmp_path / 'empty'} "
               "--from /path/to/cifar-10-python.tar.gz`")
    assert offline in hint
    assert "; add `--sha256 HEX` for a copy that is not byte-identical to the official one)" in hint
    assert offline in offline_hint(fetch_from_copy(f" --data {tmp_path / 'empty'}"))


def test_a_bad_archives_hint_asks_no_checksum_of_the_official_archive(tmp_path: Path) -> None:
    """Review: the refusal of a bad archive still said `--from ... --sha256 HEX` after the
    no-data hint stopped asking it of the official archive."""
    import io
    import tarfile

    from dlbox.data.extract import extract_cifar10_archive

    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("/etc/x")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    with pytest.raises(DataError) as info:
        extract_cifar10_archive(archive, tmp_path / "data")
    assert info.value.hint is not None
    assert ("`dlbox data fetch --from /path/to/cifar-10-python.tar.gz`; add `--sha256 HEX` for a "
            "copy that is not byte-identical to the official one") in info.value.hint
    assert not (tmp_path / "data").exists()
