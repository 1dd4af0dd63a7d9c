"""Small optimizers for the speedrun trainer that do not derive from torch.optim.Optimizer.

Why: torch.optim.Optimizer's methods are wrapped so that their first call (the constructor's)
imports torch._dynamo, which takes 2 to 3 seconds; the whole speedrun is a few seconds on a GPU, and
`dlbox train` should print its accuracy soon after it is typed. These classes keep the
parts of the interface that the trainer uses (`param_groups`, `state`, `step()`,
`state_dict()` / `load_state_dict()` in torch's layout, so checkpoints stay compatible) and
update parameters with the same arithmetic as torch.optim.SGD (momentum, Nesterov, weight
decay added to the gradient), in foreach kernels: one launch per group and operation.

    sgd = NesterovSGD([dict(params=[...], lr=0.1, weight_decay=1e-4)], momentum=0.9)
    loss.backward(); sgd.step()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch


class PlainOptimizer:
    """param_groups / state / state_dict in torch.optim's layout, without its machinery.

    `params` is an iterable of tensors or of group dicts ({"params": [...], **options});
    `defaults` fill the options a group leaves out."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        items: list[Any] = [params] if isinstance(params, torch.Tensor) else list(params)
        groups: list[dict[str, Any]] = items if items and isinstance(items[0], dict) \
            else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            members = group["params"]
            members = [members] if isinstance(members, torch.Tensor) else list(members)
            self.param_groups.append({**self.defaults, **group, "params": members})
        self.state: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)

    def step(self) -> None:
        raise NotImplementedError

    def momentum_updates(self, group: dict[str, Any]
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The parameters of `group` that have a gradient, and each one's update before the
        learning rate, as torch.optim.SGD computes it (dampening 0): g = grad +
        weight_decay * p; buf = g on the first step, else momentum * buf + g; the update is
        g + momentum * buf with Nesterov, else buf. The buffers are kept in `state`."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return [], []
        grads = [p.grad for p in params]
        if group.get("weight_decay"):
            grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
        momentum = group["momentum"]
        later: list[tuple[torch.Tensor, torch.Tensor]] = []
        for param, grad in zip(params, grads, strict=True):
            state = self.state[param]
            if "momentum_buffer" in state:
                later.append((state["momentum_buffer"], grad))
            else:
                state["momentum_buffer"] = grad.detach().clone()
        if later:
            bufs, old_grads = (list(t) for t in zip(*later, strict=True))
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, old_grads)
        bufs = [self.state[p]["momentum_buffer"] for p in params]
        updates = list(torch._foreach_add(grads, bufs, alpha=momentum)) if group["nesterov"] \
            else bufs
        return params, updates

    def _all_params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = [{**{k: v for k, v in group.items() if k != "params"},
                   "params": [index[id(p)] for p in group["params"]]}
                  for group in self.param_groups]
        state = {index[id(p)]: dict(values) for p, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        params = self._all_params()
        groups = saved["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"])
                for g, mine in zip(groups, self.param_groups, strict=True)):
            raise ValueError("the saved optimizer state has other parameter groups than "
                             "this optimizer")
        for group, mine in zip(groups, self.param_groups, strict=True):
            mine.update({k: v for k, v in group.items() if k != "params"})
        self.state = defaultdict(dict)
        # State keys are positions in the flattened parameter list, as torch numbers them.
        for key, values in saved["state"].items():
            param = params[int(key)]
            self.state[param] = {
                name: value.to(device=param.device, dtype=param.dtype)
                if isinstance(value, torch.Tensor) and value.is_floating_point() else value
                for name, value in values.items()}


class NesterovSGD(PlainOptimizer):
    """torch.optim.SGD's update with momentum (dampening 0), optionally Nesterov:
    g = grad + weight_decay * p; buf = g on the first step, else momentum * buf + g;
    p -= lr * (g + momentum * buf if nesterov else buf)."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 0.0, nesterov: bool = True) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError("NesterovSGD needs lr > 0, momentum in [0, 1), weight_decay >= 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params, updates = self.momentum_updates(group)
            if params:
                torch._foreach_add_(params, updates, alpha=-group["lr"])
