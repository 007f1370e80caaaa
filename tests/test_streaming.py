"""A live stream over real HTTP (the real `serve`): with `score-window-position` trailing, every score is final
when it is returned, and a client that sends each new row (or an irregular chunk of rows) with the rows the
model reads before it (`Predictor.rows_needed`) and says where the request starts (CustomAttributes
`first-row=N`) gets the scores and alarms of the whole series in one request: the network's numbers bit for bit,
the scores to 1e-9 relative (the discord term's running sums start at each request's first row).

Without `first-row` the request's chunks start at its own first row, so scores agree only to a few thousandths
of their spread. With the centred window the last rows of every request are scored on a cut window: far apart."""

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
# Without `first-row`, stream scores may differ from the whole request's by this part of the spread of the row's
# log-likelihood on the calibration rows (docs/serving-and-batch.md, "Live streams").
TOLERANCE = 5e-3


def post(server: Server, values: np.ndarray, first_row: int | None = None) -> np.ndarray:
    """score and alarm of every row of one request (JSON answer: full float precision); `first_row`: the number
    of its first row in the stream (CustomAttributes), None to leave it out."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if first_row is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = f"first-row={first_row}"
    response = requests.post(server.url + "/invocations", data=json.dumps({"values": values.tolist()}), timeout=60,
                             headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    return np.array([[np.nan if s is None else s for s in answer["log_likelihood"]],
                     [np.nan if a is None else a for a in answer["alarm"]]])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Predictor, np.ndarray]]:
    training, test, _, _ = make_demo()
    base = tmp_path_factory.mktemp("demo")
    train(base, {**DEMO_HYPERPARAMETERS, "score-window-position": "trailing"}, training)
    with running(base) as server:  # the stream: the training rows, then the test rows (3,700: four chunks)
        yield server, Predictor.load(base / "model"), np.concatenate([training, test])


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


def stream(server: Server, values: np.ndarray, first: int, chunks: list[int], before: int, told: bool = True
           ) -> np.ndarray:
    """Rows from `first` on, sent in chunks of the given sizes, each request with the `before` rows before it and,
    when `told`, the number of its first row; (2, rows) score and alarm of the rows sent new."""
    found, start = [], first
    for size in chunks:
        answer = post(server, values[start - before:start + size], start - before if told else None)
        found.append(answer[:, before:])
        start += size
    return np.concatenate(found, axis=1)


def check_exact(found: np.ndarray, whole: np.ndarray) -> None:
    assert np.isfinite(found[0]).all()
    np.testing.assert_allclose(found[0], whole[0], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(found[1], whole[1])  # the same alarms


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_one_new_row_per_request_gives_the_whole_series_scores(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, values = request.getfixturevalue(case)
    before, after = predictor.rows_needed()
    assert after == 0  # trailing: nothing after a row is read
    first = len(values) - 150
    assert first - before > predictor.chunk_length  # the requests start far into the stream
    whole = post(server, values)[:, first:]
    check_exact(stream(server, values, first, [1] * 150, before), whole)
    assert whole[1].any() or case == "ucr"  # the demo's flatline anomaly alarms within the streamed rows


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_irregular_chunks_give_the_whole_series_scores(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, values = request.getfixturevalue(case)
    before, _ = predictor.rows_needed()
    sizes = np.random.default_rng(7).integers(1, 40, size=25).tolist()  # about 500 rows
    first = len(values) - sum(sizes)
    assert first >= before
    whole = post(server, values)[:, first:]
    check_exact(stream(server, values, first, sizes, before), whole)


def test_without_first_row_a_stream_gets_close_not_equal_scores(demo) -> None:
    server, predictor, values = demo
    before, _ = predictor.rows_needed()
    first = len(values) - 150
    whole = post(server, values)[:, first:]
    found = stream(server, values, first, [1] * 150, before, told=False)
    difference = np.abs(found[0] - whole[0])
    assert difference.max() <= TOLERANCE * predictor.error_model.window.row.spread
    assert (difference > 1e-9 * np.abs(whole[0])).any()  # the request's own chunks: not the stream's numbers


@pytest.mark.parametrize("case", ["demo", "ucr"])
def test_the_overlap_is_told_in_model_json_and_the_serve_log(case: str, request: pytest.FixtureRequest) -> None:
    server, predictor, _ = request.getfixturevalue(case)
    before, after = predictor.rows_needed()
    meta = json.loads((server.base / "model" / "model.json").read_text())
    assert meta["rows_needed"] == {"before": before, "after": after} and after == 0
    told = (f"a live stream sends each new row with the {before} rows before it and CustomAttributes first-row=<the "
            f"number of the request's first row in the stream> (model.json: rows_needed); split files start on "
            f"multiples of {predictor.chunk_length} rows and overlap by {sum(predictor.split_margins())} rows")
    assert told in server.log_path.read_text()


def test_a_centred_window_changes_the_last_rows_once_later_rows_arrive(demo, tmp_path: Path) -> None:
    """What `centred` costs a stream: the same data and network, the default position; each request told its
    first row, so the difference is the cut window alone."""
    _, trailing, values = demo
    training, _, _, _ = make_demo()
    train(tmp_path, DEMO_HYPERPARAMETERS, training)
    centred = Predictor.load(tmp_path / "model")
    before, after = centred.rows_needed()
    assert (before, after) == (50 + centred.chunk_length - 1 + 12, 12)
    whole = centred.score(values).score
    rows = range(len(values) - 300, len(values) - 200)
    last = np.array([centred.score(values[t - before:t + 1], first_row=t - before).score[-1] for t in rows])
    spread = centred.error_model.window.row.spread
    assert np.abs(last - whole[list(rows)]).max() > 100 * TOLERANCE * spread  # provisional scores
    waited = np.array([centred.score(values[t - before:t + 1 + after], first_row=t - before).score[before]
                       for t in rows])  # `after` rows later: final
    np.testing.assert_allclose(waited, whole[list(rows)], rtol=1e-9)
