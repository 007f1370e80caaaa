"""The HTTP interface in-process (Flask test client) with a real, small model trained with the default scoring
(one Gaussian, the score window and the discord term)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import sine_series
from lstm_ad.data import Series
from lstm_ad.errors import UserError
from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.predictor import Predictor, ScoreResult
from lstm_ad.sagemaker.app import create_app
from lstm_ad.sagemaker.gpus import visible_gpus
from lstm_ad.sagemaker.server import worker_device
from lstm_ad.sagemaker.settings import ServeSettings, available_memory_bytes, settings_from_env
from lstm_ad.training import train

CONTEXT = 5
ROWS = 40
DISCORD_WINDOW = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """A real model, trained briefly on a small network with the default scoring: every answer over HTTP takes
    the default path (one Gaussian, score window, discord term; the term's window is given, since its default 0
    turns it off for several columns). Its alarm threshold is moved to the median score of SERIES so that the
    alarm column holds both 0s and 1s (the threshold rule itself: test_threshold.py and
    test_train_entrypoint.py)."""
    hp = Hyperparameters(context_length=CONTEXT, prediction_length=2, sequence_stride=2, hidden_size=4, num_layers=1,
                         epochs=2, discord_window=DISCORD_WINDOW)
    training = sine_series(800, columns=2, seed=5) * 3 + 1  # not SERIES' rows: those would be centres
    trained = train([Series("sine.csv", training)], hp, device=torch.device("cpu"))
    model = trained.predictor
    threshold = float(np.nanmedian(model.score(SERIES).score))
    return dataclasses.replace(model, error_model=dataclasses.replace(model.error_model, alarm_threshold=threshold))


@pytest.fixture()
def client(predictor: Predictor):
    return create_app(predictor, ServeSettings(workers=2)).test_client()


def csv_bytes(values: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in values).encode()


SERIES = sine_series(ROWS, columns=2) * 3 + 1


def parse_response_csv(text: str) -> np.ndarray:
    rows = [[float(cell) if cell else np.nan for cell in line.split(",")] for line in text.splitlines()]
    return np.array(rows)


def test_the_model_scores_with_the_default_error_model(predictor: Predictor) -> None:
    defaults, error_model = Hyperparameters(), predictor.error_model
    assert predictor.hyperparameters.error_centres == defaults.error_centres == 0 and error_model.centres is None
    assert error_model.window is not None and error_model.window.window == defaults.score_window
    assert error_model.window.active and error_model.window.position == defaults.score_window_position
    discord = error_model.discord
    assert discord is not None and discord.window == DISCORD_WINDOW
    assert len(discord.refs) == 640 - DISCORD_WINDOW + 1 < defaults.discord_refs  # every fitting subsequence
    assert discord.scale is not None and discord.scale.spread > 0
    # The discord term decides some of SERIES' scores: without it they differ.
    alone = dataclasses.replace(predictor, error_model=dataclasses.replace(error_model, discord=None))
    assert not np.allclose(alone.score(SERIES).score[CONTEXT:], predictor.score(SERIES).score[CONTEXT:])


def test_ping_is_200_with_empty_body(client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200 and response.data == b""


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/csv"},
    {"Content-Type": "text/csv", "Accept": "text/csv"},
    {"Content-Type": "text/csv; charset=utf-8", "Accept": "*/*"},
    {"Content-Type": "text/csv", "Accept": "application/json;q=0.5, text/csv"},
    {},  # no Content-Type: taken as CSV
])
def test_csv_in_csv_out_matches_the_predictor_row_by_row(client, predictor: Predictor, headers: dict) -> None:
    response = client.post("/invocations", data=csv_bytes(SERIES), headers=headers)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/csv"
    text = response.data.decode()
    assert text.endswith("\n") and len(text.splitlines()) == ROWS
    assert text.splitlines()[:CONTEXT] == [",,"] * CONTEXT  # warm-up rows: empty fields
    got = parse_response_csv(text)
    expected = predictor.score(SERIES)
    assert got.shape == (ROWS, 3)
    np.testing.assert_allclose(got[:, 0], expected.score, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(got[:, 1:], expected.predictions, rtol=1e-8, equal_nan=True)
    assert np.isfinite(got[CONTEXT:]).all()


@pytest.mark.parametrize("body", [
    lambda v: json.dumps({"values": v.tolist()}),
    lambda v: json.dumps(v.tolist()),
])
def test_json_in_json_out_is_the_predictor_output_exactly(client, predictor: Predictor, body) -> None:
    response = client.post("/invocations", data=body(SERIES),
                           headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert response.status_code == 200, response.data
    document = response.get_json()
    expected = predictor.score(SERIES)
    assert document["log_likelihood"][:CONTEXT] == [None] * CONTEXT
    assert document["predictions"][:CONTEXT] == [[None, None]] * CONTEXT
    assert document["log_likelihood"][CONTEXT:] == expected.score[CONTEXT:].tolist()
    assert document["predictions"][CONTEXT:] == expected.predictions[CONTEXT:].tolist()


def test_json_in_csv_out_equals_csv_in_csv_out(client) -> None:
    from_json = client.post("/invocations", json={"values": SERIES.tolist()}, headers={"Accept": "text/csv"})
    from_csv = client.post("/invocations", data=csv_bytes(SERIES), headers={"Content-Type": "text/csv"})
    assert from_json.status_code == from_csv.status_code == 200
    assert from_json.data == from_csv.data


def test_repeated_calls_give_identical_bytes(client) -> None:
    answers = {client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv").data for _ in range(3)}
    assert len(answers) == 1


def lines(*rows: str) -> bytes:
    return "\n".join(rows).encode()


GOOD_ROWS = [f"{v[0]!r},{v[1]!r}" for v in SERIES.tolist()]

BAD_REQUESTS = [
    # (id, content type, body, status, words the one-line message must contain)
    ("header", "text/csv", lines("a,b", *GOOD_ROWS), 400, ["line 1, column 1", "header"]),
    ("text cell", "text/csv", lines(*GOOD_ROWS[:2], "1.0,abc", *GOOD_ROWS[3:]), 400, ["line 3, column 2", "'abc'"]),
    ("nan", "text/csv", lines(*GOOD_ROWS[:9], "nan,1", *GOOD_ROWS[10:]), 400, ["line 10, column 1", "finite"]),
    ("inf", "text/csv", lines(*GOOD_ROWS[:4], "1,inf", *GOOD_ROWS[5:]), 400, ["line 5, column 2", "finite"]),
    ("ragged", "text/csv", lines(*GOOD_ROWS[:3], "1.0", *GOOD_ROWS[4:]), 400, ["line 4", "1 columns"]),
    ("empty body", "text/csv", b"", 400, ["empty"]),
    ("blank body", "text/csv", b"\n \n", 400, ["empty"]),
    ("wrong columns", "text/csv", lines(*(r + ",1" for r in GOOD_ROWS)), 400, ["expected 2 columns", "got 3"]),
    ("not utf-8", "text/csv", b"\xff\xfe1,2\n", 400, ["UTF-8"]),
    ("bad json", "application/json", b"{values: [", 400, ["not valid JSON"]),
    ("json no rows", "application/json", b'{"rows": [[1, 2]]}', 400, ['"values"']),
    ("json ragged", "application/json", json.dumps([[1, 2], [3]]).encode(), 400, ["row 2", "2 numbers"]),
    ("json text", "application/json", json.dumps([[1, 2], [3, "x"]]).encode(), 400, ["row 2, column 2", '"x"']),
    ("nan text", "text/csv", lines(*GOOD_ROWS[:6], "1,NaN", *GOOD_ROWS[7:]), 400, ["line 7, column 2", "empty"]),
    ("xml", "application/xml", b"<a/>", 415, ["application/xml", "text/csv"]),
    ("jsonlines", "application/jsonlines", b"[1, 2]", 415, ["application/jsonlines"]),
]


@pytest.mark.parametrize("content_type, body, status, words",
                         [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_one_line_reason(client, content_type: str, body: bytes, status: int,
                                            words: list[str]) -> None:
    response = client.post("/invocations", data=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    text = response.data.decode()
    assert text.count("\n") == 1 and text.endswith("\n"), text
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("accept", ["image/png", "application/xml", "text/html"])
def test_unsupported_accept_is_406(client, accept: str) -> None:
    response = client.post("/invocations", data=csv_bytes(SERIES), headers={"Content-Type": "text/csv",
                                                                            "Accept": accept})
    assert response.status_code == 406
    assert accept in response.data.decode() and "text/csv" in response.data.decode()


def test_payload_above_the_limit_is_413(predictor: Predictor) -> None:
    client = create_app(predictor, ServeSettings(max_payload_mb=1)).test_client()
    body = csv_bytes(sine_series(60_000, columns=2))
    assert len(body) > 1024 * 1024
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 413
    assert "1 MB" in response.data.decode() and "SAGEMAKER_MAX_PAYLOAD_IN_MB" in response.data.decode()
    before, after = predictor.rows_needed()  # a stream: context-length 5 + a chunk - 1 + 12 before; 12 after
    assert (before, after) == (CONTEXT + predictor.chunk_length - 1 + 12, 12)
    head, tail = predictor.split_margins()  # files: a chunk + 12 before, 12 after, rounded up to whole chunks
    assert (head, tail) == (2 * predictor.chunk_length - 12, 12)
    assert (f"files that start on multiples of {predictor.chunk_length} rows and overlap by {head + tail} rows, what "
            "this model reads around a row") in response.data.decode()
    assert client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv").status_code == 200


def test_first_row_custom_attribute_puts_the_requests_chunks_where_the_streams_are(predictor: Predictor,
                                                                                   client) -> None:
    """`first-row=N`: the request is rows N.. of a longer stream, so its rows from rows_needed().before on get the
    stream's own scores (the network reads their chunks from the same rows); without it they differ a little."""
    stream = sine_series(2600, columns=2, seed=9) * 3 + 1
    first, (before, after) = 1500, predictor.rows_needed()
    whole = predictor.score(stream).score

    def scores(attributes: str) -> np.ndarray:
        response = client.post("/invocations", data=csv_bytes(stream[first:]), headers={
            "Content-Type": "text/csv", "Accept": "application/json", "X-Amzn-SageMaker-Custom-Attributes": attributes})
        assert response.status_code == 200, response.data
        answer = response.get_json()
        assert "alarm" in answer  # the other attribute of the same header is read too
        return np.array(answer["log_likelihood"], dtype=float)

    told = scores(f"output=alarm; first-row={first}")
    np.testing.assert_allclose(told[before:-after], whole[first + before:-after], rtol=1e-9)
    assert not np.array_equal(scores("output=alarm")[before:-after], whole[first + before:-after])


@pytest.mark.parametrize("value", ["-3", "abc", "1e5", "", "10000000000000000"])
def test_a_bad_first_row_is_400_naming_the_attribute(client, value: str) -> None:
    response = client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv",
                           headers={"X-Amzn-SageMaker-Custom-Attributes": f"first-row={value}"})
    assert response.status_code == 400
    assert "first-row" in response.data.decode() and "an integer from 0" in response.data.decode()


class BrokenPredictor:
    """Stands in for a bug in our own code (the only stub here)."""

    columns = 2

    def score(self, values: np.ndarray, alarm: bool = False, attribution: bool = False, first_row: int = 0
              ) -> ScoreResult:
        raise KeyError("internal detail")

    chunk_length = 1024

    def rows_needed(self) -> tuple[int, int]:
        return CONTEXT, 0

    def split_margins(self) -> tuple[int, int]:
        return 1024, 0


def test_our_bug_is_a_short_500_with_the_traceback_only_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    client = create_app(BrokenPredictor(), ServeSettings()).test_client()
    with caplog.at_level(logging.ERROR, logger="lstm_ad.sagemaker.app"):
        response = client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv")
    assert response.status_code == 500
    body = response.data.decode()
    assert "KeyError" in body and "Traceback" not in body and body.count("\n") == 1
    assert "Traceback" in caplog.text and "internal detail" in caplog.text


def test_unknown_path_and_method_are_plain_http_errors(client) -> None:
    assert client.get("/nothing").status_code == 404
    assert client.get("/invocations").status_code == 405


@pytest.mark.parametrize("settings, expected", [
    (ServeSettings(workers=1), {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 100}),
    (ServeSettings(workers=2), {"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 50}),
    (ServeSettings(workers=8), {"MaxConcurrentTransforms": 8, "MaxPayloadInMB": 12}),
    (ServeSettings(workers=64), {"MaxConcurrentTransforms": 16, "MaxPayloadInMB": 6}),
    (ServeSettings(workers=4, max_payload_mb=6), {"MaxConcurrentTransforms": 4, "MaxPayloadInMB": 6}),
    (ServeSettings(workers=2, max_concurrent_transforms=5), {"MaxConcurrentTransforms": 5, "MaxPayloadInMB": 20}),
    (ServeSettings(workers=2, max_payload_mb=0), {"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 50}),
    # memory: a 12 MB request needs 12 MB x 52 (MEMORY_PER_BODY_BYTE) = 624 MB; 4 GB x 0.8 holds 5 of them,
    # 2 GB x 0.8 holds 2, 1 GB x 0.8 holds 1
    (ServeSettings(workers=8, memory_bytes=4 << 30), {"MaxConcurrentTransforms": 5, "MaxPayloadInMB": 12}),
    (ServeSettings(workers=8, memory_bytes=2 << 30), {"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 12}),
    (ServeSettings(workers=8, memory_bytes=1 << 30), {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 12}),
    (ServeSettings(workers=1, memory_bytes=256 << 20), {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 100}),
    (ServeSettings(workers=8, memory_bytes=1 << 30, max_concurrent_transforms=8),  # the user's value wins
     {"MaxConcurrentTransforms": 8, "MaxPayloadInMB": 12}),
])
def test_execution_parameters_respect_sagemaker_limits(predictor: Predictor, settings: ServeSettings,
                                                       expected: dict) -> None:
    response = create_app(predictor, settings).test_client().get("/execution-parameters")
    assert response.status_code == 200 and response.mimetype == "application/json"
    answer = response.get_json()
    assert answer == expected  # no BatchStrategy: SDK local mode rejects the documented spelling
    assert answer["MaxConcurrentTransforms"] * answer["MaxPayloadInMB"] <= 100


@pytest.mark.parametrize("environ, expected", [
    ({}, dict(port=8080, workers=2, threads=2, torch_threads=1, timeout_s=3600, max_payload_mb=100)),
    ({"SAGEMAKER_BIND_TO_PORT": "9000", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}, dict(port=9000, workers=1,
                                                                                    torch_threads=2)),
    ({"MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_TIMEOUT": "900"}, dict(workers=3, timeout_s=900, torch_threads=1)),
    ({"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1200", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6", "LSTM_AD_SERVER_THREADS": "4",
      "LSTM_AD_TORCH_THREADS": "2"}, dict(timeout_s=1200, max_payload_mb=6, threads=4, torch_threads=2)),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}, dict(max_payload_mb=0, max_payload_bytes=None)),  # batch: "no limit"
])
def test_settings_from_environment(environ: dict, expected: dict) -> None:
    settings = settings_from_env(environ, cpus=2)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup_limit(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert available_memory_bytes(meminfo, cgroup) == 20000000 * 1024
    (cgroup / "memory.max").write_text("4294967296\n")  # a 4 GiB container, 1 GiB of it in use
    (cgroup / "memory.current").write_text("1073741824\n")
    assert available_memory_bytes(meminfo, cgroup) == 3 << 30
    (cgroup / "memory.max").write_text("max\n")  # no limit
    assert available_memory_bytes(meminfo, cgroup) == 20000000 * 1024
    assert available_memory_bytes(tmp_path / "absent", tmp_path / "absent") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's GPU is usable: nothing to warn about")
def test_a_gpu_that_cuda_cannot_use_is_a_warning_and_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lstm_ad.sagemaker.server"):
        device = worker_device(ServeSettings(workers=1, use_gpu=True), worker_number=1)
    assert device == torch.device("cpu")
    assert "CUDA is unavailable" in caplog.text and "driver 470" in caplog.text and "InferenceAmiVersion" in caplog.text


def test_gpus_set_the_default_worker_count() -> None:
    settings = settings_from_env({}, cpus=8, gpus=4)
    assert (settings.workers, settings.torch_threads, settings.use_gpu) == (4, 2, True)


def test_bad_settings_are_all_named_at_once() -> None:
    with pytest.raises(UserError) as error:
        settings_from_env({"SAGEMAKER_BIND_TO_PORT": "http", "SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, cpus=2)
    assert "SAGEMAKER_BIND_TO_PORT='http'" in str(error.value)
    assert "SAGEMAKER_MODEL_SERVER_WORKERS='0' must be an integer in [1, 256]" in str(error.value)


@pytest.mark.parametrize("devices, environ, expected", [
    ([], {}, 0),
    (["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"], {}, 2),
    (["nvidia0", "nvidia1"], {"CUDA_VISIBLE_DEVICES": "1"}, 1),
    (["nvidia0", "nvidia1"], {"CUDA_VISIBLE_DEVICES": ""}, 0),
    (["nvidia0"], {"CUDA_VISIBLE_DEVICES": "-1"}, 0),
    ([], {"CUDA_VISIBLE_DEVICES": "0,1"}, 0),  # a variable left in an image without GPUs
])
def test_gpus_are_counted_without_initialising_cuda(tmp_path, devices: list[str], environ: dict,
                                                    expected: int) -> None:
    for name in devices:
        (tmp_path / name).touch()
    assert visible_gpus(environ, tmp_path) == expected


# --- hostile and unusual input: a clear 4xx, never a 500, never a silent hole ----------------------

HOSTILE_REQUESTS = [
    ("semicolons", "text/csv", lines("1.0;2.0", "3.0;4.0"), ["line 1", "semicolon-separated"]),
    ("tabs", "text/csv", lines(*GOOD_ROWS[:3], "1.0\t2.0", *GOOD_ROWS[4:]), ["line 4", "tab-separated"]),
    ("underscore", "text/csv", lines(*GOOD_ROWS[:5], "1_000,2", *GOOD_ROWS[6:]), ["line 6, column 1", "'1_000'"]),
    ("full-width digit", "text/csv", lines(*GOOD_ROWS[:5], "1,\uff12", *GOOD_ROWS[6:]),
     ["line 6, column 2", "not a number"]),
    ("huge cell", "text/csv", lines(*GOOD_ROWS[:2], "1," + "7" * 200_000, *GOOD_ROWS[3:]),
     ["line 3, column 2", "finite"]),
    ("long text cell", "text/csv", lines(*GOOD_ROWS[:2], "1," + "x" * 200_000, *GOOD_ROWS[3:]),
     ["line 3, column 2", "xxxx..."]),
    ("400,000 columns", "text/csv", lines(",".join(["1"] * 400_000), *GOOD_ROWS), ["got 400000 columns"]),
    ("json huge integer", "application/json", json.dumps([[1, 10**400], [3, 4]]).encode(), ["row 1, column 2"]),
    ("json deeply nested", "application/json", b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
    ("json too wide", "application/json", json.dumps([[1.0] * 5] * 3).encode(), ["got 5 columns"]),
]


@pytest.mark.parametrize("content_type, body, words", [case[1:] for case in HOSTILE_REQUESTS],
                         ids=[case[0] for case in HOSTILE_REQUESTS])
def test_hostile_input_gets_a_short_400(client, content_type: str, body: bytes, words: list[str]) -> None:
    response = client.post("/invocations", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.data[:300]
    text = response.data.decode()
    assert text.count("\n") == 1 and len(text) < 400, text[:500]  # a bad cell is quoted short, escaped
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("rows", [1, CONTEXT - 1, CONTEXT])
def test_a_request_of_at_most_context_length_rows_gets_an_empty_row_per_row(client, rows: int) -> None:
    """Batch transform's Line splitting sends short mini-batches (SingleRecord: one row): never fail a file."""
    response = client.post("/invocations", data=csv_bytes(SERIES[:rows]), content_type="text/csv")
    assert response.status_code == 200, response.data
    assert response.data.decode().splitlines() == [",,"] * rows
    as_json = client.post("/invocations", json={"values": SERIES[:rows].tolist()},
                          headers={"Accept": "application/json"}).get_json()
    assert as_json == {"log_likelihood": [None] * rows, "predictions": [[None, None]] * rows}


@pytest.mark.parametrize("value", [1e308, -1e308, 1e39, 3e38])
def test_values_far_beyond_the_training_range_score_as_finite_extremes(client, predictor: Predictor,
                                                                       value: float) -> None:
    """float32 would overflow to inf and leave an empty score; clipped, the row is simply the most anomalous."""
    series = SERIES.copy()
    series[30, 1] = value
    response = client.post("/invocations", data=csv_bytes(series), content_type="text/csv")
    assert response.status_code == 200, response.data
    got = parse_response_csv(response.data.decode())
    assert np.isfinite(got[CONTEXT:]).all()
    assert int(np.argmin(got[CONTEXT:, 0])) + CONTEXT in (30, 31)  # as target at 30, as input for 31
    assert got[30, 0] < predictor.score(SERIES).score[CONTEXT:].min() - 1000


# --- optional outputs: alarm and attribution -------------------------------------------------------


def expected_columns(predictor: Predictor, alarm: bool, attribution: bool) -> np.ndarray:
    result = predictor.score(SERIES, alarm=alarm, attribution=attribution)
    columns = [result.score[:, None], result.predictions]
    if alarm:
        columns.append(result.alarm[:, None])
    if attribution:
        columns.append(result.attribution)
    return np.hstack(columns)


OUTPUT_REQUESTS = [
    # (id, settings' LSTM_AD_OUTPUT, request headers, JSON "output" field or None, alarm, attribution)
    ("default", "", {}, None, False, False),
    ("env alarm", "alarm", {}, None, True, False),
    ("env both", "attribution,alarm", {}, None, True, True),
    ("accept quoted", "", {"Accept": 'text/csv; output="alarm,attribution"'}, None, True, True),
    ("accept plus", "", {"Accept": "text/csv;output=attribution+alarm"}, None, True, True),
    ("accept overrides env", "alarm,attribution", {"Accept": "text/csv; output=none"}, None, False, False),
    ("custom attributes", "", {"X-Amzn-SageMaker-Custom-Attributes": "output=attribution"}, None, False, True),
    ("json field", "", {}, ["alarm"], True, False),
    ("json field overrides accept", "", {"Accept": "text/csv; output=alarm"}, "attribution", False, True),
]


@pytest.mark.parametrize("env, headers, field, alarm, attribution", [case[1:] for case in OUTPUT_REQUESTS],
                         ids=[case[0] for case in OUTPUT_REQUESTS])
def test_optional_outputs_come_after_the_default_columns_with_the_same_warm_up(
        predictor: Predictor, env: str, headers: dict, field, alarm: bool, attribution: bool) -> None:
    client = create_app(predictor, settings_from_env({"LSTM_AD_OUTPUT": env}, cpus=2)).test_client()
    if field is None:
        response = client.post("/invocations", data=csv_bytes(SERIES), headers={"Content-Type": "text/csv", **headers})
    else:
        response = client.post("/invocations", json={"values": SERIES.tolist(), "output": field}, headers=headers)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/csv"
    text = response.data.decode()
    width = 3 + alarm + 2 * attribution
    assert text.splitlines()[:CONTEXT] == ["," * (width - 1)] * CONTEXT
    got = parse_response_csv(text)
    assert got.shape == (ROWS, width)
    np.testing.assert_allclose(got, expected_columns(predictor, alarm, attribution), rtol=1e-8, atol=1e-300,
                               equal_nan=True)
    assert np.isfinite(got[CONTEXT:]).all()
    if alarm:
        assert set(got[CONTEXT:, 3].tolist()) == {0.0, 1.0}
        exact = predictor.score(SERIES).score[CONTEXT:]  # the CSV's 9 digits may round across it
        np.testing.assert_array_equal(got[CONTEXT:, 3], exact < predictor.error_model.alarm_threshold)
    if attribution:
        # The shares sum to 2 (best - log N(e; μ, Σ)) under the one Gaussian, not to the score's gap to best.
        gaussian = predictor.error_model.gaussian
        errors = predictor.forecast_errors(SERIES).errors[CONTEXT:]
        shares = got[CONTEXT:, -2:].sum(axis=1)
        np.testing.assert_allclose(shares, 2 * (gaussian.best_log_likelihood - gaussian.log_likelihood(errors)),
                                   rtol=1e-6)
        assert not np.allclose(shares, 2 * (gaussian.best_log_likelihood - got[CONTEXT:, 0]), rtol=1e-3)


def test_optional_outputs_in_json(predictor: Predictor) -> None:
    client = create_app(predictor, ServeSettings(outputs=frozenset({"alarm", "attribution"}))).test_client()
    response = client.post("/invocations", json={"values": SERIES.tolist()}, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.data
    document = response.get_json()
    expected = predictor.score(SERIES, alarm=True, attribution=True)
    assert document["alarm"][:CONTEXT] == [None] * CONTEXT
    assert document["attribution"][:CONTEXT] == [[None, None]] * CONTEXT
    assert document["alarm"][CONTEXT:] == expected.alarm[CONTEXT:].astype(int).tolist()
    assert document["attribution"][CONTEXT:] == expected.attribution[CONTEXT:].tolist()
    assert document["log_likelihood"][CONTEXT:] == expected.score[CONTEXT:].tolist()
    plain = client.post("/invocations", json={"values": SERIES.tolist(), "output": []},
                        headers={"Accept": "application/json"}).get_json()
    assert set(plain) == {"log_likelihood", "predictions"}


@pytest.mark.parametrize("headers, body, words", [
    ({"Accept": "text/csv; output=alarms"}, None, ["unknown output 'alarms'", "alarm, attribution"]),
    ({"Accept": "text/csv; output=alarm,attribution"}, None, ["quote the list"]),
    ({"X-Amzn-SageMaker-Custom-Attributes": "output=score"}, None, ["unknown output 'score'"]),
    ({}, {"output": 3}, ['"output" must be a list']),
    ({}, {"output": [1]}, ["expected a list of output names"]),
])
def test_bad_output_requests_are_400_naming_the_choices(client, headers: dict, body, words: list[str]) -> None:
    if body is None:
        response = client.post("/invocations", data=csv_bytes(SERIES), headers={"Content-Type": "text/csv", **headers})
    else:
        response = client.post("/invocations", json={"values": SERIES.tolist(), **body}, headers=headers)
    assert response.status_code == 400
    for word in words:
        assert word in response.data.decode(), response.data


def test_a_model_without_a_stored_threshold_says_to_retrain_for_alarms(predictor: Predictor) -> None:
    old = dataclasses.replace(predictor, error_model=dataclasses.replace(predictor.error_model, alarm_threshold=None))
    client = create_app(old, ServeSettings(outputs=frozenset({"alarm"}))).test_client()
    response = client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv")
    assert response.status_code == 400 and "retrain" in response.data.decode()
    response = client.post("/invocations", data=csv_bytes(SERIES), headers={"Content-Type": "text/csv",
                                                                             "Accept": "text/csv; output=attribution"})
    assert response.status_code == 200


def test_a_bad_lstm_ad_output_stops_serve_naming_the_variable() -> None:
    with pytest.raises(UserError, match="LSTM_AD_OUTPUT.*unknown output 'alrm'"):
        settings_from_env({"LSTM_AD_OUTPUT": "alrm"}, cpus=2)
    assert settings_from_env({"LSTM_AD_OUTPUT": " Alarm , attribution "}, cpus=2).outputs == {"alarm", "attribution"}
    assert settings_from_env({"LSTM_AD_OUTPUT": "none"}, cpus=2).outputs == frozenset()  # chosen: no extras
    assert settings_from_env({"LSTM_AD_OUTPUT": " "}, cpus=2).outputs is None  # not chosen: the model's default


# --- hostile input: quoted short, escaped, on one line, in the answer and the log ------------------

HUGE = "x" * 60_000
LONG_INPUTS = [
    # (id, headers, body, status, the quotation the one-line answer holds)
    ("60 KB cell", {"Content-Type": "text/csv"}, lines(*GOOD_ROWS[:3], "1.0," + HUGE, *GOOD_ROWS[4:]), 400,
     "line 4, column 2: '" + "x" * 37 + "...'"),
    ("60 KB first cell", {"Content-Type": "text/csv"}, lines(HUGE + ",1", *GOOD_ROWS), 400,
     "line 1, column 1: '" + "x" * 37 + "...'"),
    ("control characters", {"Content-Type": "text/csv"}, lines(*GOOD_ROWS[:2], "1.0,\x01\x02" + "\x7f" * 60), 400,
     "line 3, column 2: '\\x01\\x02" + "\\x7f" * 7 + "...'"),  # 9 escapes of 4 characters and '...': 39
    ("semicolons", {"Content-Type": "text/csv"}, lines("1;" * 30_000 + "1", *GOOD_ROWS), 400,
     "line 1: '" + "1;" * 18 + "1...'"),
    ("json cell", {"Content-Type": "application/json"}, json.dumps([[1, 2], [3, HUGE]]).encode(), 400,
     "row 2, column 2: '\"" + "x" * 36 + "...'"),
    ("content type", {"Content-Type": "text/" + HUGE[:5000]}, csv_bytes(SERIES), 415,
     "Content-Type 'text/" + "x" * 32 + "...'"),
    ("accept", {"Content-Type": "text/csv", "Accept": "image/" + HUGE[:5000]}, csv_bytes(SERIES), 406,
     "Accept 'image/" + "x" * 31 + "...'"),
    ("output name", {"Content-Type": "text/csv", "Accept": "text/csv; output=" + HUGE[:5000]}, csv_bytes(SERIES),
     400, "unknown output '" + "x" * 37 + "...'"),
]


@pytest.mark.parametrize("headers, body, status, quoted", [case[1:] for case in LONG_INPUTS],
                         ids=[case[0] for case in LONG_INPUTS])
def test_hostile_input_is_quoted_at_most_40_characters_long(client, caplog: pytest.LogCaptureFixture,
                                                            headers: dict, body: bytes, status: int,
                                                            quoted: str) -> None:
    with caplog.at_level(logging.INFO, logger="lstm_ad.sagemaker.app"):
        response = client.post("/invocations", data=body, headers=headers)
    assert response.status_code == status
    text = response.data.decode()
    assert quoted in text and text.count("\n") == 1 and len(text) < 400, text
    if status == 400:  # the log line is the answer's sentence
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Rejected request (400)")]
        assert logged == [f"Rejected request (400): {text.strip()}"]
    assert client.post("/invocations", data=csv_bytes(SERIES), content_type="text/csv").status_code == 200
