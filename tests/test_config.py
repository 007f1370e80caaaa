"""The hyperparameter schema: parsing SageMaker's strings, defaults, every error at once."""

import json

import pytest

from lstm_ad.errors import HyperparameterError
from lstm_ad.hyperparameters import SCHEMA, Hyperparameters
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters


def test_empty_gives_defaults():
    assert parse_hyperparameters({}) == Hyperparameters()


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        ("100", "context_length", 100),  # SDK v2 Estimator: str(v)
        ('"100"', "context_length", 100),  # framework estimators: json.dumps of a string
        ("1e2", "context_length", 100),  # integral float notation
        ("100.0", "context_length", 100),
        (" 64 ", "batch_size", 64),
        ("1e-3", "lr", 0.001),
        ("0.4630125855085939", "dropout", 0.4630125855085939),  # tuning jobs send long floats
        ('"0.5"', "dropout", 0.5),
        ("7", "epochs", 7),
    ],
)
def test_accepts_every_client_encoding(raw, field, expected):
    name = field.replace("_", "-")
    hp = parse_hyperparameters({name: raw})
    assert getattr(hp, field) == expected
    assert type(getattr(hp, field)) is type(expected)


def test_ignores_platform_keys():
    hp = parse_hyperparameters({
        "_tuning_objective_metric": "valid:mse",
        "sagemaker_estimator_class_name": '"Estimator"',
        "sagemaker_program": "x.py",
        "epochs": "3",
    })
    assert hp.epochs == 3


def test_reports_every_problem_and_lists_valid_names():
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({
            "epochs": "0", "lr": "fast", "context-lenght": "10", "hidden-size": "2.5", "dropout": "1",
        })
    message = str(info.value)
    assert len(info.value.problems) == 5
    assert "`epochs` must be in [1, 100000], got \"0\"" in message
    assert "`lr` must be a number, got \"fast\"" in message
    assert "unknown hyperparameter `context-lenght`" in message
    assert "`hidden-size` must be an integer, got \"2.5\"" in message
    assert "`dropout` must be in [0, 1), got \"1\"" in message
    for spec in SCHEMA:
        assert spec.name in message.splitlines()[-1]


def test_prediction_length_may_not_exceed_context_length():
    message = r"`prediction-length` \(20\) must not exceed `context-length` \(10\)"
    with pytest.raises(HyperparameterError, match=message):
        parse_hyperparameters({"context-length": "10", "prediction-length": "20"})


@pytest.mark.parametrize("raw", ["true", "nan", "inf", "[1]", ""])
def test_rejects_non_numbers(raw):
    with pytest.raises(HyperparameterError, match="`epochs` must be"):
        parse_hyperparameters({"epochs": raw})


def test_json_round_trip_uses_listing_names():
    hp = parse_hyperparameters({"context-length": "50", "prediction-length": "10", "dropout": "0.5"})
    as_json = hp.to_json()
    assert as_json["context-length"] == 50 and as_json["prediction-length"] == 10
    assert Hyperparameters.from_json(json.loads(json.dumps(as_json))) == hp


def test_schema_defaults_are_in_range_and_documented():
    for spec in SCHEMA:
        assert spec.doc.strip()
        assert parse_hyperparameters({spec.name: str(spec.default)}) == Hyperparameters()


def test_listing_example_configuration_is_accepted():
    """The public listing's example notebook hyperparameters parse unchanged."""
    hp = parse_hyperparameters({
        "context-length": "100", "prediction-length": "10", "sequence-stride": "10", "hidden-size": "32",
        "num-layers": "2", "dropout": "0.5", "lr": "0.001", "batch-size": "128", "epochs": "100",
    })
    assert (hp.context_length, hp.prediction_length, hp.dropout, hp.epochs) == (100, 10, 0.5, 100)


@pytest.mark.parametrize(("raw", "expected"), [
    ("alarm,attribution", "alarm,attribution"),  # SDK v2 and v3 send a string unchanged
    ('"alarm"', "alarm"),  # framework estimators: json.dumps of a string
    (" Attribution ", "attribution"),
    ("none", "none"),
])
def test_default_output_is_one_of_its_categories(raw, expected):
    hp = parse_hyperparameters({"default-output": raw})
    assert hp.default_output == expected
    assert hp.to_json()["default-output"] == expected
    assert Hyperparameters.from_json(json.loads(json.dumps(hp.to_json()))) == hp  # stored in model.json


@pytest.mark.parametrize("raw", ["alarms", "attribution,alarm", "1", "", "null"])
def test_default_output_refuses_anything_else_and_names_the_choices(raw):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({"default-output": raw})
    assert info.value.problems == [f'`default-output` must be one of "none", "alarm", "attribution", '
                                   f'"alarm,attribution", got {json.dumps(raw)}']


def test_a_long_value_is_quoted_short():
    """A hyperparameter value may be 2,500 characters; the failure file's first 1,024 become FailureReason."""
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({"epochs": "9" * 2500, "default-output": "x" * 2500})
    assert info.value.problems == ['`epochs` must be in [1, 100000], got "' + "9" * 36 + "...",
                                   '`default-output` must be one of "none", "alarm", "attribution", '
                                   '"alarm,attribution", got "' + "x" * 36 + "..."]
