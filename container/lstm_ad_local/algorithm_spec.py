"""The SageMaker algorithm resource (CreateAlgorithm) and the README tables, generated.

Every hyperparameter name, type, range and default comes from `lstm_ad.hyperparameters.SCHEMA`,
every metric name and regex from `lstm_ad.sagemaker.metrics.METRICS`, and the channels from
`lstm_ad.sagemaker.paths.CHANNELS`, so nothing the container parses is written a second time
here. The request is plain data (dicts of strings, lists and bools) that `create_algorithm.py` sends with
boto3 and the tests check against botocore's service model.

Usage (prints the README tables):

    python -m lstm_ad_local.algorithm_spec
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lstm_ad.hyperparameters import SCHEMA, Spec
from lstm_ad.sagemaker.metrics import METRICS
from lstm_ad.sagemaker.paths import CHANNELS, TRAINING_CHANNEL, VALIDATION_CHANNEL

DEFAULT_ALGORITHM_NAME = "lstm-ad"
DESCRIPTION = (
    "LSTM-AD (Malhotra et al., ESANN 2015): unsupervised anomaly detection for multivariate time series. "
    "Train on CSV (one column per variable, one row per time step, no header); batch transform or an "
    "endpoint returns, per input row, a normality score on the log-likelihood scale of its prediction errors "
    "(lower = more anomalous) followed by the predicted value of every column."
)

CONTENT_TYPES = ["text/csv"]
# AlgorithmEstimator allows the intersection of every channel's modes starting from
# {File, Pipe}, so FastFile would be rejected client-side even though `train` reads it.
INPUT_MODES = ["File"]
# Channel CompressionType Gzip is applied to Pipe mode only (File mode copies objects as they are), so
# it is not offered; `.gz` files in a File-mode channel are still read (by their gzip header).
COMPRESSION_TYPES = ["None"]
INFERENCE_CONTENT_TYPES = ["text/csv", "application/json"]
RESPONSE_MIME_TYPES = ["text/csv", "application/json"]

CHANNEL_DOCS = {
    TRAINING_CHANNEL: "CSV files (no header, one column per variable, one row per time step, gzip allowed); "
                      "each file is an independent series of normal behaviour; all files have the same columns.",
    VALIDATION_CHANNEL: "Optional CSV files with the same columns; only scored (valid:mse, valid:mae), "
                        "never used to fit.",
}

CPU_TRAINING_INSTANCES = ["ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge",
                          "ml.c5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge"]
# Turing (g4dn) and Ampere (g5) GPUs run both GPU builds; the PyTorch 2.13 image's CUDA 13 has dropped the
# Volta GPUs of ml.p3, so they are not offered.
GPU_TRAINING_INSTANCES = ["ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g5.xlarge", "ml.g5.2xlarge"]
CPU_INFERENCE_INSTANCES = ["ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge",
                           "ml.c5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge"]
# No GPU inference types: SageMaker's GPU inference hosts run NVIDIA driver 470 (CUDA 11.4) unless the
# model names an InferenceAmiVersion/TransformAmiVersion with a newer driver, and the CUDA 12.1 build then
# falls back to the CPU. Scoring is fast on CPU (docs/benchmarks.md); GPUs stay for training.

VALIDATION_INSTANCE = "ml.m5.xlarge"
# A short validation run: SageMaker repeats it for every algorithm version and shows it to buyers.
VALIDATION_HYPERPARAMETERS = {"epochs": 5, "hidden-size": 16}


@dataclass(frozen=True)
class AlgorithmRequest:
    """What a seller chooses; everything else in the request is derived from the code."""

    image_uri: str
    validation_role: str
    training_data: str  # S3 prefix of the validation profile's `training` channel
    transform_data: str  # S3 prefix of the CSV files the validation transform job scores
    output_path: str  # S3 prefix for the validation jobs' model and transform output
    name: str = DEFAULT_ALGORITHM_NAME
    image_digest: str | None = None  # sha256:... of the pushed image
    gpu: bool = False  # the image is the CUDA build: also offer GPU training instance types
    certify_for_marketplace: bool = False
    hyperparameters: dict[str, Any] = field(default_factory=lambda: dict(VALIDATION_HYPERPARAMETERS))


def _text(spec: Spec, value: int | float | str) -> str:
    """The API's ranges and defaults are strings; integer bounds must read as `int()` does ("1", not "1.0")."""
    if spec.choices:
        return str(value)
    return str(int(value)) if spec.type is int else repr(float(value))


def _kind(spec: Spec) -> str:
    return "Categorical" if spec.choices else "Integer" if spec.type is int else "Continuous"


def hyperparameter_spec(spec: Spec) -> dict[str, Any]:
    kind = _kind(spec)
    if spec.choices:  # AlgorithmEstimator (SDK v2) checks str(value) against these before any job
        bounds: dict[str, Any] = {"Values": list(spec.choices)}
        allowed = spec.range_text()[0].upper() + spec.range_text()[1:]
    else:
        bounds = {"MinValue": _text(spec, spec.min), "MaxValue": _text(spec, spec.max)}
        excluded = " (bounds excluded)" if spec.min_exclusive or spec.max_exclusive else ""
        allowed = f"Range {spec.range_text()}{excluded}"
    return {
        "Name": spec.name,
        "Description": f"{spec.doc} {allowed}; default {_text(spec, spec.default)}.",
        "Type": kind,
        "Range": {f"{kind}ParameterRangeSpecification": bounds},
        "IsTunable": spec.tunable,
        "IsRequired": False,  # every hyperparameter has a default (the API forbids both)
        "DefaultValue": _text(spec, spec.default),
    }


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": metric.name, "Regex": metric.regex} for metric in METRICS]


def tuning_objectives() -> list[dict[str, str]]:
    """The final metrics that are errors (all minimised); alarm:threshold is reported, not an objective."""
    return [{"Type": "Minimize", "MetricName": metric.name} for metric in METRICS
            if metric.final and metric.objective]


def channel_specs() -> list[dict[str, Any]]:
    return [{"Name": name, "Description": CHANNEL_DOCS[name], "IsRequired": required,
             "SupportedContentTypes": CONTENT_TYPES, "SupportedCompressionTypes": COMPRESSION_TYPES,
             "SupportedInputModes": INPUT_MODES}
            for name, required in CHANNELS.items()]


def _image(request: AlgorithmRequest, key: str) -> dict[str, str]:
    image = {key: request.image_uri}
    if request.image_digest:
        image[f"{key}Digest" if key == "TrainingImage" else "ImageDigest"] = request.image_digest
    return image


def training_specification(request: AlgorithmRequest) -> dict[str, Any]:
    instances = CPU_TRAINING_INSTANCES + (GPU_TRAINING_INSTANCES if request.gpu else [])
    return {
        **_image(request, "TrainingImage"),
        "SupportedHyperParameters": [hyperparameter_spec(spec) for spec in SCHEMA],
        "SupportedTrainingInstanceTypes": instances,
        "SupportsDistributedTraining": True,  # torch.distributed over the hosts (docs/distributed-training.md)
        "MetricDefinitions": metric_definitions(),
        "TrainingChannels": channel_specs(),
        "SupportedTuningJobObjectiveMetrics": tuning_objectives(),
    }


def inference_specification(request: AlgorithmRequest) -> dict[str, Any]:
    return {
        "Containers": [_image(request, "Image")],
        "SupportedTransformInstanceTypes": CPU_INFERENCE_INSTANCES,
        "SupportedRealtimeInferenceInstanceTypes": CPU_INFERENCE_INSTANCES,
        "SupportedContentTypes": INFERENCE_CONTENT_TYPES,
        "SupportedResponseMIMETypes": RESPONSE_MIME_TYPES,
    }


def _s3_source(uri: str, training: bool) -> dict[str, Any]:
    source: dict[str, Any] = {"S3DataType": "S3Prefix", "S3Uri": uri}
    if training:  # transform inputs have no distribution type: each file goes to one instance
        source["S3DataDistributionType"] = "FullyReplicated"
    return {"S3DataSource": source}


def validation_specification(request: AlgorithmRequest) -> dict[str, Any]:
    """One profile: train on the sample data, then batch-transform whole files (SplitType None)."""
    output = request.output_path.rstrip("/")
    training_job = {
        "TrainingInputMode": INPUT_MODES[0],
        "HyperParameters": {name: str(value) for name, value in request.hyperparameters.items()},
        "InputDataConfig": [{"ChannelName": TRAINING_CHANNEL,
                             "DataSource": _s3_source(request.training_data, training=True),
                             "ContentType": CONTENT_TYPES[0], "CompressionType": "None"}],
        "OutputDataConfig": {"S3OutputPath": f"{output}/training"},
        "ResourceConfig": {"InstanceType": VALIDATION_INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    # SplitType None sends each file whole: a series must not be cut into independent requests.
    transform_job = {
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": 100,
        "TransformInput": {"DataSource": _s3_source(request.transform_data, training=False),
                           "ContentType": CONTENT_TYPES[0], "CompressionType": "None", "SplitType": "None"},
        "TransformOutput": {"S3OutputPath": f"{output}/transform", "Accept": CONTENT_TYPES[0]},
        "TransformResources": {"InstanceType": VALIDATION_INSTANCE, "InstanceCount": 1},
    }
    return {"ValidationRole": request.validation_role,
            "ValidationProfiles": [{"ProfileName": "sample-data", "TrainingJobDefinition": training_job,
                                    "TransformJobDefinition": transform_job}]}


def create_algorithm_request(request: AlgorithmRequest) -> dict[str, Any]:
    """Keyword arguments of `boto3.client('sagemaker').create_algorithm`."""
    return {
        "AlgorithmName": request.name,
        "AlgorithmDescription": DESCRIPTION,
        "TrainingSpecification": training_specification(request),
        "InferenceSpecification": inference_specification(request),
        "ValidationSpecification": validation_specification(request),
        "CertifyForMarketplace": request.certify_for_marketplace,
    }


def hyperparameter_table() -> str:
    """The README's hyperparameter table (markdown)."""
    rows = ["| name | type | default | range | tunable | description |", "|---|---|---|---|---|---|"]
    for spec in SCHEMA:
        kind = _kind(spec).lower().replace("continuous", "float")
        rows.append(f"| `{spec.name}` | {kind} | {_text(spec, spec.default)} | {spec.range_text()} | "
                    f"{'yes' if spec.tunable else 'no'} | {spec.doc} |")
    return "\n".join(rows)


def metric_table() -> str:
    """The README's metric table (markdown): names, regexes for MetricDefinitions, meaning."""
    rows = ["| metric | regex | tuning objective | meaning |", "|---|---|---|---|"]
    for metric in METRICS:
        objective = "minimize" if metric.final and metric.objective else "no"
        rows.append(f"| `{metric.name}` | `{metric.regex}` | {objective} | {metric.doc} |")
    return "\n".join(rows)


def markdown_tables() -> str:
    return f"{hyperparameter_table()}\n\n{metric_table()}\n"


if __name__ == "__main__":
    print(markdown_tables(), end="")
