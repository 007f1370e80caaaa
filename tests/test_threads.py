"""Data-parallel gradients on CPU threads (parallel/threads.py): same step as the full batch, reproducible, tidy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import sine_series
from lstm_ad import training
from lstm_ad.data import Series
from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.model import LSTMForecaster, NetworkConfig
from lstm_ad.parallel.threads import ThreadReplicas, replica_count
from lstm_ad.subsequences import subsequence_loss

WINDOW = 20 + 3  # context-length + prediction-length of HP
HP = Hyperparameters(context_length=20, prediction_length=3, sequence_stride=5, hidden_size=8, num_layers=2,
                     batch_size=32, epochs=3, early_stopping_patience=0, dropout=0.0, seed=0)


def _loss(network: torch.nn.Module, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return subsequence_loss(network, windows, HP)


def _network(seed: int = 0) -> LSTMForecaster:
    torch.manual_seed(seed)
    return LSTMForecaster(NetworkConfig(columns=2, prediction_length=HP.prediction_length,
                                        hidden_size=HP.hidden_size, num_layers=HP.num_layers, dropout=0.0))


@pytest.mark.parametrize("replicas, batch", [(1, 32), (2, 32), (3, 37), (4, 3)])
def test_thread_replicas_gradient_is_the_full_batch_gradient(replicas: int, batch: int) -> None:
    windows = torch.randn(batch, WINDOW, 2, generator=torch.Generator().manual_seed(1))
    plain = _network()
    mse, mae = _loss(plain, windows)
    mse.backward()  # the reference: autograd over the whole mini-batch at once

    threaded = _network()
    with ThreadReplicas(threaded, replicas) as gradient:
        got_mse, got_mae = gradient(_loss, windows)
    assert got_mse == pytest.approx(mse.item(), rel=1e-6)
    assert got_mae == pytest.approx(mae.item(), rel=1e-6)
    for (name, p), q in zip(plain.named_parameters(), threaded.parameters(), strict=True):
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_replicas_follow_the_network_between_batches() -> None:
    """After an optimiser step every replica must compute with the new weights, not stale copies."""
    windows = torch.randn(16, WINDOW, 2, generator=torch.Generator().manual_seed(2))
    plain, threaded = _network(), _network()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.5)
    threaded_opt = torch.optim.SGD(threaded.parameters(), lr=0.5)
    with ThreadReplicas(threaded, 2) as gradient:
        for _ in range(3):
            plain_opt.zero_grad(set_to_none=True)
            _loss(plain, windows)[0].backward()
            plain_opt.step()
            gradient(_loss, windows)
            threaded_opt.step()
    for p, q in zip(plain.parameters(), threaded.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device, batch, dropout, cores, expected", [
    ("cpu", 64, 0.0, 2, 2),
    ("cpu", 64, 0.0, 16, 4),  # at least 16 windows per replica
    ("cpu", 128, 0.0, 1, 1),
    ("cpu", 8, 0.0, 4, 1),
    ("cpu", 64, 0.2, 4, 1),  # dropout: one random stream, one replica, reproducible
    ("cuda", 64, 0.0, 8, 1),
])
def test_replica_count(device: str, batch: int, dropout: float, cores: int, expected: int) -> None:
    assert replica_count(torch.device(device), batch, dropout, cores) == expected


def _train_with_threads(threads: int, series: list[Series]) -> training.TrainingResult:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the replica count follows torch's thread count
    try:
        result = training.train(series, HP, device=torch.device("cpu"))
        assert torch.get_num_threads() == threads  # restored after training on one thread per replica
        return result
    finally:
        torch.set_num_threads(before)


def test_threaded_training_is_reproducible_and_matches_one_replica() -> None:
    series = [Series("a.csv", sine_series(400, columns=2)), Series("b.csv", sine_series(300, columns=2, seed=1))]
    first, second = _train_with_threads(2, series), _train_with_threads(2, series)
    one_replica = _train_with_threads(1, series)
    assert first.summary.epochs_run == one_replica.summary.epochs_run == HP.epochs
    test = sine_series(300, columns=2, seed=2)
    scores = first.predictor.score(test).score
    assert np.isfinite(scores[HP.context_length:]).all()
    np.testing.assert_array_equal(scores, second.predictor.score(test).score)  # same seed and replicas
    # One replica differs only by the rounding of the summed gradient.
    np.testing.assert_allclose(scores, one_replica.predictor.score(test).score, rtol=1e-3, atol=1e-3)
