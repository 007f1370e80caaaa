"""Adam (Kingma & Ba 2015), the optimiser of the training loop, without `torch.optim`.

`torch.optim.Optimizer` imports `torch._dynamo` (the compiler) the first time an optimiser is
built and on every step, to exclude itself from compilation. LSTM-AD never compiles, and that
import cost `train` 1.2 s of start-up on a quiet machine, up to 5.8 s under load (scripts/bench_startup.py).
This is the same update as `torch.optim.Adam(params, lr, foreach=True)` with its defaults
(betas 0.9/0.999, eps 1e-8, no weight decay, no amsgrad), written with the same foreach kernels
in the same order, so it matches torch's Adam to float rounding (tests/test_adam.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class Adam:
    """Adam over a fixed list of parameters; state per parameter: step, exp_avg, exp_avg_sq."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], lr: float):
        self.parameters = list(parameters)
        self.lr = lr
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.parameters]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.parameters]

    @torch.no_grad()
    def step(self) -> None:
        """One update from the parameters' .grad (parameters without a gradient are left alone)."""
        live = [i for i, p in enumerate(self.parameters) if p.grad is not None]
        if not live:
            return
        params: list[torch.Tensor] = [self.parameters[i] for i in live]
        grads: list[torch.Tensor] = [p.grad for p in params if p.grad is not None]
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        self.steps += 1
        torch._foreach_lerp_(exp_avg, grads, 1 - BETA1)
        torch._foreach_mul_(exp_avg_sq, BETA2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - BETA2)
        step_size = self.lr / (1 - BETA1 ** self.steps)
        bias_correction2_sqrt = math.sqrt(1 - BETA2 ** self.steps)
        denominator = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denominator, bias_correction2_sqrt)
        torch._foreach_add_(denominator, EPS)
        torch._foreach_addcdiv_(params, exp_avg, denominator, -step_size)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The state as named tensors (for checkpoints): `<index>.step`, `<index>.exp_avg`, ... One step count
        per parameter, as torch.optim.Adam's state held it, so checkpoints written before this class resume."""
        found: dict[str, torch.Tensor] = {}
        for index, (mean, square) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            found[f"{index}.step"] = torch.tensor(float(self.steps))
            found[f"{index}.exp_avg"] = mean
            found[f"{index}.exp_avg_sq"] = square
        return found

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `state_tensors` returned (same parameters, same shapes)."""
        with torch.no_grad():
            for index, (mean, square) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
                mean.copy_(tensors[f"{index}.exp_avg"])
                square.copy_(tensors[f"{index}.exp_avg_sq"])
        self.steps = int(tensors["0.step"].item()) if "0.step" in tensors else 0
