"""The real `serve` console script (gunicorn + Flask) in a subprocess, on an artifact made by the real `train`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from conftest import TINY_HYPERPARAMETERS, make_opt_ml, shared_data, sine_series
from lstm_ad.data import read_series_file
from lstm_ad.predictor import Predictor
from lstm_ad.sagemaker.payloads import encode_csv
from lstm_ad.tensor_files import load_tensors, save_tensors
from lstm_ad_local.server import LocalServer

pytestmark = pytest.mark.slow  # every test here starts a process

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120  # the machine is shared: torch imports and worker warm-up can be slow
CONTEXT = int(TINY_HYPERPARAMETERS["context-length"])


class Server(LocalServer):
    """The real `serve` rooted at `base` on a free port: the local job runner's server process
    (its own process group, so stopping it also stops the workers)."""

    def __init__(self, base: Path, **environment: str):
        super().__init__(base, [str(BIN / "serve")], environment, base / "serve.log")
        self.start()

    def wait_ready(self) -> None:
        self.wait_until_ready(START_TIMEOUT_S)  # raises with the server log if it exits or never answers

    def post_csv(self, body: bytes, **headers: str) -> requests.Response:
        return requests.post(self.url + "/invocations", data=body, timeout=60,
                             headers={"Content-Type": "text/csv", **headers})


def train(base: Path, hyperparameters: dict[str, str], training: np.ndarray) -> Path:
    make_opt_ml(base, hyperparameters, {"training": {"series.csv": training}})
    # One OpenMP thread: a tiny model trains no faster on two, and far slower when the machine is busy.
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(BIN / "train")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return base / "model"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("opt_ml")
    train(base, TINY_HYPERPARAMETERS, sine_series(400, columns=2))
    return base


@pytest.fixture(scope="module")
def trained_with_arrays(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-column model with centres and the discord term: its artifact has centres.npz and discord.npz."""
    base = tmp_path_factory.mktemp("opt_ml_arrays")
    train(base, {**TINY_HYPERPARAMETERS, "error-centres": "10000", "discord-window": "10"},
          sine_series(2000, columns=1))
    return base


@pytest.fixture(scope="module")
def server(trained: Path) -> Iterator[Server]:
    server = Server(trained, SAGEMAKER_MODEL_SERVER_WORKERS="2", LSTM_AD_TORCH_THREADS="1")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def predictor(trained: Path) -> Iterator[Predictor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker; also far faster than 2 threads on a busy 2-core machine
    yield Predictor.load(trained / "model")
    torch.set_num_threads(threads)


def csv_bytes(values: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in values).encode() + b"\n"


def parse_answer(text: str) -> np.ndarray:
    return np.array([[float(c) if c else np.nan for c in line.split(",")] for line in text.splitlines()])


def test_ping_and_execution_parameters(server: Server) -> None:
    ping = requests.get(server.url + "/ping", timeout=2)
    assert ping.status_code == 200 and ping.content == b""
    parameters = requests.get(server.url + "/execution-parameters", timeout=2).json()
    assert parameters == {"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 50}


def test_csv_answer_is_the_predictor_output_row_by_row(server: Server, predictor: Predictor, trained: Path) -> None:
    test_file = trained / "test.csv"
    np.savetxt(test_file, sine_series(300, columns=2, seed=7) + 0.1, delimiter=",", fmt="%.6f")
    response = server.post_csv(test_file.read_bytes())
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    expected = predictor.score(read_series_file(test_file))
    assert response.content == encode_csv(expected)  # byte for byte what the predictor's output formats to
    got = parse_answer(response.text)
    assert got.shape == (300, 3)
    assert (response.text.splitlines()[:CONTEXT] == [",,"] * CONTEXT) and np.isfinite(got[CONTEXT:]).all()
    np.testing.assert_allclose(got[:, 0], expected.score, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(got[:, 1:], expected.predictions, rtol=1e-8, equal_nan=True)
    assert server.post_csv(test_file.read_bytes()).content == response.content  # retries give the same bytes


def test_a_chunked_request_gets_the_same_answer(server: Server) -> None:
    body = csv_bytes(sine_series(500, columns=2, seed=5))
    whole = server.post_csv(body)
    chunked = requests.post(server.url + "/invocations", data=(body[i:i + 1000] for i in range(0, len(body), 1000)),
                            headers={"Content-Type": "text/csv"}, timeout=60)  # a generator: Transfer-Encoding chunked
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert whole.status_code == chunked.status_code == 200
    assert chunked.content == whole.content


def test_json_answer_is_the_predictor_output_exactly(server: Server, predictor: Predictor) -> None:
    series = sine_series(120, columns=2, seed=3)
    response = requests.post(server.url + "/invocations", json={"values": series.tolist()},
                             headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    expected = predictor.score(series)
    assert response.json()["log_likelihood"][CONTEXT:] == expected.score[CONTEXT:].tolist()
    assert response.json()["predictions"][CONTEXT:] == expected.predictions[CONTEXT:].tolist()


OUTPUT_CHOICES = [
    # (id, request headers, JSON "output" field (None: send CSV), alarm, attribution)
    ("accept alarm", {"Accept": "text/csv; output=alarm"}, None, True, False),
    ("accept both", {"Accept": 'text/csv; output="alarm,attribution"'}, None, True, True),
    ("custom attributes", {"X-Amzn-SageMaker-Custom-Attributes": "output=attribution"}, None, False, True),
    ("json field", {"Accept": "text/csv"}, ["alarm", "attribution"], True, True),
]


@pytest.mark.parametrize("headers, field, alarm, attribution", [c[1:] for c in OUTPUT_CHOICES],
                         ids=[c[0] for c in OUTPUT_CHOICES])
def test_optional_outputs_per_request(server: Server, predictor: Predictor, headers: dict, field,
                                      alarm: bool, attribution: bool) -> None:
    series = sine_series(150, columns=2, seed=11)
    series[100:104, 1] += 2.0  # an anomaly in column 2, so alarms fire
    if field is None:
        response = server.post_csv(csv_bytes(series), **headers)
    else:
        response = requests.post(server.url + "/invocations", json={"values": series.tolist(), "output": field},
                                 headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    expected = predictor.score(series, alarm=alarm, attribution=attribution)
    assert response.content == encode_csv(expected)
    width = 3 + alarm + 2 * attribution
    assert response.text.splitlines()[:CONTEXT] == ["," * (width - 1)] * CONTEXT
    got = parse_answer(response.text)
    assert got.shape == (150, width) and np.isfinite(got[CONTEXT:]).all()
    if alarm:
        assert got[100:106, 3].max() == 1
    if attribution:
        # On the first anomalous row (read after normal input) column 2 takes the blame; later rows' predictions
        # have read the anomaly, so both columns' errors grow.
        assert got[100, -1] > 2 * got[100, -2]


def test_optional_outputs_in_json_through_gunicorn(server: Server, predictor: Predictor) -> None:
    series = sine_series(120, columns=2, seed=3)
    response = requests.post(server.url + "/invocations", json={"values": series.tolist()},
                             headers={"Accept": "application/json; output=alarm+attribution"}, timeout=60)
    assert response.status_code == 200, response.text
    document = response.json()
    expected = predictor.score(series, alarm=True, attribution=True)
    assert document["alarm"][:CONTEXT] == [None] * CONTEXT
    assert document["alarm"][CONTEXT:] == expected.alarm[CONTEXT:].astype(int).tolist()
    assert document["attribution"][CONTEXT:] == expected.attribution[CONTEXT:].tolist()
    bad = server.post_csv(csv_bytes(series), Accept="text/csv; output=everything")
    assert bad.status_code == 400 and "alarm, attribution" in bad.text


def test_lstm_ad_output_sets_the_layout_of_every_answer(trained: Path, predictor: Predictor) -> None:
    """The transformer's / model's env= (batch transform cannot send per-request headers)."""
    series = sine_series(130, columns=2, seed=4)
    server = Server(trained, SAGEMAKER_MODEL_SERVER_WORKERS="1", LSTM_AD_TORCH_THREADS="1",
                    LSTM_AD_OUTPUT="alarm,attribution")
    try:
        server.wait_ready()
        response = server.post_csv(csv_bytes(series))
        assert response.status_code == 200, response.text
        assert response.content == encode_csv(predictor.score(series, alarm=True, attribution=True))
        plain = server.post_csv(csv_bytes(series), Accept="text/csv; output=none")  # a request may opt out
        assert plain.content == encode_csv(predictor.score(series))
        document = requests.post(server.url + "/invocations", json={"values": series.tolist()},
                                 headers={"Accept": "application/json"}, timeout=60).json()
        assert set(document) == {"log_likelihood", "predictions", "alarm", "attribution"}
    finally:
        server.stop()


def test_default_output_stored_at_training_sets_every_answer(tmp_path: Path) -> None:
    """The Marketplace buyer's batch transform: no env reaches the container (SDK v2's AlgorithmEstimator drops
    it), so the model's own default-output chooses the columns; LSTM_AD_OUTPUT and requests still win."""
    base = tmp_path / "opt_ml"
    train(base, {**TINY_HYPERPARAMETERS, "default-output": "alarm,attribution"}, sine_series(400, columns=2))
    model = Predictor.load(base / "model")
    series = sine_series(130, columns=2, seed=4)
    server = Server(base, SAGEMAKER_MODEL_SERVER_WORKERS="1", LSTM_AD_TORCH_THREADS="1")
    try:
        server.wait_ready()
        response = server.post_csv(csv_bytes(series))
        assert response.status_code == 200, response.text
        assert response.content == encode_csv(model.score(series, alarm=True, attribution=True))
        assert parse_answer(response.text).shape == (130, 6)  # score, 2 predictions, alarm, 2 attributions
        plain = server.post_csv(csv_bytes(series), Accept="text/csv; output=none")  # a request may opt out
        assert plain.content == encode_csv(model.score(series))
    finally:
        server.stop()
    assert ("optional outputs unless a request chooses: alarm,attribution (the model's default-output)"
            in (base / "serve.log").read_text())
    server = Server(base, SAGEMAKER_MODEL_SERVER_WORKERS="1", LSTM_AD_TORCH_THREADS="1", LSTM_AD_OUTPUT="alarm")
    try:  # the container's environment wins over the model's default
        server.wait_ready()
        assert server.post_csv(csv_bytes(series)).content == encode_csv(model.score(series, alarm=True))
    finally:
        server.stop()
    assert "optional outputs unless a request chooses: alarm (LSTM_AD_OUTPUT)" in (base / "serve.log").read_text()


def gappy_series() -> np.ndarray:
    series = sine_series(160, columns=2, seed=12)
    series[60:70, 0] = np.nan  # a gap in one column
    series[90:93, :] = np.nan  # rows with nothing observed
    series[5, 1] = np.nan  # a gap in the warm-up
    return series


def gappy_csv(series: np.ndarray) -> bytes:
    return "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in series).encode() + b"\n"


@pytest.mark.parametrize("accept", ["text/csv", 'text/csv; output="alarm,attribution"'])
def test_gaps_as_empty_csv_cells(server: Server, predictor: Predictor, accept: str) -> None:
    series = gappy_series()
    response = server.post_csv(gappy_csv(series), Accept=accept)
    assert response.status_code == 200, response.text
    extras = "output" in accept
    expected = predictor.score(series, alarm=extras, attribution=extras)
    assert response.content == encode_csv(expected)
    got = parse_answer(response.text)
    assert got.shape == (160, 6 if extras else 3)
    assert np.isfinite(got[60:70, 0]).all()  # rows with a gap still get a (marginal) score
    assert np.isnan(got[90:93, 0]).all() and np.isfinite(got[90:93, 1:3]).all()  # nothing observed: no score
    assert np.isfinite(np.delete(got[CONTEXT:, 0], np.arange(90 - CONTEXT, 93 - CONTEXT))).all()
    if extras:
        assert np.isnan(got[60:70, 4]).all() and np.isfinite(got[60:70, 5]).all()  # a missing column: no share
        assert np.isnan(got[90:93, 3:]).all()


def test_gaps_as_json_nulls(server: Server, predictor: Predictor) -> None:
    series = gappy_series()
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in series]
    response = requests.post(server.url + "/invocations", json={"values": rows, "output": ["alarm"]},
                             headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    document = response.json()
    expected = predictor.score(series, alarm=True)
    assert document["log_likelihood"][90:93] == [None] * 3 and document["alarm"][90:93] == [None] * 3
    finite = np.isfinite(expected.score)
    scores = np.array(document["log_likelihood"], dtype=float)
    assert scores[finite].tolist() == expected.score[finite].tolist()
    as_csv = server.post_csv(gappy_csv(series))  # the same series as CSV: the same scores
    np.testing.assert_allclose(parse_answer(as_csv.text)[:, 0], expected.score, rtol=1e-8, equal_nan=True)


def test_concurrent_requests_each_get_their_own_answer(server: Server, predictor: Predictor) -> None:
    series = [sine_series(50 + 37 * i, columns=2, seed=i) for i in range(12)]
    expected = [encode_csv(predictor.score(s)) for s in series]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda s: server.post_csv(csv_bytes(s)), series))
    assert [a.status_code for a in answers] == [200] * len(series)
    assert [a.content for a in answers] == expected


def test_a_malformed_request_between_two_good_ones_harms_neither(server: Server) -> None:
    good = csv_bytes(sine_series(80, columns=2))
    first = server.post_csv(good)
    bad = server.post_csv(b"1.0,2.0\n3.0,oops\n" + good)
    wrong_type = server.post_csv(good, **{"Content-Type": "application/octet-stream"})
    second = server.post_csv(good)
    assert (first.status_code, bad.status_code, wrong_type.status_code, second.status_code) == (200, 400, 415, 200)
    assert bad.text == ("request body, line 2, column 2: 'oops' is not a number. Every cell must be a plain decimal "
                        "number (digits 0-9 with an optional sign, decimal point and exponent, e.g. -1.25e-3).\n")
    assert first.content == second.content


@pytest.mark.parametrize("damage, reason", [
    ("missing", "Cannot serve: No LSTM-AD model in {model}"),
    ("truncated weights", "Cannot serve: The model in {model} is damaged or incompatible"),
    ("bad json", "Cannot serve: The model in {model} is damaged or incompatible"),
    ("pickled weights", "Cannot serve: The model in {model} is damaged or incompatible: {model}/weights.npz is not "
                        "a plain numeric .npz archive"),
    ("other shapes", "Cannot serve: The model in {model} is damaged or incompatible: Error(s) in loading state_dict"),
    ("old format", "Cannot serve: {model}/model.json: format version 1; this image reads versions 2, 3, 4. Retrain"),
    ("centres missing", "Cannot serve: The model in {model} is damaged or incompatible: {model}/centres.npz does "
                        "not exist"),
    ("centres of another width", "Cannot serve: {model}/centres.npz: centres of shape (CENTRES, 1) (expected "
                                 "(CENTRES, 2), all finite): the model is damaged"),
    ("discord missing", "Cannot serve: The model in {model} is damaged or incompatible: {model}/discord.npz does "
                        "not exist"),
    ("discord of another width", "Cannot serve: {model}/discord.npz: references of shape (1024, 7) (expected "
                                 "(1024, 8), all finite): the model is damaged"),
])
def test_a_model_that_cannot_be_loaded_stops_serve_at_once(trained_with_arrays: Path, tmp_path: Path, damage: str,
                                                            reason: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    if damage != "missing":
        for name in ("model.json", "weights.npz", "centres.npz", "discord.npz"):
            (model / name).write_bytes((trained_with_arrays / "model" / name).read_bytes())
    centres_count = load_tensors(model / "centres.npz")[0]["centres"].shape[0] if damage != "missing" else 0
    weights = model / "weights.npz"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    if damage == "bad json":
        (model / "model.json").write_text('{"format_version": 2}')
    if damage == "pickled weights":  # an object array: loading it would unpickle
        np.savez(weights, **{"head.weight": np.array([{"x": 1}], dtype=object)})
    if damage == "other shapes":  # weights of a network with 3 hidden units instead of 8
        tensors, extra = load_tensors(weights)
        save_tensors(weights, {name: t[..., :3] if t.shape[-1] == 8 else t for name, t in tensors.items()}, extra)
    if damage == "centres missing":
        (model / "centres.npz").unlink()
    if damage == "centres of another width":
        centres = load_tensors(model / "centres.npz")[0]["centres"]
        save_tensors(model / "centres.npz", {"centres": centres[:, :-1]})
    if damage == "discord missing":
        (model / "discord.npz").unlink()
    if damage == "discord of another width":
        refs = load_tensors(model / "discord.npz")[0]["refs"]
        save_tensors(model / "discord.npz", {"refs": refs[:, :-1]})
    if damage == "old format":
        meta = json.loads((model / "model.json").read_text())
        (model / "model.json").write_text(json.dumps({**meta, "format_version": 1}))
    server = Server(tmp_path)
    try:
        code = server.process.wait(timeout=START_TIMEOUT_S)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert code == 1
    assert reason.format(model=model).replace("CENTRES", str(centres_count)) in log, log
    assert "Listening at" not in log  # never a server that would answer /ping


def test_bad_settings_stop_serve_with_the_variable_named(trained: Path) -> None:
    server = Server(trained, SAGEMAKER_MODEL_SERVER_WORKERS="many")
    try:
        code = server.process.wait(timeout=START_TIMEOUT_S)
    finally:
        server.stop()
    assert code == 2 and "SAGEMAKER_MODEL_SERVER_WORKERS='many'" in server.log_path.read_text()


def test_alarms_asked_of_a_model_without_a_threshold_stop_serve(trained: Path, tmp_path: Path) -> None:
    """LSTM_AD_OUTPUT=alarm with a model from before thresholds were stored: exit 2 at start, not a 400 per request."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.npz").write_bytes((trained / "model" / "weights.npz").read_bytes())
    meta = json.loads((trained / "model" / "model.json").read_text())
    del meta["alarm_threshold"], meta["centres"]  # as format 2 wrote it, before centres and thresholds
    meta["format_version"] = 2
    (model / "model.json").write_text(json.dumps(meta))
    server = Server(tmp_path, LSTM_AD_OUTPUT="alarm,attribution")
    try:
        code = server.process.wait(timeout=START_TIMEOUT_S)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert code == 2 and "has no stored alarm threshold" in log and "Retrain it" in log, log
    assert "Listening at" not in log


def test_payload_limit_then_sigterm_shuts_down_cleanly(trained: Path) -> None:
    server = Server(trained, SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    try:
        server.wait_ready()
        body = csv_bytes(sine_series(40_000, columns=2))
        too_large = server.post_csv(body)
        assert too_large.status_code == 413 and "limit of 1 MB" in too_large.text
        # Without Content-Length (chunked), the limit holds too: never an answer for the first 1 MB only.
        pieces = (body[i:i + 65536] for i in range(0, len(body), 65536))
        chunked = requests.post(server.url + "/invocations", data=pieces, headers={"Content-Type": "text/csv"},
                                timeout=60)
        assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
        assert chunked.status_code == 413 and "limit of 1 MB" in chunked.text
        assert requests.get(server.url + "/execution-parameters", timeout=2).json()["MaxPayloadInMB"] == 1
        assert server.post_csv(csv_bytes(sine_series(60, columns=2))).status_code == 200
        os.kill(server.process.pid, signal.SIGTERM)  # as `docker stop`: to the master (PID 1) only
        code = server.process.wait(timeout=30)
    finally:
        server.stop()
    assert code == 0
    assert "Shutting down" in server.log_path.read_text()


def test_fg_sample_answer_has_the_listing_layout(tmp_path: Path) -> None:
    """Shape and empty-row layout of the public listing's batch output for the same test file."""
    reference = shared_data("fg-sample", "batch_predictions.csv").read_text().splitlines()
    test_csv = shared_data("fg-sample", "test.csv").read_bytes()
    training = read_series_file(shared_data("fg-sample", "train.csv"))
    hyperparameters = {**TINY_HYPERPARAMETERS, "context-length": "100", "prediction-length": "1",
                       "sequence-stride": "50", "hidden-size": "4", "epochs": "1"}
    train(tmp_path, hyperparameters, training)
    server = Server(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        server.wait_ready()
        response = server.post_csv(test_csv)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert len(lines) == len(reference) == 5000
    assert [line == ",," for line in lines] == [line == ",," for line in reference]
    assert [line.count(",") for line in lines] == [line.count(",") for line in reference]
    assert all(all(field for field in line.split(",")) for line in lines[100:])


def raw_request(server: Server, data: bytes, read_timeout: float = 30.0) -> bytes:
    """Send bytes as they are (a malformed request, say) and return the raw answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_malformed_chunk_size_is_a_400_not_a_500(server: Server) -> None:
    answer = raw_request(server, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n1,2\r\n0\r\n\r\n")
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"400", answer[:300]


def test_ping_answers_within_a_second_while_every_request_thread_is_stalled(trained: Path) -> None:
    """One worker with 2 request threads, both held by uploads that stopped mid-body: /ping (on the worker's
    health threads) still answers at once, and each stalled upload is dropped with 408 after its timeout."""
    server = Server(trained, SAGEMAKER_MODEL_SERVER_WORKERS="1", LSTM_AD_SERVER_THREADS="2",
                    LSTM_AD_BODY_READ_TIMEOUT_S="3", LSTM_AD_TORCH_THREADS="1")
    stalled = [socket.socket() for _ in range(2)]
    try:
        server.wait_ready()
        for sock in stalled:  # each promises 1 MB, sends 10 bytes, then nothing
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                         b"Content-Length: 1000000\r\n\r\n1.0,2.0\r\n")
        time.sleep(0.5)  # both request threads are reading the stalled bodies now
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(server.url + "/ping", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
        for sock in stalled:
            sock.settimeout(30)
            answer = sock.recv(4096)
            assert answer.split(b"\r\n", 1)[0].split()[1] == b"408", answer[:300]
        assert server.post_csv(csv_bytes(sine_series(60, columns=2))).status_code == 200  # threads free again
    finally:
        for sock in stalled:
            sock.close()
        server.stop()
