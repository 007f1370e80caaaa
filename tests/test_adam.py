"""lstm_ad.adam.Adam against torch.optim.Adam, the reference it replaces, and against the paper's update."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lstm_ad.adam import Adam


def _network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _train(network: torch.nn.Module, step: object, steps: int) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 3, generator=generator)
        for p in network.parameters():
            p.grad = None
        network(x).square().mean().backward()
        step()  # type: ignore[operator]


def test_matches_torch_adam_over_many_steps() -> None:
    ours, theirs = _network(0), _network(0)
    mine = Adam(ours.parameters(), lr=3e-3)
    reference = torch.optim.Adam(theirs.parameters(), lr=3e-3, foreach=True)
    _train(ours, mine.step, 200)
    _train(theirs, reference.step, 200)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_first_step_is_the_papers_update() -> None:
    """Kingma & Ba, Algorithm 1, written out per element for one step: m = (1-b1) g, v = (1-b2) g^2,
    m_hat = g, v_hat = g^2, so each parameter moves by -lr * g / (|g| + eps)."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    weight.grad = torch.tensor([0.3, -4.0, 1e-9])
    Adam([weight], lr=0.1).step()
    start, gradient = [1.0, -2.0, 0.5], [0.3, -4.0, 1e-9]
    expected = [w - 0.1 * g / (math.sqrt(g * g) + 1e-8) for w, g in zip(start, gradient, strict=True)]
    np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=1e-6)


def test_state_round_trip_resumes_the_same_trajectory() -> None:
    straight, resumed = _network(0), _network(0)
    optimiser = Adam(straight.parameters(), lr=1e-2)
    _train(straight, optimiser.step, 10)
    saved = {name: t.clone() for name, t in optimiser.state_tensors().items()}
    weights = {name: t.clone() for name, t in straight.state_dict().items()}
    _train(straight, optimiser.step, 5)
    resumed.load_state_dict(weights)
    again = Adam(resumed.parameters(), lr=1e-2)
    again.load_state_tensors(saved)
    assert again.steps == 10
    _train(resumed, again.step, 5)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_training_does_not_import_the_compiler() -> None:
    """torch.optim's optimisers import torch._dynamo (seconds of start-up); a training run must not."""
    code = ("import sys, numpy as np; from lstm_ad.data import Series; from lstm_ad.hyperparameters import "
            "Hyperparameters; from lstm_ad.training import train; "
            "train([Series('s', np.sin(np.arange(400.0) / 5)[:, None])], Hyperparameters(context_length=20, "
            "prediction_length=2, epochs=2)); print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
