"""Found by review 9: seeds that collide, speedrun's weight decay as documented, the lr a
history entry records, and what metrics.json's `final` test accuracies mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlbox.errors import UsageError
from dlbox.fileio import read_json
from dlbox.training.checkpoint import load_checkpoint, save_checkpoint
from dlbox.training.config import MAX_SEED, TrainConfig, build_config
from dlbox.training.loop import TrainingStopped, resume, train
from dlbox.training.schedules import lr_factor


def tiny(data_dir: Path, run_dir: Path, **changes) -> TrainConfig:  # type: ignore[no-untyped-def]
    values = {"epochs": 1, "num_train": 320, "num_test": 100, "device": "cpu",
              "data_dir": str(data_dir), "run_dir": str(run_dir), "threads": 1, "seed": 1}
    values.update(changes)
    return build_config("tiny", **values)


# ---- 1. seeds a new run takes ---------------------------------------------------------------

def test_seeds_that_differ_by_two_to_the_32_would_train_the_same_run() -> None:
    """Why new runs take 0..2**32-1 only: torch's CPU generator (which draws every model's
    initial weights, on CUDA runs too) keeps the low 32 bits, and -1 is 2**64-1."""
    def draws(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.rand(4)

    assert torch.equal(draws(1), draws(2**32 + 1))
    assert torch.equal(draws(-1), draws(2**32 - 1))
    assert not torch.equal(draws(1), draws(2))
    assert MAX_SEED == 2**32 - 1


@pytest.mark.parametrize("seed, runs_as", [(2**32 + 1, 1), (-1, 2**32 - 1), (2**64 - 1, 2**32 - 1),
                                           (2**32, 0)])
def test_a_new_run_refuses_a_seed_that_runs_as_another(fake_cifar_dir: Path, tmp_path: Path,
                                                        seed: int, runs_as: int) -> None:
    with pytest.raises(UsageError) as caught:
        train(tiny(fake_cifar_dir, tmp_path / "run", seed=seed), progress=False,
              evaluate_at_end=False)
    assert caught.value.message == (
        f"--seed {seed} would run as seed {runs_as}: torch's CPU generator, which draws the "
        "initial weights, keeps only the low 32 bits")
    assert caught.value.hint == f"pass a --seed from 0 to 4294967295, e.g. --seed {runs_as}"
    assert not (tmp_path / "run").exists()  # refused before anything was made


@pytest.mark.parametrize("seed", [2**64, 99999999999999999999, -(2**63) - 1])
def test_a_new_seed_beyond_what_torch_takes_names_the_new_runs_range(seed: int) -> None:
    """Review: --seed 99999999999999999999 was refused naming torch's whole range
    (-9223372036854775808..18446744073709551615), whose top was then refused as running as
    another seed: a new run's seed is checked against its own range first."""
    from dlbox.training.config import build_config

    with pytest.raises(UsageError) as caught:
        build_config("tiny", device="cpu", seed=seed)
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("pass a --seed from 0 to 4294967295"), caught.value.hint


def test_the_last_seed_of_the_range_trains(fake_cifar_dir: Path, tmp_path: Path) -> None:
    run = train(tiny(fake_cifar_dir, tmp_path / "run", seed=2**32 - 1), progress=False,
                evaluate_at_end=False)
    assert read_json(run / "config.json")["seed"] == 2**32 - 1


def test_an_earlier_run_with_a_seed_beyond_the_range_still_resumes(fake_cifar_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The range is a new run's: a run that an earlier dlbox started with --seed 2**40 (its
    config.json and checkpoint say so) goes on."""
    run = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(tiny(fake_cifar_dir, run, epochs=2), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    config = read_json(run / "config.json") | {"seed": 2**40}
    (run / "config.json").write_text(json.dumps(config))
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    state["config"]["seed"] = 2**40
    save_checkpoint(path, state)
    resume(run, progress=False, evaluate_at_end=False)
    assert read_json(run / "metrics.json")["final"]["finished"] is True


# ---- 2. speedrun's weight decay, as documented ----------------------------------------------

def test_speedrun_weight_decay_is_l2_through_sgd_momentum_and_none_on_muon_filters() -> None:
    """docs/speedrun.md: --weight-decay is L2 added to the gradient of the SGD groups (biases,
    head), scaled by batch size / lr so that the lr times it is weight_decay x batch x the
    schedule's factor whatever the lr; Nesterov momentum amplifies it (1 + momentum on the
    first step, about 1 / (1 - momentum) once it builds up); the Muon group (the 3x3
    filters) gets none."""
    from dlbox.training.speedrun import Muon, SpeedrunConfig, build_model, build_optimizers

    config = SpeedrunConfig(widths=(8, 16, 16), batch_size=50, weight_decay=2e-6)
    shrink = config.weight_decay * config.batch_size  # 1e-4 per step at the schedule's peak

    def decay_after(steps: int, lr_scale: float, schedule_factor: float) -> float:
        torch.manual_seed(0)
        model = build_model(config.replace(bias_lr=config.bias_lr * lr_scale,
                                           head_lr=config.head_lr * lr_scale), 10,
                            torch.device("cpu"), channels_last=False)
        sgd, muon = build_optimizers(model, config.replace(bias_lr=config.bias_lr * lr_scale,
                                                           head_lr=config.head_lr * lr_scale))
        assert isinstance(muon, Muon) and not isinstance(sgd, Muon)
        filters = {id(p) for n, p in model.named_parameters()
                   if p.requires_grad and p.dim() == 4 and not n.startswith("whiten")}
        assert {id(p) for g in muon.param_groups for p in g["params"]} == filters
        assert all(not g.get("weight_decay") for g in muon.param_groups)
        for group in sgd.param_groups:  # L2 scaled by batch size / lr
            assert group["weight_decay"] * group["lr"] == pytest.approx(shrink)
            group["lr"] *= schedule_factor  # as the schedule sets it
        head = model.head.weight
        before: list[float] = []
        for _ in range(steps):
            before.append(float(head.detach().norm()))
            for group in sgd.param_groups:
                for p in group["params"]:
                    p.grad = torch.zeros_like(p)  # no loss: only the weight decay moves them
            sgd.step()
        return 1 - float(head.detach().norm()) / before[-1]  # the last step's shrink

    first = decay_after(1, 1.0, 1.0)
    assert first == pytest.approx(shrink * (1 + config.momentum), rel=1e-3)  # Nesterov's first
    assert decay_after(1, 10.0, 1.0) == pytest.approx(first, rel=1e-3)  # the same at any lr
    assert decay_after(1, 1.0, 0.5) == pytest.approx(first / 2, rel=1e-3)  # follows the lr
    built_up = decay_after(60, 1.0, 1.0)
    assert built_up == pytest.approx(shrink / (1 - config.momentum), rel=0.02)


# ---- 3. the lr an epoch's history records ---------------------------------------------------

def test_the_history_records_the_lr_of_each_epochs_first_step(fake_cifar_dir: Path,
                                                              tmp_path: Path) -> None:
    """It recorded the lr after the epoch's last scheduler step: the next epoch's first (the
    last epoch's always 0.0). A run stopped and resumed mid-epoch records the same."""
    config = tiny(fake_cifar_dir, tmp_path / "whole", epochs=3, schedule="linear",
                  warmup_fraction=0.0, lr=0.05)
    per_epoch = 320 // config.batch_size
    total = 3 * per_epoch
    expected = [config.lr * lr_factor("linear", epoch * per_epoch, total, 0.0)
                for epoch in range(3)]
    assert expected[-1] > 0
    run = train(config, progress=False, evaluate_at_end=False)
    assert [entry["lr"] for entry in read_json(run / "metrics.json")["history"]] == expected

    parted = tmp_path / "parted"
    with pytest.raises(TrainingStopped):
        train(config.replace(run_dir=str(parted)), progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 3)
    resume(parted, progress=False, evaluate_at_end=False)
    assert [entry["lr"] for entry in read_json(parted / "metrics.json")["history"]] == expected


# ---- 4. final's test accuracies -------------------------------------------------------------

def _speedrun(data_dir: Path, run_dir: Path) -> TrainConfig:
    return build_config("speedrun", device="cpu", epochs=2, batch_size=64, num_train=192,
                        num_test=100, seed=3, data_dir=str(data_dir), run_dir=str(run_dir),
                        threads=1)


def test_final_test_accuracy_is_with_the_runs_tta_evaluated_or_not(fake_cifar_dir: Path,
                                                                   tmp_path: Path) -> None:
    """--no-evaluate left a speedrun's final test_accuracy without TTA, the report's with it;
    `dlbox evaluate` then changed its meaning. best_test_accuracy was the highest epoch's,
    chosen on the test set, beside a checkpoint of the last epoch."""
    from dlbox.training.evaluate import evaluate_run

    evaluated = train(_speedrun(fake_cifar_dir, tmp_path / "evaluated"), progress=False)
    skipped = train(_speedrun(fake_cifar_dir, tmp_path / "skipped"), progress=False,
                    evaluate_at_end=False)
    with_report, without = (read_json(run / "metrics.json") for run in (evaluated, skipped))
    history = without["history"]
    final = without["final"]
    assert final["test_accuracy"] == final["test_accuracy_tta"] == history[-1][
        "test_accuracy_tta"]
    assert final["test_accuracy_plain"] == history[-1]["test_accuracy"]
    assert final["max_epoch_test_accuracy"] == max(h["test_accuracy"] for h in history)
    assert "best_test_accuracy" not in final
    report = with_report["final"]
    assert with_report["evaluation"]["tta"] is True
    assert report["test_accuracy"] == with_report["evaluation"]["test_accuracy"] == (
        final["test_accuracy"])  # the same run on the same CPU
    assert report["test_accuracy_plain"] == final["test_accuracy_plain"]

    # `dlbox evaluate` with the run's TTA writes the same; without it, only the plain key
    evaluate_run(skipped, device="cpu", quiet=True)
    after = read_json(skipped / "metrics.json")["final"]
    assert after["test_accuracy"] == final["test_accuracy"]
    evaluate_run(skipped, device="cpu", quiet=True, tta=False)
    plain = read_json(skipped / "metrics.json")
    assert plain["evaluation"]["tta"] is False
    assert plain["final"]["test_accuracy"] == final["test_accuracy"]
    assert plain["final"]["test_accuracy_plain"] == plain["evaluation"]["test_accuracy"] == (
        final["test_accuracy_plain"])
    assert plain["final"]["test_correct"] == after["test_correct"]  # the TTA evaluation's


def test_a_generic_run_without_tta_has_one_test_accuracy(fake_cifar_dir: Path,
                                                         tmp_path: Path) -> None:
    run = train(tiny(fake_cifar_dir, tmp_path / "run", epochs=2), progress=False)
    metrics = read_json(run / "metrics.json")
    final, history = metrics["final"], metrics["history"]
    assert final["test_accuracy"] == final["test_accuracy_plain"] == history[-1][
        "test_accuracy"] == metrics["evaluation"]["test_accuracy"]
    assert final["max_epoch_test_accuracy"] == max(h["test_accuracy"] for h in history)
