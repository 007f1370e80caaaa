"""LSTM-AD: unsupervised time-series anomaly detection (Malhotra et al., ESANN 2015)."""

__version__ = "0.1.0"
