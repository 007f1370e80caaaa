"""LSTM-AD: unsupervised time-series anomaly detection (Malhotra et al., ESANN 2015).

A newcomer's path through the package: data.py (CSV series, scaling) -> model.py (the LSTM forecaster) ->
forecast.py (error vectors) -> split.py, subsequences.py, training.py (fitting) -> scoring/ (the error
model: Gaussian, centres, score window, threshold, attribution) -> predictor.py (the artifact and score()).
parallel/ spreads training over threads and ranks; sagemaker/ is the SageMaker shell above it all.
"""

__version__ = "0.1.0"
