"""dlbox.training.optim: the speedrun trainer's optimizers match torch.optim.SGD's arithmetic,
save and load in torch's layout, and keep torch._dynamo's slow import off `dlbox train`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from dlbox.training.optim import NesterovSGD


def params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g)),
            torch.nn.Parameter(torch.randn(5, generator=g)),
            torch.nn.Parameter(torch.randn(2, 2, 3, 3, generator=g))]


def run(optimizer_cls: Any, nesterov: bool, steps: int = 5) -> list[torch.Tensor]:
    ps = params()
    groups = [dict(params=ps[:2], lr=0.1, weight_decay=0.01), dict(params=ps[2:], lr=0.05)]
    optimizer = optimizer_cls(groups, momentum=0.85, nesterov=nesterov)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g)
        if step == 2:
            ps[1].grad = None  # a parameter without a gradient this step is left alone
        optimizer.step()
    return [p.detach().clone() for p in ps]


@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_sgd(nesterov: bool) -> None:
    ours = run(NesterovSGD, nesterov)
    theirs = run(torch.optim.SGD, nesterov)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_state_dict_round_trip_in_torchs_layout() -> None:
    ps = params()
    first = NesterovSGD([dict(params=ps[:2], lr=0.1), dict(params=ps[2:], lr=0.2)],
                        momentum=0.9)
    for p in ps:
        p.grad = torch.ones_like(p)
    first.step()
    saved = first.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2]
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]
    # torch.optim.SGD reads the same layout, and so do we, back into fresh parameters.
    torch_sgd = torch.optim.SGD([dict(params=ps[:2], lr=0.1), dict(params=ps[2:], lr=0.2)],
                                momentum=0.9, nesterov=True)
    torch_sgd.load_state_dict(saved)
    second = NesterovSGD([dict(params=ps[:2], lr=1.0), dict(params=ps[2:], lr=1.0)],
                         momentum=0.9)
    second.load_state_dict(saved)
    assert [g["lr"] for g in second.param_groups] == [0.1, 0.2]
    assert torch.equal(second.state[ps[2]]["momentum_buffer"],
                       first.state[ps[2]]["momentum_buffer"])
    with pytest.raises(ValueError, match="other parameter groups"):
        NesterovSGD(ps, momentum=0.9).load_state_dict(saved)


def test_a_speedrun_never_imports_dynamo() -> None:
    """torch.optim's first call imports torch._dynamo (2-3 s of start-up); speedrun avoids it."""
    code = (
        "import sys, torch\n"
        "from dlbox.data.dataset import ImageDataset\n"
        "from dlbox.models.speedrun import SpeedrunNet\n"
        "from dlbox.training.speedrun import SpeedrunConfig, train_speedrun\n"
        "x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)\n"
        "data = ImageDataset(x, torch.arange(64) % 2, ('a', 'b'), 'memory')\n"
        "config = SpeedrunConfig(epochs=1, batch_size=32, widths=(8, 8, 8), eval_batch_size=32)\n"
        "train_speedrun(data, data, config, 'cpu',\n"
        "               make_model=lambda n: SpeedrunNet(n, widths=(8, 8, 8)))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_group_of_one_tensor_is_one_parameter() -> None:
    p = torch.nn.Parameter(torch.ones(3, 2))
    optimizer = NesterovSGD([{"params": p, "lr": 0.5}], momentum=0.0)
    p.grad = torch.ones_like(p)
    optimizer.step()
    assert torch.equal(p.detach(), torch.full((3, 2), 0.5))
