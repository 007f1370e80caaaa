"""The real sagemaker 3.x SDK against stubbed botocore clients: the requests users' v3 code sends.

No network: every client the SDK makes comes from one boto3 session with dummy credentials whose
`client()` hands out a single stubbed client per service (SDK v3 builds its own clients from the
session: `sagemaker.core.resources` do it on every call). botocore validates each request against
the service model before the Stubber answers it, an unexpected call fails at once, and the SDK's
telemetry is switched off in the session config. Each test captures the request parameters and
checks them against what the container parses, prints or answers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from sagemaker.core.deserializers import CSVDeserializer
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.resources import Algorithm, Endpoint, EndpointConfig, Model, ModelPackage
from sagemaker.core.serializers import CSVSerializer
from sagemaker.core.shapes import (
    ContainerDefinition,
    ProductionVariant,
    SourceAlgorithm,
    SourceAlgorithmSpecification,
)
from sagemaker.core.training.configs import Compute, InputData, MetricDefinition, Networking, OutputDataConfig
from sagemaker.core.transformer import Transformer
from sagemaker.train import ModelTrainer

from lstm_ad.hyperparameters import SCHEMA
from lstm_ad.sagemaker import metrics
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters
from lstm_ad_local import algorithm_spec

REGION = "us-east-1"
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/lstm-ad:latest"
ALGORITHM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:algorithm/lstm-ad"
INSTANCE = "ml.m5.xlarge"
BUCKET = "s3://lstm-ad-test-bucket"
# What the v3 notebook passes: Python numbers as users write them, and strings (sent unchanged); the
# optional outputs are stored in the model, the one way to them from a Marketplace model package.
NOTEBOOK_HYPERPARAMETERS: dict[str, Any] = {"context-length": 100, "prediction-length": 1, "hidden-size": 32,
                                            "num-layers": 2, "dropout": 0.0, "lr": 1e-5, "epochs": 50,
                                            "batch-size": "64", "default-output": "alarm,attribution"}
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
ALIASES = {"runtime.sagemaker": "sagemaker-runtime"}  # boto3 knows both names


class StubbedAws(boto3.Session):
    """A boto3 session with dummy credentials whose `client()` returns one stubbed client per service,
    whatever region or config the SDK asks for. `sent` holds (operation, params) in call order."""

    def __init__(self) -> None:
        super().__init__(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        service = ALIASES.get(service_name, service_name)
        if service not in self.clients:
            client = super().client(service, region_name=REGION)
            client.meta.events.register("before-parameter-build", self._capture)
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
            self.clients[service] = client
        return self.clients[service]

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.append((model.name, dict(params)))

    def expect(self, operation: str, response: dict[str, Any], service: str = "sagemaker") -> None:
        self.client(service)
        self.stubbers[service].add_response(operation, response)

    def request(self, operation: str) -> dict[str, Any]:
        found = [params for name, params in self.sent if name == operation]
        assert len(found) == 1, f"expected one {operation}, got {[name for name, _ in self.sent]}"
        return found[0]

    def pattern(self, shape: str) -> str:
        """The service model's regex for a request field (botocore checks lengths, not patterns)."""
        return self.client("sagemaker").meta.service_model.shape_for(shape).metadata["pattern"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedAws]:
    # ModelTrainer checks the role with IAM (SimulatePrincipalPolicy) unless told not to; the IAM
    # calls are not what these tests are about.
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    stubbed = StubbedAws()
    yield stubbed
    for stubber in stubbed.stubbers.values():
        stubber.assert_no_pending_responses()
        stubber.deactivate()


@pytest.fixture
def session(aws: StubbedAws) -> Session:
    """A v3 `Session` as users build it, on the stubbed boto3 session."""
    return Session(boto_session=aws, default_bucket="lstm-ad-test-bucket", sagemaker_config=NO_TELEMETRY)


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _training_job_description(name: str, specification: dict[str, Any]) -> dict[str, Any]:
    """What DescribeTrainingJob answers right after CreateTrainingJob (TrainingJob.create reads it back)."""
    return {"TrainingJobName": name, "TrainingJobArn": _arn("training-job", name),
            "ModelArtifacts": {"S3ModelArtifacts": f"{BUCKET}/output/{name}/output/model.tar.gz"},
            "TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting",
            "AlgorithmSpecification": specification,
            "ResourceConfig": {"InstanceType": INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": _now()}


def _train(aws: StubbedAws, trainer: ModelTrainer, channels: dict[str, str]) -> dict[str, Any]:
    """trainer.train(...) as the notebook calls it, without waiting; returns the CreateTrainingJob request."""
    aws.expect("create_training_job", {"TrainingJobArn": _arn("training-job", "job")})
    spec = ({"TrainingInputMode": "File", "AlgorithmName": ALGORITHM_ARN} if trainer.algorithm_name
            else {"TrainingInputMode": "File", "TrainingImage": IMAGE})
    # TrainingJob.create reads the job back; the name is only known once sent, so answer with another.
    aws.expect("describe_training_job", _training_job_description("lstm-ad-described", spec))
    trainer.train(input_data_config=[InputData(channel_name=name, data_source=uri) for name, uri in channels.items()],
                  wait=False, logs=False)
    return aws.request("CreateTrainingJob")


def _image_trainer(session: Session, **kwargs: Any) -> ModelTrainer:
    return ModelTrainer(training_image=IMAGE, role=ROLE, sagemaker_session=session,
                        compute=Compute(instance_type=INSTANCE, instance_count=1),
                        output_data_config=OutputDataConfig(s3_output_path=f"{BUCKET}/output"), **kwargs)


def _metric_definitions() -> list[MetricDefinition]:
    return [MetricDefinition(name=metric.name, regex=metric.regex) for metric in metrics.METRICS]



def test_model_trainer_sends_string_hyperparameters_that_train_parses(aws: StubbedAws, session: Session) -> None:
    trainer = _image_trainer(session, hyperparameters=NOTEBOOK_HYPERPARAMETERS, base_job_name="lstm-ad")
    request = _train(aws, trainer, {"training": f"{BUCKET}/train/", "validation": f"{BUCKET}/valid/"})

    sent = request["HyperParameters"]
    assert all(isinstance(value, str) for value in sent.values()), sent
    assert sent["lr"] == "1e-05" and sent["batch-size"] == "64"  # json.dumps for numbers, strings unchanged
    parsed = parse_hyperparameters(sent).to_json()
    assert {name: parsed[name] for name in NOTEBOOK_HYPERPARAMETERS} == {**NOTEBOOK_HYPERPARAMETERS, "batch-size": 64}
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training", "validation"]
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"{BUCKET}/train/"
    assert "ContainerEntrypoint" not in request["AlgorithmSpecification"]  # no source_code: the image's own `train`
    assert re.fullmatch(aws.pattern("TrainingJobName"), request["TrainingJobName"])
    assert request["OutputDataConfig"]["S3OutputPath"] == f"{BUCKET}/output"


def test_metric_definitions_sent_with_train_read_our_log_lines(aws: StubbedAws, session: Session,
                                                               metric_log_lines: dict[str, str]) -> None:
    trainer = _image_trainer(session, base_job_name="lstm-ad").with_metric_definitions(_metric_definitions())
    definitions = _train(aws, trainer, {"training": f"{BUCKET}/train/"})["AlgorithmSpecification"]["MetricDefinitions"]
    lines = metric_log_lines

    assert [d["Name"] for d in definitions] == [metric.name for metric in metrics.METRICS]
    assert definitions == algorithm_spec.metric_definitions()  # the same list as the listing's specification
    for definition in definitions:
        for name, line in lines.items():  # each regex reads its own line, and only that one
            assert bool(re.search(definition["Regex"], line)) == (name == definition["Name"]), (definition, line)
        value = float(re.search(definition["Regex"], lines[definition["Name"]]).group(1))
        index = [m.name for m in metrics.METRICS].index(definition["Name"])
        assert value == pytest.approx(0.5 + index * 1.25e-3, rel=1e-5)


def _algorithm_description() -> dict[str, Any]:
    request = algorithm_spec.AlgorithmRequest(
        image_uri=IMAGE, validation_role=ROLE, training_data=f"{BUCKET}/train/",
        transform_data=f"{BUCKET}/test/", output_path=f"{BUCKET}/validation")
    created = algorithm_spec.create_algorithm_request(request)
    return {"AlgorithmName": created["AlgorithmName"], "AlgorithmArn": ALGORITHM_ARN, "CreationTime": _now(),
            "AlgorithmStatus": "Completed", "AlgorithmStatusDetails": {},
            "TrainingSpecification": created["TrainingSpecification"],
            "InferenceSpecification": created["InferenceSpecification"]}


def test_marketplace_training_runs_the_algorithm_network_isolated(aws: StubbedAws, session: Session) -> None:
    """ModelTrainer(algorithm_name=...) as the notebook uses it for the Marketplace listing."""
    trainer = ModelTrainer(algorithm_name=ALGORITHM_ARN, base_job_name="lstm-ad", role=ROLE,
                           sagemaker_session=session, compute=Compute(instance_type=INSTANCE, instance_count=1),
                           networking=Networking(enable_network_isolation=True),
                           hyperparameters=NOTEBOOK_HYPERPARAMETERS,
                           output_data_config=OutputDataConfig(s3_output_path=f"{BUCKET}/output"))
    request = _train(aws, trainer, {"training": f"{BUCKET}/train/"})

    specification = request["AlgorithmSpecification"]
    assert specification["AlgorithmName"] == ALGORITHM_ARN and "TrainingImage" not in specification
    assert "MetricDefinitions" not in specification  # the listing brings its own
    assert request["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in request
    assert re.fullmatch(aws.pattern("TrainingJobName"), request["TrainingJobName"])
    # Unlike v2's AlgorithmEstimator, v3 checks nothing against the listing: every name the notebook
    # sends must be one the listing declares, or the job fails at the service.
    listing = {p["Name"] for p in _algorithm_description()["TrainingSpecification"]["SupportedHyperParameters"]}
    assert set(request["HyperParameters"]) <= listing
    assert set(request["HyperParameters"]) == set(NOTEBOOK_HYPERPARAMETERS)  # no defaults filled in by v3
    assert request["HyperParameters"]["default-output"] == "alarm,attribution"  # a categorical the listing declares


def test_default_job_name_from_an_algorithm_arn_is_invalid(aws: StubbedAws, session: Session) -> None:
    """Why the notebook passes base_job_name: v3 derives the default from algorithm_name, ARN and all."""
    trainer = ModelTrainer(algorithm_name=ALGORITHM_ARN, role=ROLE, sagemaker_session=session,
                           output_data_config=OutputDataConfig(s3_output_path=f"{BUCKET}/output"))
    name = _train(aws, trainer, {"training": f"{BUCKET}/train/"})["TrainingJobName"]
    assert name.startswith("arn:aws:sagemaker:")  # botocore checks lengths only, so this goes out...
    assert not re.fullmatch(aws.pattern("TrainingJobName"), name)  # ...and the service rejects it


def test_algorithm_get_reads_the_listing(aws: StubbedAws, session: Session) -> None:
    """Algorithm.get (the v3 replacement of AlgorithmEstimator's describe) shows users the listing's spec."""
    aws.expect("describe_algorithm", _algorithm_description())
    algorithm = Algorithm.get(algorithm_name=ALGORITHM_ARN, session=aws, region=REGION)

    assert aws.request("DescribeAlgorithm") == {"AlgorithmName": ALGORITHM_ARN}
    supported = algorithm.training_specification.supported_hyper_parameters
    assert {p.name for p in supported} == {spec.name for spec in SCHEMA}
    assert {c.name for c in algorithm.training_specification.training_channels} >= {"training", "validation"}
    defaults = {p.name: p.default_value for p in supported}
    parse_hyperparameters(defaults)  # the listing's defaults are valid hyperparameter strings


def _model_description(name: str) -> dict[str, Any]:
    return {"ModelName": name, "ModelArn": _arn("model", name), "CreationTime": _now()}


def test_batch_transform_sends_text_csv_whole_files(aws: StubbedAws, session: Session) -> None:
    """Model.create from the training job's artifact, then Transformer(...).transform(...) as in the notebook."""
    artifact = f"{BUCKET}/output/lstm-ad-job/output/model.tar.gz"
    aws.expect("create_model", {"ModelArn": _arn("model", "lstm-ad-model")})
    aws.expect("describe_model", _model_description("lstm-ad-model"))
    model = Model.create(model_name="lstm-ad-model", execution_role_arn=ROLE,
                         primary_container=ContainerDefinition(image=IMAGE, model_data_url=artifact),
                         session=aws, region=REGION)
    aws.expect("create_transform_job", {"TransformJobArn": _arn("transform-job", "transform")})
    transformer = Transformer(model_name=model.model_name, instance_count=1, instance_type=INSTANCE,
                              accept="text/csv", max_payload=100,
                              max_concurrent_transforms=1, output_path=f"{BUCKET}/predictions",
                              base_transform_job_name="lstm-ad", sagemaker_session=session)
    transformer.transform(f"{BUCKET}/test/", content_type="text/csv", wait=False, logs=False)

    created = aws.request("CreateModel")
    assert created["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": artifact}
    assert created["ExecutionRoleArn"] == ROLE
    request = aws.request("CreateTransformJob")
    assert request["ModelName"] == "lstm-ad-model"
    assert request["TransformInput"]["ContentType"] == "text/csv"
    assert "SplitType" not in request["TransformInput"]  # None: each file is one request, one whole series
    assert "BatchStrategy" not in request
    assert request["TransformInput"]["DataSource"] == {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/test/"}}
    # No AssembleWith: our answers end every row with a newline, so plain concatenation is one line a row.
    assert request["TransformOutput"] == {"S3OutputPath": f"{BUCKET}/predictions", "Accept": "text/csv"}
    assert request["MaxPayloadInMB"] == 100 and request["MaxConcurrentTransforms"] == 1
    assert re.fullmatch(aws.pattern("TransformJobName"), request["TransformJobName"])


def _model_package_description() -> dict[str, Any]:
    return {"ModelPackageName": "lstm-ad-model", "ModelPackageArn": _arn("model-package", "lstm-ad-model"),
            "CreationTime": _now(), "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []}}


def test_marketplace_model_is_a_network_isolated_model_package(aws: StubbedAws, session: Session) -> None:
    """A model trained by a Marketplace algorithm is deployed through a model package made from it,
    as the notebook does: Session.create_model_package_from_algorithm, ModelPackage.get, Model.create."""
    artifact = f"{BUCKET}/output/lstm-ad-job/output/model.tar.gz"
    aws.expect("create_model_package", {"ModelPackageArn": _arn("model-package", "lstm-ad-model")})
    session.create_model_package_from_algorithm("lstm-ad-model", "LSTM-AD model", ALGORITHM_ARN, artifact)
    aws.expect("describe_model_package", _model_package_description())
    package = ModelPackage.get(model_package_name="lstm-ad-model", session=aws, region=REGION)
    aws.expect("create_model", {"ModelArn": _arn("model", "lstm-ad-model")})
    aws.expect("describe_model", _model_description("lstm-ad-model"))
    Model.create(model_name="lstm-ad-model", execution_role_arn=ROLE, enable_network_isolation=True,
                 primary_container=ContainerDefinition(model_package_name=package.model_package_arn),
                 session=aws, region=REGION)

    source = aws.request("CreateModelPackage")["SourceAlgorithmSpecification"]["SourceAlgorithms"]
    assert source == [{"AlgorithmName": ALGORITHM_ARN, "ModelDataUrl": artifact}]
    created = aws.request("CreateModel")
    assert created["PrimaryContainer"] == {"ModelPackageName": _arn("model-package", "lstm-ad-model")}
    assert created["EnableNetworkIsolation"] is True


def test_model_package_create_fails_on_the_services_answer(aws: StubbedAws) -> None:
    """Why the notebook does not call ModelPackage.create (sagemaker-core 2.27.0): it reads
    response["ModelPackageName"], but CreateModelPackage answers only ModelPackageArn, so it raises
    after the package was created. Remove the workaround when this test fails."""
    aws.expect("create_model_package", {"ModelPackageArn": _arn("model-package", "lstm-ad-model")})
    with pytest.raises(KeyError, match="ModelPackageName"):
        ModelPackage.create(
            model_package_name="lstm-ad-model",
            source_algorithm_specification=SourceAlgorithmSpecification(source_algorithms=[
                SourceAlgorithm(algorithm_name=ALGORITHM_ARN, model_data_url=f"{BUCKET}/model.tar.gz")]),
            session=aws, region=REGION)
    assert [name for name, _ in aws.sent] == ["CreateModelPackage"]


def test_endpoint_creation_and_csv_invocation(aws: StubbedAws) -> None:
    """EndpointConfig.create, Endpoint.create and endpoint.invoke with the v3 CSV (de)serializers."""
    aws.expect("create_endpoint_config", {"EndpointConfigArn": _arn("endpoint-config", "lstm-ad")})
    aws.expect("describe_endpoint_config", {
        "EndpointConfigName": "lstm-ad", "EndpointConfigArn": _arn("endpoint-config", "lstm-ad"),
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "lstm-ad-model"}], "CreationTime": _now()})
    config = EndpointConfig.create(
        endpoint_config_name="lstm-ad", session=aws, region=REGION,
        production_variants=[ProductionVariant(variant_name="AllTraffic", model_name="lstm-ad-model",
                                               instance_type=INSTANCE, initial_instance_count=1)])
    aws.expect("create_endpoint", {"EndpointArn": _arn("endpoint", "lstm-ad")})
    aws.expect("describe_endpoint", {"EndpointName": "lstm-ad", "EndpointArn": _arn("endpoint", "lstm-ad"),
                                     "EndpointConfigName": "lstm-ad", "EndpointStatus": "InService",
                                     "CreationTime": _now(), "LastModifiedTime": _now()})
    endpoint = Endpoint.create(endpoint_name="lstm-ad", endpoint_config_name=config.endpoint_config_name,
                               session=aws, region=REGION)

    window = np.array([[0.5, -1.25], [0.75, 2.0], [1.0, 0.125]])
    answer = b",,\n,,\n-1.5,0.9,1.9\n"  # what our container answers: warm-up rows empty, then score + predictions
    aws.expect("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "text/csv"},
               service="sagemaker-runtime")
    endpoint.serializer, endpoint.deserializer = CSVSerializer(), CSVDeserializer()
    rows = endpoint.invoke(body=window, content_type="text/csv", accept="text/csv").body

    variants = aws.request("CreateEndpointConfig")["ProductionVariants"]
    assert variants == [{"VariantName": "AllTraffic", "ModelName": "lstm-ad-model", "InstanceType": INSTANCE,
                         "InitialInstanceCount": 1}]
    assert aws.request("CreateEndpoint") == {"EndpointName": "lstm-ad", "EndpointConfigName": "lstm-ad"}
    invoked = aws.request("InvokeEndpoint")
    assert invoked["ContentType"] == "text/csv" and invoked["Accept"] == "text/csv"
    body = invoked["Body"].decode() if isinstance(invoked["Body"], bytes) else invoked["Body"]
    assert np.array_equal(np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2), window)  # one line per row
    assert rows == [["", "", ""], ["", "", ""], ["-1.5", "0.9", "1.9"]]  # strings: cast them yourself
