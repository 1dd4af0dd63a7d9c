"""Review 15 of dlbox as a Python library: what the caller's torch state did to a run, and
what a run (or a loaded run) did to the caller's."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from dlbox.data.synthetic import write_fake_cifar10
from dlbox.training.checkpoint import load_model_from_run
from dlbox.training.config import TrainConfig, build_config
from dlbox.training.evaluate import evaluate_run
from dlbox.training.loop import TrainingStopped, train


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar-review15")
    write_fake_cifar10(root, n_train=200, n_test=40, seed=0)
    return root


def _small(model: str, data: Path, run_dir: Path) -> TrainConfig:
    return build_config(model, device="cpu", epochs=1, batch_size=50, num_train=100,
                        num_test=20, seed=0, data_dir=str(data), run_dir=str(run_dir),
                        threads=1)


def _calls(model: str, data: Path, run_dir: Path) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    config = build_config(model, device="cpu", epochs=2, batch_size=50, num_train=200,
                          num_test=40, seed=0, data_dir=str(data), run_dir=str(run_dir),
                          threads=1)

    def record(epoch: int, step: int) -> bool:
        calls.append((epoch, step))
        return False

    train(config, progress=False, evaluate_at_end=False, stop=record)
    return calls


def test_speedrun_numbers_the_stop_callbacks_epochs_as_the_generic_loop(
        small_data: Path, tmp_path: Path) -> None:
    """Review: the speedrun trainer called stop(epoch, step) with epochs from 0, the generic
    loop from 1 (the epoch in progress): a stop(e == 1 and s == 4) stopped in another epoch,
    and the notebook's bar showed "epoch 0/2, step -7/16"."""
    tiny = _calls("tiny", small_data, tmp_path / "tiny")
    speedrun = _calls("speedrun", small_data, tmp_path / "speedrun")
    assert tiny[:5] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    assert speedrun[:5] == tiny[:5]
    assert {epoch for epoch, _ in speedrun} == {epoch for epoch, _ in tiny} == {1, 2}


def test_a_speedrun_stop_in_epoch_2_keeps_epoch_1(small_data: Path, tmp_path: Path) -> None:
    """stop(epoch == 2 ...) means the second epoch, as in the generic loop: epoch 1 is kept."""
    from dlbox.training.checkpoint import load_checkpoint

    config = build_config("speedrun", device="cpu", epochs=2, batch_size=50, num_train=200,
                          num_test=40, seed=0, data_dir=str(small_data),
                          run_dir=str(tmp_path / "run"), threads=1)
    with pytest.raises(TrainingStopped) as stopped:
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    assert stopped.value.resumable and "the state after epoch 1" in stopped.value.message
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


CALLER_MODES: dict[str, Callable[[], contextlib.AbstractContextManager[object]]] = {
    "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


@pytest.mark.parametrize("model", ["tiny", "speedrun"])
@pytest.mark.parametrize("mode", sorted(CALLER_MODES))
def test_train_in_a_callers_no_grad_or_inference_mode_trains(
        small_data: Path, tmp_path: Path, mode: str, model: str) -> None:
    """Review: inside `with torch.no_grad():` (or inference_mode) train() raised torch's
    "element 0 of tensors does not require grad" and left a run dir without a checkpoint."""
    config = _small(model, small_data, tmp_path / "run")
    with CALLER_MODES[mode]():
        run = train(config, progress=False)
        assert not torch.is_grad_enabled()  # the caller's mode is as it was
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "predictions.csv").is_file()


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@pytest.mark.parametrize("model", ["tiny", "speedrun"])
def test_train_after_set_default_dtype_float64_trains_in_float32(
        small_data: Path, tmp_path: Path, model: str) -> None:
    """Review: after torch.set_default_dtype(torch.float64) train() failed ("Input type
    FloatTensor and weight type DoubleTensor"): models are built in float32."""
    config = _small(model, small_data, tmp_path / "run")
    with default_dtype(torch.float64):
        run = train(config, progress=False)
        assert torch.get_default_dtype() == torch.float64  # the caller's, kept
    assert (run / "checkpoints" / "last.pt").is_file()


def test_a_float32_run_loads_and_evaluates_after_set_default_dtype_float64(
        small_data: Path, tmp_path: Path) -> None:
    from conftest import finished_tiny_run

    run = finished_tiny_run(tmp_path)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with default_dtype(torch.float64):
        loaded = load_model_from_run(run, "cpu")
        probabilities = loaded.probabilities(images)
        report = evaluate_run(run, data_dir=small_data, device="cpu", quiet=True)
        assert torch.get_default_dtype() == torch.float64
    assert probabilities.shape == (3, 10)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert report is not None


def test_loading_a_run_leaves_the_callers_random_stream_alone(tmp_path: Path) -> None:
    """Review: load_model_from_run (and so predict_images, evaluate_run) drew the model's
    random initial weights from the caller's torch generator before the checkpoint replaced
    them: a seeded notebook's next draws changed."""
    from conftest import finished_tiny_run

    run = finished_tiny_run(tmp_path)
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    load_model_from_run(run, "cpu")
    assert torch.equal(torch.rand(5), expected)


def test_resume_in_a_callers_inference_mode_and_float64_trains(small_data: Path,
                                                               tmp_path: Path) -> None:
    """resume() as train(): autograd on and float32 models whatever the caller's torch."""
    from dlbox.training.loop import resume

    config = _small("tiny", small_data, tmp_path / "run").replace(epochs=2)
    with pytest.raises(TrainingStopped):
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    with torch.inference_mode(), default_dtype(torch.float64):
        resume(tmp_path / "run", progress=False, evaluate_at_end=False)
    from dlbox.training.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["finished"]
