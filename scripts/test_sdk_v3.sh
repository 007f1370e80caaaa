#!/usr/bin/env bash
# The SageMaker Python SDK v3 tests (tests/sdk_v3: the v3 notebook run in local mode, and the requests the
# real v3 SDK sends to stubbed clients) in their own virtual environment (scripts/sdk_v3_venv.sh makes it,
# outside the clone, and reuses it while what it is made from is unchanged). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/sdk_v3_venv.sh)"
# The notebook's local runner starts `train`/`serve` beside the interpreter: run from the venv.
# `-W default`: pyproject.toml turns every warning into an error for the main suite, whose dependencies are
# pinned with it; SDK v3 and what it pulls in warn on their own schedule, so here warnings are shown, not fatal.
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider -W default tests/sdk_v3 "$@"
