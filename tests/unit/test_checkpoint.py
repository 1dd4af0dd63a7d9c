"""Checkpoints: atomic writes, weights_only loads, RNG state, loading a model from a run."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlbox.errors import FileWriteError, RunDirError
from dlbox.fileio import write_json_atomic
from dlbox.models import create_model
from dlbox.training import checkpoint as checkpoint_module
from dlbox.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_from_run,
    restore_rng_state,
    save_checkpoint,
)
from dlbox.training.config import TrainConfig


def test_roundtrip_with_weights_only(tmp_path: Path) -> None:
    model = create_model("tiny")
    state = {"model": model.state_dict(), "epoch": 3, "history": [{"loss": 1.5}],
             "rng": capture_rng_state(torch.Generator())}
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == [{"loss": 1.5}]
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded["model"][key], tensor)
    # The file itself loads with plain torch.load(weights_only=True).
    assert torch.load(path, weights_only=True)["epoch"] == 3


def disk_full_after(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Files dlbox writes atomically take `size` bytes, then fail as a full disk does."""
    from dlbox import fileio

    real_fdopen = fileio.os.fdopen

    class FillingUp:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def write(self, data: Any) -> int:
            self.handle.write(bytes(data)[:size])
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> FillingUp:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    monkeypatch.setattr(fileio.os, "fdopen",
                        lambda *args, **kwargs: FillingUp(real_fdopen(*args, **kwargs)))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    disk_full_after(monkeypatch, 100)  # half-written, then the disk is full
    with pytest.raises(FileWriteError, match="cannot write .*last.pt: No space left"):
        save_checkpoint(path, {"epoch": 2, "pad": torch.zeros(1000)})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this ran code",))


def test_code_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(RunDirError, match="cannot be loaded safely"):
        load_checkpoint(path)


def test_damaged_and_missing_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirError):
        load_checkpoint(bad)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(RunDirError):
        load_checkpoint(plain)


def _cut(data: bytes) -> bytes:
    return data[:5000]


@pytest.mark.parametrize("make, reason", [
    # Found by hand: a text file in place of last.pt ended in `unexpected KeyError: 101`
    # (exit 70), and a cut-short one said only `EOFError` or `[Errno 22] Invalid argument`.
    (lambda good: b"hello\n", "not a PyTorch checkpoint file: it is neither the zip archive "
                              "torch.save writes nor a pickle"),
    # It said "it holds something other than tensors and plain values: Unsupported operand
    # 103", as if it were a checkpoint with code in it.
    (lambda good: b"garbage text\n", "not a PyTorch checkpoint file: it is neither the zip "
                                     "archive torch.save writes nor a pickle"),
    (lambda good: b"", "the file is empty"),
    (_cut, "the file is cut short"),
    (lambda good: good[:100], "the file is cut short or damaged: PytorchStreamReader failed "
                              "reading zip archive: failed finding central directory"),
])
def test_a_foreign_or_cut_short_checkpoint_says_so_in_a_few_words(
        tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": create_model("tiny").state_dict(), "epoch": 1})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(make(good.read_bytes()))
    with pytest.raises(RunDirError) as error:
        load_checkpoint(bad)
    assert error.value.message == f"checkpoint {bad} cannot be loaded safely ({reason})"


def test_rng_state_roundtrip_through_a_checkpoint(tmp_path: Path) -> None:
    generator = torch.Generator()
    generator.manual_seed(7)
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state(generator)})
    expected = (torch.rand(3), random.random(), np.random.rand(),
                torch.rand(3, generator=generator))
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    generator.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], generator)
    again = (torch.rand(3), random.random(), np.random.rand(), torch.rand(3, generator=generator))
    assert torch.equal(expected[0], again[0]) and torch.equal(expected[3], again[3])
    assert expected[1:3] == again[1:3]


def _fake_run(run_dir: Path, model_name: str = "tiny") -> torch.nn.Module:
    config = TrainConfig(model=model_name, run_dir=str(run_dir))
    write_json_atomic(run_dir / "config.json", config.to_dict())
    model = create_model(model_name, num_classes=3)
    save_checkpoint(run_dir / "checkpoints" / "last.pt",
                    {"format": "dlbox-checkpoint", "model": model.state_dict(),
                     "classes": ["a", "b", "c"], "epoch": 2})
    return model


def test_load_model_from_run(tmp_path: Path) -> None:
    model = _fake_run(tmp_path)
    loaded = load_model_from_run(tmp_path, "cpu")
    assert loaded.classes == ("a", "b", "c") and loaded.epoch == 2
    assert not loaded.model.training
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    probabilities = loaded.probabilities(images, batch_size=2)
    assert probabilities.shape == (5, 3)
    assert torch.allclose(probabilities.sum(1), torch.ones(5))
    model.eval()
    with torch.no_grad():
        expected = model(loaded.preprocess(images))
    assert torch.allclose(loaded.logits(images), expected, atol=1e-5)


def test_load_model_from_run_errors(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        load_model_from_run(tmp_path / "missing", "cpu")
    with pytest.raises(RunDirError, match="config.json"):
        load_model_from_run(tmp_path, "cpu")
    write_json_atomic(tmp_path / "config.json", TrainConfig(model="tiny").to_dict())
    with pytest.raises(RunDirError, match="no checkpoint"):
        load_model_from_run(tmp_path, "cpu")
    save_checkpoint(tmp_path / "checkpoints" / "last.pt",
                    {"format": "dlbox-checkpoint", "model": create_model("tutorial").state_dict(),
                     "classes": list("abcdefghij")})
    with pytest.raises(RunDirError, match="does not fit"):
        load_model_from_run(tmp_path, "cpu")


def test_a_generator_state_from_another_device_type_is_refused_with_a_warning() -> None:
    from dlbox.training.checkpoint import restore_generator

    generator = torch.Generator().manual_seed(3)
    cuda_like_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state size
    with pytest.warns(UserWarning, match="another kind of device"):
        assert restore_generator(generator, cuda_like_state) is False
    assert torch.equal(torch.rand(3, generator=generator),
                       torch.rand(3, generator=torch.Generator().manual_seed(3)))
    other = torch.Generator().manual_seed(7)
    assert restore_generator(generator, other.get_state()) is True
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=other))


# ---- run files that are there but cannot be read: a permission to fix, not damage ---------

def _denied(path: Path) -> PermissionError:
    import errno

    return PermissionError(errno.EACCES, "Permission denied", str(path))


def _assert_says_permission_denied(error: RunDirError, path: Path) -> None:
    assert error.message == f"cannot read {path}: permission denied"
    assert f"chmod u+r {path}" in (error.hint or "") and "user that owns it" in (error.hint or "")
    text = f"{error.message} {error.hint}"
    assert "damaged" not in text and "train again" not in text and "delete" not in text


@pytest.mark.parametrize("code", ["EACCES", "EPERM"])
def test_unreadable_error_is_about_permissions_only(tmp_path: Path, code: str) -> None:
    import errno

    from dlbox.training.checkpoint import RunFileUnreadable, unreadable_error

    path = tmp_path / "config.json"
    path.write_text("{}")
    error = unreadable_error(path, PermissionError(getattr(errno, code), "denied", str(path)))
    assert isinstance(error, RunFileUnreadable) and isinstance(error, RunDirError)
    _assert_says_permission_denied(error, path)
    folder = unreadable_error(tmp_path, IsADirectoryError(errno.EISDIR, "Is a directory"))
    assert folder is not None and folder.message == f"cannot read {tmp_path}: it is a folder, " \
                                                    "not a file"
    # about the content or the disk: the caller's own error, not this one
    assert unreadable_error(path, OSError(errno.EIO, "Input/output error")) is None
    assert unreadable_error(path, ValueError("not JSON")) is None


def test_a_checkpoint_without_read_permission_is_not_called_damaged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `chmod 000 last.pt` (or a run made by another user) said "it is damaged
    or not a dlbox checkpoint; train again" (hours of training to redo for a chmod).
    torch.load's own PermissionError is simulated: root, as in CI, reads any file."""
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def denied(*args: object, **kwargs: object) -> None:
        raise _denied(path)

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(RunDirError) as info:
        load_checkpoint(path)
    _assert_says_permission_denied(info.value, path)
    assert path.read_bytes() == before


def test_a_config_json_without_read_permission_is_not_called_damaged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: "config.json is not valid JSON ([Errno 13] Permission denied ...)" with
    the hint "it was edited or damaged; train again"."""
    from dlbox.training.checkpoint import read_run_config

    run_dir = tmp_path / "run"
    write_json_atomic(run_dir / "config.json", TrainConfig(model="tiny").to_dict())

    def denied(path: Path) -> None:
        raise _denied(path)

    monkeypatch.setattr(checkpoint_module, "read_json", denied)
    with pytest.raises(RunDirError) as info:
        read_run_config(run_dir)
    _assert_says_permission_denied(info.value, run_dir / "config.json")


def test_a_damaged_config_json_names_the_command_that_restores_it(tmp_path: Path) -> None:
    """Found by review: a damaged config.json said "train again", though every checkpoint
    holds the run's settings; the hint is a command that writes them back, and it works."""
    import shlex
    import subprocess
    import sys

    from dlbox.training.checkpoint import read_run_config

    run_dir = tmp_path / "my run"
    config = TrainConfig(model="tiny", epochs=3)
    save_checkpoint(run_dir / "checkpoints" / "last.pt", {"config": config.to_dict()})
    (run_dir / "config.json").write_text("{broken")
    with pytest.raises(RunDirError) as info:
        read_run_config(run_dir)
    hint = info.value.hint or ""
    # the Python dlbox runs on (it has torch), and a GPU run's tensors load on the CPU
    assert hint.startswith("it was edited or damaged; its checkpoint holds the settings too: "
                           f"{shlex.quote(sys.executable)} -c ")
    assert 'map_location="cpu"' in hint
    words = shlex.split(hint.split("settings too: ", 1)[1])
    subprocess.run(words, check=True, timeout=120)
    assert read_run_config(run_dir) == config
    # No checkpoint to restore from: training again is the way.
    (run_dir / "checkpoints" / "last.pt").unlink()
    (run_dir / "config.json").write_text("{broken")
    with pytest.raises(RunDirError) as again:
        read_run_config(run_dir)
    assert again.value.hint == "it was edited or damaged; train again"


def test_a_missing_config_json_beside_a_checkpoint_names_the_command_too(
        tmp_path: Path) -> None:
    """Found by review: with config.json deleted (or lost in a copy) but last.pt there, the
    folder was "not a dlbox run directory", where a damaged one got the command back."""
    import shlex
    import subprocess

    from dlbox.training.checkpoint import read_run_config

    run_dir = tmp_path / "run"
    config = TrainConfig(model="tiny", epochs=2)
    save_checkpoint(run_dir / "checkpoints" / "last.pt", {"config": config.to_dict()})
    with pytest.raises(RunDirError) as info:
        read_run_config(run_dir)
    assert info.value.message == f"{run_dir} has no config.json, but a checkpoint"
    hint = info.value.hint or ""
    prefix = "write config.json back from the checkpoint, which holds the run's settings: "
    assert hint.startswith(prefix)
    subprocess.run(shlex.split(hint[len(prefix):]), check=True, timeout=120)
    assert read_run_config(run_dir) == config
    (run_dir / "config.json").unlink()
    (run_dir / "checkpoints" / "last.pt").unlink()  # nothing of a run: not one
    with pytest.raises(RunDirError, match="so it is not a dlbox run directory"):
        read_run_config(run_dir)


@pytest.mark.parametrize("damage", ["cut", "junk"])
def test_a_damaged_checkpoint_is_not_offered_to_write_config_json_back(
        tmp_path: Path, damage: str) -> None:
    """Found by review: beside a missing or damaged config.json, a checkpoint that was cut
    short (or not a checkpoint at all) was offered as the way back; the pasted command
    failed with a traceback (PytorchStreamReader failed reading zip archive, KeyError)."""
    from dlbox.training.checkpoint import read_run_config

    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    save_checkpoint(last, {"config": TrainConfig(model="tiny").to_dict(),
                           "model": {"w": torch.zeros(4096)}})
    last.write_bytes(last.read_bytes()[:3000] if damage == "cut" else b"\x80junk" * 100)
    with pytest.raises(RunDirError) as missing:
        read_run_config(run_dir)
    assert missing.value.message == (f"{run_dir} has no config.json, and its checkpoint {last} "
                                     "cannot be read either")
    assert missing.value.hint == "train again (or restore the run from a copy)"
    (run_dir / "config.json").write_text("{broken")
    with pytest.raises(RunDirError) as damaged:
        read_run_config(run_dir)
    assert damaged.value.hint == ("it was edited or damaged, and its checkpoint cannot be read "
                                  "either; train again (or restore the run from a copy)")


def test_a_flipped_bit_in_a_checkpoint_is_refused_not_loaded(tmp_path: Path) -> None:
    """Found by review: torch.load checks no CRC, so a checkpoint with a flipped byte in a
    weight loaded silently and training resumed from the damaged weights."""
    import zipfile

    path = tmp_path / "last.pt"
    torch.save({"model": {"w": torch.arange(4096, dtype=torch.float32)}, "epoch": 1}, path)
    assert load_checkpoint(path)["epoch"] == 1
    with zipfile.ZipFile(path) as archive:
        member = next(info for info in archive.infolist() if info.file_size >= 4096 * 4)
    data = bytearray(path.read_bytes())
    data[member.header_offset + 200] ^= 0xFF  # inside the tensor's bytes, past the header
    path.write_bytes(bytes(data))
    with pytest.raises(RunDirError) as info:
        load_checkpoint(path)
    assert info.value.message == (f"checkpoint {path} cannot be loaded safely (the file is "
                                  f"damaged: {member.filename} fails its CRC check)")
    # "train again" sent the user to `train --run-dir SAME`, refused: "continue it with
    # --resume", whose checkpoint is this one (found by review)
    assert info.value.hint == ("it is damaged or was edited: restore a good copy of it, or "
                               "train again with another --run-dir (this one holds the run)")


@pytest.mark.parametrize("images, says, fix", [
    (torch.rand(2, 3, 32, 32), "float32 values in 0..1", "(images * 255).round().to(torch.uint8)"),
    (torch.randn(2, 3, 32, 32) * 3, "got values from -", "before any normalisation"),
    (torch.full((2, 3, 32, 32), 300), "to 300", "0..255"),
    (torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), "[3, 32, 32]", "unsqueeze(0)"),
    (torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8), "[32, 32, 3]",
     "permute(2, 0, 1).unsqueeze(0)"),
    (torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8), "[2, 32, 32, 3]",
     "permute(0, 3, 1, 2)"),
    (torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8), "[2, 1, 32, 32]",
     "expand(-1, 3, -1, -1)"),
    (torch.randint(0, 256, (2, 2, 32, 32), dtype=torch.uint8), "[2, 2, 32, 32]", "RGB"),
    (torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), "64x64", "load_image"),
    (np.zeros((2, 3, 32, 32), np.uint8), "numpy.ndarray", "torch.from_numpy"),
])
def test_images_not_as_training_read_them_are_refused_with_the_fix(
        tmp_path: Path, images: Any, says: str, fix: str) -> None:
    """Review: floats in 0..1 (torchvision's ToTensor) were divided by 255 again and
    predicted as black, one [3, 32, 32] image gave "model returned shape (1, 10) for a batch
    of 3", NHWC a raw RuntimeError; a 64x64 batch was predicted at a size never trained on."""
    from dlbox.errors import UsageError

    _fake_run(tmp_path)
    loaded = load_model_from_run(tmp_path, "cpu")
    for method in (loaded.logits, loaded.probabilities):
        with pytest.raises(UsageError) as info:
            method(images)
        assert says in info.value.message and info.value.hint and fix in info.value.hint


def test_values_0_to_255_of_any_type_and_memory_layout_give_uint8s_logits(tmp_path: Path) -> None:
    """Review of the check above: int64 and float 0..255 tensors (torch.tensor(np.array(img),
    dtype=torch.float32)) gave the right logits before it, and must still; so does a
    channels_last batch."""
    _fake_run(tmp_path)
    loaded = load_model_from_run(tmp_path, "cpu")
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    expected = loaded.logits(images)
    for same in (images.long(), images.float(), images.double(),
                 images.contiguous(memory_format=torch.channels_last)):
        assert torch.allclose(loaded.logits(same), expected, atol=1e-5)


def test_a_model_registered_in_a_script_is_named_as_such_when_missing(tmp_path: Path) -> None:
    """Review: a model registered with @register_model in the user's script, then predicted
    by `dlbox predict` (another process), was only said to come from "another dlbox
    version"."""
    _fake_run(tmp_path)
    config = TrainConfig(model="mynet", run_dir=str(tmp_path))
    write_json_atomic(tmp_path / "config.json", config.to_dict())
    with pytest.raises(RunDirError, match="unknown model 'mynet'") as info:
        load_model_from_run(tmp_path, "cpu")
    hint = info.value.hint or ""
    assert "@register_model" in hint and "dlbox/models/__init__.py" in hint
    assert "load_model_from_run" in hint and "another dlbox version" in hint
