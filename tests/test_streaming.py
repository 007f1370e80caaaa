"""A live stream over real HTTP (the real `serve`): with `score-window-position` trailing, every score is final
when it is returned, and a client that sends each new row (or an irregular chunk of rows) with the rows the
model reads before it (`Predictor.rows_needed`) gets the scores and alarms of the whole series in one request.

Up to the network's state: in one long request the LSTM starts reading at a chunk boundary, in a stream request
at the request's first row, so error vectors differ in about their 5th digit, and scores by at most a few
thousandths of the score's spread on normal data (docs/serving-and-batch.md, "Live streams"); the alarms are the
same. With the centred window the last rows of every request are scored on a cut window: far apart."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import shared_data
from lstm_ad.predictor import Predictor
from lstm_ad_local.demo_data import make_demo
from test_serve import Server, train

pytestmark = pytest.mark.slow  # real processes

DEMO_HYPERPARAMETERS = {"context-length": "50", "prediction-length": "1", "hidden-size": "16", "num-layers": "2",
                        "epochs": "20", "lr": "0.01", "alarm-fraction": "0.01"}
# Stream scores may differ from the whole request's by this part of the spread of the row's log-likelihood on the
# calibration rows (measured: at most 1.7e-3 on the demo model; docs/serving-and-batch.md, "Live streams").
TOLERANCE = 5e-3


def post(server: Server, values: np.ndarray) -> np.ndarray:
    """score and alarm of every row of one request (JSON answer: full float precision)."""
    response = requests.post(server.url + "/invocations", data=json.dumps({"values": values.tolist()}), timeout=60,
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert response.status_code == 200, response.text
    answer = response.json()
    return np.array([[np.nan if s is None else s for s in answer["log_likelihood"]],
                     [np.nan if a is None else a for a in answer["alarm"]]])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Predictor, np.ndarray]]:
    training, test, _, _ = make_demo()
    base = tmp_path_factory.mktemp("demo")
    train(base, {**DEMO_HYPERPARAMETERS, "score-window-position": "trailing"}, training)
    with running(base) as server:
        yield server, Predictor.load(base / "model"), test


@pytest.fixture(scope="module")
def ucr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Predictor, np.ndarray]]:
    """UCR series 115 (one column: the discord term is on), trained briefly with the trailing position."""
    path = shared_data("ucr-dev", "115_UCR_Anomaly_CIMIS44AirTemperature3_4000_6520_6544.txt")
    train_end = int(re.findall(r"_(\d+)", path.stem)[-3])
    values = np.loadtxt(path)[:, None]
    base = tmp_path_factory.mktemp("ucr")
    train(base, {"epochs": "3", "score-window-position": "trailing", "alarm-fraction": "0.01"}, values[:train_end])
    with running(base) as server:
        yield server, Predictor.load(base / "model"), values[train_end - 400:train_end + 2800]


class running:
    def __init__(self, base: Path):
        self.server = Server(base, SAGEMAKER_MODEL_SERVER_WORKERS="1", LSTM_AD_TORCH_THREADS="1",
                             LSTM_AD_OUTPUT="alarm")

    def __enter__(self) -> Server:
        self.server.wait_ready()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def stream(server: Server, values: np.ndarray, first: int, chunks: list[int], before: int) -> np.ndarray:
    """Rows from `first` on, sent in chunks of the given sizes, each request with the `before` rows before it;
    (2, rows) score and alarm of the rows sent new."""
    found, start = [], first
    for size in chunks:
        answer = post(server, values[start - before:start + size])
        found.append(answer[:, before:])
        start += size
    return np.concatenate(found, axis=1)


def check(found: np.ndarray, whole: np.ndarray, predictor: Predictor) -> None:
    spread = predictor.error_model.window.row.spread
    assert np.isfinite(found[0]).all()
    assert np.abs(found[0] - whole[0]).max() <= TOLERANCE * spread
    np.testing.assert_array_equal(found[1], whole[1])  # the same alarms


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_one_new_row_per_request_gives_the_whole_series_scores(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, values = request.getfixturevalue(case)
    before, after = predictor.rows_needed()
    assert after == 0  # trailing: nothing after a row is read
    first = len(values) - 150
    whole = post(server, values)[:, first:]
    found = stream(server, values, first, [1] * 150, before)
    check(found, whole, predictor)
    assert whole[1].any() or case == "ucr"  # the demo's frequency anomaly alarms within the streamed rows


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_irregular_chunks_give_the_whole_series_scores(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, values = request.getfixturevalue(case)
    before, _ = predictor.rows_needed()
    sizes = np.random.default_rng(7).integers(1, 40, size=25).tolist()  # about 500 rows
    first = len(values) - sum(sizes)
    assert first >= before
    whole = post(server, values)[:, first:]
    check(stream(server, values, first, sizes, before), whole, predictor)


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_the_overlap_is_told_in_model_json_and_the_serve_log(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, _ = request.getfixturevalue(case)
    before, after = predictor.rows_needed()
    meta = json.loads((server.base / "model" / "model.json").read_text())
    assert meta["rows_needed"] == {"before": before, "after": after} and after == 0
    told = f"a live stream sends each new row with the {before} rows before it; split files overlap by {before} rows"
    assert told in server.log_path.read_text()


def test_a_centred_window_changes_the_last_rows_once_later_rows_arrive(demo, tmp_path: Path) -> None:
    """What `centred` costs a stream: the same data and network, the default position."""
    _, trailing, values = demo
    training, _, _, _ = make_demo()
    train(tmp_path, DEMO_HYPERPARAMETERS, training)
    centred = Predictor.load(tmp_path / "model")
    before, after = centred.rows_needed()
    assert (before, after) == (50 + 12, 12)
    whole = centred.score(values).score
    last = np.array([centred.score(values[t - before:t + 1]).score[-1] for t in range(900, 1000)])
    spread = centred.error_model.window.row.spread
    assert np.abs(last - whole[900:1000]).max() > 100 * TOLERANCE * spread  # provisional scores
