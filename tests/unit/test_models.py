"""The model registry and the built-in models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbox.errors import UsageError
from dlbox.models import (
    Recipe,
    count_parameters,
    create_model,
    default_model_for,
    get_model_info,
    list_models,
    model_names,
    recipe_for,
    register_model,
)
from dlbox.models import registry as registry_module

BUILTINS = ("resnet", "tiny", "tutorial")


def test_builtins_are_registered() -> None:
    names = model_names()
    assert set(BUILTINS) <= set(names)
    infos = {info.name: info for info in list_models()}
    for name in BUILTINS:
        assert infos[name].params > 0
        assert infos[name].description


@pytest.mark.parametrize("name", BUILTINS)
def test_forward_backward_shapes_and_finite(name: str) -> None:
    torch.manual_seed(0)
    kwargs = {"width": 8} if name == "resnet" else {}  # a narrow resnet keeps the test fast
    model = create_model(name, num_classes=10, **kwargs)
    images = torch.randn(4, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


def test_resnet_full_width_forward_and_num_classes() -> None:
    model = create_model("resnet", num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_tutorial_net_is_the_tutorials() -> None:
    model = create_model("tutorial")
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(6, 3, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,),
                      (84, 120), (84,), (10, 84), (10,)]
    assert count_parameters(model) == 62006


def test_resnet_width_scales_the_net() -> None:
    narrow = count_parameters(create_model("resnet", width=16))
    wide = count_parameters(create_model("resnet"))
    assert 14 < wide / narrow < 18  # conv weights grow with width squared
    assert get_model_info("resnet").params == wide


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        create_model("no-such-net")
    assert "no-such-net" in caught.value.message
    assert all(name in (caught.value.hint or "") for name in BUILTINS)


@pytest.mark.parametrize("name", ["tiny", "resnet"])
@pytest.mark.parametrize("width", [0, -3, 16.5, "16", True])
def test_a_width_not_a_positive_int_is_a_usage_error(name: str, width: int) -> None:
    with pytest.raises(UsageError, match="width must be a positive") as info:
        create_model(name, width=width)
    assert info.value.hint and "width" in info.value.hint


def test_a_model_bigger_than_memory_is_refused_without_allocating_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the machine has 1 MiB: tiny at width 8 (6 KiB) fits, at width 200 (about
    # 1.4 MiB of weights) it does not, and nothing of that size is allocated to find out.
    monkeypatch.setattr(registry_module, "physical_memory_bytes", lambda: 2**20)
    create_model("tiny", width=8)
    with pytest.raises(UsageError, match=r"model 'tiny' with width 200 has 2.\d+ MiB of "
                                         r"weights, more than this machine's 1 MiB") as error:
        create_model("tiny", width=200)
    assert "--width" in (error.value.hint or "")


def test_unknown_setting_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'depth'"):
        create_model("resnet", depth=50)
    with pytest.raises(UsageError, match="width"):
        create_model("resnet", width=0)


def test_recipes_per_device() -> None:
    assert default_model_for("cpu") in model_names()
    assert default_model_for(torch.device("cuda")) in model_names()
    gpu, cpu = recipe_for("resnet", "cuda"), recipe_for("resnet", "cpu")
    assert gpu.batch_size == 512 and gpu.label_smoothing == 0.2 and gpu.nesterov
    assert cpu.model_kwargs.get("width", 64) < 64
    assert recipe_for("tutorial", "cpu") == recipe_for("tutorial", "cuda")
    tutorial = recipe_for("tutorial", "cpu")
    assert (tutorial.batch_size, tutorial.lr, tutorial.momentum, tutorial.epochs) == (4, 0.001,
                                                                                     0.9, 2)


def test_register_a_new_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    monkeypatch.setattr(registry_module, "_DEFAULT_MODELS", dict(registry_module._DEFAULT_MODELS))

    @register_model("linear-test", "a linear layer", recipe=Recipe(epochs=3, batch_size=8))
    def linear(num_classes: int = 10) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))

    assert "linear-test" in model_names()
    assert create_model("linear-test", num_classes=4)(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    assert recipe_for("linear-test", "cpu").epochs == 3
    registry_module.set_default_model("cpu", "linear-test")
    assert default_model_for("cpu") == "linear-test"
    with pytest.raises(ValueError, match="already registered"):
        register_model("linear-test", "again")(lambda num_classes=10: nn.Identity())


def test_params_by_recipe_counts_the_model_each_recipe_builds() -> None:
    """Found by reading: `dlbox models` showed resnet's 6.57 M parameters (width 64) for its
    CPU recipe too, which trains width 16 (0.41 M). Counted on the meta device, each must
    equal the parameters of the model really built with that recipe's settings."""
    for info in list_models():
        counts = info.params_by_recipe
        recipes = {"gpu": info.recipe, **({"cpu": info.cpu_recipe} if info.cpu_recipe else {})}
        assert counts.keys() == recipes.keys()
        for kind, recipe in recipes.items():
            real = create_model(info.name, **recipe.model_kwargs)
            assert counts[kind] == count_parameters(real), (info.name, kind)
        assert info.params == counts["gpu"]
    resnet = get_model_info("resnet").params_by_recipe
    assert resnet["cpu"] == count_parameters(create_model("resnet", width=16)) < resnet["gpu"]


def test_parameters_are_counted_without_allocating_the_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built_on: list[str] = []

    def factory(num_classes: int = 10, width: int = 4) -> nn.Module:
        layer = nn.Linear(width, num_classes)
        built_on.append(layer.weight.device.type)
        return layer

    assert registry_module.count_factory_parameters(factory, {"width": 6}) == 6 * 10 + 10
    assert built_on == ["meta"]

    def no_meta(num_classes: int = 10) -> nn.Module:
        layer = nn.Linear(3, num_classes)
        if layer.weight.is_meta:
            raise NotImplementedError("needs real weights")  # as a data-dependent init would
        return layer

    assert registry_module.count_factory_parameters(no_meta, {}) == 3 * 10 + 10
