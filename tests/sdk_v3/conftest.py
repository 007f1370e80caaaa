"""tests/sdk_v3 runs under the SageMaker Python SDK v3 only, in its own virtual environment
(scripts/test_sdk_v3.sh makes it). Under SDK v2 (the main suite's .venv) every module of this folder
is reported as skipped, with the reason, instead of being imported."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

try:
    SDK_VERSION = version("sagemaker")
except PackageNotFoundError:
    SDK_VERSION = "not installed"
SDK_V3 = SDK_VERSION.split(".")[0].isdigit() and int(SDK_VERSION.split(".")[0]) >= 3
REASON = f"needs the SageMaker Python SDK v3 (sagemaker {SDK_VERSION} here): run scripts/test_sdk_v3.sh"


class _SkippedModule(pytest.File):
    """Stands in for a test module that cannot be imported here (it imports SDK v3)."""

    def collect(self) -> list[pytest.Item]:
        pytest.skip(REASON)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if SDK_V3:
        return None  # the usual pytest.Module
    return _SkippedModule.from_parent(parent, path=module_path)
