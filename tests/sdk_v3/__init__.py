"""Tests run under the SageMaker Python SDK v3 (see conftest.py). A package, so that its conftest
does not shadow tests/conftest.py, which the main suite imports as `conftest`."""
