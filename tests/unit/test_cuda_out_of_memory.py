"""Running out of GPU memory, which this CPU machine cannot do for real: CUDA's
OutOfMemoryError, with the text PyTorch's caching allocator really writes (recorded on an
80 GiB GPU), raised where the GPU would raise it, must end as the same one-line error the CPU
gets, naming the settings to lower, and not as an "unexpected error, please report it"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dlbox.cli import main
from dlbox.errors import EXIT_ERROR, DlboxError
from dlbox.training import evaluate as evaluate_module
from dlbox.training.config import TrainConfig
from dlbox.training.device import is_out_of_memory, memory_asked_for
from dlbox.training.loop import out_of_memory_is_an_error

# Recorded from torch 2.x on an 80 GiB GPU (c10/cuda/CUDACachingAllocator.cpp's message).
CUDA_OOM_TEXT = (
    "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
    "of which 15.56 GiB is free. Including non-PyTorch memory, this process has 63.62 GiB "
    "memory in use. Of the allocated memory 62.37 GiB is allocated by PyTorch, and 794.04 MiB "
    "is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
    "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
    "documentation for Memory Management  "
    "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def cuda_oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT)


def test_cuda_out_of_memory_is_recognised_with_the_amount_it_asked_for() -> None:
    assert is_out_of_memory(cuda_oom())
    assert memory_asked_for(cuda_oom()) == "20.00 GiB"
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only torch's and Python's own


def test_training_out_of_memory_on_the_gpu_names_the_batch_size_and_width() -> None:
    config = TrainConfig(model="speedrun", batch_size=1024, model_kwargs={"width": 64})
    with pytest.raises(DlboxError) as caught, \
            out_of_memory_is_an_error(config, torch.device("cuda:0"), None):
        raise cuda_oom()
    assert caught.value.message == ("out of memory on cuda:0 training model 'speedrun' with "
                                    "batch size 1024 (it asked for 20.00 GiB more)")
    assert caught.value.hint is not None
    assert "smaller --batch-size (this run's: 1024) or --width (this run's: 64)" in \
        caught.value.hint


def test_an_other_cuda_error_is_not_called_out_of_memory() -> None:
    config = TrainConfig(model="tiny")
    with pytest.raises(RuntimeError, match="device-side assert"), \
            out_of_memory_is_an_error(config, torch.device("cuda:0"), None):
        raise RuntimeError("CUDA error: device-side assert triggered")


def test_evaluating_out_of_memory_on_the_gpu_points_at_the_cpu() -> None:
    with pytest.raises(DlboxError) as caught, \
            evaluate_module.out_of_memory_is_an_error("cuda:0", "evaluating in batches of 1000 "
                                                      "images"):
        raise cuda_oom()
    assert caught.value.message == ("out of memory on cuda:0 evaluating in batches of 1000 "
                                    "images (it asked for 20.00 GiB more)")
    assert caught.value.hint is not None and "--device cpu" in caught.value.hint


def test_dlbox_train_ends_in_one_line_when_the_model_runs_out_of_gpu_memory(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The whole command: the first convolution of the first batch raises CUDA's error, as it
    would on a GPU too small for the batch; the run dir, which saved nothing, may be reused."""
    def out_of_gpu_memory(self: nn.Conv2d, inputs: torch.Tensor) -> torch.Tensor:
        raise cuda_oom()

    monkeypatch.setattr(nn.Conv2d, "forward", out_of_gpu_memory)
    run_dir = tmp_path / "run"
    code = main(["train", "--model", "tiny", "--device", "cpu", "--num-train", "64",
                 "--num-test", "32", "--batch-size", "32", "--no-progress", "--data",
                 str(fake_cifar_dir), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    error, hint = err.strip().splitlines()
    assert error == ("error: out of memory on cpu training model 'tiny' with batch size 32 "
                     "(it asked for 20.00 GiB more)")
    assert hint == ("hint: train again with a smaller --batch-size (this run's: 32), or free "
                    f"memory used by other programs; --run-dir {run_dir.resolve()} may be "
                    "reused, it saved nothing")
    assert not (run_dir / "checkpoints" / "last.pt").exists()
