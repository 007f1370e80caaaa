"""The real sagemaker 2.x SDK against a stubbed botocore client: the requests users' notebooks send.

No network: the client has dummy credentials, botocore's Stubber answers every call
(after botocore has validated the request against the service model), and the SDK's
telemetry is switched off in the session config. Each test captures the request
parameters and checks them against what the container parses and prints.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # before the first sagemaker import
sagemaker = pytest.importorskip("sagemaker", reason="the SDK tests need sagemaker>=2.257,<3 (dev extra)")
boto3 = pytest.importorskip("boto3")
from botocore.stub import Stubber  # noqa: E402
from sagemaker.algorithm import AlgorithmEstimator  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter  # noqa: E402

from lstm_ad.hyperparameters import SCHEMA  # noqa: E402
from lstm_ad.sagemaker import metrics  # noqa: E402
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters  # noqa: E402
from lstm_ad_local import algorithm_spec, demo_data  # noqa: E402
from lstm_ad_local.jobs import run_training_job  # noqa: E402
from lstm_ad_local.transform import run_transform_job  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/lstm-ad:latest"
ALGORITHM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:algorithm/lstm-ad"
INSTANCE = "ml.m5.xlarge"
# What the notebook passes: Python numbers, as users write them.
NOTEBOOK_HYPERPARAMETERS = {"context-length": 100, "prediction-length": 1, "hidden-size": 32, "num-layers": 2,
                            "dropout": 0.0, "lr": 0.001, "epochs": 50, "batch-size": 64}
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class StubbedSageMaker:
    """A sagemaker.Session whose client is stubbed; `sent` holds (operation, params) in call order."""

    def __init__(self) -> None:
        boto_session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=REGION)
        self.client = boto_session.client("sagemaker")
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("before-parameter-build.sagemaker.*", self._capture)
        self.stubber = Stubber(self.client)
        self.session = sagemaker.Session(boto_session=boto_session, sagemaker_client=self.client,
                                         default_bucket="lstm-ad-test-bucket", sagemaker_config=NO_TELEMETRY)

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.append((model.name, dict(params)))

    def expect(self, operation: str, response: dict[str, Any]) -> None:
        self.stubber.add_response(operation, response)

    def request(self, operation: str) -> dict[str, Any]:
        found = [params for name, params in self.sent if name == operation]
        assert len(found) == 1, f"expected one {operation}, got {[name for name, _ in self.sent]}"
        return found[0]


@pytest.fixture
def aws() -> StubbedSageMaker:
    stubbed = StubbedSageMaker()
    stubbed.stubber.activate()
    yield stubbed
    stubbed.stubber.assert_no_pending_responses()
    stubbed.stubber.deactivate()


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def _completed_training_job(name: str) -> dict[str, Any]:
    return {"TrainingJobName": name, "TrainingJobArn": _arn("training-job", name),
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://lstm-ad-test-bucket/output/{name}/output/model.tar.gz"},
            "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE},
            "ResourceConfig": {"InstanceType": INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "CreationTime": datetime.now(timezone.utc)}



def _fit(aws: StubbedSageMaker, estimator: Any, inputs: dict[str, str]) -> dict[str, Any]:
    aws.expect("create_training_job", {"TrainingJobArn": _arn("training-job", "job")})
    estimator.fit(inputs, wait=False, logs=False)
    return aws.request("CreateTrainingJob")


def test_estimator_fit_sends_string_hyperparameters_that_train_parses(aws: StubbedSageMaker) -> None:
    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=1, instance_type=INSTANCE,
                          hyperparameters=NOTEBOOK_HYPERPARAMETERS, sagemaker_session=aws.session,
                          metric_definitions=algorithm_spec.metric_definitions(),
                          output_path="s3://lstm-ad-test-bucket/output")
    request = _fit(aws, estimator, {"training": "s3://lstm-ad-test-bucket/train/",
                                    "validation": "s3://lstm-ad-test-bucket/valid/"})

    sent = request["HyperParameters"]
    assert all(isinstance(value, str) for value in sent.values()), sent
    parsed = parse_hyperparameters(sent).to_json()
    assert {name: parsed[name] for name in NOTEBOOK_HYPERPARAMETERS} == NOTEBOOK_HYPERPARAMETERS
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training", "validation"]


def test_two_instances_with_sharded_files_as_the_readme_shows(aws: StubbedSageMaker) -> None:
    """What `train` reads on each host: InstanceCount (resourceconfig.json's hosts) and S3DistributionType."""
    from sagemaker.inputs import TrainingInput

    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=2, instance_type=INSTANCE,
                          sagemaker_session=aws.session, output_path="s3://lstm-ad-test-bucket/output")
    request = _fit(aws, estimator, {"training": TrainingInput("s3://lstm-ad-test-bucket/train/",
                                                              distribution="ShardedByS3Key")})
    assert request["ResourceConfig"]["InstanceCount"] == 2
    channel, = request["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"


def test_metric_definitions_sent_with_fit_read_our_log_lines(aws: StubbedSageMaker,
                                                            metric_log_lines: dict[str, str]) -> None:
    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=1, instance_type=INSTANCE,
                          sagemaker_session=aws.session, metric_definitions=algorithm_spec.metric_definitions(),
                          output_path="s3://lstm-ad-test-bucket/output")
    definitions = _fit(aws, estimator, {"training": "s3://lstm-ad-test-bucket/train/"})[
        "AlgorithmSpecification"]["MetricDefinitions"]
    lines = metric_log_lines

    assert {d["Name"] for d in definitions} == set(lines)
    for definition in definitions:
        for name, line in lines.items():  # each regex reads its own line, and only that one
            match = re.search(definition["Regex"], line)
            assert bool(match) == (name == definition["Name"]), (definition, line)
        value = float(re.search(definition["Regex"], lines[definition["Name"]]).group(1))
        index = [m.name for m in metrics.METRICS].index(definition["Name"])
        assert value == pytest.approx(0.5 + index * 1.25e-3, rel=1e-5)


def test_transformer_sends_text_csv_whole_files(aws: StubbedSageMaker) -> None:
    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=1, instance_type=INSTANCE,
                          sagemaker_session=aws.session, output_path="s3://lstm-ad-test-bucket/output")
    _fit(aws, estimator, {"training": "s3://lstm-ad-test-bucket/train/"})
    job = estimator.latest_training_job.name
    aws.expect("describe_training_job", _completed_training_job(job))
    aws.expect("create_model", {"ModelArn": _arn("model", "model")})
    aws.expect("create_transform_job", {"TransformJobArn": _arn("transform-job", "transform")})

    transformer = estimator.transformer(instance_count=1, instance_type=INSTANCE, accept="text/csv",
                                        output_path="s3://lstm-ad-test-bucket/predictions")
    transformer.transform("s3://lstm-ad-test-bucket/test/", content_type="text/csv", wait=False, logs=False)

    request = aws.request("CreateTransformJob")
    assert request["TransformInput"]["ContentType"] == "text/csv"
    assert "SplitType" not in request["TransformInput"]  # None: each file is one request, one whole series
    assert "BatchStrategy" not in request
    # No AssembleWith: our answers end every row with a newline, so plain concatenation is one line a row.
    assert request["TransformOutput"] == {"S3OutputPath": "s3://lstm-ad-test-bucket/predictions",
                                          "Accept": "text/csv"}
    model = aws.request("CreateModel")["PrimaryContainer"]
    assert model["ModelDataUrl"].endswith(f"{job}/output/model.tar.gz")


def _describe_algorithm_response() -> dict[str, Any]:
    request = algorithm_spec.AlgorithmRequest(
        image_uri=IMAGE, validation_role=ROLE, training_data="s3://lstm-ad-test-bucket/train/",
        transform_data="s3://lstm-ad-test-bucket/test/", output_path="s3://lstm-ad-test-bucket/validation")
    created = algorithm_spec.create_algorithm_request(request)
    return {"AlgorithmName": created["AlgorithmName"], "AlgorithmArn": ALGORITHM_ARN,
            "CreationTime": datetime.now(timezone.utc), "AlgorithmStatus": "Completed",
            "AlgorithmStatusDetails": {}, "TrainingSpecification": created["TrainingSpecification"],
            "InferenceSpecification": created["InferenceSpecification"]}


def test_algorithm_estimator_accepts_the_listing_hyperparameters(aws: StubbedSageMaker) -> None:
    aws.expect("describe_algorithm", _describe_algorithm_response())
    estimator = AlgorithmEstimator(algorithm_arn=ALGORITHM_ARN, role=ROLE, instance_count=1, instance_type=INSTANCE,
                                   hyperparameters=NOTEBOOK_HYPERPARAMETERS, sagemaker_session=aws.session,
                                   output_path="s3://lstm-ad-test-bucket/output")
    request = _fit(aws, estimator, {"training": "s3://lstm-ad-test-bucket/train/"})

    assert request["AlgorithmSpecification"]["AlgorithmName"] == ALGORITHM_ARN
    sent = request["HyperParameters"]
    assert set(sent) == {spec.name for spec in SCHEMA}  # the SDK fills in every default from the spec
    parsed = parse_hyperparameters(sent).to_json()
    assert {name: parsed[name] for name in NOTEBOOK_HYPERPARAMETERS} == NOTEBOOK_HYPERPARAMETERS


def test_algorithm_estimator_rejects_unknown_hyperparameters_before_any_job(aws: StubbedSageMaker) -> None:
    aws.expect("describe_algorithm", _describe_algorithm_response())
    with pytest.raises(ValueError, match="context_length"):
        AlgorithmEstimator(algorithm_arn=ALGORITHM_ARN, role=ROLE, instance_count=1, instance_type=INSTANCE,
                           hyperparameters={"context_length": 100}, sagemaker_session=aws.session)
    assert [name for name, _ in aws.sent] == ["DescribeAlgorithm"]


def test_tuning_job_objective_is_a_final_metric_and_ranges_parse(aws: StubbedSageMaker) -> None:
    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=1, instance_type=INSTANCE,
                          hyperparameters={"epochs": 20}, sagemaker_session=aws.session,
                          output_path="s3://lstm-ad-test-bucket/output")
    tuner = HyperparameterTuner(estimator, objective_metric_name="valid:mse", objective_type="Minimize",
                                metric_definitions=algorithm_spec.metric_definitions(),
                                hyperparameter_ranges={"hidden-size": IntegerParameter(16, 64),
                                                       "lr": ContinuousParameter(1e-4, 1e-2)},
                                max_jobs=4, max_parallel_jobs=2)
    aws.expect("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": _arn("tuning-job", "t")})
    tuner.fit({"training": "s3://lstm-ad-test-bucket/train/", "validation": "s3://lstm-ad-test-bucket/valid/"},
              wait=False)

    request = aws.request("CreateHyperParameterTuningJob")
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": "Minimize", "MetricName": "valid:mse"}
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    parse_hyperparameters(static)  # the tuner's own keys (_tuning_objective_metric, sagemaker_*) are accepted
    final = {metric.name for metric in metrics.METRICS if metric.final}
    assert objective["MetricName"] in final
    assert objective["MetricName"] in {d["Name"] for d in definition["AlgorithmSpecification"]["MetricDefinitions"]}


# --- a Marketplace buyer's batch transform, as the notebook runs it ----------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "lstm_ad.ipynb"
PRODUCT_ID = "prod-lstmad12345"


def notebook_cell(marker: str) -> str:
    """The source of the notebook's code cell that contains `marker`."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    found = ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and marker in "".join(c["source"])]
    assert len(found) == 1, (marker, len(found))
    return found[0]


def notebook_hyperparameters() -> dict[str, Any]:
    """HYPERPARAMETERS as the notebook's cell makes them (quick settings, generated data)."""
    namespace: dict[str, Any] = {"QUICK": True, "DATA": "demo", "UCR_FILE": Path("absent"), "pd": pd}
    exec(notebook_cell("HYPERPARAMETERS = {"), namespace)
    return namespace["HYPERPARAMETERS"]


def _completed_model_package(name: str) -> dict[str, Any]:
    """A model package made from a Marketplace algorithm: its container carries the product's id."""
    return {"ModelPackageName": name, "ModelPackageArn": _arn("model-package", name),
            "CreationTime": datetime.now(timezone.utc), "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ProductId": PRODUCT_ID}],
                                       "SupportedContentTypes": ["text/csv"],
                                       "SupportedResponseMIMETypes": ["text/csv"]}}


@pytest.mark.slow
def test_marketplace_transform_gets_the_optional_outputs_from_the_model(aws: StubbedSageMaker, tmp_path: Path) -> None:
    """SDK v2 drops a transformer's env= for a Marketplace algorithm (DescribeAlgorithm has a ProductId), so
    LSTM_AD_OUTPUT never reaches a buyer's container; the notebook asks at training (default-output), the
    model keeps it, and the transform job's answers carry the columns the notebook reads and counts."""
    listing = {**_describe_algorithm_response(), "ProductId": PRODUCT_ID}
    aws.expect("describe_algorithm", listing)
    estimator = AlgorithmEstimator(algorithm_arn=ALGORITHM_ARN, role=ROLE, instance_count=1, instance_type=INSTANCE,
                                   hyperparameters=notebook_hyperparameters(), sagemaker_session=aws.session,
                                   output_path="s3://lstm-ad-test-bucket/output")
    sent = _fit(aws, estimator, {"training": "s3://lstm-ad-test-bucket/train/"})["HyperParameters"]
    assert sent["default-output"] == "alarm,attribution"
    job = estimator.latest_training_job.name
    aws.expect("describe_training_job", _completed_training_job(job))
    aws.expect("create_model_package", {"ModelPackageArn": _arn("model-package", "package")})
    for _ in range(3):  # the SDK waits for the package, then reads it twice more
        aws.expect("describe_model_package", _completed_model_package("package"))
    aws.expect("create_model", {"ModelArn": _arn("model", "model")})
    aws.expect("create_transform_job", {"TransformJobArn": _arn("transform-job", "transform")})
    transformer = estimator.transformer(instance_count=1, instance_type=INSTANCE, accept="text/csv", max_payload=100,
                                        max_concurrent_transforms=1, env={"LSTM_AD_OUTPUT": "alarm,attribution"},
                                        output_path="s3://lstm-ad-test-bucket/predictions")
    transformer.transform("s3://lstm-ad-test-bucket/test/", content_type="text/csv", wait=False, logs=False)
    request = aws.request("CreateTransformJob")
    assert "Environment" not in request  # the SDK dropped it: only the model can ask for the outputs
    assert aws.request("CreateModel")["EnableNetworkIsolation"] is True

    # The buyer's training and transform jobs, locally: the strings the SDK sent, and no environment.
    demo = demo_data.write_demo_data(tmp_path / "data", train_rows=1200, test_rows=600)
    model = run_training_job({"training": demo.train.parent}, sent, tmp_path / "model", echo=None).model_artifact
    out_file, = run_transform_job(model, demo.test.parent, tmp_path / "predictions").outputs
    test_values = np.loadtxt(demo.test, delimiter=",")
    namespace: dict[str, Any] = {"out_file": out_file, "test_values": test_values, "pd": pd}
    exec(notebook_cell("output = pd.read_csv(out_file, header=None)"), namespace)  # the notebook's reading cell
    assert list(namespace["output"].columns) == ["score", "pred_1", "pred_2", "pred_3", "alarm",
                                                 "attr_1", "attr_2", "attr_3"]
    assert namespace["output"]["alarm"].dropna().isin([0, 1]).all()

    narrow = tmp_path / "narrow.csv.out"  # what the notebook read before: the listing's four columns only
    narrow.write_text("".join(",".join(line.split(",")[:4]) + "\n" for line in out_file.read_text().splitlines()))
    with pytest.raises(ValueError, match=r"narrow\.csv\.out has 4 columns, expected 8 \(score,pred_1,pred_2,pred_3,"
                                         r"alarm,attr_1,attr_2,attr_3\): train with default-output"):
        exec(notebook_cell("output = pd.read_csv(out_file, header=None)"), {**namespace, "out_file": narrow})
