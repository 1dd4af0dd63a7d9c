"""Review 7: bad settings and names reach the user as one-line errors, not torch's or
Python's tracebacks (models, their registry, devices, configs, the notebook's curves)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dlbox.errors import RunDirError, UsageError
from dlbox.models import (
    create_model,
    default_model_for,
    get_model_info,
    recipe_for,
    register_model,
    set_default_model,
)
from dlbox.models import registry as registry_module


@pytest.mark.parametrize("settings", [
    {"widths": 5}, {"widths": "64"}, {"widths": [8, "16", 8]}, {"widths": [8, 16.5, 8]},
    {"widths": [8, True, 8]}, {"widths": []}, {"widths": None},
    {"whiten_kernel": "2"}, {"whiten_kernel": 0}, {"whiten_kernel": 2.0},
    {"whiten_stride": 0}, {"whiten_stride": "2"}, {"whiten_stride": True},
    {"depth": "2"}, {"depth": 2.0}, {"depth": True}, {"depth": 4},
    {"head_scale": "1"}, {"head_scale": float("nan")}, {"head_scale": True},
])
def test_bad_speedrun_settings_are_usage_errors(settings: dict[str, Any]) -> None:
    """Found by review: `widths=5` and `whiten_kernel="2"` raised a TypeError ("unexpected
    error ... please report it", exit 70), `whiten_stride=0` built a model that failed in
    its forward pass."""
    with pytest.raises(UsageError, match=f"^model 'speedrun': {next(iter(settings))} ") as caught:
        create_model("speedrun", **settings)
    assert "\n" not in caught.value.message
    assert caught.value.hint and "speedrun" in caught.value.hint


def test_speedrun_settings_show_their_value_as_given() -> None:
    with pytest.raises(UsageError) as caught:
        create_model("speedrun", depth="2")
    assert "got '2'" in caught.value.message


def test_good_speedrun_settings_still_build() -> None:
    model = create_model("speedrun", num_classes=3, widths=[8, 8], depth=3, whiten_kernel=2,
                         whiten_stride=2, head_scale=0.5)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_a_type_error_in_a_factory_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TypeError inside a registered factory is a bug in that model (a user's own), not a
    setting to change: it propagates with its traceback (re-review: it became a one-line
    "change the model's settings"). The built-in models check their settings' types."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_model("buggy-test", "calls Conv2d wrongly")
    def buggy(num_classes: int = 10) -> nn.Module:
        return nn.Conv2d(3, num_classes)  # type: ignore[call-arg]  # no kernel_size

    with pytest.raises(TypeError, match="kernel_size"):
        create_model("buggy-test")


def test_numpy_numbers_are_whole_numbers_for_the_models() -> None:
    """`len(np.unique(labels))` and a NumPy array of widths were built before the checks
    (re-review: refused, "a positive whole number, got np.int64(10)")."""
    assert create_model("tutorial", np.int64(10))(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    model = create_model("speedrun", widths=np.array([4, 8, 8]))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_an_edited_config_json_names_the_model_it_cannot_build(tmp_path: Path) -> None:
    from dlbox.training.checkpoint import build_run_model
    from dlbox.training.config import TrainConfig

    config = TrainConfig(model="speedrun", model_kwargs={"widths": 5})
    with pytest.raises(RunDirError, match=r"config.json names a model this dlbox cannot build "
                                          r"\(model 'speedrun': widths "):
        build_run_model(tmp_path, config, 10)


@pytest.mark.parametrize("num_classes", [-1, 0, "10", 1.5, None, True])
@pytest.mark.parametrize("name", ["tiny", "tutorial", "speedrun", "resnet"])
def test_num_classes_must_be_a_positive_whole_number(name: str, num_classes: Any) -> None:
    with pytest.raises(UsageError, match="num_classes must be a positive whole number, got "
                                         f"{num_classes!r}".replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        create_model(name, num_classes=num_classes)


def test_data_dir_and_run_dir_may_be_paths() -> None:
    from dlbox.training.config import TrainConfig, build_config

    config = build_config("tiny", device="cpu", data_dir=Path("data"), run_dir=Path("runs/x"))
    assert (config.data_dir, config.run_dir) == ("data", "runs/x")
    assert json.loads(json.dumps(config.to_dict()))["data_dir"] == "data"
    assert TrainConfig(data_dir=Path("d")).data_dir == "d"
    with pytest.raises(UsageError, match="data_dir must be a path, got 5"):
        TrainConfig(data_dir=5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="run_dir must be a path"):
        TrainConfig(run_dir=os.fsencode("runs"))  # type: ignore[arg-type]


def test_auto_picks_the_recipe_and_model_of_this_machine() -> None:
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert recipe_for("speedrun", "auto") == recipe_for("speedrun", here)
    assert recipe_for("speedrun", " Auto ") == recipe_for("speedrun", here)
    assert default_model_for("auto") == default_model_for(here)
    assert recipe_for("speedrun", "cuda:1") == recipe_for("speedrun", "cuda")


@pytest.mark.parametrize("device", ["gpu", "", "cuda:x", 0])
def test_unknown_devices_are_usage_errors_in_the_registry(device: Any) -> None:
    with pytest.raises(UsageError, match="device"):
        recipe_for("tutorial", device)
    with pytest.raises(UsageError, match="device"):
        default_model_for(device)


def test_resolve_device_takes_a_torch_device() -> None:
    from dlbox.training.device import resolve_device

    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == resolve_device()
    assert resolve_device(None) == resolve_device("auto")  # the callers' "not given"
    with pytest.raises(UsageError, match="unknown device 'meta'"):
        resolve_device(torch.device("meta"))


@pytest.mark.parametrize("spec", [0, 1.0, True, "", "   ", ["cpu"]])
def test_resolve_device_refuses_what_is_not_a_device(spec: Any) -> None:
    """Found by review: 0 and "" silently meant "auto" (`spec or "auto"`)."""
    from dlbox.training.device import resolve_device

    with pytest.raises(UsageError, match="device") as caught:
        resolve_device(spec)
    assert caught.value.hint and "auto" in caught.value.hint


def test_set_default_model_refuses_unknown_device_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_DEFAULT_MODELS", dict(registry_module._DEFAULT_MODELS))
    before = dict(registry_module._DEFAULT_MODELS)
    with pytest.raises(UsageError, match="'gpu'"):
        set_default_model("gpu", "tiny")
    assert registry_module._DEFAULT_MODELS == before
    set_default_model("cpu", "tiny")
    assert default_model_for("cpu") == "tiny"


def test_training_history_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    from dlbox.jupyter.notebooks import training_history

    with pytest.raises(RunDirError) as caught:
        training_history(tmp_path / "typo")
    assert caught.value.message == f"run directory {tmp_path / 'typo'} does not exist"
    assert caught.value.hint
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError) as caught:
        training_history(tmp_path / "file")
    assert caught.value.message == f"{tmp_path / 'file'} is a file, not a run directory"


def test_recipes_do_not_share_their_model_settings() -> None:
    """Found by review: speedrun-long's CPU recipe shared speedrun's model_kwargs dict, so
    changing one changed the other."""
    short, long = recipe_for("speedrun", "cpu"), recipe_for("speedrun-long", "cpu")
    assert short.model_kwargs == long.model_kwargs
    assert short.model_kwargs is not long.model_kwargs
    assert dataclasses.asdict(short)["model_kwargs"] == short.model_kwargs  # still a dict
    source = {"width": 4}
    recipe = registry_module.Recipe(model_kwargs=source)
    source["width"] = 5
    assert recipe.model_kwargs == {"width": 4}
    assert recipe.replace(epochs=1).model_kwargs == {"width": 4}


def test_settings_from_a_recipe_still_make_configs_and_json() -> None:
    from dlbox.cli.models import describe
    from dlbox.training.config import build_config

    config = build_config("speedrun", device="cpu")
    config.model_kwargs["depth"] = 3  # the config's own copy
    assert "depth" not in recipe_for("speedrun", "cpu").model_kwargs
    json.dumps(config.to_dict())
    json.dumps(describe(get_model_info("speedrun")))


def test_a_notebook_cell_may_register_its_model_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: running a cell with `@register_model("mine", ...)` a second time
    raised "already registered"."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    def cell() -> Any:
        @register_model("mine-test", "the cell's model")
        def mine(num_classes: int = 10) -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))
        return mine

    first, second = cell(), cell()
    assert first is not second
    assert get_model_info("mine-test").factory is second
    with pytest.raises(ValueError, match="already registered"):
        register_model("mine-test", "another")(lambda num_classes=10: nn.Identity())


@pytest.mark.parametrize(("typed", "meant"), [("tutorail", "tutorial"), ("Resnet", "resnet"),
                                              ("speedrun_long", "speedrun-long"),
                                              ("SPEEDRUN", "speedrun")])
def test_an_unknown_model_suggests_the_closest_name(typed: str, meant: str) -> None:
    with pytest.raises(UsageError) as caught:
        create_model(typed)
    assert f"did you mean '{meant}'?" in str(caught.value.message) + (caught.value.hint or "")
    assert "tiny" in (caught.value.hint or "")  # still lists them all


def test_a_name_like_none_suggests_nothing() -> None:
    with pytest.raises(UsageError) as caught:
        create_model("zzzzzz")
    assert "did you mean" not in str(caught.value.message) + (caught.value.hint or "")
