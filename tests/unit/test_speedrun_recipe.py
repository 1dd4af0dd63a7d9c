"""The speedrun model in the registry, its recipe as `dlbox train` maps it, and its training
pieces: alternating flips, Muon, and a tiny end-to-end run of the trainer."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from dlbox.data.dataset import ImageDataset
from dlbox.errors import UsageError
from dlbox.models import create_model, default_model_for, get_model_info, model_names
from dlbox.models.speedrun import CPU_WIDTHS, DEFAULT_WIDTHS, SpeedrunNet
from dlbox.training.config import build_config
from dlbox.training.speedrun import (
    Muon,
    SpeedrunConfig,
    augment_epoch,
    config_from_train,
    orthogonalize,
    train_speedrun,
)


def test_speedrun_is_registered_and_the_gpu_default() -> None:
    assert "speedrun" in model_names()
    assert default_model_for("cuda") == "speedrun"
    assert default_model_for("cpu") == "speedrun"  # its CPU recipe (docs/speedrun.md)
    info = get_model_info("speedrun")
    assert info.recipe_for("cuda").model_kwargs["widths"] == DEFAULT_WIDTHS
    assert info.recipe_for("cpu").model_kwargs["widths"] == CPU_WIDTHS
    model = create_model("speedrun", num_classes=10, widths=(8, 16, 16))
    assert isinstance(model, SpeedrunNet) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(UsageError):
        create_model("speedrun", width=16)


def test_train_config_maps_onto_the_speedrun_config() -> None:
    cpu = config_from_train(build_config("speedrun", device="cpu"))
    assert cpu.widths == CPU_WIDTHS and cpu.batch_size == 256 and cpu.epochs == 10
    assert cpu.whiten_stride == 2  # the CPU recipe halves the resolution of every layer
    assert cpu.channels_last is True and cpu.eval_batch_size == 500  # faster on oneDNN
    gpu = get_model_info("speedrun").recipe_for("cuda")
    assert gpu.eval_batch_size == 2000 and gpu.channels_last is None  # airbench's
    assert cpu.optimizer == "muon" and cpu.tta_level == 2 and cpu.flip == "alternate"
    assert (cpu.lr_start, cpu.lr_peak, cpu.lr_end) == (1.0, 0.0, 0.0)
    assert cpu.filter_lr == pytest.approx(SpeedrunConfig().filter_lr)
    changed = config_from_train(build_config("speedrun", device="cpu", lr=0.12, epochs=3,
                                             amp=False, seed=5))
    base = SpeedrunConfig()
    assert changed.filter_lr == 0.12 and changed.epochs == 3 and changed.seed == 5
    assert changed.head_lr == pytest.approx(base.head_lr / 2)
    assert changed.bias_lr == pytest.approx(base.bias_lr / 2)
    assert changed.precision == "fp32"
    plain = config_from_train(build_config("speedrun", device="cpu").replace(
        tta=False, flip=False, schedule="constant"))
    assert plain.tta_level == 0 and plain.flip == "none" and plain.lr_end == 1.0


def test_alternating_flip_shows_each_image_both_ways_in_two_epochs() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    base_flip = torch.rand(16, generator=g) < 0.5
    even = augment_epoch(x, 0, base_flip, "alternate", 0, g)
    odd = augment_epoch(x, 1, base_flip, "alternate", 0, g)
    for i in range(16):
        seen = {bool(torch.equal(even[i], x[i].flip(2))), bool(torch.equal(odd[i], x[i].flip(2)))}
        assert seen == {True, False} or torch.equal(x[i], x[i].flip(2))
    assert torch.equal(augment_epoch(x, 3, None, "none", 0, g), x)
    moved = augment_epoch(x, 0, None, "none", 2, g)
    assert moved.shape == x.shape and moved.dtype == torch.uint8
    with pytest.raises(ValueError):
        augment_epoch(x, 0, None, "alternate", 0, g)


def test_orthogonalize_flattens_the_singular_values() -> None:
    m = torch.randn(16, 36, generator=torch.Generator().manual_seed(0))
    s = torch.linalg.svdvals(orthogonalize(m, steps=5))
    assert s.max() < 1.5 and s.min() > 0.3  # Newton-Schulz pushes them toward ~1


def test_orthogonalize_a_stack_is_each_matrix_on_its_own() -> None:
    g = torch.Generator().manual_seed(1)
    for shape in ((3, 16, 36), (2, 36, 16)):  # wide and tall (transposed) matrices
        stack = torch.randn(*shape, generator=g) * torch.tensor([1.0, 50.0, 0.01][:shape[0]])[
            :, None, None]
        batched = orthogonalize(stack)
        for i in range(shape[0]):
            assert torch.allclose(batched[i], orthogonalize(stack[i]), atol=1e-5), (shape, i)


def test_muon_steps_same_shaped_filters_as_if_one_by_one() -> None:
    """Filters of one shape are orthogonalised as a stack: the same step as the plain
    per-filter rule (renormalise, then -lr * orthogonalize(update))."""
    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(8, 8, 3, bias=False) for _ in range(2)] + [
        torch.nn.Conv2d(4, 8, 3, bias=False)]
    params = [c.weight for c in convs]
    expected = []
    for p in params:
        p.grad = torch.randn_like(p)
        w = p.detach() * (len(p) ** 0.5 / (p.detach().norm() + 1e-12))
        update = p.grad * (1 + 0.6)  # first step, Nesterov: g + momentum * (buf = g)
        expected.append(w - 0.1 * orthogonalize(update.reshape(len(p), -1)).view_as(p))
    Muon(params, lr=0.1, momentum=0.6).step()
    for p, want in zip(params, expected, strict=True):
        assert torch.allclose(p.detach(), want, atol=1e-6)


def test_muon_keeps_filter_norms_fixed() -> None:
    conv = torch.nn.Conv2d(4, 8, 3, bias=False)
    optimizer = Muon(conv.parameters(), lr=0.1)
    for _ in range(3):
        conv(torch.randn(2, 4, 6, 6)).square().sum().backward()
        optimizer.step()
        conv.zero_grad()
    assert float(conv.weight.detach().norm()) == pytest.approx(8 ** 0.5, rel=0.2)


def test_a_tiny_speedrun_trains_and_reports_tta() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = torch.randint(0, 60, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    images[labels == 1, 0] += 150  # class 1 is red
    data = ImageDataset(images, labels, ("a", "b"), "memory")
    config = SpeedrunConfig(epochs=2, batch_size=32, widths=(8, 8, 8), eval_batch_size=32)
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    result = train_speedrun(data, data, config, "cpu",
                            on_epoch=lambda entry, state: seen.append((entry, state)),
                            make_model=lambda n: SpeedrunNet(n, widths=(8, 8, 8)))
    assert [entry["epoch"] for entry, _ in seen] == [1, 2] and result.steps == 4
    # Once per epoch, the entry with the state at that epoch's end (which a resume takes).
    for entry, state in seen:
        assert state["epoch"] == entry["epoch"] and state["step"] == entry["steps"]
        assert state["history"][-1] == entry and len(state["history"]) == entry["epoch"]
        assert state["train_seconds"] == pytest.approx(entry["train_seconds"], abs=1e-4)
        assert set(state) >= {"model", "optimizers", "generator", "images_seen", "curve"}
    assert seen[-1][1]["history"] == result.history
    assert "test_accuracy_tta" in seen[-1][0]
    assert result.tta_accuracy is not None and result.accuracy is not None
    assert result.time_seconds >= result.train_seconds > 0
    assert result.images_per_second > 0 and not result.model.training
    # The final TTA evaluation's logits come back, for the run's report.
    assert result.test_logits is not None and result.test_logits.shape == (64, 2)
    assert result.test_logits.device.type == "cpu"
    assert result.tta_accuracy == int((result.test_logits.argmax(1) == labels).sum()) / 64
    # Stopped early, or without test data, there is no final evaluation to report.
    stopped = train_speedrun(data, data, config, "cpu", should_stop=lambda: True,
                             make_model=lambda n: SpeedrunNet(n, widths=(8, 8, 8)))
    assert stopped.stopped and stopped.test_logits is None
    no_test = train_speedrun(data, None, config.replace(epochs=1), "cpu",
                             make_model=lambda n: SpeedrunNet(n, widths=(8, 8, 8)))
    assert no_test.test_logits is None and no_test.tta_accuracy is None
    with pytest.raises(UsageError):
        train_speedrun(data, data, config, "cpu", make_model=lambda n: torch.nn.Linear(2, n))


def test_lookahead_replaces_the_weights_only_after_the_last_step() -> None:
    """airbench94's lookahead: an average every few steps, put into the model at the end."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = ImageDataset(images, torch.arange(96) % 2, ("a", "b"), "memory")
    config = SpeedrunConfig(epochs=2, batch_size=16, widths=(8, 8, 8), optimizer="sgd",
                            lookahead=True, lookahead_start_epochs=0.0, lookahead_every=4)
    states = []
    result = train_speedrun(data, None, config, "cpu",
                            on_epoch=lambda entry, state: states.append(copy.deepcopy(state)),
                            make_model=lambda n: SpeedrunNet(n, widths=(8, 8, 8)))
    first_epoch_model = states[0]["model"]
    average = states[0]["lookahead"]
    assert average is not None
    # After epoch 1 (6 steps, 6 % 4 != 0) the model is its own weights, not the average.
    differs = [k for k in average if not torch.equal(average[k], first_epoch_model[k])]
    assert differs
    final = result.model.state_dict()
    assert all(torch.equal(final[k], states[-1]["lookahead"][k].to(final[k].dtype))
               for k in states[-1]["lookahead"])


def test_warm_up_runs_every_timed_shape_and_leaves_the_model_as_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU / compile warm-up (run here eagerly on the CPU): it goes through training with
    and without the whitening bias, evaluation at each batch size and TTA level, and one
    whitening solve, and afterwards the weights, BN statistics and flags are untouched."""
    from dlbox.training.speedrun import _warm_up

    torch.manual_seed(0)
    model = SpeedrunNet(10, widths=(8, 8, 8))
    before = copy.deepcopy(model.state_dict())
    config = SpeedrunConfig(batch_size=16, widths=(8, 8, 8), eval_batch_size=24)
    batch_sizes = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        batch_sizes.append((x.shape[0], model.training, model.whiten.bias.requires_grad))
        return model(x)

    from dlbox.training import speedrun as sr

    built: list = []
    real_build_optimizers = sr.build_optimizers

    def spy_build_optimizers(*args, **kwargs):  # type: ignore[no-untyped-def]
        optimizers = real_build_optimizers(*args, **kwargs)
        built.extend(optimizers)
        return optimizers

    monkeypatch.setattr(sr, "build_optimizers", spy_build_optimizers)
    _warm_up(forward, model, config, torch.device("cpu"), 10, False, None, 16,
             eval_sizes=(24, 10))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The optimizers' first steps ran too (their kernels' first launch is outside the clock):
    # every throwaway optimizer holds momentum buffers for the filters and biases.
    assert len(built) == 2 and all(optimizer.state for optimizer in built)
    assert model.whiten.bias.requires_grad and not model.training
    seen = set(batch_sizes)
    assert {(16, True, True), (16, True, False)} <= seen  # both training modes
    assert {(24, False, True), (24, False, False), (10, False, True), (10, False, False)} <= seen


def test_the_long_recipe_is_registered_with_airbench96s_net_and_cutout() -> None:
    info = get_model_info("speedrun-long")
    gpu = config_from_train(build_config("speedrun-long", device="cpu").replace(
        **{k: getattr(info.recipe, k) for k in ("epochs", "batch_size", "crop_padding",
                                                 "cutout")},
        model_kwargs=dict(info.recipe.model_kwargs)))
    assert gpu.widths == (128, 384, 512) and gpu.depth == 3 and gpu.cutout == 12
    assert gpu.translate == 4 and gpu.epochs == 24
    model = create_model("speedrun-long", num_classes=10, **info.recipe.model_kwargs)
    assert isinstance(model, SpeedrunNet) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    cpu = config_from_train(build_config("speedrun-long", device="cpu"))
    assert cpu.widths == CPU_WIDTHS and cpu.epochs == 16 and cpu.cutout == 0


def test_cutout_in_an_epoch_uses_the_generator_and_the_mean() -> None:
    x = torch.full((8, 3, 32, 32), 200, dtype=torch.uint8)
    out = augment_epoch(x, 0, None, "none", 0, torch.Generator().manual_seed(0), cutout=12,
                        fill=(100.0, 110.0, 120.0))
    changed = out != x
    assert int(changed[:, 0].sum()) == 8 * 144  # one 12x12 square per image
    assert out[:, 2][changed[:, 2]].unique().tolist() == [120]
    again = augment_epoch(x, 0, None, "none", 0, torch.Generator().manual_seed(0), cutout=12,
                          fill=(100.0, 110.0, 120.0))
    assert torch.equal(out, again)
    with pytest.raises(UsageError, match="cutout"):
        SpeedrunConfig(cutout=40)


def test_auto_precision_is_bf16_only_where_the_gpu_has_it(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from dlbox.training.speedrun import resolve_precision

    cuda = torch.device("cuda")
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("fp32", cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda) is torch.bfloat16
    # A pre-Ampere GPU (V100, T4): fp16, the dtype `dlbox evaluate` reloads the model in.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda) is torch.float16
    assert resolve_precision("bf16", cuda) is torch.bfloat16  # asked for explicitly


def test_weight_decay_follows_the_batch_the_steps_really_take() -> None:
    from dlbox.training.speedrun import build_optimizers

    config = SpeedrunConfig(widths=(8, 8, 8), batch_size=2000, weight_decay=1e-5)
    model = SpeedrunNet(10, widths=(8, 8, 8))

    def decay_per_step(optimizers: list[Any]) -> set[float]:
        return {round(g["lr"] * g["weight_decay"], 12) for o in optimizers
                for g in o.param_groups if "weight_decay" in g}

    assert decay_per_step(build_optimizers(model, config)) == {round(1e-5 * 2000, 12)}
    # 500 training images make batches of 500: the summed loss is 4x smaller, so is decay.
    assert decay_per_step(build_optimizers(model, config, 500)) == {round(1e-5 * 500, 12)}
