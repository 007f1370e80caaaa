"""The CreateAlgorithm request, checked offline against what AWS will check.

Three independent referees: botocore's bundled service model (through a Stubber, the
same validation a real call runs), a walk of the constraints botocore leaves to the
service (enums, maxima, patterns), and the sagemaker SDK v2 `AlgorithmEstimator`,
which buyers use and which validates hyperparameters against the spec client-side.
The metric regexes are checked against the lines the real `train` prints.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import Shape
from botocore.stub import Stubber

from conftest import REPO, TINY_HYPERPARAMETERS, make_opt_ml, sine_series
from lstm_ad.hyperparameters import SCHEMA, Hyperparameters
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters
from lstm_ad.sagemaker.metrics import METRICS
from lstm_ad_local import create_algorithm
from lstm_ad_local.algorithm_spec import VALIDATION_HYPERPARAMETERS, hyperparameter_table, markdown_tables, metric_table

REGION = "us-east-1"
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:algorithm/lstm-ad"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
ARGS = [
    "--image-uri", f"123456789012.dkr.ecr.{REGION}.amazonaws.com/lstm-ad:abc1234-gpu", "--gpu",
    "--image-digest", "sha256:" + "0123456789abcdef" * 4, "--role-arn", ROLE,
    "--training-data", "s3://bucket/lstm-ad/validation/training/",
    "--transform-data", "s3://bucket/lstm-ad/validation/transform/",
    "--output-path", "s3://bucket/lstm-ad/validation/output/",
]


def sagemaker_client() -> Any:
    return botocore.session.get_session().create_client(
        "sagemaker", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def input_shape(operation: str) -> Shape:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(operation).input_shape


def dry_run_output() -> str:
    """What `python -m lstm_ad_local.create_algorithm ... --dry-run` prints, from its main() in this process."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert create_algorithm.main([*ARGS, "--dry-run"]) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def request_dict() -> dict[str, Any]:
    """The request exactly as `python -m lstm_ad_local.create_algorithm --dry-run` prints it."""
    parsed: dict[str, Any] = json.loads(dry_run_output())
    return parsed


@pytest.mark.slow
def test_the_dry_run_command_prints_the_request() -> None:
    result = subprocess.run([sys.executable, "-m", "lstm_ad_local.create_algorithm", *ARGS, "--dry-run"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == dry_run_output()


@pytest.fixture(scope="module")
def train_stdout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """stdout of the real `train` console script on a tiny job with a validation channel."""
    base = make_opt_ml(tmp_path_factory.mktemp("opt_ml"), TINY_HYPERPARAMETERS, {
        "training": {"train.csv": sine_series(300, columns=2)},
        "validation": {"valid.csv": sine_series(120, columns=2, seed=1)},
    })
    result = subprocess.run([str(Path(sys.executable).with_name("train"))], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- botocore's own validation ---------------------------------------------------------------


def test_request_passes_botocore_validation(request_dict: dict[str, Any]) -> None:
    client = sagemaker_client()
    with Stubber(client) as stub:
        stub.add_response("create_algorithm", {"AlgorithmArn": ARN}, expected_params=request_dict)
        assert client.create_algorithm(**request_dict)["AlgorithmArn"] == ARN
        stub.assert_no_pending_responses()


def test_script_sends_the_request_through_the_client(capsys: pytest.CaptureFixture[str],
                                                      request_dict: dict[str, Any]) -> None:
    client = sagemaker_client()
    with Stubber(client) as stub:
        stub.add_response("create_algorithm", {"AlgorithmArn": ARN}, expected_params=request_dict)
        assert create_algorithm.main(ARGS, client=client) == 0
        stub.assert_no_pending_responses()
    assert f"Created {ARN}" in capsys.readouterr().out


# --- the constraints botocore leaves to the service ---------------------------------------


def constraint_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Enums, max lengths/values and patterns of the service model, which botocore does not check."""
    meta, kind = shape.metadata, shape.type_name
    problems: list[str] = []
    if kind == "structure":
        for key, item in value.items():
            problems += constraint_problems(item, shape.members[key], f"{path}.{key}")
    elif kind in ("list", "map"):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items, at most {meta['max']} allowed")
        items = enumerate(value) if kind == "list" else value.items()
        for key, item in items:
            if kind == "map":
                problems += constraint_problems(key, shape.key, f"{path} key {key!r}")
            problems += constraint_problems(item, shape.member if kind == "list" else shape.value, f"{path}[{key!r}]")
    elif kind == "string":
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {meta['max']} allowed")
        if "pattern" in meta and not _matches(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} is above the maximum {meta['max']}")
    return problems


def _matches(pattern: str, value: str) -> bool:
    """The whole value must match (Java `matches`); Java-only classes like \\p{L} are not checked."""
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error:
        return True
    return compiled.fullmatch(value) is not None


def test_request_meets_enums_maxima_and_patterns(request_dict: dict[str, Any]) -> None:
    assert constraint_problems(request_dict, input_shape("CreateAlgorithm")) == []


def test_the_constraint_walk_catches_what_botocore_lets_through(request_dict: dict[str, Any]) -> None:
    bad = json.loads(json.dumps(request_dict))
    bad["AlgorithmName"] = "lstm_ad"  # underscores are not allowed
    bad["TrainingSpecification"]["TrainingChannels"][0]["SupportedInputModes"] = ["file"]
    bad["TrainingSpecification"]["SupportedTrainingInstanceTypes"].append("ml.nonexistent.large")
    profiles = bad["ValidationSpecification"]["ValidationProfiles"]
    profiles.append(profiles[0])  # exactly one profile is allowed
    problems = constraint_problems(bad, input_shape("CreateAlgorithm"))
    assert len(problems) == 4, problems
    for fragment in ("AlgorithmName", "SupportedInputModes", "ml.nonexistent.large", "ValidationProfiles"):
        assert any(fragment in problem for problem in problems), (fragment, problems)


# --- what the request says, against the code it is generated from -----------------------


def test_hyperparameters_come_from_the_schema(request_dict: dict[str, Any]) -> None:
    specs = request_dict["TrainingSpecification"]["SupportedHyperParameters"]
    assert [h["Name"] for h in specs] == [spec.name for spec in SCHEMA]
    for h, spec in zip(specs, SCHEMA, strict=True):
        assert (h["IsTunable"], h["IsRequired"]) == (spec.tunable, False)
        if spec.choices:  # AlgorithmEstimator checks str(value) in Values
            assert (h["Type"], h["Range"]) == ("Categorical", {"CategoricalParameterRangeSpecification": {
                "Values": list(spec.choices)}})
            assert h["DefaultValue"] in spec.choices
            continue
        kind = "Integer" if spec.type is int else "Continuous"
        bounds = h["Range"][f"{kind}ParameterRangeSpecification"]
        cast = int if spec.type is int else float  # what AlgorithmEstimator applies to the strings
        assert (h["Type"], cast(bounds["MinValue"]), cast(bounds["MaxValue"])) == (kind, spec.min, spec.max)
    assert [h["Name"] for h in specs if h["Type"] == "Categorical"] == ["score-window-position", "default-output"]
    defaults = parse_hyperparameters({h["Name"]: h["DefaultValue"] for h in specs})
    assert defaults == Hyperparameters()


def test_channels_metrics_and_objectives(request_dict: dict[str, Any]) -> None:
    training = request_dict["TrainingSpecification"]
    channels = {c["Name"]: c for c in training["TrainingChannels"]}
    assert {name: c["IsRequired"] for name, c in channels.items()} == {"training": True, "validation": False}
    for channel in channels.values():
        assert channel["SupportedInputModes"] == ["File"]
        assert channel["SupportedContentTypes"] == ["text/csv"]
        assert channel["SupportedCompressionTypes"] == ["None"]  # Gzip applies to Pipe mode only
    assert training["MetricDefinitions"] == [{"Name": m.name, "Regex": m.regex} for m in METRICS]
    objectives = {o["MetricName"]: o["Type"] for o in training["SupportedTuningJobObjectiveMetrics"]}
    assert objectives == {"train:mse": "Minimize", "train:mae": "Minimize", "calibration:mse": "Minimize",
                          "valid:mse": "Minimize", "valid:mae": "Minimize"}
    assert training["SupportsDistributedTraining"] is True
    assert "ml.g4dn.xlarge" in training["SupportedTrainingInstanceTypes"]  # --gpu


def test_validation_profile_trains_and_transforms_whole_files(request_dict: dict[str, Any]) -> None:
    profile, = request_dict["ValidationSpecification"]["ValidationProfiles"]
    training_job = profile["TrainingJobDefinition"]
    assert all(isinstance(v, str) for v in training_job["HyperParameters"].values())
    hp = parse_hyperparameters(training_job["HyperParameters"])
    assert hp.epochs == VALIDATION_HYPERPARAMETERS["epochs"]
    transform = profile["TransformJobDefinition"]["TransformInput"]
    assert (transform["ContentType"], transform["SplitType"]) == ("text/csv", "None")
    inference = request_dict["InferenceSpecification"]
    assert inference["SupportedContentTypes"] == ["text/csv", "application/json"]
    assert inference["Containers"][0]["ImageDigest"] == "sha256:" + "0123456789abcdef" * 4
    # CPU only for inference, even for the CUDA build: GPU hosts' default driver (470) cannot run CUDA 12.1
    for kind in ("SupportedTransformInstanceTypes", "SupportedRealtimeInferenceInstanceTypes"):
        assert inference[kind] and all(name.startswith(("ml.m5.", "ml.c5.")) for name in inference[kind])


# --- the metric regexes against the real `train` output ------------------------------------


@pytest.mark.slow
def test_every_metric_regex_reads_a_number_from_train_output(train_stdout: str) -> None:
    lines = train_stdout.splitlines()
    epochs = int(TINY_HYPERPARAMETERS["epochs"])
    for metric in METRICS:
        values = [float(v) for v in re.findall(metric.regex, train_stdout)]
        assert len(values) == (1 if metric.final else epochs), (metric.name, values)
        assert all(math.isfinite(v) for v in values), (metric.name, values)
        if metric.objective:  # errors; the alarm threshold is a log-likelihood, of either sign
            assert all(v >= 0 for v in values), (metric.name, values)
    for line in lines:  # no line feeds two metric definitions
        matched = [m.name for m in METRICS if re.search(m.regex, line)]
        assert len(matched) <= 1, (line, matched)


# --- the SDK v2 AlgorithmEstimator, as a buyer uses it ---------------------------------------


def describe_response(request: dict[str, Any]) -> dict[str, Any]:
    """DescribeAlgorithm's answer for the created algorithm (the Stubber checks its shape too)."""
    keys = ("AlgorithmDescription", "TrainingSpecification", "InferenceSpecification", "ValidationSpecification",
            "CertifyForMarketplace")
    return {**{key: request[key] for key in keys}, "AlgorithmName": request["AlgorithmName"], "AlgorithmArn": ARN,
            "CreationTime": datetime.datetime(2026, 11, 22, tzinfo=datetime.timezone.utc),
            "AlgorithmStatus": "Completed", "AlgorithmStatusDetails": {"ValidationStatuses": []}}


@pytest.fixture
def estimator(request_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build `AlgorithmEstimator(...)` against a stubbed DescribeAlgorithm."""
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # the SDK v2 deprecation notice
    from sagemaker.algorithm import AlgorithmEstimator
    from sagemaker.session import Session

    def build(spec: dict[str, Any] = request_dict, **kwargs: Any) -> Any:
        client = sagemaker_client()
        stub = Stubber(client)
        stub.add_response("describe_algorithm", describe_response(spec), {"AlgorithmName": ARN})
        stub.activate()
        boto_session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=REGION)
        session = Session(boto_session=boto_session, sagemaker_client=client)
        options = {"instance_count": 1, "instance_type": "ml.m5.xlarge", **kwargs}
        return AlgorithmEstimator(algorithm_arn=ARN, role=ROLE, sagemaker_session=session, **options)

    return build


def test_estimator_fills_defaults_that_train_parses(estimator: Any) -> None:
    chosen = {"context-length": 50, "dropout": 0.1, "lr": 0.01}
    hyperparameters = estimator(hyperparameters=chosen).hyperparameters()
    assert set(hyperparameters) == {spec.name for spec in SCHEMA}
    # The SDK sends str(value) for each; `train` must read back exactly what was chosen.
    parsed = parse_hyperparameters({name: str(value) for name, value in hyperparameters.items()})
    assert (parsed.context_length, parsed.dropout, parsed.lr) == (50, 0.1, 0.01)
    assert parsed.epochs == Hyperparameters().epochs


@pytest.mark.parametrize("value", ["none", "alarm", "attribution", "alarm,attribution"])
def test_estimator_passes_every_default_output_that_train_parses(estimator: Any, value: str) -> None:
    sent = estimator(hyperparameters={"default-output": value}).hyperparameters()["default-output"]
    assert sent == value and parse_hyperparameters({"default-output": str(sent)}).default_output == value


@pytest.mark.parametrize(("options", "message"), [
    ({"hyperparameters": {"hidden-size": 0}}, "Invalid value"),
    ({"hyperparameters": {"calibration-fraction": 2.0}}, "Invalid value"),
    ({"hyperparameters": {"hidden_size": 8}}, "Invalid hyperparameter"),
    ({"hyperparameters": {"default-output": "alarms"}}, "Invalid value"),
    ({"input_mode": "FastFile"}, "Invalid input mode"),
    ({"instance_type": "ml.p4d.24xlarge"}, "Invalid instance_type"),
])
def test_estimator_rejects_what_the_spec_excludes(estimator: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimator(**options)


def test_the_spec_lets_buyers_train_on_several_instances(estimator: Any, request_dict: dict[str, Any]) -> None:
    """SupportsDistributedTraining: the SDK refuses instance_count > 1 for an algorithm that does not declare it;
    ours does (the hosts train one model together), so two instances pass where one without it fails."""
    assert request_dict["TrainingSpecification"]["SupportsDistributedTraining"] is True
    estimator(instance_count=2)
    single = copy.deepcopy(request_dict)
    single["TrainingSpecification"]["SupportsDistributedTraining"] = False
    with pytest.raises(ValueError, match="Distributed training is not supported"):
        estimator(single, instance_count=2)


def test_estimator_channel_rules(estimator: Any) -> None:
    built = estimator()
    built._validate_input_channels({"training": "s3://b/t/", "validation": "s3://b/v/"})  # the SDK's own check
    with pytest.raises(ValueError, match="Required input channel: training"):
        built._validate_input_channels({"validation": "s3://b/v/"})
    with pytest.raises(ValueError, match="Unknown input channel: test"):
        built._validate_input_channels({"training": "s3://b/t/", "test": "s3://b/x/"})


# --- the README tables ---------------------------------------------------------------------


def test_markdown_tables_list_every_hyperparameter_and_metric() -> None:
    tables = markdown_tables()
    kinds = {int: "integer", float: "float", str: "categorical"}
    for spec in SCHEMA:
        assert f"| `{spec.name}` | {kinds[spec.type]} |" in tables
    assert ('| `default-output` | categorical | none | one of "none", "alarm", "attribution", "alarm,attribution" |'
            in tables)
    for metric in METRICS:
        assert f"| `{metric.name}` | `{metric.regex}` |" in tables


def test_readme_tables_are_the_generated_ones() -> None:
    readme = (REPO / "README.md").read_text()
    regenerate = "python -m lstm_ad_local.algorithm_spec"
    assert hyperparameter_table() in readme, f"README hyperparameter table is stale: regenerate with {regenerate}"
    assert metric_table() in readme, f"README metric table is stale: regenerate with {regenerate}"


def test_readme_is_a_user_page_of_at_most_200_lines_with_the_two_setup_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail to docs/"
    first_screen = "\n".join(lines[:30])
    assert "bash scripts/demo.sh" in first_screen and "bash scripts/test.sh" in first_screen
