"""The error model, in one place: how error vectors become scores, alarms and attribution.

  error_model.py   ErrorModel: fitted by training, saved with the artifact, used by the predictor
  gaussian.py      N(μ, Σ) of the calibration rows' error vectors: fit, log-likelihood, marginals, terms of D^2
  centres.py       a row's log-likelihood under the Gaussian at its nearest centre (the centres search)
  window.py        the score window: a row's log-likelihood or its window's mean, on the calibration scale
  discord.py       the discord term: how unlike the fitting rows' shapes the subsequence around a row is
  threshold.py     the alarm threshold rule and the alarms
  attribution.py   each column's share of a row's squared distance from μ
  blocks.py        the rows scored at once
"""
