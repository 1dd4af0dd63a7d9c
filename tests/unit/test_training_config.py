"""TrainConfig, recipes, devices and learning-rate schedules."""

from __future__ import annotations

import json

import pytest
import torch

from dlbox.errors import HostEnvError, UsageError
from dlbox.models import default_model_for
from dlbox.training.config import TrainConfig, build_config
from dlbox.training.device import available_cpus, configure_host, resolve_device
from dlbox.training.schedules import lr_factor, make_scheduler, onecycle_factor


def test_config_roundtrips_through_json() -> None:
    config = build_config("resnet", device="cpu", epochs=3, width=8, num_train=100)
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    assert data["model_kwargs"] == {"width": 8} and data["epochs"] == 3


def test_from_dict_ignores_unknown_and_fills_missing() -> None:
    config = TrainConfig.from_dict({"model": "tiny", "from_the_future": 1})
    assert config.model == "tiny" and config.seed == 0


def test_build_config_uses_the_recipe_then_overrides() -> None:
    cpu = build_config("resnet", device="cpu")
    assert cpu.model_kwargs == {"width": 16}
    tutorial = build_config("tutorial", device="cpu", lr=0.01)
    assert (tutorial.batch_size, tutorial.epochs, tutorial.lr) == (4, 2, 0.01)
    assert tutorial.crop_padding == 0 and not tutorial.flip
    default = build_config(None, device="cpu")
    assert default.model == default_model_for("cpu")


@pytest.mark.parametrize("changes, flag", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0.0}, "learning"),
    ({"label_smoothing": 1.0}, "smoothing"), ({"schedule": "cosine"}, "schedule"),
    ({"num_train": 0}, "num_train"),
    # finite, but the first step overflows float32 weights, or torch.manual_seed refuses
    ({"lr": 1e308}, "at most"), ({"weight_decay": 1e300}, "at most"),
    ({"seed": 2**64}, "seed"), ({"seed": -(2**63) - 1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"data_dir": 5}, "data_dir"), ({"run_dir": ["runs"]}, "run_dir"),
])
def test_invalid_settings_are_usage_errors(changes: dict, flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        TrainConfig(**changes)


@pytest.mark.parametrize("changes", [
    {"lr": float("inf")}, {"lr": float("nan")}, {"weight_decay": float("inf")},
    {"weight_decay": float("nan")}, {"momentum": float("nan")},
    {"label_smoothing": float("nan")}, {"warmup_fraction": float("inf")},
    {"mean": (0.5, float("nan"), 0.5)}, {"std": (0.2, 0.2, float("inf"))},
])
def test_non_finite_settings_are_usage_errors(changes: dict) -> None:
    with pytest.raises(UsageError, match="finite") as info:
        TrainConfig(**changes)
    assert "\n" not in info.value.message
    with pytest.raises(UsageError, match="finite"):
        build_config("tiny", device="cpu", **{k: v for k, v in changes.items()
                                              if k not in ("mean", "std")} or {"lr": float("inf")})


@pytest.mark.parametrize("changes", [{"model": ["tiny"]}, {"schedule": None},
                                     {"model_kwargs": [1]}, {"lr": "fast"}])
def test_settings_of_the_wrong_type_are_usage_errors(changes: dict) -> None:
    with pytest.raises(UsageError):
        TrainConfig(**changes)


def test_every_seed_torch_takes_is_accepted() -> None:  # runs of earlier releases included
    for seed in (-1, -(2**63), 2**63, 2**64 - 1):
        assert TrainConfig(seed=seed).seed == seed
        torch.manual_seed(seed)


def test_more_threads_than_four_per_core_are_refused_where_the_user_sets_them() -> None:
    from dlbox.training.device import available_cpus

    most = 4 * available_cpus()
    assert build_config("tiny", device="cpu", threads=most).threads == most
    with pytest.raises(UsageError, match=f"at most {most}"):  # torch crashes at 100,000
        build_config("tiny", device="cpu", threads=100_000)
    # a run's config.json from a bigger machine still loads (evaluate, resume)
    assert TrainConfig.from_dict({"model": "tiny", "threads": 100_000}).threads == 100_000


def test_more_threads_than_cores_are_noted(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --threads 8 on 2 cores made an epoch ten times slower, silently."""
    from dlbox.training.device import available_cpus

    cores = available_cpus()
    build_config("tiny", device="cpu", threads=cores)
    assert capsys.readouterr().err == ""
    build_config("tiny", device="cpu", threads=cores + 1)
    assert capsys.readouterr().err == (
        f"note: --threads {cores + 1} is more than the {cores} cores here: the threads take "
        "turns, which is often slower than one a core (leave --threads out for one a core)\n")


def test_unknown_model_in_build_config() -> None:
    with pytest.raises(UsageError, match="unknown model"):
        build_config("nope", device="cpu")


def test_amp_and_channels_last_follow_the_device() -> None:
    config = TrainConfig()
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not config.use_amp(cpu) and config.use_amp(cuda)
    assert not config.use_channels_last(cpu) and config.use_channels_last(cuda)
    assert not config.replace(amp=False).use_amp(cuda)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_says_what_is_missing(spec: str) -> None:
    with pytest.raises(HostEnvError) as caught:
        resolve_device(spec)
    assert "CUDA" in caught.value.message and spec in caught.value.message
    assert "--device cpu" in (caught.value.hint or "")


def test_configure_host_uses_all_cores() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_host(torch.device("cpu")) == available_cpus()
        assert torch.get_num_threads() == available_cpus()
        assert configure_host(torch.device("cpu"), threads=1) == 1
    finally:
        torch.set_num_threads(before)


def test_onecycle_ramps_up_then_down() -> None:
    total = 100
    factors = [onecycle_factor(step, total, 0.2) for step in range(total)]
    peak = factors.index(max(factors))
    assert max(factors) == pytest.approx(1.0) and peak == 19
    assert 0 < factors[0] < 0.1 and 0 < factors[-1] < 0.05
    assert all(a <= b for a, b in zip(factors[:peak], factors[1:peak + 1], strict=True))
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:], strict=False))
    assert lr_factor("constant", 50, total, 0.2) == 1.0
    assert lr_factor("linear", 0, total, 0.0) == 1.0 and lr_factor("linear", 99, total, 0) < 0.02
    with pytest.raises(ValueError):
        lr_factor("cosine", 0, total, 0.2)


def test_scheduler_sets_the_lr_per_step_and_its_state_is_plain() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.4)
    scheduler = make_scheduler(optimizer, "onecycle", 10, 0.2)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[1] == pytest.approx(0.4) and lrs[0] == pytest.approx(0.2)
    assert all(isinstance(v, (int, float, list, type(None))) for v in
               scheduler.state_dict().values() if not isinstance(v, dict))


@pytest.mark.parametrize("change, message", [
    ({"flip": "no"}, "flip must be true or false, got 'no'"),
    ({"tta": 1}, "tta must be true or false, got 1"),
    ({"amp": "yes"}, "amp must be true, false or null (the device decides), got 'yes'"),
    ({"eval_batch_size": True}, "eval_batch_size must be a positive whole number, got True"),
    ({"threads": True}, "threads must be a positive whole number, got True"),
    ({"cutout": 12.5}, "cutout must be a whole number of pixels, got 12.5"),
])
def test_a_hand_edited_setting_of_the_wrong_kind_is_named(change: dict, message: str) -> None:
    """Found in review: an edited config.json's "flip": "no" trained with flips (a non-empty
    string is true), and "eval_batch_size": true evaluated one image at a time."""
    values = {**TrainConfig(model="tiny").to_dict(), **change}
    with pytest.raises(UsageError) as info:
        TrainConfig.from_dict(values)
    assert info.value.message == message


@pytest.mark.parametrize("model", ["speedrun", "tutorial"])
def test_width_on_a_model_without_one_names_the_flag_and_the_models_with_one(
        model: str) -> None:
    """Its hint was "model 'speedrun' takes: widths, depth, whiten_kernel, ...", settings no
    flag of `dlbox train` sets (and "takes: no settings" for the tutorial)."""
    with pytest.raises(UsageError) as info:
        build_config(model, device="cpu", width=8)
    assert info.value.message == f"--width does not apply to model '{model}'"
    assert info.value.hint == "leave --width out; the models with a width: resnet, tiny"
    assert build_config("tiny", device="cpu", width=8).model_kwargs["width"] == 8


def test_the_tutorial_trains_on_one_thread_unless_threads_is_given() -> None:
    """Review: on a 2-core machine under load, the tutorial's batches of 4 ran 40 times slower
    on every core than on one (the threads waiting on each other at each small step); on
    quiet cores one thread is as fast. Its recipe asks for one; --threads still rules, and
    the other models keep every core."""
    assert build_config("tutorial", device="cpu").threads == 1
    assert build_config("tutorial", device="cpu", threads=2).threads == 2
    assert build_config("speedrun", device="cpu").threads is None
    assert build_config("resnet", device="cpu").threads is None
