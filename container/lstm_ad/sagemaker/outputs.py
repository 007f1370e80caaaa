"""The optional output columns, and how a model, job or request asks for them.

The default answer is the listing's layout, `score,pred_1,...,pred_d`. Extra outputs come
after those columns, always in this order whatever order they were asked in:

  alarm        1 when the score is below the threshold stored at training (alarm-fraction), else 0
  attribution  attr_1 ... attr_d: each column's term of the squared Mahalanobis distance; they sum
               to 2 x (best possible score - score)

Who asks (the first one present wins):
  1. a JSON request body's "output" field: `{"values": [...], "output": ["alarm"]}` (or "alarm,attribution")
  2. an `output` parameter of the Accept header: `text/csv; output="alarm,attribution"` (`+` also separates)
  3. SageMaker's CustomAttributes (custom_attributes.py): `output=alarm+attribution`
  4. the environment variable LSTM_AD_OUTPUT of the model or transformer (`env=` in the SDK)
  5. the model's own default, the training hyperparameter `default-output`: the one way that reaches
     batch transform of a Marketplace subscription (SDK v2's AlgorithmEstimator.transformer() drops
     `env` for Marketplace algorithms, and batch transform sends no per-request headers but Accept)
"none" (or an empty list) asks for the default layout only.
"""

from __future__ import annotations

import re

from ..errors import UserError, excerpt

ALARM, ATTRIBUTION = "alarm", "attribution"
OPTIONS = (ALARM, ATTRIBUTION)  # the order of the extra columns
ENV_VARIABLE = "LSTM_AD_OUTPUT"
_SEPARATORS = re.compile(r"[\s,+;]+")


def parse_outputs(text: str | list[object], source: str) -> frozenset[str]:
    """"alarm,attribution" (or a list of names) -> the set; a UserError names `source` and the valid names."""
    if isinstance(text, list):
        names = [str(item).strip().lower() for item in text]
        if not all(isinstance(item, str) for item in text):
            raise UserError(f"{source}: expected a list of output names ({', '.join(OPTIONS)}), got "
                            f"{excerpt(repr(text))}.")
    else:
        names = [n.lower() for n in _SEPARATORS.split(text.strip().strip('"')) if n]
    names = [n for n in names if n != "none"]
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        raise UserError(f"{source}: unknown output {excerpt(unknown[0])}; the optional outputs are "
                        f"{', '.join(OPTIONS)} (comma-separated), or none.")
    return frozenset(names)


def serving_outputs(environment: frozenset[str] | None, model_default: str) -> tuple[frozenset[str], str]:
    """The outputs of requests that choose none, and who chose them: LSTM_AD_OUTPUT when set, else the
    model's `default-output`."""
    if environment is not None:
        return environment, ENV_VARIABLE
    return parse_outputs(model_default, "the model's default-output"), "the model's default-output"
